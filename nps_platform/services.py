"""Writes for tenancy and people. Plain functions, keyword-only, organization first."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django_scopes import scope, scopes_disabled

from nps_platform.models import (
    ApiKey,
    Membership,
    Organization,
    Role,
    TeammateInvitation,
    User,
    api_key_hash,
)

API_KEY_PREFIX = "nps_"
INVITATION_SALT = "nps_platform.teammate-invitation"
# Writing last_used_at on every request would make each API call a write; once a minute
# is precise enough to tell a live key from a forgotten one.
API_KEY_LAST_USED_RESOLUTION = timedelta(minutes=1)


# --- Organizations and memberships -----------------------------------------------------


def organization_create(
    *, name: str, slug: str = "", timezone_name: str = "UTC", currency: str = "USD"
) -> Organization:
    slug = slugify(slug or name)[:60]
    if not slug:
        raise ValidationError({"slug": "An organization needs a slug of letters or digits."})
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"The slug {slug!r} is taken."})
    return Organization.objects.create(
        name=name, slug=slug, timezone=timezone_name, currency=currency.upper()
    )


def organization_update(
    *, organization: Organization, name: str, timezone_name: str, currency: str
) -> Organization:
    organization.name = name
    organization.timezone = timezone_name
    organization.currency = currency.upper()
    organization.full_clean()
    organization.save(update_fields=["name", "timezone", "currency"])
    return organization


def membership_add(*, organization: Organization, user: User, role: str) -> Membership:
    """Adds the user with the role; a user already in the organization keeps one seat."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    with scope(organization=organization):
        membership, created = Membership.objects.get_or_create(
            organization=organization, user=user, defaults={"role": role}
        )
        if not created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
    return membership


def _ensure_another_admin(*, organization: Organization, membership: Membership) -> None:
    if membership.role != Role.ADMIN:
        return
    others = Membership.objects.filter(organization=organization, role=Role.ADMIN).exclude(
        pk=membership.pk
    )
    if not others.exists():
        raise ValidationError("An organization needs at least one admin.")


def membership_change_role(
    *, organization: Organization, membership: Membership, role: str
) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    if role != Role.ADMIN:
        _ensure_another_admin(organization=organization, membership=membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def membership_remove(*, organization: Organization, membership: Membership) -> None:
    _ensure_another_admin(organization=organization, membership=membership)
    membership.delete()


# --- Teammate invitations -----------------------------------------------------------------


def invitation_token(invitation: TeammateInvitation) -> str:
    return signing.dumps(
        {"o": invitation.organization_id, "i": invitation.pk}, salt=INVITATION_SALT
    )


def invitation_url(invitation: TeammateInvitation) -> str:
    path = reverse("invitation_accept", kwargs={"token": invitation_token(invitation)})
    return f"{settings.SITE_URL}{path}"


def invitation_create(
    *, organization: Organization, email: str, role: str, invited_by: User
) -> TeammateInvitation:
    """Invites someone by email. Inviting the same address again replaces the open invite."""
    email = email.strip().lower()
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of {organization.name}."})
    with transaction.atomic():
        TeammateInvitation.objects.filter(
            organization=organization,
            email__iexact=email,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
        ).update(revoked_at=timezone.now())
        invitation = TeammateInvitation.objects.create(
            organization=organization, email=email, role=role, invited_by=invited_by
        )
    context = {
        "invitation": invitation,
        "organization": organization,
        "invited_by": invited_by,
        "url": invitation_url(invitation),
        "valid_days": settings.TEAMMATE_INVITATION_MAX_AGE.days,
    }
    send_mail(
        subject=f"{invited_by.display_name} invited you to {organization.name} on NPS Loop",
        message=render_to_string("nps_platform/email/invitation.txt", context),
        from_email=None,
        recipient_list=[email],
    )
    return invitation


def invitation_revoke(
    *, organization: Organization, invitation: TeammateInvitation
) -> TeammateInvitation:
    if invitation.is_pending:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation


class InvitationInvalid(Exception):
    """The link is forged, expired, used or revoked. The message says which, for the page."""


def invitation_from_token(*, token: str) -> TeammateInvitation:
    """The pending invitation a link points to. Raises InvitationInvalid with a reason."""
    try:
        data = signing.loads(
            token,
            salt=INVITATION_SALT,
            max_age=settings.TEAMMATE_INVITATION_MAX_AGE,
        )
    except signing.SignatureExpired as exc:
        raise InvitationInvalid(
            "This invitation has expired. Ask an admin of the organization for a new one."
        ) from exc
    except signing.BadSignature as exc:
        raise InvitationInvalid("This invitation link is not valid.") from exc
    # The signed token names its organization, so the lookup runs in that tenant's scope.
    with scope(organization=data["o"]):
        invitation = (
            TeammateInvitation.objects.select_related("organization").filter(pk=data["i"]).first()
        )
    if invitation is None or invitation.revoked_at:
        raise InvitationInvalid("This invitation was withdrawn. Ask an admin for a new one.")
    if invitation.accepted_at:
        raise InvitationInvalid("This invitation was already used. Sign in to continue.")
    return invitation


def invitation_accept(
    *,
    invitation: TeammateInvitation,
    user: User | None = None,
    name: str = "",
    password: str = "",
) -> Membership:
    """Joins the invited person: an existing user (who must be signed in as the invited
    address) or a new one created with the name and password given."""
    email = invitation.email
    with transaction.atomic():
        if user is None:
            if User.objects.filter(email__iexact=email).exists():
                raise ValidationError(
                    {"password": f"An account for {email} exists already: sign in to accept."}
                )
            candidate = User(email=email, name=name.strip())
            validate_password(password, user=candidate)
            user = User.objects.create_user(email=email, password=password, name=name.strip())
        elif user.email.lower() != email.lower():
            raise ValidationError(
                f"This invitation is for {email}, but you are signed in as {user.email}."
            )
        with scope(organization=invitation.organization_id):
            claimed = TeammateInvitation.objects.filter(
                pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
            ).update(accepted_at=timezone.now())
        if not claimed:
            raise ValidationError("This invitation was already used.")
        return membership_add(organization=invitation.organization, user=user, role=invitation.role)


def invitations_purge_expired(*, now=None) -> int:
    """Deletes invitations whose links can no longer be used. Returns how many."""
    cutoff = (now or timezone.now()) - settings.TEAMMATE_INVITATION_MAX_AGE
    # A system task across every tenant: expiry is the same rule for all of them.
    with scopes_disabled():
        deleted, _ = TeammateInvitation.objects.filter(
            accepted_at__isnull=True, created__lt=cutoff
        ).delete()
    return deleted


# --- API keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    raw_key: str  # shown once, never stored


def api_key_create(*, organization: Organization, name: str, created_by: User | None) -> NewApiKey:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the key a name, such as the integration using it."})
    raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name[:100],
        prefix=raw_key[:12],
        hashed_key=api_key_hash(raw_key),
        created_by=created_by,
    )
    return NewApiKey(api_key=api_key, raw_key=raw_key)


def api_key_revoke(*, organization: Organization, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key matching raw_key, its use recorded; None for an unknown or revoked key."""
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    # This is where the tenant is found, so it cannot already be in one tenant's scope.
    with scopes_disabled():
        api_key = (
            ApiKey.objects.select_related("organization")
            .filter(hashed_key=api_key_hash(raw_key), revoked_at__isnull=True)
            .first()
        )
        if api_key is None:
            return None
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > (
            API_KEY_LAST_USED_RESOLUTION
        ):
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
    return api_key
