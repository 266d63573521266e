"""Signed, expiring tokens for the links in survey emails. A token names its organization
and invitation, so the public pages enter that tenant's scope without a session."""

from datetime import timedelta

from django.core import signing
from django_scopes import scope

from surveys.models import Invitation

SALT = "surveys.invitation"
UNSUBSCRIBE_SALT = "surveys.unsubscribe"
MAX_AGE = timedelta(days=60)
UNSUBSCRIBE_MAX_AGE = timedelta(days=365)


class TokenInvalid(Exception):
    """Tampered, expired, or pointing at nothing. The message is for the respondent."""


def invitation_token(invitation: Invitation, *, salt: str = SALT) -> str:
    return signing.dumps({"o": invitation.organization_id, "i": invitation.pk}, salt=salt)


def invitation_from_token(token: str, *, salt: str = SALT, max_age=MAX_AGE) -> Invitation:
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise TokenInvalid("This survey link has expired.") from exc
    except signing.BadSignature as exc:
        raise TokenInvalid("This survey link is not valid.") from exc
    if not isinstance(data, dict) or not {"o", "i"} <= data.keys():
        raise TokenInvalid("This survey link is not valid.")
    with scope(organization=data["o"]):
        invitation = (
            Invitation.objects.select_related("survey", "contact", "organization")
            .filter(pk=data["i"], organization_id=data["o"])
            .first()
        )
    if invitation is None:
        raise TokenInvalid("This survey is no longer available.")
    return invitation
