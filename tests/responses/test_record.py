"""The one recording service: classification, dedupe, enrichment, events."""

import os
import threading

import pytest
import redis
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction
from django_scopes import scope

from accounts import services as account_services
from accounts.models import Account, Contact
from nps_platform.celery import app as celery_app
from responses import events, services, tasks
from responses.classification import classify
from responses.models import Response, ResponseTheme
from responses.services import response_record, responses_record
from tests.surveys.factories import SurveyFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("score", "category", "danger"),
    [
        (0, "detractor", True),
        (1, "detractor", True),
        (2, "detractor", True),
        (3, "detractor", True),
        (4, "detractor", False),
        (5, "detractor", False),
        (6, "detractor", False),
        (7, "passive", False),
        (8, "passive", False),
        (9, "promoter", False),
        (10, "promoter", False),
    ],
)
def test_it_classifies_every_score(score, category, danger):
    assert classify(score) == (category, danger)


@pytest.mark.parametrize("bad", [-1, 11, 7.5, "7", None, True])
def test_it_refuses_to_classify_what_is_not_a_score(bad):
    with pytest.raises(ValueError, match="0 to 10"):
        classify(bad)


@pytest.fixture
def world(org_a):
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[{"external_id": "acc-1", "name": "Initech", "arr": 90000}],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {
                    "email": "ann@initech.example",
                    "external_id": "c-1",
                    "account_external_id": "acc-1",
                }
            ],
        )
        yield org_a


def test_it_records_classifies_and_enriches_a_response(world, django_capture_on_commit_callbacks):
    received = []
    events.response_recorded.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response, created = response_record(
                organization=world,
                channel="api",
                email="ANN@initech.example",
                score=2,
                comment="Way too expensive and the app keeps crashing. Really disappointed.",
            )
    finally:
        events.response_recorded.disconnect(dispatch_uid="t")
    assert created
    response.refresh_from_db()
    assert (response.category, response.danger_zone, response.has_comment) == (
        "detractor",
        True,
        True,
    )
    assert response.account.external_id == "acc-1"
    assert response.themes == ["bugs", "pricing"]
    assert response.sentiment < 0
    assert set(ResponseTheme.objects.values_list("theme", flat=True)) == {"bugs", "pricing"}
    assert Contact.objects.get().last_responded_at == response.submitted_at
    assert Account.objects.get().last_score == 2
    assert received[0]["created_ids"] == [response.pk]


def test_it_updates_by_external_id_and_reclassifies(world):
    first, created = response_record(
        organization=world, channel="api", contact_external_id="c-1", score=3, external_id="x-1"
    )
    second, created_again = response_record(
        organization=world, channel="api", contact_external_id="c-1", score=9, external_id="x-1"
    )
    assert (created, created_again) == (True, False)
    assert first.pk == second.pk
    second.refresh_from_db()
    assert (second.score, second.category, second.danger_zone) == (9, "promoter", False)
    assert Response.objects.count() == 1


def test_it_reports_field_errors_per_item(world):
    report = responses_record(
        organization=world,
        channel="api",
        items=[
            {"email": "ann@initech.example", "score": 8},
            {"email": "ann@initech.example", "score": 11},
            {"email": "ann@initech.example", "score": 7.5},
            {"email": "ann@initech.example"},
            {"email": "nobody@x.example", "score": 5},
            {"score": 5},
            {"email": "ann@initech.example", "score": 5, "mood": "grumpy"},
        ],
    )
    statuses = [r.status for r in report.results]
    assert statuses == ["created"] + ["error"] * 6
    errors = [r.errors for r in report.results]
    assert "from 0 to 10" in errors[1]["score"][0]
    assert "whole number" in errors[2]["score"][0]
    assert "required" in errors[3]["score"][0]
    assert "No contact has the email" in errors[4]["email"][0]
    assert "create_missing" in errors[4]["email"][0]
    assert "Identify the person" in errors[5]["email"][0]
    assert "Unknown field" in errors[6]["mood"][0]
    assert Response.objects.count() == 1


def test_it_creates_missing_contacts_and_accounts_when_asked(world):
    response, _ = response_record(
        organization=world,
        channel="api",
        email="new@globex.example",
        contact_name="Nia New",
        account_external_id="acc-new",
        account_name="Globex",
        score=10,
        create_missing=True,
    )
    assert response.contact.name == "Nia New"
    assert response.account.name == "Globex"


def test_it_refuses_a_single_invalid_response_with_field_messages(world):
    with pytest.raises(ValidationError) as caught:
        response_record(organization=world, channel="api", email="ann@initech.example", score=-1)
    assert "score" in caught.value.message_dict


def test_it_saves_a_large_batch_with_every_field(world):
    # 60 items: past the size at which PostgreSQL saves by COPY instead of one INSERT.
    items = [
        {
            "email": "ann@initech.example",
            "score": n % 11,
            "comment": f"Answer {n}" if n % 2 else "",
            "external_id": f"batch-{n}",
            "tags": ["Beta", "q3"],
            "properties": {"plan": "gold", "seat": n},
            "submitted_at": f"2026-01-{1 + n % 28:02d}T10:00:00Z",
        }
        for n in range(60)
    ]
    report = responses_record(organization=world, items=items, channel="api")
    assert report.count("created") == 60
    ids = [result.response.pk for result in report.results]
    saved = {r.pk: r for r in Response.objects.filter(pk__in=ids)}
    assert len(saved) == 60
    for n, pk in enumerate(ids):
        response = saved[pk]
        assert response.external_id == f"batch-{n}"
        assert (response.score, response.category) == (n % 11, classify(n % 11)[0])
        assert response.has_comment is bool(n % 2)
        assert response.tags == ["beta", "q3"]
        assert response.properties == {"plan": "gold", "seat": n}
        assert (response.channel, response.contact.email) == ("api", "ann@initech.example")
        assert response.account.external_id == "acc-1"
    latest = max(saved.values(), key=lambda r: (r.submitted_at, r.pk))
    assert Contact.objects.get().last_responded_at == latest.submitted_at
    account = Account.objects.get()
    assert (account.last_score_at, account.last_score) == (latest.submitted_at, latest.score)


def test_it_saves_text_with_tabs_newlines_and_backslashes_in_a_large_batch(world):
    # COPY's text format gives these characters a meaning: each must arrive as sent.
    survey = SurveyFactory(organization=world)  # an id of another organization's is refused
    odd = 'Tab\there, line\nbreak, return\r, back\\slash \\N, quote " and ’ émoji 🎉'
    items = [
        {
            "email": "ann@initech.example",
            "score": n % 11,
            "comment": f"{odd} {n}",
            "external_id": f"odd\\{n}\t",
            "tags": [f"t\\{n}"],
            "properties": {"note": odd, "n": n, "flag": n % 2 == 0, "none": None, "f": 0.5},
            "survey_id": survey.pk,
        }
        for n in range(60)
    ]
    report = responses_record(organization=world, items=items, channel="api")
    assert report.count("created") == 60
    for n, result in enumerate(report.results):
        saved = Response.objects.get(pk=result.response.pk)
        assert saved.comment == f"{odd} {n}"
        assert saved.external_id == f"odd\\{n}"  # stripped, as every text field is
        assert saved.tags == [f"t\\{n}"]
        assert saved.properties == {"note": odd, "n": n, "flag": n % 2 == 0, "none": None, "f": 0.5}
        assert (saved.survey_id, saved.has_comment, saved.sentiment) == (survey.pk, True, None)


@pytest.mark.parametrize(
    "comments",
    [
        ["Tab\there \\N back\\slash\nline"] * 60,  # one value: written once
        ["plain words"] * 59 + ["with\ta tab"],  # text, one special
        ["plain words"] * 30 + [""] * 30,  # text without specials
    ],
    ids=["same-odd-comment", "one-odd-comment", "plain-comments"],
)
def test_it_saves_each_comment_of_a_large_batch_as_sent(world, comments):
    items = [
        {"email": "ann@initech.example", "score": 7, "comment": comment, "tags": ["same"]}
        for comment in comments
    ]
    report = responses_record(organization=world, items=items, channel="api")
    assert report.count("created") == 60
    saved = dict(Response.objects.values_list("pk", "comment"))
    assert [saved[r.response.pk] for r in report.results] == [c.strip() for c in comments]
    rows = Response.objects.values_list("score", "tags", "channel")
    assert {(score, tuple(tags), channel) for score, tags, channel in rows} == {
        (7, ("same",), "api")
    }


def test_it_never_moves_the_latest_answer_back(world):
    response_record(
        organization=world,
        channel="api",
        email="ann@initech.example",
        score=9,
        submitted_at="2026-03-01T10:00:00Z",
    )
    older, _ = response_record(
        organization=world,
        channel="api",
        email="ann@initech.example",
        score=1,
        submitted_at="2026-02-01T10:00:00Z",
    )
    contact, account = Contact.objects.get(), Account.objects.get()
    assert contact.last_responded_at.isoformat() == "2026-03-01T10:00:00+00:00"
    assert (account.last_score, account.last_score_at.isoformat()) == (
        9,
        "2026-03-01T10:00:00+00:00",
    )
    assert older.pk


def test_it_answers_a_batch_without_one_valid_item(world):
    report = responses_record(
        organization=world,
        items=[{"email": "ann@initech.example", "score": 11}, {"email": "nobody@x.example"}],
        channel="api",
    )
    assert [r.status for r in report.results] == ["error", "error"]
    assert Response.objects.count() == 0
    assert Contact.objects.get().last_responded_at is None


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
def test_it_announces_batches_queued_on_the_broker_in_one_event(
    world, monkeypatch, django_capture_on_commit_callbacks
):
    queue = tasks._announcement_queue(world.pk)
    redis.Redis.from_url(celery_app.conf.broker_url).delete(
        queue, f"{queue}:scheduled", f"{queue}:processing"
    )
    published = []
    monkeypatch.setattr(tasks.announce_queued, "delay", lambda *args: published.append(args))
    received = []
    events.response_recorded.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t")
    celery_app.conf.task_always_eager = False  # a Redis broker, as in production
    try:
        ids = []
        for score in (2, 9, 10):
            with django_capture_on_commit_callbacks(execute=True):
                response, _ = response_record(
                    organization=world, channel="api", email="ann@initech.example", score=score
                )
            ids.append(response.pk)
        assert published == [(world.pk,)]  # one drain for the three batches
        assert received == []
        celery_app.conf.task_always_eager = True  # the receivers' own tasks run in-process
        tasks.announce_queued(world.pk)
    finally:
        events.response_recorded.disconnect(dispatch_uid="t")
    assert [(e["created_ids"], e["updated_ids"]) for e in received] == [(ids, [])]
    celery_app.conf.task_always_eager = False
    with django_capture_on_commit_callbacks(execute=True):
        response_record(organization=world, channel="api", email="ann@initech.example", score=5)
    assert len(published) == 2  # drained: the next batch schedules a drain again
    celery_app.conf.task_always_eager = True
    tasks.announce_queued(world.pk)


on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's"
)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_it_records_one_new_answer_from_a_known_contact_in_one_statement(
    world, django_assert_num_queries, monkeypatch
):
    announced = []
    monkeypatch.setattr(
        services, "announce_recorded_on_commit", lambda *args: announced.append(args)
    )
    with django_assert_num_queries(1):
        report = responses_record(
            organization=world,
            channel="api",
            items=[{"email": "ann@initech.example", "score": 3, "comment": "Too slow."}],
        )
    result = report.results[0]
    assert result.status == "created"
    assert (result.response.contact.email, result.response.account.external_id) == (
        "ann@initech.example",
        "acc-1",
    )
    saved = Response.objects.get()
    assert (saved.pk, saved.score, saved.category, saved.comment) == (
        result.response.pk,
        3,
        "detractor",
        "Too slow.",
    )
    assert Contact.objects.get().last_responded_at == saved.submitted_at
    account = Account.objects.get()
    assert (account.last_score, account.last_score_at) == (3, saved.submitted_at)
    assert announced == [(world.pk, [saved.pk], [], [])]


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_it_updates_an_answer_again_when_the_one_statement_finds_it_answered(world):
    first = responses_record(
        organization=world,
        channel="link",
        items=[{"contact_external_id": "c-1", "score": 4, "external_id": "crm-77"}],
    ).results[0]
    again = responses_record(
        organization=world,
        channel="link",
        items=[{"contact_external_id": "c-1", "score": 10, "external_id": "crm-77"}],
    ).results[0]
    assert (first.status, again.status) == ("created", "updated")
    assert again.response.pk == first.response.pk
    assert list(Response.objects.values_list("score", "category")) == [(10, "promoter")]
    assert Account.objects.get().last_score == 10


def test_it_leaves_the_callers_transaction_usable_when_the_one_statement_falls_back(world):
    responses_record(
        organization=world, channel="api", items=[{"email": "ann@initech.example", "score": 8}]
    )
    unknown = responses_record(
        organization=world, channel="api", items=[{"email": "nobody@initech.example", "score": 8}]
    ).results[0]
    assert unknown.status == "error"
    assert "No contact" in unknown.errors["email"][0]
    assert Response.objects.count() == 1


@on_postgresql
def test_it_records_one_answer_inside_a_transaction_without_a_savepoint(
    world, django_assert_num_queries
):
    assert connection.in_atomic_block  # the test's transaction, as a caller's would be
    with django_assert_num_queries(1):  # with a savepoint, 3
        result = responses_record(
            organization=world, channel="api", items=[{"email": "ann@initech.example", "score": 9}]
        ).results[0]
    assert result.status == "created"
    assert Response.objects.get().pk == result.response.pk


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_it_waits_for_a_contacts_deletion_and_reports_it_inside_a_transaction(world):
    with scope(organization=world):
        contact = Contact.objects.create(organization=world, email="gone@initech.example")
    deleted, done = threading.Event(), threading.Event()

    def delete_then_commit_later():
        try:
            with scope(organization=world), transaction.atomic():
                Contact.objects.filter(pk=contact.pk).delete()
                deleted.set()
                done.wait(0.5)  # the answer below is sent meanwhile, and waits
        finally:
            connections.close_all()

    deleter = threading.Thread(target=delete_then_commit_later)
    deleter.start()
    assert deleted.wait(10)
    # An Idempotency-Key's transaction: the answer must not leave it to fail at COMMIT.
    with scope(organization=world), transaction.atomic():
        result = responses_record(
            organization=world, channel="api", items=[{"email": "gone@initech.example", "score": 2}]
        ).results[0]
    done.set()
    deleter.join()
    assert result.status == "error"
    assert "No contact" in result.errors["email"][0]
    assert Response.objects.count() == 0


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_it_records_single_answers_and_batches_for_the_same_people_at_once(world):
    with scope(organization=world):
        account_services.records_upsert(
            organization=world,
            kind="contacts",
            items=[
                {"email": f"p{n}@initech.example", "account_external_id": "acc-1"}
                for n in range(20)
            ],
        )
    emails = ["ann@initech.example"] + [f"p{n}@initech.example" for n in range(20)]
    failures = []
    barrier = threading.Barrier(9)

    def run(items):
        try:
            barrier.wait()
            with scope(organization=world):
                for _ in range(5):
                    responses_record(organization=world, channel="api", items=items)
        except Exception as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)
        finally:
            connections.close_all()

    singles = [[{"email": emails[n % 3], "score": n}] for n in range(8)]
    batch = [[{"email": email, "score": 5} for email in reversed(emails)]]
    threads = [threading.Thread(target=run, args=(items,)) for items in singles + batch]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert Response.objects.count() == 8 * 5 + 21 * 5
    latest = Response.objects.order_by("-submitted_at", "-pk").first()
    account = Account.objects.get()
    assert account.last_score_at == latest.submitted_at
