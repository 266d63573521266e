"""Every request runs inside exactly one tenant's scope, or none.

The tenant comes from an API key (`Authorization: Bearer …`) or from the signed-in
member's current organization, kept in the session. Tenant models refuse to query outside
a scope (django-scopes), so a view that forgets its organization fails loudly in tests.
"""

import base64
import time

from django.db.models.base import ModelState
from django.db.models.signals import post_delete, post_save
from django_scopes import scope, scopes_disabled

from nps_platform.models import ApiKey, Organization, api_key_hash
from nps_platform.selectors import memberships_for_user
from nps_platform.services import api_key_authenticate

SESSION_ORGANIZATION_KEY = "organization_id"


def bearer_token(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    kind, _, token = header.partition(" ")
    if kind.lower() == "basic" and request.path.startswith("/delighted/"):
        # Delighted's clients send the key as the Basic user name, with or without ":".
        try:
            return base64.b64decode(token.strip(), validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    if kind.lower() != "bearer":
        return None
    return token.strip()


# A key found valid is trusted for a few seconds without asking the database again: an
# integration posting hundreds of answers a second would otherwise pay a query (and the key's
# organization) per request. A key revoked in this process is forgotten at once (the signal
# below); other processes stop accepting it within KEY_CACHE_SECONDS. Unknown and revoked
# keys are never remembered, so they always cost a query.
KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_SIZE = 1000
_known_keys: dict[str, tuple[float, ApiKey]] = {}


def _forget_known_keys(**kwargs) -> None:
    _known_keys.clear()


post_save.connect(_forget_known_keys, sender=ApiKey, dispatch_uid="tenancy.forget_keys")
post_delete.connect(_forget_known_keys, sender=ApiKey, dispatch_uid="tenancy.forget_keys_d")
post_save.connect(_forget_known_keys, sender=Organization, dispatch_uid="tenancy.forget_orgs")


def api_key_for(raw_key: str) -> ApiKey | None:
    """The active key for raw_key (services.api_key_authenticate, which also records its use),
    remembered in this process for KEY_CACHE_SECONDS. Each request gets its own copy."""
    digest = api_key_hash(raw_key)
    clock = time.monotonic()
    known = _known_keys.get(digest)
    if known is None or clock - known[0] >= KEY_CACHE_SECONDS:
        api_key = api_key_authenticate(raw_key=raw_key)
        if api_key is None:
            _known_keys.pop(digest, None)
            return None
        if len(_known_keys) >= _KEY_CACHE_SIZE:
            _known_keys.clear()
        known = _known_keys[digest] = (clock, api_key)
    api_key = _copy(known[1])
    api_key.organization = _copy(known[1].organization)
    return api_key


def _copy(instance):
    """A shallow copy of a model instance with its own state and no cached relations (what
    copy.copy gives, at a fraction of its cost: it pickles the instance's state)."""
    clone = instance.__class__.__new__(instance.__class__)
    clone.__dict__.update(instance.__dict__)
    clone._state = ModelState()
    clone._state.adding, clone._state.db = instance._state.adding, instance._state.db
    return clone


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.organization = None
        request.membership = None
        request.memberships = []
        request.api_key = None
        request.api_key_presented = False

        token = bearer_token(request)
        if token is not None:
            request.api_key_presented = True
            request.api_key = api_key_for(token)
            if request.api_key is not None:
                request.organization = request.api_key.organization
        elif request.path.startswith("/admin/") and request.user.is_superuser:
            # The Django admin is the operators' tool across every tenant.
            with scopes_disabled():
                return self.get_response(request)
        elif request.user.is_authenticated:
            self._choose_membership(request)

        if request.organization is None:
            return self.get_response(request)
        with scope(organization=request.organization):
            return self.get_response(request)

    @staticmethod
    def _choose_membership(request):
        memberships = memberships_for_user(request.user)
        request.memberships = memberships
        if not memberships:
            return
        wanted = request.session.get(SESSION_ORGANIZATION_KEY)
        chosen = next((m for m in memberships if m.organization_id == wanted), memberships[0])
        if wanted != chosen.organization_id:
            request.session[SESSION_ORGANIZATION_KEY] = chosen.organization_id
        request.membership = chosen
        request.organization = chosen.organization
