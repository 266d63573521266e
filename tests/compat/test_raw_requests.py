"""The Delighted-compatible surface over raw HTTP: paths with and without .json, Basic auth
with and without the colon, no slash redirects, Delighted's error bodies, and the guide."""

import json

import pytest
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from responses.models import Response
from tests.compat.conftest import basic
from tests.compat.helpers import make_person, make_response

pytestmark = pytest.mark.django_db

BASE = "/delighted/v1/"


@pytest.mark.parametrize("path", ["people.json", "people", "people/", "survey_responses.json"])
def test_it_answers_with_and_without_json_and_never_redirects(path, basic_api, org_a):
    make_person(org_a, "ann@a-customer.example")
    response = basic_api.get(BASE + path)
    assert response.status_code == 200
    assert isinstance(response.json(), list)


@pytest.mark.parametrize("colon", [True, False])
def test_it_accepts_the_key_with_and_without_a_trailing_colon(colon, client, api_key_a, org_a):
    make_person(org_a, "ann@a-customer.example")
    response = client.get(BASE + "people.json", headers=basic(api_key_a[1], colon=colon))
    assert response.status_code == 200
    assert [p["email"] for p in response.json()] == ["ann@a-customer.example"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Basic " + "bm90LWJhc2U2NA",  # not padded base64
        "Basic bnBzX3dyb25nOg==",  # "nps_wrong:"
        "Basic OnNlY3JldA==",  # ":secret": a password, no key
    ],
)
def test_it_answers_401_in_delighteds_shape(header, client, org_a):
    headers = {"Authorization": header} if header else {}
    response = client.get(BASE + "people.json", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"status": 401, "message": "Invalid API key"}
    assert response["WWW-Authenticate"].startswith("Basic")


def test_it_does_not_let_a_signed_in_member_in_without_a_key(client, alice):
    client.force_login(alice)
    assert client.get(BASE + "people.json").status_code == 401


def test_it_answers_422_in_delighteds_shape(basic_api, org_a):
    person = make_person(org_a, "ann@a-customer.example")
    response = basic_api.post(BASE + "survey_responses.json", {"person": person, "score": "ten"})
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == 422
    assert body["message"] == "Validation failed"
    assert list(body["errors"]) == ["score"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("per_page=0", "per_page"),
        ("per_page=abc", "per_page"),
        ("since=yesterday", "since"),
        ("expand[]=account", "expand"),
        ("order=sideways", "order"),
        ("page=-1", "page"),
        ("trend=999999", "trend"),
    ],
)
def test_it_refuses_bad_list_parameters_with_422(query, field, basic_api, org_a):
    response = basic_api.get(f"{BASE}survey_responses.json?{query}")
    assert response.status_code == 422
    assert field in response.json()["errors"]


def test_it_answers_a_malformed_body_with_400_not_500(client, api_key_a, org_a):
    response = client.post(
        BASE + "people.json",
        "{not json",
        content_type="application/json",
        headers=basic(api_key_a[1]),
    )
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_it_refuses_unknown_person_parameters(basic_api, org_a):
    response = basic_api.post(BASE + "people.json", {"email": "a@b.example", "colour": "red"})
    assert response.status_code == 422
    assert "colour" in response.json()["errors"]


def test_it_takes_form_encoded_people_with_bracketed_properties(client, api_key_a, org_a):
    response = client.post(
        BASE + "people.json",
        "email=zed%40initech.example&send=false&properties%5BCompany%5D=Initech"
        "&properties%5BRegion%5D=EMEA",
        content_type="application/x-www-form-urlencoded",
        headers=basic(api_key_a[1]),
    )
    assert response.status_code == 200
    with scopes_disabled():
        from accounts.models import Contact

        contact = Contact.objects.select_related("account").get(email="zed@initech.example")
    assert (contact.account.name, contact.properties) == ("Initech", {"Region": "EMEA"})


def test_it_answers_404_in_delighteds_shape_for_unknown_things(basic_api, org_a):
    for path in ["survey_responses/999999.json", "survey_responses/abc", "nothing/here.json"]:
        response = basic_api.get(BASE + path)
        assert response.status_code == 404, path
        assert response.json() == {"status": 404, "message": "Resource not found"}
    assert basic_api.delete(BASE + "people/email:nobody@nowhere.example").status_code == 404


def test_it_never_answers_204(basic_api, org_a):
    person = make_person(org_a, "ann@a-customer.example")
    response = basic_api.delete(f"{BASE}people/{person}.json")
    assert response.status_code == 202
    assert response.json() == {"ok": True}


def test_it_puts_an_integer_retry_after_on_every_429(basic_api, org_a, slow_throttle):
    statuses = [basic_api.get(BASE + "people.json").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = basic_api.get(BASE + "metrics.json")
    assert response.status_code == 429
    assert response["Retry-After"].isdigit()
    assert int(response["Retry-After"]) > 0
    assert response.json()["status"] == 429


def test_it_hides_another_tenants_response(client, org_a, org_b, api_key_b):
    make_person(org_a, "ann@a-customer.example")
    response = make_response(org_a, "ann@a-customer.example", 3, comment="Secret")
    url = f"{BASE}survey_responses/{response.pk}.json"
    headers = basic(api_key_b[1])
    for answer in (
        client.get(url, headers=headers),
        client.put(url, json.dumps({"comment": "Hijacked"}), "application/json", headers=headers),
    ):
        assert answer.status_code == 404
        assert "Secret" not in answer.content.decode()
    with scopes_disabled():
        response.refresh_from_db()
    assert response.comment == "Secret"


def test_it_changes_the_score_of_a_response_with_an_external_id(basic_api, org_a):
    make_person(org_a, "ann@a-customer.example")
    imported = make_response(org_a, "ann@a-customer.example", 6, external_id="dl-42")
    native = make_response(org_a, "ann@a-customer.example", 6)
    answer = basic_api.put(f"{BASE}survey_responses/{imported.pk}.json", {"score": 9})
    assert answer.status_code == 200
    assert answer.json()["score"] == 9
    refused = basic_api.put(f"{BASE}survey_responses/{native.pk}", {"score": 9})
    assert refused.status_code == 422
    assert "score" in refused.json()["errors"]
    with scopes_disabled():
        imported.refresh_from_db()
        native.refresh_from_db()
    assert (imported.score, imported.category) == (9, "promoter")
    assert (native.score, native.category) == (6, "detractor")


def test_it_records_a_response_once_per_post(basic_api, org_a):
    person = make_person(org_a, "ann@a-customer.example")
    created = basic_api.post(BASE + "survey_responses", {"person": str(person), "score": 10})
    assert created.status_code == 201
    body = created.json()
    assert body["id"].isdigit()
    assert body["person"] == str(person)
    assert isinstance(body["created_at"], int)
    with scopes_disabled():
        assert Response.objects.filter(organization=org_a, contact_id=person).count() == 1


def test_it_reports_metrics_only_for_the_core_group(basic_api, org_a):
    assert basic_api.get(BASE + "metrics.json?groups[]=core").status_code == 200
    refused = basic_api.get(BASE + "metrics.json?groups[]=email")
    assert refused.status_code == 422
    assert "groups" in refused.json()["errors"]


# --- The guide page ----------------------------------------------------------------------------


def test_it_shows_the_guide_to_admins(as_alice):
    page = as_alice.get(reverse("compat_settings:guide"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "/delighted/v1/" in body
    assert "Moving from Delighted" in body


def test_it_keeps_the_guide_to_admins(client, bob):
    client.force_login(bob)
    assert client.get(reverse("compat_settings:guide")).status_code == 403


# --- Webhooks in Delighted's shape -------------------------------------------------------------


def test_it_sends_what_the_api_shows_to_delighted_format_webhooks(
    basic_api, org_a, django_capture_on_commit_callbacks
):
    from responses.models import WebhookDelivery, WebhookEndpoint

    with scopes_disabled():
        endpoint = WebhookEndpoint.objects.create(
            organization=org_a, url="https://127.0.0.1:9/hook", payload_format="delighted"
        )
    person = make_person(org_a, "ann@a-customer.example")
    # The callbacks run as the request's commit would, inside the tenant's scope.
    with scope(organization=org_a), django_capture_on_commit_callbacks(execute=True):
        created = basic_api.post(BASE + "survey_responses.json", {"person": person, "score": 9})
    with scope(organization=org_a), django_capture_on_commit_callbacks(execute=True):
        basic_api.post(BASE + "unsubscribes.json", {"person_email": "ann@a-customer.example"})
    shown = basic_api.get(f"{BASE}survey_responses/{created.json()['id']}?expand[]=person")
    with scopes_disabled():
        payloads = [
            d.payload for d in WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id")
        ]
    assert [p["event_type"] for p in payloads] == [
        "survey_response.created",
        "unsubscribe.created",
    ]
    sent = payloads[0]["event_data"]
    shown = shown.json()
    # The person's last_responded_at moved on when the answer was recorded; the rest agrees.
    assert {**sent, "person": None} == {**shown, "person": None}
    assert sent["person"]["email"] == shown["person"]["email"] == "ann@a-customer.example"
    assert payloads[1]["event_data"]["person"]["id"] == str(person)


def test_it_saves_the_mapping_and_uses_it_for_people(as_alice, org_a, email_programme, basic_api):
    page = as_alice.post(
        reverse("compat_settings:guide"),
        {"email_programme": email_programme.pk, "property_mapping": "Customer tier = plan"},
    )
    assert page.status_code == 302
    created = basic_api.post(
        BASE + "people.json",
        {
            "email": "pat@initech.example",
            "send": False,
            "properties": {"Company Name": "Initech", "Customer Tier": "Gold"},
        },
    )
    assert created.status_code == 200
    with scopes_disabled():
        from accounts.models import Contact

        contact = Contact.objects.select_related("account").get(email="pat@initech.example")
    assert (contact.account.name, contact.account.plan, contact.properties) == (
        "Initech",
        "gold",
        {},
    )


def test_it_explains_a_bad_mapping_line(as_alice, org_a):
    page = as_alice.post(reverse("compat_settings:guide"), {"property_mapping": "Tier = colour"})
    assert page.status_code == 200
    assert "“colour” is not a target" in page.content.decode()


def test_it_offers_only_the_own_programmes(as_alice, org_a, org_b, email_programme):
    from tests.surveys.factories import ProgrammeFactory, SurveyFactory

    theirs = ProgrammeFactory(survey=SurveyFactory(organization=org_b), name="Their programme")
    page = as_alice.post(reverse("compat_settings:guide"), {"email_programme": theirs.pk})
    assert page.status_code == 200
    assert "Their programme" not in page.content.decode()
    assert "email_programme" in page.context["form"].errors


def test_it_lists_in_a_fixed_number_of_queries(
    basic_api, org_a, alice, django_assert_max_num_queries
):
    from responses.models import ResponseNote

    for n in range(12):
        make_person(org_a, f"q{n}@initech.example")
        response = make_response(org_a, f"q{n}@initech.example", n % 11, comment="ok")
        with scopes_disabled():
            ResponseNote.objects.create(
                organization=org_a, response=response, body="noted", author=alice
            )
    # The key, the page (people joined) and one prefetch of the notes with their authors.
    with django_assert_max_num_queries(6):
        listed = basic_api.get(
            BASE + "survey_responses.json?per_page=100&expand[]=person&expand[]=notes"
        )
    assert len(listed.json()) == 12
    assert all(r["notes"][0]["text"] == "noted" for r in listed.json())
    with django_assert_max_num_queries(5):
        people = basic_api.get(BASE + "people.json?per_page=100")
    assert len(people.json()) == 12


def test_it_records_a_retried_post_once_with_an_idempotency_key(basic_api, org_a):
    person = make_person(org_a, "ann@a-customer.example")
    body = {"person": str(person), "score": 8}
    headers = {"Idempotency-Key": "retry-1"}
    first = basic_api.post(BASE + "survey_responses.json", body, headers=headers)
    again = basic_api.post(BASE + "survey_responses.json", body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    other = basic_api.post(BASE + "survey_responses.json", {**body, "score": 9}, headers=headers)
    assert other.status_code == 422
    with scopes_disabled():
        assert Response.objects.filter(organization=org_a).count() == 1


def test_it_stores_a_phone_only_person_but_refuses_sms_sends(basic_api, org_a, email_programme):
    refused = basic_api.post(
        BASE + "people.json", {"phone_number": "+17132746524", "channel": "sms"}
    )
    assert refused.status_code == 422
    assert "channel" in refused.json()["errors"]
    stored = basic_api.post(
        BASE + "people.json", {"phone_number": "+17132746524", "channel": "sms", "send": False}
    )
    again = basic_api.post(
        BASE + "people.json", {"phone_number": "+17132746524", "name": "Pia", "send": "false"}
    )
    assert stored.status_code == again.status_code == 200
    assert stored.json()["id"] == again.json()["id"]
    assert again.json()["phone_number"] == "+17132746524"
    assert again.json()["survey_scheduled_at"] is None
    listed = basic_api.get(BASE + "people.json?phone_number=%2B17132746524").json()
    assert [(p["id"], p["name"]) for p in listed] == [(stored.json()["id"], "Pia")]
    bad = basic_api.post(BASE + "people.json", {"phone_number": "713-274", "send": False})
    assert "phone_number" in bad.json()["errors"]


def test_it_accepts_the_key_as_a_bearer_token_too(client, api_key_a, org_a):
    answer = client.get(BASE + "bounces.json", headers={"Authorization": f"Bearer {api_key_a[1]}"})
    assert answer.status_code == 200
    assert answer.json() == []
