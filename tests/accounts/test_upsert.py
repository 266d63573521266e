"""The one upsert behind REST, CSV and the demo: identity, idempotency, per-item errors."""

import random
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


def contact_state() -> list[dict]:
    return list(
        Contact.objects.order_by("id").values(
            "email", "external_id", "name", "phone", "title", "locale", "account__external_id",
            "properties", "suppressed_reason", "suppression_note",
        )
    )  # fmt: skip


def test_it_merges_a_mixed_contact_batch_by_the_same_rules_on_every_database(in_a):
    upsert(in_a, "accounts", ACCOUNTS)
    first = upsert(
        in_a,
        "contacts",
        [
            {"email": "a@x.example", "external_id": "c-1", "name": "Ann", "title": "CTO",
             "account_external_id": "acc-1", "properties": {"region": "EU"},
             "suppressed_reason": "bounced"},
            {"email": "b@x.example", "name": "Bo", "phone": "123", "account_external_id": "acc-2"},
            {"external_id": "c-3", "locale": "de_DE"},
        ],
    )  # fmt: skip
    assert [r.status for r in first.results] == ["created"] * 3
    assert [r.id for r in first.results] == list(
        Contact.objects.order_by("id").values_list("id", flat=True)
    )
    bounced_at = Contact.objects.get(external_id="c-1").suppressed_at
    assert bounced_at is not None

    second = upsert(
        in_a,
        "contacts",
        [
            {"email": "a@x.example", "title": "", "properties": {"tier": "gold"},
             "suppressed_reason": "bounced"},
            {"email": "b@x.example", "account_external_id": "", "phone": None,
             "suppressed_reason": "unsubscribed", "suppression_note": "Asked by phone"},
            {"external_id": "c-3", "email": "C@x.example"},
            {"email": "d@x.example", "name": "Dee", "account_external_id": "acc-1",
             "properties.plan": "pro"},
        ],
    )  # fmt: skip
    assert [r.status for r in second.results] == ["updated", "updated", "updated", "created"]
    assert [r.id for r in second.results[:3]] == [r.id for r in first.results]
    assert second.results[3].id == Contact.objects.get(email="d@x.example").pk
    # Blank cells of a file leave everything as it is, suppression included.
    third = upsert(
        in_a,
        "contacts",
        [{"email": "a@x.example", "name": "", "suppressed_reason": "", "title": " "}],
        blank_unsets=True,
    )
    assert third.results[0].status == "updated"

    base = {"phone": "", "title": "", "locale": "", "suppression_note": ""}
    assert contact_state() == [
        base | {"email": "a@x.example", "external_id": "c-1", "name": "Ann",
                "account__external_id": "acc-1", "properties": {"region": "EU", "tier": "gold"},
                "suppressed_reason": "bounced"},
        base | {"email": "b@x.example", "external_id": None, "name": "Bo",
                "account__external_id": None, "properties": {},
                "suppressed_reason": "unsubscribed", "suppression_note": "Asked by phone"},
        base | {"email": "c@x.example", "external_id": "c-3", "name": "", "locale": "de-DE",
                "account__external_id": None, "properties": {}, "suppressed_reason": ""},
        base | {"email": "d@x.example", "external_id": None, "name": "Dee",
                "account__external_id": "acc-1", "properties": {"plan": "pro"},
                "suppressed_reason": ""},
    ]  # fmt: skip
    assert Contact.objects.get(external_id="c-1").suppressed_at == bounced_at
    assert Contact.objects.get(email="b@x.example").suppressed_at is not None
    assert Contact.objects.get(email="d@x.example").suppressed_at is None


def test_it_does_not_write_rows_that_would_not_change(in_a):
    upsert(in_a, "accounts", ACCOUNTS)
    contacts = [
        {"email": "a@x.example", "name": "Ann", "account_external_id": "acc-1",
         "properties": {"region": "EU"}, "suppressed_reason": "bounced"},
        {"external_id": "c-2", "title": "CFO"},
    ]  # fmt: skip
    upsert(in_a, "contacts", contacts)
    long_ago = now() - timedelta(days=30)
    Contact.objects.update(updated_at=long_ago)
    Account.objects.update(updated_at=long_ago)

    again = upsert(in_a, "contacts", contacts)
    accounts_again = upsert(in_a, "accounts", ACCOUNTS)

    assert [r.status for r in again.results] == ["updated", "updated"]
    assert [r.status for r in accounts_again.results] == ["updated", "updated"]
    assert set(Contact.objects.values_list("updated_at", flat=True)) == {long_ago}
    assert set(Account.objects.values_list("updated_at", flat=True)) == {long_ago}

    upsert(in_a, "contacts", [{"external_id": "c-2", "title": "CEO"}, contacts[0]])
    assert Contact.objects.get(email="a@x.example").updated_at == long_ago
    assert Contact.objects.get(external_id="c-2").updated_at > long_ago


def test_it_takes_a_prepared_batch_bigger_than_the_api_limit(in_a):
    items = [{"email": f"p{n}@x.example"} for n in range(services.MAX_BATCH + 200)]
    prepared = services.records_prepare(kind="contacts", items=items, blank_unsets=True)
    report = services.records_upsert(organization=in_a, kind="contacts", prepared=prepared)
    assert report.created == services.MAX_BATCH + 200
    assert Contact.objects.count() == services.MAX_BATCH + 200


def random_contact_batches(seed: int) -> list[tuple[list, bool]]:
    """Batches that reuse a few emails and external_ids in every combination, with blank,
    unknown and invalid values: (items, blank_unsets)."""
    rng = random.Random(seed)

    def maybe(*values):
        return rng.choice(values)

    batches = []
    for _ in range(4):
        items, used = [], set()
        for _ in range(40):
            email = maybe(None, "", *(f"p{n}@x.example" for n in range(12)))
            external_id = maybe(None, "", None, *(f"c-{n}" for n in range(12)))
            if (email, external_id) in used:
                continue
            used.add((email, external_id))
            item = {"email": email, "external_id": external_id}
            item |= rng.choice([{}, {"name": maybe("Ann", "Bo", "", None)}])
            item |= rng.choice([{}, {"title": maybe("CTO", " ", "Head of Ops")}])
            item |= rng.choice([{}, {"account_external_id": maybe("acc-1", "acc-2", "", "x")}])
            item |= rng.choice([{}, {"suppressed_reason": maybe("bounced", "", "unsubscribed")}])
            item |= rng.choice([{}, {"properties": {"tier": maybe("gold", "silver")}}])
            item |= rng.choice([{}, {"properties.region": maybe("EU", "US", "")}])
            item |= rng.choice([{}, {"locale": maybe("de_DE", "en", "not a locale!")}])
            items.append({k: v for k, v in item.items() if v is not None or rng.random() < 0.5})
        batches.append((items, rng.random() < 0.5))
    return batches


def outcome(org, batches) -> tuple[list, list]:
    reports = []
    with scope(organization=org):
        upsert(org, "accounts", ACCOUNTS)
        for items, blank_unsets in batches:
            report = upsert(org, "contacts", items, blank_unsets=blank_unsets)
            reports.append([(r.status, r.key, r.errors) for r in report.results])
        state = sorted(
            (
                {name: value for name, value in row.items() if name != "suppressed_at"}
                | {"suppressed": row["suppressed_at"] is not None}
                for row in Contact.objects.values(
                    "email", "external_id", "name", "title", "locale", "account__external_id",
                    "properties", "suppressed_reason", "suppressed_at",
                )
            ),
            key=repr,
        )  # fmt: skip
    return reports, state


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_gives_the_same_results_through_the_staged_write(org_a, org_b, monkeypatch, seed):
    """On PostgreSQL contacts go through a staging table; the row-by-row merge that the
    other kinds (and SQLite) use must come to the same reports and the same rows."""
    batches = random_contact_batches(seed)
    staged = outcome(org_a, batches)
    monkeypatch.setattr(services, "writes_staged", lambda kind: False)
    row_by_row = outcome(org_b, batches)
    assert staged == row_by_row
    assert any(status == "updated" for report in staged[0] for status, _, _ in report)
    assert any(status == "error" for report in staged[0] for status, _, _ in report)


def test_it_takes_an_empty_email_or_external_id_next_to_the_other_identity(in_a):
    upsert(in_a, "contacts", [{"email": "a@x.example", "external_id": "c-1"}])
    report = upsert(
        in_a,
        "contacts",
        [{"email": "", "external_id": "c-1"}, {"email": "b@x.example", "external_id": ""}],
    )
    assert [r.status for r in report.results] == ["updated", "created"]
    assert list(Contact.objects.order_by("id").values_list("email", "external_id")) == [
        (None, "c-1"),
        ("b@x.example", None),
    ]


@pytest.mark.parametrize("blank_unsets", [True, False])
def test_it_keeps_tabs_backslashes_and_line_breaks_in_values(in_a, blank_unsets):
    """On PostgreSQL the values travel in COPY's text format, where these are special."""
    tricky = "a\tb\\c\nd\re \\N"
    upsert(in_a, "accounts", ACCOUNTS)
    item = {
        "email": "tricky@x.example",
        "external_id": "c\\1",
        "name": tricky,
        "title": "\\N",
        "account_external_id": "acc-1",
        "properties": {"note": tricky, "path": "C:\\temp"},
    }
    created = upsert(in_a, "contacts", [item], blank_unsets=blank_unsets)
    assert [r.status for r in created.results] == ["created"]
    contact = Contact.objects.get(pk=created.results[0].id)
    assert (contact.external_id, contact.name, contact.title) == ("c\\1", tricky, "\\N")
    assert contact.properties == {"note": tricky, "path": "C:\\temp"}
    assert contact.account.external_id == "acc-1"

    changed = {**item, "name": "x\\y", "title": "", "properties": {"more": "\t"}}
    updated = upsert(in_a, "contacts", [changed], blank_unsets=blank_unsets)
    assert [(r.status, r.id) for r in updated.results] == [("updated", contact.pk)]
    contact.refresh_from_db()
    assert contact.name == "x\\y"
    assert contact.title == ("\\N" if blank_unsets else "")
    assert contact.properties == {"note": tricky, "path": "C:\\temp", "more": "\t"}


def test_it_creates_new_contacts_with_ids_in_the_order_of_the_items(in_a):
    items = [{"email": f"p{n}@x.example", "name": f"P {n}"} for n in range(30)]
    report = upsert(in_a, "contacts", items)
    ids = [r.id for r in report.results]
    assert ids == sorted(ids)
    assert [Contact.objects.get(pk=pk).email for pk in ids] == [i["email"] for i in items]


def test_it_updates_a_contact_created_by_another_request_meanwhile(in_a, monkeypatch):
    """The batch is read, then another request creates one of its contacts: the write
    breaks the unique index and the upsert tries again, now updating it."""
    first = upsert(in_a, "contacts", [{"email": "race@x.example", "name": "First"}])
    lookups = {"existing": services._existing_identities, "_existing": services._existing}
    calls = []

    def missing_once(name):
        def lookup(*args, **kwargs):
            calls.append(name)
            return {} if len(calls) == 1 else lookups[name](*args, **kwargs)

        return lookup

    monkeypatch.setattr(services, "_existing_identities", missing_once("existing"))
    monkeypatch.setattr(services, "_existing", missing_once("_existing"))
    items = [{"email": "race@x.example", "name": "Second"}, {"email": "new@x.example"}]
    report = upsert(in_a, "contacts", items)
    assert len(calls) == 2
    assert [r.status for r in report.results] == ["updated", "created"]
    assert report.results[0].id == first.results[0].id
    assert Contact.objects.get(email="race@x.example").name == "Second"
    assert Contact.objects.count() == 2
