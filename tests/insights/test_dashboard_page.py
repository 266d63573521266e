"""The exec dashboard page and its per-panel CSV exports."""

import csv
import datetime
import io
import json
import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from insights import exports, services
from insights.templatetags.dashboard_tags import whole
from nps_platform.models import Role
from responses.models import ResponseTheme
from tests.accounts.factories import AccountFactory, SegmentFactory
from tests.factories import MembershipFactory, UserFactory
from tests.insights.factories import FollowUpFactory, ResponseFactory, at

URL = reverse("insights:dashboard")
Q1 = {"since": "2026-01-01", "until": "2026-03-31", "period": "month"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class Figures(HTMLParser):
    """{(panel, figure): text} for every element marked data-figure, and the rows of every
    table marked data-table as {table: [[cell text, …], …]}."""

    def __init__(self):
        super().__init__()
        self.figures: dict[tuple[str, str], str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.stack: list[tuple[str, dict]] = []
        self.capturing: list[list] = []  # [key, depth, parts]
        self.panel = ""
        self.table = None
        self.row = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-panel" in attrs:
            self.panel = attrs["data-panel"]
        if tag in VOID:
            return
        self.stack.append((tag, attrs))
        if "data-figure" in attrs and self.table is None:
            self.capturing.append([(self.panel, attrs["data-figure"]), len(self.stack), []])
        if tag == "table" and "data-table" in attrs:
            self.table = attrs["data-table"]
            self.tables[self.table] = []
        elif tag == "tr" and self.table:
            self.row = []
        elif tag in {"td", "th"} and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in VOID or not self.stack:
            return
        depth = len(self.stack)
        for key, start, parts in list(self.capturing):
            if start == depth:
                self.figures[key] = " ".join("".join(parts).split())
                self.capturing.remove([key, start, parts])
        if tag in {"td", "th"} and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if self.row and self.table:
                self.tables[self.table].append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None
        self.stack.pop()

    def handle_data(self, data):
        for _, _, parts in self.capturing:
            parts.append(data)
        if self.cell is not None:
            self.cell.append(data)


def figures_of(response) -> Figures:
    parser = Figures()
    parser.feed(response.content.decode())
    return parser


def number(text: str) -> float:
    """ "+25" / "−17" / "42%" / "$120,000" → a number."""
    cleaned = text.replace("−", "-").replace(",", "").replace("%", "").replace("$", "")
    return float(re.search(r"-?\+?\d+(\.\d+)?", cleaned).group(0))


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(body)))


def answers(org, scores, *, day, account=None, comment=""):
    return [
        ResponseFactory(
            organization=org, account=account, score=s, submitted_at=at(day), comment=comment
        )
        for s in scores
    ]


@pytest.fixture
def world(org_a, alice, bob):
    """Org A in Q1 2026: 40 enterprise answers in January (NPS +25), 12 growth detractors
    in February (too few on their own), and 30 answers the quarter before (NPS 0)."""
    initech = AccountFactory(
        organization=org_a, name="Initech", plan="enterprise", arr=Decimal("120000"), owner=bob
    )
    globex = AccountFactory(
        organization=org_a, name="Globex", plan="growth", arr=Decimal("30000"), health_score=20
    )
    enterprise = SegmentFactory(
        organization=org_a,
        name="Enterprise",
        rules={
            "match": "all",
            "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
        },
    )
    growth = SegmentFactory(organization=org_a, name="Growth")
    january = datetime.date(2026, 1, 15)
    answers(org_a, [10] * 20 + [8] * 10 + [3] * 10, day=january, account=initech)
    late = answers(org_a, [2] * 12, day=datetime.date(2026, 2, 10), account=globex,
                   comment="Too expensive for what it does")  # fmt: skip
    answers(org_a, [10] * 10 + [7] * 10 + [5] * 10, day=datetime.date(2025, 12, 1), account=initech)
    FollowUpFactory(response=late[0], status="closed", outcome="resolved")
    with scopes_disabled():
        for response in late:
            ResponseTheme.objects.create(organization=org_a, response=response, theme="pricing")
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    return {"initech": initech, "globex": globex, "enterprise": enterprise, "growth": growth}


# --- Who may open it -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["carol", "alice"])
def test_it_renders_for_executives_and_admins(client, world, who, request):
    client.force_login(request.getfixturevalue(who))
    response = client.get(URL, Q1)
    assert response.status_code == 200
    page = figures_of(response)
    # 52 answers in Q1: 20 promoters, 10 passives, 22 detractors → NPS −3.85.
    assert page.figures[("headline", "n")] == "52"
    assert page.figures[("headline", "nps")] == "−4"
    assert page.figures[("headline", "interval")].startswith("−")
    body = response.content.decode()
    assert 'id="dashboard-chart-data"' in body
    assert "vendor/chartjs/chart.umd.min.js" in body
    assert 'id="trend-chart"' in body
    assert 'id="histogram-chart"' in body


def test_it_follows_the_role_matrix_for_cs_managers_and_strangers(client, world, bob):
    # The role matrix (nps_platform/roles.py) lets CS managers read the dashboard too.
    assert client.get(URL).status_code == 302  # anonymous: to sign-in
    client.force_login(bob)
    assert client.get(URL, Q1).status_code == 200
    export = client.get(reverse("insights:export", args=["headline"]), Q1)
    assert export.status_code == 200


def test_it_shows_an_outsider_nothing_of_another_organization(client, world, org_b):
    olga = MembershipFactory(
        organization=org_b, user=UserFactory(email="olga@b.example"), role=Role.EXEC
    ).user
    client.force_login(olga)  # an executive of org B
    response = client.get(URL, Q1)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-empty="organization"' in body
    assert "Initech" not in body
    assert "Enterprise" not in body
    export = client.get(reverse("insights:export", args=["revenue-at-risk"]), Q1)
    rows = read_csv(export)
    assert "Initech" not in str(rows)
    assert [row["arr"] for row in rows if row["kind"] == "total"] == ["0"]


# --- The figures and their states ------------------------------------------------------------


def test_it_shows_the_mix_the_change_and_the_trend(client, world, carol):
    client.force_login(carol)
    page = figures_of(client.get(URL, Q1))
    mix = page.figures
    assert mix[("headline", "delta")].startswith("−4")  # from 0 the quarter before
    trend = {row[0]: row for row in page.tables["trend"]}
    assert trend["2026-01"][1:3] == ["40", "+25"]
    assert trend["2026-02"][1:3] == ["12", "Insufficient data"]
    assert trend["2026-03"][1:3] == ["0", "No answers"]
    histogram = [int(row[1]) for row in page.tables["histogram"][1:]]
    assert histogram == [0, 0, 12, 10, 0, 0, 0, 0, 10, 0, 20]


def test_it_passes_chart_data_without_numbers_for_small_samples(client, world, carol):
    client.force_login(carol)
    body = client.get(URL, Q1).content.decode()
    raw = re.search(
        r'<script id="dashboard-chart-data" type="application/json">(.*?)</script>', body, re.S
    ).group(1)
    data = json.loads(raw)
    assert data["trend"]["labels"] == ["2026-01", "2026-02", "2026-03"]
    assert data["trend"]["nps"] == [25.0, None, None]
    assert data["trend"]["n"] == [40, 12, 0]
    low, high = data["trend"]["low"][0], data["trend"]["high"][0]
    assert low < 25 < high
    assert data["histogram"]["counts"][10] == 20


def test_it_says_insufficient_data_below_the_minimum_sample(client, org_a, carol):
    account = AccountFactory(organization=org_a, name="Tiny", arr=Decimal("5000"))
    answers(org_a, [10, 9, 3, 2, 8], day=datetime.date(2026, 2, 1), account=account)
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    client.force_login(carol)
    page = figures_of(client.get(URL, Q1))
    assert page.figures[("headline", "nps")] == "Insufficient data"
    assert page.figures[("headline", "interval")] == "—"
    assert page.figures[("headline", "delta")].startswith("—")
    assert page.figures[("headline", "n")] == "5"


def test_it_explains_an_organization_without_answers(client, org_a, carol):
    client.force_login(carol)
    response = client.get(URL)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-empty="organization"' in body
    assert "No answers yet" in body
    assert "<canvas" not in body


def test_it_explains_a_view_that_matches_no_answers(client, world, carol):
    client.force_login(carol)
    body = client.get(URL, {"since": "2024-01-01", "until": "2024-03-31"}).content.decode()
    assert 'data-empty="filters"' in body
    assert "No answers match this view" in body


# --- Filters in the URL ----------------------------------------------------------------------


def test_it_keeps_the_filters_in_the_url(client, world, carol, bob):
    client.force_login(carol)
    params = {
        "period": "week",
        "since": "2026-01-05",
        "until": "2026-02-28",
        "segment": str(world["enterprise"].pk),
        "channel": "api",
        "owner": str(bob.pk),
    }
    response = client.get(URL, params)
    body = response.content.decode()
    assert response.status_code == 200
    assert '<option value="week" selected>' in body
    assert 'name="since" value="2026-01-05"' in body
    assert 'name="until" value="2026-02-28"' in body
    assert f'<option value="{world["enterprise"].pk}" selected>Enterprise</option>' in body
    assert '<option value="api" selected>API</option>' in body
    assert f'<option value="{bob.pk}" selected>' in body
    links = re.findall(r'href="(/dashboard/export/[a-z-]+\.csv\?[^"]+)"', body)
    assert len(links) == len(exports.PANELS)
    for link in links:
        for name, value in params.items():
            assert f"{name}={value}" in link
    # The segment filter applies: only Initech's January answers count.
    page = figures_of(response)
    assert page.figures[("headline", "n")] == "40"
    assert page.figures[("headline", "nps")] == "+25"


def test_it_explains_bad_parameters_instead_of_failing(client, world, carol, org_b):
    foreign = SegmentFactory(organization=org_b, name="Other org's segment")
    client.force_login(carol)
    response = client.get(
        URL, {"period": "yearly", "since": "yesterday", "segment": str(foreign.pk)}
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert "data-dashboard-errors" in body
    assert "period must be one of week, month, quarter" in body
    assert "since must be a date as YYYY-MM-DD" in body
    assert f"There is no segment {foreign.pk}" in body
    assert "Other org&#x27;s segment" not in body
    assert "Other org's segment" not in body
    # The rest of the page still renders, with the default view.
    assert 'data-panel="headline"' in body
    export = client.get(reverse("insights:export", args=["trend"]), {"until": "2026-13-01"})
    assert export.status_code == 400
    assert "until must be a date" in export.content.decode()


def test_it_answers_404_for_an_unknown_panel(client, world, carol):
    client.force_login(carol)
    assert client.get("/dashboard/export/secrets.csv").status_code == 404


def test_it_reads_the_dashboard_in_a_bounded_number_of_queries(
    client, world, carol, org_a, django_assert_max_num_queries
):
    for n in range(6):
        SegmentFactory(organization=org_a, name=f"Extra {n}")
    client.force_login(carol)
    with django_assert_max_num_queries(40):
        response = client.get(URL, Q1)
    assert response.status_code == 200
    assert len(figures_of(response).tables["segments"]) == 8 + 1  # header row + 8 segments


# --- Every panel's CSV holds the page's figures ----------------------------------------------


@pytest.fixture
def page_and_csv(client, world, carol):
    client.force_login(carol)
    page = figures_of(client.get(URL, Q1))

    def export(panel):
        response = client.get(reverse("insights:export", args=[panel]), Q1)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert response["Content-Disposition"].startswith(f'attachment; filename="nps-{panel}-')
        return read_csv(response)

    return page, export


def close(shown: str, exported: str) -> bool:
    """The page shows NPS in whole points; the CSV to one decimal."""
    return number(shown) == whole(float(exported))


def test_it_exports_every_panel(page_and_csv):
    _, export = page_and_csv
    for panel in exports.PANELS:
        assert export(panel) is not None


def test_it_exports_the_headline_as_shown(page_and_csv):
    page, export = page_and_csv
    [row] = export("headline")
    assert row["n"] == page.figures[("headline", "n")] == "52"
    assert close(page.figures[("headline", "nps")], row["nps"])
    low, high = page.figures[("headline", "interval")].split(" to ")
    assert close(low, row["low_95"])
    assert close(high, row["high_95"])
    assert close(page.figures[("headline", "delta")].split()[0], row["delta"])
    assert row["significant"] == "false"
    assert (row["promoters"], row["passives"], row["detractors"]) == ("20", "10", "22")
    assert float(row["detractor_share"]) == pytest.approx(22 / 52, abs=1e-4)


def test_it_exports_the_trend_and_histogram_as_shown(page_and_csv):
    page, export = page_and_csv
    rows = export("trend")
    shown = page.tables["trend"][1:]
    assert [r["period"] for r in rows] == [s[0] for s in shown]
    for row, cells in zip(rows, shown, strict=True):
        assert row["n"] == cells[1]
        if row["sufficient"] == "true":
            assert close(cells[2], row["nps"])
        else:
            assert row["nps"] == ""
            assert cells[2] in {"Insufficient data", "No answers"}
    histogram = export("histogram")
    assert [int(r["answers"]) for r in histogram] == [
        int(cells[1]) for cells in page.tables["histogram"][1:]
    ]


def test_it_exports_the_segments_as_shown(page_and_csv):
    page, export = page_and_csv
    rows = {row["segment"]: row for row in export("segments")}
    shown = {cells[0]: cells for cells in page.tables["segments"][1:]}
    assert rows.keys() == shown.keys() == {"Enterprise", "Growth"}
    assert rows["Enterprise"]["n"] == shown["Enterprise"][1] == "40"
    assert close(shown["Enterprise"][2], rows["Enterprise"]["nps"])
    assert shown["Growth"][2] == "Insufficient data"
    assert rows["Growth"]["nps"] == ""


def test_it_exports_revenue_at_risk_as_shown(page_and_csv, world):
    page, export = page_and_csv
    rows = export("revenue-at-risk")
    total = next(row for row in rows if row["kind"] == "total")
    assert number(page.figures[("revenue-at-risk", "total")]) == float(total["arr"])
    accounts = [row["account"] for row in rows if row["kind"] == "account"]
    assert accounts == [cells[0].replace(" danger zone", "") for cells in
                        page.tables["revenue-at-risk"][1:]]  # fmt: skip
    assert accounts == ["Globex"]  # Initech's answers average to 7.75: not a detractor
    assert float(total["arr"]) == 30000


@pytest.mark.parametrize(
    ("panel", "figure", "csv_figure"),
    [
        ("rates", "verbatim-rate", "verbatim_rate"),
        ("coverage", "account-share", "account_share"),
        ("coverage", "low-health-share", "low_health_share"),
        ("loop-health", "save-rate", "save_rate"),
        ("loop-health", "within-sla", "contacted_within_sla_share"),
    ],
)
def test_it_exports_shares_as_shown(page_and_csv, panel, figure, csv_figure):
    page, export = page_and_csv
    values = {row["figure"]: row["value"] for row in export(panel)}
    shown = page.figures[(panel, figure)]
    if values[csv_figure] == "":
        assert shown == "—"
    else:
        assert number(shown) == whole(float(values[csv_figure]) * 100)


def test_it_exports_loop_health_counts_and_outcomes(page_and_csv):
    page, export = page_and_csv
    values = {row["figure"]: row["value"] for row in export("loop-health")}
    assert values["open"] == page.figures[("loop-health", "open")]
    assert values["overdue"] == page.figures[("loop-health", "overdue")]
    assert values["outcome_resolved"] == "1"
    assert page.tables["outcomes"][1:] == [["Resolved", "1"]]


def test_it_exports_themes_and_churn_as_shown(page_and_csv):
    page, export = page_and_csv
    themes = export("themes")
    assert [[r["label"], r["detractors"], r["promoters"], r["mentions"]] for r in themes] == [
        cells[:4] for cells in page.tables["themes"][1:]
    ]
    assert [[r["label"], r["mentions"], r["2026-02"]] for r in themes] == [["Pricing", "12", "12"]]
    churn = export("churn")
    shown = page.tables["churn"][1:]
    assert [r["accounts"] for r in churn] == [cells[1] for cells in shown]
    assert [r["churned_within_6_months"] for r in churn] == [cells[2] for cells in shown]


def test_it_links_accounts_at_risk_only_for_roles_that_may_open_them(client, world, alice, carol):
    link = f'href="{reverse("accounts:detail", args=[world["globex"].pk])}"'
    client.force_login(alice)
    assert link in client.get(URL, Q1).content.decode()
    client.force_login(carol)  # executives cannot open account pages (roles.AREAS)
    body = client.get(URL, Q1).content.decode()
    assert link not in body
    assert "Globex" in body
