"""API authentication: `Authorization: Bearer <key>` names the organization.

TenantMiddleware has already matched the key and entered the tenant's scope; these classes
turn its finding into DRF's answer: 401 JSON for a missing, unknown or revoked key.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling


class ApiClient:
    """The caller behind an API key. Not a person, so it has no password or session."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key):
        self.api_key = api_key
        self.organization = api_key.organization

    def __str__(self):
        return f"API key {self.api_key.prefix}…"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        django_request = request._request
        if not getattr(django_request, "api_key_presented", False):
            return None
        api_key = getattr(django_request, "api_key", None)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid or was revoked.")
        return ApiClient(api_key), api_key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class HasOrganizationApiKey(permissions.BasePermission):
    message = "Send an API key as `Authorization: Bearer <key>`."

    def has_permission(self, request, view):
        return isinstance(request.user, ApiClient)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "nps_platform.api_auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An organization API key."}


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Requests per key, counted in the cache (Redis in production): one runaway integration
    cannot starve the others. The rate is settings.API_RATE_LIMIT."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if not isinstance(request.user, ApiClient):
            return None
        api_key = request.user.api_key
        # The prefix is random, so a recreated database never inherits an old key's count.
        return self.cache_format % {"scope": self.scope, "ident": f"{api_key.pk}-{api_key.prefix}"}
