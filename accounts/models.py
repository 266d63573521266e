"""The tenant's customers and what we know about them: accounts, contacts, support tickets,
usage, segments, and the CSV imports that fill them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django_scopes import ScopedManager

from nps_platform.models import Organization


class LifecycleStage(models.TextChoices):
    TRIAL = "trial", "Trial"
    ONBOARDING = "onboarding", "Onboarding"
    ACTIVE = "active", "Active"
    EXPANSION = "expansion", "Expansion"
    RENEWAL = "renewal", "Up for renewal"
    CHURNED = "churned", "Churned"


class Account(models.Model):
    """A customer company. Tenure derives from `signed_up_on`; ARR is in the org's currency."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=300)
    domain = models.CharField(max_length=255, blank=True)
    plan = models.CharField(max_length=100, blank=True)
    arr = models.DecimalField("ARR", max_digits=14, decimal_places=2, null=True, blank=True)
    industry = models.CharField(max_length=100, blank=True)
    size = models.CharField(max_length=50, blank=True, help_text="Headcount band, e.g. 51-200.")
    lifecycle_stage = models.CharField(max_length=20, choices=LifecycleStage.choices, blank=True)
    renewal_date = models.DateField(null=True, blank=True)
    signed_up_on = models.DateField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The CS member who owns the relationship.",
    )
    health_score = models.PositiveSmallIntegerField(null=True, blank=True, help_text="0–100")
    churned_at = models.DateTimeField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    # Kept current by the response service, so lists sort by it without a join.
    last_score = models.PositiveSmallIntegerField(null=True, blank=True)
    last_score_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="account_external_id_unique"
            ),
            models.CheckConstraint(
                condition=Q(health_score__isnull=True) | Q(health_score__lte=100),
                name="account_health_score_0_100",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "name"]),
            models.Index(fields=["organization", "arr"]),
            models.Index(fields=["organization", "plan"]),
            models.Index(fields=["organization", "owner"]),
            models.Index(fields=["organization", "last_score"]),
        ]

    def __str__(self):
        return self.name

    def tenure_days(self, today=None) -> int | None:
        if self.signed_up_on is None:
            return None
        return ((today or now().date()) - self.signed_up_on).days


class SuppressionReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Marked as spam"


class Contact(models.Model):
    """A person at a customer: the one who is surveyed and followed up with."""

    # No index of its own: every index below (and the survey order's) starts with it, and an
    # import pays for each index on every row it writes.
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts"
    )
    external_id = models.CharField(max_length=200, null=True, blank=True)
    email = models.EmailField(max_length=254, null=True, blank=True)
    name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    title = models.CharField("role / title", max_length=200, blank=True)
    locale = models.CharField(max_length=20, blank=True, help_text="e.g. en, de-DE")
    timezone = models.CharField(max_length=64, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    suppressed_reason = models.CharField(
        max_length=20, choices=SuppressionReason.choices, blank=True
    )
    suppressed_at = models.DateTimeField(null=True, blank=True)
    suppression_note = models.CharField(max_length=500, blank=True)
    last_surveyed_at = models.DateTimeField(null=True, blank=True)
    last_responded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "email"],
                condition=Q(email__isnull=False),
                name="contact_email_unique",
            ),
            models.UniqueConstraint(
                fields=["organization", "external_id"],
                condition=Q(external_id__isnull=False),
                name="contact_external_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(email__isnull=False) | Q(external_id__isnull=False),
                name="contact_has_email_or_external_id",
            ),
        ]
        # An account's contacts are found by the account foreign key's own index (an
        # account belongs to one organization, so (organization, account) adds nothing).
        # The survey planner's order, (organization, last_surveyed_at NULLS FIRST, id), is an
        # index created on PostgreSQL only by migration 0002: SQLite cannot index NULLS FIRST.

    def __str__(self):
        return self.name or self.email or self.external_id or f"contact {self.pk}"

    @property
    def is_suppressed(self) -> bool:
        return bool(self.suppressed_reason)


class TicketStatus(models.TextChoices):
    OPEN = "open", "Open"
    PENDING = "pending", "Pending"
    SOLVED = "solved", "Solved"
    CLOSED = "closed", "Closed"


class TicketPriority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


OPEN_TICKET_STATUSES = [TicketStatus.OPEN, TicketStatus.PENDING]


class SupportTicket(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=200)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="tickets")
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    subject = models.CharField(max_length=500)
    status = models.CharField(max_length=20, choices=TicketStatus.choices, default="open")
    priority = models.CharField(max_length=20, choices=TicketPriority.choices, default="normal")
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=100, blank=True, help_text="e.g. zendesk, intercom")
    url = models.URLField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="ticket_external_id_unique"
            )
        ]
        indexes = [models.Index(fields=["organization", "account", "opened_at"])]

    def __str__(self):
        return self.subject

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TICKET_STATUSES


class UsageSnapshot(models.Model):
    """How an account used the product on one day; a series answers "rising or falling"."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="usage")
    date = models.DateField()
    active_users = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "account", "date"], name="usage_one_per_account_and_day"
            )
        ]

    def __str__(self):
        return f"{self.account_id} {self.date}: {self.active_users}"


class Segment(models.Model):
    """A named rule over account and contact fields, evaluated as a database query.

    `rules` is {"match": "all" | "any", "conditions": [{"field", "op", "value"}, …]};
    see accounts/segments.py for the fields and operators.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    rules = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="segment_name_unique")
        ]

    def __str__(self):
        return self.name


class ImportKind(models.TextChoices):
    """The kinds accounts itself imports; other apps register more (accounts/import_kinds.py),
    which is why ImportJob.kind takes any registered name rather than these choices."""

    ACCOUNTS = "accounts", "Accounts"
    CONTACTS = "contacts", "Contacts"
    TICKETS = "tickets", "Support tickets"


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", "Waiting for column mapping"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Importing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    """One CSV file being imported: its column mapping, progress and outcome."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, help_text="A kind registered in import_kinds.")
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    headers = models.JSONField(default=list)
    mapping = models.JSONField(default=dict, help_text="CSV header → field name.")
    status = models.CharField(
        max_length=20, choices=ImportStatus.choices, default=ImportStatus.UPLOADED
    )
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    error_report = models.FileField(upload_to="imports/%Y/%m/", blank=True)
    failure = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind_label} import {self.original_name}"

    @property
    def kind_label(self) -> str:
        from accounts import import_kinds

        return import_kinds.label_of(self.kind)

    @property
    def is_finished(self) -> bool:
        return self.status in {ImportStatus.DONE, ImportStatus.FAILED}

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(99, int(self.processed_rows * 100 / self.total_rows))


class ErasureRecord(models.Model):
    """Proof that a person's data was erased, holding no personal data itself."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    contact_id = models.BigIntegerField()
    email_sha256 = models.CharField(max_length=64, blank=True)
    erased_at = models.DateTimeField(default=now)
    erased_by = models.CharField(max_length=200, help_text="Who asked: a user or an API key.")

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-erased_at"]

    def __str__(self):
        return f"contact {self.contact_id} erased {self.erased_at:%Y-%m-%d}"
