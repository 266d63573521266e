"""The task pipeline on its real parts: a Celery worker consuming from Redis.

Runs when REDIS_URL is set (always under .ci/run); skipped with a reason otherwise.
"""

import os
import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from django.db import transaction
from django_scopes import get_scope

from nps_platform.celery import app as celery_app
from nps_platform.celery import tenant_task
from nps_platform.models import ApiKey
from tests.factories import make_api_key

pytestmark = [
    pytest.mark.redis_worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set"),
]


@tenant_task(name="tests.record_visible_api_keys")
def record_visible_api_keys(organization_id, marker):
    """Writes what the task sees in its scope: the organization and its API keys."""
    cache.set(
        f"probe:{marker}",
        {
            "scope": get_scope().get("organization"),
            "keys": sorted(ApiKey.objects.values_list("name", flat=True)),
        },
        timeout=300,
    )


def wait_for(key, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cache.get(key)
        if value is not None:
            return value
        time.sleep(0.05)
    return None


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


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_task_enqueued_on_commit_in_its_tenants_scope(redis_worker, org_a, org_b):
    make_api_key(org_a, name="key of A")
    make_api_key(org_b, name="key of B")
    marker = uuid.uuid4().hex
    with transaction.atomic():
        record_visible_api_keys.delay_on_commit(org_a.id, marker)
        # Nothing is sent before the commit.
        time.sleep(0.3)
        assert cache.get(f"probe:{marker}") is None
    seen = wait_for(f"probe:{marker}")
    assert seen == {"scope": org_a.id, "keys": ["key of A"]}


@pytest.mark.django_db(transaction=True)
def test_it_enqueues_nothing_when_the_transaction_rolls_back(redis_worker, org_a):
    rolled_back, committed = uuid.uuid4().hex, uuid.uuid4().hex

    def enqueue_then_fail():
        with transaction.atomic():
            record_visible_api_keys.delay_on_commit(org_a.id, rolled_back)
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()
    with transaction.atomic():
        record_visible_api_keys.delay_on_commit(org_a.id, committed)
    # One solo worker takes its queue in order: once the later task ran, the earlier one
    # would have run too, had it been sent.
    assert wait_for(f"probe:{committed}") is not None
    assert cache.get(f"probe:{rolled_back}") is None
