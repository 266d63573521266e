"""API authentication: `Authorization: Bearer <key>` names the organization.

TenantMiddleware has already matched the key and entered the tenant's scope; these classes
turn its finding into DRF's answer: 401 JSON for a missing, unknown or revoked key.
"""

import threading
import time
from dataclasses import dataclass

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from django.utils.connection import ConnectionProxy
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from nps_platform import broker


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
    cannot starve the others. The rate is settings.API_RATE_LIMIT.

    A counter per key and window (the window opens with the key's first request and lasts
    the rate's period): on Redis one round trip, INCRBY and EXPIRE NX and TTL in a pipeline,
    on one client shared by the process, instead of reading and rewriting a list of every
    request's time. Far below its limit a key's requests are counted in the process and sent
    in one INCRBY every LOCAL_BATCH requests or LOCAL_SECONDS (see _count_in_window); near
    it, every request is counted in Redis, so the 429 comes at the same request as before."""

    scope = "api_key"
    # Not the name the former list of request times had: a counter never meets one.
    cache_format = "throttle_%(scope)s_%(ident)s_count"

    def get_cache_key(self, request, view):
        if not isinstance(request.user, ApiClient):
            return None
        api_key = request.user.api_key
        # The prefix is random, so a recreated database never inherits an old key's count.
        return self.cache_format % {"scope": self.scope, "ident": f"{api_key.pk}-{api_key.prefix}"}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        count, self.seconds_left = _count_in_window(
            self.cache, key, self.duration, self.num_requests
        )
        return count <= self.num_requests

    def wait(self):
        return max(1, self.seconds_left)


# A key far below its limit (more than LOCAL_MARGIN of it left, and at least
# LOCAL_MARGIN_MIN requests) is counted in the process between round trips to Redis: at most
# LOCAL_BATCH requests or LOCAL_SECONDS apart. Each process holds fewer than LOCAL_BATCH
# requests Redis has not heard of yet, so the margin keeps several processes together from
# passing the limit before they count in Redis request by request.
LOCAL_BATCH = 20
LOCAL_SECONDS = 0.5
LOCAL_MARGIN = 0.1
LOCAL_MARGIN_MIN = 4 * LOCAL_BATCH


@dataclass
class _LocalCount:
    known: int  # the window's count as Redis last answered it
    pending: int  # requests counted here since, not yet sent
    synced_at: float  # time.monotonic() of that answer
    window_ends: float


_local_counts: dict[str, _LocalCount] = {}
_local_counts_lock = threading.Lock()


def _count_in_window(cache, key: str, seconds: int, limit: int) -> tuple[int, int]:
    """Adds one to the counter `key` that lives `seconds` from its first count; returns the
    new count and the seconds left in its window."""
    if isinstance(cache, ConnectionProxy):  # django.core.cache.cache: this thread's backend
        cache = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(cache, RedisCache):
        return _count_in_redis(cache, cache.make_and_validate_key(key), seconds, limit)
    for _ in range(3):
        cache.add(key, 0, seconds)
        try:
            return cache.incr(key), seconds
        except ValueError:  # expired between add and incr
            continue
    return 1, seconds


def _count_in_redis(cache, name: str, seconds: int, limit: int) -> tuple[int, int]:
    """_count_in_window on Redis: in the process while the key is far below `limit`, else
    (and at least every LOCAL_BATCH requests or LOCAL_SECONDS) one round trip that sends
    what the process counted meanwhile."""
    moment = time.monotonic()
    margin = max(int(limit * LOCAL_MARGIN), LOCAL_MARGIN_MIN)
    with _local_counts_lock:
        local = _local_counts.get(name)
        if local is not None and moment >= local.window_ends:
            local = None  # its window is over: what it held belonged to that one
        if (
            local is not None
            and moment - local.synced_at < LOCAL_SECONDS
            and local.pending + 1 < LOCAL_BATCH
            and local.known + local.pending + 1 <= limit - margin
        ):
            local.pending += 1
            return local.known + local.pending, max(1, int(local.window_ends - moment))
        sending = 1 + (local.pending if local is not None else 0)
        if local is not None:
            local.pending = 0
    pipe = broker.redis_client(cache._servers[0]).pipeline(transaction=False)
    pipe.incrby(name, sending)
    pipe.expire(name, seconds, nx=True)
    pipe.ttl(name)
    count, _, ttl = pipe.execute()
    ttl = ttl if ttl > 0 else seconds
    with _local_counts_lock:
        local = _local_counts.get(name)
        if local is None or local.window_ends <= moment:
            _local_counts[name] = _LocalCount(count, 0, moment, moment + ttl)
        else:  # keep what other threads counted here while this answer was on its way
            local.known = max(local.known, count)
            local.synced_at, local.window_ends = moment, moment + ttl
    return count, ttl
