"""Who is asked, when, and how: surveys, cadence programmes per segment, invitations and the
events that trigger or track them."""

import secrets

from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django_scopes import ScopedManager

from accounts.models import Account, Contact, Segment
from nps_platform.models import Organization

DEFAULT_QUESTION = "How likely are you to recommend {org} to a friend or colleague?"


def public_id() -> str:
    return secrets.token_urlsafe(9)


def publishable_key() -> str:
    return "pk_" + secrets.token_urlsafe(18)


def identity_secret() -> str:
    return "sk_" + secrets.token_urlsafe(32)


class SurveySettings(models.Model):
    """Organization-wide survey rules and credentials."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="survey_settings"
    )
    fatigue_days = models.PositiveSmallIntegerField(
        default=90, help_text="Nobody is surveyed twice within this many days, by any programme."
    )
    postal_address = models.CharField(
        max_length=300, blank=True, help_text="Shown in every survey email, as the law asks."
    )
    publishable_key = models.CharField(max_length=40, unique=True, default=publishable_key)
    identity_secret = models.CharField(max_length=80, default=identity_secret)

    objects = ScopedManager(organization="organization")

    def __str__(self):
        return f"Survey settings of {self.organization_id}"


class Survey(models.Model):
    """The question and everything around it: follow-up prompts, thank-yous, brand, and
    translations picked by the contact's locale."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    public_id = models.CharField(max_length=20, unique=True, default=public_id)
    question = models.CharField(max_length=300, default=DEFAULT_QUESTION)
    prompt_detractor = models.CharField(
        max_length=300, default="We're sorry to hear that. What should we do better?"
    )
    prompt_passive = models.CharField(
        max_length=300, default="Thanks! What would make us a 10 for you?"
    )
    prompt_promoter = models.CharField(
        max_length=300, default="Wonderful! What do you like most about us?"
    )
    thanks_detractor = models.CharField(
        max_length=300, default="Thank you for being honest. Someone from our team will reach out."
    )
    thanks_passive = models.CharField(
        max_length=300, default="Thank you! Your feedback helps us improve."
    )
    thanks_promoter = models.CharField(
        max_length=300, default="Thank you! We're thrilled you'd recommend us."
    )
    email_subject = models.CharField(max_length=200, default="Quick question from {org}")
    email_intro = models.TextField(
        default="Hi {first_name}, we'd love to know how we're doing. It takes one click."
    )
    logo_url = models.URLField(max_length=500, blank=True)
    brand_color = models.CharField(max_length=7, default="#4F46E5")
    sender_name = models.CharField(max_length=100, blank=True)
    sender_email = models.EmailField(blank=True)
    reply_to = models.EmailField(blank=True)
    # {"de": {"question": …, "prompt_detractor": …, …}}: any text field, per language.
    translations = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Programme(models.Model):
    """A cadence: which survey goes to which segment, how often, how fast, and when."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    survey = models.ForeignKey(Survey, on_delete=models.PROTECT, related_name="programmes")
    segment = models.ForeignKey(
        Segment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty means every contact.",
    )
    channel_email = models.BooleanField(default=True)
    channel_link = models.BooleanField(default=False)
    channel_in_app = models.BooleanField(default=False)
    every_days = models.PositiveSmallIntegerField(
        default=90, help_text="How often one contact may be asked again."
    )
    account_cap = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="At most this many contacts of one account…"
    )
    account_cap_days = models.PositiveSmallIntegerField(default=30, help_text="…in this window.")
    min_tenure_days = models.PositiveSmallIntegerField(
        default=0, help_text="First survey only after this many days as a customer."
    )
    daily_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many sends a day. Empty: drip evenly."
    )
    window_start_hour = models.PositiveSmallIntegerField(default=9)
    window_end_hour = models.PositiveSmallIntegerField(default=17)
    business_days_only = models.BooleanField(default=True)
    reminder_after_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="One reminder if unanswered; empty for none."
    )
    # [{"event": "onboarding_completed", "delay_days": 3}]
    triggers = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_start_hour__lt=models.F("window_end_hour"))
                & Q(window_end_hour__lte=24),
                name="programme_send_window_valid",
            )
        ]

    def __str__(self):
        return self.name


class InvitationState(models.TextChoices):
    PLANNED = "planned", "Planned"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    ANSWERED = "answered", "Answered"
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"
    SKIPPED = "skipped", "Skipped"


OPEN_STATES = [InvitationState.PLANNED, InvitationState.SENDING]


class SkipReason(models.TextChoices):
    SUPPRESSED = "suppressed", "Unsubscribed, bounced or complained"
    FATIGUED = "fatigued", "Surveyed recently (fatigue)"
    CHURNED = "churned", "Account churned"
    ACCOUNT_CAP = "account_cap", "Account cap reached"
    TENURE = "tenure", "Too new a customer"
    NO_EMAIL = "no_email", "No email address"
    ALREADY_PLANNED = "already_planned", "Already has an invitation planned"


class Invitation(models.Model):
    """One ask of one contact, through its states. Claimed by compare-and-set to send."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    programme = models.ForeignKey(
        Programme, on_delete=models.CASCADE, null=True, blank=True, related_name="invitations"
    )
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="invitations")
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="invitations"
    )
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    channel = models.CharField(max_length=10, default="email")
    state = models.CharField(
        max_length=12, choices=InvitationState.choices, default=InvitationState.PLANNED
    )
    skip_reason = models.CharField(max_length=20, choices=SkipReason.choices, blank=True)
    trigger = models.CharField(max_length=100, blank=True, help_text="The event that asked.")
    planned_for = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    response_id = models.BigIntegerField(null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True, help_text="The ESP's id.")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-planned_for"]
        constraints = [
            # One open invitation per contact and programme: planning twice plans once.
            models.UniqueConstraint(
                fields=["programme", "contact"],
                condition=Q(state__in=["planned", "sending"]),
                name="invitation_one_open_per_programme_contact",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "state", "planned_for"]),
            models.Index(fields=["organization", "contact", "sent_at"]),
            models.Index(fields=["organization", "account", "sent_at"]),
            models.Index(fields=["programme", "state", "planned_for"]),
            models.Index(fields=["message_id"]),
        ]
        # On PostgreSQL, migration 0002 adds a covering index on (organization, sent_at)
        # including state, answered_at, account, survey and channel: the dashboard's rates
        # and coverage read a period's invitations from it alone.

    def __str__(self):
        return f"invitation {self.pk} ({self.state})"


class TouchpointEvent(models.Model):
    """Something that happened to a contact (from the API) that may trigger a survey."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    occurred_at = models.DateTimeField(default=now)
    properties = models.JSONField(default=dict, blank=True)
    external_id = models.CharField(max_length=200, null=True, blank=True)
    invitation = models.ForeignKey(
        Invitation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(max_length=100, blank=True, help_text="Scheduled, or why not.")
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"],
                condition=Q(external_id__isnull=False),
                name="touchpoint_external_id_unique",
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.contact_id})"


class EmailEvent(models.Model):
    """A tracking event from the ESP (anymail), kept once per event_id."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    event_id = models.CharField(max_length=200, unique=True)
    event_type = models.CharField(max_length=30)
    message_id = models.CharField(max_length=200, blank=True)
    recipient = models.EmailField(blank=True)
    invitation = models.ForeignKey(
        Invitation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    received_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.event_type} {self.event_id}"
