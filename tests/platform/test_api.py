import time

import pytest
import yaml
from django.urls import reverse
from django.utils import timezone
from openapi_spec_validator import validate

from nps_platform import services
from nps_platform.models import ApiKey

pytestmark = pytest.mark.django_db


def test_it_returns_the_keys_organization(api, api_key_a):
    api.key = api_key_a[1]
    response = api.get(reverse("api:me"))
    assert response.status_code == 200
    assert response.json()["organization"] == {
        "slug": "acme-a",
        "name": "Acme A",
        "timezone": "UTC",
        "currency": "USD",
    }
    assert response.json()["api_key"]["prefix"] == api_key_a[0].prefix


def test_it_answers_401_json_without_a_key(api, db):
    response = api.get(reverse("api:me"))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "not_authenticated"
    assert "Bearer" in response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer nps_not-a-real-key", "Bearer ", "Bearer something-else", "Token nps_abc"],
)
def test_it_answers_401_json_to_a_bad_key(client, api_key_a, header):
    response = client.get(reverse("api:me"), headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response.json()["message"]


def test_it_answers_401_json_to_a_revoked_key(api, api_key_a, org_a, unscoped):
    services.api_key_revoke(organization=org_a, api_key=api_key_a[0])
    api.key = api_key_a[1]
    response = api.get(reverse("api:me"))
    assert response.status_code == 401
    assert response.json() == {
        "error": "not_authenticated",
        "message": "The API key is not valid or was revoked.",
        "fields": {},
    }


def test_it_does_not_accept_a_browser_session_on_the_api(as_alice):
    assert as_alice.get(reverse("api:me")).status_code == 401


def test_it_records_when_a_key_was_last_used(api, api_key_a):
    key, raw = api_key_a
    assert key.last_used_at is None
    api.key = raw
    api.get(reverse("api:me"))
    key.refresh_from_db()
    first_use = key.last_used_at
    assert first_use is not None
    assert (timezone.now() - first_use).total_seconds() < 60
    # A second call within the minute does not write again.
    api.get(reverse("api:me"))
    key.refresh_from_db()
    assert key.last_used_at == first_use


def test_it_answers_json_404_for_an_unknown_api_path(api, api_key_a):
    api.key = api_key_a[1]
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_it_publishes_a_valid_openapi_3_schema(client, db):
    response = client.get(reverse("api:schema"))
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    validate(schema)
    assert "/api/v1/me" in schema["paths"]
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_it_serves_the_api_docs_page_without_a_cdn(client, db):
    response = client.get(reverse("api:docs"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "swagger-ui" in body
    assert "cdn.jsdelivr" not in body
    assert "unpkg.com" not in body


def test_it_throttles_a_runaway_key_with_a_json_429(api, api_key_a, monkeypatch):
    from django.core.cache import cache

    from nps_platform.api_auth import ApiKeyRateThrottle

    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "3/min", raising=False)
    cache.delete(f"throttle_api_key_{api_key_a[0].pk}-{api_key_a[0].prefix}_count")
    api.key = api_key_a[1]
    statuses = [api.get(reverse("api:me")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api.get(reverse("api:me"))
    assert response.json()["error"] == "throttled"
    assert int(response["Retry-After"]) > 0


def _counted_in_redis(api_key) -> int | None:
    """What Redis holds for the key's rate-limit window; None with another cache."""
    from django.core.cache import cache

    if not api_auth_uses_redis():
        return None
    return cache.get(f"throttle_api_key_{api_key.pk}-{api_key.prefix}_count")


def api_auth_uses_redis() -> bool:
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    return isinstance(caches["default"], RedisCache)


def test_it_counts_a_key_far_below_its_limit_in_the_process_and_sends_it_all(
    api, api_key_a, monkeypatch
):
    from nps_platform import api_auth
    from nps_platform.api_auth import ApiKeyRateThrottle

    if not api_auth_uses_redis():
        pytest.skip("counted in the process only with Redis as the cache")
    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "1000/min", raising=False)
    api.key = api_key_a[1]
    statuses = [api.get(reverse("api:me")).status_code for _ in range(45)]
    assert statuses == [200] * 45
    # Sent at the 1st, 21st and 41st request: four are still counted here only.
    assert _counted_in_redis(api_key_a[0]) == 41
    later = time.monotonic() + api_auth.LOCAL_SECONDS + 0.1
    monkeypatch.setattr(api_auth.time, "monotonic", lambda: later)
    assert api.get(reverse("api:me")).status_code == 200
    assert _counted_in_redis(api_key_a[0]) == 46  # nothing lost


def test_it_refuses_the_same_request_as_before_near_the_limit(api, api_key_a, monkeypatch):
    from nps_platform.api_auth import ApiKeyRateThrottle

    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "100/min", raising=False)
    api.key = api_key_a[1]
    statuses = [api.get(reverse("api:me")).status_code for _ in range(101)]
    assert statuses == [200] * 100 + [429]
    assert _counted_in_redis(api_key_a[0]) in (None, 101)


def test_it_refuses_a_key_revoked_in_this_process_at_once(api, api_key_a, org_a, unscoped):
    api.key = api_key_a[1]
    assert api.get(reverse("api:me")).status_code == 200  # now remembered as valid
    services.api_key_revoke(organization=org_a, api_key=api_key_a[0])
    assert api.get(reverse("api:me")).status_code == 401


def test_it_refuses_a_key_revoked_elsewhere_within_seconds(api, api_key_a, unscoped, monkeypatch):
    from nps_platform import middleware

    api.key = api_key_a[1]
    assert api.get(reverse("api:me")).status_code == 200
    # Revoked by another process: this one hears nothing and trusts its memory a while.
    ApiKey.objects.filter(pk=api_key_a[0].pk).update(revoked_at=timezone.now())
    assert api.get(reverse("api:me")).status_code == 200
    later = time.monotonic() + middleware.KEY_CACHE_SECONDS + 1
    monkeypatch.setattr(middleware.time, "monotonic", lambda: later)
    assert api.get(reverse("api:me")).status_code == 401


def test_it_counts_each_keys_requests_separately(api, api_key_a, org_a, monkeypatch):
    from nps_platform.api_auth import ApiKeyRateThrottle

    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "2/min", raising=False)
    other = services.api_key_create(organization=org_a, name="other", created_by=None).raw_key
    api.key = api_key_a[1]
    assert [api.get(reverse("api:me")).status_code for _ in range(3)] == [200, 200, 429]
    api.key = other
    assert api.get(reverse("api:me")).status_code == 200
