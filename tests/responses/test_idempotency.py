"""Idempotency-Key on the responses API: a retried POST is answered once, per organization,
for 24 hours; concurrent identical requests record one response (on PostgreSQL)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scopes_disabled

from responses import idempotency, services
from responses.models import IdempotencyKey, Response
from responses.tasks_idempotency import purge_idempotency_keys
from tests.accounts.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db

LIST = "api:response-list"
BULK = "api:response-bulk"
ANSWER = {"score": 9, "email": "ann@initech.example", "comment": "Great support!"}


@pytest.fixture
def as_a(api, api_key_a):
    api.key = api_key_a[1]
    return api


@pytest.fixture
def ann(org_a):
    return ContactFactory(
        account=AccountFactory(organization=org_a, external_id="acc-1"),
        email="ann@initech.example",
    )


def keyed(key):
    return {"Idempotency-Key": key}


def count(model, **lookups) -> int:
    with scopes_disabled():
        return model.objects.filter(**lookups).count()


def key_row(**lookups) -> IdempotencyKey:
    with scopes_disabled():
        return IdempotencyKey.objects.get(**lookups)


def test_it_replays_the_first_answer_to_a_retry_with_the_same_key(as_a, ann, org_a):
    first = as_a.post(reverse(LIST), ANSWER, headers=keyed("k-1"))
    again = as_a.post(reverse(LIST), ANSWER, headers=keyed("k-1"))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert count(Response) == 1
    stored = key_row(key="k-1")
    assert stored.organization_id == org_a.id
    assert (stored.in_flight, stored.status_code) == (False, 201)
    assert stored.body["id"] == first.json()["id"]


def test_it_treats_the_same_json_with_other_spacing_as_the_same_request(as_a, ann):
    first = as_a.post(
        reverse(LIST), '{"score": 9, "email": "ann@initech.example"}', headers=keyed("k")
    )
    again = as_a.post(
        reverse(LIST), '{"email":"ann@initech.example","score":9}', headers=keyed("k")
    )
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_it_records_twice_without_a_key(as_a, ann):
    assert as_a.post(reverse(LIST), ANSWER).status_code == 201
    assert as_a.post(reverse(LIST), ANSWER).status_code == 201
    assert count(Response) == 2
    assert count(IdempotencyKey) == 0


def test_it_answers_422_to_the_same_key_with_a_different_body(as_a, ann):
    assert as_a.post(reverse(LIST), ANSWER, headers=keyed("k-1")).status_code == 201
    response = as_a.post(reverse(LIST), {**ANSWER, "score": 2}, headers=keyed("k-1"))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "idempotency_key_reused"
    assert "different request" in body["message"]
    assert count(Response) == 1
    assert count(Response, score=2) == 0


def test_it_answers_422_to_the_same_key_on_another_route_or_query(as_a, ann):
    assert as_a.post(reverse(LIST), ANSWER, headers=keyed("k-1")).status_code == 201
    assert as_a.post(reverse(BULK), ANSWER, headers=keyed("k-1")).status_code == 422
    url = f"{reverse(LIST)}?create_missing=true"
    assert as_a.post(url, ANSWER, headers=keyed("k-1")).status_code == 422


def test_it_answers_409_while_the_first_request_is_in_flight(as_a, ann, org_a):
    first = as_a.post(reverse(LIST), ANSWER, headers=keyed("k-1"))
    # As if the first request were still being processed: its claim is in flight.
    with scopes_disabled():
        IdempotencyKey.objects.filter(key="k-1").update(in_flight=True, status_code=None, body=None)
    response = as_a.post(reverse(LIST), ANSWER, headers=keyed("k-1"))
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_in_flight"
    assert "retry" in response.json()["message"]
    assert count(Response) == 1
    assert first.status_code == 201


def test_it_answers_409_to_a_claim_inserted_in_flight(as_a, ann, org_a):
    body = ANSWER
    request_hash = services.request_fingerprint(
        {"method": "POST", "path": reverse(LIST), "body": body, "create_missing": None}
    )
    with scopes_disabled():
        IdempotencyKey.objects.create(organization=org_a, key="k-9", request_hash=request_hash)
    response = as_a.post(reverse(LIST), body, headers=keyed("k-9"))
    assert response.status_code == 409
    assert count(Response) == 0


def test_it_takes_over_a_claim_abandoned_in_flight(as_a, ann, org_a):
    with scopes_disabled():
        IdempotencyKey.objects.create(
            organization=org_a,
            key="k-dead",
            request_hash="whatever",
            created_at=now() - idempotency.IN_FLIGHT_TIMEOUT - timedelta(seconds=1),
        )
    response = as_a.post(reverse(LIST), ANSWER, headers=keyed("k-dead"))
    assert response.status_code == 201
    assert key_row(key="k-dead").in_flight is False


def test_it_scopes_keys_per_organization(api, api_key_a, api_key_b, ann, org_b):
    ContactFactory(account=AccountFactory(organization=org_b), email="ann@initech.example")
    api.key = api_key_a[1]
    in_a = api.post(reverse(LIST), ANSWER, headers=keyed("shared-key"))
    api.key = api_key_b[1]
    in_b = api.post(reverse(LIST), ANSWER, headers=keyed("shared-key"))
    assert in_a.status_code == in_b.status_code == 201
    assert "Idempotent-Replayed" not in in_b
    assert in_b.json()["id"] != in_a.json()["id"]
    with scopes_disabled():
        assert Response.objects.filter(organization=org_b).count() == 1
        assert IdempotencyKey.objects.filter(key="shared-key").count() == 2
    api.key = api_key_b[1]
    assert (
        api.post(reverse(LIST), {**ANSWER, "score": 1}, headers=keyed("shared-key")).status_code
        == 422
    )


def test_it_treats_a_key_older_than_24_hours_as_new(as_a, ann):
    first = as_a.post(reverse(LIST), ANSWER, headers=keyed("k-old"))
    with scopes_disabled():
        IdempotencyKey.objects.filter(key="k-old").update(
            created_at=now() - timedelta(hours=24, seconds=1)
        )
    again = as_a.post(reverse(LIST), {**ANSWER, "score": 3}, headers=keyed("k-old"))
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert again.json()["id"] != first.json()["id"]
    assert count(Response) == 2
    row = key_row(key="k-old")
    assert now() - row.created_at < timedelta(minutes=1)
    assert row.body["score"] == 3


def test_it_replays_a_stored_client_error(as_a, org_a):
    refused = as_a.post(reverse(LIST), ANSWER, headers=keyed("k-err"))
    assert refused.status_code == 400
    ContactFactory(account=AccountFactory(organization=org_a), email="ann@initech.example")
    again = as_a.post(reverse(LIST), ANSWER, headers=keyed("k-err"))
    assert again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == refused.content
    assert "create_missing=true" in again.json()["fields"]["email"][0]
    assert count(Response) == 0


def test_it_forgets_the_key_when_processing_fails_unexpectedly(as_a, ann, monkeypatch):
    real = services.responses_record

    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "responses_record", broken)
    with pytest.raises(RuntimeError):
        as_a.post(reverse(LIST), ANSWER, headers=keyed("k-boom"))
    assert count(IdempotencyKey) == 0
    assert count(Response) == 0

    monkeypatch.setattr(services, "responses_record", real)
    retry = as_a.post(reverse(LIST), ANSWER, headers=keyed("k-boom"))
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert count(Response) == 1


def test_it_replays_a_batch(as_a, ann):
    items = [ANSWER, {"score": 4, "email": "ann@initech.example", "external_id": "e-1"}]
    first = as_a.post(reverse(BULK), {"items": items}, headers=keyed("batch-1"))
    again = as_a.post(reverse(BULK), {"items": items}, headers=keyed("batch-1"))
    assert first.status_code == again.status_code == 200
    assert first.json()["created"] == 2
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert count(Response) == 2


@pytest.mark.parametrize(
    ("key", "fragment"),
    [("k" * 256, "256 characters long"), ("   ", "empty"), ("a\tb", "control characters")],
)
def test_it_answers_400_to_an_unusable_key(as_a, ann, key, fragment):
    response = as_a.post(reverse(LIST), ANSWER, headers=keyed(key))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert fragment in response.json()["fields"]["Idempotency-Key"][0]
    assert count(Response) == 0


def test_it_accepts_a_key_of_255_characters(as_a, ann):
    assert as_a.post(reverse(LIST), ANSWER, headers=keyed("k" * 255)).status_code == 201
    assert as_a.post(reverse(LIST), ANSWER, headers=keyed("k" * 255))["Idempotent-Replayed"]


def test_it_stores_an_answer_that_quotes_a_nul_character(as_a, ann):
    payload = {**ANSWER, "bad\x00field": 1}
    first = as_a.post(reverse(LIST), payload, headers=keyed("k-nul"))
    again = as_a.post(reverse(LIST), payload, headers=keyed("k-nul"))
    assert first.status_code == again.status_code == 400
    assert again.content == first.content
    assert "bad\ufffdfield" in first.json()["fields"]


def test_it_purges_keys_older_than_24_hours_in_every_organization(org_a, org_b):
    with scopes_disabled():
        for org in (org_a, org_b):
            for name, age in (("old", timedelta(hours=25)), ("fresh", timedelta(hours=23))):
                IdempotencyKey.objects.create(
                    organization=org,
                    key=name,
                    request_hash="h",
                    in_flight=False,
                    created_at=now() - age,
                )
    assert purge_idempotency_keys.delay().get() == 2
    with scopes_disabled():
        assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh", "fresh"]


# --- Concurrency (PostgreSQL: real row locks and separate connections) ----------------------

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL's concurrent transactions"
)


def _concurrently(n, call):
    """Runs call() in n threads at once, each with its own database connection."""
    barrier = threading.Barrier(n)
    answers, failures = [], []

    def run():
        try:
            barrier.wait()
            answers.append(call())
        except Exception as exc:  # reported by the test
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    return answers


def _post(raw_key, payload, headers=None):
    client = Client(raise_request_exception=False)
    response = client.post(
        reverse(LIST),
        payload,
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw_key}", **(headers or {})},
    )
    return response.status_code, response.get("Idempotent-Replayed"), response.json()


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_it_records_once_under_50_concurrent_posts_with_one_key(api_key_a, ann):
    answers = _concurrently(50, lambda: _post(api_key_a[1], ANSWER, keyed("race")))
    firsts = [a for a in answers if a[0] == 201 and a[1] is None]
    replays = [a for a in answers if a[0] == 201 and a[1] == "true"]
    in_flight = [a for a in answers if a[0] == 409]
    assert len(firsts) == 1
    assert len(firsts) + len(replays) + len(in_flight) == 50
    assert all(a[2] == firsts[0][2] for a in replays)
    assert all(a[2]["error"] == "idempotency_key_in_flight" for a in in_flight)
    assert count(Response) == 1
    assert key_row(key="race").in_flight is False


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_it_records_once_under_50_concurrent_posts_with_one_external_id(api_key_a, ann):
    payload = {**ANSWER, "external_id": "crm-race"}
    answers = _concurrently(50, lambda: _post(api_key_a[1], payload))
    statuses = sorted(a[0] for a in answers)
    assert statuses == [200] * 49 + [201], statuses
    assert len({a[2]["id"] for a in answers}) == 1
    assert count(Response) == 1


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_it_commits_a_claim_in_one_round_trip_without_waiting_for_disk(
    org_a, django_assert_num_queries
):
    with django_assert_num_queries(1) as captured:
        claimed = idempotency._claim(org_a, "one-trip", "hash")
    assert "synchronous_commit" in captured.captured_queries[0]["sql"]
    other = connections.create_connection("default")  # another session sees it committed
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT in_flight FROM responses_idempotencykey WHERE id = %s", [claimed.pk]
            )
            assert cursor.fetchone() == (True,)
    finally:
        other.close()
    with connection.cursor() as cursor:  # the setting was the claim's alone
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
