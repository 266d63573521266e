"""The closed loop: every response becomes a follow-up a person works, with a priority, an
owner, a due date, a playbook, a personalised draft, and an activity log."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django_scopes import ScopedManager

from accounts.models import Account, Contact, Segment
from nps_platform.models import Organization
from responses.models import Response


class Playbook(models.TextChoices):
    RECOVER = "recover", "Recover a detractor"
    NUDGE = "nudge", "Nudge a passive toward promoter"
    THANK = "thank", "Thank a promoter and ask for advocacy"
    ASK_WHY = "ask_why", "Ask why (no comment)"


class Status(models.TextChoices):
    NEW = "new", "New"
    IN_PROGRESS = "in_progress", "In progress"
    WAITING = "waiting", "Waiting on customer"
    CLOSED = "closed", "Closed"


OPEN_STATUSES = [Status.NEW, Status.IN_PROGRESS, Status.WAITING]


class Outcome(models.TextChoices):
    RESOLVED = "resolved", "Resolved"
    CHURN_RISK = "churn_risk", "Churn risk"
    REFERRAL_GIVEN = "referral_given", "Referral given"
    REVIEW_LEFT = "review_left", "Review left"
    NO_RESPONSE = "no_response", "No response"
    NOT_REACHABLE = "not_reachable", "Not reachable"
    OTHER = "other", "Other"


class FollowUpSettings(models.Model):
    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="followup_settings"
    )
    # Only ever for promoter and passive thank-yous: detractors always get a person.
    auto_send_thanks = models.BooleanField(default=False)
    escalate_after_hours = models.PositiveIntegerField(
        default=48, help_text="Overdue by this long, a follow-up escalates to the admins, once."
    )
    round_robin_cursor = models.PositiveIntegerField(default=0)

    objects = ScopedManager(organization="organization")

    def __str__(self):
        return f"Follow-up settings of {self.organization_id}"


class PlaybookTemplate(models.Model):
    """An organization's draft template and SLA for one playbook (defaults live in code)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    playbook = models.CharField(max_length=20, choices=Playbook.choices)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    sla_hours = models.PositiveIntegerField()
    updated_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "playbook"], name="playbook_template_once"
            )
        ]

    def __str__(self):
        return f"{self.playbook} template"


class AssignmentRule(models.Model):
    """Accounts in `segment` go to `assignee` when they have no owner. Lower order first."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    order = models.PositiveSmallIntegerField(default=0)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["order", "id"]

    def __str__(self):
        return f"{self.segment_id} → {self.assignee_id}"


class MemberPause(models.Model):
    """A teammate who should not receive new follow-ups (holiday), until a date or for now."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    until = models.DateField(null=True, blank=True, help_text="Empty: until resumed.")
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="member_pause_once")
        ]

    def __str__(self):
        return f"{self.user_id} paused"


class FollowUp(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    response = models.OneToOneField(Response, on_delete=models.CASCADE, related_name="followup")
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="followups"
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="followups"
    )
    playbook = models.CharField(max_length=20, choices=Playbook.choices)
    priority = models.PositiveSmallIntegerField(default=0, help_text="0–100, higher first.")
    priority_reasons = models.JSONField(default=list)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    due_at = models.DateTimeField()
    draft_subject = models.CharField(max_length=300, blank=True)
    draft_body = models.TextField(blank=True)
    draft_edited = models.BooleanField(default=False)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    closing_notes = models.TextField(blank=True)
    first_contact_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-priority", "due_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="closed") | ~Q(outcome=""), name="followup_closed_has_outcome"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "status", "priority"]),
            models.Index(fields=["organization", "assignee", "status"]),
            models.Index(fields=["organization", "status", "due_at"]),
        ]

    def __str__(self):
        return f"follow-up {self.pk} ({self.playbook}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status != Status.CLOSED

    @property
    def is_overdue(self) -> bool:
        return self.is_open and self.due_at < now()


class ActivityKind(models.TextChoices):
    CREATED = "created", "Created"
    REPLANNED = "replanned", "Re-planned after a new score"
    STATUS = "status", "Status changed"
    NOTE = "note", "Note"
    EMAIL = "email", "Email sent"
    CALL = "call", "Call logged"
    ASSIGNED = "assigned", "Reassigned"
    DRAFT = "draft", "Draft edited"
    ESCALATED = "escalated", "Escalated"
    CLOSED = "closed", "Closed"
    REPLY = "reply", "Customer replied"


class Activity(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    followup = models.ForeignKey(FollowUp, on_delete=models.CASCADE, related_name="activities")
    kind = models.CharField(max_length=20, choices=ActivityKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["organization", "followup", "created_at"])]

    def __str__(self):
        return f"{self.kind} on {self.followup_id}"
