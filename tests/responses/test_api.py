"""The responses REST API: recording one or a batch over HTTP, filtered cursor-paginated lists
in a constant number of queries, retrieve and PATCH, and tenant isolation."""

from contextlib import ExitStack
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from accounts.models import Account, Contact
from responses import api as responses_api
from responses import services
from responses.models import Response, ResponseTheme
from tests.accounts.factories import AccountFactory, ContactFactory, SegmentFactory
from tests.surveys.factories import SurveyFactory

pytestmark = pytest.mark.django_db

LIST = "api:response-list"
BULK = "api:response-bulk"


def detail(pk) -> str:
    return reverse("api:response-detail", kwargs={"pk": pk})


@pytest.fixture
def as_a(api, api_key_a):
    api.key = api_key_a[1]
    return api


@pytest.fixture
def as_b(api, api_key_b):
    api.key = api_key_b[1]
    return api


@pytest.fixture
def people(org_a):
    initech = AccountFactory(
        organization=org_a,
        external_id="acc-1",
        name="Initech",
        arr=Decimal("90000"),
        plan="enterprise",
    )
    hooli = AccountFactory(organization=org_a, external_id="acc-2", name="Hooli", plan="growth")
    ann = ContactFactory(
        account=initech, email="ann@initech.example", external_id="c-1", name="Ann"
    )
    ben = ContactFactory(account=hooli, email="ben@hooli.example", external_id="c-2", name="Ben")
    solo = ContactFactory(
        account=None, organization=org_a, email="solo@nowhere.example", name="Solo"
    )
    return SimpleNamespace(initech=initech, hooli=hooli, ann=ann, ben=ben, solo=solo)


def on_commit_in_scope(org, capture):
    """Runs the on-commit callbacks (the analysis, webhooks…) when the block ends, inside the
    tenant's scope as they run in a request (its commit happens inside the view)."""
    stack = ExitStack()
    stack.enter_context(scope(organization=org))
    stack.enter_context(capture(execute=True))
    return stack


def record(org, *, channel="api", **item) -> Response:
    with scope(organization=org):
        report = services.responses_record(organization=org, items=[item], channel=channel)
    result = report.results[0]
    assert result.status != "error", result.errors
    return result.response


def count(model, **lookups) -> int:
    with scopes_disabled():
        return model.objects.filter(**lookups).count()


def ids_of(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- POST one -------------------------------------------------------------------------------


def test_it_records_a_response_and_answers_201_with_its_representation(as_a, people):
    response = as_a.post(
        reverse(LIST),
        {
            "score": 3,
            "email": "ANN@initech.example",
            "comment": "Too expensive for what it does.",
            "tags": ["Q1", "renewal"],
            "properties": {"plan_at_answer": "enterprise"},
            "submitted_at": "2025-03-01T10:00:00Z",
            "external_id": "crm-1",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == set(responses_api.ResponseOutputSerializer().fields)
    assert body["score"] == 3
    assert (body["category"], body["danger_zone"]) == ("detractor", True)
    assert body["comment"] == "Too expensive for what it does."
    assert body["has_comment"]
    assert body["tags"] == ["q1", "renewal"]
    assert body["channel"] == "api"
    assert body["submitted_at"] == "2025-03-01T10:00:00Z"
    assert body["external_id"] == "crm-1"
    assert body["properties"] == {"plan_at_answer": "enterprise"}
    assert body["contact"] == {
        "id": people.ann.id,
        "email": "ann@initech.example",
        "name": "Ann",
        "external_id": "c-1",
    }
    assert body["account"] == {
        "id": people.initech.id,
        "external_id": "acc-1",
        "name": "Initech",
        "arr": "90000.00",
        "plan": "enterprise",
    }
    assert body["survey_id"] is None
    assert body["invitation_id"] is None
    with scopes_disabled():
        saved = Response.objects.get()
    assert saved.id == body["id"]
    assert saved.channel == "api"


@pytest.mark.parametrize(
    "fields",
    [
        {"score": 9, "email": "ann@initech.example"},
        {"score": 0, "email": "solo@nowhere.example", "comment": "  ", "tags": []},
        {
            "score": 7,
            "contact_external_id": "c-2",
            "comment": "Fine.",
            "tags": ["a", "b"],
            "properties": {"seats": 12, "nested": {"x": None}, "list": [1, "two"]},
            "submitted_at": "2025-03-01T10:00:00.123456+02:00",
            "external_id": "crm-9",
            "survey_id": 5,
        },
    ],
)
def test_it_represents_a_response_exactly_as_its_output_serializer(org_a, people, fields):
    if "survey_id" in fields:  # one of the organization's surveys: another id is refused
        fields = {**fields, "survey_id": SurveyFactory(organization=org_a).pk}
    with scope(organization=org_a):
        recorded, _ = services.response_record(organization=org_a, channel="api", **fields)
        Response.objects.filter(pk=recorded.pk).update(sentiment=0.25, themes=["price"])
        for response in (recorded, Response.objects.get(pk=recorded.pk)):
            expected = responses_api.ResponseOutputSerializer(response).data
            shown = responses_api.represent(response)
            assert list(shown.items()) == list(expected.items())


def test_it_answers_null_for_the_account_of_a_contact_without_one(as_a, people):
    response = as_a.post(reverse(LIST), {"score": 9, "email": "solo@nowhere.example"})
    assert response.status_code == 201
    assert response.json()["account"] is None
    assert response.json()["contact"]["email"] == "solo@nowhere.example"


def test_it_updates_the_same_response_for_the_same_external_id(as_a, people):
    first = as_a.post(
        reverse(LIST), {"score": 4, "email": "ann@initech.example", "external_id": "x"}
    )
    second = as_a.post(
        reverse(LIST),
        {"score": 9, "contact_external_id": "c-1", "external_id": "x", "comment": "Better now"},
    )
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["score"] == 9
    assert second.json()["category"] == "promoter"
    assert second.json()["comment"] == "Better now"
    assert count(Response) == 1


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"score": 11, "email": "ann@initech.example"}, "score", "from 0 to 10, not 11"),
        ({"score": -1, "email": "ann@initech.example"}, "score", "0 to 10"),
        ({"score": 7.5, "email": "ann@initech.example"}, "score", "whole number"),
        ({"score": "seven", "email": "ann@initech.example"}, "score", "whole number"),
        ({"score": "²", "email": "ann@initech.example"}, "score", "whole number from 0 to 10, not"),
        ({"score": True, "email": "ann@initech.example"}, "score", "whole number"),
        ({"email": "ann@initech.example"}, "score", "score is required"),
        ({"score": None, "email": "ann@initech.example"}, "score", "score is required"),
        ({"score": 5}, "email", "email or contact_external_id"),
        ({"score": 5, "email": "nobody@initech.example"}, "email", "create_missing=true"),
        ({"score": 5, "contact_external_id": "c-404"}, "contact_external_id", "create_missing"),
        ({"score": 5, "email": "not-an-email"}, "email", "not a valid email"),
        ({"score": 5, "email": "ann@initech.example", "colour": "red"}, "colour", "Unknown field"),
        (
            {"score": 5, "email": "ann@initech.example", "submitted_at": "2999-01-01T00:00:00Z"},
            "submitted_at",
            "in the future",
        ),
        ({"score": 5, "email": "ann@initech.example", "tags": [1, 2]}, "tags", "list of text"),
        ({"score": 5, "email": "ann@initech.example", "create_missing": "maybe"}, "create_missing", "true or false"),  # noqa: E501
    ],
)  # fmt: skip
def test_it_answers_400_with_the_fields_message(as_a, people, payload, field, fragment):
    response = as_a.post(reverse(LIST), payload)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid"
    assert fragment in " ".join(body["fields"][field])
    assert body["message"]
    assert count(Response) == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "The body is empty"),
        ([{"score": 5, "email": "ann@initech.example"}], "/api/v1/responses/bulk"),
        ('"just text"', "JSON object"),
        ("42", "JSON object"),
        ("null", "JSON object"),
    ],
)
def test_it_answers_400_to_a_body_that_is_not_one_response(as_a, people, body, fragment):
    response = as_a.post(reverse(LIST), body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert fragment in response.json()["message"]


def test_it_answers_400_to_an_empty_request(as_a, people):
    response = as_a.post(reverse(LIST))
    assert response.status_code == 400
    assert "The body is empty" in response.json()["message"]


def test_it_answers_400_json_to_malformed_json(as_a, people):
    response = as_a.post(reverse(LIST), '{"score": ')
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"


@pytest.mark.parametrize(
    "value", [["a", "list"], {"an": "object"}, True, 10**40, "x" * 20_000, "\x00", -1, 1.5, ""]
)
@pytest.mark.parametrize(
    "field",
    [
        "score", "comment", "email", "contact_external_id", "contact_id", "contact_name",
        "account_external_id", "account_name", "submitted_at", "external_id", "properties",
        "tags", "survey_id", "invitation_id", "create_missing", "channel", "organization",
    ],
)  # fmt: skip
def test_it_never_answers_500_to_odd_values(request, as_a, people, field, value):
    payload = {"score": 5, "email": "ann@initech.example", field: value}
    response = as_a.post(reverse(LIST), payload)
    assert response.status_code in {200, 201, 400}, response.content
    if response.status_code == 400:
        assert response.json()["error"] == "invalid"


@pytest.mark.parametrize("where", ["body", "query"])
def test_it_creates_the_missing_contact_and_account_with_create_missing(as_a, org_a, where):
    payload = {
        "score": 10,
        "email": "new@globex.example",
        "contact_name": "Nia New",
        "account_external_id": "acc-globex",
        "account_name": "Globex",
    }
    url = reverse(LIST)
    if where == "body":
        payload["create_missing"] = True
    else:
        url += "?create_missing=true"
    response = as_a.post(url, payload)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["contact"]["email"] == "new@globex.example"
    assert body["contact"]["name"] == "Nia New"
    assert body["account"]["external_id"] == "acc-globex"
    assert body["account"]["name"] == "Globex"
    assert count(Contact, email="new@globex.example") == 1
    assert count(Account, external_id="acc-globex") == 1


def test_it_creates_nothing_without_create_missing(as_a, org_a):
    response = as_a.post(reverse(LIST), {"score": 10, "email": "new@globex.example"})
    assert response.status_code == 400
    assert count(Contact) == 0
    assert count(Response) == 0


def test_it_documents_every_field_the_service_accepts():
    documented = set(responses_api.ResponseInputSerializer().fields)
    assert documented == services.ITEM_FIELDS
    assert set(responses_api.ResponseCreateRequestSerializer().fields) == {
        *services.ITEM_FIELDS,
        "create_missing",
    }


# --- POST a batch ---------------------------------------------------------------------------


def test_it_records_a_batch_with_a_result_per_item(as_a, people):
    items = [
        {"score": 9, "email": "ann@initech.example"},
        {"score": 2, "contact_external_id": "c-2", "external_id": "e-1"},
        {"score": 11, "email": "ann@initech.example"},
        {"score": 5, "email": "ghost@initech.example"},
        {"score": 6, "email": "ben@hooli.example", "external_id": "e-1"},
        "not an object",
    ]
    response = as_a.post(reverse(BULK), {"items": items})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["updated"], body["errors"]) == (2, 0, 4)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == ["created", "created"] + ["error"] * 4
    assert "from 0 to 10" in results[2]["errors"]["score"][0]
    assert "create_missing=true" in results[3]["errors"]["email"][0]
    assert "appears twice" in results[4]["errors"]["external_id"][0]
    assert "must be an object" in results[5]["errors"]["non_field_errors"][0]
    with scopes_disabled():
        assert sorted(Response.objects.values_list("id", flat=True)) == sorted(
            r["id"] for r in results[:2]
        )

    again = as_a.post(
        reverse(BULK), [{"score": 3, "contact_external_id": "c-2", "external_id": "e-1"}]
    )
    assert again.status_code == 200
    assert again.json()["results"] == [{"index": 0, "status": "updated", "id": results[1]["id"]}]
    assert count(Response) == 2


@pytest.mark.parametrize("where", ["body", "query"])
def test_it_creates_missing_contacts_in_a_batch_when_asked(as_a, org_a, where):
    items = [
        {"score": 8, "email": f"p{n}@new.example", "account_external_id": "acc-n"} for n in range(3)
    ]
    if where == "body":
        response = as_a.post(reverse(BULK), {"items": items, "create_missing": True})
    else:
        response = as_a.post(f"{reverse(BULK)}?create_missing=1", items)
    assert response.status_code == 200
    assert response.json()["created"] == 3
    assert count(Contact) == 3
    assert count(Account, external_id="acc-n") == 1


def test_it_accepts_exactly_1000_items(as_a, people):
    items = [{"score": n % 11, "email": "ann@initech.example"} for n in range(1000)]
    response = as_a.post(reverse(BULK), items)
    assert response.status_code == 200
    assert response.json()["created"] == 1000
    assert count(Response) == 1000


ANN = {"score": 5, "email": "ann@initech.example"}


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ([ANN] * 1001, "non_field_errors", "at most 1,000"),
        ({"items": [ANN] * 1001}, "items", "this list has 1,001"),
        ([], "non_field_errors", "empty"),
        ({"items": []}, "items", "empty"),
        ({}, "items", "Send the responses as items"),
        ({"items": {"score": 5}}, "items", "Send a list"),
        ({"items": [], "extra": 1}, "extra", "Unknown field"),
        ({"items": [ANN], "create_missing": "sure"}, "create_missing", "true or false"),
        ('"text"', "non_field_errors", "Send a list"),
        ("7", "non_field_errors", "Send a list"),
    ],
)  # fmt: skip
def test_it_refuses_a_batch_of_the_wrong_size_or_shape(as_a, people, body, field, fragment):
    response = as_a.post(reverse(BULK), body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid"
    assert fragment in " ".join(response.json()["fields"][field])
    assert count(Response) == 0


# --- GET the list ---------------------------------------------------------------------------


@pytest.fixture
def answers(org_a, people, django_capture_on_commit_callbacks):
    """Four responses with themes analysed (the analysis runs on commit, in-process)."""
    with on_commit_in_scope(org_a, django_capture_on_commit_callbacks):
        made = {
            "r1": record(
                org_a,
                score=2,
                email="ann@initech.example",
                comment="Way too expensive for us.",
                submitted_at="2025-01-10T12:00:00Z",
            ),
            "r2": record(
                org_a,
                channel="email",
                score=8,
                email="ann@initech.example",
                submitted_at="2025-02-10T12:00:00Z",
            ),
            "r3": record(
                org_a,
                score=10,
                contact_external_id="c-2",
                comment="Love it, great product.",
                submitted_at="2025-03-10T12:00:00Z",
            ),
            "r4": record(
                org_a, score=5, email="solo@nowhere.example", submitted_at="2025-03-20T12:00:00Z"
            ),
        }
    return {name: response.id for name, response in made.items()}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["r4", "r3", "r2", "r1"]),
        ("submitted_after=2025-02-01", ["r4", "r3", "r2"]),
        ("submitted_after=2025-02-10T12:00:00Z", ["r4", "r3", "r2"]),
        ("submitted_after=2025-02-10T12:00:01%2B00:00", ["r4", "r3"]),
        ("submitted_before=2025-02-10", ["r1"]),
        ("submitted_after=2025-01-01&submitted_before=2025-03-15", ["r3", "r2", "r1"]),
        ("category=detractor", ["r4", "r1"]),
        ("category=promoter", ["r3"]),
        ("score=8", ["r2"]),
        ("score_min=8", ["r3", "r2"]),
        ("score_max=5", ["r4", "r1"]),
        ("score_min=3&score_max=9", ["r4", "r2"]),
        ("account={initech}", ["r2", "r1"]),
        ("account_external_id=acc-2", ["r3"]),
        ("segment={growth}", ["r3"]),
        ("theme=pricing", ["r1"]),
        ("theme=praise", ["r3"]),
        ("theme=billing", []),
        ("has_comment=true", ["r3", "r1"]),
        ("has_comment=false", ["r4", "r2"]),
        ("channel=email", ["r2"]),
        ("channel=api", ["r4", "r3", "r1"]),
        ("email=BEN@hooli.example", ["r3"]),
        ("email=ann@initech.example&category=detractor", ["r1"]),
    ],
)
def test_it_filters_responses(as_a, org_a, people, answers, query, expected):
    growth = SegmentFactory(organization=org_a)  # plan is growth: Hooli
    query = query.format(initech=people.initech.id, growth=growth.id)
    assert ids_of(as_a.get(f"{reverse(LIST)}?{query}")) == [answers[name] for name in expected]


def test_it_reads_a_date_filter_in_the_organizations_timezone(as_a, org_a, people):
    with scopes_disabled():
        org_a.timezone = "Asia/Tokyo"
        org_a.save()
    # 16:00 UTC on 9 February is 01:00 on 10 February in Tokyo.
    late = record(org_a, score=7, email="ann@initech.example", submitted_at="2025-02-09T16:00:00Z")
    early = record(org_a, score=7, email="ann@initech.example", submitted_at="2025-02-09T14:00:00Z")
    assert ids_of(as_a.get(f"{reverse(LIST)}?submitted_after=2025-02-10")) == [late.id]
    assert ids_of(as_a.get(f"{reverse(LIST)}?submitted_before=2025-02-10")) == [early.id]


def test_it_lists_a_response_once_whatever_its_themes(
    as_a, org_a, people, django_capture_on_commit_callbacks
):
    with on_commit_in_scope(org_a, django_capture_on_commit_callbacks):
        many = record(
            org_a,
            score=1,
            email="ann@initech.example",
            comment="Expensive, slow, crashes all the time, and support never replied.",
        )
    assert count(ResponseTheme, response=many) >= 4
    assert ids_of(as_a.get(f"{reverse(LIST)}?theme=pricing")) == [many.id]
    assert ids_of(as_a.get(reverse(LIST))) == [many.id]


@pytest.mark.parametrize(
    "query",
    [
        "submitted_after=yesterday",
        "submitted_after=2025-02-30",
        "submitted_before=2025-13-01T00:00:00Z",
        "category=angry",
        "score=11",
        "score=abc",
        "score=7.5",
        "score_min=-1",
        "score_max=1.5",
        "segment=abc",
        "segment=99999999999999999999999999",
        "segment={other}",
        "account=abc",
        "account=-3",
        "account=99999999999999999999999999",
        "has_comment=maybe",
        "channel=fax",
        "theme=not%20a%20slug",
    ],
)
def test_it_answers_400_json_to_bad_filter_values(as_a, org_b, answers, query):
    other = SegmentFactory(organization=org_b)
    response = as_a.get(f"{reverse(LIST)}?{query.format(other=other.id)}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid"
    assert query.split("=")[0] in body["fields"]
    assert body["message"]


def test_it_pages_with_a_cursor_newest_submitted_first(as_a, org_a, people):
    same_moment = "2025-01-05T09:00:00Z"
    made = [
        record(org_a, score=n, email="ann@initech.example", submitted_at=f"2025-01-0{n}T09:00:00Z")
        for n in (1, 2, 3, 4)
    ] + [
        record(org_a, score=n, email="ben@hooli.example", submitted_at=same_moment)
        for n in range(3)
    ]
    expected = [r.id for r in sorted(made, key=lambda r: (r.submitted_at, r.id), reverse=True)]
    url, seen, pages = f"{reverse(LIST)}?page_size=2", [], 0
    while url:
        body = as_a.get(url).json()
        assert len(body["results"]) <= 2
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        pages += 1
    assert pages == 4
    assert seen == expected


def test_it_keeps_the_filters_on_the_next_page(as_a, org_a, people):
    detractors = [
        record(
            org_a, score=1, email="ann@initech.example", submitted_at=f"2025-01-0{n}T09:00:00Z"
        ).id
        for n in (1, 2, 3)
    ]
    record(org_a, score=10, email="ann@initech.example", submitted_at="2025-01-04T09:00:00Z")
    first = as_a.get(f"{reverse(LIST)}?category=detractor&page_size=2").json()
    second = as_a.get(first["next"]).json()
    assert [r["id"] for r in first["results"] + second["results"]] == detractors[::-1]
    assert second["next"] is None


def _make_answers(org, n):
    for i in range(n):
        account = AccountFactory(organization=org, plan="growth")
        contact = ContactFactory(account=account)
        response = record(org, score=i % 11, email=contact.email, comment="Too expensive")
        with scopes_disabled():
            ResponseTheme.objects.create(organization=org, response=response, theme="pricing")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "segment={segment}&theme=pricing&has_comment=true&score_min=0",
        "email=nobody@x.example&account_external_id=x&category=detractor",
    ],
)
def test_it_lists_in_a_constant_number_of_queries(
    as_a, org_a, query, django_assert_max_num_queries
):
    segment = SegmentFactory(organization=org_a, rules={"match": "all", "conditions": []})
    url = f"{reverse(LIST)}?page_size=1000&{query.format(segment=segment.id)}"
    _make_answers(org_a, 3)
    as_a.get(url)  # the key's first use is recorded once a minute; not part of the count
    with CaptureQueriesContext(connection) as few:
        response = as_a.get(url)
    assert response.status_code == 200
    _make_answers(org_a, 37)
    with django_assert_max_num_queries(len(few)):
        response = as_a.get(url)
    assert response.status_code == 200
    if "nobody" not in query:
        assert len(response.json()["results"]) == 40
    assert len(few) <= 3


# --- GET and PATCH one ----------------------------------------------------------------------


def test_it_retrieves_a_response(as_a, answers):
    response = as_a.get(detail(answers["r3"]))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == answers["r3"]
    assert body["themes"] == ["praise"]
    assert body["sentiment"] > 0.5
    assert body["contact"]["external_id"] == "c-2"
    assert body["account"]["external_id"] == "acc-2"


def test_it_answers_404_json_for_an_unknown_id(as_a, answers):
    response = as_a.get(detail(10**9))
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "Not found.", "fields": {}}


def test_it_analyses_a_patched_comment_again(
    as_a, org_a, answers, django_capture_on_commit_callbacks
):
    before = as_a.get(detail(answers["r1"])).json()
    assert before["themes"] == ["pricing"]

    with on_commit_in_scope(org_a, django_capture_on_commit_callbacks):
        response = as_a.patch(
            detail(answers["r1"]),
            {"comment": "Terrible: the app keeps crashing and nobody fixes the bugs."},
        )
    assert response.status_code == 200, response.content
    assert (
        response.json()["comment"] == "Terrible: the app keeps crashing and nobody fixes the bugs."
    )
    after = as_a.get(detail(answers["r1"])).json()
    assert after["themes"] == ["bugs"]
    assert after["sentiment"] < 0
    assert after["sentiment"] != before["sentiment"]
    assert after["score"] == before["score"] == 2
    assert ids_of(as_a.get(f"{reverse(LIST)}?theme=bugs")) == [answers["r1"]]
    assert ids_of(as_a.get(f"{reverse(LIST)}?theme=pricing")) == []


def test_it_patches_tags_and_clears_a_comment(as_a, answers):
    response = as_a.patch(
        detail(answers["r3"]), {"tags": ["VIP", " vip ", "Renewal"], "comment": ""}
    )
    assert response.status_code == 200, response.content
    assert response.json()["tags"] == ["renewal", "vip"]
    assert response.json()["comment"] == ""
    assert response.json()["has_comment"] is False


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"score": 10}, "score", "Only comment and tags can be changed"),
        ({"comment": "ok", "submitted_at": "2025-01-01"}, "submitted_at", "Only comment and tags"),
        ({}, "non_field_errors", "Send comment or tags"),
        ({"tags": 5}, "tags", "list of text tags"),
        ({"comment": "x" * 10_001}, "comment", "the most is 10000"),
        ([1, 2], "non_field_errors", "JSON object"),
    ],
)
def test_it_refuses_a_patch_it_cannot_apply(as_a, answers, changes, field, fragment):
    response = as_a.patch(detail(answers["r1"]), changes)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid"
    assert fragment in " ".join(response.json()["fields"][field])
    with scopes_disabled():
        unchanged = Response.objects.get(pk=answers["r1"])
    assert (unchanged.score, unchanged.comment) == (2, "Way too expensive for us.")


# --- Authentication and tenants -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "route"),
    [("get", "list"), ("post", "list"), ("post", "bulk"), ("get", "detail"), ("patch", "detail")],
)
def test_it_answers_401_json_without_a_key(api, answers, method, route):
    url = {"list": reverse(LIST), "bulk": reverse(BULK), "detail": detail(answers["r1"])}[route]
    call = getattr(api, method)
    response = (
        call(url, {"score": 5, "email": "ann@initech.example"}) if method != "get" else call(url)
    )
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert count(Response) == 4


def test_it_answers_404_to_another_organizations_key_and_changes_nothing(as_b, answers):
    assert as_b.get(detail(answers["r1"])).status_code == 404
    response = as_b.patch(detail(answers["r1"]), {"comment": "hijacked"})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    with scopes_disabled():
        assert Response.objects.get(pk=answers["r1"]).comment == "Way too expensive for us."


def test_it_shows_only_the_keys_organization(as_b, org_b, answers):
    other = ContactFactory(account=AccountFactory(organization=org_b), email="bo@b.example")
    mine = record(org_b, score=6, email=other.email)
    assert ids_of(as_b.get(reverse(LIST))) == [mine.id]
    assert ids_of(as_b.get(f"{reverse(LIST)}?email=ann@initech.example")) == []


def test_it_does_not_reach_another_organizations_contacts_or_responses(
    as_b, org_b, answers, people
):
    with scopes_disabled():
        Response.objects.filter(pk=answers["r1"]).update(external_id="shared")
    refused = as_b.post(reverse(LIST), {"score": 1, "email": "ann@initech.example"})
    assert refused.status_code == 400
    assert "No contact has the email" in refused.json()["fields"]["email"][0]

    other = ContactFactory(account=AccountFactory(organization=org_b), email="bo@b.example")
    created = as_b.post(reverse(LIST), {"score": 1, "email": other.email, "external_id": "shared"})
    assert created.status_code == 201
    assert created.json()["id"] != answers["r1"]
    with scopes_disabled():
        assert Response.objects.get(pk=answers["r1"]).score == 2


# --- Schema ---------------------------------------------------------------------------------


def test_it_publishes_the_routes_in_the_schema(client, db):
    import yaml

    schema = yaml.safe_load(client.get(reverse("api:schema")).content)
    paths = schema["paths"]
    for path in ("/api/v1/responses/", "/api/v1/responses/bulk", "/api/v1/responses/{id}"):
        for operation in paths[path].values():
            assert operation["tags"] == ["responses"]
    assert set(paths["/api/v1/responses/{id}"]) == {"get", "patch"}
    for path in ("/api/v1/responses/", "/api/v1/responses/bulk"):
        post = paths[path]["post"]
        headers = [p["name"] for p in post["parameters"] if p["in"] == "header"]
        assert headers == ["Idempotency-Key"]
        assert {"200", "400", "401", "409", "422"} <= set(post["responses"])
        assert "Idempotent-Replayed" in post["responses"]["200"]["headers"]
    filters = {p["name"] for p in paths["/api/v1/responses/"]["get"]["parameters"]}
    assert {
        "submitted_after", "submitted_before", "category", "score", "score_min", "score_max",
        "segment", "account", "account_external_id", "theme", "has_comment", "channel", "email",
        "cursor", "page_size",
    } <= filters  # fmt: skip
