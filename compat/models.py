"""What the Delighted-compatible surface keeps of its own: how an organization's Delighted
person properties map onto accounts and contacts, and who is enrolled in "Autopilot"."""

from django.db import models
from django.utils.timezone import now
from django_scopes import ScopedManager

from accounts.models import Contact
from nps_platform.models import Organization
from surveys.models import Programme

# Property name (compared case-insensitively, spaces and dashes as underscores) → where it
# goes. Targets: "account_name", "account_external_id" and the account fields below; any
# property not named here stays in the contact's properties.
ACCOUNT_TARGETS = ("account_name", "account_external_id", "plan", "arr", "industry", "size")
DEFAULT_PROPERTY_MAPPING = {
    "company": "account_name",
    "company_name": "account_name",
    "account": "account_name",
    "account_name": "account_name",
    "organization": "account_name",
    "company_id": "account_external_id",
    "account_id": "account_external_id",
    "plan": "plan",
    "plan_name": "plan",
    "arr": "arr",
    "industry": "industry",
    "company_size": "size",
}


class CompatSettings(models.Model):
    """One row per organization, made on first use with the defaults."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="compat_settings"
    )
    property_mapping = models.JSONField(
        default=dict,
        blank=True,
        help_text="Delighted property name → account field; merged over the defaults.",
    )
    email_programme = models.ForeignKey(
        Programme,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The programme that plays Delighted's email Autopilot and sends delays. "
        "Empty: the oldest active email programme.",
    )

    objects = ScopedManager(organization="organization")

    class Meta:
        verbose_name_plural = "compat settings"

    def __str__(self):
        return f"Delighted settings of {self.organization_id}"

    def mapping(self) -> dict[str, str]:
        return {**DEFAULT_PROPERTY_MAPPING, **(self.property_mapping or {})}


class AutopilotMembership(models.Model):
    """A contact enrolled in the email programme through Delighted's Autopilot API."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    programme = models.ForeignKey(Programme, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=now)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "programme", "contact"], name="autopilot_member_once"
            )
        ]
        indexes = [models.Index(fields=["organization", "programme", "id"])]

    def __str__(self):
        return f"{self.contact_id} in {self.programme_id}"
