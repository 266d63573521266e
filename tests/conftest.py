"""Shared fixtures: alice (admin of org A), bob (CS manager in A), carol (exec in A),
and mallory (admin of org B, the outsider)."""

import os
from urllib.parse import urlsplit

import pytest
from celery._state import _set_task_join_will_block
from django.conf import settings as django_settings
from django.test.utils import override_settings
from django_scopes import scopes_disabled

from nps_platform.celery import app as celery_app
from nps_platform.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, make_api_key


@pytest.fixture(autouse=True, scope="session")
def _a_cache_per_test_process():
    """On Redis, each test process (xdist worker) caches in a Redis database of its own, so
    a test's cache.clear() (FLUSHDB) never wipes another process's rate-limit counters, or
    the broker's queues, which stay in REDIS_URL's own database."""
    cache = django_settings.CACHES["default"]
    if not cache["BACKEND"].endswith("RedisCache"):
        yield
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = 1 + int(worker.removeprefix("gw") or 0)
    location = urlsplit(cache["LOCATION"])._replace(path=f"/{index}").geturl()
    with override_settings(CACHES={"default": {**cache, "LOCATION": location}}):
        yield


@pytest.fixture(autouse=True)
def _fast_and_in_process(settings, request, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = str(tmp_path / "media")  # uploads never land in the checkout
    settings.SECURE_SSL_REDIRECT = False
    # Ordinary tests run tasks in-process even when REDIS_URL is set (as under CI); the
    # tests marked redis_worker switch this off and use a real worker.
    eager = request.node.get_closest_marker("redis_worker") is None
    if eager:
        # A real worker started earlier in this process (start_worker) leaves Celery
        # believing it runs inside a task, which refuses an eager result's .get().
        _set_task_join_will_block(False)
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def unscoped():
    """For assertions that read tenant rows directly from a test."""
    with scopes_disabled():
        yield


@pytest.fixture
def org_a(db):
    return OrganizationFactory(name="Acme A", slug="acme-a")


@pytest.fixture
def org_b(db):
    return OrganizationFactory(name="Borealis B", slug="borealis-b")


def _member(org, email, name, role):
    return MembershipFactory(
        organization=org, user=UserFactory(email=email, name=name), role=role
    ).user


@pytest.fixture
def alice(org_a):
    return _member(org_a, "alice@a.example", "Alice Admin", Role.ADMIN)


@pytest.fixture
def bob(org_a):
    return _member(org_a, "bob@a.example", "Bob Manager", Role.CS_MANAGER)


@pytest.fixture
def carol(org_a):
    return _member(org_a, "carol@a.example", "Carol Exec", Role.EXEC)


@pytest.fixture
def mallory(org_b):
    return _member(org_b, "mallory@b.example", "Mallory Outsider", Role.ADMIN)


@pytest.fixture
def api_key_a(org_a):
    """(ApiKey, raw key) of org A."""
    return make_api_key(org_a, name="CRM sync A")


@pytest.fixture
def api_key_b(org_b):
    return make_api_key(org_b, name="CRM sync B")


def client_for(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def as_alice(client, alice):
    return client_for(client, alice)


@pytest.fixture
def api(client):
    """A client that sends `Authorization: Bearer <key>` on every call."""

    class ApiClient:
        def __init__(self):
            self.key = None

        def _headers(self, extra):
            headers = dict(extra or {})
            if self.key is not None:
                headers["Authorization"] = f"Bearer {self.key}"
            return headers

        def get(self, path, headers=None, **kwargs):
            return client.get(path, headers=self._headers(headers), **kwargs)

        def post(self, path, data=None, headers=None, **kwargs):
            return client.post(
                path,
                data,
                content_type="application/json",
                headers=self._headers(headers),
                **kwargs,
            )

        def patch(self, path, data=None, headers=None, **kwargs):
            return client.patch(
                path,
                data,
                content_type="application/json",
                headers=self._headers(headers),
                **kwargs,
            )

        def delete(self, path, headers=None, **kwargs):
            return client.delete(path, headers=self._headers(headers), **kwargs)

    return ApiClient()
