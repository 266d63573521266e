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
so the per-account figures read a row per account and month instead of every answer;
`AccountSpan` sums those months over aligned blocks of 2 to 64 months, so a range reads a
few rows per account. `InvitationDay` counts the delivered and answered invitations per
day they were sent (the response rate).

Kept current by insights.services from the response and invitation events (a task per
batch) and rebuilt exactly by `manage.py rebuild_insights`.
"""

from datetime import date

from django.db import models
from django_scopes import ScopedManager

from nps_platform.models import Organization

NO_SURVEY = 0  # survey_id of answers that belong to no survey

# A follow-up contacted within its SLA: first contact made, by the due time. Loop health
# counts these, from the follow-ups or from LoopFollowUp.in_sla (written with this).
CONTACTED_IN_TIME = models.Q(
    first_contact_at__isnull=False, first_contact_at__lte=models.F("due_at")
)

# What the response rate counts of an invitation: delivered unless in one of these states
# (never sent, or sent and lost); answered with an answer time or in the answered state.
# Read from the invitations or from InvitationDay (written with these).
UNDELIVERED_STATES = ["planned", "sending", "bounced", "failed", "suppressed", "skipped"]
INVITATION_ANSWERED = models.Q(answered_at__isnull=False) | models.Q(state="answered")


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


# The lengths of AccountSpan's blocks, in months: powers of two, up to what covers the
# longest range the dashboard allows (ten years) in a few blocks.
SPAN_MONTHS = (2, 4, 8, 16, 32, 64)


def month_index(month: date) -> int:
    """A month's index: year × 12 + month − 1 (what AccountSpan's blocks align on)."""
    return month.year * 12 + month.month - 1


def month_of_index(index: int) -> date:
    """The first day of the month with this index."""
    return date(index // 12, index % 12 + 1, 1)


def span_start(month: date, months: int) -> date:
    """The first month of the aligned block of `months` months that holds `month`."""
    index = month_index(month)
    return month_of_index(index - index % months)


def spans(first: date, end: date) -> list[tuple[date, int]]:
    """The whole months [first, end) as aligned blocks (first month, months), longest
    first wherever one fits: at most two blocks of each length. One-month blocks are
    AccountMonth's rows, the others AccountSpan's."""
    index, stop = month_index(first), month_index(end)
    out = []
    while index < stop:
        months = SPAN_MONTHS[-1]
        while months > 1 and (index % months or index + months > stop):
            months //= 2
        out.append((month_of_index(index), months))
        index += months
    return out


class AccountSpan(models.Model):
    """AccountMonth's figures summed over an aligned block of `months` months (a power of
    two; a block starts at a month whose index, year × 12 + month − 1, is a multiple of
    it): a range of whole months reads a few blocks per account (at most two per length)
    instead of a row per month. Recounted from the block's halves whenever a month in it
    is."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    account_id = models.BigIntegerField()
    month = models.DateField(help_text="The first day of the block's first month.")
    months = models.PositiveSmallIntegerField()
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
                fields=["organization", "months", "month", "account_id"],
                name="account_span_once",
            )
        ]
        # On PostgreSQL, migration 0007 adds a covering index on (organization, months,
        # month).

    def __str__(self):
        return f"account {self.account_id}, {self.months} months from {self.month:%Y-%m}"


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


class InvitationDay(models.Model):
    """Per organization, day the invitations went out (`sent_at`), survey and channel: how
    many were delivered (sent and not bounced, failed, suppressed or skipped) and how many
    of those were answered (the response rate's two counts). Recounted from the invitations
    for the days the surveys' `invitations_changed` events (and deletions) touch."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    survey_id = models.BigIntegerField()
    channel = models.CharField(max_length=10)
    delivered = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "survey_id", "channel"],
                name="invitation_day_once",
            )
        ]

    def __str__(self):
        return f"{self.day} {self.channel}: {self.answered} of {self.delivered}"


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
