"""The rollups behind the dashboard's response figures.

`DailyScore` holds, per organization, day, survey, channel and score, how many answers
there were and how many had a comment: a year of a large organization fits in a few
thousand rows, so the headline, trend, histogram and verbatim rate read it instead of the
responses. `RolledResponse` remembers the day each response was counted on, so an edit that
moves a response to another day (or changes its score) recomputes both days exactly; it
also remembers the response's account, respondent and score, and when that respondent
answered next (`next_at`), which tells without a window over the period whether an answer
is its respondent's latest in a range. `AccountMonth` adds, per account and month, the
category counts, the latest answer's time and the respondents whose latest answer it holds,
so the per-account figures read a row per account and month instead of every answer.

Kept current by insights.services from the response events (a task per batch) and rebuilt
exactly by `manage.py rebuild_insights`.
"""

from django.db import models
from django_scopes import ScopedManager

from nps_platform.models import Organization

NO_SURVEY = 0  # survey_id of answers that belong to no survey


class DailyScore(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    survey_id = models.BigIntegerField(default=NO_SURVEY)
    channel = models.CharField(max_length=10)
    score = models.PositiveSmallIntegerField()
    responses = models.PositiveIntegerField(default=0)
    with_comment = models.PositiveIntegerField(default=0)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "survey_id", "channel", "score"],
                name="daily_score_once",
            )
        ]

    def __str__(self):
        return f"{self.day} {self.channel} {self.score}: {self.responses}"


class RolledResponse(models.Model):
    """A response as the rollups counted it: the day it is counted on in DailyScore, and
    what AccountMonth needs. A respondent is the contact, or the response itself (its id,
    negated) when it has none, as the account figures count them."""

    response_id = models.BigIntegerField(primary_key=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    account_id = models.BigIntegerField(null=True)
    respondent_id = models.BigIntegerField(default=0)
    score = models.PositiveSmallIntegerField(default=0)
    submitted_at = models.DateTimeField(null=True)
    # When the respondent answered next (among answers with an account); None when this is
    # their latest. An answer is its respondent's latest in [low, high) when it lies in the
    # range and next_at is None or at or after high.
    next_at = models.DateTimeField(null=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        # On PostgreSQL, migration 0003 adds two partial covering indexes for the account
        # figures: the latest answers, and the answers superseded after a date.
        indexes = [
            models.Index(fields=["organization", "respondent_id"], name="rolled_respondent"),
            models.Index(fields=["organization", "account_id", "day"], name="rolled_account_day"),
        ]

    def __str__(self):
        return f"response {self.response_id} on {self.day}"


class AccountMonth(models.Model):
    """Per account and month (of local days): the category counts of its answers, the
    latest answer's time, the first detractor answer's time and the lowest score (what
    loop health's saves compare), and the respondents whose latest answer overall falls in
    it (how many, and the sum of those scores)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    account_id = models.BigIntegerField()
    month = models.DateField(help_text="The first day of the month.")
    promoters = models.PositiveIntegerField(default=0)
    passives = models.PositiveIntegerField(default=0)
    detractors = models.PositiveIntegerField(default=0)
    last_at = models.DateTimeField()
    first_detractor_at = models.DateTimeField(null=True)
    lowest_score = models.PositiveSmallIntegerField(default=0)
    latest_score_sum = models.PositiveIntegerField(default=0)
    latest_respondents = models.PositiveIntegerField(default=0)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "account_id", "month"], name="account_month_once"
            )
        ]
        # On PostgreSQL, migration 0003 adds a covering index on (organization, month).

    def __str__(self):
        return f"account {self.account_id} in {self.month:%Y-%m}"


class WeeklyDigest(models.Model):
    """The executives' weekly digest of one organization for one week (Monday to Sunday).

    The row is claimed before the emails go out and marked sent after, inside one
    transaction: a retried or duplicated task finds the week sent and sends nothing again.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    week_start = models.DateField(help_text="The Monday of the week the digest covers.")
    recipients = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "week_start"], name="weekly_digest_once_per_week"
            )
        ]

    def __str__(self):
        return f"digest of the week of {self.week_start}"
