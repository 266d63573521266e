"""Metrics API: the dashboard's figures as JSON for BI tools, from the metrics service.

GET /api/v1/metrics/nps       NPS with its interval, change and groups (week, month, quarter
                              or segment)
GET /api/v1/metrics/dashboard every figure of the dashboard
Both take the dashboard's filters: since, until, period, segment, survey, channel, owner.
"""

from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from insights import metrics
from insights.metrics import Filters, Nps

GROUP_BY = ("week", "month", "quarter", "segment")

# --- Output ------------------------------------------------------------------------------------


class NpsSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="Answers counted.")
    promoters = serializers.IntegerField(help_text="Scores 9–10.")
    passives = serializers.IntegerField(help_text="Scores 7–8.")
    detractors = serializers.IntegerField(help_text="Scores 0–6.")
    promoter_pct = serializers.FloatField(allow_null=True, help_text="0–100; null when n = 0.")
    passive_pct = serializers.FloatField(allow_null=True)
    detractor_pct = serializers.FloatField(allow_null=True)
    nps = serializers.FloatField(allow_null=True, help_text="−100…100; null when n = 0.")
    interval = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="95% adjusted-Wald interval [low, high]; null when n = 0.",
    )
    sufficient = serializers.BooleanField(
        help_text=f"n ≥ {metrics.MIN_SAMPLE}; below it, show “insufficient data”."
    )


class ChangeSerializer(serializers.Serializer):
    delta = serializers.FloatField(allow_null=True, help_text="NPS points against the previous.")
    significant = serializers.BooleanField(help_text="Significant at 95%.")


class GroupSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The period's start date, or the segment's id.")
    label = serializers.CharField()
    start = serializers.DateField(allow_null=True)
    end = serializers.DateField(allow_null=True)
    nps = NpsSerializer()
    change = ChangeSerializer(allow_null=True, help_text="Segments only.")


class FiltersSerializer(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField()
    period = serializers.CharField()
    segment = serializers.IntegerField(allow_null=True)
    survey = serializers.IntegerField(allow_null=True)
    channel = serializers.CharField(allow_null=True)
    owner = serializers.IntegerField(allow_null=True)


class NpsMetricsSerializer(serializers.Serializer):
    filters = FiltersSerializer()
    group_by = serializers.CharField()
    current = NpsSerializer()
    previous = NpsSerializer(help_text="The period of equal length just before.")
    change = ChangeSerializer()
    groups = GroupSerializer(many=True)


class DashboardMetricsSerializer(serializers.Serializer):
    filters = FiltersSerializer()
    headline = NpsSerializer()
    previous = NpsSerializer()
    change = ChangeSerializer()
    trend = GroupSerializer(many=True)
    histogram = serializers.ListField(
        child=serializers.IntegerField(), help_text="Answers per score 0…10."
    )
    segments = GroupSerializer(many=True)
    account_level = serializers.DictField(help_text="accounts, nps, revenue_weighted_nps.")
    revenue_at_risk = serializers.DictField(
        help_text="currency, total, accounts, danger_zone, renewal_90d and the top accounts."
    )
    rates = serializers.DictField(help_text="Response rate and verbatim rate, with counts.")
    coverage = serializers.DictField(help_text="Shares of accounts and ARR surveyed; bias.")
    loop = serializers.DictField(help_text="Loop health of the period's detractors.")
    themes = serializers.ListField(child=serializers.DictField())
    churn = serializers.DictField(help_text="Churn within six months by category.")


class MetricsErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


ERRORS = {
    400: OpenApiResponse(MetricsErrorSerializer, description="A parameter is not valid."),
    401: OpenApiResponse(MetricsErrorSerializer, description="No or a bad API key."),
}

FILTER_PARAMETERS = [
    OpenApiParameter("since", OpenApiTypes.DATE, description="First day (default: 12 months)."),
    OpenApiParameter("until", OpenApiTypes.DATE, description="Last day, inclusive (today)."),
    OpenApiParameter("period", str, enum=list(metrics.PERIODS), description="Trend period."),
    OpenApiParameter("segment", int, description="A segment's id."),
    OpenApiParameter("survey", int, description="A survey's id."),
    OpenApiParameter("channel", str, description="email, link, in_app, api or import."),
    OpenApiParameter("owner", int, description="The account owner's user id."),
]


def nps_json(nps: Nps) -> dict:
    return {
        "n": nps.n,
        "promoters": nps.promoters,
        "passives": nps.passives,
        "detractors": nps.detractors,
        "promoter_pct": nps.promoter_pct,
        "passive_pct": nps.passive_pct,
        "detractor_pct": nps.detractor_pct,
        "nps": nps.nps,
        "interval": None if nps.low is None else [nps.low, nps.high],
        "sufficient": nps.sufficient,
    }


def filters_json(filters: Filters) -> dict:
    return {
        "since": filters.since,
        "until": filters.until,
        "period": filters.period,
        "segment": filters.segment_id,
        "survey": filters.survey_id,
        "channel": filters.channel,
        "owner": filters.owner_id,
    }


def _trend_json(points) -> list[dict]:
    return [
        {
            "key": p.start.isoformat(),
            "label": p.label,
            "start": p.start,
            "end": p.end,
            "nps": nps_json(p.nps),
            "change": None,
        }
        for p in points
    ]


def _segments_json(rows) -> list[dict]:
    return [
        {
            "key": str(row.segment_id),
            "label": row.name,
            "start": None,
            "end": None,
            "nps": nps_json(row.nps),
            "change": asdict(row.change),
        }
        for row in rows
    ]


def _plain(value):
    """Dataclass values made JSON-friendly (Decimals as strings, like DRF's)."""
    return serializers.JSONField().to_representation(value)


class NpsMetricsApi(APIView):
    @extend_schema(
        summary="NPS with its interval, change and groups",
        description="The dashboard's NPS for the filters: counts, percentages, NPS, its 95% "
        "adjusted-Wald interval, whether n reaches the minimum sample, the change against "
        "the previous period of equal length with a significance flag, and the groups "
        "(`group_by`: week, month, quarter or segment; default month). A bad parameter "
        "answers 400 naming it.",
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter("group_by", str, enum=list(GROUP_BY), description="Grouping."),
        ],
        responses={200: NpsMetricsSerializer, **ERRORS},
        tags=["metrics"],
    )
    def get(self, request):
        organization = request.auth.organization
        params = request.query_params.copy()
        group_by = (params.get("group_by") or "").strip() or params.get("period") or "month"
        if group_by not in GROUP_BY:
            raise serializers.ValidationError(
                {"group_by": [f"group_by must be one of {', '.join(GROUP_BY)}."]}
            )
        if group_by != "segment":
            params["period"] = group_by
        filters = metrics.filters_from_params(organization, params)
        current = metrics.headline(organization, filters)
        before = metrics.previous(organization, filters)
        if group_by == "segment":
            groups = _segments_json(metrics.segments(organization, filters))
        else:
            groups = _trend_json(metrics.trend(organization, filters))
        body = {
            "filters": filters_json(filters),
            "group_by": group_by,
            "current": nps_json(current),
            "previous": nps_json(before),
            "change": asdict(metrics.change(current, before)),
            "groups": groups,
        }
        return Response(NpsMetricsSerializer(body).data)


def dashboard_json(board) -> dict:
    account_level = board.account_level
    return {
        "filters": filters_json(board.filters),
        "headline": nps_json(board.headline),
        "previous": nps_json(board.previous),
        "change": asdict(board.change),
        "trend": _trend_json(board.trend),
        "histogram": board.histogram,
        "segments": _segments_json(board.segments),
        "account_level": {
            "accounts": account_level.accounts,
            "nps": nps_json(account_level.nps),
            "revenue_weighted_nps": account_level.revenue_weighted_nps,
        },
        "revenue_at_risk": _plain(asdict(board.revenue_at_risk)),
        "rates": asdict(board.rates),
        "coverage": asdict(board.coverage),
        "loop": asdict(board.loop),
        "themes": [asdict(row) for row in board.themes],
        "churn": asdict(board.churn),
    }


class DashboardMetricsApi(APIView):
    @extend_schema(
        summary="Every figure of the dashboard",
        description="The same figures as the dashboard page for the filters: headline, "
        "trend, histogram, segments, account-level and revenue-weighted NPS, revenue at "
        "risk, response and verbatim rates, coverage with its bias warning, loop health, "
        "themes and churn by category. Money is a decimal string in the organization's "
        "currency.",
        parameters=FILTER_PARAMETERS,
        responses={200: DashboardMetricsSerializer, **ERRORS},
        tags=["metrics"],
    )
    def get(self, request):
        organization = request.auth.organization
        filters = metrics.filters_from_params(organization, request.query_params)
        return Response(
            DashboardMetricsSerializer(
                dashboard_json(metrics.dashboard(organization, filters))
            ).data
        )
