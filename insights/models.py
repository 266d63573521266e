"""The daily rollup behind the dashboard's response figures.

`DailyScore` holds, per organization, day, survey, channel and score, how many answers
there were and how many had a comment: a year of a large organization fits in a few
thousand rows, so the headline, trend, histogram and verbatim rate read it instead of the
responses. `RolledResponse` remembers the day each response was counted on, so an edit that
moves a response to another day (or changes its score) recomputes both days exactly.

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
    """The day a response is counted on in DailyScore."""

    response_id = models.BigIntegerField(primary_key=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()

    objects = ScopedManager(organization="organization")

    def __str__(self):
        return f"response {self.response_id} on {self.day}"


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
