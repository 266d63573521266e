"""The demo queue: after a year of answers, seed_followups leaves some new, some in
progress, a handful overdue, and many closed with outcomes over the year."""

import io
import random
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils.timezone import now
from django_scopes import scope

from accounts import services as account_services
from followups.demo import OUTCOMES, seed_followups
from followups.models import OPEN_STATUSES, Activity, FollowUp
from responses.models import Response
from responses.services import responses_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def year_of_answers(org_a, alice, bob):
    """A small organization's year: 8 accounts, 24 contacts, 180 answers."""
    rng = random.Random(5)
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {
                    "external_id": f"A{n}",
                    "name": f"Account {n}",
                    "arr": 5000 * (n + 1) ** 2,
                    "owner_email": "bob@a.example" if n % 3 else "",
                    "signed_up_on": "2022-01-10",
                }
                for n in range(8)
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {
                    "email": f"person{n}@a{n % 8}.example",
                    "name": f"Person {n}",
                    "account_external_id": f"A{n % 8}",
                }
                for n in range(24)
            ],
        )
        items = []
        for n in range(180):
            contact = rng.randrange(24)
            # A dozen answers in the last two and a half days, the rest over the year.
            ago = (
                timedelta(hours=rng.uniform(1, 60))
                if n < 12
                else timedelta(days=rng.uniform(0, 364))
            )
            items.append(
                {
                    "email": f"person{contact}@a{contact % 8}.example",
                    "score": max(0, min(10, round(rng.gauss(7.5, 2.2)))),
                    "comment": rng.choice(["", "Too expensive", "Love it", "Slow reports"]),
                    "submitted_at": (now() - ago).isoformat(),
                    "external_id": f"demo-{n}",
                }
            )
        report = responses_record(organization=org_a, items=items, channel="email")
        assert report.count("error") == 0
        yield org_a


def test_it_leaves_a_realistic_queue(year_of_answers):
    org = year_of_answers
    out = io.StringIO()
    seed_followups(organization=org, stdout=out)
    assert "closed with outcomes" in out.getvalue()

    followups = list(FollowUp.objects.filter(organization=org).select_related("response"))
    assert len(followups) == Response.objects.filter(organization=org).count() == 180
    by_status = {}
    for followup in followups:
        by_status.setdefault(followup.status, []).append(followup)
    closed = by_status.get("closed", [])
    overdue = [f for f in followups if f.is_overdue]

    assert by_status.get("new"), "some new"
    assert by_status.get("in_progress"), "some in progress"
    assert len(overdue) >= 3, "a handful overdue"
    assert len(overdue) <= 15
    assert len(closed) >= 0.75 * len(followups), "many closed"

    moment = now()
    for followup in closed:
        assert followup.outcome, "every closed follow-up has an outcome"
        allowed = {outcome for outcome, _ in OUTCOMES[followup.response.category]}
        assert followup.outcome in allowed
        assert followup.response.submitted_at < followup.created_at
        assert followup.created_at < followup.first_contact_at < followup.closed_at < moment
    # Closed over the year, not all today.
    assert len({f.closed_at.strftime("%Y-%m") for f in closed}) >= 8
    # Nearly everything older than three weeks was worked to a close.
    old = [f for f in followups if moment - f.response.submitted_at > timedelta(days=21)]
    assert sum(f.status == "closed" for f in old) >= 0.97 * len(old)
    assert all(f.status in OPEN_STATUSES and not f.outcome for f in by_status.get("new", []))


def test_it_logs_the_history_of_the_closed_ones(year_of_answers):
    org = year_of_answers
    seed_followups(organization=org, stdout=io.StringIO())
    closed = FollowUp.objects.filter(organization=org, status="closed")
    for followup in closed:
        log = list(followup.activities.order_by("created_at", "id"))
        kinds = [a.kind for a in log]
        assert kinds[0] == "created"
        assert kinds[-1] == "closed"
        assert "email" in kinds or "call" in kinds
        assert log[-1].created_at == followup.closed_at
        assert log[-1].actor_id is not None
    kinds = set(
        Activity.objects.filter(organization=org, followup__status="closed").values_list(
            "kind", flat=True
        )
    )
    assert {"created", "email", "call", "closed"} <= kinds
    assert not Activity.objects.filter(organization=org, created_at__gt=now()).exists()
    assert not FollowUp.objects.filter(
        organization=org, first_contact_at__gt=F("closed_at")
    ).exists()


def test_it_opens_one_followup_per_response_and_can_run_again(year_of_answers):
    org = year_of_answers
    seed_followups(organization=org, stdout=io.StringIO())
    closed = dict(
        FollowUp.objects.filter(organization=org, status="closed").values_list("pk", "outcome")
    )
    seed_followups(organization=org, stdout=io.StringIO())
    assert FollowUp.objects.filter(organization=org).count() == 180
    after = dict(
        FollowUp.objects.filter(organization=org, pk__in=list(closed)).values_list("pk", "outcome")
    )
    assert after == closed, "a second seed leaves worked follow-ups alone"
    assert Activity.objects.filter(organization=org, kind="created").count() == 180
