"""Importing past responses from a CSV file, a Delighted export as it is: scores, comments,
dates in every shape, tags, notes, person properties on the account; the rows that cannot
be imported in the error report; a second import that changes nothing; and old answers
that open no follow-up."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts import import_kinds, imports
from accounts.models import Account, Contact, ImportJob, ImportStatus
from followups.models import FollowUp
from responses import events
from responses.models import Response, ResponseNote
from tests.accounts.factories import AccountFactory, ContactFactory
from tests.fixtures import delighted_export

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def export():
    responses, people, expected = delighted_export.generate()
    return delighted_export.as_csv(responses), delighted_export.as_csv(people), expected


def upload(client, content: bytes, *, kind="responses", name="delighted.csv"):
    file = SimpleUploadedFile(name, content, content_type="text/csv")
    return client.post(reverse("accounts:imports"), {"kind": kind, "file": file})


def the_job(org) -> ImportJob:
    with scopes_disabled():
        return ImportJob.objects.filter(organization=org).latest("created_at")


def do_import(client, org, content, capture, *, kind="responses", choices=None) -> ImportJob:
    response = upload(client, content, kind=kind)
    assert response.status_code == 302, response.content.decode()
    job = the_job(org)
    chosen = {**job.mapping, **(choices or {})}
    data = {f"map-{n}": chosen.get(header, "") for n, header in enumerate(job.headers)}
    with capture(execute=True):
        response = client.post(reverse("accounts:import_detail", args=[job.pk]), data)
    assert response.status_code == 302, response.content.decode()
    job.refresh_from_db()
    return job


def error_rows(client, job) -> list[dict]:
    response = client.get(reverse("accounts:import_errors", args=[job.pk]))
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def csv_bytes(rows) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


# --- The fixture is what the generator makes -------------------------------------------------


def test_it_keeps_the_committed_fixture_in_step_with_its_generator(export):
    responses, people, expected = export
    assert delighted_export.RESPONSES_CSV.read_bytes() == responses
    assert delighted_export.PEOPLE_CSV.read_bytes() == people
    assert expected["good"] + len(expected["bad"]) == 420
    assert expected["with_comment"] < expected["good"]  # blank comments are there too


# --- Recognising the columns -----------------------------------------------------------------


def test_it_recognises_a_delighted_export_and_its_header_variants():
    mapping = imports.auto_mapping("responses", delighted_export.RESPONSE_HEADERS)
    assert mapping == {
        "Response ID": "external_id",
        "Name": "contact_name",
        "Email": "email",
        "Score": "score",
        "Comment": "comment",
        "Created at": "submitted_at",
        "Updated at": "properties.updated_at",
        "Tags": "tags",
        "Notes": "notes",
        "Permalink": "properties.permalink",
        "Company": "account_name",
        "Plan": "plan",
        "ARR": "arr",
        "Locale": "locale",
        "Country": "properties.country",
        "Delighted Source": "properties.delighted_source",
    }
    api_names = imports.auto_mapping(
        "responses",
        ["id", "person_email", "score", "comment", "created_at", "person_properties[Plan]",
         "person_properties[Customer Tier]", "Response timestamp"],
    )  # fmt: skip
    assert api_names == {
        "id": "external_id",
        "person_email": "email",
        "score": "score",
        "comment": "comment",
        "created_at": "submitted_at",
        "person_properties[Plan]": "plan",
        "person_properties[Customer Tier]": "properties.customer_tier",
        "Response timestamp": "properties.response_timestamp",  # the date is taken already
    }


def test_it_asks_for_a_score_a_date_and_a_person(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    upload(as_alice, b"Comment,Company\nGreat,Initech\n")
    job = the_job(org_a)
    data = {f"map-{n}": job.mapping[h] for n, h in enumerate(job.headers)}
    page = as_alice.post(reverse("accounts:import_detail", args=[job.pk]), data).content.decode()
    assert "Map a column to email or contact_external_id" in page
    assert "Map a column to score: each row needs one." in page
    assert "Map a column to submitted_at: each row needs one." in page


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2024-03-05T14:22:01Z", datetime(2024, 3, 5, 14, 22, 1, tzinfo=UTC)),
        ("2024-03-05 14:22:01 UTC", datetime(2024, 3, 5, 14, 22, 1, tzinfo=UTC)),
        ("2024-03-05 15:22:01 +01:00", datetime(2024, 3, 5, 14, 22, 1, tzinfo=UTC)),
        ("1709648521", datetime(2024, 3, 5, 14, 22, 1, tzinfo=UTC)),
        ("1709648521000", datetime(2024, 3, 5, 14, 22, 1, tzinfo=UTC)),
        ("3/5/2024 2:22 PM", datetime(2024, 3, 5, 14, 22, tzinfo=UTC)),
        ("13/05/2024", datetime(2024, 5, 13, tzinfo=UTC)),
        ("05.03.2024 14:22", datetime(2024, 3, 5, 14, 22, tzinfo=UTC)),
        ("March 5, 2024", datetime(2024, 3, 5, tzinfo=UTC)),
        ("5 Mar 2024", datetime(2024, 3, 5, tzinfo=UTC)),
        ("2024年3月5日", datetime(2024, 3, 5, tzinfo=UTC)),
        ("Tue, 05 Mar 2024 14:22:01 +0000", datetime(2024, 3, 5, 14, 22, 1, tzinfo=UTC)),
    ],
)
def test_it_reads_dates_in_the_shapes_exports_write_them(text, moment):
    assert import_kinds.parse_when(text) == moment


@pytest.mark.parametrize("text", ["31/02/2024", "yesterday", "0000-00-00", "1899-12-30", "N/A"])
def test_it_refuses_dates_it_cannot_read(text):
    with pytest.raises(ValueError, match="date"):
        import_kinds.parse_when(text)


# --- Importing the Delighted export ----------------------------------------------------------


def test_it_imports_a_delighted_export_with_everything_in_it(
    as_alice, org_a, export, django_capture_on_commit_callbacks
):
    content, _, expected = export
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)

    assert job.status == ImportStatus.DONE, job.failure
    assert (job.created_count, job.updated_count, job.error_count) == (
        expected["good"],
        0,
        len(expected["bad"]),
    )
    assert job.total_rows == job.processed_rows == 420
    with scope(organization=org_a):
        responses = {r.external_id: r for r in Response.objects.select_related("contact")}
        assert len(responses) == expected["good"]
        assert {r.channel for r in responses.values()} == {"import"}
        for category, count in expected["categories"].items():
            assert sum(r.category == category for r in responses.values()) == count, category
        assert sum(r.has_comment for r in responses.values()) == expected["with_comment"]
        for external_id, (email, score, when, tags, notes) in expected["by_id"].items():
            response = responses[external_id]
            assert (response.contact.email, response.score) == (email, score), external_id
            assert response.submitted_at == datetime.fromisoformat(when), external_id
            assert response.tags == tags, external_id
            assert [n.body for n in response.notes.all()] == notes, external_id
        assert ResponseNote.objects.count() == expected["notes"]
        assert set(ResponseNote.objects.values_list("imported", flat=True)) <= {True}

        # Mixed languages and the person properties that are not account fields.
        japanese = Response.objects.filter(comment__contains="サポート").first()
        assert japanese is not None
        assert japanese.properties["country"] == "JP"
        assert japanese.properties["permalink"].startswith("https://app.delighted.example/r/")
        assert "plan" not in japanese.properties  # it went to the account

        # Person properties on the accounts, one per company.
        accounts = {a.name: a for a in Account.objects.all()}
        assert set(accounts) == set(expected["accounts"])
        for company, (plan, arr) in expected["accounts"].items():
            assert accounts[company].plan == plan, company
            expected_arr = Decimal(arr.replace("$", "").replace(",", "")) if arr else None
            assert accounts[company].arr == expected_arr, company
        contacts = Contact.objects.select_related("account")
        assert contacts.count() == expected["people_answering"]
        anke = contacts.get(email="p004.schfer@c4.example")
        assert (anke.name, anke.locale, anke.account.name) == (
            "Anke Schäfer",
            "de",
            "Müller Maschinenbau GmbH",
        )
        newest = Response.objects.filter(account=anke.account).order_by("-submitted_at")[0]
        assert anke.account.last_score == newest.score
        # All of it is history: no follow-up was opened for answers from 2023–2024.
        assert FollowUp.objects.count() == 0


def test_it_lists_every_bad_row_with_its_reason_while_the_good_ones_land(
    as_alice, org_a, export, django_capture_on_commit_callbacks
):
    content, _, expected = export
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    rows = {int(row["row"]): row for row in error_rows(as_alice, job)}
    assert sorted(rows) == [line for line, _, _ in expected["bad"]]
    for line, field_name, message in expected["bad"]:
        assert rows[line]["errors"].startswith(f"{field_name}: "), rows[line]
        assert message in rows[line]["errors"], rows[line]
    first = rows[expected["bad"][0][0]]
    assert first["Response ID"]
    assert first["key"] == first["Response ID"]
    assert first["Score"] == "11"  # the original cells follow


def test_it_changes_nothing_when_the_export_is_imported_again(
    as_alice, org_a, export, django_capture_on_commit_callbacks
):
    content, _, expected = export
    fields = ["external_id", "score", "comment", "submitted_at", "tags", "properties",
              "updated_at", "contact_id", "account_id"]  # fmt: skip
    do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    with scope(organization=org_a):
        before = list(Response.objects.order_by("external_id").values(*fields))
        notes = list(ResponseNote.objects.order_by("pk").values_list("pk", "body"))
        accounts = list(Account.objects.order_by("pk").values("pk", "name", "plan", "arr"))
        people = Contact.objects.count()

    received = []
    events.response_recorded.connect(
        lambda **kw: received.append(kw), weak=False, dispatch_uid="reimport"
    )
    try:
        again = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    finally:
        events.response_recorded.disconnect(dispatch_uid="reimport")

    assert (again.created_count, again.updated_count, again.error_count) == (
        0,
        expected["good"],
        len(expected["bad"]),
    )
    with scope(organization=org_a):
        assert list(Response.objects.order_by("external_id").values(*fields)) == before
        assert list(ResponseNote.objects.order_by("pk").values_list("pk", "body")) == notes
        assert list(Account.objects.order_by("pk").values("pk", "name", "plan", "arr")) == (
            accounts
        )
        assert Contact.objects.count() == people
    assert received == []  # nothing changed, so nothing was announced


def test_it_updates_a_reimported_response_whose_score_changed(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    header = ["Response ID", "Email", "Score", "Comment", "Created at", "Notes"]
    first = csv_bytes([header, ["r-1", "ann@initech.example", "3", "", "2024-01-02", "Called"]])
    second = csv_bytes(
        [header, ["r-1", "ann@initech.example", "9", "Now great", "2024-01-02", "Called\nFixed"]]
    )
    do_import(as_alice, org_a, first, django_capture_on_commit_callbacks)
    job = do_import(as_alice, org_a, second, django_capture_on_commit_callbacks)
    assert (job.created_count, job.updated_count) == (0, 1)
    with scope(organization=org_a):
        response = Response.objects.get()
        assert (response.score, response.category, response.comment) == (
            9,
            "promoter",
            "Now great",
        )
        assert sorted(response.notes.values_list("body", flat=True)) == ["Called", "Fixed"]


def test_it_keeps_what_is_known_of_existing_contacts_and_accounts(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    crm = AccountFactory(organization=org_a, external_id="crm-7", name="Initech Corp", plan="x")
    ContactFactory(organization=org_a, account=crm, email="ann@initech.example", name="Ann CRM")
    with scopes_disabled():
        Account.objects.filter(pk=crm.pk).update(last_score_at=datetime(2025, 1, 1, tzinfo=UTC))
    content = csv_bytes(
        [
            ["Email", "Name", "Score", "Created at", "Company", "Plan"],
            ["ann@initech.example", "Ann Old", "7", "2024-06-01", "Initech", "starter"],
        ]
    )
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    assert (job.created_count, job.error_count) == (1, 0)
    with scope(organization=org_a):
        contact = Contact.objects.get()
        response = Response.objects.get()
        assert contact.name == "Ann CRM"  # a file fills blanks, never overwrites
        assert response.account_id == crm.pk  # the contact's own account, not a new one
        crm.refresh_from_db()
        assert (Account.objects.count(), crm.name, crm.plan) == (1, "Initech Corp", "x")


def test_it_opens_follow_ups_only_for_recent_imported_answers(
    as_alice, org_a, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_FOLLOWUP_MAX_AGE_DAYS = 14
    recent = (now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    content = csv_bytes(
        [
            ["Response ID", "Email", "Score", "Created at"],
            ["old-1", "old@initech.example", "2", "2024-01-02T10:00:00Z"],
            ["new-1", "new@initech.example", "2", recent],
        ]
    )
    received = []
    events.response_recorded.connect(
        lambda **kw: received.append(kw), weak=False, dispatch_uid="history"
    )
    try:
        # The follow-up's own events are sent on commit, which the test runs after the
        # task has left the tenant's scope: hold one open around it.
        with scope(organization=org_a):
            job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    finally:
        events.response_recorded.disconnect(dispatch_uid="history")
    assert job.created_count == 2
    with scope(organization=org_a):
        old = Response.objects.get(external_id="old-1")
        new = Response.objects.get(external_id="new-1")
        assert received[0]["historical_ids"] == [old.pk]
        assert list(FollowUp.objects.values_list("response_id", flat=True)) == [new.pk]


# --- The upload page -------------------------------------------------------------------------


def test_it_offers_responses_on_the_upload_page(as_alice):
    page = as_alice.get(reverse("accounts:imports")).content.decode()
    assert '<option value="responses">Responses</option>' in page
    assert '<ul class="help" data-kind="Responses">' in page
    assert "<code>score</code> — <strong>required</strong>" in page
    assert "a Delighted responses export" in page


def test_it_links_a_finished_responses_import_to_the_responses(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    content = csv_bytes([["Email", "Score", "Date"], ["ann@initech.example", "9", "2024-02-01"]])
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    page = as_alice.get(reverse("accounts:import_progress", args=[job.pk])).content.decode()
    assert f'href="{reverse("responses:explorer")}">Go to the responses</a>' in page
    listing = as_alice.get(reverse("accounts:imports")).content.decode()
    assert "<td>Responses</td>" in listing


def test_it_alerts_slack_only_for_recent_imported_answers(
    org_a, monkeypatch, django_capture_on_commit_callbacks
):
    from accounts import services as account_services
    from responses import services, tasks

    alerted = []
    monkeypatch.setattr(
        tasks.queue_slack_alerts, "delay", lambda org_id, ids: alerted.append(list(ids))
    )
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a, kind="contacts", items=[{"email": "ann@initech.example"}]
        )
        with django_capture_on_commit_callbacks(execute=True):
            report = services.responses_record(
                organization=org_a,
                channel="import",
                items=[
                    {"email": "ann@initech.example", "score": 1, "submitted_at": "2024-01-02"},
                    {"email": "ann@initech.example", "score": 2, "submitted_at": now()},
                ],
            )
    assert alerted == [[report.results[1].response.pk]]
