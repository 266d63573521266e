"""The CS queue at /queue/: tabs, filters, priority order, SLA badges, escaping, bulk assign,
htmx partials, paging, roles, and a query count that does not grow with the page."""

import re
from datetime import date, timedelta

import pytest
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from followups import selectors, services
from followups.models import Activity, FollowUp, Status
from responses.analysis import responses_analyze
from responses.services import response_record
from tests.accounts.factories import SegmentFactory
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

QUEUE = "/queue/"
ROW = re.compile(r'data-followup-id="(\d+)"')
XSS = "<script>window.__xss=1</script>Too pricey"


def answer(org, email, score, comment="", when=None, **extra):
    response, _ = response_record(
        organization=org,
        channel="api",
        email=email,
        score=score,
        comment=comment,
        submitted_at=(when or now()).isoformat(),
        **extra,
    )
    # The worker analyses the comment too (after the follow-up opens; its themes are
    # what the queue filters on).
    responses_analyze(organization=org, response_ids=[response.pk])
    return services.followup_open_for_response(organization=org, response_id=response.pk)


@pytest.fixture
def world(org_a, alice, bob, carol):
    """Megacorp (big, owned by bob), Tiny Shop and Midco (no owner), and four follow-ups:
    a danger-zone detractor of Megacorp, a 6 from Tiny Shop, a passive and a promoter."""
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
                    "owner_email": "bob@a.example",
                    "renewal_date": str(date.today() + timedelta(days=40)),
                },
                {"external_id": "small", "name": "Tiny Shop", "arr": 1200, "plan": "starter"},
                {"external_id": "mid", "name": "Midco", "arr": 40000, "plan": "growth"},
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {"email": "ann@mega.example", "name": "Ann Lee", "account_external_id": "big"},
                {"email": "tom@tiny.example", "name": "Tom Fox", "account_external_id": "small"},
                {"email": "mo@mid.example", "name": "Mo Diaz", "account_external_id": "mid"},
                {"email": "pat@mid.example", "name": "Pat Kim", "account_external_id": "mid"},
            ],
        )
        followups = {
            "big": answer(org_a, "ann@mega.example", 2, "Way too expensive, and exports crash."),
            "small": answer(org_a, "tom@tiny.example", 6, XSS),
            "passive": answer(org_a, "mo@mid.example", 7, "Decent support, slow UI."),
            "promoter": answer(org_a, "pat@mid.example", 10),
        }
    return {"org": org_a, **followups}


def shown(response) -> list[int]:
    return [int(i) for i in ROW.findall(response.content.decode())]


def test_it_shows_my_open_followups_by_priority_then_due_date(client, world, bob):
    with scopes_disabled():
        FollowUp.objects.update(assignee=bob)
    response = client_for(client, bob).get(QUEUE)
    assert response.status_code == 200
    with scopes_disabled():
        expected = list(
            FollowUp.objects.filter(status__in=["new", "in_progress", "waiting"])
            .order_by("-priority", "due_at", "id")
            .values_list("pk", flat=True)
        )
    assert shown(response) == expected
    assert shown(response)[0] == world["big"].pk


def test_it_breaks_priority_ties_by_the_soonest_due(client, world, bob):
    with scopes_disabled():
        FollowUp.objects.update(assignee=bob, priority=50)
        FollowUp.objects.filter(pk=world["promoter"].pk).update(due_at=now() + timedelta(hours=1))
        FollowUp.objects.filter(pk=world["big"].pk).update(due_at=now() + timedelta(hours=90))
    ids = shown(client_for(client, bob).get(QUEUE))
    assert ids[0] == world["promoter"].pk
    assert ids[-1] == world["big"].pk


@pytest.fixture
def tabs_world(world, alice, bob):
    with scopes_disabled():
        FollowUp.objects.filter(pk=world["big"].pk).update(assignee=bob)
        FollowUp.objects.filter(pk=world["small"].pk).update(assignee=None)
        FollowUp.objects.filter(pk=world["passive"].pk).update(
            assignee=alice, due_at=now() - timedelta(days=2)
        )
        FollowUp.objects.filter(pk=world["promoter"].pk).update(
            assignee=bob, status=Status.CLOSED, outcome="review_left", closed_at=now()
        )
    return world


@pytest.mark.parametrize(
    ("tab", "names"),
    [
        ("", ["big"]),  # "mine" by default
        ("mine", ["big"]),
        ("unassigned", ["small"]),
        ("overdue", ["passive"]),
        ("all", ["big", "small", "passive"]),
        ("closed", ["promoter"]),
    ],
)
def test_it_has_tabs_mine_unassigned_overdue_all_and_closed(client, tabs_world, bob, tab, names):
    response = client_for(client, bob).get(QUEUE, {"tab": tab} if tab else {})
    assert set(shown(response)) == {tabs_world[n].pk for n in names}
    body = response.content.decode()
    assert 'data-count="mine">1<' in body
    assert 'data-count="unassigned">1<' in body
    assert 'data-count="overdue">1<' in body
    assert 'data-count="all">3<' in body
    assert 'data-count="closed">1<' in body


def test_it_ignores_an_unknown_tab_and_bad_filters(client, world, bob):
    response = client_for(client, bob).get(
        QUEUE, {"tab": "nope", "segment": "x", "owner": "<b>", "category": "zz", "page": "99"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"category": "detractor"}, ["big", "small"]),
        ({"category": "promoter"}, ["promoter"]),
        ({"playbook": "ask_why"}, ["promoter"]),
        ({"playbook": "nudge"}, ["passive"]),
        ({"theme": "pricing"}, ["big", "small"]),
        ({"theme": "usability"}, ["passive"]),
        ({"owner": "none"}, ["small", "passive", "promoter"]),
        ({"owner": "bob"}, ["big"]),
        ({"segment": "midco"}, ["passive", "promoter"]),
        ({"category": "detractor", "theme": "bugs"}, ["big"]),
    ],
)
def test_it_filters_by_category_playbook_theme_owner_and_segment(client, world, bob, params, names):
    with scopes_disabled():
        FollowUp.objects.update(assignee=None)
        FollowUp.objects.filter(pk=world["big"].pk).update(assignee=bob)
    segment = SegmentFactory(
        organization=world["org"],
        rules={"match": "all", "conditions": [{"field": "plan", "op": "eq", "value": "growth"}]},
    )
    params = dict(params)
    if params.get("owner") == "bob":
        params["owner"] = str(bob.pk)
    if params.get("segment"):
        params["segment"] = str(segment.pk)
    response = client_for(client, bob).get(QUEUE, {"tab": "all", **params})
    assert set(shown(response)) == {world[n].pk for n in names}


def test_it_shows_sla_countdowns_in_words():
    moment = now()
    due_soon = FollowUp(status=Status.NEW, due_at=moment + timedelta(hours=5))
    overdue = FollowUp(status=Status.IN_PROGRESS, due_at=moment - timedelta(days=2))
    minutes = FollowUp(status=Status.NEW, due_at=moment + timedelta(minutes=40))
    three_days = FollowUp(status=Status.NEW, due_at=moment + timedelta(days=3, hours=1))
    closed = FollowUp(status=Status.CLOSED, due_at=moment - timedelta(days=9))
    assert selectors.sla_badge(due_soon, moment).text == "due in 5 h"
    assert selectors.sla_badge(overdue, moment) == selectors.SlaBadge("overdue 2 d", "overdue")
    assert selectors.sla_badge(minutes, moment) == selectors.SlaBadge("due in 40 min", "soon")
    assert selectors.sla_badge(three_days, moment) == selectors.SlaBadge("due in 3 d", "ok")
    assert selectors.sla_badge(closed, moment).text == "closed"


def test_it_renders_the_row_badges_reasons_and_account(client, world, bob):
    with scopes_disabled():
        FollowUp.objects.update(assignee=bob)
        FollowUp.objects.filter(pk=world["big"].pk).update(due_at=now() + timedelta(hours=5))
        FollowUp.objects.filter(pk=world["small"].pk).update(due_at=now() - timedelta(days=2))
    body = client_for(client, bob).get(QUEUE).content.decode()
    assert "due in 5 h" in body
    assert re.search(r'fu-sla fu-sla-overdue"[^>]*>.*overdue 2 d</span>', body)
    # The top reason besides the category (the score badge shows that one) shows; every
    # reason is in the title.
    big = world["big"]
    top = max(
        (r for r in big.priority_reasons if r["reason"] != "Detractor"), key=lambda r: r["points"]
    )["reason"]
    assert f'<span class="fu-reason">{top}</span>' in body
    assert "Detractor (+40); Danger zone (0–3) (+20)" in body
    assert "Megacorp" in body
    assert "$900,000" in body
    assert "Ann Lee" in body
    assert "Recover a detractor" in body
    assert "Bob Manager" in body


def test_it_escapes_comments_and_marks_a_missing_one(client, world, bob):
    with scopes_disabled():
        FollowUp.objects.update(assignee=bob)
    body = client_for(client, bob).get(QUEUE).content.decode()
    assert "<script>window.__xss" not in body
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;Too pricey" in body
    assert '<p class="fu-comment fu-no-comment">No comment</p>' in body


def test_it_assigns_in_bulk(client, world, alice, bob):
    ids = [world["small"].pk, world["passive"].pk]
    response = client_for(client, bob).post(
        "/queue/bulk-assign",
        {"followup": ids, "assignee": str(alice.pk), "next": "/queue/?tab=all"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/queue/?tab=all"
    assert "Assigned 2 follow-ups to Alice Admin." in response.content.decode()
    with scopes_disabled():
        assert set(FollowUp.objects.filter(assignee=alice).values_list("pk", flat=True)) >= set(ids)
        assert Activity.objects.filter(kind="assigned", followup_id__in=ids).count() == 2


def test_it_refuses_an_assignee_from_another_organization(client, world, bob, mallory):
    with scopes_disabled():
        before = dict(FollowUp.objects.values_list("pk", "assignee_id"))
    response = client_for(client, bob).post(
        "/queue/bulk-assign",
        {"followup": [world["small"].pk], "assignee": str(mallory.pk)},
        follow=True,
    )
    assert "Choose a CS manager or an admin of this organization." in response.content.decode()
    with scopes_disabled():
        assert dict(FollowUp.objects.values_list("pk", "assignee_id")) == before


def test_it_refuses_bulk_assign_to_an_executive_or_without_a_selection(client, world, bob, carol):
    with scopes_disabled():
        before = dict(FollowUp.objects.values_list("pk", "assignee_id"))
    as_bob = client_for(client, bob)
    response = as_bob.post(
        "/queue/bulk-assign", {"followup": [world["small"].pk], "assignee": str(carol.pk)},
        follow=True,
    )  # fmt: skip
    assert "Choose a CS manager or an admin" in response.content.decode()
    response = as_bob.post("/queue/bulk-assign", {"assignee": str(bob.pk)}, follow=True)
    assert "Select at least one follow-up." in response.content.decode()
    with scopes_disabled():
        assert dict(FollowUp.objects.values_list("pk", "assignee_id")) == before


def test_it_ignores_another_organizations_followups_in_bulk(client, world, bob, org_b, mallory):
    with scope(organization=org_b):
        other = answer(org_b, "eve@b.example", 3, "Bad", create_missing=True)
    response = client_for(client, bob).post(
        "/queue/bulk-assign", {"followup": [other.pk], "assignee": str(bob.pk)}, follow=True
    )
    assert response.status_code == 200
    with scopes_disabled():
        other.refresh_from_db()
    assert other.assignee_id != bob.pk


def test_it_sends_only_to_a_queue_address_after_bulk_assign(client, world, bob):
    response = client_for(client, bob).post(
        "/queue/bulk-assign",
        {"followup": [world["small"].pk], "assignee": str(bob.pk), "next": "https://evil.example/"},
    )
    assert response.status_code == 302
    assert response.url == "/queue/"


def test_it_swaps_only_the_results_for_htmx(client, world, bob):
    response = client_for(client, bob).get(
        QUEUE,
        {"tab": "all", "category": "detractor"},
        headers={"HX-Request": "true", "HX-Target": "queue-results"},
    )
    body = response.content.decode()
    assert "<html" not in body
    assert body.lstrip().startswith('<div id="queue-results"')
    assert 'id="queue-tab" value="all" hx-swap-oob="true"' in body
    assert set(shown(response)) == {world["big"].pk, world["small"].pk}


def test_it_pages_by_fifty(client, world, bob):
    org = world["org"]
    with scope(organization=org):
        for n in range(52):
            answer(
                org, f"p{n}@mid.example", 8, "ok", create_missing=True, account_external_id="mid"
            )
    with scopes_disabled():
        FollowUp.objects.update(assignee=bob)
    as_bob = client_for(client, bob)
    first = as_bob.get(QUEUE)
    second = as_bob.get(QUEUE, {"page": 2})
    assert len(shown(first)) == 50
    assert len(shown(second)) == 6
    assert "Showing 1–50 of 56" in first.content.decode()
    assert not set(shown(first)) & set(shown(second))


def _more(org, count):
    with scope(organization=org):
        for n in range(count):
            answer(
                org,
                f"more{n}@mega.example",
                n % 11,
                f"comment {n} about price",
                create_missing=True,
                account_external_id="big",
            )


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"tab": "all"},
        {
            "tab": "all",
            "category": "detractor",
            "theme": "pricing",
            "segment": "S",
            "owner": "none",
        },
    ],
)
def test_it_runs_a_constant_number_of_queries_whatever_the_rows(
    client, world, bob, query, django_assert_max_num_queries
):
    segment = SegmentFactory(
        organization=world["org"],
        rules={
            "match": "all",
            "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
        },
    )
    query = {k: (str(segment.pk) if v == "S" else v) for k, v in query.items()}

    def spread():
        # Detractors unassigned, the rest bob's: every tab and filter shows some rows.
        with scopes_disabled():
            FollowUp.objects.filter(response__category="detractor").update(assignee=None)
            FollowUp.objects.exclude(response__category="detractor").update(assignee=bob)

    spread()
    as_bob = client_for(client, bob)
    as_bob.get(QUEUE, query)  # warm the session and caches
    with django_assert_max_num_queries(100) as few:
        response = as_bob.get(QUEUE, query)
    assert response.status_code == 200
    assert shown(response)
    _more(world["org"], 45)
    spread()
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = as_bob.get(QUEUE, query)
    assert len(shown(response)) > 4


def test_it_lets_cs_managers_and_admins_in_and_keeps_executives_out(
    client, world, alice, bob, carol
):
    assert client_for(client, bob).get(QUEUE).status_code == 200
    assert client_for(client, alice).get(QUEUE).status_code == 200
    assert client_for(client, carol).get(QUEUE).status_code == 403
    assert client.post("/queue/bulk-assign", {"assignee": str(bob.pk)}).status_code == 403


def test_it_sends_anonymous_visitors_to_sign_in(client, world):
    response = client.get(QUEUE)
    assert response.status_code == 302
    assert "/login/" in response.url


def test_it_shows_an_empty_state_without_followups(client, org_a, bob):
    body = client_for(client, bob).get(QUEUE).content.decode()
    assert "Nothing to follow up yet" in body


def test_it_shows_only_the_members_organization(client, world, mallory):
    body = client_for(client, mallory).get(QUEUE, {"tab": "all"}).content.decode()
    assert "Megacorp" not in body
    assert "Ann Lee" not in body
    assert not shown_text(body)


def shown_text(body) -> list[str]:
    return ROW.findall(body)
