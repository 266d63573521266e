"""Opening follow-ups on the real parts: PostgreSQL, Redis and a Celery worker.

A committed response enqueues `followups.open`; the same task delivered again (a retry, a
second message with the same id, a redelivery racing the first on another worker thread)
never makes a second follow-up or a second "created" entry.

The worker tests run on PostgreSQL with REDIS_URL set (skipped with a reason otherwise);
the receiver check runs everywhere.
"""

import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_failure, task_postrun
from django.conf import settings as django_settings
from django.db import transaction
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from followups import tasks
from followups.models import Activity, FollowUp
from nps_platform.celery import app as celery_app
from responses.services import response_record

real_worker = [
    pytest.mark.redis_worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set"),
    pytest.mark.skipif(
        "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
        reason="needs PostgreSQL (DATABASE_URL=postgres://…): concurrent inserts must meet "
        "the real unique constraint",
    ),
    pytest.mark.django_db(transaction=True),
]


def on_a_real_worker(test):
    for mark in reversed(real_worker):
        test = mark(test)
    return test


OPEN = tasks.open_followups.name


class Runs:
    """Counts `followups.open` runs finished by the in-process worker, and keeps failures."""

    def __init__(self):
        self.done = 0
        self.failures = []
        self._lock = threading.Lock()
        task_postrun.connect(self._finished, weak=False)
        task_failure.connect(self._failed, weak=False)

    def _finished(self, sender=None, **kwargs):
        if sender is not None and sender.name == OPEN:
            with self._lock:
                self.done += 1

    def _failed(self, sender=None, exception=None, **kwargs):
        if sender is not None and sender.name == OPEN:
            self.failures.append(repr(exception))

    def wait_for(self, count, timeout=60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.done >= count:
                return True
            time.sleep(0.05)
        return False

    def close(self):
        task_postrun.disconnect(self._finished)
        task_failure.disconnect(self._failed)


@pytest.fixture
def runs():
    counter = Runs()
    yield counter
    counter.close()


@pytest.fixture
def queue():
    """A queue of this test's own: nothing else consumes its messages."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = name
    yield name
    celery_app.conf.task_default_queue = previous


def worker(queue, *, pool="solo", concurrency=1):
    return start_worker(
        celery_app,
        pool=pool,
        concurrency=concurrency,
        perform_ping_check=False,
        queues=[queue],
        shutdown_timeout=20,
    )


@pytest.fixture
def customer(org_a, alice, bob):
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[{"external_id": "acc-1", "name": "Initech", "arr": 90000}],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {"email": "ann@initech.example", "name": "Ann Lee", "account_external_id": "acc-1"}
            ],
        )
    return org_a


def record(org, **item):
    """A response saved and committed, as a request would: its commit enqueues the task."""
    with scope(organization=org), transaction.atomic():
        response, _ = response_record(organization=org, channel="api", **item)
    return response


def assert_exactly_one_followup(org, response):
    with scopes_disabled():
        followups = list(FollowUp.objects.filter(response_id=response.pk))
        assert len(followups) == 1
        followup = followups[0]
        created = Activity.objects.filter(followup=followup, kind="created").count()
        assert created == 1
        assert Activity.objects.filter(organization=org).count() == 1
    assert followup.organization_id == org.pk
    assert followup.playbook == "recover"
    assert followup.draft_subject.startswith("About your feedback, Ann")
    assert "Hi Ann," in followup.draft_body
    assert "Support never replied" not in followup.draft_body  # a draft, not an echo
    assert "[[" not in followup.draft_body
    assert followup.assignee.email == "bob@a.example"
    return followup


@on_a_real_worker
def test_it_opens_one_followup_when_the_same_task_is_delivered_again(customer, queue, runs):
    with worker(queue):
        response = record(
            customer, email="ann@initech.example", score=2, comment="Support never replied."
        )
        # The commit's message, then the same task twice more with the same ids.
        tasks.open_followups.delay(customer.pk, [response.pk])
        tasks.open_followups.delay(customer.pk, [response.pk])
        assert runs.wait_for(3), f"only {runs.done} of 3 runs finished"
    assert runs.failures == []
    assert_exactly_one_followup(customer, response)


@on_a_real_worker
def test_it_opens_one_followup_when_duplicates_race_on_concurrent_workers(customer, queue, runs):
    # Everything is queued before the worker starts, so its four threads take the
    # messages at once: the same task (twice with one task id, as a broker redelivery
    # would, and twice more) races against the commit's own message.
    response = record(
        customer, email="ann@initech.example", score=2, comment="Support never replied."
    )
    task_id = uuid.uuid4().hex
    tasks.open_followups.apply_async((customer.pk, [response.pk]), task_id=task_id)
    tasks.open_followups.apply_async((customer.pk, [response.pk]), task_id=task_id)
    tasks.open_followups.delay(customer.pk, [response.pk])
    tasks.open_followups.delay(customer.pk, [response.pk])
    with worker(queue, pool="threads", concurrency=4):
        assert runs.wait_for(5), f"only {runs.done} of 5 runs finished"
    assert runs.failures == []
    assert_exactly_one_followup(customer, response)


def test_it_keeps_the_open_receiver_connected_when_debug_is_off():
    """The receiver that enqueues followups.open must outlive AppConfig.ready(). A closure
    connected weakly (Django's default) is collected as soon as ready() returns when DEBUG
    is off, as in production: then no response ever opens a follow-up."""
    code = (
        "import gc, django; django.setup(); gc.collect()\n"
        "from responses.events import response_recorded\n"
        "print([r.__qualname__ for r in response_recorded._live_receivers(None)[0]])"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nps_platform.settings",
        "DEBUG": "0",
        "SECRET_KEY": "test-only-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    result = subprocess.run(  # noqa: S603 - our interpreter, fixed code
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=django_settings.BASE_DIR,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "FollowupsConfig.ready.<locals>.open_on_record" in result.stdout, result.stdout
