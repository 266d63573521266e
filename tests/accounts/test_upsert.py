"""The one upsert behind REST, CSV and the demo: identity, idempotency, per-item errors."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils.timezone import now
from django_scopes import scope

from accounts import services
from accounts.models import Account, Contact, SupportTicket, UsageSnapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_a(org_a):
    with scope(organization=org_a):
        yield org_a


def upsert(org, kind, items, **kwargs):
    return services.records_upsert(organization=org, kind=kind, items=items, **kwargs)


ACCOUNTS = [
    {"external_id": "acc-1", "name": "Initech", "plan": "Enterprise", "arr": "120,000"},
    {"external_id": "acc-2", "name": "Hooli", "plan": "growth", "arr": 48000, "health_score": 41},
]


def test_it_creates_then_updates_the_same_payload_to_the_same_state(in_a):
    first = upsert(in_a, "accounts", ACCOUNTS)
    assert [r.status for r in first.results] == ["created", "created"]
    state = list(Account.objects.order_by("external_id").values("external_id", "plan", "arr"))
    second = upsert(in_a, "accounts", ACCOUNTS)
    assert [r.status for r in second.results] == ["updated", "updated"]
    assert [r.id for r in second.results] == [r.id for r in first.results]
    assert list(Account.objects.order_by("external_id").values("external_id", "plan", "arr")) == (
        state
    )
    assert state[0] == {"external_id": "acc-1", "plan": "enterprise", "arr": Decimal("120000.00")}


def test_it_reports_errors_per_item_and_saves_the_valid_ones(in_a, alice):
    report = upsert(
        in_a,
        "accounts",
        [
            {"external_id": "ok-1", "name": "Good", "owner_email": "alice@a.example"},
            {"external_id": "bad-1", "name": "Bad", "arr": "lots"},
            {
                "external_id": "bad-2",
                "name": "Future",
                "signed_up_on": str(now().date() + timedelta(days=3)),
            },
            {"external_id": "ok-1", "name": "Twice"},
            {"external_id": "bad-3", "name": "Nobody", "owner_email": "ghost@x.example"},
            {"name": "No id"},
            {"external_id": "bad-4"},
            "not an object",
            {"external_id": "bad-5", "name": "X", "colour": "red"},
        ],
    )
    statuses = [r.status for r in report.results]
    assert statuses == ["created"] + ["error"] * 8
    errors = [r.errors for r in report.results]
    assert "is not a number" in errors[1]["arr"][0]
    assert "in the future" in errors[2]["signed_up_on"][0]
    assert "appears twice in this batch (first at item 0)" in errors[3]["external_id"][0]
    assert "not a member" in errors[4]["owner_email"][0]
    assert errors[5] == {"external_id": ["external_id is required."]}
    assert errors[6] == {"name": ["name is required for a new record."]}
    assert errors[7] == {"non_field_errors": ["Each item must be an object."]}
    assert "Unknown field" in errors[8]["colour"][0]
    assert list(Account.objects.values_list("external_id", flat=True)) == ["ok-1"]
    assert Account.objects.get().owner == alice


def test_it_upserts_contacts_by_email_or_external_id(in_a):
    upsert(in_a, "accounts", ACCOUNTS)
    first = upsert(
        in_a,
        "contacts",
        [
            {"email": "Ann@Initech.example", "name": "Ann", "account_external_id": "acc-1"},
            {"external_id": "c-2", "email": "bo@hooli.example", "account_external_id": "acc-2"},
        ],
    )
    assert [r.status for r in first.results] == ["created", "created"]
    again = upsert(
        in_a,
        "contacts",
        [
            {"email": "ann@initech.example", "external_id": "c-1", "title": "CTO"},
            {"external_id": "c-2", "name": "Bo"},
        ],
    )
    assert [r.status for r in again.results] == ["updated", "updated"]
    ann = Contact.objects.get(email="ann@initech.example")
    assert (ann.external_id, ann.title, ann.name, ann.account.external_id) == (
        "c-1",
        "CTO",
        "Ann",
        "acc-1",
    )
    assert Contact.objects.count() == 2


def test_it_refuses_an_email_that_belongs_to_another_contact(in_a):
    upsert(in_a, "contacts", [{"external_id": "c-1", "email": "a@x.example"}])
    upsert(in_a, "contacts", [{"external_id": "c-2", "email": "b@x.example"}])
    report = upsert(in_a, "contacts", [{"external_id": "c-1", "email": "b@x.example"}])
    assert "belongs to another contact" in report.results[0].errors["email"][0]
    assert Contact.objects.get(external_id="c-1").email == "a@x.example"


def test_it_explains_bad_contact_values(in_a):
    report = upsert(
        in_a,
        "contacts",
        [
            {"email": "not-an-email"},
            {"email": "x@y.example", "account_external_id": "missing"},
            {"email": "z@y.example", "timezone": "Mars/Olympus"},
            {"name": "nobody"},
        ],
    )
    errors = [r.errors for r in report.results]
    assert "not a valid email address" in errors[0]["email"][0]
    assert "No account has the external_id “missing”" in errors[1]["account_external_id"][0]
    assert "time zone" in errors[2]["timezone"][0]
    assert errors[3] == {"email": ["email or external_id is required."]}
    assert Contact.objects.count() == 0


def test_it_records_suppression_with_when_and_clears_it(in_a):
    upsert(in_a, "contacts", [{"email": "a@x.example", "suppressed_reason": "bounced"}])
    contact = Contact.objects.get()
    assert contact.suppressed_reason == "bounced"
    assert contact.suppressed_at is not None
    upsert(in_a, "contacts", [{"email": "a@x.example", "suppressed_reason": ""}])
    contact.refresh_from_db()
    assert (contact.suppressed_reason, contact.suppressed_at) == ("", None)


def test_it_leaves_fields_alone_for_blank_csv_cells(in_a):
    upsert(in_a, "accounts", ACCOUNTS)
    upsert(
        in_a,
        "accounts",
        [{"external_id": "acc-1", "name": "", "plan": "", "arr": ""}],
        blank_unsets=True,
    )
    account = Account.objects.get(external_id="acc-1")
    assert (account.name, account.plan, account.arr) == ("Initech", "enterprise", Decimal("120000"))


def test_it_merges_properties(in_a):
    upsert(in_a, "accounts", [{"external_id": "a", "name": "A", "properties": {"region": "EU"}}])
    upsert(in_a, "accounts", [{"external_id": "a", "properties.tier": "gold"}])
    assert Account.objects.get().properties == {"region": "EU", "tier": "gold"}


def test_it_upserts_tickets_and_usage(in_a):
    upsert(in_a, "accounts", ACCOUNTS)
    upsert(in_a, "contacts", [{"email": "ann@initech.example", "account_external_id": "acc-1"}])
    tickets = [
        {
            "external_id": "T-1",
            "account_external_id": "acc-1",
            "contact_email": "ann@initech.example",
            "subject": "Export broken",
            "status": "Open",
            "priority": "urgent",
            "opened_at": "2026-10-01T10:00:00Z",
        },
        {
            "external_id": "T-2",
            "account_external_id": "acc-9",
            "subject": "x",
            "opened_at": "2026-10-01",
        },
    ]
    report = upsert(in_a, "tickets", tickets)
    assert [r.status for r in report.results] == ["created", "error"]
    assert upsert(in_a, "tickets", tickets[:1]).results[0].status == "updated"
    ticket = SupportTicket.objects.get()
    assert (ticket.status, ticket.priority, ticket.contact.email) == (
        "open",
        "urgent",
        "ann@initech.example",
    )

    usage = [{"account_external_id": "acc-1", "date": "2026-10-01", "active_users": 12}]
    assert upsert(in_a, "usage", usage).results[0].status == "created"
    assert upsert(in_a, "usage", usage).results[0].status == "updated"
    assert UsageSnapshot.objects.get().active_users == 12


def test_it_refuses_more_than_a_thousand_items(in_a):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="at most 1000"):
        upsert(in_a, "accounts", [{"external_id": str(n), "name": "x"} for n in range(1001)])


def test_it_keeps_tenants_apart(in_a, org_b):
    upsert(in_a, "accounts", ACCOUNTS)
    with scope(organization=org_b):
        report = services.records_upsert(organization=org_b, kind="accounts", items=ACCOUNTS)
        assert [r.status for r in report.results] == ["created", "created"]
        assert Account.objects.count() == 2
