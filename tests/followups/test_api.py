"""The follow-ups REST API: the queue as a filtered keyset-paginated list in a constant
number of queries, one follow-up with its activity log, and PATCH with the page's rules
(closing needs an outcome, only members are assigned, no way to send email), isolation."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from accounts.models import Account
from followups import services
from followups.models import Activity, FollowUp, FollowUpSettings
from nps_platform.api_auth import ApiKeyRateThrottle
from responses.analysis import responses_analyze
from responses.services import response_record, responses_record

pytestmark = pytest.mark.django_db

LIST = "/api/v1/followups/"


def detail(pk) -> str:
    return f"/api/v1/followups/{pk}"


@pytest.fixture(autouse=True)
def _no_rate_limit(monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "1000000/min", raising=False)


@pytest.fixture
def org(org_a, alice, bob, carol):
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {"external_id": "big", "name": "Megacorp", "arr": 900000, "owner_email": ""},
                {"external_id": "small", "name": "Tiny Shop", "arr": 1200},
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
    return org_a


@pytest.fixture
def as_a(api, api_key_a):
    api.key = api_key_a[1]
    return api


def answer(org, email, score, comment="") -> FollowUp:
    with scope(organization=org):
        response, _ = response_record(
            organization=org, channel="api", email=email, score=score, comment=comment
        )
        # The worker analyses the comment too (after the follow-up opens; the API shows
        # the stored themes).
        responses_analyze(organization=org, response_ids=[response.pk])
        return services.followup_open_for_response(organization=org, response_id=response.pk)


def many(org, n, *, email="mo@mid.example", score=7) -> list[FollowUp]:
    """n follow-ups through the one service (responses recorded in one batch)."""
    with scope(organization=org):
        report = responses_record(
            organization=org,
            channel="api",
            items=[{"email": email, "score": score, "comment": f"Fine {i}"} for i in range(n)],
        )
        return [
            services.followup_open_for_response(organization=org, response_id=r.response.pk)
            for r in report.results
        ]


def fresh(followup) -> FollowUp:
    with scopes_disabled():
        return FollowUp.objects.select_related("assignee").get(pk=followup.pk)


def kinds(followup) -> list[str]:
    with scopes_disabled():
        return list(Activity.objects.filter(followup=followup).values_list("kind", flat=True))


def ids_of(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- The list ---------------------------------------------------------------------------------


def test_it_lists_followups_highest_priority_first_with_their_context(as_a, org):
    small = answer(org, "tom@tiny.example", 6, "Could be better")
    big = answer(org, "ann@mega.example", 2, "Way too expensive")
    response = as_a.get(LIST)
    assert ids_of(response) == [big.pk, small.pk]
    row = response.json()["results"][0]
    assert row["response"] == {
        "id": big.response_id,
        "score": 2,
        "category": "detractor",
        "danger_zone": True,
        "comment": "Way too expensive",
        "themes": ["pricing"],
    }
    assert row["account"]["name"] == "Megacorp"
    assert row["account"]["external_id"] == "big"
    assert row["account"]["arr"] == "900000.00"
    assert row["contact"]["email"] == "ann@mega.example"
    assert row["contact"]["name"] == "Ann Lee"
    assert row["playbook"] == "recover"
    assert row["priority"] == big.priority
    assert sum(r["points"] for r in row["priority_reasons"]) == row["priority"]
    assert row["status"] == "new"
    assert row["assignee"] == "bob@a.example"
    assert row["overdue"] is False
    assert row["draft_subject"].startswith("About your feedback, Ann")
    assert "Hi Ann," in row["draft_body"]
    assert row["outcome"] == ""
    assert row["closed_at"] is None
    assert "activities" not in row
    for name in ("due_at", "created_at", "updated_at", "first_contact_at", "closing_notes"):
        assert name in row


def test_it_filters_by_status_playbook_assignee_account_category_and_overdue(as_a, org, alice, bob):
    detractor = answer(org, "ann@mega.example", 2, "Bad")
    passive = answer(org, "mo@mid.example", 7, "Fine")
    promoter = answer(org, "tom@tiny.example", 10, "Love it")
    silent = answer(org, "tom@tiny.example", 9)
    with scope(organization=org):
        services.followup_change_status(
            organization=org, followup=passive, actor=bob, status="in_progress"
        )
        services.followup_close(
            organization=org, followup=promoter, actor=bob, outcome="referral_given"
        )
        services.followup_assign(organization=org, followup=silent, actor=alice, assignee=alice)
    with scopes_disabled():
        FollowUp.objects.filter(pk__in=[detractor.pk, promoter.pk]).update(
            due_at=now() - timedelta(hours=2)
        )
        mid = Account.objects.get(external_id="mid")

    def ids(query):
        return set(ids_of(as_a.get(f"{LIST}?{query}")))

    assert ids("status=new") == {detractor.pk, silent.pk}
    assert ids("status=in_progress,closed") == {passive.pk, promoter.pk}
    assert ids("status=new,%20waiting") == {detractor.pk, silent.pk}
    assert ids("playbook=ask_why") == {silent.pk}
    assert ids("playbook=recover") == {detractor.pk}
    assert ids("assignee=ALICE@a.example") == {silent.pk}
    assert ids("assignee=bob@a.example") == {detractor.pk, passive.pk, promoter.pk}
    assert ids(f"account={mid.pk}") == {passive.pk}
    assert ids("category=promoter") == {promoter.pk, silent.pk}
    # Overdue: open and past due; the closed one past its due date is not.
    assert ids("overdue=true") == {detractor.pk}
    assert ids("overdue=false") == {passive.pk, promoter.pk, silent.pk}
    assert ids("overdue=true&category=passive") == set()
    assert ids("category=promoter&status=new") == {silent.pk}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=open", "status"),
        ("status=new,bogus", "status"),
        ("playbook=win_back", "playbook"),
        ("category=angry", "category"),
        ("overdue=maybe", "overdue"),
        ("account=abc", "account"),
    ],
)
def test_it_refuses_a_filter_it_cannot_read(as_a, org, query, field):
    response = as_a.get(f"{LIST}?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid"
    assert field in body["fields"]


def test_it_pages_through_ties_in_priority_without_repeats_or_gaps(as_a, org):
    followups = many(org, 13)
    # Many follow-ups share a priority, and some share a due time too: the cursor keeps
    # all three sort keys, so ties never repeat or vanish between pages.
    same_due = now() + timedelta(days=1)
    with scopes_disabled():
        FollowUp.objects.filter(pk__in=[f.pk for f in followups]).update(priority=30)
        FollowUp.objects.filter(pk__in=[f.pk for f in followups[:6]]).update(due_at=same_due)
        FollowUp.objects.filter(pk=followups[7].pk).update(priority=80)
        expected = list(
            FollowUp.objects.order_by("-priority", "due_at", "id").values_list("pk", flat=True)
        )
    assert expected[0] == followups[7].pk

    seen, url, pages = [], f"{LIST}?page_size=4", []
    while url:
        response = as_a.get(url)
        seen += ids_of(response)
        pages.append(response.json())
        url = response.json()["next"]
    assert seen == expected
    assert [len(p["results"]) for p in pages] == [4, 4, 4, 1]
    assert pages[0]["previous"] is None

    # And back: the last page's `previous` gives the third page again.
    back = as_a.get(pages[-1]["previous"])
    assert ids_of(back) == [row["id"] for row in pages[2]["results"]]
    assert back.json()["next"] is not None


def test_it_answers_404_to_a_forged_cursor(as_a, org):
    many(org, 2)
    response = as_a.get(f"{LIST}?cursor=cD1ub3QtYS1wb3NpdGlvbg%3D%3D")  # p=not-a-position
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_it_lists_in_a_constant_number_of_queries(as_a, org, django_assert_max_num_queries):
    many(org, 2)
    answer(org, "ann@mega.example", 3, "Bad")
    url = f"{LIST}?page_size=1000&status=new,in_progress&overdue=false"
    as_a.get(url)  # the key's first use is recorded once a minute; not part of the count
    with CaptureQueriesContext(connection) as few:
        response = as_a.get(url)
    assert len(response.json()["results"]) == 3

    many(org, 12, email="tom@tiny.example", score=2)
    with django_assert_max_num_queries(len(few)):
        response = as_a.get(url)
    assert len(response.json()["results"]) == 15
    assert len(few) <= 3, [q["sql"] for q in few.captured_queries]


# --- One follow-up ------------------------------------------------------------------------------


def test_it_shows_one_followup_with_its_activity_log(as_a, org, bob):
    followup = answer(org, "ann@mega.example", 2, "Bad")
    with scope(organization=org):
        services.followup_log(
            organization=org, followup=followup, actor=bob, kind="call", message="Left voicemail"
        )
    response = as_a.get(detail(followup.pk))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == followup.pk
    assert body["response"]["score"] == 2
    assert [(a["kind"], a["actor"]) for a in body["activities"]] == [
        ("created", None),
        ("call", "bob@a.example"),
    ]
    assert body["activities"][1]["message"] == "Left voicemail"
    assert body["first_contact_at"] is not None


def test_it_reads_one_followup_in_a_constant_number_of_queries(as_a, org, bob):
    followup = answer(org, "ann@mega.example", 2, "Bad")
    as_a.get(detail(followup.pk))
    with CaptureQueriesContext(connection) as few:
        as_a.get(detail(followup.pk))
    with scope(organization=org):
        for n in range(10):
            services.followup_log(
                organization=org, followup=followup, actor=bob, kind="note", message=f"n{n}"
            )
    with CaptureQueriesContext(connection) as more:
        response = as_a.get(detail(followup.pk))
    assert len(response.json()["activities"]) == 11
    assert len(more) == len(few) <= 4


# --- PATCH: the page's rules ----------------------------------------------------------------------


def test_it_requires_an_outcome_to_close(as_a, org):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    for body in ({"status": "closed"}, {"status": "closed", "outcome": ""}):
        response = as_a.patch(detail(followup.pk), body)
        assert response.status_code == 400, response.content
        assert response.json()["fields"]["outcome"] == ["Choose an outcome to close the follow-up."]
    assert fresh(followup).status == "new"
    assert kinds(followup) == ["created"]


def test_it_closes_with_an_outcome_and_closing_notes(as_a, org):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    body = {"status": "closed", "outcome": "resolved", "closing_notes": " Fixed their export. "}
    response = as_a.patch(detail(followup.pk), body)
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], data["outcome"]) == ("closed", "resolved")
    assert data["closing_notes"] == "Fixed their export."
    assert data["closed_at"] is not None
    assert data["activities"][-1]["kind"] == "closed"
    assert data["activities"][-1]["message"] == "Closed: Resolved — Fixed their export."
    # The same close again changes nothing (a retried request).
    again = as_a.patch(detail(followup.pk), body)
    assert again.status_code == 200
    assert kinds(followup) == ["created", "closed"]
    # A different outcome amends the close.
    as_a.patch(detail(followup.pk), {"status": "closed", "outcome": "churn_risk"})
    assert fresh(followup).outcome == "churn_risk"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "done"}, "status"),
        ({"status": "closed", "outcome": "happy"}, "outcome"),
        ({"outcome": "resolved"}, "outcome"),
        ({"status": "in_progress", "outcome": "resolved"}, "outcome"),
        ({"closing_notes": "x"}, "closing_notes"),
        ({"note": ""}, "note"),
        ({"assignee": "not-an-email"}, "assignee"),
    ],
)
def test_it_refuses_an_unknown_status_or_outcome_and_stray_closing_fields(as_a, org, body, field):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    response = as_a.patch(detail(followup.pk), body)
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert fresh(followup).status == "new"
    assert kinds(followup) == ["created"]


def test_it_changes_the_status_and_reopens_a_closed_followup(as_a, org):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    response = as_a.patch(detail(followup.pk), {"status": "in_progress"})
    assert response.json()["status"] == "in_progress"
    as_a.patch(detail(followup.pk), {"status": "waiting"})
    as_a.patch(detail(followup.pk), {"status": "closed", "outcome": "no_response"})
    reopened = as_a.patch(detail(followup.pk), {"status": "new"}).json()
    assert (reopened["status"], reopened["outcome"], reopened["closed_at"]) == ("new", "", None)
    assert [a["message"] for a in reopened["activities"] if a["kind"] == "status"] == [
        "New → In progress",
        "In progress → Waiting on customer",
        "Closed → New",
    ]


def test_it_reassigns_to_a_member_only(as_a, org, alice, carol, mallory):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    assert fresh(followup).assignee.email == "bob@a.example"

    response = as_a.patch(detail(followup.pk), {"assignee": "Alice@A.example"})
    assert response.status_code == 200
    assert response.json()["assignee"] == "alice@a.example"
    assert response.json()["activities"][-1]["message"] == "Assigned to alice@a.example"

    # Another organization's admin, an unknown address, and an executive (not a CS role).
    for email in ("mallory@b.example", "nobody@a.example", "carol@a.example"):
        refused = as_a.patch(detail(followup.pk), {"assignee": email})
        assert refused.status_code == 400, email
        assert refused.json()["fields"]["assignee"] == [
            "Assign to a CS manager or an admin of this organization."
        ]
    assert fresh(followup).assignee.email == "alice@a.example"

    unassigned = as_a.patch(detail(followup.pk), {"assignee": None})
    assert unassigned.json()["assignee"] is None
    assert kinds(followup) == ["created", "assigned", "assigned"]


def test_it_adds_a_note_to_the_activity_log(as_a, org):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    response = as_a.patch(detail(followup.pk), {"note": "  Spoke to their CTO.  "})
    assert response.status_code == 200
    last = response.json()["activities"][-1]
    assert (last["kind"], last["message"], last["actor"]) == ("note", "Spoke to their CTO.", None)
    assert response.json()["status"] == "new"


def test_it_applies_a_patch_all_or_nothing(as_a, org, alice):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    body = {"assignee": "alice@a.example", "note": "Calling tomorrow", "status": "closed"}
    response = as_a.patch(detail(followup.pk), body)
    assert response.status_code == 400
    assert "outcome" in response.json()["fields"]
    assert fresh(followup).assignee.email == "bob@a.example"
    assert kinds(followup) == ["created"]

    body["outcome"] = "resolved"
    response = as_a.patch(detail(followup.pk), body)
    assert response.status_code == 200
    assert kinds(followup) == ["created", "assigned", "note", "closed"]


@pytest.mark.parametrize(
    "body",
    [
        {"auto_send": True},
        {"status": "in_progress", "auto_send": True},
        {"send": True},
        {"send_email": True},
        {"draft_body": "Hello"},
        {"auto_send_thanks": True},
        {"priority": 100},
    ],
)
def test_it_refuses_unknown_fields_and_has_no_way_to_send_email(as_a, org, body):
    with scopes_disabled():
        FollowUpSettings.objects.create(organization=org, auto_send_thanks=False)
    followup = answer(org, "ann@mega.example", 2, "Bad")
    mail.outbox.clear()
    response = as_a.patch(detail(followup.pk), body)
    assert response.status_code == 400, response.content
    unknown = next(name for name in body if name != "status")
    assert unknown in response.json()["fields"]
    assert "never sends email" in response.json()["fields"][unknown][0]
    assert fresh(followup).status == "new"
    assert kinds(followup) == ["created"]
    assert mail.outbox == []
    with scopes_disabled():
        assert FollowUpSettings.objects.get(organization=org).auto_send_thanks is False


def test_it_never_sends_email_while_working_a_detractor(as_a, org):
    followup = answer(org, "ann@mega.example", 2, "Bad")
    mail.outbox.clear()
    for body in (
        {"status": "in_progress"},
        {"status": "waiting", "note": "Sent from my own mailbox"},
        {"status": "closed", "outcome": "resolved"},
    ):
        assert as_a.patch(detail(followup.pk), body).status_code == 200
    assert mail.outbox == []
    assert "email" not in kinds(followup)
    assert fresh(followup).first_contact_at is None


def test_it_refuses_a_body_that_is_not_an_object(as_a, org):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    response = as_a.patch(detail(followup.pk), ["status", "closed"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_it_treats_an_empty_patch_as_no_change(as_a, org):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    response = as_a.patch(detail(followup.pk), {})
    assert response.status_code == 200
    assert kinds(followup) == ["created"]


# --- Authentication and isolation ---------------------------------------------------------------


def test_it_answers_401_without_a_key(api, org):
    followup = answer(org, "mo@mid.example", 4, "Hmm")
    for response in (
        api.get(LIST),
        api.get(detail(followup.pk)),
        api.patch(detail(followup.pk), {"status": "in_progress"}),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == "not_authenticated"
    assert fresh(followup).status == "new"


def test_it_answers_404_to_another_organizations_key(api, org, api_key_b):
    followup = answer(org, "ann@mega.example", 2, "Secret complaint")
    api.key = api_key_b[1]
    assert api.get(LIST).json()["results"] == []
    got = api.get(detail(followup.pk))
    assert got.status_code == 404
    assert got.json()["error"] == "not_found"
    for body in (
        {"status": "closed", "outcome": "resolved"},
        {"assignee": "mallory@b.example"},
        {"note": "pwned"},
    ):
        patched = api.patch(detail(followup.pk), body)
        assert patched.status_code == 404
        assert b"Secret" not in patched.content
    after = fresh(followup)
    assert (after.status, after.outcome, after.assignee.email) == ("new", "", "bob@a.example")
    assert kinds(followup) == ["created"]


def test_it_is_routed_by_name():
    assert reverse("api:followup-list") == LIST
    assert reverse("api:followup-detail", kwargs={"pk": 7}) == detail(7)
