"""Answers from every channel, what they say (themes, sentiment), and where they go next
(webhooks, Slack alerts)."""

import base64
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django_scopes import ScopedManager

from accounts.models import Account, Contact
from nps_platform.models import Organization


class Category(models.TextChoices):
    DETRACTOR = "detractor", "Detractor"
    PASSIVE = "passive", "Passive"
    PROMOTER = "promoter", "Promoter"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    LINK = "link", "Link"
    IN_APP = "in_app", "In-app"
    API = "api", "API"
    IMPORT = "import", "Import"


class Response(models.Model):
    """One person's answer: a 0–10 score and maybe a comment.

    `survey_id` and `invitation_id` point into surveys/, which depends on this app, so they
    are plain ids rather than foreign keys (the arrow points one way).
    """

    # No index of its own: every index below starts with the organization.
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="responses"
    )
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="responses"
    )
    survey_id = models.BigIntegerField(null=True, blank=True)
    invitation_id = models.BigIntegerField(null=True, blank=True)
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)
    category = models.CharField(max_length=10, choices=Category.choices)
    danger_zone = models.BooleanField(default=False)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    has_comment = models.BooleanField(default=False)
    sentiment = models.FloatField(null=True, blank=True, help_text="VADER compound, −1 to 1.")
    themes = models.JSONField(default=list, blank=True)
    analyzed_hash = models.CharField(max_length=64, blank=True)
    tags = models.JSONField(default=list, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    external_id = models.CharField(max_length=200, null=True, blank=True)
    submitted_at = models.DateTimeField(default=now)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-submitted_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(score__lte=10), name="response_score_0_10"),
            models.UniqueConstraint(
                fields=["organization", "external_id"],
                condition=Q(external_id__isnull=False),
                name="response_external_id_unique",
            ),
            models.UniqueConstraint(
                fields=["organization", "invitation_id"],
                condition=Q(invitation_id__isnull=False),
                name="response_one_per_invitation",
            ),
        ]
        indexes = [
            # Covering on PostgreSQL (SQLite ignores INCLUDE): the dashboard reads a
            # period's ids, accounts, contacts and scores from the index alone.
            models.Index(
                fields=["organization", "submitted_at"],
                include=["id", "account", "contact", "score"],
                name="response_org_submitted",
            ),
            models.Index(fields=["organization", "account", "submitted_at"]),
            models.Index(fields=["organization", "contact", "submitted_at"]),
            models.Index(fields=["organization", "category", "submitted_at"]),
        ]

    def __str__(self):
        return f"{self.score} ({self.category}) {self.submitted_at:%Y-%m-%d}"


class ResponseNote(models.Model):
    """A note a teammate left on a response, or one brought over by an import (a Delighted
    export's notes): `external_id` is the note's identity in the file it came from, so a
    re-import finds it instead of adding it again; `imported` says where it came from."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="notes")
    body = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    author_name = models.CharField(
        max_length=200, blank=True, help_text="Who wrote it, when not a member (an import)."
    )
    imported = models.BooleanField(default=False)
    external_id = models.CharField(max_length=200, null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "response", "external_id"],
                condition=Q(external_id__isnull=False),
                name="response_note_external_id_unique",
            )
        ]
        indexes = [models.Index(fields=["organization", "response", "created_at"])]

    def __str__(self):
        return self.body[:50]


class ResponseTheme(models.Model):
    """A theme found in a response's comment: a row per theme, so filters use an index on
    every database (JSON containment is not portable)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="theme_rows")
    theme = models.SlugField(max_length=50)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["response", "theme"], name="response_theme_once")
        ]
        indexes = [models.Index(fields=["organization", "theme"])]

    def __str__(self):
        return self.theme


class Theme(models.Model):
    """An organization's addition to the theme taxonomy: a new theme, or more keywords for a
    default one (same slug)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    slug = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    keywords = models.JSONField(default=list, help_text="Words and phrases that signal it.")
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="theme_slug_unique")
        ]

    def __str__(self):
        return self.name


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key: the first request's fingerprint and answer, kept 24 h."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    in_flight = models.BooleanField(default=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="idempotency_key_unique")
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self):
        return self.key


def webhook_secret() -> str:
    """A Standard Webhooks secret: "whsec_" and 32 random bytes in standard base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookEvent(models.TextChoices):
    RESPONSE_CREATED = "response.created", "A response arrives"
    RESPONSE_UPDATED = "response.updated", "A response changes"
    FOLLOWUP_CREATED = "followup.created", "A follow-up opens"
    FOLLOWUP_STATUS_CHANGED = "followup.status_changed", "A follow-up changes status"
    FOLLOWUP_CLOSED = "followup.closed", "A follow-up closes"


class PayloadFormat(models.TextChoices):
    STANDARD = "standard", "Standard ({type, timestamp, data})"
    DELIGHTED = "delighted", "Delighted ({event_type, event_id, event_data})"


class WebhookEndpoint(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=1000)
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100, default=webhook_secret)
    events = models.JSONField(default=list, help_text="Event types; empty means all.")
    payload_format = models.CharField(
        max_length=10,
        choices=PayloadFormat.choices,
        default=PayloadFormat.STANDARD,
        help_text="Delighted's shape sends survey_response.* and unsubscribe.created only.",
    )
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.url

    def wants(self, event_type: str) -> bool:
        return self.is_active and (not self.events or event_type in self.events)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SUCCEEDED = "succeeded", "Delivered"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint, with every attempt's outcome."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=50)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="delivery_once_per_endpoint_and_event"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self):
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"


class SlackAlert(models.Model):
    """Post detractors to a Slack channel through an incoming-webhook URL."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="slack_alert"
    )
    webhook_url = models.URLField(max_length=500)
    only_danger_zone = models.BooleanField(default=False)
    min_arr = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    def __str__(self):
        return f"Slack alert for {self.organization_id}"
