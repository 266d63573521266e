"""The response explorer, its CSV export and a response's page: filters, search, the NPS
summary, constant query counts, escaping, roles and tenant isolation."""

import csv
import io
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from accounts.models import Segment
from responses import selectors
from responses.analysis import responses_analyze
from responses.models import Response
from responses.services import response_record
from responses.views import EXPORT_COLUMNS, spreadsheet_safe
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

EXPLORER = "/responses/"
EXPORT = "/responses/export.csv"
TWO_YEARS_AGO = (date.today() - timedelta(days=2 * 365 + 40)).isoformat()

# external_id → (contact email, score, comment, channel, submitted_at)
ANSWERS = {
    "r1": ("ann@initech.example", 2,
           "Way too expensive and the price doubled. Really disappointed.", "email",
           "2025-01-10T09:00:00Z"),
    "r2": ("ann@initech.example", 10, "Love it, great support team!", "link",
           "2025-02-01T09:00:00Z"),
    "r3": ("gus@globex.example", 8, "", "in_app", "2025-02-15T09:00:00Z"),
    "r4": ("gus@globex.example", 5, "The app crashes on export, not working.", "api",
           "2025-03-01T09:00:00Z"),
    "r5": ("uma@umbrella.example", 9, "Fair price for what we get.", "import",
           "2025-03-05T09:00:00Z"),
    "r6": ("gus@globex.example", 9, "Fast and snappy.", "email", "2025-03-20T09:00:00Z"),
}  # fmt: skip


def _record(organization, external_id, email, score, comment, channel, submitted_at):
    response, _ = response_record(
        organization=organization,
        channel=channel,
        email=email,
        score=score,
        comment=comment,
        submitted_at=submitted_at,
        external_id=external_id,
    )
    return response


@pytest.fixture
def world(org_a, alice, bob, carol):
    """Three accounts (Initech owned by alice with three open tickets, Globex by bob,
    Umbrella by nobody), a segment of enterprise accounts and six analysed responses."""
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {
                    "external_id": "acc-1",
                    "name": "Initech",
                    "arr": 90000,
                    "plan": "enterprise",
                    "owner_email": "alice@a.example",
                    "signed_up_on": TWO_YEARS_AGO,
                },
                {
                    "external_id": "acc-2",
                    "name": "Globex",
                    "arr": 12000,
                    "plan": "growth",
                    "owner_email": "bob@a.example",
                },
                {"external_id": "acc-3", "name": "Umbrella", "plan": "growth"},
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {"email": "ann@initech.example", "name": "Ann Initech",
                 "account_external_id": "acc-1"},
                {"email": "gus@globex.example", "name": "Gus Globex",
                 "account_external_id": "acc-2"},
                {"email": "uma@umbrella.example", "account_external_id": "acc-3"},
            ],
        )  # fmt: skip
        account_services.records_upsert(
            organization=org_a,
            kind="tickets",
            items=[
                {"external_id": f"T-{n}", "account_external_id": "acc-1", "subject": f"Issue {n}",
                 "status": status, "opened_at": "2025-01-01T00:00:00Z"}
                for n, status in enumerate(["open", "open", "pending", "solved", "closed"])
            ],
        )  # fmt: skip
        segment = Segment.objects.create(
            organization=org_a,
            name="Enterprise",
            rules={
                "match": "all",
                "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
            },
        )
        responses = {key: _record(org_a, key, *answer) for key, answer in ANSWERS.items()}
        responses_analyze(organization=org_a, response_ids=[r.pk for r in responses.values()])
    return {"org": org_a, "segment": segment, "responses": responses, "alice": alice}


def _ids(world, *keys):
    return [world["responses"][key].pk for key in keys]


def _shown(response) -> list[int]:
    """Response ids on the page, in order."""
    html = response.content.decode()
    marker = 'data-response-id="'
    ids, start = [], 0
    while (start := html.find(marker, start)) != -1:
        start += len(marker)
        ids.append(int(html[start : html.index('"', start)]))
    return ids


def _export(client, query="") -> list[dict]:
    response = client.get(EXPORT + (f"?{query}" if query else ""))
    assert response.status_code == 200
    assert response.streaming
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(body)))


# --- The list and its summary -----------------------------------------------------------------


def test_it_lists_every_response_newest_first_with_the_nps_summary(as_alice, world):
    response = as_alice.get(EXPLORER)

    assert response.status_code == 200
    assert _shown(response) == _ids(world, "r6", "r5", "r4", "r3", "r2", "r1")
    summary = response.context["summary"]
    # 3 promoters, 1 passive, 2 detractors of 6: 50% − 33.3% = 16.7 → +17.
    assert (summary.promoters, summary.passives, summary.detractors, summary.total) == (3, 1, 2, 6)
    assert summary.nps == 17
    html = response.content.decode()
    assert '<dd data-stat="nps" class="rx-nps-up">+17</dd>' in html
    assert '<dd data-stat="count">6</dd>' in html
    assert "Promoters <strong>50%</strong>" in html
    assert "Passives <strong>17%</strong>" in html
    assert "Detractors <strong>33%</strong>" in html


def test_it_shows_each_rows_context_badges_themes_and_sentiment(as_alice, world):
    html = as_alice.get(EXPLORER).content.decode()

    r1 = world["responses"]["r1"]
    row = html[html.index(f'data-response-id="{r1.pk}"') :]
    row = row[: row.index("</li>")]
    assert "Way too expensive and the price doubled. Really disappointed." in row
    assert "nps-detractor nps-danger" in row
    assert "danger zone" in row
    assert ">Pricing</a>" in row
    assert "Negative" in row
    assert "Ann Initech" in row
    assert "ann@initech.example" in row
    assert "Initech" in row
    assert "$90,000" in row
    assert "2 y" in row
    assert 'data-open-tickets="3"' in row
    assert "3 open tickets" in row
    assert "Email" in row
    assert reverse("responses:detail", args=[r1.pk]) in row

    r3 = world["responses"]["r3"]
    row = html[html.index(f'data-response-id="{r3.pk}"') :]
    row = row[: row.index("</li>")]
    assert "No comment" in row
    assert 'data-open-tickets="0"' in row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("score=9", ["r6", "r5"]),
        ("score=0", []),
        ("category=detractor", ["r4", "r1"]),
        ("category=passive", ["r3"]),
        ("theme=pricing", ["r5", "r1"]),
        ("theme=bugs", ["r4"]),
        ("from=2025-02-01&to=2025-03-01", ["r4", "r3", "r2"]),
        ("from=2025-03-02", ["r6", "r5"]),
        ("to=2025-01-31", ["r1"]),
        ("has_comment=no", ["r3"]),
        ("has_comment=yes", ["r6", "r5", "r4", "r2", "r1"]),
        ("owner=none", ["r5"]),
        ("channel=email", ["r6", "r1"]),
        ("channel=in_app", ["r3"]),
        ("q=PRICE", ["r5", "r1"]),
        ("q=crashes", ["r4"]),
        ("category=promoter&channel=email", ["r6"]),
        ("category=detractor&theme=pricing", ["r1"]),
    ],
)
def test_it_filters_by_every_field(as_alice, world, query, expected):
    response = as_alice.get(f"{EXPLORER}?{query}")

    assert response.status_code == 200
    assert _shown(response) == _ids(world, *expected)
    assert response.context["summary"].total == len(expected)


def test_it_filters_by_segment_and_by_account_owner(as_alice, world, bob):
    segment = world["segment"]
    assert _shown(as_alice.get(f"{EXPLORER}?segment={segment.pk}")) == _ids(world, "r2", "r1")
    assert _shown(as_alice.get(f"{EXPLORER}?owner={bob.pk}")) == _ids(world, "r6", "r4", "r3")
    assert _shown(as_alice.get(f"{EXPLORER}?owner={world['alice'].pk}")) == _ids(world, "r2", "r1")


def test_it_reads_the_date_range_in_the_organizations_time_zone(as_alice, world, org_a):
    org_a.timezone = "America/New_York"
    org_a.save()
    # r4 is 2025-03-01 09:00 UTC = 04:00 in New York; r3 is 2025-02-15.
    with scope(organization=org_a):
        Response.objects.filter(pk=world["responses"]["r4"].pk).update(
            submitted_at="2025-03-01T03:00:00Z"  # 22:00 on 28 February in New York
        )
    response = as_alice.get(f"{EXPLORER}?from=2025-03-01&to=2025-03-05")
    assert _shown(response) == _ids(world, "r5")
    response = as_alice.get(f"{EXPLORER}?from=2025-02-28&to=2025-02-28")
    assert _shown(response) == _ids(world, "r4")


def test_it_ignores_filter_values_that_are_invalid_or_another_tenants(
    as_alice, world, org_b, mallory
):
    with scopes_disabled():
        foreign = Segment.objects.create(organization=org_b, name="Theirs", rules={})
    for query in (
        f"segment={foreign.pk}",
        "score=11",
        "score=-1",
        "category=grumpy",
        "channel=fax",
        "from=yesterday",
        "has_comment=maybe",
        "theme=<b>",
        "owner=abc",
    ):
        response = as_alice.get(f"{EXPLORER}?{query}")
        assert response.status_code == 200, query
        assert len(_shown(response)) == 6, query


def test_it_shows_a_dash_for_the_nps_when_nothing_matches(as_alice, world):
    response = as_alice.get(f"{EXPLORER}?q=nothing-says-this")

    assert response.context["summary"].nps is None
    html = response.content.decode()
    assert '<dd data-stat="nps" class="rx-nps-none">—</dd>' in html
    assert "No response matches these filters" in html


def test_it_shows_an_empty_state_before_the_first_response(as_alice):
    html = as_alice.get(EXPLORER).content.decode()

    assert "No responses yet" in html
    assert 'data-response-id="' not in html


def test_it_answers_htmx_with_only_the_results(as_alice, world):
    response = as_alice.get(
        f"{EXPLORER}?category=detractor",
        headers={"HX-Request": "true", "HX-Target": "response-results"},
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="response-results"')
    assert "<html" not in html
    assert _shown(response) == _ids(world, "r4", "r1")
    assert f'href="{EXPORT}?category=detractor"' in html


def test_it_paginates_fifty_a_page(as_alice, world, org_a):
    with scope(organization=org_a):
        for n in range(50):
            _record(org_a, f"bulk-{n}", "uma@umbrella.example", 7, "", "api",
                    f"2024-06-{1 + n % 28:02d}T{n % 24:02d}:00:00Z")  # fmt: skip
    first = as_alice.get(EXPLORER)
    second = as_alice.get(f"{EXPLORER}?page=2")

    assert len(_shown(first)) == 50
    assert len(_shown(second)) == 6
    assert not set(_shown(first)) & set(_shown(second))
    assert first.context["summary"].total == 56
    assert "Page 1 of 2" in first.content.decode()


def test_it_escapes_comments_everywhere(as_alice, world, org_a):
    with scope(organization=org_a):
        evil = _record(org_a, "evil", "ann@initech.example", 1,
                       "<script>alert('x')</script> <b>bold</b> Too pricey", "api",
                       "2025-04-01T00:00:00Z")  # fmt: skip
        responses_analyze(organization=org_a, response_ids=[evil.pk])

    for url in (EXPLORER, reverse("responses:detail", args=[evil.pk])):
        html = as_alice.get(url).content.decode()
        assert "<script>alert(" not in html, url
        assert "<b>bold</b>" not in html, url
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html, url


# --- Search -----------------------------------------------------------------------------------


def test_it_searches_with_a_substring_match_where_full_text_search_is_off(world, monkeypatch):
    monkeypatch.setattr(selectors, "full_text_search_enabled", lambda using="default": False)
    with scope(organization=world["org"]):
        found = selectors.responses_filtered(world["org"], {"q": "expens"})
        assert list(found) == [world["responses"]["r1"]]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL full-text search")
def test_it_searches_stemmed_english_words_on_postgresql(world, monkeypatch):
    monkeypatch.setattr(selectors, "full_text_search_enabled", lambda using="default": True)
    with scope(organization=world["org"]):
        # "pricing" and "price" share the stem "price"; "crash" finds "crashes".
        found = selectors.responses_filtered(world["org"], {"q": "pricing"})
        assert {r.external_id for r in found} == {"r1", "r5"}
        found = selectors.responses_filtered(world["org"], {"q": "crash"})
        assert {r.external_id for r in found} == {"r4"}
        found = selectors.responses_filtered(world["org"], {"q": "price -fair"})
        assert {r.external_id for r in found} == {"r1"}
        assert selectors.nps_summary(found).total == 1
        paged = selectors.with_open_tickets(world["org"], found)
        assert [r.open_tickets for r in paged] == [3]


# --- Query counts -----------------------------------------------------------------------------


def _more_responses(org, count):
    """`count` more responses spread over the three accounts, each with a comment."""
    emails = ["ann@initech.example", "gus@globex.example", "uma@umbrella.example"]
    with scope(organization=org):
        for n in range(count):
            _record(org, f"more-{n}", emails[n % 3], n % 11, f"Comment number {n}, slow",
                    "api", f"2024-05-{1 + n % 28:02d}T00:00:00Z")  # fmt: skip


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    if response.streaming:
        b"".join(response.streaming_content)
    return len(captured)


@pytest.mark.parametrize(
    "url",
    [
        EXPLORER,
        f"{EXPLORER}?category=detractor&has_comment=yes&q=slow&theme=performance&segment={{segment}}",
        EXPORT,
    ],
)
def test_it_runs_a_constant_number_of_queries_whatever_the_rows(
    as_alice, world, url, django_assert_max_num_queries
):
    url = url.format(segment=world["segment"].pk)
    few = _queries(as_alice, url)
    _more_responses(world["org"], 45)
    with django_assert_max_num_queries(few):
        response = as_alice.get(url)
        if response.streaming:
            b"".join(response.streaming_content)


# --- The CSV export ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["", "category=detractor", "theme=pricing&from=2025-01-01", "q=price", "owner=none"]
)
def test_it_exports_exactly_the_filtered_rows(as_alice, world, query):
    shown = _shown(as_alice.get(f"{EXPLORER}?{query}"))
    rows = _export(as_alice, query)

    assert [int(row["id"]) for row in rows] == shown


def test_it_exports_every_column(as_alice, world):
    response = as_alice.get(EXPORT)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="responses-acme-a-')
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(body)))
    assert header == EXPORT_COLUMNS

    r1 = world["responses"]["r1"]
    with scope(organization=world["org"]):
        r1.refresh_from_db()
    row = next(r for r in _export(as_alice) if int(r["id"]) == r1.pk)
    assert row == {
        "id": str(r1.pk),
        "submitted_at": "2025-01-10T09:00:00+00:00",
        "score": "2",
        "category": "detractor",
        "danger_zone": "true",
        "comment": "Way too expensive and the price doubled. Really disappointed.",
        "themes": "pricing",
        "sentiment": str(r1.sentiment),
        "channel": "email",
        "contact_email": "ann@initech.example",
        "contact_name": "Ann Initech",
        "account_external_id": "acc-1",
        "account_name": "Initech",
        "arr": "90000.00",
        "tags": "",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tTAB", "'\tTAB"),
        ("Plain words = fine", "Plain words = fine"),
        (-0.42, -0.42),
        (7, 7),
        (None, ""),
    ],
)
def test_it_guards_spreadsheet_formulas_in_text_cells(value, expected):
    assert spreadsheet_safe(value) == expected


def test_it_neutralises_formulas_in_the_exported_file(as_alice, world, org_a):
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[{"email": "eve@initech.example", "name": "=cmd|' /C calc'!A0",
                    "account_external_id": "acc-1"}],
        )  # fmt: skip
        _record(org_a, "formula", "eve@initech.example", 3,
                '=HYPERLINK("http://evil.example","click")', "api",
                "2025-04-02T00:00:00Z")  # fmt: skip

    row = next(r for r in _export(as_alice) if r["comment"].startswith("'"))
    assert row["comment"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["contact_name"] == "'=cmd|' /C calc'!A0"


# --- A response's page ------------------------------------------------------------------------


def test_it_shows_a_response_with_its_context_and_the_contacts_timeline(as_alice, world):
    r1, r2 = world["responses"]["r1"], world["responses"]["r2"]
    response = as_alice.get(reverse("responses:detail", args=[r1.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Way too expensive and the price doubled. Really disappointed." in html
    assert "Danger zone" in html
    assert "Pricing" in html
    assert "Negative" in html
    assert "$90,000" in html
    assert "enterprise" in html
    assert "Alice Admin" in html
    assert 'data-open-tickets="3"' in html
    assert "2 y" in html
    assert [r.pk for r in response.context["timeline"]] == [r2.pk]
    assert f'data-response-id="{r2.pk}"' in html
    assert reverse("accounts:detail", args=[r1.account_id]) in html


def test_it_hides_the_account_page_link_from_executives(client, world, carol):
    r1 = world["responses"]["r1"]
    html = client_for(client, carol).get(reverse("responses:detail", args=[r1.pk]))
    assert html.status_code == 200
    assert reverse("accounts:detail", args=[r1.account_id]) not in html.content.decode()


def test_it_answers_404_for_another_tenants_response(client, world, mallory):
    r1 = world["responses"]["r1"]
    response = client_for(client, mallory).get(reverse("responses:detail", args=[r1.pk]))

    assert response.status_code == 404


def test_it_keeps_another_tenants_responses_out_of_the_list_and_the_export(client, world, mallory):
    client_for(client, mallory)
    response = client.get(EXPLORER)
    assert response.status_code == 200
    assert _shown(response) == []
    assert "Initech" not in response.content.decode()
    assert _export(client) == []


# --- Roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob", "carol"])
def test_it_lets_every_role_read_responses(client, world, request, who):
    client_for(client, request.getfixturevalue(who))
    r1 = world["responses"]["r1"]

    assert client.get(EXPLORER).status_code == 200
    assert client.get(EXPORT).status_code == 200
    assert client.get(reverse("responses:detail", args=[r1.pk])).status_code == 200


def test_it_sends_anonymous_visitors_to_sign_in(client, world):
    for url in (EXPLORER, EXPORT, reverse("responses:detail", args=[world["responses"]["r1"].pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith("/login/")


# --- The NPS formula --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "nps"),
    [
        ((0, 0, 0), None),
        ((1, 0, 0), 100),
        ((0, 0, 3), -100),
        ((1, 1, 1), 0),
        ((3, 1, 2), 17),
        ((1, 6, 1), 0),
        ((1, 7, 0), 13),  # 12.5 rounds away from zero
        ((0, 7, 1), -13),
    ],
)
def test_it_computes_the_nps_from_counts(counts, nps):
    assert selectors.nps_of_counts(*counts) == nps
