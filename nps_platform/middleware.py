"""Every request runs inside exactly one tenant's scope, or none.

The tenant comes from an API key (`Authorization: Bearer …`) or from the signed-in
member's current organization, kept in the session. Tenant models refuse to query outside
a scope (django-scopes), so a view that forgets its organization fails loudly in tests.
"""

from django_scopes import scope, scopes_disabled

from nps_platform.selectors import memberships_for_user
from nps_platform.services import api_key_authenticate

SESSION_ORGANIZATION_KEY = "organization_id"


def bearer_token(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer":
        return None
    return token.strip()


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
            request.api_key = api_key_authenticate(raw_key=token)
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
