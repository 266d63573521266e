"""The exec dashboard and its per-panel CSV exports.

Both read the figures from insights.metrics with the filters in the URL, so a shared link
shows the same view, and each panel's CSV holds the figures its panel shows. A bad
parameter answers 400 with a message on the page (or in the CSV response), never a 500.
"""

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods

from accounts.selectors import segments_of
from insights import exports, metrics
from nps_platform.access import member_required
from nps_platform.roles import can
from nps_platform.selectors import members_of
from responses.models import Channel
from responses.selectors import responses_of
from surveys.selectors import surveys_of

FILTER_PARAMS = ("period", "since", "until", "segment", "survey", "channel", "owner")
# Parameters whose errors are about the date range as a whole (since after until, …).
RANGE_PARAMS = ("since", "until")


def _filter_params(params) -> dict[str, str]:
    """The dashboard's own parameters, without empty values (an "All" option)."""
    return {name: params[name] for name in FILTER_PARAMS if params.get(name, "").strip()}


def _errors_of(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return {"__all__": exc.messages}


def filters_for(organization, params) -> tuple[metrics.Filters, dict[str, list[str]]]:
    """The filters from the URL and {parameter: messages} for the values it cannot use. With
    errors, the figures are those of the remaining valid parameters (the defaults at worst),
    so the page still shows something while saying what was ignored."""
    given = _filter_params(params)
    try:
        return metrics.filters_from_params(organization, given), {}
    except ValidationError as exc:
        errors = _errors_of(exc)
    kept = {name: value for name, value in given.items() if name not in errors}
    if errors.keys() & set(RANGE_PARAMS):
        for name in RANGE_PARAMS:
            kept.pop(name, None)
    try:
        return metrics.filters_from_params(organization, kept), errors
    except ValidationError:
        return metrics.filters_from_params(organization, {}), errors


def _chart_data(board: metrics.Dashboard) -> dict:
    """The figures the charts draw, for json_script. A period below the minimum sample is a
    gap (None), never a number."""

    def shown(nps, value):
        return None if value is None or not nps.sufficient else round(value, 1)

    trend = board.trend
    return {
        "trend": {
            "labels": [point.label for point in trend],
            "nps": [shown(point.nps, point.nps.nps) for point in trend],
            "low": [shown(point.nps, point.nps.low) for point in trend],
            "high": [shown(point.nps, point.nps.high) for point in trend],
            "n": [point.nps.n for point in trend],
        },
        "histogram": {
            "labels": [str(score) for score in range(11)],
            "counts": list(board.histogram),
        },
    }


def _trend_summary(board: metrics.Dashboard) -> str:
    """A sentence for screen readers: what the trend chart shows."""
    shown = [p for p in board.trend if p.nps.sufficient]
    if not shown:
        return "NPS trend: no period has enough answers to show a score."
    first, last = shown[0], shown[-1]
    return (
        f"NPS by {board.filters.period}, with its 95% interval as a band: "
        f"{round(first.nps.nps)} in {first.label}, {round(last.nps.nps)} in {last.label}. "
        f"{len(board.trend) - len(shown)} of {len(board.trend)} periods have too few answers."
    )


def _histogram_summary(board: metrics.Dashboard) -> str:
    total = sum(board.histogram)
    if not total:
        return "Score distribution: no answers."
    peak = max(range(11), key=lambda score: board.histogram[score])
    return f"Answers per score from 0 to 10, {total} in all; the most common score is {peak}."


@require_http_methods(["GET", "HEAD"])
@member_required("dashboard")
def dashboard(request):
    organization = request.organization
    filters, errors = filters_for(organization, request.GET)
    has_answers = responses_of(organization).exists()
    board = metrics.dashboard(organization, filters) if has_answers else None
    params = filters.as_params()
    query = urlencode(params)
    without_segment = urlencode({k: v for k, v in params.items() if k != "segment"})
    context = {
        "filters": filters,
        "errors": errors,
        "has_answers": has_answers,
        "board": board,
        "chart_data": _chart_data(board) if board else None,
        "trend_summary": _trend_summary(board) if board else "",
        "histogram_summary": _histogram_summary(board) if board else "",
        "query": query,
        "query_without_segment": without_segment,
        "min_sample": metrics.MIN_SAMPLE,
        "periods": [(p, p.capitalize()) for p in metrics.PERIODS],
        "segment_options": list(segments_of(organization).values_list("pk", "name")),
        "survey_options": list(surveys_of(organization).values_list("pk", "name")),
        "channel_options": Channel.choices,
        "owner_options": [
            (m.user_id, m.user.name or m.user.email)
            for m in members_of(organization).order_by("user__name", "user__email")
        ],
        "panels": exports.PANELS,
        "currency": organization.currency,
        "can_accounts": can(request.membership.role, "accounts"),
        "printable": request.GET.get("print") == "1",
    }
    return render(request, "insights/dashboard.html", context, status=400 if errors else 200)


@require_http_methods(["GET", "HEAD"])
@member_required("dashboard")
def export(request, panel: str):
    """One panel's figures as CSV, for the same parameters as the page."""
    if panel not in exports.PANELS:
        raise Http404("No such panel.")
    organization = request.organization
    try:
        filters = metrics.filters_from_params(organization, _filter_params(request.GET))
    except ValidationError as exc:
        lines = [f"{name}: {message}" for name, msgs in _errors_of(exc).items() for message in msgs]
        return HttpResponse(
            "The export was not made, because of these parameters:\n" + "\n".join(lines) + "\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    filename = f"nps-{panel}-{organization.slug}-{filters.since:%Y%m%d}-{filters.until:%Y%m%d}.csv"
    streamed = StreamingHttpResponse(
        exports.panel_lines(organization, panel, filters), content_type="text/csv; charset=utf-8"
    )
    streamed["Content-Disposition"] = f'attachment; filename="{filename}"'
    streamed["Cache-Control"] = "no-store"
    return streamed
