"""The follow-up engine: playbooks, priority and its reasons, assignment, drafts, SLAs,
escalation, closing rules, and the guard against automated detractor emails."""

from datetime import date, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import now
from django_scopes import scope

from accounts import services as account_services
from accounts.models import Account
from followups import services
from followups.models import Activity, FollowUp, FollowUpSettings, MemberPause, Status
from nps_platform.models import Role
from responses.models import Response
from responses.services import response_record, responses_record
from tests.accounts.factories import SegmentFactory
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(org_a, alice, bob):
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {
                    "external_id": "big",
                    "name": "Megacorp",
                    "arr": 900000,
                    "plan": "enterprise",
                    "signed_up_on": "2023-03-14",
                    "renewal_date": str(date.today() + timedelta(days=40)),
                },
                {"external_id": "small", "name": "Tiny Shop", "arr": 1200, "plan": "starter"},
                {"external_id": "mid", "name": "Midco", "arr": 40000},
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {"email": "ann@mega.example", "name": "Ann Lee", "account_external_id": "big"},
                {"email": "tom@tiny.example", "name": "Tom Fox", "account_external_id": "small"},
                {"email": "mo@mid.example", "name": "Mo Diaz", "account_external_id": "mid"},
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="tickets",
            items=[
                {
                    "external_id": "T1",
                    "account_external_id": "big",
                    "subject": "Export keeps failing",
                    "status": "open",
                    "opened_at": (now() - timedelta(days=5)).isoformat(),
                }
            ],
        )
        yield org_a


def answer(org, email, score, comment="", when=None):
    response, _ = response_record(
        organization=org,
        channel="api",
        email=email,
        score=score,
        comment=comment,
        submitted_at=(when or now()).isoformat(),
    )
    return services.followup_open_for_response(organization=org, response_id=response.pk)


@pytest.mark.parametrize(
    ("score", "comment", "playbook"),
    [
        (2, "Too expensive", "recover"),
        (6, "Meh", "recover"),
        (7, "Fine", "nudge"),
        (10, "Love it", "thank"),
        (3, "", "ask_why"),
        (9, "", "ask_why"),
    ],
)
def test_it_gives_every_group_a_playbook(org, score, comment, playbook):
    assert answer(org, "mo@mid.example", score, comment).playbook == playbook


def test_it_ranks_a_danger_zone_detractor_of_a_large_account_above_a_small_six(org):
    big = answer(org, "ann@mega.example", 2, "Broken exports again")
    small = answer(org, "tom@tiny.example", 6, "Could be better")
    assert big.priority > small.priority
    reasons = [r["reason"] for r in big.priority_reasons]
    assert "Danger zone (0–3)" in reasons
    assert any(r.startswith("ARR in the top") for r in reasons)
    assert "1 open support ticket" in reasons
    assert any(r.startswith("Renewal in") for r in reasons)
    assert sum(r["points"] for r in big.priority_reasons) == big.priority
    ordered = list(FollowUp.objects.order_by("-priority").values_list("pk", flat=True))
    assert ordered[0] == big.pk


def test_it_explains_a_score_drop(org):
    answer(org, "mo@mid.example", 9, "Great", when=now() - timedelta(days=100))
    dropped = answer(org, "mo@mid.example", 4, "Worse lately")
    assert {"reason": "Score dropped from 9 to 4", "points": 10} in dropped.priority_reasons


def test_it_is_idempotent_per_response(org):
    first = answer(org, "mo@mid.example", 3, "Bad")
    again = services.followup_open_for_response(organization=org, response_id=first.response_id)
    assert again.pk == first.pk
    assert FollowUp.objects.count() == 1
    assert Activity.objects.filter(kind="created").count() == 1


def test_it_replans_an_open_followup_when_the_score_changes(org):
    response, _ = response_record(
        organization=org,
        channel="api",
        email="mo@mid.example",
        score=3,
        comment="x",
        external_id="r1",
    )
    followup = services.followup_open_for_response(organization=org, response_id=response.pk)
    assert followup.playbook == "recover"
    response_record(
        organization=org,
        channel="api",
        email="mo@mid.example",
        score=10,
        comment="x",
        external_id="r1",
    )
    followup = services.followup_open_for_response(organization=org, response_id=response.pk)
    assert followup.playbook == "thank"
    assert Activity.objects.filter(kind="replanned").count() == 1


def test_it_assigns_the_account_owner_first_then_rules_then_the_least_loaded(org, alice, bob):
    from accounts.models import Account

    Account.objects.filter(external_id="big").update(owner=alice)
    assert answer(org, "ann@mega.example", 3, "x").assignee == alice

    carl = UserFactory(email="carl@a.example")
    MembershipFactory(organization=org, user=carl, role=Role.CS_MANAGER)
    segment = SegmentFactory(
        organization=org,
        rules={"match": "all", "conditions": [{"field": "plan", "op": "eq", "value": "starter"}]},
    )
    services.AssignmentRule.objects.create(organization=org, segment=segment, assignee=carl)
    assert answer(org, "tom@tiny.example", 5, "x").assignee == carl

    # Midco has no owner and no rule: the CS manager with fewer open follow-ups (bob, 0).
    assert answer(org, "mo@mid.example", 5, "x").assignee == bob


def test_it_skips_a_paused_person(org, alice, bob):
    from accounts.models import Account

    Account.objects.filter(external_id="big").update(owner=bob)
    MemberPause.objects.create(organization=org, user=bob)
    followup = answer(org, "ann@mega.example", 3, "x")
    assert followup.assignee != bob


def test_it_personalises_the_draft_from_the_account_context(org, alice):
    answer(org, "ann@mega.example", 9, "Great", when=now() - timedelta(days=120))
    followup = answer(org, "ann@mega.example", 3, "Way too expensive and the export is broken")
    body = followup.draft_body
    assert "Hi Ann," in body
    assert "since March 2023" in body
    assert "your score went from 9 to 3" in body
    assert "Export keeps failing" in body
    assert "pricing" in body
    assert "[[" not in body
    assert "{{" not in body
    assert "{%" not in body


def test_it_asks_an_open_question_when_there_is_no_comment(org):
    followup = answer(org, "ann@mega.example", 5)
    assert followup.playbook == "ask_why"
    assert "open support request" in followup.draft_body
    assert "Export keeps failing" in followup.draft_body


def test_it_never_auto_sends_to_a_detractor(org):
    FollowUpSettings.objects.create(organization=org, auto_send_thanks=True)
    detractor = answer(org, "ann@mega.example", 2, "Bad")
    assert mail.outbox == []
    with pytest.raises(services.NotAllowed):
        services.followup_send_email(
            organization=org,
            followup=detractor,
            actor=None,
            subject="x",
            body="y",
            automatic=True,
        )
    promoter = answer(org, "tom@tiny.example", 10, "Love it")
    assert [m.to for m in mail.outbox] == [["tom@tiny.example"]]
    assert FollowUp.objects.get(pk=promoter.pk).first_contact_at is not None


def test_it_sets_due_dates_from_the_playbook_sla(org):
    with time_machine.travel("2026-06-01 10:00Z", tick=False):
        recover = answer(org, "ann@mega.example", 2, "Bad")
        thank = answer(org, "tom@tiny.example", 10, "Great")
    assert recover.due_at.isoformat() == "2026-06-02T10:00:00+00:00"
    assert thank.due_at.isoformat() == "2026-06-04T10:00:00+00:00"


def test_it_escalates_an_overdue_followup_once(org, alice):
    with time_machine.travel("2026-06-01 10:00Z", tick=False):
        followup = answer(org, "ann@mega.example", 2, "Bad")
    mail.outbox.clear()
    with time_machine.travel("2026-06-05 10:00Z", tick=False):
        assert services.followups_escalate_overdue(organization=org) == [followup.pk]
        assert services.followups_escalate_overdue(organization=org) == []
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@a.example"]


def test_it_requires_an_outcome_to_close(org, bob):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    with pytest.raises(ValidationError, match="outcome"):
        services.followup_close(organization=org, followup=followup, actor=bob, outcome="")
    with pytest.raises(ValidationError):
        services.followup_change_status(
            organization=org, followup=followup, actor=bob, status=Status.CLOSED
        )
    services.followup_close(organization=org, followup=followup, actor=bob, outcome="resolved")
    followup.refresh_from_db()
    assert (followup.status, followup.outcome) == ("closed", "resolved")
    assert followup.closed_at is not None


def test_it_sends_the_edited_draft_from_the_assignee_and_logs_it(org, bob):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    services.followup_send_email(
        organization=org, followup=followup, actor=bob, subject="Hello Mo", body="Edited text"
    )
    message = mail.outbox[-1]
    assert message.body == "Edited text"
    assert message.to == ["mo@mid.example"]
    followup.refresh_from_db()
    assert followup.status == "waiting"
    assert followup.draft_edited
    assert Activity.objects.filter(followup=followup, kind="email").exists()


def test_it_sends_followup_events_to_webhooks(org, bob, django_capture_on_commit_callbacks):
    from responses.models import WebhookDelivery, WebhookEndpoint

    WebhookEndpoint.objects.create(
        organization=org,
        url="https://hooks.example.com/nps",
        events=["followup.created", "followup.status_changed", "followup.closed"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        followup = answer(org, "mo@mid.example", 4, "Hmm")
    with django_capture_on_commit_callbacks(execute=True):
        services.followup_change_status(
            organization=org, followup=followup, actor=bob, status="in_progress"
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.followup_close(organization=org, followup=followup, actor=bob, outcome="resolved")
    deliveries = WebhookDelivery.objects.order_by("pk")
    assert [d.event_type for d in deliveries] == [
        "followup.created",
        "followup.status_changed",
        "followup.closed",
    ]
    assert deliveries.last().payload["data"]["outcome"] == "resolved"


# --- A batch, as the worker opens it ---------------------------------------------------------


def record(org, *items):
    report = responses_record(organization=org, channel="api", items=list(items))
    return [r.response.pk for r in report.results]


def test_it_opens_a_batch_with_the_same_rules_as_one_by_one(org, alice):
    Account.objects.filter(external_id="big").update(owner=alice)
    record(
        org,
        {
            "email": "ann@mega.example",
            "score": 9,
            "comment": "Great",
            "submitted_at": (now() - timedelta(days=30)).isoformat(),
        },
    )
    ids = record(
        org,
        {"email": "ann@mega.example", "score": 2, "comment": "Way too expensive, export broken"},
        {"email": "tom@tiny.example", "score": 10, "comment": "Love it"},
        {"email": "mo@mid.example", "score": 8},
    )
    opened = services.followups_open_for_responses(organization=org, response_ids=ids)
    assert opened == sorted(
        FollowUp.objects.filter(response_id__in=ids).values_list("pk", flat=True)
    )
    ann, tom, mo = (FollowUp.objects.get(response_id=pk) for pk in ids)
    assert (ann.playbook, tom.playbook, mo.playbook) == ("recover", "thank", "ask_why")
    assert ann.assignee == alice
    reasons = [r["reason"] for r in ann.priority_reasons]
    assert "Score dropped from 9 to 2" in reasons
    assert "ARR in the top 33% of accounts" in reasons  # the largest of three
    assert "1 open support ticket" in reasons
    assert sum(r["points"] for r in ann.priority_reasons) == ann.priority
    assert "your score went from 9 to 2" in ann.draft_body
    assert ann.due_at == Response.objects.get(pk=ids[0]).submitted_at + timedelta(hours=24)
    assert [a.kind for a in Activity.objects.filter(followup=ann)] == ["created"]
    assert Activity.objects.get(followup=tom).message == (
        "Opened as Thank a promoter and ask for advocacy, assigned to bob@a.example"
    )
    # Opening again (a redelivered task) changes nothing.
    assert services.followups_open_for_responses(organization=org, response_ids=ids) == opened
    assert FollowUp.objects.count() == 3
    assert Activity.objects.filter(kind="created").count() == 3


def test_it_drafts_from_the_comment_themes_before_the_analysis_ran(org):
    ids = record(org, {"email": "ann@mega.example", "score": 3, "comment": "Way too expensive"})
    services.followups_open_for_responses(organization=org, response_ids=ids)
    followup = FollowUp.objects.get(response_id=ids[0])
    assert "You mentioned pricing" in followup.draft_body
    # The analysis stays the analysis task's: opening the follow-up wrote none of it.
    response = Response.objects.get(pk=ids[0])
    assert (response.analyzed_hash, response.themes, response.sentiment) == ("", [], None)


def test_it_opens_a_batch_in_a_fixed_number_of_queries(org):
    services.settings_for(org)  # made on first use: not part of the count
    few = record(org, {"email": "mo@mid.example", "score": 5, "comment": "Slow"})
    many = record(
        org,
        *(
            {"email": email, "score": score, "comment": comment}
            for email in ("ann@mega.example", "tom@tiny.example", "mo@mid.example")
            for score, comment in ((2, "Too expensive"), (9, ""), (7, "Fine"))
        ),
    )
    with CaptureQueriesContext(connection) as one:
        services.followups_open_for_responses(organization=org, response_ids=few)
    with CaptureQueriesContext(connection) as nine:
        services.followups_open_for_responses(organization=org, response_ids=many)
    assert len(nine) == len(one)
    assert FollowUp.objects.exclude(draft_body="").count() == 10
