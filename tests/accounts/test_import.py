"""CSV imports: upload checks, the column mapping, the import task and its error report,
progress polling, idempotency, and who may see what."""

import csv
import dataclasses
import io
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts import import_kinds, imports, services
from accounts.models import Account, Contact, ImportJob, ImportStatus, SupportTicket
from accounts.tasks import run_import
from tests.accounts.factories import AccountFactory, ContactFactory
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def upload(client, content: bytes, *, kind="accounts", name="data.csv", content_type="text/csv"):
    file = SimpleUploadedFile(name, content, content_type=content_type)
    return client.post(reverse("accounts:imports"), {"kind": kind, "file": file})


def the_job(org) -> ImportJob:
    with scopes_disabled():
        return ImportJob.objects.filter(organization=org).latest("created_at")


def start(client, job, django_capture_on_commit_callbacks, choices=None):
    """Posts the mapping form as shown, with `choices` (header → target) changed."""
    choices = {**job.mapping, **(choices or {})}
    data = {f"map-{n}": choices.get(header, "") for n, header in enumerate(job.headers)}
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("accounts:import_detail", args=[job.pk]), data)


def do_import(client, org, content, capture, *, kind="accounts", choices=None) -> ImportJob:
    response = upload(client, content, kind=kind)
    assert response.status_code == 302, response.content.decode()
    job = the_job(org)
    response = start(client, job, capture, choices)
    assert response.status_code == 302, response.content.decode()
    job.refresh_from_db()
    return job


def error_rows(client, job) -> list[dict]:
    response = client.get(reverse("accounts:import_errors", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def make_job(org, user=None, **kwargs) -> ImportJob:
    values = {
        "organization": org,
        "kind": "accounts",
        "original_name": "old.csv",
        "headers": ["id"],
        "mapping": {"id": "external_id"},
        "status": ImportStatus.DONE,
        "created_by": user,
    }
    with scopes_disabled():
        return ImportJob.objects.create(**(values | kwargs))


# --- Auto-mapping ----------------------------------------------------------------------------


def test_it_maps_realistic_headers_automatically():
    accounts = imports.auto_mapping(
        "accounts",
        [
            "Customer ID",
            "Company",
            " Website ",
            "Plan",
            "ARR",
            "Account Owner",
            "Customer Since",
            "Renewal Date",
            "Health",
            "Lifecycle",
            "Region",
            "properties.Tier",
        ],
    )
    assert accounts == {
        "Customer ID": "external_id",
        "Company": "name",
        " Website ": "domain",
        "Plan": "plan",
        "ARR": "arr",
        "Account Owner": "owner_email",
        "Customer Since": "signed_up_on",
        "Renewal Date": "renewal_date",
        "Health": "health_score",
        "Lifecycle": "lifecycle_stage",
        "Region": "",
        "properties.Tier": "properties.tier",
    }
    contacts = imports.auto_mapping(
        "contacts",
        ["E-mail", "Full Name", "Job.Title", "Account External ID", "Language", "TZ", "Phone"],
    )
    assert contacts == {
        "E-mail": "email",
        "Full Name": "name",
        "Job.Title": "title",
        "Account External ID": "account_external_id",
        "Language": "locale",
        "TZ": "timezone",
        "Phone": "phone",
    }
    tickets = imports.auto_mapping(
        "tickets",
        [
            "Ticket ID",
            "Account ID",
            "Requester Email",
            "Subject",
            "Created At",
            "Solved At",
            "Link",
        ],
    )
    assert tickets == {
        "Ticket ID": "external_id",
        "Account ID": "account_external_id",
        "Requester Email": "contact_email",
        "Subject": "subject",
        "Created At": "opened_at",
        "Solved At": "closed_at",
        "Link": "url",
    }


def test_it_never_maps_one_field_twice_and_prefers_the_exact_name():
    mapping = imports.auto_mapping("accounts", ["ID", "External ID", "Account", "Name"])
    assert mapping == {"ID": "", "External ID": "external_id", "Account": "", "Name": "name"}


# --- Uploading -------------------------------------------------------------------------------


def test_it_creates_a_job_with_headers_and_mapping_on_upload(as_alice, org_a, alice):
    response = upload(as_alice, b"Customer ID,Company,Colour\nacc-1,Initech,red\n")
    job = the_job(org_a)
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:import_detail", args=[job.pk])
    assert (job.status, job.kind, job.original_name, job.created_by) == (
        "uploaded",
        "accounts",
        "data.csv",
        alice,
    )
    assert job.headers == ["Customer ID", "Company", "Colour"]
    assert job.mapping == {"Customer ID": "external_id", "Company": "name", "Colour": ""}

    page = as_alice.get(response["Location"]).content.decode()
    assert 'name="map-0"' in page
    assert '<option value="external_id" selected>' in page
    assert '<option value="properties.colour">' in page
    assert "<code>Initech</code>" in page
    assert "not saved as UTF-8" not in page


@pytest.mark.parametrize(
    ("name", "content", "content_type", "message"),
    [
        ("empty.csv", b"", "text/csv", "The file is empty."),
        ("blank.csv", b"\n\n  \n", "text/csv", "The file has no header row"),
        ("data.csv", b"acc-1,Initech,120000\nacc-2,Hooli,5\n", "text/csv", "looks like data"),
        ("only.csv", b"external_id,name\n", "text/csv", "no rows below it"),
        ("sheet.xlsx", b"PK\x03\x04...", "application/vnd.ms-excel", "is not a CSV file"),
        ("sheet.csv", b"PK\x03\x04\x00\x00binary", "text/csv", "holds binary data"),
        ("quote.csv", b'"external_id,name\nacc-1,x\n', "text/csv", "header row could not be read"),
    ],
)
def test_it_refuses_uploads_that_cannot_be_imported(
    as_alice, org_a, name, content, content_type, message
):
    response = upload(as_alice, content, name=name, content_type=content_type)
    assert response.status_code == 200
    assert message in response.content.decode()
    with scopes_disabled():
        assert not ImportJob.objects.exists()


def test_it_refuses_a_file_over_the_size_limit(as_alice, settings):
    settings.IMPORT_MAX_UPLOAD_MB = 1
    content = b"external_id,name\n" + b"acc-1,Initech\n" * 80_000
    response = upload(as_alice, content)
    assert "the most is 1 MB" in response.content.decode()


def test_it_refuses_an_upload_without_a_file(as_alice):
    response = as_alice.post(reverse("accounts:imports"), {"kind": "accounts"})
    assert response.status_code == 200
    assert "Choose a CSV file to upload." in response.content.decode()


def test_it_warns_when_the_file_is_not_utf8(as_alice, org_a):
    upload(as_alice, "external_id,name\nacc-1,Café\n".encode("latin-1"))
    page = as_alice.get(reverse("accounts:import_detail", args=[the_job(org_a).pk]))
    assert "not saved as UTF-8" in page.content.decode()
    assert "<code>Café</code>" in page.content.decode()  # shown as Windows-1252


# --- Mapping ---------------------------------------------------------------------------------


def test_it_explains_what_is_wrong_with_a_mapping(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    upload(as_alice, b"Company,Account Name,Plan\nInitech,Initech Inc,growth\n")
    job = the_job(org_a)

    response = start(as_alice, job, django_capture_on_commit_callbacks)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Map a column to external_id: it identifies each of the accounts." in page

    response = start(
        as_alice,
        job,
        django_capture_on_commit_callbacks,
        {"Company": "external_id", "Account Name": "plan", "Plan": "plan"},
    )
    page = response.content.decode()
    assert "plan is chosen for both “Account Name” and “Plan”" in page
    assert "Map a column to external_id" not in page
    # The form keeps what was chosen.
    assert page.count('<option value="plan" selected>') == 2

    response = start(as_alice, job, django_capture_on_commit_callbacks, {"Plan": "password"})
    assert "“password” is not a field of accounts" in response.content.decode()
    job.refresh_from_db()
    assert job.status == ImportStatus.UPLOADED


def test_it_asks_contacts_for_an_email_or_an_external_id(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    upload(as_alice, b"Full Name\nAnn\n", kind="contacts")
    response = start(as_alice, the_job(org_a), django_capture_on_commit_callbacks)
    assert "Map a column to email or external_id" in response.content.decode()


# --- Running ---------------------------------------------------------------------------------


def test_it_imports_good_rows_and_reports_bad_ones_with_their_line(
    as_alice, org_a, alice, django_capture_on_commit_callbacks
):
    future = (now().date() + timedelta(days=30)).isoformat()
    content = (
        csv_bytes(
            [
                ["Customer ID", "Company", "ARR", "Health", "Customer Since", "Owner", "Region"],
                ["acc-1", "Initech", "$120,000", "80", "2021-03-01", "alice@a.example", "EU"],
                ["acc-2", "Hooli", "lots", "50", "", "", "US"],
                ["acc-3", "Globex", "1000", "high", "", "", ""],
                ["acc-1", "Initech again", "", "", "", "", ""],
                ["acc-4", "Future Co", "", "", future, "", ""],
                [],
                ["acc-5", "Umbrella", "", "", "", "not-an-email", ""],
                ["acc-6", "Soylent", "9000", "", "", "", "APAC"],
            ]
        )
        + "acc-7,Caf\xe9 Ltd,,,,,\n".encode("latin-1")
        + b"acc-8,Stark,,,,,\n"
    )
    job = do_import(
        as_alice,
        org_a,
        content,
        django_capture_on_commit_callbacks,
        choices={"Region": "properties.region"},
    )

    assert job.status == ImportStatus.DONE
    assert (job.created_count, job.updated_count, job.error_count) == (3, 0, 6)
    assert job.total_rows == job.processed_rows == 10  # the blank line is counted, not imported
    assert job.finished_at is not None
    with scope(organization=org_a):
        landed = {a.external_id: a for a in Account.objects.all()}
    assert sorted(landed) == ["acc-1", "acc-6", "acc-8"]
    assert landed["acc-1"].name == "Initech"
    assert landed["acc-1"].arr == Decimal("120000.00")
    assert landed["acc-1"].owner == alice
    assert landed["acc-1"].properties == {"region": "EU"}
    assert landed["acc-6"].properties == {"region": "APAC"}

    rows = error_rows(as_alice, job)
    by_row = {row["row"]: row for row in rows}
    assert sorted(by_row, key=int) == ["3", "4", "5", "6", "8", "10"]
    assert by_row["3"]["errors"] == "arr: “lots” is not a number."
    assert by_row["3"]["key"] == "acc-2"
    assert by_row["3"]["Company"] == "Hooli"  # the original cells follow
    assert "“high” is not a whole number" in by_row["4"]["errors"]
    assert "appears twice in this batch" in by_row["5"]["errors"]
    assert "is in the future" in by_row["6"]["errors"]
    assert "“not-an-email” is not a valid email address" in by_row["8"]["errors"]
    assert "not UTF-8" in by_row["10"]["errors"]
    assert by_row["10"]["Company"] == "Café Ltd"  # readable in the report
    assert list(rows[0]) == ["row", "key", "errors", "Customer ID", "Company", "ARR", "Health",
                             "Customer Since", "Owner", "Region"]  # fmt: skip


def test_it_reports_unknown_accounts_and_invalid_emails_for_contacts(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    AccountFactory(organization=org_a, external_id="acc-1")
    content = csv_bytes(
        [
            ["Email Address", "Full Name", "Account ID", "Language", "Time Zone"],
            ["ann@initech.example", "Ann", "acc-1", "de-DE", "Europe/Berlin"],
            ["bo@hooli", "Bo", "acc-1", "", ""],
            ["cy@globex.example", "Cy", "acc-404", "", ""],
            ["dee@globex.example", "Dee", "", "", "Mars/Olympus"],
            ["ANN@initech.example", "Ann twice", "", "", ""],
        ]
    )
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks, kind="contacts")

    assert (job.created_count, job.updated_count, job.error_count) == (1, 0, 4)
    with scope(organization=org_a):
        ann = Contact.objects.get()
    assert (ann.email, ann.account.external_id, ann.locale, ann.timezone) == (
        "ann@initech.example",
        "acc-1",
        "de-DE",
        "Europe/Berlin",
    )
    by_row = {row["row"]: row for row in error_rows(as_alice, job)}
    assert by_row["3"]["errors"] == "email: “bo@hooli” is not a valid email address."
    assert by_row["4"]["errors"] == (
        "account_external_id: No account has the external_id “acc-404”. Import the account first."
    )
    assert by_row["4"]["key"] == "cy@globex.example"
    assert "time zone" in by_row["5"]["errors"]
    assert "appears twice" in by_row["6"]["errors"]


def test_it_refuses_a_second_row_for_the_same_contact(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    with scope(organization=org_a):
        services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[{"email": "ann@initech.example", "external_id": "c-1", "name": "Ann"}],
        )
    content = csv_bytes(
        [["email", "external_id", "title"], ["ann@initech.example", "", "CTO"], ["", "c-1", "CEO"]]
    )
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks, kind="contacts")
    assert (job.updated_count, job.error_count) == (1, 1)
    [error] = error_rows(as_alice, job)
    assert (error["row"], error["errors"]) == (
        "3",
        "external_id: This is the contact of item 0 again.",
    )
    with scope(organization=org_a):
        assert Contact.objects.get().title == "CTO"


def test_it_imports_tickets(as_alice, org_a, django_capture_on_commit_callbacks):
    AccountFactory(organization=org_a, external_id="acc-1")
    content = csv_bytes(
        [
            ["Ticket ID", "Account ID", "Subject", "Status", "Created At", "Link"],
            ["T-1", "acc-1", "Export broken", "Open", "2026-01-10T09:00Z", "https://x.example/1"],
            ["T-2", "acc-9", "Nope", "open", "2026-01-10", ""],
        ]
    )
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks, kind="tickets")
    assert (job.created_count, job.error_count) == (1, 1)
    with scope(organization=org_a):
        assert SupportTicket.objects.get().subject == "Export broken"


def test_it_changes_nothing_when_the_same_file_is_imported_again(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    content = csv_bytes(
        [["external_id", "name", "plan", "arr", "signed_up_on", "properties.tier"]]
        + [[f"acc-{n}", f"Customer {n}", "growth", f"{n}000", "2022-05-01", "gold"]
           for n in range(40)]
        + [["acc-bad", "Bad", "", "lots", "", ""]]
    )  # fmt: skip
    fields = ["external_id", "name", "plan", "arr", "signed_up_on", "properties", "created_at"]

    first = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    with scope(organization=org_a):
        before = list(Account.objects.order_by("external_id").values(*fields))
    second = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    with scope(organization=org_a):
        after = list(Account.objects.order_by("external_id").values(*fields))

    assert (first.created_count, first.updated_count, first.error_count) == (40, 0, 1)
    assert (second.created_count, second.updated_count, second.error_count) == (0, 40, 1)
    assert after == before
    assert before[0]["properties"] == {"tier": "gold"}


def test_it_processes_a_large_file_in_chunks(
    as_alice, org_a, monkeypatch, django_capture_on_commit_callbacks
):
    batches = []
    real_prepare = services.records_prepare

    def counting_prepare(**kwargs):
        items = list(kwargs.pop("items"))
        batches.append(len(items))
        return real_prepare(items=items, **kwargs)

    monkeypatch.setattr(services, "records_prepare", counting_prepare)
    monkeypatch.setattr(services, "IMPORT_BATCH", 1000)
    rows = [[f"acc-{n:05d}", f"Customer {n}", str(n % 101)] for n in range(2_500)]
    rows[1_700][2] = "far too healthy"  # line 1,702
    content = csv_bytes([["Customer ID", "Company", "Health"], *rows])

    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)

    assert batches == [1000, 1000, 500]
    assert job.status == ImportStatus.DONE
    assert (job.total_rows, job.processed_rows) == (2_500, 2_500)
    assert (job.created_count, job.updated_count, job.error_count) == (2_499, 0, 1)
    assert job.percent == 100
    with scope(organization=org_a):
        assert Account.objects.count() == 2_499
        assert Account.objects.get(external_id="acc-02499").health_score == 2499 % 101
    [error] = error_rows(as_alice, job)
    assert (error["row"], error["key"]) == ("1702", "acc-01700")


def test_it_reads_a_file_in_batches_bigger_than_the_api_limit(
    as_alice, org_a, monkeypatch, django_capture_on_commit_callbacks
):
    batches = []
    spec = import_kinds.get("contacts")

    def counting_prepare(columns):
        batches.append(len(columns["email"]))
        return spec.prepare_columns(columns)

    counting = dataclasses.replace(spec, prepare_columns=counting_prepare)
    monkeypatch.setitem(import_kinds._KINDS, "contacts", counting)
    rows = [[f"p{n}@x.example", f"Person {n}"] for n in range(services.MAX_BATCH + 500)]
    content = csv_bytes([["email", "name"], *rows])

    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks, kind="contacts")

    assert batches == [services.MAX_BATCH + 500]
    assert (job.created_count, job.updated_count, job.error_count) == (1_500, 0, 0)


def test_it_writes_nothing_when_the_same_contacts_file_is_imported_again(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    AccountFactory(organization=org_a, external_id="acc-1")
    header = ["email", "external_id", "name", "account_external_id", "suppressed_reason",
              "properties.tier"]  # fmt: skip
    rows = [
        ["ann@initech.example", "c-1", "Ann", "acc-1", "", "gold"],
        ["bo@initech.example", "", "Bo", "", "bounced", ""],
        ["", "c-3", "Cy", "acc-1", "", ""],
        ["dee@initech.example", "", "Dee", "acc-404", "", ""],
    ]
    content = csv_bytes([header, *rows])
    fields = ["email", "external_id", "name", "account_id", "suppressed_reason",
              "suppressed_at", "properties", "updated_at"]  # fmt: skip

    first = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks, kind="contacts")
    with scope(organization=org_a):
        before = list(Contact.objects.order_by("id").values(*fields))
    second = do_import(
        as_alice, org_a, content, django_capture_on_commit_callbacks, kind="contacts"
    )
    with scope(organization=org_a):
        after = list(Contact.objects.order_by("id").values(*fields))

    assert (first.created_count, first.updated_count, first.error_count) == (3, 0, 1)
    assert (second.created_count, second.updated_count, second.error_count) == (0, 3, 1)
    assert after == before  # updated_at included: no row was written
    assert before[0]["properties"] == {"tier": "gold"}
    assert before[1]["suppressed_reason"] == "bounced"
    assert before[1]["suppressed_at"] is not None

    rows[2][2] = "Cyrus"
    third = do_import(
        as_alice, org_a, csv_bytes([header, *rows]), django_capture_on_commit_callbacks,
        kind="contacts",
    )  # fmt: skip
    with scope(organization=org_a):
        changed = list(Contact.objects.order_by("id").values(*fields))
    assert (third.created_count, third.updated_count) == (0, 3)
    assert changed[:2] == before[:2]
    assert changed[2]["name"] == "Cyrus"
    assert changed[2]["updated_at"] > before[2]["updated_at"]


def test_it_reads_semicolon_separated_files_and_skips_blank_lines(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    content = b"Customer ID;Company;ARR\n\nacc-1;Initech;1000\nacc-2;Hooli;x\n;;\n"
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    assert job.mapping == {"Customer ID": "external_id", "Company": "name", "ARR": "arr"}
    assert (job.created_count, job.error_count) == (1, 1)
    with scope(organization=org_a):
        assert Account.objects.get().arr == Decimal("1000")
    [error] = error_rows(as_alice, job)
    assert (error["row"], error["key"]) == ("4", "acc-2")


def test_it_fails_with_a_reason_when_the_file_breaks_off(
    as_alice, org_a, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "IMPORT_BATCH", 1000)
    rows = [[f"acc-{n}", f"Customer {n}"] for n in range(1_500)]
    content = csv_bytes([["external_id", "name"], *rows]) + b'acc-x,"never closed\nacc-y,z\n'
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    assert job.status == ImportStatus.FAILED
    assert "could not be read to the end" in job.failure
    assert job.finished_at is not None
    # The chunk before the break stays imported; importing a fixed file completes the rest.
    assert job.created_count == 1_000
    with scope(organization=org_a):
        assert Account.objects.count() == 1_000


def test_it_does_nothing_when_a_finished_job_is_delivered_again(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    content = b"external_id,name\nacc-1,Initech\n"
    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks)
    finished = (job.status, job.finished_at, job.created_count, job.updated_count)
    with scope(organization=org_a):
        Account.objects.update(name="Renamed since")

    run_import(org_a.pk, job.pk)
    run_import(org_a.pk, job.pk)

    job.refresh_from_db()
    assert (job.status, job.finished_at, job.created_count, job.updated_count) == finished
    with scope(organization=org_a):
        assert Account.objects.get().name == "Renamed since"


def test_it_runs_a_job_left_running_by_a_crashed_worker_again(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    upload(as_alice, b"external_id,name\nacc-1,Initech\nacc-2,Hooli\n")
    job = the_job(org_a)
    # Queued, but the worker that took it died after saving part of it.
    start(as_alice, job, lambda execute: django_capture_on_commit_callbacks(execute=False))
    with scope(organization=org_a):
        services.records_upsert(
            organization=org_a, kind="accounts", items=[{"external_id": "acc-1", "name": "x"}]
        )
        ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING, processed_rows=1)

    run_import(org_a.pk, job.pk)

    job.refresh_from_db()
    assert (job.status, job.created_count, job.updated_count, job.processed_rows) == (
        ImportStatus.DONE,
        1,
        1,
        2,
    )


def test_it_marks_the_job_failed_when_something_unexpected_happens(
    as_alice, org_a, monkeypatch, django_capture_on_commit_callbacks
):
    def broken_upsert(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "records_upsert", broken_upsert)
    job = do_import(
        as_alice, org_a, b"external_id,name\nacc-1,Initech\n", django_capture_on_commit_callbacks
    )
    assert job.status == ImportStatus.FAILED
    assert "unexpected error" in job.failure
    assert "database went away" not in job.failure
    assert job.finished_at is not None
    page = as_alice.get(reverse("accounts:import_progress", args=[job.pk])).content.decode()
    assert "unexpected error" in page
    assert "hx-trigger" not in page


# --- Progress --------------------------------------------------------------------------------


def test_it_polls_the_progress_only_while_the_import_runs(as_alice, org_a, alice):
    job = make_job(org_a, alice, status=ImportStatus.RUNNING, total_rows=200, processed_rows=50)
    url = reverse("accounts:import_progress", args=[job.pk])

    running = as_alice.get(url).content.decode()
    assert f'hx-get="{url}"' in running
    assert 'hx-trigger="every 1s"' in running
    assert 'hx-swap="outerHTML"' in running
    assert '<progress id="import-progress-bar" max="100" value="25"' in running
    assert "50 of 200 rows processed" in running
    assert "<noscript>" in running

    with scopes_disabled():
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.DONE, processed_rows=200, created_count=150, error_count=50
        )
    done = as_alice.get(url).content.decode()
    assert "hx-trigger" not in done
    assert "hx-get" not in done
    assert 'value="100"' in done
    assert ">Done<" in done
    assert reverse("accounts:list") in done

    detail = as_alice.get(reverse("accounts:import_detail", args=[job.pk])).content.decode()
    assert 'id="import-progress"' in detail
    assert "hx-trigger" not in detail


def test_it_links_the_error_report_only_when_there_is_one(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    job = do_import(
        as_alice, org_a, b"external_id,name\nacc-1,A\n", django_capture_on_commit_callbacks
    )
    assert job.error_count == 0
    assert not job.error_report
    errors_url = reverse("accounts:import_errors", args=[job.pk])
    assert (
        errors_url
        not in as_alice.get(reverse("accounts:import_detail", args=[job.pk])).content.decode()
    )
    assert as_alice.get(errors_url).status_code == 404

    job = do_import(
        as_alice, org_a, b"external_id,name\nacc-2,\n", django_capture_on_commit_callbacks
    )
    errors_url = reverse("accounts:import_errors", args=[job.pk])
    assert (
        errors_url
        in as_alice.get(reverse("accounts:import_detail", args=[job.pk])).content.decode()
    )
    assert as_alice.get(errors_url).status_code == 200


# --- Who may see what ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_it_lets_only_admins_import(client, request, org_a, alice, who):
    job = make_job(org_a, alice)
    client.force_login(request.getfixturevalue(who))
    for url in [
        reverse("accounts:imports"),
        reverse("accounts:import_detail", args=[job.pk]),
        reverse("accounts:import_progress", args=[job.pk]),
        reverse("accounts:import_errors", args=[job.pk]),
    ]:
        assert client.get(url).status_code == 403, url
    response = client.post(
        reverse("accounts:imports"),
        {"kind": "accounts", "file": SimpleUploadedFile("a.csv", b"external_id\nx\n")},
    )
    assert response.status_code == 403
    with scopes_disabled():
        assert ImportJob.objects.count() == 1


def test_it_hides_another_tenants_imports(
    client, as_alice, org_a, mallory, django_capture_on_commit_callbacks
):
    job = do_import(
        as_alice, org_a, b"external_id,name\nacc-1,\n", django_capture_on_commit_callbacks
    )
    assert job.error_report
    outsider = client_for(client, mallory)
    for name in ["accounts:import_detail", "accounts:import_progress", "accounts:import_errors"]:
        assert outsider.get(reverse(name, args=[job.pk])).status_code == 404, name
    assert (
        outsider.post(
            reverse("accounts:import_detail", args=[job.pk]), {"map-0": "external_id"}
        ).status_code
        == 404
    )
    listing = outsider.get(reverse("accounts:imports")).content.decode()
    assert "data.csv" not in listing
    assert "No import yet" in listing


def test_it_lists_past_imports_in_a_constant_number_of_queries(
    as_alice, org_a, alice, django_assert_max_num_queries
):
    make_job(org_a, alice, original_name="first.csv", created_count=3, error_count=1)
    as_alice.get(reverse("accounts:imports"))  # the first request of a session does more

    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            response = as_alice.get(reverse("accounts:imports"))
        assert response.status_code == 200
        return len(queries), response.content.decode()

    few, _ = count_queries()
    for n in range(12):
        make_job(org_a, UserFactory(), original_name=f"file-{n}.csv", kind="contacts")
    with django_assert_max_num_queries(8):
        many, page = count_queries()

    assert many == few
    assert page.count("<tr>") == 13 + 1  # and the head row
    assert "first.csv" in page
    assert "Alice Admin" in page
    # The help box lists each kind's fields and what is required.
    assert "<code>external_id</code> — <strong>required: identifies the row</strong>" in page
    assert "<code>name</code> — <strong>required for new rows</strong>" in page
    assert "this or external_id is required" in page


# --- A Delighted people export ---------------------------------------------------------------


def test_it_recognises_a_delighted_people_export():
    from tests.fixtures import delighted_export

    assert imports.auto_mapping("contacts", delighted_export.PEOPLE_HEADERS) == {
        "Person ID": "",  # Delighted's own id, not the CRM's external_id
        "Name": "name",
        "Email": "email",
        "Phone number": "phone",
        "Created at": "",
        "Last sent at": "",
        "Last responded at": "",
        "Status": "suppressed_reason",
        "Unsubscribed at": "unsubscribed_at",
        "Bounced at": "bounced_at",
    }


def test_it_suppresses_the_unsubscribed_and_bounced_people_of_a_people_export(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    from datetime import datetime

    from tests.fixtures import delighted_export

    _, people, expected = delighted_export.generate()
    content = delighted_export.as_csv(people)
    ContactFactory(
        organization=org_a,
        account=AccountFactory(organization=org_a),
        email="p000.jones@c0.example",
        name="",
    )
    with scopes_disabled():  # suppressed here already: an "active" row does not lift it
        Contact.objects.filter(email="p000.jones@c0.example").update(suppressed_reason="complained")

    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks, kind="contacts")

    assert (job.created_count, job.updated_count, job.error_count) == (
        expected["people"] - 1,
        1,
        1,
    )
    [error] = error_rows(as_alice, job)
    assert int(error["row"]) == expected["people_bad_line"]
    assert "not a valid email address" in error["errors"]
    with scope(organization=org_a):
        suppressed = {
            c.email: c
            for c in Contact.objects.exclude(suppressed_reason="").exclude(
                email="p000.jones@c0.example"
            )
        }
        assert Contact.objects.get(email="p000.jones@c0.example").suppressed_reason == (
            "complained"
        )
        assert Contact.objects.get(email="p000.jones@c0.example").name == "Grace Jones"
    assert set(suppressed) == set(expected["unsubscribed"]) | set(expected["bounced"])
    for email, when in expected["unsubscribed"].items():
        contact = suppressed[email]
        assert contact.suppressed_reason == "unsubscribed"
        assert contact.suppressed_at == datetime.fromisoformat(when)
        assert contact.suppression_note.startswith("Unsubscribed on ")
    for email, when in expected["bounced"].items():
        assert suppressed[email].suppressed_reason == "bounced"
        assert suppressed[email].suppressed_at == datetime.fromisoformat(when)

    again = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks, kind="contacts")
    assert (again.created_count, again.error_count) == (0, 1)
    with scope(organization=org_a):
        after = {c.email: c for c in Contact.objects.exclude(suppressed_reason="")}
    for email, contact in suppressed.items():
        assert (after[email].suppressed_reason, after[email].suppressed_at) == (
            contact.suppressed_reason,
            contact.suppressed_at,
        )


# --- Cleaning a chunk column by column -------------------------------------------------------

ODD_CELLS = {  # a column's good cells first, then odd ones
    "email": ["ann@initech.example", " Ann@Initech.Example ", "ann.o'neil@initech.example",
              "ann at initech.example", "", "  ", "zoë@initech.example", '"a b"@initech.example',
              "a@-initech.example", "a..b@initech.example", ".a@initech.example",
              "a@b@initech.example", "line\nbreak@initech.example", "nul\x00@initech.example",
              "x" * 320 + "@i.example", "bad\udc80@initech.example", "c-1", "ſam@initech.example"],
    "external_id": ["c-1", " c-2 ", "", "tab\tand\\slash", "x" * 201, "ann@initech.example",
                    "nul\x00", "not utf-8 \udce9"],
    "name": ["Ann", "", "Zoë Lee", "back\\slash", "two\nlines", "tab\there", "x" * 201, "\r"],
    "title": ["CEO", "", "Head of Ops", "x" * 200, "x" * 201],
    "locale": ["en", "en_US", "de-DE", "xx-", "english"],
    "timezone": ["Europe/Berlin", "", "UTC", "Mars/Olympus"],
    "account_external_id": ["acc-1", "", "acc-404"],
    "suppressed_reason": ["", "bounced", "Bounced", "unsubscribed", "sometimes"],
    "properties.tier": ["gold", "", "tab\tgold", "nul\x00"],
}  # fmt: skip


@pytest.mark.parametrize("seed", range(12))
def test_it_cleans_a_chunk_column_by_column_as_the_upsert_does(seed):
    """Cells drawn mostly from a column's first (good) values, now and then from its odd
    ones, with some emails and external_ids repeated: the same batch as row by row."""
    import random

    rng = random.Random(seed)
    names = rng.sample(sorted(ODD_CELLS), rng.randint(1, len(ODD_CELLS)))
    items = []
    for n in range(300):
        item = {}
        for name in names:
            cell = rng.choice(ODD_CELLS[name] if rng.random() < 0.08 else ODD_CELLS[name][:3])
            if name in ("email", "external_id") and rng.random() < 0.95:
                cell = cell.replace("ann", f"ann{n}").replace("c-", f"c{n}-")
            item[name] = cell
        items.append(item)
    columns = {name: [item[name] for item in items] for name in names}

    by_columns = import_kinds._prepare_contacts(columns, len(items))
    by_rows = services.records_prepare(kind="contacts", items=items, blank_unsets=True)

    assert by_columns.results == by_rows.results
    assert by_columns.cleaned == by_rows.cleaned
    assert list(by_columns.cleaned) == list(by_rows.cleaned)
    assert by_columns.staged == by_rows.staged
    assert by_columns.labels == by_rows.labels
    assert import_kinds.get("contacts").prepare(items).batch == by_columns  # rows as dicts


def test_it_suppresses_a_contact_whose_status_is_blank_by_its_bounce_date(
    as_alice, org_a, django_capture_on_commit_callbacks
):
    content = csv_bytes(
        [
            ["Email", "Status", "Bounced at"],
            ["ann@initech.example", "", "2024-03-05T10:00:00Z"],
            ["bo@initech.example", "active", ""],
        ]
    )

    job = do_import(as_alice, org_a, content, django_capture_on_commit_callbacks, kind="contacts")

    assert (job.created_count, job.error_count) == (2, 0)
    with scope(organization=org_a):
        ann = Contact.objects.get(email="ann@initech.example")
        bo = Contact.objects.get(email="bo@initech.example")
    assert ann.suppressed_reason == "bounced"
    assert ann.suppressed_at.isoformat() == "2024-03-05T10:00:00+00:00"
    assert ann.suppression_note == "Bounced on 2024-03-05 (imported)."
    assert (bo.suppressed_reason, bo.suppressed_at) == ("", None)


# --- Chunks on two connections (PostgreSQL) ----------------------------------------------------

# Committed rows (a transactional test), which the writers' own connections see.
two_connections = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite writes the chunks one after the other"
)


def run_contacts_file(org, user, rows: list[list[str]]) -> ImportJob:
    from django.core.files.base import ContentFile

    header = ["email", "external_id", "name"]
    with scopes_disabled():
        job = make_job(
            org,
            user,
            kind="contacts",
            headers=header,
            mapping={name: name for name in header},
            status=ImportStatus.QUEUED,
        )
        job.file.save("contacts.csv", ContentFile(csv_bytes([header, *rows])))
    with scope(organization=org):  # as the task runs it
        return imports.import_run(organization_id=org.pk, import_id=job.pk)


class _CommittingLate(threading.Event):
    """A chunk's `written` whose writer, once it set it, waits a little before committing:
    the next chunk is then written while this one has not committed yet."""

    def set(self):
        lingers = not self.is_set() and threading.current_thread().name.startswith("import-")
        super().set()
        if lingers:
            time.sleep(0.2)


@dataclasses.dataclass
class _LateTurn(imports._Turn):
    written: threading.Event = dataclasses.field(default_factory=_CommittingLate)


@pytest.mark.django_db(transaction=True)
@two_connections
def test_it_writes_the_chunks_on_two_connections_in_the_order_of_the_file(
    as_alice, org_a, alice, monkeypatch
):
    threads = set()
    write_in_turn = imports._write_in_turn

    def spying(*args):
        threads.add(threading.current_thread().name)
        return write_in_turn(*args)

    batches = []
    upsert_batch = services._upsert_batch

    def counting(organization, kind, prepared):
        batches.append(len(prepared.cleaned))
        return upsert_batch(organization, kind, prepared)

    monkeypatch.setattr(imports, "_write_in_turn", spying)
    monkeypatch.setattr(imports, "_Turn", _LateTurn)
    monkeypatch.setattr(services, "_upsert_batch", counting)
    monkeypatch.setattr(services, "IMPORT_BATCH", 40)
    existing = ContactFactory(organization=org_a, account=None, email="old@initech.example")
    rows = [[f"p{n}@initech.example", f"c-{n}", f"Person {n}"] for n in range(200)]
    rows[45] = ["p10@initech.example", "c-10", "Person 10, again"]  # created by chunk 1
    rows[50] = ["old@initech.example", "", "Old, renamed"]
    rows[90] = ["old@initech.example", "", "Old, renamed again"]  # the next chunk: it wins
    rows[130] = ["not an email", "c-130", "Bad"]

    job = run_contacts_file(org_a, alice, rows)

    assert {"import-writer-0_0", "import-writer-1_0"} <= threads
    # The second chunk did not see the contact the first created (not committed yet): its
    # unique index refused a second one, and records_upsert wrote it again; having then
    # updated a contact the first chunk wrote, it was written once more after that commit.
    # The third updated the contact the second did: written again too. The fourth has the
    # bad row.
    assert batches == [40, 40, 40, 40, 40, 40, 39, 40]
    assert job.status == ImportStatus.DONE
    assert (job.created_count, job.updated_count, job.error_count) == (196, 3, 1)
    assert (job.processed_rows, job.total_rows) == (200, 200)
    with scope(organization=org_a):
        assert Contact.objects.count() == 197
        assert Contact.objects.get(external_id="c-10").name == "Person 10, again"
        assert Contact.objects.get(pk=existing.pk).name == "Old, renamed again"
        assert not Contact.objects.filter(external_id="c-130").exists()
    [error] = error_rows(as_alice, job)
    assert (error["row"], error["email"]) == ("132", "not an email")

    again = run_contacts_file(org_a, alice, rows)
    assert (again.created_count, again.updated_count, again.error_count) == (0, 199, 1)


@pytest.mark.django_db(transaction=True)
@two_connections
def test_it_commits_no_chunk_after_one_that_failed(org_a, alice, monkeypatch):
    spec = import_kinds.get("contacts")
    written = []

    def failing_third(organization, prepared):
        written.append(prepared)
        if len(written) == 3:
            raise RuntimeError("database went away")
        return spec.write(organization, prepared)

    monkeypatch.setitem(
        import_kinds._KINDS, "contacts", dataclasses.replace(spec, write=failing_third)
    )
    monkeypatch.setattr(services, "IMPORT_BATCH", 40)
    rows = [[f"p{n}@initech.example", f"c-{n}", f"Person {n}"] for n in range(200)]

    job = run_contacts_file(org_a, alice, rows)

    assert job.status == ImportStatus.FAILED
    assert "unexpected error" in job.failure
    assert (job.processed_rows, job.created_count) == (80, 80)
    with scope(organization=org_a):
        assert Contact.objects.count() == 80
        assert not Contact.objects.filter(external_id="c-80").exists()


@pytest.mark.django_db(transaction=True)
@two_connections
def test_it_writes_a_chunk_again_when_it_read_a_contact_the_chunk_before_changed(
    org_a, alice, monkeypatch
):
    monkeypatch.setattr(imports, "_Turn", _LateTurn)
    monkeypatch.setattr(services, "IMPORT_BATCH", 2)
    moved = ContactFactory(organization=org_a, account=None, email="old@initech.example")
    with scopes_disabled():
        Contact.objects.filter(pk=moved.pk).update(external_id="c-1")
    rows = [
        ["new@initech.example", "c-1", "Moved"],  # the contact's email changes…
        ["ann@initech.example", "c-2", "Ann"],
        ["old@initech.example", "", "Someone else"],  # …so this address is free: a new one
        ["bo@initech.example", "c-3", "Bo"],
    ]

    job = run_contacts_file(org_a, alice, rows)

    assert (job.created_count, job.updated_count, job.error_count) == (3, 1, 0)
    with scope(organization=org_a):
        assert Contact.objects.get(pk=moved.pk).email == "new@initech.example"
        assert Contact.objects.get(email="old@initech.example").name == "Someone else"
