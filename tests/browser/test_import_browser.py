"""A CSV import in a real browser: upload, map a column by hand, watch it finish, and find
the imported accounts in the accounts list."""

import re

import pytest
from django_scopes import scopes_disabled
from playwright.sync_api import expect

from accounts.models import Account, ImportJob, ImportStatus
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

CSV = (
    b"Company,Customer ID,Plan,ARR,Region\n"
    b"Initech,acc-1,Enterprise,120000,EU\n"
    b"Hooli,acc-2,growth,48000,US\n"
    b"Globex,acc-3,starter,lots,APAC\n"
)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def sign_in(page, email, password):
    page.goto("/login/")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


def test_it_imports_accounts_from_a_csv_file(page, live_server, alice, org_a):
    sign_in(page, "alice@a.example", PASSWORD)
    page.goto("/accounts/imports/")
    expect(page.get_by_role("heading", name="Import data")).to_be_visible()

    page.get_by_label("The file holds").select_option("accounts")
    page.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "accounts.csv", "mimeType": "text/csv", "buffer": CSV}
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Upload and map columns").click()

    expect(page).to_have_url(re.compile(r"/accounts/imports/\d+/$"))
    expect(page.get_by_role("heading", name="Import “accounts.csv”")).to_be_visible()
    # The columns were matched by name; Region was not, and is mapped here by hand.
    expect(page.get_by_label("Company")).to_have_value("name")
    expect(page.get_by_label("Customer ID")).to_have_value("external_id")
    expect(page.get_by_label("Plan")).to_have_value("plan")
    expect(page.get_by_label("ARR")).to_have_value("arr")
    expect(page.get_by_label("Region")).to_have_value("")
    page.get_by_label("Region").select_option("properties.region")
    with page.expect_navigation():
        page.get_by_role("button", name="Start the import").click()

    progress = page.locator("#import-progress")
    expect(progress.get_by_role("heading", name="Done")).to_be_visible()
    expect(page.get_by_label("Import progress")).to_have_attribute("value", "100")
    expect(progress.locator("#import-progress-text")).to_have_text("100%")
    expect(progress.locator("#import-rows")).to_have_text("3 of 3 rows processed")
    expect(progress.locator("[data-count=created]")).to_have_text("2")
    expect(progress.locator("[data-count=updated]")).to_have_text("0")
    expect(progress.locator("[data-count=errors]")).to_have_text("1")
    expect(
        progress.get_by_role("link", name=re.compile("Download the 1 rejected row"))
    ).to_be_visible()
    assert progress.get_attribute("hx-trigger") is None

    with scopes_disabled():
        initech = Account.objects.get(organization=org_a, external_id="acc-1")
    assert initech.properties == {"region": "EU"}

    with page.expect_navigation():
        progress.get_by_role("link", name="Go to the accounts").click()
    expect(page).to_have_url(re.compile(r"/accounts/$"))
    main = page.locator("main")
    expect(main.get_by_role("link", name="Initech")).to_be_visible()
    expect(main.get_by_role("link", name="Hooli")).to_be_visible()
    expect(main.get_by_text("Globex")).to_have_count(0)

    with page.expect_navigation():
        main.get_by_role("link", name="Initech").click()
    expect(page).to_have_url(re.compile(rf"/accounts/{initech.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Initech")


def test_it_polls_the_progress_until_the_import_is_done(page, live_server, alice, org_a):
    with scopes_disabled():
        job = ImportJob.objects.create(
            organization=org_a,
            kind="contacts",
            original_name="contacts.csv",
            headers=["email"],
            mapping={"email": "email"},
            status=ImportStatus.RUNNING,
            total_rows=400,
            processed_rows=100,
            created_by=alice,
        )
    sign_in(page, "alice@a.example", PASSWORD)
    page.goto(f"/accounts/imports/{job.pk}/")
    progress = page.locator("#import-progress")
    expect(progress.locator("#import-progress-text")).to_have_text("25%")
    expect(progress).to_have_attribute("hx-trigger", "every 1s")

    with scopes_disabled():
        ImportJob.objects.filter(pk=job.pk).update(processed_rows=300, created_count=300)
    expect(progress.locator("#import-progress-text")).to_have_text("75%", timeout=5_000)

    with scopes_disabled():
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.DONE, processed_rows=400, created_count=400
        )
    expect(progress.get_by_role("heading", name="Done")).to_be_visible(timeout=5_000)
    expect(page.get_by_label("Import progress")).to_have_attribute("value", "100")
    expect(progress).not_to_have_attribute("hx-trigger", re.compile(".*"))


def test_it_imports_a_delighted_responses_export(page, live_server, alice, org_a):
    from responses.models import Response
    from tests.fixtures import delighted_export

    responses, _, expected = delighted_export.generate()
    sign_in(page, "alice@a.example", PASSWORD)
    page.goto("/accounts/imports/")
    page.get_by_label("The file holds").select_option("responses")
    page.get_by_label("CSV file", exact=True).set_input_files(
        {
            "name": "delighted.csv",
            "mimeType": "text/csv",
            "buffer": delighted_export.as_csv(responses),
        }
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Upload and map columns").click()

    # A Delighted export's columns are recognised as they are.
    expect(page.get_by_label("Response ID")).to_have_value("external_id")
    expect(page.get_by_label("Created at")).to_have_value("submitted_at")
    expect(page.get_by_label("Company")).to_have_value("account_name")
    expect(page.get_by_label("Country")).to_have_value("properties.country")
    with page.expect_navigation():
        page.get_by_role("button", name="Start the import").click()

    progress = page.locator("#import-progress")
    expect(progress.get_by_role("heading", name="Done")).to_be_visible(timeout=20_000)
    expect(progress.locator("[data-count=created]")).to_have_text(str(expected["good"]))
    expect(progress.locator("[data-count=errors]")).to_have_text(str(len(expected["bad"])))
    with scopes_disabled():
        assert Response.objects.filter(organization=org_a).count() == expected["good"]
    with page.expect_navigation():
        progress.get_by_role("link", name="Go to the responses").click()
    expect(page).to_have_url(re.compile(r"/responses/$"))
