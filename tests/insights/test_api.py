"""The metrics API answers the same figures as the service, and names bad parameters."""

import datetime

import pytest
from django_scopes import scope

from insights import metrics, services
from tests.accounts.factories import AccountFactory, ContactFactory, SegmentFactory
from tests.insights.factories import ResponseFactory, at

DAY = datetime.date(2026, 5, 10)


@pytest.fixture
def as_a(api, api_key_a):
    api.key = api_key_a[1]
    return api


def world(org):
    enterprise = AccountFactory(organization=org, plan="enterprise")
    for score in [10] * 20 + [8] * 5 + [2] * 10:
        ResponseFactory(organization=org, account=enterprise, score=score, submitted_at=at(DAY))
    for score in [0, 0, 9]:
        ResponseFactory(organization=org, score=score, submitted_at=at(DAY.replace(day=20)))
    with scope(organization=org.pk):
        services.rollup_rebuild(org.pk)
    return SegmentFactory(
        organization=org,
        name="Enterprise",
        rules={
            "match": "all",
            "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
        },
    )


def test_it_answers_the_services_figures(as_a, org_a):
    world(org_a)
    body = as_a.get("/api/v1/metrics/nps?since=2026-05-01&until=2026-05-31&group_by=week").json()
    with scope(organization=org_a.pk):
        filters = metrics.filters_from_params(org_a, {"since": "2026-05-01", "until": "2026-05-31"})
        expected = metrics.headline(org_a, filters)
    current = body["current"]
    assert current["n"] == expected.n == 38
    assert (current["promoters"], current["passives"], current["detractors"]) == (21, 5, 12)
    assert current["nps"] == pytest.approx(expected.nps)
    assert current["interval"] == pytest.approx([expected.low, expected.high])
    assert current["promoter_pct"] == pytest.approx(100 * 21 / 38)
    assert current["sufficient"] is True
    assert body["change"] == {"delta": None, "significant": False}
    assert body["group_by"] == "week"
    assert sum(g["nps"]["n"] for g in body["groups"]) == 38
    assert body["groups"][0]["key"] == "2026-04-27"


def test_it_groups_by_segment(as_a, org_a):
    segment = world(org_a)
    body = as_a.get(
        f"/api/v1/metrics/nps?since=2026-05-01&until=2026-05-31&group_by=segment&segment={segment.pk}"
    ).json()
    assert body["current"]["n"] == 35
    assert [(g["key"], g["label"], g["nps"]["n"]) for g in body["groups"]] == [
        (str(segment.pk), "Enterprise", 35)
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("since=2026-05-02&until=2026-05-01", "since"),
        ("group_by=day", "group_by"),
        ("segment=abc", "segment"),
        ("segment=999999", "segment"),
        ("channel=fax", "channel"),
        ("owner=0", "owner"),
        ("survey=99999999999999999999999", "survey"),
    ],
)
def test_it_answers_400_naming_a_bad_parameter(as_a, org_a, query, field):
    response = as_a.get(f"/api/v1/metrics/nps?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert field in body["fields"]


def test_it_never_shows_another_tenants_segment_or_figures(api, api_key_b, org_a, org_b):
    segment = world(org_a)
    api.key = api_key_b[1]
    assert api.get(f"/api/v1/metrics/nps?segment={segment.pk}").status_code == 400
    body = api.get("/api/v1/metrics/nps?since=2026-05-01&until=2026-05-31").json()
    assert body["current"]["n"] == 0
    assert body["current"]["nps"] is None


def test_it_answers_the_whole_dashboard(as_a, org_a):
    world(org_a)
    body = as_a.get("/api/v1/metrics/dashboard?since=2026-05-01&until=2026-05-31").json()
    assert body["headline"]["n"] == 38
    assert sum(body["histogram"]) == 38
    assert body["account_level"]["accounts"] == 1
    assert body["segments"][0]["label"] == "Enterprise"
    assert body["revenue_at_risk"]["currency"] == org_a.currency


def test_it_needs_a_key(api):
    assert api.get("/api/v1/metrics/nps").status_code == 401


def test_it_answers_for_an_account_whose_respondent_moved_on(as_a, org_a):
    left, joined = (AccountFactory(organization=org_a, name=n) for n in ("Left", "Joined"))
    person = ContactFactory(organization=org_a, account=left)
    ResponseFactory(organization=org_a, account=left, contact=person, score=2, submitted_at=at(DAY))
    ResponseFactory(
        organization=org_a, account=joined, contact=person, score=9, submitted_at=at(DAY, 12)
    )
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    response = as_a.get("/api/v1/metrics/dashboard?since=2026-05-01&until=2026-05-31")
    assert response.status_code == 200
    # The account with an answer but none of its respondents' latest: at risk, no mean.
    top = response.json()["revenue_at_risk"]["top"]
    assert [(row["name"], row["score"]) for row in top] == [("Left", None)]
