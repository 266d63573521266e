"""Slack alerts: the message (a pure function), the filters, sending with retries, and the
settings page. Messages go to a local HTTP server standing in for Slack."""

import json
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from nps_platform.celery import app as celery_app
from responses import slack, tasks
from responses.models import SlackAlert
from responses.services import response_record, responses_record
from tests.responses.test_webhooks import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_slack(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    with Receiver() as server:
        yield server


@pytest.fixture
def world(org_a):
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {"external_id": "big", "name": "Initech", "arr": 90000},
                {"external_id": "small", "name": "Tiny & Co", "arr": 5000},
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {"email": "ann@initech.example", "name": "Ann Lee", "account_external_id": "big"},
                {"email": "sam@tiny.example", "name": "Sam", "account_external_id": "small"},
            ],
        )
        yield org_a


def configure(org, url, **fields) -> SlackAlert:
    with scopes_disabled():
        return SlackAlert.objects.create(organization=org, webhook_url=url, **fields)


def record(org, capture, email="ann@initech.example", **fields):
    with scope(organization=org), capture(execute=True):
        response, _ = response_record(organization=org, channel="api", email=email, **fields)
    return response


def messages_of(server) -> list[dict]:
    return [json.loads(r["body"]) for r in server.requests]


def facts(**changes) -> slack.AlertFacts:
    base = {
        "response_id": 42,
        "score": 2,
        "category": "detractor",
        "danger_zone": True,
        "comment": "Price <!channel> & <https://evil.example|click> > everything",
        "contact_name": "Ann <Lee>",
        "contact_email": "ann@initech.example",
        "account_name": "Initech & Sons",
        "arr": Decimal("90000.00"),
        "currency": "USD",
        "url": "https://nps.example.com/responses/42/",
    }
    return slack.AlertFacts(**{**base, **changes})


def _texts(payload) -> str:
    parts = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(field["text"] for field in block.get("fields", []))
    return "\n".join(parts)


# --- The message ------------------------------------------------------------------------------


def test_it_builds_the_alert_blocks():
    payload = slack.alert_payload(facts())
    blocks = payload["blocks"]
    assert blocks[0]["text"]["text"] == "*2/10 · Detractor*  :rotating_light: *Danger zone*"
    assert blocks[1]["text"]["text"] == (
        "&gt; Price &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; &gt; everything"
    )
    contact, account = (f["text"] for f in blocks[2]["fields"])
    assert contact == "*Contact*\nAnn &lt;Lee&gt; (ann@initech.example)"
    assert account == "*Account*\nInitech &amp; Sons · ARR USD 90,000"
    button = blocks[3]["elements"][0]
    assert button["url"] == "https://nps.example.com/responses/42/"
    assert button["text"]["text"] == "Open the response"
    assert payload["text"].startswith(
        "New detractor: 2/10 from Ann &lt;Lee&gt; at Initech &amp; Sons"
    )


def test_it_never_lets_raw_angle_brackets_into_mrkdwn():
    text = _texts(slack.alert_payload(facts()))
    assert "<" not in text
    assert ">" not in text.replace("&gt;", "")


def test_it_leaves_out_the_danger_flag_and_says_when_there_is_no_comment():
    payload = slack.alert_payload(facts(score=5, danger_zone=False, comment="  "))
    assert "Danger" not in payload["blocks"][0]["text"]["text"]
    assert payload["blocks"][1]["text"]["text"] == "_No comment._"


def test_it_quotes_every_line_and_shortens_a_long_comment():
    payload = slack.alert_payload(facts(comment="one\ntwo"))
    assert payload["blocks"][1]["text"]["text"] == "&gt; one\n&gt; two"
    long = slack.alert_payload(facts(comment="x" * 5000))
    assert len(long["blocks"][1]["text"]["text"]) < 3000


def test_it_links_straight_to_the_response_page(
    world, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://nps.example.com"
    response = record(world, django_capture_on_commit_callbacks, score=1, comment="Bad")
    with scopes_disabled():
        response.refresh_from_db()
        built = slack.AlertFacts.of(response, "EUR")
    assert built.url == f"https://nps.example.com/responses/{response.pk}/"
    assert built.url == "https://nps.example.com" + reverse("responses:detail", args=[response.pk])
    assert (built.account_name, built.arr, built.contact_name) == ("Initech", 90000, "Ann Lee")
    assert "ARR EUR 90,000" in _texts(slack.alert_payload(built))


# --- Which responses alert --------------------------------------------------------------------


def test_it_posts_a_detractor(world, fake_slack, django_capture_on_commit_callbacks):
    configure(world, fake_slack.url("/services/T/B/X"))
    response = record(world, django_capture_on_commit_callbacks, score=2, comment="Awful")
    assert fake_slack.wait(1)
    [message] = messages_of(fake_slack)
    assert fake_slack.requests[0]["path"] == "/services/T/B/X"
    assert f"/responses/{response.pk}/" in message["blocks"][3]["elements"][0]["url"]
    assert "Awful" in message["blocks"][1]["text"]["text"]


@pytest.mark.parametrize("score", [7, 8, 9, 10])
def test_it_does_not_alert_for_passives_or_promoters(
    world, fake_slack, score, django_capture_on_commit_callbacks
):
    configure(world, fake_slack.url())
    record(world, django_capture_on_commit_callbacks, score=score)
    assert fake_slack.requests == []


def test_it_skips_accounts_below_the_minimum_arr(
    world, fake_slack, django_capture_on_commit_callbacks
):
    configure(world, fake_slack.url(), min_arr=Decimal("10000"))
    record(world, django_capture_on_commit_callbacks, email="sam@tiny.example", score=1)
    assert fake_slack.requests == []
    record(world, django_capture_on_commit_callbacks, email="ann@initech.example", score=1)
    assert len(fake_slack.requests) == 1
    assert "Initech" in _texts(messages_of(fake_slack)[0])


def test_it_can_alert_only_in_the_danger_zone(
    world, fake_slack, django_capture_on_commit_callbacks
):
    configure(world, fake_slack.url(), only_danger_zone=True)
    record(world, django_capture_on_commit_callbacks, score=5)
    assert fake_slack.requests == []
    record(world, django_capture_on_commit_callbacks, email="sam@tiny.example", score=3)
    assert len(fake_slack.requests) == 1


def test_it_does_not_alert_when_alerts_are_off(
    world, fake_slack, django_capture_on_commit_callbacks
):
    configure(world, fake_slack.url(), is_active=False)
    record(world, django_capture_on_commit_callbacks, score=0)
    assert fake_slack.requests == []


def test_it_does_not_alert_again_when_a_response_is_updated(
    world, fake_slack, django_capture_on_commit_callbacks
):
    configure(world, fake_slack.url())
    record(world, django_capture_on_commit_callbacks, score=2, external_id="r-1")
    record(world, django_capture_on_commit_callbacks, score=1, external_id="r-1")
    assert len(fake_slack.requests) == 1


def test_it_sums_up_a_burst_instead_of_flooding_the_channel(
    world, fake_slack, django_capture_on_commit_callbacks
):
    configure(world, fake_slack.url())
    with scope(organization=world), django_capture_on_commit_callbacks(execute=True):
        responses_record(
            organization=world,
            channel="import",
            items=[
                {"email": "ann@initech.example", "score": n % 7, "external_id": f"x{n}"}
                for n in range(15)
            ],
        )
    messages = messages_of(fake_slack)
    assert len(messages) == slack.MAX_ALERTS_PER_BATCH + 1
    assert "…and 5 more detractors" in messages[-1]["text"]
    assert "category=detractor" in messages[-1]["text"]
    # The worst scores go first.
    scores = [int(m["blocks"][0]["text"]["text"][1]) for m in messages[:-1]]
    assert scores == sorted(scores)


# --- Sending ----------------------------------------------------------------------------------


@pytest.fixture
def scheduled(monkeypatch):
    calls = []
    celery_app.conf.task_always_eager = False  # conftest restores it
    monkeypatch.setattr(
        tasks.send_slack_message,
        "apply_async",
        lambda args, countdown=None, **kw: calls.append((list(args), countdown)),
    )
    return calls


def test_it_retries_when_slack_is_down(org_a, fake_slack, scheduled):
    fake_slack.answers = [(503, {})]
    configure(org_a, fake_slack.url())
    status = tasks.send_slack_message(org_a.pk, {"text": "hi"}, "response:1")
    assert status == "retry"
    [(args, countdown)] = scheduled
    assert args == [org_a.pk, {"text": "hi"}, "response:1", 2]
    assert countdown == slack.RETRY_DELAYS[0]


def test_it_waits_as_long_as_slack_asks_when_rate_limited(org_a, fake_slack, scheduled):
    fake_slack.answers = [(429, {"Retry-After": "7"})]
    configure(org_a, fake_slack.url())
    tasks.send_slack_message(org_a.pk, {"text": "hi"}, None)
    assert scheduled[0][1] == 7


def test_it_gives_up_after_the_last_attempt_and_on_a_client_error(org_a, fake_slack, scheduled):
    fake_slack.answers = [(500, {})]
    configure(org_a, fake_slack.url())
    assert tasks.send_slack_message(org_a.pk, {"text": "hi"}, None, slack.MAX_ATTEMPTS) == "failed"
    fake_slack.answers = [(404, {})]
    assert tasks.send_slack_message(org_a.pk, {"text": "hi"}, None) == "failed"
    assert scheduled == []


def test_it_posts_each_alert_once(org_a, fake_slack):
    configure(org_a, fake_slack.url())
    key = f"response:{uuid.uuid4().hex}"
    assert tasks.send_slack_message(org_a.pk, {"text": "hi"}, key) == "sent"
    assert tasks.send_slack_message(org_a.pk, {"text": "hi"}, key) == "skipped"
    assert len(fake_slack.requests) == 1


def test_it_refuses_a_private_address_when_not_allowed(org_a, settings, scheduled):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    configure(org_a, "http://169.254.169.254/latest")
    assert tasks.send_slack_message(org_a.pk, {"text": "hi"}, None) == "failed"
    assert scheduled == []


# --- The settings page ------------------------------------------------------------------------


def test_it_saves_the_slack_settings(org_a, as_alice, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    url = "https://hooks.slack.com/services/T000/B000/XXXX"
    response = as_alice.post(
        reverse("response_settings:slack"),
        {"webhook_url": url, "only_danger_zone": "on", "min_arr": "25000", "is_active": "on"},
    )
    assert response.status_code == 302
    with scopes_disabled():
        alert = SlackAlert.objects.get(organization=org_a)
    assert (alert.webhook_url, alert.only_danger_zone, alert.min_arr, alert.is_active) == (
        url,
        True,
        Decimal("25000"),
        True,
    )
    page = as_alice.get(reverse("response_settings:slack"))
    assert page["Cache-Control"] == "no-store"
    body = page.content.decode()
    assert url in body
    assert "danger zone only" in body
    assert "Send a test message" in body
    # Saving again updates the one row.
    as_alice.post(reverse("response_settings:slack"), {"webhook_url": url})
    with scopes_disabled():
        alert = SlackAlert.objects.get(organization=org_a)
    assert (alert.only_danger_zone, alert.min_arr, alert.is_active) == (False, None, False)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/services/T/B/X",
        "http://hooks.slack.com/services/T/B/X",
        "https://hooks.slack.com.evil.example/services/T/B/X",
        "not a url",
    ],
)
def test_it_explains_a_url_that_is_not_a_slack_webhook(org_a, as_alice, settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    response = as_alice.post(reverse("response_settings:slack"), {"webhook_url": url})
    assert response.status_code == 200
    assert "https://hooks.slack.com/services/" in response.content.decode()
    with scopes_disabled():
        assert not SlackAlert.objects.exists()


def test_it_explains_a_bad_minimum_arr(org_a, as_alice):
    response = as_alice.post(
        reverse("response_settings:slack"),
        {"webhook_url": "https://hooks.slack.com/services/T/B/X", "min_arr": "-5"},
    )
    assert response.status_code == 200
    assert "greater than or equal to 0" in response.content.decode()


def test_it_sends_a_test_message(org_a, as_alice, fake_slack):
    configure(org_a, fake_slack.url())
    response = as_alice.post(reverse("response_settings:slack"), {"action": "test"}, follow=True)
    assert "Test message sent" in response.content.decode()
    [message] = messages_of(fake_slack)
    assert "Acme A" in message["text"]


def test_it_says_when_the_test_message_fails(org_a, as_alice, fake_slack):
    fake_slack.answers = [(404, {})]
    configure(org_a, fake_slack.url())
    response = as_alice.post(reverse("response_settings:slack"), {"action": "test"}, follow=True)
    assert "The test message was not sent. Slack answered 404" in response.content.decode()


def test_it_shows_another_tenant_only_its_own_slack_settings(org_a, client, mallory):
    configure(org_a, "https://hooks.slack.com/services/SECRET/OF/A")
    client.force_login(mallory)
    body = client.get(reverse("response_settings:slack")).content.decode()
    assert "SECRET/OF/A" not in body
    assert "Save a webhook URL first" in body
