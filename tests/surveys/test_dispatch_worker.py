"""Two real Celery workers racing the dispatcher over the same due invitations: each
invitation is claimed by compare-and-set, so each is sent exactly once.

Runs on PostgreSQL with REDIS_URL set (always under .ci/run); skipped with a reason
otherwise (SQLite serialises every writer, so it could not show a race).
"""

import os
import threading
import time
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from celery.contrib.testing.worker import start_worker
from django.core import mail
from django.db import connection, transaction
from django.utils.timezone import now
from django_scopes import scopes_disabled

from accounts.models import Account, Contact
from nps_platform.celery import app as celery_app
from surveys import emails, tasks
from surveys.models import Invitation, InvitationState
from tests.surveys.factories import ProgrammeFactory

pytestmark = [
    pytest.mark.redis_worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set"),
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="the race needs PostgreSQL (DATABASE_URL=postgres://…)",
    ),
]

DUE = 200


@pytest.fixture
def two_workers(settings):
    """One worker with two threads taking tasks from one queue: two dispatchers at once,
    each with its own database connection."""
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        queues=[queue],
        shutdown_timeout=20,
    ):
        yield
    celery_app.conf.task_default_queue = previous_queue


def wait_until_none_open(organization, timeout=90.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with scopes_disabled():
            left = Invitation.objects.filter(
                organization=organization,
                state__in=[InvitationState.PLANNED, InvitationState.SENDING],
            ).count()
        if not left:
            return 0
        time.sleep(0.1)
    return left


@pytest.mark.django_db(transaction=True)
def test_it_sends_each_invitation_once_when_two_workers_race(two_workers, org_a):
    assert connection.vendor == "postgresql"
    programme = ProgrammeFactory(survey__organization=org_a)
    due_at = now() - timedelta(minutes=1)
    with scopes_disabled(), transaction.atomic():
        accounts = Account.objects.bulk_create(
            Account(organization=org_a, external_id=f"acc-{n}", name=f"Customer {n}")
            for n in range(DUE // 4)
        )
        contacts = Contact.objects.bulk_create(
            Contact(
                organization=org_a, account=accounts[n % len(accounts)], email=f"c{n}@race.example"
            )
            for n in range(DUE)
        )
        invitations = Invitation.objects.bulk_create(
            Invitation(
                organization=org_a,
                programme=programme,
                survey=programme.survey,
                contact=contact,
                account_id=contact.account_id,
                planned_for=due_at,
            )
            for contact in contacts
        )
    expected = {invitation.pk for invitation in invitations}

    sends: list[tuple[int, str]] = []
    real_send = emails.invitation_send

    def recording_send(*, invitation, reminder=False):
        sends.append((invitation.pk, threading.current_thread().name))
        time.sleep(0.002)  # widen the window in which the other worker could pounce
        return real_send(invitation=invitation, reminder=reminder)

    with mock.patch("surveys.emails.invitation_send", side_effect=recording_send):
        # Several dispatchers at once over the same due invitations, in small batches so
        # that each re-enqueues itself while more are due.
        for _ in range(4):
            tasks.dispatch_due.delay(org_a.pk, 25)
        left = wait_until_none_open(org_a)
        time.sleep(0.5)  # any straggling task would have sent by now

    assert left == 0, f"{left} invitations still planned or sending"
    sent_ids = [invitation_id for invitation_id, _ in sends]
    assert len(sent_ids) == DUE
    assert set(sent_ids) == expected  # every invitation sent, each exactly once
    assert len({thread for _, thread in sends}) == 2, "both workers should have sent some"
    assert len(mail.outbox) == DUE
    recipients = [message.to[0] for message in mail.outbox]
    assert len(set(recipients)) == DUE
    with scopes_disabled():
        states = set(Invitation.objects.filter(organization=org_a).values_list("state", flat=True))
        assert states == {InvitationState.SENT}
        assert not Contact.objects.filter(organization=org_a, last_surveyed_at__isnull=True)
