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

# A follow-up contacted within its SLA: first contact made, by the due time. Loop health
# counts these, from the follow-ups or from LoopFollowUp.in_sla (written with this).
CONTACTED_IN_TIME = models.Q(
    first_contact_at__isnull=False, first_contact_at__lte=models.F("due_at")
)


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


class ThemeDay(models.Model):
    """Per organization, day, survey, channel and theme: how many answers mention the
    theme, and how many of those are detractors and promoters (what the themes panel
    shows). Recounted with DailyScore's days, and for the answers an analysis rewrote."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    survey_id = models.BigIntegerField(default=NO_SURVEY)
    channel = models.CharField(max_length=10)
    theme = models.SlugField(max_length=50)
    mentions = models.PositiveIntegerField(default=0)
    detractors = models.PositiveIntegerField(default=0)
    promoters = models.PositiveIntegerField(default=0)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "survey_id", "channel", "theme"],
                name="theme_day_once",
            )
        ]
        # On PostgreSQL, migration 0004 adds a covering index on (organization, day).

    def __str__(self):
        return f"{self.theme} on {self.day}: {self.mentions}"


class LoopFollowUp(models.Model):
    """A follow-up as loop health reads it: its answer's time, score, survey and channel
    beside its own state and times, so the loop figures of a period read one table instead
    of joining the follow-ups with the answers. Kept current from the follow-up events and
    the response events."""

    followup_id = models.BigIntegerField(primary_key=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    response_id = models.BigIntegerField()
    submitted_at = models.DateTimeField()
    survey_id = models.BigIntegerField(default=NO_SURVEY)
    channel = models.CharField(max_length=10)
    score = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20)
    outcome = models.CharField(max_length=20, blank=True)
    due_at = models.DateTimeField()
    created_at = models.DateTimeField()
    first_contact_at = models.DateTimeField(null=True)
    closed_at = models.DateTimeField(null=True)
    # Precomputed from the columns above when the row is written, so the period's counts
    # and medians read plain values from one index: first contact by the due time, and
    # the seconds from opening to first contact and to close (None until then). The
    # seconds are PostgreSQL's EXTRACT(EPOCH …) as a double, what its medians sort; SQLite
    # computes its medians from the times instead.
    in_sla = models.BooleanField(default=False)
    contact_seconds = models.FloatField(null=True)
    close_seconds = models.FloatField(null=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        indexes = [
            models.Index(fields=["organization", "response_id"], name="loop_followup_response"),
            models.Index(fields=["organization", "submitted_at"], name="loop_followup_period"),
        ]
        # On PostgreSQL, migration 0004 adds two partial covering indexes of the detractors'
        # follow-ups by (organization, submitted_at): their seconds (the medians), and the
        # open ones' due times (the overdue count).

    def __str__(self):
        return f"follow-up {self.followup_id} of response {self.response_id}"


class LoopDay(models.Model):
    """Per organization, day of the answer, survey, channel and outcome: the detractor
    answers' follow-ups, how many were contacted within their SLA, and how many are open
    (loop health's counts). Recounted from LoopFollowUp for the days its rows touch."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    survey_id = models.BigIntegerField(default=NO_SURVEY)
    channel = models.CharField(max_length=10)
    outcome = models.CharField(max_length=20, blank=True)
    followups = models.PositiveIntegerField(default=0)
    in_sla = models.PositiveIntegerField(default=0)
    open = models.PositiveIntegerField(default=0)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "survey_id", "channel", "outcome"],
                name="loop_day_once",
            )
        ]

    def __str__(self):
        return f"{self.day} {self.outcome or 'no outcome'}: {self.followups}"


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
