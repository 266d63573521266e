"""Webhooks on their real parts: a response recorded through the API, a Celery worker
consuming from Redis, and an HTTP receiver on 127.0.0.1 checking the signature.

Runs when REDIS_URL is set (always under .ci/run); skipped with a reason otherwise.
"""

import json
import os
import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from nps_platform.celery import app as celery_app
from responses import api as responses_api
from responses import webhooks
from responses.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from responses.services import response_record
from tests.responses.test_webhooks import Receiver, verify_standard_webhook

pytestmark = [
    pytest.mark.redis_worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set"),
]


@pytest.fixture
def redis_worker(settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, queues=[queue], shutdown_timeout=10
    ) as worker:
        yield worker
    celery_app.conf.task_default_queue = previous_queue


def wait_for_status(endpoint, status, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with scopes_disabled():
            delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first()
        if delivery is not None and delivery.status == status:
            return delivery
        time.sleep(0.05)
    return None


@pytest.mark.django_db(transaction=True)
def test_it_delivers_a_signed_webhook_through_a_real_worker(
    redis_worker, settings, org_a, api_key_a, api
):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[{"external_id": "acc-1", "name": "Initech", "arr": 90000}],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[{"email": "ann@initech.example", "account_external_id": "acc-1"}],
        )
    with Receiver() as receiver:
        with scopes_disabled():
            # Response events only: the follow-up engine's own events are tested apart.
            endpoint = WebhookEndpoint.objects.create(
                organization=org_a,
                url=receiver.url(),
                secret=webhooks.new_secret(),
                events=["response.created", "response.updated"],
            )
        item = {"email": "ann@initech.example", "score": 3, "comment": "Support never replied."}
        if hasattr(responses_api.ResponseListApi, "post"):
            api.key = api_key_a[1]
            answer = api.post("/api/v1/responses/", item)
            assert answer.status_code == 201, answer.content
        else:
            # The responses API is still a stub: record through the one service instead,
            # committed like a request would be.
            with scope(organization=org_a), transaction.atomic():
                response_record(organization=org_a, channel="api", **item)

        assert receiver.wait(1, timeout=30), "no webhook arrived"
        request = receiver.requests[0]
        payload = verify_standard_webhook(endpoint.secret, request["headers"], request["body"])
        assert payload["type"] == "response.created"
        assert payload["data"]["score"] == 3
        assert payload["data"]["comment"] == "Support never replied."
        assert payload["data"]["account"]["name"] == "Initech"
        delivery = wait_for_status(endpoint, DeliveryStatus.SUCCEEDED)
        assert delivery is not None
        assert (
            delivery.event_id == {k.lower(): v for k, v in request["headers"].items()}["webhook-id"]
        )
        assert delivery.attempts == 1
        assert json.loads(request["body"])["data"]["id"] == payload["data"]["id"]
        # Only one delivery, however many messages the pipeline produced.
        time.sleep(0.5)
        assert len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_it_retries_through_the_broker_until_the_endpoint_recovers(redis_worker, settings, org_a):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    with Receiver() as receiver:
        receiver.answers = [(500, {}), (200, {})]
        with scopes_disabled():
            # Response events only: the follow-up engine's own events are tested apart.
            endpoint = WebhookEndpoint.objects.create(
                organization=org_a,
                url=receiver.url(),
                secret=webhooks.new_secret(),
                events=["response.created", "response.updated"],
            )
        original = webhooks.RETRY_DELAYS
        webhooks.RETRY_DELAYS = (1, *original[1:])
        try:
            with scope(organization=org_a), transaction.atomic():
                webhooks.send_test_event(organization=org_a, endpoint=endpoint)
            assert receiver.wait(2, timeout=30), "the retry never came"
        finally:
            webhooks.RETRY_DELAYS = original
        delivery = wait_for_status(endpoint, DeliveryStatus.SUCCEEDED)
        assert delivery is not None
        assert delivery.attempts == 2
        ids = {r["headers"].get("webhook-id") for r in receiver.requests}
        assert ids == {delivery.event_id}
