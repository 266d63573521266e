"""The exec dashboard in a real browser: an executive signs in, the charts draw, a screenshot
is kept as a test artifact, the period and segment change the URL and the figures, the
segment table sorts, and a panel's CSV downloads with the figures on screen."""

import csv
import datetime
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django_scopes import scope
from playwright.sync_api import expect

from insights import services
from tests.accounts.factories import AccountFactory, SegmentFactory
from tests.factories import PASSWORD
from tests.insights.factories import ResponseFactory, at

pytestmark = pytest.mark.browser

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", "var/test-artifacts"))
RANGE = "since=2026-01-01&until=2026-06-30&period=month"

# Counts the canvas pixels that are not transparent: a drawn chart has many.
DRAWN_PIXELS = """canvas => {
  const ctx = canvas.getContext("2d");
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  let drawn = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) drawn++;
  return drawn;
}"""


def sign_in(page, email, password):
    page.goto("/login/")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


@pytest.fixture
def half_year(org_a):
    """Six months of answers: enterprise accounts mostly promoters, growth accounts mostly
    detractors, 40 to 60 answers a month."""
    enterprise = AccountFactory(
        organization=org_a, name="Initech", plan="enterprise", arr=Decimal("250000")
    )
    growth = AccountFactory(organization=org_a, name="Globex", plan="growth", arr=Decimal("40000"))
    segments = {
        "enterprise": SegmentFactory(
            organization=org_a,
            name="Enterprise",
            rules={
                "match": "all",
                "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
            },
        ),
        "growth": SegmentFactory(organization=org_a, name="Growth"),
    }
    for month in range(1, 7):
        day = datetime.date(2026, month, 10)
        for i in range(30 + 2 * month):
            ResponseFactory(
                organization=org_a,
                account=enterprise,
                score=[10, 9, 9, 8, 6][i % 5],
                submitted_at=at(day + datetime.timedelta(days=i % 15)),
            )
        for i in range(15 + month):
            ResponseFactory(
                organization=org_a,
                account=growth,
                score=[2, 4, 6, 7, 9][i % 5],
                submitted_at=at(day + datetime.timedelta(days=i % 15)),
                comment="The price went up again",
            )
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    return segments


def headline_n(page) -> int:
    return int(page.locator('[data-panel="headline"] [data-figure="n"]').inner_text())


def test_it_draws_the_dashboard_filters_it_and_exports_a_panel(page, carol, half_year):
    sign_in(page, "carol@a.example", PASSWORD)
    page.goto(f"/dashboard/?{RANGE}")

    # The charts are Chart.js instances and their canvases hold drawn pixels.
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.getElementById('trend-chart'))"
        " && Chart.getChart(document.getElementById('histogram-chart'))"
    )
    page.wait_for_timeout(400)  # the short entry animation
    trend_points = page.evaluate(
        "() => Chart.getChart(document.getElementById('trend-chart')).data.datasets[2].data"
    )
    assert len(trend_points) == 6
    assert all(point is not None for point in trend_points)
    for canvas in ("#trend-chart", "#histogram-chart"):
        assert page.locator(canvas).evaluate(DRAWN_PIXELS) > 500, f"{canvas} is blank"
    expect(page.locator("#trend-chart")).to_have_attribute("aria-label", re.compile("NPS by month"))

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot.resolve()}")  # noqa: T201 - where to find the artifact

    # Printing swaps each chart for a still image of it, and back afterwards.
    page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
    images = page.locator("img.db-print-image")
    expect(images).to_have_count(2)
    assert images.first.get_attribute("src").startswith("data:image/png;base64,")
    page.emulate_media(media="print")
    expect(page.locator("form.db-filters")).to_be_hidden()
    expect(images.first).to_be_visible()
    page.emulate_media(media="screen")
    page.evaluate("() => window.dispatchEvent(new Event('afterprint'))")
    expect(images).to_have_count(0)
    expect(page.locator("#trend-chart")).to_be_visible()

    everyone = headline_n(page)
    assert everyone == sum(30 + 2 * m + 15 + m for m in range(1, 7))

    # Sorting the segment table by NPS puts Growth (lower) first, then Enterprise.
    segments = page.locator('[data-table="segments"] tbody th[scope="row"]')
    expect(segments).to_have_text(["Enterprise", "Growth"])
    page.locator('[data-table="segments"]').get_by_role("button", name="NPS").click()
    expect(segments).to_have_text(["Growth", "Enterprise"])

    # Another period and a segment: the URL keeps them and the figures follow.
    page.get_by_label("Period", exact=True).select_option("week")
    page.get_by_label("Segment", exact=True).select_option(label="Enterprise")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    enterprise_id = half_year["enterprise"].pk
    expect(page).to_have_url(re.compile(rf"period=week.*segment={enterprise_id}"))
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.getElementById('trend-chart'))"
    )
    assert page.evaluate(
        "() => Chart.getChart(document.getElementById('trend-chart')).data.labels[0]"
    ).startswith("2026-W")
    in_segment = headline_n(page)
    assert in_segment == sum(30 + 2 * m for m in range(1, 7))
    assert in_segment < everyone
    shown_nps = page.locator('[data-panel="headline"] [data-figure="nps"]').inner_text()

    # The headline panel's CSV holds the figures on screen, for the same view.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV of Headline NPS").click()
    download = download_info.value
    assert download.suggested_filename.startswith("nps-headline-acme-a-20260101-20260630")
    with Path(download.path()).open(encoding="utf-8-sig", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert int(row["n"]) == in_segment
    assert shown_nps == f"+{round(float(row['nps']))}"
