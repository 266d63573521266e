"""Fixtures for the Delighted-compatible API: the official `delighted` client pointed at a
live server, and a Django test client that sends the key as HTTP Basic."""

import base64
import warnings

import pytest
from django.core.cache import cache

from nps_platform.api_auth import ApiKeyRateThrottle
from tests.surveys.factories import ProgrammeFactory, SurveyFactory

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # the package announces its own sunset
    import delighted


@pytest.fixture
def dl(live_server, api_key_a):
    """The official client, as an integration configures it, against our live server."""
    previous = (delighted.api_key, delighted.api_base_url, delighted.shared_client)
    delighted.api_key = api_key_a[1]
    delighted.api_base_url = live_server.url + "/delighted/v1/"
    delighted.shared_client = None
    cache.delete(f"throttle_api_key_{api_key_a[0].pk}-{api_key_a[0].prefix}")
    yield delighted
    delighted.api_key, delighted.api_base_url, delighted.shared_client = previous


def basic(key: str, colon: bool = True) -> dict:
    raw = f"{key}:" if colon else key
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


@pytest.fixture
def basic_api(client, api_key_a):
    """A Django test client sending org A's key as Delighted's clients do (`key:`)."""

    class BasicClient:
        headers = basic(api_key_a[1])

        def get(self, path, data=None, **kwargs):
            return client.get(path, data, headers=self.headers, **kwargs)

        def post(self, path, data=None, headers=None, **kwargs):
            return client.post(
                path,
                data,
                content_type="application/json",
                headers={**self.headers, **(headers or {})},
                **kwargs,
            )

        def put(self, path, data=None, **kwargs):
            return client.put(
                path, data, content_type="application/json", headers=self.headers, **kwargs
            )

        def delete(self, path, data=None, **kwargs):
            return client.delete(
                path, data or {}, content_type="application/json", headers=self.headers, **kwargs
            )

    cache.delete(f"throttle_api_key_{api_key_a[0].pk}-{api_key_a[0].prefix}")
    return BasicClient()


@pytest.fixture
def email_programme(org_a):
    survey = SurveyFactory(organization=org_a, name="Relationship NPS")
    return ProgrammeFactory(survey=survey, name="Email NPS", channel_email=True, every_days=90)


@pytest.fixture
def slow_throttle(monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "2/min", raising=False)
