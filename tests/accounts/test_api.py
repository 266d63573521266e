"""The accounts REST API: upserts over HTTP, filtered cursor-paginated lists in a constant
number of queries, retrieve and delete, the GDPR export and erasure, and tenant isolation."""

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts import api as accounts_api
from accounts import services
from accounts.models import Account, Contact, ErasureRecord, SupportTicket, UsageSnapshot
from nps_platform.api_auth import ApiKeyRateThrottle
from tests.accounts.factories import (
    AccountFactory,
    ContactFactory,
    SegmentFactory,
    SupportTicketFactory,
    UsageSnapshotFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_rate_limit(monkeypatch):
    """Hundreds of calls in seconds, by keys whose ids repeat between tests (tests/platform
    covers the limit): keep the counts in the cache from failing unrelated tests."""
    monkeypatch.setattr(ApiKeyRateThrottle, "rate", "1000000/min", raising=False)


@pytest.fixture
def as_a(api, api_key_a):
    api.key = api_key_a[1]
    return api


def upsert(org, kind, items):
    with scope(organization=org):
        report = services.records_upsert(organization=org, kind=kind, items=items)
    assert report.errors == 0, report.as_dict()
    return report


def ids_of(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def count(model, **lookups) -> int:
    with scopes_disabled():
        return model.objects.filter(**lookups).count()


ACCOUNTS = [
    {"external_id": "acc-1", "name": "Initech", "plan": "Enterprise", "arr": "120,000"},
    {"external_id": "acc-2", "name": "Hooli", "plan": "growth", "arr": 48000, "health_score": 41},
]


# --- Upserts --------------------------------------------------------------------------------


def test_it_upserts_the_same_list_twice_to_the_same_state(as_a, unscoped):
    url = reverse("api:account-list")
    first = as_a.post(url, ACCOUNTS)
    assert first.status_code == 200
    assert first.json()["created"] == 2
    assert first.json()["updated"] == 0
    state = list(Account.objects.order_by("external_id").values())

    second = as_a.post(url, ACCOUNTS)
    assert second.status_code == 200
    body = second.json()
    assert (body["created"], body["updated"], body["errors"]) == (0, 2, 0)
    assert [r["status"] for r in body["results"]] == ["updated", "updated"]
    assert [r["id"] for r in body["results"]] == [r["id"] for r in first.json()["results"]]
    assert [r["key"] for r in body["results"]] == ["acc-1", "acc-2"]
    after = list(Account.objects.order_by("external_id").values())
    assert [without_updated_at(row) for row in after] == [without_updated_at(r) for r in state]
    assert after[0]["arr"] == Decimal("120000.00")
    assert after[0]["plan"] == "enterprise"


def without_updated_at(row: dict) -> dict:
    return {name: value for name, value in row.items() if name != "updated_at"}


def test_it_answers_201_then_200_for_a_single_object(as_a, alice, org_a):
    url = reverse("api:account-list")
    payload = {
        "external_id": "acc-9",
        "name": "Globex",
        "arr": "1,200.5",
        "owner_email": "ALICE@a.example",
        "signed_up_on": str(now().date() - timedelta(days=10)),
        "lifecycle_stage": "Up for renewal",
        "properties.region": "EMEA",
    }
    created = as_a.post(url, payload)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "created"
    assert body["key"] == "acc-9"
    data = body["data"]
    assert data["id"] == body["id"]
    assert data["arr"] == "1200.50"
    assert data["currency"] == org_a.currency == "USD"
    assert data["owner_email"] == "alice@a.example"
    assert data["tenure_days"] == 10
    assert data["lifecycle_stage"] == "renewal"
    assert data["properties"] == {"region": "EMEA"}
    assert set(data) == set(accounts_api.AccountOutputSerializer().fields)

    updated = as_a.post(url, {"external_id": "acc-9", "name": "Globex Corp", "arr": None})
    assert updated.status_code == 200
    assert updated.json()["status"] == "updated"
    assert updated.json()["id"] == body["id"]
    assert updated.json()["data"]["name"] == "Globex Corp"
    assert updated.json()["data"]["arr"] is None
    assert updated.json()["data"]["properties"] == {"region": "EMEA"}
    assert count(Account) == 1


def test_it_answers_400_in_the_error_shape_for_an_invalid_single_object(as_a):
    response = as_a.post(
        reverse("api:account-list"), {"external_id": "bad", "name": "Bad", "arr": "lots"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert list(body["fields"]) == ["arr"]
    assert "is not a number" in body["fields"]["arr"][0]
    assert "arr" in body["message"]
    assert "lots" in body["message"]
    assert count(Account) == 0


def test_it_names_the_field_when_a_single_object_has_an_unknown_one(as_a):
    response = as_a.post(reverse("api:account-list"), {"external_id": "x", "colour": "red"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("colour: Unknown field")
    assert set(response.json()["fields"]) == {"colour"}


def test_it_reports_per_item_errors_and_saves_the_valid_items(as_a, unscoped):
    response = as_a.post(
        reverse("api:account-list"),
        [
            {"external_id": "ok-1", "name": "Good"},
            {"external_id": "bad-1", "name": "Bad", "arr": "lots"},
            {"external_id": "ok-2", "name": "Also good", "health_score": 90},
            "not an object",
            {"external_id": "bad-2", "owner_email": "ghost@x.example", "name": "Nobody"},
        ],
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"], body["errors"]) == (2, 0, 3)
    results = body["results"]
    assert [r["status"] for r in results] == ["created", "error", "created", "error", "error"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert "arr" in results[1]["errors"]
    assert "id" not in results[1]
    assert results[3]["errors"] == {"non_field_errors": ["Each item must be an object."]}
    assert "not a member" in results[4]["errors"]["owner_email"][0]
    saved = dict(Account.objects.values_list("external_id", "id"))
    assert saved == {"ok-1": results[0]["id"], "ok-2": results[2]["id"]}


def test_it_upserts_contacts_tickets_and_usage_by_their_natural_keys(as_a, org_a, unscoped):
    upsert(org_a, "accounts", ACCOUNTS)
    contact = as_a.post(
        reverse("api:contact-list"),
        {"email": "Pat@Initech.example", "name": "Pat", "account_external_id": "acc-1"},
    )
    assert contact.status_code == 201, contact.content
    data = contact.json()["data"]
    assert data["email"] == "pat@initech.example"
    assert data["account_external_id"] == "acc-1"
    assert set(data) == set(accounts_api.ContactOutputSerializer().fields)
    again = as_a.post(reverse("api:contact-list"), {"email": "pat@initech.example", "title": "CTO"})
    assert again.status_code == 200
    assert again.json()["id"] == data["id"]
    assert again.json()["data"]["title"] == "CTO"
    assert again.json()["data"]["name"] == "Pat"

    ticket = {
        "external_id": "T-1",
        "account_external_id": "acc-1",
        "contact_email": "pat@initech.example",
        "subject": "Cannot log in",
        "opened_at": "2026-01-05T09:30Z",
        "priority": "High",
    }
    first = as_a.post(reverse("api:ticket-list"), ticket)
    assert first.status_code == 201, first.content
    data = first.json()["data"]
    assert data["contact_email"] == "pat@initech.example"
    assert data["contact_id"] == contact.json()["id"]
    assert data["account_external_id"] == "acc-1"
    assert data["priority"] == "high"
    assert data["status"] == "open"
    assert set(data) == set(accounts_api.SupportTicketOutputSerializer().fields)
    assert as_a.post(reverse("api:ticket-list"), ticket).status_code == 200
    assert count(SupportTicket) == 1

    day = str(now().date() - timedelta(days=1))
    usage = {"account_external_id": "acc-2", "date": day, "active_users": 12, "metrics.logins": 3}
    first = as_a.post(reverse("api:usage-list"), [usage])
    assert first.json()["created"] == 1
    second = as_a.post(reverse("api:usage-list"), usage)
    assert second.status_code == 200
    assert second.json()["data"] == {
        "id": first.json()["results"][0]["id"],
        "account_id": Account.objects.get(external_id="acc-2").id,
        "account_external_id": "acc-2",
        "date": day,
        "active_users": 12,
        "metrics": {"logins": "3"},
    }
    assert count(UsageSnapshot) == 1


def test_it_refuses_more_than_1000_items(as_a):
    items = [{"external_id": f"a-{n}", "name": f"A {n}"} for n in range(1001)]
    response = as_a.post(reverse("api:account-list"), items)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "at most 1,000" in response.json()["message"]
    assert "1,001" in response.json()["message"]
    assert count(Account) == 0


def test_it_accepts_exactly_1000_items(as_a):
    items = [{"external_id": f"a-{n}", "name": f"A {n}"} for n in range(1000)]
    response = as_a.post(reverse("api:account-list"), items)
    assert response.status_code == 200
    assert response.json()["created"] == 1000


def test_it_refuses_an_empty_list(as_a):
    response = as_a.post(reverse("api:contact-list"), [])
    assert response.status_code == 400
    assert "empty" in response.json()["message"]


@pytest.mark.parametrize("body", ['"just text"', "42", "null", "true"])
def test_it_refuses_a_body_that_is_neither_an_object_nor_a_list(as_a, body):
    response = as_a.post(reverse("api:ticket-list"), body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "JSON object" in response.json()["message"]


def test_it_answers_400_json_to_malformed_json(as_a):
    response = as_a.post(reverse("api:usage-list"), '{"account_external_id": ')
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"


@pytest.mark.parametrize(
    "value",
    [["a", "list"], {"an": "object"}, True, 10**40, "x" * 5000, "\x00", -1, 1.5, ""],
)
@pytest.mark.parametrize(
    ("route", "base", "field"),
    [
        ("api:account-list", {"external_id": "a", "name": "A"}, "health_score"),
        ("api:account-list", {"external_id": "a", "name": "A"}, "arr"),
        ("api:account-list", {"external_id": "a", "name": "A"}, "renewal_date"),
        ("api:account-list", {"external_id": "a"}, "name"),
        ("api:contact-list", {"email": "x@y.example"}, "timezone"),
        ("api:ticket-list", {"external_id": "t", "subject": "S"}, "opened_at"),
        ("api:usage-list", {"account_external_id": "a", "date": "2026-01-01"}, "active_users"),
    ],
)
def test_it_never_answers_500_to_odd_values(as_a, route, base, field, value):
    response = as_a.post(reverse(route), {**base, field: value})
    assert response.status_code in {200, 201, 400}, response.content
    if response.status_code == 400:
        assert response.json()["error"] == "invalid"


def test_it_refuses_nul_characters_which_the_database_cannot_store(as_a):
    url = reverse("api:account-list")
    single = as_a.post(url, {"external_id": "a", "name": "Bad\x00name"})
    assert single.status_code == 400
    assert list(single.json()["fields"]) == ["name"]
    assert "NUL" in single.json()["message"]
    batch = as_a.post(
        url,
        [
            {"external_id": "ok", "name": "Fine"},
            {"external_id": "b", "name": "B", "properties": {"note": ["x", "\x00"]}},
        ],
    )
    assert batch.status_code == 400
    assert batch.json()["message"].startswith("Item 1: properties.note[1] contains a NUL")
    assert count(Account) == 0


def test_it_documents_every_field_the_upsert_accepts():
    pairs = [
        (accounts_api.AccountInputSerializer, services.ACCOUNT_FIELDS),
        (accounts_api.ContactInputSerializer, services.CONTACT_FIELDS),
        (accounts_api.SupportTicketInputSerializer, services.TICKET_FIELDS),
        (accounts_api.UsageInputSerializer, services.USAGE_FIELDS),
    ]
    for serializer, fields in pairs:
        assert set(serializer().fields) == set(fields), serializer


# --- Lists and filters ----------------------------------------------------------------------


@pytest.fixture
def accounts_world(org_a, alice, bob):
    """Three accounts in org A with distinct values on every filtered field."""
    old = datetime(2025, 1, 1, tzinfo=UTC)
    initech = AccountFactory(
        organization=org_a,
        external_id="ext-initech",
        name="Initech",
        domain="initech.example",
        plan="enterprise",
        arr=Decimal("120000"),
        health_score=80,
        lifecycle_stage="active",
        owner=alice,
        updated_at=old,
    )
    hooli = AccountFactory(
        organization=org_a,
        external_id="ext-hooli",
        name="Hooli",
        domain="hooli.example",
        plan="growth",
        arr=Decimal("48000"),
        health_score=40,
        lifecycle_stage="renewal",
        owner=bob,
        updated_at=old,
    )
    globex = AccountFactory(
        organization=org_a,
        external_id="ext-globex",
        name="Globex",
        domain="globex.example",
        plan="starter",
        arr=None,
        health_score=None,
        lifecycle_stage="trial",
        owner=None,
    )
    return initech, hooli, globex


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("external_id=ext-hooli", ["hooli"]),
        ("plan=ENTERPRISE", ["initech"]),
        ("lifecycle_stage=renewal", ["hooli"]),
        ("owner=Alice@a.example", ["initech"]),
        ("arr_min=50000", ["initech"]),
        ("arr_max=50000", ["hooli"]),
        ("arr_min=40000&arr_max=130000", ["initech", "hooli"]),
        ("health_min=50", ["initech"]),
        ("health_max=50", ["hooli"]),
        ("updated_since=2025-06-01T00:00:00Z", ["globex"]),
        ("q=HOO", ["hooli"]),
        ("q=globex.example", ["globex"]),
        ("q=ext-init", ["initech"]),
        ("", ["initech", "hooli", "globex"]),
    ],
)
def test_it_filters_accounts(as_a, accounts_world, query, expected):
    by_name = {a.name.lower(): a.id for a in accounts_world}
    response = as_a.get(f"{reverse('api:account-list')}?{query}")
    assert sorted(ids_of(response)) == sorted(by_name[name] for name in expected)


def test_it_filters_accounts_and_contacts_by_segment(as_a, org_a, accounts_world):
    initech, hooli, globex = accounts_world
    pat = ContactFactory(account=initech, email="pat@initech.example", title="CTO")
    sam = ContactFactory(account=hooli, email="sam@hooli.example", title="Intern")
    segment = SegmentFactory(
        organization=org_a,
        rules={
            "match": "all",
            "conditions": [
                {"field": "arr", "op": "gte", "value": "40000"},
                {"field": "contact.title", "op": "eq", "value": "cto"},
            ],
        },
    )
    accounts = as_a.get(f"{reverse('api:account-list')}?segment={segment.id}")
    assert ids_of(accounts) == [initech.id]
    contacts = as_a.get(f"{reverse('api:contact-list')}?segment={segment.id}")
    assert ids_of(contacts) == [pat.id]
    everyone = SegmentFactory(organization=org_a, rules={"match": "all", "conditions": []})
    contacts = as_a.get(f"{reverse('api:contact-list')}?segment={everyone.id}&page_size=10")
    assert ids_of(contacts) == [sam.id, pat.id]


def test_it_answers_400_for_another_organizations_segment(as_a, org_b, accounts_world):
    theirs = SegmentFactory(organization=org_b)
    for route in ("api:account-list", "api:contact-list"):
        response = as_a.get(f"{reverse(route)}?segment={theirs.id}")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid"
        assert "No segment has this id" in response.json()["message"]
        assert "segment" in response.json()["fields"]


@pytest.mark.parametrize(
    ("route", "query"),
    [
        ("api:account-list", "arr_min=lots"),
        ("api:account-list", "arr_max=1e999"),
        ("api:account-list", "health_min=1.5"),
        ("api:account-list", "health_max=99999999999999999999999999"),
        ("api:account-list", "updated_since=yesterday"),
        ("api:account-list", "lifecycle_stage=zombie"),
        ("api:account-list", "segment=abc"),
        ("api:account-list", "segment=99999999999999999999999999"),
        ("api:account-list", "q=%00"),
        ("api:contact-list", "suppressed=maybe"),
        ("api:contact-list", "account=abc"),
        ("api:contact-list", "account=-3"),
        ("api:contact-list", "updated_since=2026-02-30T00:00:00Z"),
        ("api:ticket-list", "status=weird"),
        ("api:ticket-list", "priority=1"),
        ("api:ticket-list", "opened_since=not-a-date"),
        ("api:ticket-list", "opened_before=2026-13-01"),
        ("api:ticket-list", "account=99999999999999999999999999"),
        ("api:usage-list", "date_from=2026-13-01"),
        ("api:usage-list", "date_to=tomorrow"),
        ("api:usage-list", "account=1.5"),
    ],
)
def test_it_answers_400_json_to_bad_filter_values(as_a, route, query):
    response = as_a.get(f"{reverse(route)}?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid"
    assert query.split("=")[0] in body["fields"]
    assert body["message"]


@pytest.fixture
def contacts_world(org_a, accounts_world):
    initech, hooli, _ = accounts_world
    pat = ContactFactory(
        account=initech, email="pat@initech.example", external_id="c-pat", updated_at=now()
    )
    sam = ContactFactory(
        account=hooli,
        email="sam@hooli.example",
        external_id="c-sam",
        suppressed_reason="unsubscribed",
        suppressed_at=now(),
        updated_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    lone = ContactFactory(
        account=None,
        organization=org_a,
        email=None,
        external_id="c-lone",
        updated_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    return pat, sam, lone


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("email=PAT@initech.example", ["pat"]),
        ("external_id=c-lone", ["lone"]),
        ("account={initech}", ["pat"]),
        ("account_external_id=ext-hooli", ["sam"]),
        ("suppressed=true", ["sam"]),
        ("suppressed=false", ["pat", "lone"]),
        ("updated_since=2025-06-01", ["pat"]),
        ("", ["pat", "sam", "lone"]),
    ],
)
def test_it_filters_contacts(as_a, accounts_world, contacts_world, query, expected):
    names = dict(zip(["pat", "sam", "lone"], contacts_world, strict=True))
    query = query.format(initech=accounts_world[0].id)
    response = as_a.get(f"{reverse('api:contact-list')}?{query}")
    assert sorted(ids_of(response)) == sorted(names[name].id for name in expected)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("account={initech}", ["crash"]),
        ("account_external_id=ext-hooli", ["slow", "invoice"]),
        ("status=solved", ["invoice"]),
        ("priority=urgent", ["crash"]),
        ("opened_since=2026-01-10T00:00:00Z", ["crash", "slow"]),
        ("opened_before=2026-01-10T00:00:00Z", ["invoice"]),
        ("opened_since=2026-01-10&opened_before=2026-01-20", ["slow"]),
    ],
)
def test_it_filters_support_tickets(as_a, accounts_world, query, expected):
    initech, hooli, _ = accounts_world
    tickets = {
        "crash": SupportTicketFactory(
            account=initech, priority="urgent", opened_at=datetime(2026, 1, 25, tzinfo=UTC)
        ),
        "slow": SupportTicketFactory(
            account=hooli, status="pending", opened_at=datetime(2026, 1, 15, tzinfo=UTC)
        ),
        "invoice": SupportTicketFactory(
            account=hooli, status="solved", opened_at=datetime(2026, 1, 5, tzinfo=UTC)
        ),
    }
    query = query.format(initech=initech.id)
    response = as_a.get(f"{reverse('api:ticket-list')}?{query}")
    assert sorted(ids_of(response)) == sorted(tickets[name].id for name in expected)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("account={initech}", ["jan1", "jan2"]),
        ("account_external_id=ext-hooli", ["jan3"]),
        ("date_from=2026-01-02", ["jan2", "jan3"]),
        ("date_to=2026-01-02", ["jan1", "jan2"]),
        ("date_from=2026-01-02&date_to=2026-01-02", ["jan2"]),
    ],
)
def test_it_filters_usage(as_a, accounts_world, query, expected):
    initech, hooli, _ = accounts_world
    rows = {
        "jan1": UsageSnapshotFactory(account=initech, date=date(2026, 1, 1)),
        "jan2": UsageSnapshotFactory(account=initech, date=date(2026, 1, 2)),
        "jan3": UsageSnapshotFactory(account=hooli, date=date(2026, 1, 3)),
    }
    query = query.format(initech=initech.id)
    response = as_a.get(f"{reverse('api:usage-list')}?{query}")
    assert sorted(ids_of(response)) == sorted(rows[name].id for name in expected)


def test_it_pages_with_a_cursor_newest_first(as_a, org_a):
    made = [AccountFactory(organization=org_a).id for _ in range(5)]
    url = f"{reverse('api:account-list')}?page_size=2"
    seen, pages = [], 0
    while url:
        response = as_a.get(url)
        assert response.status_code == 200
        body = response.json()
        assert len(body["results"]) <= 2
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        pages += 1
    assert pages == 3
    assert seen == sorted(made, reverse=True)


def test_it_keeps_the_filters_on_the_next_page(as_a, org_a):
    growth = [AccountFactory(organization=org_a, plan="growth").id for _ in range(3)]
    AccountFactory.create_batch(2, organization=org_a, plan="enterprise")
    first = as_a.get(f"{reverse('api:account-list')}?plan=growth&page_size=2").json()
    second = as_a.get(first["next"]).json()
    assert [r["id"] for r in first["results"] + second["results"]] == growth[::-1]
    assert second["next"] is None


def _make_rows(kind, org, owner, n):
    for _ in range(n):
        account = AccountFactory(organization=org, owner=owner)
        contact = ContactFactory(account=account)
        if kind == "tickets":
            SupportTicketFactory(account=account, contact=contact)
        if kind == "usage":
            UsageSnapshotFactory(account=account)
        if kind == "segments":
            SegmentFactory(organization=org)


@pytest.mark.parametrize(
    ("route", "kind", "query"),
    [
        ("api:account-list", "accounts", ""),
        ("api:account-list", "accounts", "segment={segment}&plan=growth&q=customer"),
        ("api:contact-list", "contacts", ""),
        ("api:contact-list", "contacts", "segment={segment}&suppressed=false"),
        ("api:ticket-list", "tickets", ""),
        ("api:ticket-list", "tickets", "status=open&priority=normal"),
        ("api:usage-list", "usage", ""),
        ("api:usage-list", "usage", "date_to=2999-01-01"),
        ("api:segment-list", "segments", ""),
    ],
)
def test_it_lists_in_a_constant_number_of_queries(
    as_a, org_a, alice, route, kind, query, django_assert_max_num_queries
):
    segment = SegmentFactory(organization=org_a, rules={"match": "all", "conditions": []})
    url = f"{reverse(route)}?page_size=1000&{query.format(segment=segment.id)}"
    _make_rows(kind, org_a, alice, 3)
    as_a.get(url)  # the key's first use is recorded once a minute; not part of the count
    with CaptureQueriesContext(connection) as few:
        response = as_a.get(url)
    assert response.status_code == 200
    assert len(response.json()["results"]) >= 3

    _make_rows(kind, org_a, alice, 37)
    with django_assert_max_num_queries(len(few)):
        response = as_a.get(url)
    assert response.status_code == 200
    assert len(response.json()["results"]) >= 40
    assert len(few) <= 3, [q["sql"] for q in few.captured_queries]


def test_it_lists_segments_with_a_summary(as_a, org_a, org_b):
    segment = SegmentFactory(
        organization=org_a,
        name="Big growth",
        description="Worth a call",
        rules={
            "match": "all",
            "conditions": [
                {"field": "plan", "op": "in", "value": ["growth", "enterprise"]},
                {"field": "arr", "op": "gte", "value": "50000"},
            ],
        },
    )
    SegmentFactory(organization=org_b, name="Not ours")
    response = as_a.get(reverse("api:segment-list"))
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["id"] == segment.id
    assert row["name"] == "Big growth"
    assert row["description"] == "Worth a call"
    assert row["rules"] == segment.rules
    assert row["summary"] == "plan is one of growth, enterprise and arr ≥ 50000"
    assert {"created_at", "updated_at"} <= set(row)


def test_it_shows_only_the_keys_organization_in_lists(as_a, org_b, accounts_world):
    theirs = AccountFactory(organization=org_b, external_id="ext-hooli", plan="growth")
    their_rows = {
        "api:account-list": theirs.id,
        "api:contact-list": ContactFactory(account=theirs).id,
        "api:ticket-list": SupportTicketFactory(account=theirs).id,
        "api:usage-list": UsageSnapshotFactory(account=theirs).id,
        "api:segment-list": SegmentFactory(organization=org_b).id,
    }
    for route, their_id in their_rows.items():
        ids = ids_of(as_a.get(f"{reverse(route)}?page_size=1000"))
        assert their_id not in ids, route
    assert ids_of(as_a.get(f"{reverse('api:account-list')}?external_id=ext-hooli")) == [
        accounts_world[1].id
    ]


# --- Retrieve and delete --------------------------------------------------------------------


@pytest.fixture
def a_world(org_a, alice):
    account = AccountFactory(
        organization=org_a,
        external_id="acc-x",
        owner=alice,
        arr=Decimal("5000"),
        signed_up_on=now().date() - timedelta(days=30),
    )
    contact = ContactFactory(account=account, email="pat@initech.example", external_id="c-1")
    ticket = SupportTicketFactory(
        account=account,
        contact=contact,
        external_id="T-77",
        subject="It broke",
        opened_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
    )
    other_ticket = SupportTicketFactory(account=account, contact=None, external_id="T-78")
    usage = UsageSnapshotFactory(account=account, date=date(2026, 1, 2), active_users=7)
    return {
        "account": account,
        "contact": contact,
        "ticket": ticket,
        "other_ticket": other_ticket,
        "usage": usage,
    }


def test_it_retrieves_each_kind_of_row(as_a, a_world):
    account = as_a.get(reverse("api:account-detail", args=[a_world["account"].id]))
    assert account.status_code == 200
    assert account.json()["external_id"] == "acc-x"
    assert account.json()["arr"] == "5000.00"
    assert account.json()["owner_email"] == "alice@a.example"
    assert account.json()["tenure_days"] == 30

    contact = as_a.get(reverse("api:contact-detail", args=[a_world["contact"].id])).json()
    assert contact["email"] == "pat@initech.example"
    assert contact["account_id"] == a_world["account"].id
    assert contact["account_external_id"] == "acc-x"

    ticket = as_a.get(reverse("api:ticket-detail", args=[a_world["ticket"].id])).json()
    assert ticket["external_id"] == "T-77"
    assert ticket["contact_email"] == "pat@initech.example"
    assert ticket["opened_at"].startswith("2026-01-05T09:30:00")

    usage = as_a.get(reverse("api:usage-detail", args=[a_world["usage"].id])).json()
    assert usage["date"] == "2026-01-02"
    assert usage["active_users"] == 7
    assert usage["account_external_id"] == "acc-x"


def test_it_answers_404_json_for_an_unknown_id(as_a, a_world):
    for route in ("api:account-detail", "api:contact-detail", "api:contact-export"):
        response = as_a.get(reverse(route, args=[999999]))
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("route", "thing", "model"),
    [
        ("api:ticket-detail", "ticket", SupportTicket),
        ("api:usage-detail", "usage", UsageSnapshot),
        ("api:account-detail", "account", Account),
    ],
)
def test_it_deletes_a_row(as_a, a_world, route, thing, model):
    response = as_a.delete(reverse(route, args=[a_world[thing].id]))
    assert response.status_code == 204
    assert count(model, pk=a_world[thing].id) == 0
    assert as_a.get(reverse(route, args=[a_world[thing].id])).status_code == 404


def test_it_deletes_an_accounts_tickets_and_usage_but_keeps_its_contacts(as_a, a_world):
    assert as_a.delete(reverse("api:account-detail", args=[a_world["account"].id])).status_code == (
        204
    )
    assert count(SupportTicket) == 0
    assert count(UsageSnapshot) == 0
    with scopes_disabled():
        assert Contact.objects.get(pk=a_world["contact"].id).account is None


def test_it_erases_a_contact_for_gdpr(as_a, api_key_a, a_world, unscoped):
    contact, ticket = a_world["contact"], a_world["ticket"]
    response = as_a.delete(reverse("api:contact-detail", args=[contact.id]))
    assert response.status_code == 204
    assert not Contact.objects.filter(pk=contact.id).exists()
    ticket.refresh_from_db()
    assert ticket.contact is None
    assert SupportTicket.objects.filter(pk=a_world["other_ticket"].id).exists()
    record = ErasureRecord.objects.get()
    assert record.organization_id == a_world["account"].organization_id
    assert record.contact_id == contact.id
    assert record.email_sha256 == hashlib.sha256(b"pat@initech.example").hexdigest()
    assert record.erased_by == f"API key {api_key_a[0].prefix}…"
    stored = " ".join(str(value) for value in ErasureRecord.objects.values().get().values())
    assert "pat@" not in stored
    assert "initech" not in stored
    assert as_a.get(reverse("api:contact-detail", args=[contact.id])).status_code == 404


def test_it_exports_everything_held_about_a_contact(as_a, a_world):
    response = as_a.get(reverse("api:contact-export", args=[a_world["contact"].id]))
    assert response.status_code == 200
    body = response.json()
    assert body["contact"]["id"] == a_world["contact"].id
    assert body["contact"]["email"] == "pat@initech.example"
    assert body["contact"]["external_id"] == "c-1"
    assert body["contact"]["account"] == {
        "id": a_world["account"].id,
        "name": a_world["account"].name,
    }
    assert [t["external_id"] for t in body["support_tickets"]] == ["T-77"]
    assert body["support_tickets"][0]["subject"] == "It broke"


# --- Authentication and isolation -----------------------------------------------------------

LIST_ROUTES = [
    "api:account-list",
    "api:contact-list",
    "api:ticket-list",
    "api:usage-list",
    "api:segment-list",
]
OBJECT_ROUTES = [
    ("api:account-detail", "account"),
    ("api:contact-detail", "contact"),
    ("api:contact-export", "contact"),
    ("api:ticket-detail", "ticket"),
    ("api:usage-detail", "usage"),
]


def test_it_answers_401_json_without_a_key(api, a_world):
    for route in LIST_ROUTES:
        for method in ("get", "post") if route != "api:segment-list" else ("get",):
            response = getattr(api, method)(reverse(route), *([{}] if method == "post" else []))
            assert response.status_code == 401, (route, method)
            assert response.json()["error"] == "not_authenticated"
    for route, thing in OBJECT_ROUTES:
        url = reverse(route, args=[a_world[thing].id])
        for method in ("get", "delete") if route != "api:contact-export" else ("get",):
            response = getattr(api, method)(url)
            assert response.status_code == 401, (route, method)
    assert count(Contact) == 1
    assert count(Account) == 1
    assert count(SupportTicket) == 2


def test_it_answers_404_to_another_organizations_key_and_changes_nothing(api, api_key_b, a_world):
    api.key = api_key_b[1]
    for route, thing in OBJECT_ROUTES:
        url = reverse(route, args=[a_world[thing].id])
        response = api.get(url)
        assert response.status_code == 404, route
        assert response.json() == {"error": "not_found", "message": "Not found.", "fields": {}}
        assert "pat@" not in response.content.decode()
        if route != "api:contact-export":
            assert api.delete(url).status_code == 404, route
    assert count(Account) == 1
    assert count(Contact) == 1
    assert count(SupportTicket) == 2
    assert count(UsageSnapshot) == 1
    assert count(ErasureRecord) == 0


def test_it_does_not_update_another_organizations_rows_through_an_upsert(
    api, api_key_b, a_world, org_b
):
    api.key = api_key_b[1]
    response = api.post(reverse("api:account-list"), {"external_id": "acc-x", "name": "Mine"})
    assert response.status_code == 201
    assert count(Account) == 2
    with scopes_disabled():
        assert Account.objects.get(pk=a_world["account"].id).name != "Mine"
    response = api.post(
        reverse("api:contact-list"),
        {"email": "someone@b.example", "account_external_id": "acc-x"},
    )
    assert response.json()["data"]["account_id"] == response_account_id(org_b, "acc-x")


def response_account_id(org, external_id):
    with scopes_disabled():
        return Account.objects.get(organization=org, external_id=external_id).id


def test_it_publishes_the_routes_in_the_schema_with_their_tags(client, db):
    import yaml

    schema = yaml.safe_load(client.get(reverse("api:schema")).content)
    tags = {
        "/api/v1/accounts/": "accounts",
        "/api/v1/contacts/{id}/export": "contacts",
        "/api/v1/support-tickets/{id}": "support tickets",
        "/api/v1/usage/": "usage",
        "/api/v1/segments/": "segments",
    }
    for path, tag in tags.items():
        for operation in schema["paths"][path].values():
            assert operation["tags"] == [tag]
    post = schema["paths"]["/api/v1/contacts/"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    one_of = schema["components"]["schemas"][body.rsplit("/", 1)[1]]["oneOf"]
    assert {"$ref": "#/components/schemas/ContactInput"} in one_of
    assert {"type": "array", "items": {"$ref": "#/components/schemas/ContactInput"}} in one_of
    assert {"201", "200", "400"} <= set(post["responses"])
