"""Reads for tenancy and people. `get_<thing>_for` answers 404 for another tenant's object."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django_scopes import scopes_disabled

from nps_platform.models import ApiKey, Membership, Organization, TeammateInvitation, User


def memberships_for_user(user: User) -> list[Membership]:
    """Every seat the user holds, with its organization, ordered by organization name."""
    if not user.is_authenticated:
        return []
    # A person's own seats span tenants by definition: this read is how a request's tenant is
    # chosen, before any scope exists. It returns only rows that belong to this user.
    with scopes_disabled():
        return list(
            Membership.objects.filter(user=user)
            .select_related("organization")
            .order_by("organization__name")
        )


def members_of(organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user")


def pending_invitations_of(organization: Organization) -> QuerySet[TeammateInvitation]:
    return TeammateInvitation.objects.filter(
        organization=organization, accepted_at__isnull=True, revoked_at__isnull=True
    ).select_related("invited_by")


def api_keys_of(organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).select_related("created_by")


def get_membership_for(organization: Organization, membership_id: int) -> Membership:
    return get_object_or_404(members_of(organization), pk=membership_id)


def get_invitation_for(organization: Organization, invitation_id: int) -> TeammateInvitation:
    return get_object_or_404(
        TeammateInvitation.objects.filter(organization=organization), pk=invitation_id
    )


def get_api_key_for(organization: Organization, api_key_id: int) -> ApiKey:
    return get_object_or_404(ApiKey.objects.filter(organization=organization), pk=api_key_id)
