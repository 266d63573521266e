"""Outgoing webhooks: signing, sending, retries, SSRF refusals, fan-out and the settings
pages. Sends go to a real HTTP server on 127.0.0.1 (WEBHOOKS_ALLOW_PRIVATE_NETWORKS on),
except where a test checks that private addresses are refused."""

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from accounts.models import Contact
from nps_platform.celery import app as celery_app
from responses import tasks, webhooks
from responses.models import (
    DeliveryStatus,
    Response,
    WebhookDelivery,
    WebhookEndpoint,
    webhook_secret,
)
from responses.services import response_record, response_update

pytestmark = pytest.mark.django_db

PUBLIC_IP = "93.184.216.34"


# --- A local receiver -----------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records each request and answers from a script
    ((status, headers) per request; the last one repeats)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: list[tuple[int, dict]] = [(200, {})]
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                )
                index = min(len(receiver.requests), len(receiver.answers)) - 1
                status, headers = receiver.answers[index]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                receiver.arrived.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path="/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, count=1, timeout=20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return True
            time.sleep(0.05)
        return False

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    with Receiver() as server:
        yield server


def verify_standard_webhook(secret: str, headers: dict, body: str, tolerance=300) -> dict:
    """Verification as the `standardwebhooks` library does it, written independently:
    base64-decode the secret after "whsec_", HMAC-SHA256 over "{id}.{timestamp}.{body}",
    compare with each space-separated "v1,<base64>" signature, check the timestamp."""
    headers = {k.lower(): v for k, v in headers.items()}
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise AssertionError("timestamp outside tolerance")
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    ).decode()
    for versioned in headers["webhook-signature"].split(" "):
        version, _, signature = versioned.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return json.loads(body)
    raise AssertionError("no matching signature")


# --- Data -------------------------------------------------------------------------------------


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
                    "name": "Ann Lee",
                    "external_id": "c-1",
                    "account_external_id": "acc-1",
                }
            ],
        )
        yield org_a


def make_endpoint(org, url, events=(), **fields) -> WebhookEndpoint:
    with scopes_disabled():
        return WebhookEndpoint.objects.create(
            organization=org, url=url, events=list(events), secret=webhooks.new_secret(), **fields
        )


def record(org, **fields) -> Response:
    with scope(organization=org):
        response, _ = response_record(
            organization=org, channel="api", email="ann@initech.example", **fields
        )
    return response


def make_delivery(org, endpoint, **fields) -> WebhookDelivery:
    defaults = {
        "event_id": f"evt_{time.monotonic_ns()}",
        "event_type": "response.created",
        "payload": {"type": "response.created", "timestamp": now().isoformat(), "data": {}},
        "next_attempt_at": now(),
    }
    with scopes_disabled():
        return WebhookDelivery.objects.create(
            organization=org, endpoint=endpoint, **{**defaults, **fields}
        )


def send(delivery) -> str:
    """Runs the send task body in-process, as a worker would."""
    return tasks.send_webhook_delivery(delivery.organization_id, delivery.pk)


def reload(obj):
    with scopes_disabled():
        obj.refresh_from_db()
    return obj


@pytest.fixture
def scheduled(monkeypatch):
    """Records the retries the send task schedules (as with a real broker)."""
    calls = []
    # The autouse fixture in conftest puts eager mode back afterwards.
    celery_app.conf.task_always_eager = False
    monkeypatch.setattr(
        tasks.send_webhook_delivery,
        "apply_async",
        lambda args, countdown=None, **kw: calls.append((list(args), countdown)),
    )
    return calls


# --- Secrets and signatures -------------------------------------------------------------------


def test_it_makes_secrets_that_standard_webhooks_libraries_decode():
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(key) == 32
    assert webhooks.secret_key(secret) == key


def test_it_still_decodes_the_models_url_safe_secrets_with_padding():
    legacy = webhook_secret()
    raw = legacy.removeprefix("whsec_")
    expected = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    assert webhooks.secret_key(legacy) == expected
    assert len(expected) == 32


def test_it_signs_like_the_standard_webhooks_spec():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"type":"response.created"}'
    signature = webhooks.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    expected = base64.b64encode(
        hmac.new(key, f"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{body}".encode(), "sha256").digest()
    ).decode()
    assert signature == f"v1,{expected}"


# --- Sending ----------------------------------------------------------------------------------


def test_it_delivers_a_recorded_response_signed_with_the_standard_headers(
    world, receiver, django_capture_on_commit_callbacks
):
    # Subscribed to response events only: the follow-up engine's events are tested apart.
    endpoint = make_endpoint(world, receiver.url(), events=["response.created"])
    with django_capture_on_commit_callbacks(execute=True):
        response = record(
            world,
            score=2,
            comment="Way too expensive and the app keeps crashing. Really disappointed.",
        )
    assert receiver.wait(1)
    request = receiver.requests[0]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert request["path"] == "/hook"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("NPS-Loop-Webhooks/")
    assert headers["webhook-id"].startswith("evt_")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    payload = verify_standard_webhook(endpoint.secret, request["headers"], request["body"])
    assert payload["type"] == "response.created"
    data = payload["data"]
    assert data["id"] == response.pk
    assert (data["score"], data["category"], data["danger_zone"]) == (2, "detractor", True)
    assert data["channel"] == "api"
    assert set(data["themes"]) >= {"pricing", "bugs"}
    assert data["sentiment"] < 0
    assert data["contact"]["email"] == "ann@initech.example"
    assert data["contact"]["name"] == "Ann Lee"
    assert data["account"]["external_id"] == "acc-1"
    assert data["account"]["name"] == "Initech"
    assert data["account"]["arr"] == 90000
    with scopes_disabled():
        delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event_id == headers["webhook-id"]
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert (delivery.attempts, delivery.last_status_code) == (1, 200)
    assert delivery.delivered_at is not None


def test_it_signs_the_exact_bytes_it_sends(org_a, receiver):
    endpoint = make_endpoint(org_a, receiver.url())
    delivery = make_delivery(
        org_a, endpoint, payload={"type": "response.created", "data": {"comment": "Café ☕ <b>"}}
    )
    assert send(delivery) == DeliveryStatus.SUCCEEDED
    request = receiver.requests[0]
    payload = verify_standard_webhook(endpoint.secret, request["headers"], request["body"])
    assert payload["data"]["comment"] == "Café ☕ <b>"


def test_it_schedules_a_jittered_retry_on_a_server_error(org_a, receiver, scheduled, settings):
    receiver.answers = [(500, {})]
    endpoint = make_endpoint(org_a, receiver.url())
    delivery = make_delivery(org_a, endpoint)

    assert send(delivery) == DeliveryStatus.RETRYING
    reload(delivery)
    assert delivery.status == DeliveryStatus.RETRYING
    assert (delivery.attempts, delivery.last_status_code) == (1, 500)
    assert "HTTP 500" in delivery.last_error
    [(args, countdown)] = scheduled
    assert args == [org_a.pk, delivery.pk]
    assert 8 <= countdown <= 12
    assert countdown < settings.CELERY_BROKER_VISIBILITY_TIMEOUT
    wait = (delivery.next_attempt_at - now()).total_seconds()
    assert countdown - 3 <= wait <= countdown + 1

    # The second attempt, once due, waits about a minute.
    with scopes_disabled():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=now())
    assert send(delivery) == DeliveryStatus.RETRYING
    assert reload(delivery).attempts == 2
    assert 48 <= scheduled[1][1] <= 72
    assert len(receiver.requests) == 2


def test_it_does_not_send_a_retry_before_it_is_due(org_a, receiver, scheduled):
    endpoint = make_endpoint(org_a, receiver.url())
    delivery = make_delivery(
        org_a,
        endpoint,
        status=DeliveryStatus.RETRYING,
        attempts=1,
        next_attempt_at=now() + timedelta(minutes=1),
    )
    assert send(delivery) == "skipped"
    assert receiver.requests == []
    assert reload(delivery).attempts == 1


def test_it_caps_every_countdown_well_under_the_visibility_timeout(settings):
    settings.CELERY_BROKER_VISIBILITY_TIMEOUT = 600
    delays = [webhooks.retry_delay(attempt) for attempt in range(1, webhooks.MAX_ATTEMPTS)]
    assert all(0 < delay <= 300 for delay in delays)
    assert webhooks.retry_delay(webhooks.MAX_ATTEMPTS) is None
    settings.CELERY_BROKER_VISIBILITY_TIMEOUT = 3600
    for attempt, base in enumerate(webhooks.RETRY_DELAYS, start=1):
        for _ in range(20):
            delay = webhooks.retry_delay(attempt)
            assert min(base * 0.8, 1800) - 1 <= delay <= min(base * 1.2, 1800)


def test_it_fails_after_the_last_attempt(org_a, receiver, scheduled):
    receiver.answers = [(503, {})]
    endpoint = make_endpoint(org_a, receiver.url())
    delivery = make_delivery(
        org_a,
        endpoint,
        status=DeliveryStatus.RETRYING,
        attempts=webhooks.MAX_ATTEMPTS - 1,
        next_attempt_at=now(),
    )
    assert send(delivery) == DeliveryStatus.FAILED
    reload(delivery)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == webhooks.MAX_ATTEMPTS
    assert delivery.last_error.startswith(f"Gave up after {webhooks.MAX_ATTEMPTS} attempts")
    assert delivery.next_attempt_at is None
    assert scheduled == []


def test_it_disables_the_endpoint_on_410_gone(org_a, receiver, scheduled):
    receiver.answers = [(410, {})]
    endpoint = make_endpoint(org_a, receiver.url())
    delivery = make_delivery(org_a, endpoint)
    assert send(delivery) == DeliveryStatus.FAILED
    reload(delivery)
    assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.FAILED, 410)
    reload(endpoint)
    assert endpoint.is_active is False
    assert "410" in endpoint.disabled_reason
    assert scheduled == []
    # Nothing more goes to a disabled endpoint.
    later = make_delivery(org_a, endpoint)
    assert send(later) == DeliveryStatus.FAILED
    assert "disabled" in reload(later).last_error
    assert len(receiver.requests) == 1


def test_it_does_not_follow_a_redirect(org_a, receiver, scheduled):
    receiver.answers = [(302, {"Location": "/elsewhere"})]
    endpoint = make_endpoint(org_a, receiver.url())
    delivery = make_delivery(org_a, endpoint)
    assert send(delivery) == DeliveryStatus.RETRYING
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    reload(delivery)
    assert delivery.last_status_code == 302
    assert "not followed" in delivery.last_error
    assert "/elsewhere" in delivery.last_error


def test_it_retries_when_nothing_listens(org_a, scheduled, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    with Receiver() as closed:
        url = closed.url()
    endpoint = make_endpoint(org_a, url)
    delivery = make_delivery(org_a, endpoint)
    assert send(delivery) == DeliveryStatus.RETRYING
    reload(delivery)
    assert delivery.last_status_code is None
    assert delivery.last_error.startswith("Could not connect")
    assert len(scheduled) == 1


def test_it_sends_a_claimed_delivery_only_once(org_a, receiver):
    endpoint = make_endpoint(org_a, receiver.url())
    delivery = make_delivery(org_a, endpoint)
    assert send(delivery) == DeliveryStatus.SUCCEEDED
    assert send(delivery) == "skipped"
    assert len(receiver.requests) == 1
    assert reload(delivery).attempts == 1


def test_it_leaves_a_delivery_another_worker_is_sending(org_a, receiver):
    endpoint = make_endpoint(org_a, receiver.url())
    busy = make_delivery(
        org_a, endpoint, status=DeliveryStatus.SENDING, next_attempt_at=now() + timedelta(minutes=5)
    )
    assert send(busy) == "skipped"
    # A worker that died leaves its lease to expire; then the delivery is taken again.
    orphan = make_delivery(
        org_a,
        endpoint,
        status=DeliveryStatus.SENDING,
        attempts=1,
        next_attempt_at=now() - timedelta(seconds=1),
    )
    assert send(orphan) == DeliveryStatus.SUCCEEDED
    assert reload(orphan).attempts == 2
    assert len(receiver.requests) == 1


def test_it_requeues_deliveries_whose_message_was_lost(org_a, receiver):
    endpoint = make_endpoint(org_a, receiver.url())
    long_ago = now() - webhooks.STUCK_AFTER - timedelta(minutes=1)
    lost = make_delivery(org_a, endpoint, status=DeliveryStatus.RETRYING, next_attempt_at=long_ago)
    orphan = make_delivery(
        org_a,
        endpoint,
        status=DeliveryStatus.SENDING,
        attempts=2,
        next_attempt_at=now() - timedelta(minutes=1),
    )
    recent = make_delivery(org_a, endpoint, next_attempt_at=now())
    done = make_delivery(org_a, endpoint, status=DeliveryStatus.SUCCEEDED, next_attempt_at=None)

    assert tasks.requeue_stuck_webhook_deliveries() == 2
    assert reload(lost).status == DeliveryStatus.SUCCEEDED
    assert reload(orphan).status == DeliveryStatus.SUCCEEDED
    assert reload(orphan).attempts == 3
    assert reload(recent).status == DeliveryStatus.PENDING
    assert reload(done).attempts == 0
    assert len(receiver.requests) == 2


# --- SSRF -------------------------------------------------------------------------------------

REFUSED = [
    "http://127.0.0.1:8000/hook",
    "http://10.0.0.5/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://localhost/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://192.168.1.20/hook",
    "http://100.64.0.1/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_it_refuses_urls_that_are_not_public_http(url, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.url_problem(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://localhost/hook",
        "file:///etc/passwd",
    ],
)
def test_it_fails_a_delivery_to_a_refused_url_without_sending(url, org_a, settings, scheduled):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    endpoint = make_endpoint(org_a, url)
    delivery = make_delivery(org_a, endpoint)
    assert send(delivery) == DeliveryStatus.FAILED
    reload(delivery)
    assert delivery.last_error.startswith("Refused:")
    assert delivery.last_status_code is None
    assert scheduled == []


def test_it_accepts_a_public_address(settings, monkeypatch):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    monkeypatch.setattr(webhooks, "resolve_host", lambda host, port: [PUBLIC_IP, "2606:4700::1"])
    webhooks.url_problem("https://hooks.example.com/nps")
    webhooks.url_problem(f"https://{PUBLIC_IP}/nps")


def test_it_refuses_a_host_with_any_private_address(settings, monkeypatch):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    monkeypatch.setattr(webhooks, "resolve_host", lambda host, port: [PUBLIC_IP, "10.1.2.3"])
    with pytest.raises(webhooks.UnsafeURL, match="10.1.2.3"):
        webhooks.url_problem("https://sneaky.example.com/nps")


def test_it_checks_the_address_it_actually_connects_to(org_a, settings, monkeypatch, scheduled):
    """DNS rebinding: the name looked public when checked, then resolves to loopback."""
    with Receiver() as server:
        settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
        monkeypatch.setattr(webhooks, "resolve_host", lambda host, port: [PUBLIC_IP])
        endpoint = make_endpoint(org_a, f"http://localhost:{server.port}/hook")
        delivery = make_delivery(org_a, endpoint)
        assert send(delivery) == DeliveryStatus.FAILED
        assert server.requests == []
    assert "Refused to connect to 127.0.0.1" in reload(delivery).last_error


# --- Fan-out ----------------------------------------------------------------------------------


def test_it_fans_out_once_per_endpoint_and_event(world, django_capture_on_commit_callbacks):
    everything = make_endpoint(world, f"https://{PUBLIC_IP}/all")
    created_only = make_endpoint(world, f"https://{PUBLIC_IP}/created", ["response.created"])
    updated_only = make_endpoint(world, f"https://{PUBLIC_IP}/updated", ["response.updated"])
    make_endpoint(world, f"https://{PUBLIC_IP}/off", is_active=False)
    response = record(world, score=9, comment="Great")

    with scope(organization=world), django_capture_on_commit_callbacks() as queued:
        first = webhooks.deliveries_fan_out(
            organization=world, created_ids=[response.pk], updated_ids=[]
        )
        second = webhooks.deliveries_fan_out(
            organization=world, created_ids=[response.pk], updated_ids=[]
        )
    assert len(first) == 2
    assert second == []
    assert len(queued) == 2
    with scopes_disabled():
        deliveries = list(WebhookDelivery.objects.filter(organization=world))
    assert sorted(d.endpoint_id for d in deliveries) == sorted([everything.pk, created_only.pk])
    assert len({d.event_id for d in deliveries}) == 1
    assert deliveries[0].event_id == webhooks.event_id_for("response.created", response)
    assert deliveries[0].payload["data"]["id"] == response.pk
    assert not any(d.endpoint_id == updated_only.pk for d in deliveries)


def test_it_sends_an_update_as_its_own_event(world, receiver, django_capture_on_commit_callbacks):
    endpoint = make_endpoint(world, receiver.url(), events=["response.created", "response.updated"])
    with django_capture_on_commit_callbacks(execute=True):
        response = record(world, score=6, comment="Slow")
    with scope(organization=world), django_capture_on_commit_callbacks(execute=True):
        response_update(organization=world, response=response, changes={"comment": "Fast now"})
    assert receiver.wait(2)
    types = [json.loads(r["body"])["type"] for r in receiver.requests]
    assert types == ["response.created", "response.updated"]
    assert json.loads(receiver.requests[1]["body"])["data"]["comment"] == "Fast now"
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert len(ids) == 2
    with scopes_disabled():
        assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 2


def test_it_sends_nothing_for_another_tenant(
    world, org_b, receiver, django_capture_on_commit_callbacks
):
    make_endpoint(org_b, receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        record(world, score=3)
    with scopes_disabled():
        assert WebhookDelivery.objects.count() == 0
    assert receiver.requests == []


# --- Redeliver --------------------------------------------------------------------------------


def test_it_redelivers_on_request(org_a, as_alice, receiver, django_capture_on_commit_callbacks):
    endpoint = make_endpoint(org_a, receiver.url())
    delivery = make_delivery(org_a, endpoint)
    send(delivery)
    with django_capture_on_commit_callbacks(execute=True):
        response = as_alice.post(
            reverse("response_settings:delivery_redeliver", args=[delivery.pk])
        )
    assert response.status_code == 302
    assert response.url == reverse("response_settings:webhook_detail", args=[endpoint.pk])
    assert receiver.wait(2)
    assert (
        receiver.requests[0]["headers"]["webhook-id"]
        == receiver.requests[1]["headers"]["webhook-id"]
    )
    reload(delivery)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 1)


def test_it_refuses_to_redeliver_to_a_disabled_endpoint(org_a, as_alice):
    endpoint = make_endpoint(org_a, f"https://{PUBLIC_IP}/x", is_active=False)
    delivery = make_delivery(org_a, endpoint, status=DeliveryStatus.FAILED)
    response = as_alice.post(
        reverse("response_settings:delivery_redeliver", args=[delivery.pk]), follow=True
    )
    assert "enable it first" in response.content.decode()
    assert reload(delivery).status == DeliveryStatus.FAILED


# --- Settings pages ---------------------------------------------------------------------------


@pytest.fixture
def public_dns(monkeypatch):
    monkeypatch.setattr(webhooks, "resolve_host", lambda host, port: [PUBLIC_IP])


def test_it_creates_an_endpoint_and_shows_its_secret(org_a, as_alice, public_dns):
    response = as_alice.post(
        reverse("response_settings:webhooks"),
        {"url": "https://hooks.example.com/nps", "description": "CRM", "events": ["all"]},
    )
    with scopes_disabled():
        endpoint = WebhookEndpoint.objects.get(organization=org_a)
    assert response.status_code == 302
    assert response.url == reverse("response_settings:webhook_detail", args=[endpoint.pk])
    assert (endpoint.url, endpoint.description, endpoint.events) == (
        "https://hooks.example.com/nps",
        "CRM",
        [],
    )
    assert len(base64.b64decode(endpoint.secret.removeprefix("whsec_"), validate=True)) == 32
    page = as_alice.get(response.url)
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    body = page.content.decode()
    assert f'data-secret="{endpoint.secret}"' in body
    assert "Reveal" in body
    assert "Copy" in body
    listing = as_alice.get(reverse("response_settings:webhooks")).content.decode()
    assert "https://hooks.example.com/nps" in listing
    assert endpoint.secret not in listing


def test_it_keeps_only_the_chosen_events(org_a, as_alice, public_dns):
    as_alice.post(
        reverse("response_settings:webhooks"),
        {"url": "https://hooks.example.com/nps", "events": ["response.updated"]},
    )
    with scopes_disabled():
        assert WebhookEndpoint.objects.get(organization=org_a).events == ["response.updated"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/hook", "a loopback address"),
        ("http://10.0.0.5/hook", "a private network address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("http://[::1]/hook", "a loopback address"),
        ("http://localhost/hook", "Webhooks go only to public internet addresses"),
        ("file:///etc/passwd", "Use an http:// or https:// URL."),
        ("hooks.example.com/nps", "Use an http:// or https:// URL."),
    ],
)
def test_it_explains_a_refused_endpoint_url(org_a, as_alice, url, message, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    response = as_alice.post(reverse("response_settings:webhooks"), {"url": url, "events": ["all"]})
    assert response.status_code == 200
    assert message in response.content.decode()
    with scopes_disabled():
        assert not WebhookEndpoint.objects.filter(organization=org_a).exists()


def test_it_asks_for_at_least_one_event(org_a, as_alice, public_dns):
    response = as_alice.post(
        reverse("response_settings:webhooks"), {"url": "https://hooks.example.com/nps"}
    )
    assert response.status_code == 200
    assert "Choose the events to send" in response.content.decode()


def test_it_shows_the_delivery_log_in_a_fixed_number_of_queries(
    org_a, as_alice, django_assert_max_num_queries
):
    endpoint = make_endpoint(org_a, f"https://{PUBLIC_IP}/x")
    for n in range(3):
        make_delivery(org_a, endpoint, status=DeliveryStatus.FAILED, last_error=f"boom {n}")
    url = reverse("response_settings:webhook_detail", args=[endpoint.pk])
    with django_assert_max_num_queries(9) as few:
        assert as_alice.get(url).status_code == 200
    for n in range(60):
        make_delivery(org_a, endpoint, last_status_code=500, last_error=f"HTTP 500 #{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = as_alice.get(url)
    body = response.content.decode()
    assert body.count("data-delivery=") == webhooks.LOG_SIZE
    assert "HTTP 500 #59" in body
    assert body.count(">Redeliver<") == webhooks.LOG_SIZE


def test_it_deletes_an_endpoint_with_its_log(org_a, as_alice):
    endpoint = make_endpoint(org_a, f"https://{PUBLIC_IP}/x")
    make_delivery(org_a, endpoint)
    response = as_alice.post(reverse("response_settings:webhook_delete", args=[endpoint.pk]))
    assert response.status_code == 302
    with scopes_disabled():
        assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
        assert not WebhookDelivery.objects.filter(organization=org_a).exists()
    assert (
        as_alice.get(reverse("response_settings:webhook_delete", args=[endpoint.pk])).status_code
        == 405
    )


def test_it_enables_a_disabled_endpoint_again(org_a, as_alice):
    endpoint = make_endpoint(
        org_a, f"https://{PUBLIC_IP}/x", is_active=False, disabled_reason="Answered 410 Gone"
    )
    url = reverse("response_settings:webhook_detail", args=[endpoint.pk])
    assert "Answered 410 Gone" in as_alice.get(url).content.decode()
    assert as_alice.post(url, {"action": "enable"}).status_code == 302
    reload(endpoint)
    assert (endpoint.is_active, endpoint.disabled_reason) == (True, "")


def test_it_sends_a_test_event(org_a, as_alice, receiver, django_capture_on_commit_callbacks):
    endpoint = make_endpoint(org_a, receiver.url())
    url = reverse("response_settings:webhook_detail", args=[endpoint.pk])
    with django_capture_on_commit_callbacks(execute=True):
        as_alice.post(url, {"action": "test"})
    assert receiver.wait(1)
    payload = verify_standard_webhook(
        endpoint.secret, receiver.requests[0]["headers"], receiver.requests[0]["body"]
    )
    assert payload["type"] == "webhook.test"
    assert "webhook.test" in as_alice.get(url).content.decode()


ROUTES = [
    ("get", "response_settings:webhooks", None),
    ("post", "response_settings:webhooks", None),
    ("get", "response_settings:webhook_detail", "endpoint"),
    ("post", "response_settings:webhook_detail", "endpoint"),
    ("post", "response_settings:webhook_delete", "endpoint"),
    ("post", "response_settings:delivery_redeliver", "delivery"),
    ("get", "response_settings:slack", None),
    ("post", "response_settings:slack", None),
]


@pytest.fixture
def org_a_objects(org_a):
    endpoint = make_endpoint(org_a, f"https://{PUBLIC_IP}/secret-endpoint-of-a")
    delivery = make_delivery(org_a, endpoint, status=DeliveryStatus.FAILED)
    return {"endpoint": endpoint.pk, "delivery": delivery.pk}


def _url(name, kind, objects):
    return reverse(name, args=[objects[kind]] if kind else [])


@pytest.mark.parametrize("who", ["bob", "carol"])
@pytest.mark.parametrize(("method", "name", "kind"), ROUTES)
def test_it_keeps_webhook_and_slack_settings_to_admins(
    client, request, who, method, name, kind, org_a_objects
):
    client.force_login(request.getfixturevalue(who))
    data = {"url": "https://x.example/", "events": ["all"], "action": "enable"}
    response = getattr(client, method)(_url(name, kind, org_a_objects), data)
    assert response.status_code == 403
    with scopes_disabled():
        assert WebhookEndpoint.objects.count() == 1
        assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED


@pytest.mark.parametrize(("method", "name", "kind"), [r for r in ROUTES if r[2]])
def test_it_answers_404_to_another_tenants_admin(
    client, mallory, method, name, kind, org_a_objects
):
    client.force_login(mallory)
    response = getattr(client, method)(_url(name, kind, org_a_objects), {"action": "disable"})
    assert response.status_code == 404
    with scopes_disabled():
        endpoint = WebhookEndpoint.objects.get()
        assert endpoint.is_active
        assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED


def test_it_lists_only_the_own_tenants_endpoints(client, mallory, org_a_objects):
    client.force_login(mallory)
    body = client.get(reverse("response_settings:webhooks")).content.decode()
    assert "secret-endpoint-of-a" not in body


# --- Delighted's payload format ---------------------------------------------------------------


def test_it_sends_delighted_shaped_survey_response_events(
    world, receiver, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(world, receiver.url(), payload_format="delighted")
    with django_capture_on_commit_callbacks(execute=True):
        response = record(world, score=4, comment="Too slow", tags=["speed"])
    with scope(organization=world), django_capture_on_commit_callbacks(execute=True):
        response_update(organization=world, response=response, changes={"comment": "Better"})
    assert receiver.wait(2)
    first, second = (
        verify_standard_webhook(endpoint.secret, r["headers"], r["body"]) for r in receiver.requests
    )
    assert set(first) == {"event_type", "event_id", "event_data"}
    assert first["event_type"] == "survey_response.created"
    assert second["event_type"] == "survey_response.updated"
    assert first["event_id"] != second["event_id"]
    data = first["event_data"]
    assert data["id"] == str(response.pk)
    assert (data["score"], data["comment"], data["survey_type"]) == (4, "Too slow", "nps")
    assert data["tags"] == ["speed"]
    assert isinstance(data["created_at"], int)
    assert data["person"]["email"] == "ann@initech.example"
    assert data["person"]["id"] == str(response.contact_id)
    assert second["event_data"]["comment"] == "Better"
    with scopes_disabled():
        logged = sorted(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("event_type"))
    assert logged == [("survey_response.created",), ("survey_response.updated",)]


def test_it_keeps_the_standard_shape_beside_a_delighted_endpoint(
    world, django_capture_on_commit_callbacks
):
    standard = make_endpoint(world, f"https://{PUBLIC_IP}/std")
    delighted = make_endpoint(world, f"https://{PUBLIC_IP}/dlt", payload_format="delighted")
    response = record(world, score=10)
    with scope(organization=world), django_capture_on_commit_callbacks():
        webhooks.deliveries_fan_out(organization=world, created_ids=[response.pk], updated_ids=[])
    with scopes_disabled():
        by_endpoint = {
            d.endpoint_id: d.payload for d in WebhookDelivery.objects.filter(organization=world)
        }
    assert by_endpoint[standard.pk]["type"] == "response.created"
    assert by_endpoint[standard.pk]["data"]["id"] == response.pk
    assert by_endpoint[delighted.pk]["event_type"] == "survey_response.created"


def test_it_sends_follow_up_events_to_standard_endpoints_only(
    world, django_capture_on_commit_callbacks
):
    standard = make_endpoint(world, f"https://{PUBLIC_IP}/std")
    make_endpoint(world, f"https://{PUBLIC_IP}/dlt", payload_format="delighted")
    with scope(organization=world), django_capture_on_commit_callbacks():
        webhooks.event_emit(
            organization=world, event_type="followup.closed", key="fu-1", data={"id": 1}
        )
    with scopes_disabled():
        endpoints = list(WebhookDelivery.objects.values_list("endpoint_id", flat=True))
    assert endpoints == [standard.pk]


def test_it_sends_unsubscribe_created_in_delighted_shape(
    world, receiver, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(world, receiver.url(), payload_format="delighted")
    make_endpoint(world, f"https://{PUBLIC_IP}/std")
    with scope(organization=world), django_capture_on_commit_callbacks(execute=True):
        contact = Contact.objects.get(email="ann@initech.example")
        contact.suppressed_at = now()
        first = webhooks.delighted_unsubscribe_emit(organization=world, contact=contact)
        again = webhooks.delighted_unsubscribe_emit(organization=world, contact=contact)
    assert len(first) == 1
    assert again == []
    assert receiver.wait(1)
    body = verify_standard_webhook(
        endpoint.secret, receiver.requests[0]["headers"], receiver.requests[0]["body"]
    )
    assert body["event_type"] == "unsubscribe.created"
    assert body["event_data"]["person"]["email"] == "ann@initech.example"
    assert isinstance(body["event_data"]["unsubscribed_at"], int)


def test_it_creates_a_delighted_format_endpoint_from_the_form(org_a, as_alice, public_dns):
    response = as_alice.post(
        reverse("response_settings:webhooks"),
        {"url": "https://hooks.example.com/d", "events": ["all"], "payload_format": "delighted"},
    )
    assert response.status_code == 302
    with scopes_disabled():
        endpoint = WebhookEndpoint.objects.get(organization=org_a)
    assert endpoint.payload_format == "delighted"
    page = as_alice.get(response.url).content.decode()
    assert "Delighted ({event_type, event_id, event_data})" in page


def test_it_refuses_an_unknown_payload_format(org_a, as_alice, public_dns):
    response = as_alice.post(
        reverse("response_settings:webhooks"),
        {"url": "https://hooks.example.com/d", "events": ["all"], "payload_format": "xml"},
    )
    assert response.status_code == 200
    assert "payload_format" in response.context["form"].errors
    with scopes_disabled():
        assert not WebhookEndpoint.objects.filter(organization=org_a).exists()
