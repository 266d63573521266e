"""The response explorer in a real browser: filters swap the results in place (htmx), a
comment with a script stays text, and the CSV export holds exactly the rows on screen."""

import csv
import re
from pathlib import Path

import pytest
from django_scopes import scope
from playwright.sync_api import expect

from accounts import services as account_services
from responses.analysis import responses_analyze
from responses.services import response_record
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

XSS_COMMENT = "<script>window.__xss = 1</script>Too pricey"
ROWS = "#response-results [data-response-id]"


def sign_in(page, email, password):
    page.goto("/login/")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


@pytest.fixture
def answers(org_a, alice):
    """Five analysed responses of org A, by name."""
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {"external_id": "acc-1", "name": "Initech", "arr": 90000},
                {"external_id": "acc-2", "name": "Globex", "arr": 12000},
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {"email": "ann@initech.example", "name": "Ann", "account_external_id": "acc-1"},
                {"email": "pat@initech.example", "name": "Pat", "account_external_id": "acc-1"},
                {"email": "gus@globex.example", "name": "Gus", "account_external_id": "acc-2"},
                {"email": "eve@globex.example", "name": "Eve", "account_external_id": "acc-2"},
            ],
        )
        items = {
            "detractor_pricing": ("ann@initech.example", 3,
                                  "The price doubled at renewal, way too expensive."),
            "promoter_pricing": ("pat@initech.example", 10,
                                 "Worth every penny: fair pricing and great people."),
            "detractor_bugs": ("gus@globex.example", 4,
                               "Constant crashes, and the export is not working."),
            "detractor_xss": ("eve@globex.example", 2, XSS_COMMENT),
            "passive_pricing": ("gus@globex.example", 7, "Pricing is okay, nothing special."),
        }  # fmt: skip
        recorded = {}
        for minutes, (name, (email, score, comment)) in enumerate(items.items()):
            response, _ = response_record(
                organization=org_a,
                channel="api",
                email=email,
                score=score,
                comment=comment,
                submitted_at=f"2025-03-01T10:{minutes:02d}:00Z",
            )
            recorded[name] = response.pk
        responses_analyze(organization=org_a, response_ids=list(recorded.values()))
    return recorded


def _shown_ids(page) -> list[int]:
    return [
        int(value)
        for value in page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.responseId)")
    ]


def test_it_filters_in_place_keeps_scripts_inert_and_exports_the_rows_shown(page, alice, answers):
    sign_in(page, "alice@a.example", PASSWORD)
    page.goto("/responses/")
    expect(page.locator(ROWS)).to_have_count(5)
    page.evaluate("() => { window.__samePage = true; }")

    page.get_by_label("Category").select_option("detractor")
    page.get_by_label("Theme").select_option("pricing")
    page.get_by_role("button", name="Apply filters").click()

    expect(page).to_have_url(re.compile(r"category=detractor.*theme=pricing"))
    expect(page.locator(ROWS)).to_have_count(2)
    # Newest first: the script comment was recorded after the other detractor about pricing.
    assert _shown_ids(page) == [answers["detractor_xss"], answers["detractor_pricing"]]
    assert page.evaluate("() => window.__samePage") is True  # swapped by htmx, no reload
    expect(page.locator('[data-stat="count"]')).to_have_text("2")
    expect(page.locator('[data-stat="nps"]')).to_have_text("−100")

    assert page.evaluate("() => typeof window.__xss") == "undefined"
    xss_row = page.locator(f'[data-response-id="{answers["detractor_xss"]}"]')
    expect(xss_row.locator(".rx-comment")).to_have_text(XSS_COMMENT)
    expect(page.get_by_text(XSS_COMMENT)).to_be_visible()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("responses-acme-a-")
    with Path(download.path()).open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["id"]) for row in rows] == _shown_ids(page)
    assert {row["category"] for row in rows} == {"detractor"}
    assert all("pricing" in row["themes"].split("; ") for row in rows)
    assert XSS_COMMENT in [row["comment"] for row in rows]
    assert page.evaluate("() => typeof window.__xss") == "undefined"


def test_it_filters_without_javascript(chromium_browser, live_server, alice, answers):
    context = chromium_browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, "alice@a.example", PASSWORD)
        page.goto("/responses/")
        page.get_by_label("Category").select_option("detractor")
        page.get_by_label("Theme").select_option("bugs")
        with page.expect_navigation():
            page.get_by_role("button", name="Apply filters").click()

        expect(page).to_have_url(re.compile(r"category=detractor.*theme=bugs"))
        assert _shown_ids(page) == [answers["detractor_bugs"]]
        expect(page.get_by_role("link", name="Export CSV")).to_have_attribute(
            "href", re.compile(r"^/responses/export\.csv\?.*category=detractor.*theme=bugs")
        )
    finally:
        page.close()
        context.close()
