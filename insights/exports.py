"""The dashboard's panels as CSV: one table per panel, from the same metrics the page shows.

Each panel names the figures it needs (one call into insights.metrics) and a function that
shapes them into a header and rows. Numbers are plain values: no sign, percent or currency
symbol, no thousands separator; NPS and its interval to one decimal, shares as fractions
from 0 to 1 with four decimals, money as its decimal amount. A score below the minimum
sample is left empty with `sufficient` false, as the page shows "insufficient data".
"""

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django_scopes import scope

from insights import metrics
from insights.metrics import Nps


def nps_value(value: float | None) -> float | str:
    return "" if value is None else round(float(value), 1)


def share_value(value: float | None) -> float | str:
    return "" if value is None else round(float(value), 4)


def plain(value):
    """A cell: empty for None, true/false for booleans, the value otherwise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _score_cells(nps: Nps) -> list:
    shown = nps.sufficient
    return [
        nps.n,
        nps.promoters,
        nps.passives,
        nps.detractors,
        nps_value(nps.nps) if shown else "",
        nps_value(nps.low) if shown else "",
        nps_value(nps.high) if shown else "",
        plain(shown),
    ]


SCORE_COLUMNS = [
    "n",
    "promoters",
    "passives",
    "detractors",
    "nps",
    "low_95",
    "high_95",
    "sufficient",
]


def _change_cells(change: metrics.Change, *shown: bool) -> list:
    if change.delta is None or not all(shown):
        return ["", "false"]
    return [nps_value(change.delta), plain(change.significant)]


# --- Panels -----------------------------------------------------------------------------------


def headline_rows(organization, filters):
    current = metrics.headline(organization, filters)
    before = metrics.previous(organization, filters)
    delta = metrics.change(current, before)
    level = metrics.account_level(organization, filters)
    header = [
        "since",
        "until",
        *SCORE_COLUMNS,
        "promoter_share",
        "passive_share",
        "detractor_share",
        "previous_n",
        "previous_nps",
        "delta",
        "significant",
        "accounts",
        "account_level_nps",
        "revenue_weighted_nps",
    ]
    share = (lambda count: count / current.n) if current.n else (lambda count: None)
    row = [
        filters.since.isoformat(),
        filters.until.isoformat(),
        *_score_cells(current),
        share_value(share(current.promoters)),
        share_value(share(current.passives)),
        share_value(share(current.detractors)),
        before.n,
        nps_value(before.nps) if before.sufficient else "",
        *_change_cells(delta, current.sufficient, before.sufficient),
        level.accounts,
        nps_value(level.nps.nps) if level.nps.sufficient else "",
        nps_value(level.revenue_weighted_nps) if level.nps.sufficient else "",
    ]
    return header, [row]


def trend_rows(organization, filters):
    points = metrics.trend(organization, filters)
    header = ["period", "start", "end", *SCORE_COLUMNS]
    rows = [
        [point.label, point.start.isoformat(), point.end.isoformat(), *_score_cells(point.nps)]
        for point in points
    ]
    return header, rows


def histogram_rows(organization, filters):
    counts = metrics.histogram(organization, filters)
    rows = [
        [score, count, "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"]
        for score, count in enumerate(counts)
    ]
    return ["score", "answers", "category"], rows


def segment_rows(organization, filters):
    segments = metrics.segments(organization, filters)
    header = ["segment_id", "segment", *SCORE_COLUMNS, "delta", "significant"]
    rows = [
        [
            row.segment_id,
            row.name,
            *_score_cells(row.nps),
            *_change_cells(row.change, row.nps.sufficient),
        ]
        for row in segments
    ]
    return header, rows


def revenue_rows(organization, filters):
    """The totals first (kind total, danger_zone, renewal_90d), then the top accounts."""
    risk = metrics.revenue_at_risk(organization, filters)
    header = [
        "kind",
        "currency",
        "arr",
        "accounts",
        "account_id",
        "account",
        "account_score",
        "danger_zone",
        "renewal_date",
    ]
    rows = [
        ["total", risk.currency, risk.total, risk.accounts, "", "", "", "", ""],
        [
            "danger_zone",
            risk.currency,
            risk.danger_zone,
            risk.danger_zone_accounts,
            "",
            "",
            "",
            "",
            "",
        ],
        [
            "renewal_90d",
            risk.currency,
            risk.renewal_90d,
            risk.renewal_90d_accounts,
            "",
            "",
            "",
            "",
            "",
        ],
    ]
    for account in risk.top:
        rows.append(
            [
                "account",
                risk.currency,
                account.arr,
                1,
                account.id,
                account.name,
                account.score,
                plain(account.danger_zone),
                plain(account.renewal_date.isoformat() if account.renewal_date else None),
            ]
        )
    return header, rows


def rates_rows(organization, filters):
    rates = metrics.rates(organization, filters)
    rows = [
        ["delivered_invitations", rates.delivered],
        ["answered_invitations", rates.answered],
        ["response_rate", share_value(rates.response_rate)],
        ["responses", rates.responses],
        ["responses_with_comment", rates.with_comment],
        ["verbatim_rate", share_value(rates.verbatim_rate)],
    ]
    return ["figure", "value"], rows


def coverage_rows(organization, filters):
    coverage = metrics.coverage(organization, filters)
    rows = [
        ["accounts", coverage.accounts_total],
        ["accounts_surveyed", coverage.accounts_surveyed],
        ["account_share", share_value(coverage.account_share)],
        ["arr_share", share_value(coverage.arr_share)],
        ["low_health_share", share_value(coverage.low_health_share)],
        ["open_ticket_share", share_value(coverage.open_ticket_share)],
        ["bias_warning", plain(coverage.bias_warning)],
    ]
    return ["figure", "value"], rows


def loop_rows(organization, filters):
    loop = metrics.loop_health(organization, filters)

    def hours(value):
        return "" if value is None else round(float(value), 1)

    rows = [
        ["detractor_followups", loop.detractors],
        ["contacted_within_sla_share", share_value(loop.contacted_within_sla_share)],
        ["median_hours_to_first_contact", hours(loop.median_hours_to_first_contact)],
        ["median_hours_to_close", hours(loop.median_hours_to_close)],
        ["open", loop.open],
        ["overdue", loop.overdue],
        ["detractor_accounts", loop.detractor_accounts],
        ["saved_accounts", loop.saved],
        ["save_rate", share_value(loop.save_rate)],
    ]
    rows += [[f"outcome_{outcome}", count] for outcome, count in loop.outcomes.items()]
    return ["figure", "value"], rows


def theme_rows(organization, filters):
    themes = metrics.themes(organization, filters)
    labels = [label for _, _, label in metrics.periods(filters)]
    header = ["theme", "label", "mentions", "detractors", "promoters", *labels]
    rows = [
        [row.theme, row.label, row.total, row.detractors, row.promoters, *row.trend]
        for row in themes
    ]
    return header, rows


def churn_rows(organization, filters):
    churn = metrics.churn(organization, filters)
    header = ["category", "accounts", "churned_within_6_months", "churn_rate", "predictive"]
    rows = [
        [row.category, row.accounts, row.churned, share_value(row.rate), plain(churn.predictive)]
        for row in churn.rows
    ]
    return header, rows


@dataclass(frozen=True)
class Panel:
    title: str
    shape: Callable


PANELS: dict[str, Panel] = {
    "headline": Panel("Headline NPS", headline_rows),
    "trend": Panel("NPS trend", trend_rows),
    "histogram": Panel("Score distribution", histogram_rows),
    "segments": Panel("Segments", segment_rows),
    "revenue-at-risk": Panel("Revenue at risk", revenue_rows),
    "rates": Panel("Response and verbatim rates", rates_rows),
    "coverage": Panel("Coverage", coverage_rows),
    "loop-health": Panel("Loop health", loop_rows),
    "themes": Panel("Themes", theme_rows),
    "churn": Panel("NPS and churn", churn_rows),
}

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a stream."""

    def write(self, value):
        return value


def panel_lines(organization, panel: str, filters) -> Iterator[str]:
    """The panel's CSV, line by line. The stream is read after the view returned, outside
    the request's tenant scope, so the figures are computed inside this one."""
    writer = csv.writer(_Echo())
    with scope(organization=organization):
        header, rows = PANELS[panel].shape(organization, filters)
        yield "\ufeff" + writer.writerow(header)  # the BOM tells Excel it is UTF-8
        for row in rows:
            # Text cells only: a negative number stays a number.
            yield writer.writerow([_cell(value) for value in row])
