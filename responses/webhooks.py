"""Outgoing webhooks, after the Standard Webhooks spec (https://www.standardwebhooks.com).

When responses are recorded, `deliveries_fan_out` makes one `WebhookDelivery` per active
endpoint that wants the event, at most once per (endpoint, event id), and queues a send for
each. `delivery_send` claims a delivery (compare-and-set), POSTs the signed JSON and records
the outcome: 2xx succeeded; 410 disables the endpoint; anything else (including a redirect,
never followed, and network errors) retries on a jittered exponential schedule, then fails.
`deliveries_requeue_stuck` (beat) re-queues deliveries whose message was lost.

Signing: headers `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`
= "v1," + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), where the key is the
base64-decoded secret after its "whsec_" prefix.

Server-side request forgery: endpoints (and every connection actually opened, so a DNS
answer that changes between the check and the send is caught too) must be public internet
addresses over http(s), unless settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS is true.
"""

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.timezone import now
from django_scopes import scopes_disabled
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from nps_platform.models import Organization
from nps_platform.params import whole_number
from responses import analysis
from responses.models import (
    DeliveryStatus,
    PayloadFormat,
    Response,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
TEST_EVENT = "webhook.test"
TIMEOUT_SECONDS = 10
# Seconds to wait after failed attempt n (1-based): 10 s, 1 min, 5 min, 20 min, 50 min,
# each ± 20 %, and never longer than half the broker's visibility timeout (a Redis message
# held longer than that is delivered twice). Six attempts in all.
RETRY_DELAYS = (10, 60, 300, 1200, 3000)
RETRY_JITTER = 0.2
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# A send task that arrives a little before its delivery's next_attempt_at still runs.
EARLY_TOLERANCE = timedelta(seconds=5)
# A pending or retrying delivery this late is taken to have lost its message.
STUCK_AFTER = timedelta(minutes=5)
STUCK_BATCH = 500
LOG_SIZE = 50
ERROR_SIZE = 500
BODY_PREVIEW = 200
EVENT_NAMESPACE = uuid.UUID("6f1c2a57-8a55-4f0e-9a63-2d7f0f3b9e41")


# --- Secrets and signatures ---------------------------------------------------------------


def new_secret() -> str:
    """A signing secret as Standard Webhooks libraries expect: whsec_ + standard base64 of
    32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: its base64 part decoded. Standard base64 is the format;
    URL-safe base64 without padding (older secrets) decodes too, padded."""
    raw = secret.removeprefix(SECRET_PREFIX)
    padded = raw + "=" * (-len(raw) % 4)
    try:
        if "-" in raw or "_" in raw:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return base64.urlsafe_b64decode(padded)


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def user_agent() -> str:
    return f"NPS-Loop-Webhooks/1.0 (+{settings.SITE_URL})"


def signed_headers(secret: str, message_id: str, body: str, timestamp: int | None = None):
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "Content-Type": "application/json",
        "User-Agent": user_agent(),
    }


def body_of(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


# --- Where we may send (SSRF) -------------------------------------------------------------


class UnsafeURL(ValueError):
    """The URL points somewhere we never send to: not http(s), or not a public address."""


class HostNotFound(ValueError):
    """The host does not resolve (now): possibly temporary."""


def private_networks_allowed() -> bool:
    return bool(getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_NETWORKS", False))


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to (a seam for tests)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def address_problem(address: str) -> str | None:
    """Why an address is not a public internet address, or None when it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "is not an IP address"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for flag, label in (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private network address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(ip, flag):
            return label
    if not ip.is_global:
        return "not a public internet address"
    return None


def url_problem(url: str) -> None:
    """Raises UnsafeURL (never send there) or HostNotFound (cannot tell now) for a URL we
    would refuse; returns None when the URL may be used."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("This is not a valid URL.") from None
    if parts.scheme not in {"http", "https"}:
        raise UnsafeURL("Use an http:// or https:// URL.")
    host = parts.hostname
    if not host:
        raise UnsafeURL("The URL has no host name.")
    if private_networks_allowed():
        return
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = resolve_host(host, port or (443 if parts.scheme == "https" else 80))
        except (socket.gaierror, UnicodeError, OSError):
            raise HostNotFound(f"We could not find the host “{host}”. Check the URL.") from None
    for address in addresses:
        if problem := address_problem(address):
            raise UnsafeURL(
                f"“{host}” points to {address}, {problem}. Webhooks go only to public "
                "internet addresses."
            )


def _check_peer(sock: socket.socket) -> None:
    if private_networks_allowed():
        return
    address = sock.getpeername()[0]
    if problem := address_problem(address):
        sock.close()
        raise UnsafeURL(f"Refused to connect to {address}, {problem}.")


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self):
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self):
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    """Checks the address every connection actually reaches, after DNS."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }


@dataclass
class PostResult:
    status_code: int
    body_preview: str
    location: str
    retry_after: int | None = None


def post_json(url: str, body: str, headers: dict, timeout: float = TIMEOUT_SECONDS) -> PostResult:
    """POSTs a body to a URL we may send to; never follows a redirect, reads at most a few
    hundred bytes of the answer. Raises UnsafeURL, HostNotFound or requests' exceptions."""
    url_problem(url)
    with requests.Session() as session:
        # Environment proxies would take the connection (and the address check) elsewhere.
        session.trust_env = False
        adapter = _GuardedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        answer = session.post(
            url,
            data=body.encode(),
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
        try:
            preview = answer.raw.read(BODY_PREVIEW * 4, decode_content=True) or b""
        except Exception:  # the status is what matters; the body is only a hint
            preview = b""
        finally:
            answer.close()
    return PostResult(
        status_code=answer.status_code,
        body_preview=preview.decode(errors="replace")[:BODY_PREVIEW],
        location=answer.headers.get("Location", ""),
        retry_after=_seconds(answer.headers.get("Retry-After", "")),
    )


def _seconds(value: str) -> int | None:
    return whole_number(value)


# --- Reads --------------------------------------------------------------------------------


def endpoints_of(organization: Organization) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(organization=organization)


def get_endpoint_for(organization: Organization, endpoint_id: int) -> WebhookEndpoint:
    return get_object_or_404(endpoints_of(organization), pk=endpoint_id)


def get_delivery_for(organization: Organization, delivery_id: int) -> WebhookDelivery:
    return get_object_or_404(
        WebhookDelivery.objects.filter(organization=organization).select_related("endpoint"),
        pk=delivery_id,
    )


def deliveries_of(endpoint: WebhookEndpoint, limit: int = LOG_SIZE) -> list[WebhookDelivery]:
    """The endpoint's latest deliveries, newest first (one query)."""
    return list(
        WebhookDelivery.objects.filter(organization_id=endpoint.organization_id, endpoint=endpoint)
        .defer("payload")
        .order_by("-created_at", "-id")[:limit]
    )


# --- Payloads -----------------------------------------------------------------------------


def event_id_for(event_type: str, response: Response) -> str:
    """The same event always has the same id, so a re-run fan-out finds its deliveries: a
    response is created once (its creation time), and each change has its own updated_at."""
    moment = response.created_at if event_type == WebhookEvent.RESPONSE_CREATED else None
    moment = moment or response.updated_at
    name = f"{event_type}:{response.pk}:{moment.isoformat()}"
    return "evt_" + uuid.uuid5(EVENT_NAMESPACE, name).hex


def _iso(value):
    return value.isoformat() if value else None


def response_data(response: Response, taxonomy: analysis.Taxonomy | None = None) -> dict:
    """The response as webhooks show it. Themes and sentiment come from the analysis; when
    it has not run yet for this comment, they are worked out here the same way."""
    themes, sentiment = list(response.themes or []), response.sentiment
    if taxonomy is not None and response.analyzed_hash != analysis.analysis_hash(
        response.comment, taxonomy
    ):
        themes = analysis.themes_of(response.comment, taxonomy)
        sentiment = analysis.sentiment_of(response.comment)
    contact, account = response.contact, response.account
    return {
        "id": response.pk,
        "score": response.score,
        "category": response.category,
        "danger_zone": response.danger_zone,
        "comment": response.comment,
        "themes": themes,
        "sentiment": sentiment,
        "channel": response.channel,
        "submitted_at": _iso(response.submitted_at),
        "contact": (
            {"id": contact.pk, "email": contact.email, "name": contact.name} if contact else None
        ),
        "account": (
            {
                "id": account.pk,
                "external_id": account.external_id,
                "name": account.name,
                "arr": float(account.arr) if account.arr is not None else None,
            }
            if account
            else None
        ),
    }


def event_payload(event_type: str, response: Response, taxonomy=None) -> dict:
    moment = response.created_at if event_type == WebhookEvent.RESPONSE_CREATED else None
    return {
        "type": event_type,
        "timestamp": _iso(moment or response.updated_at),
        "data": response_data(response, taxonomy),
    }


# --- Delighted's shapes -------------------------------------------------------------------
# The Delighted-compatible API (compat/) answers with these too, so a webhook's event_data is
# exactly what GET /delighted/v1/survey_responses/{id}?expand[]=person returns.


def epoch(value) -> int | None:
    return int(value.timestamp()) if value else None


def delighted_person(contact) -> dict:
    return {
        "id": str(contact.pk),
        "email": contact.email,
        "name": contact.name or None,
        "phone_number": contact.phone or None,
        "created_at": epoch(contact.created_at),
        "last_sent_at": epoch(contact.last_surveyed_at),
        "last_responded_at": epoch(contact.last_responded_at),
    }


def delighted_note(note) -> dict:
    author = getattr(note, "author", None)
    return {
        "id": str(note.pk),
        "text": note.body,
        "user_email": author.email if author is not None else None,
        "user_name": (author.name if author is not None else note.author_name) or None,
        "created_at": epoch(note.created_at),
    }


def delighted_survey_response(response: Response, *, person=False, notes=None) -> dict:
    """A response as Delighted's API shows a survey_response: ids as strings, times as
    epoch seconds; `person` expanded when asked, `notes` when given."""
    contact = response.contact if response.contact_id else None
    if person and contact is not None:
        person_value = delighted_person(contact)
    else:
        person_value = str(response.contact_id) if response.contact_id else None
    return {
        "id": str(response.pk),
        "person": person_value,
        "survey_type": "nps",
        "score": response.score,
        "comment": response.comment or None,
        "permalink": settings.SITE_URL.rstrip("/") + f"/responses/{response.pk}/",
        "created_at": epoch(response.submitted_at),
        "updated_at": epoch(response.updated_at),
        "person_properties": response.properties or None,
        "notes": [delighted_note(note) for note in notes or []],
        "tags": list(response.tags or []),
        "additional_answers": [],
    }


DELIGHTED_EVENTS = {
    WebhookEvent.RESPONSE_CREATED: "survey_response.created",
    WebhookEvent.RESPONSE_UPDATED: "survey_response.updated",
}
DELIGHTED_UNSUBSCRIBE = "unsubscribe.created"


def delighted_payload(event_type: str, event_id: str, event_data: dict) -> dict:
    return {"event_type": event_type, "event_id": event_id, "event_data": event_data}


def delighted_unsubscribe_emit(*, organization: Organization, contact) -> list[int]:
    """unsubscribe.created to every active endpoint in Delighted's format that takes all
    events. Once per unsubscribe (the contact and the moment it was suppressed)."""
    endpoints = [
        e
        for e in endpoints_of(organization).filter(
            is_active=True, payload_format=PayloadFormat.DELIGHTED
        )
        if not e.events
    ]
    if not endpoints:
        return []
    moment = now()
    stamp = (contact.suppressed_at or moment).isoformat()
    key = f"{DELIGHTED_UNSUBSCRIBE}:{contact.pk}:{stamp}"
    event_id = "evt_" + hashlib.sha256(key.encode()).hexdigest()[:32]
    payload = delighted_payload(
        DELIGHTED_UNSUBSCRIBE,
        event_id,
        {
            "person": delighted_person(contact),
            "unsubscribed_at": epoch(contact.suppressed_at or moment),
        },
    )
    return _deliver(organization, endpoints, event_id, DELIGHTED_UNSUBSCRIBE, payload, moment)


def _deliver(organization, endpoints, event_id, event_type, payload, moment) -> list[int]:
    with transaction.atomic():
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    organization=organization,
                    endpoint=endpoint,
                    event_id=event_id,
                    event_type=event_type,
                    payload=payload,
                    next_attempt_at=moment,
                    created_at=moment,
                )
                for endpoint in endpoints
            ],
            ignore_conflicts=True,
        )
        delivery_ids = list(
            WebhookDelivery.objects.filter(
                organization=organization,
                endpoint__in=endpoints,
                event_id=event_id,
                created_at=moment,
            ).values_list("pk", flat=True)
        )
        _enqueue(organization.pk, delivery_ids)
    return delivery_ids


# --- Endpoints ----------------------------------------------------------------------------


def endpoint_create(
    *,
    organization: Organization,
    url: str,
    description: str = "",
    events: list[str] = (),
    payload_format: str = PayloadFormat.STANDARD,
) -> WebhookEndpoint:
    unknown = set(events) - set(WebhookEvent.values)
    if unknown:
        raise ValidationError({"events": [f"Unknown event types: {', '.join(sorted(unknown))}."]})
    if payload_format not in PayloadFormat.values:
        raise ValidationError({"payload_format": [f"Unknown payload format {payload_format!r}."]})
    return WebhookEndpoint.objects.create(
        organization=organization,
        url=url,
        description=description,
        events=sorted(set(events)),
        payload_format=payload_format,
        secret=new_secret(),
    )


def endpoint_enable(*, organization: Organization, endpoint: WebhookEndpoint) -> None:
    WebhookEndpoint.objects.filter(organization=organization, pk=endpoint.pk).update(
        is_active=True, disabled_reason=""
    )
    endpoint.is_active, endpoint.disabled_reason = True, ""


def endpoint_disable(*, organization: Organization, endpoint: WebhookEndpoint, reason: str):
    WebhookEndpoint.objects.filter(organization=organization, pk=endpoint.pk).update(
        is_active=False, disabled_reason=reason[:300]
    )
    endpoint.is_active, endpoint.disabled_reason = False, reason[:300]


def endpoint_delete(*, organization: Organization, endpoint: WebhookEndpoint) -> None:
    WebhookEndpoint.objects.filter(organization=organization, pk=endpoint.pk).delete()


# --- Deliveries ---------------------------------------------------------------------------


def _enqueue(organization_id: int, delivery_ids: list[int]) -> None:
    from responses.tasks import send_webhook_delivery

    for delivery_id in delivery_ids:
        send_webhook_delivery.delay_on_commit(organization_id, delivery_id)


def deliveries_fan_out(
    *, organization: Organization, created_ids: list[int], updated_ids: list[int]
) -> list[int]:
    """Makes the deliveries these recorded responses call for, at most one per endpoint and
    event, and queues their sends. Returns the ids of the deliveries it made."""
    endpoints = list(endpoints_of(organization).filter(is_active=True))
    if not endpoints or not (created_ids or updated_ids):
        return []
    wanted = {
        event_type: [e for e in endpoints if e.wants(event_type)]
        for event_type in (WebhookEvent.RESPONSE_CREATED, WebhookEvent.RESPONSE_UPDATED)
    }
    created, updated = set(created_ids), set(updated_ids) - set(created_ids)
    ids_by_type = {
        WebhookEvent.RESPONSE_CREATED: created if wanted[WebhookEvent.RESPONSE_CREATED] else set(),
        WebhookEvent.RESPONSE_UPDATED: updated if wanted[WebhookEvent.RESPONSE_UPDATED] else set(),
    }
    all_ids = set().union(*ids_by_type.values())
    if not all_ids:
        return []
    responses = {
        r.pk: r
        for r in Response.objects.filter(organization=organization, pk__in=all_ids)
        .select_related("contact", "account")
        .order_by("pk")
    }
    taxonomy = analysis.taxonomy_for(organization)
    moment = now()
    candidates: dict[tuple[int, str], WebhookDelivery] = {}
    for event_type, response_ids in ids_by_type.items():
        for response_id in sorted(response_ids):
            response = responses.get(response_id)
            if response is None:
                continue  # deleted since
            event_id = event_id_for(event_type, response)
            payloads = {}
            for endpoint in wanted[event_type]:
                shape = endpoint.payload_format
                if shape not in payloads:
                    payloads[shape] = (
                        delighted_payload(
                            DELIGHTED_EVENTS[event_type],
                            event_id,
                            delighted_survey_response(response, person=True),
                        )
                        if shape == PayloadFormat.DELIGHTED
                        else event_payload(event_type, response, taxonomy)
                    )
                candidates[(endpoint.pk, event_id)] = WebhookDelivery(
                    organization=organization,
                    endpoint=endpoint,
                    event_id=event_id,
                    event_type=(
                        DELIGHTED_EVENTS[event_type]
                        if shape == PayloadFormat.DELIGHTED
                        else event_type
                    ),
                    payload=payloads[shape],
                    next_attempt_at=moment,
                    created_at=moment,
                )
    existing = set(
        WebhookDelivery.objects.filter(
            organization=organization,
            endpoint__in=endpoints,
            event_id__in={event_id for _, event_id in candidates},
        ).values_list("endpoint_id", "event_id")
    )
    new = [d for key, d in candidates.items() if key not in existing]
    if not new:
        return []
    with transaction.atomic():
        # A concurrent fan-out of the same events may have made some meanwhile: skip them.
        WebhookDelivery.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
        # Ours are the rows with our timestamp; a concurrent fan-out queues its own.
        delivery_ids = list(
            WebhookDelivery.objects.filter(
                organization=organization,
                endpoint__in=endpoints,
                event_id__in={d.event_id for d in new},
                created_at=moment,
            ).values_list("pk", flat=True)
        )
        _enqueue(organization.pk, delivery_ids)
    return delivery_ids


def event_emit(*, organization: Organization, event_type: str, key: str, data: dict) -> list[int]:
    """Sends any event (e.g. followup.closed from the follow-up engine) to every active
    endpoint that wants it. `key` identifies the event, so a repeat makes nothing new."""
    # Delighted's shape has no such events: only standard endpoints take them.
    endpoints = [
        e
        for e in endpoints_of(organization).filter(
            is_active=True, payload_format=PayloadFormat.STANDARD
        )
        if e.wants(event_type)
    ]
    if not endpoints:
        return []
    moment = now()
    event_id = "evt_" + hashlib.sha256(key.encode()).hexdigest()[:32]
    payload = {"type": event_type, "timestamp": moment.isoformat(), "data": data}
    return _deliver(organization, endpoints, event_id, event_type, payload, moment)


def send_test_event(*, organization: Organization, endpoint: WebhookEndpoint) -> WebhookDelivery:
    moment = now()
    event_id = "evt_" + uuid.uuid4().hex
    data = {"message": "A test event from NPS Loop.", "endpoint_id": endpoint.pk}
    delivery = WebhookDelivery.objects.create(
        organization=organization,
        endpoint=endpoint,
        event_id=event_id,
        event_type=TEST_EVENT,
        payload=(
            delighted_payload(TEST_EVENT, event_id, data)
            if endpoint.payload_format == PayloadFormat.DELIGHTED
            else {"type": TEST_EVENT, "timestamp": moment.isoformat(), "data": data}
        ),
        next_attempt_at=moment,
        created_at=moment,
    )
    _enqueue(organization.pk, [delivery.pk])
    return delivery


def delivery_redeliver(*, organization: Organization, delivery: WebhookDelivery) -> None:
    """Sends a delivery again, whatever became of it, with a fresh set of attempts."""
    if not delivery.endpoint.is_active:
        raise ValidationError("The endpoint is disabled: enable it first, then redeliver.")
    moment = now()
    reset = (
        WebhookDelivery.objects.filter(organization=organization, pk=delivery.pk)
        .exclude(status=DeliveryStatus.SENDING, next_attempt_at__gt=moment)
        .update(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=moment)
    )
    if not reset:
        raise ValidationError("This delivery is being sent right now.")
    _enqueue(organization.pk, [delivery.pk])


def retry_delay(attempt: int, rng: random.Random | None = None) -> int | None:
    """Seconds before the next attempt after failed attempt `attempt` (1-based), or None
    when that was the last one."""
    if attempt >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[attempt - 1]
    jitter = (rng or random).uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    return max(1, min(int(base * jitter), retry_cap()))


def retry_cap() -> int:
    visibility = int(getattr(settings, "CELERY_BROKER_VISIBILITY_TIMEOUT", 3600))
    return max(1, visibility // 2)


def _lease() -> timedelta:
    """How long a claimed delivery stays `sending` before another worker may take it."""
    return timedelta(seconds=int(getattr(settings, "CELERY_TASK_TIME_LIMIT", 360)) + 60)


@dataclass
class SendOutcome:
    status: str  # a DeliveryStatus, or "skipped" when there was nothing to do
    retry_in: int | None = None


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_SIZE else text[: ERROR_SIZE - 1] + "…"


def delivery_send(*, organization: Organization, delivery_id: int) -> SendOutcome:
    """One attempt at one delivery, if it is due and nobody else is sending it."""
    moment = now()
    deliveries = WebhookDelivery.objects.filter(organization=organization, pk=delivery_id)
    claimed = deliveries.filter(
        Q(status=DeliveryStatus.PENDING)
        | Q(status=DeliveryStatus.RETRYING, next_attempt_at__lte=moment + EARLY_TOLERANCE)
        | Q(status=DeliveryStatus.SENDING, next_attempt_at__lt=moment)  # its worker died
    ).update(
        status=DeliveryStatus.SENDING,
        attempts=F("attempts") + 1,
        next_attempt_at=moment + _lease(),
    )
    if not claimed:
        return SendOutcome("skipped")
    delivery = deliveries.select_related("endpoint").get()
    endpoint = delivery.endpoint

    status_code, error, gone = None, "", False
    if not endpoint.is_active:
        return _finish(delivery, DeliveryStatus.FAILED, error="Not sent: the endpoint is disabled.")
    body = body_of(delivery.payload)
    headers = signed_headers(endpoint.secret, delivery.event_id, body)
    try:
        result = post_json(endpoint.url, body, headers)
    except UnsafeURL as exc:
        return _finish(delivery, DeliveryStatus.FAILED, error=f"Refused: {exc}")
    except HostNotFound as exc:
        error = str(exc)
    except requests.Timeout:
        error = f"No answer within {TIMEOUT_SECONDS} seconds."
    except requests.RequestException as exc:
        error = f"Could not connect: {exc.__class__.__name__}: {exc}"
    else:
        status_code = result.status_code
        if 200 <= status_code < 300:
            return _finish(delivery, DeliveryStatus.SUCCEEDED, status_code=status_code)
        if status_code == 410:
            gone = True
            error = "HTTP 410 Gone: the endpoint asked us to stop; it is now disabled."
        elif 300 <= status_code < 400:
            error = (
                f"HTTP {status_code}: redirect to {result.location or '(no Location)'} not "
                "followed. Point the endpoint at the final URL."
            )
        else:
            error = f"HTTP {status_code}: {result.body_preview}".strip().rstrip(":")
    if gone:
        endpoint_disable(
            organization=organization,
            endpoint=endpoint,
            reason=f"Answered 410 Gone on {moment:%Y-%m-%d %H:%M} UTC; sending stopped.",
        )
        return _finish(delivery, DeliveryStatus.FAILED, status_code=status_code, error=error)
    delay = retry_delay(delivery.attempts)
    if delay is None:
        return _finish(
            delivery,
            DeliveryStatus.FAILED,
            status_code=status_code,
            error=f"Gave up after {delivery.attempts} attempts. {error}",
        )
    return _finish(
        delivery, DeliveryStatus.RETRYING, status_code=status_code, error=error, retry_in=delay
    )


def _finish(delivery, status, *, status_code=None, error="", retry_in=None) -> SendOutcome:
    moment = now()
    fields = {
        "status": status,
        "last_status_code": status_code,
        "last_error": _truncate(error),
        "next_attempt_at": moment + timedelta(seconds=retry_in) if retry_in else None,
    }
    if status == DeliveryStatus.SUCCEEDED:
        fields["delivered_at"] = moment
    WebhookDelivery.objects.filter(
        organization_id=delivery.organization_id, pk=delivery.pk, status=DeliveryStatus.SENDING
    ).update(**fields)
    if status == DeliveryStatus.FAILED:
        logger.warning("Webhook delivery %s failed: %s", delivery.pk, fields["last_error"])
    return SendOutcome(status, retry_in)


def deliveries_requeue_stuck() -> int:
    """Re-queues deliveries whose message was lost: pending or retrying well past their
    time, or `sending` past the lease of a worker that died. Across every tenant."""
    moment = now()
    with scopes_disabled():
        stuck = WebhookDelivery.objects.filter(
            Q(
                status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
                next_attempt_at__lt=moment - STUCK_AFTER,
            )
            | Q(status=DeliveryStatus.SENDING, next_attempt_at__lt=moment)
        ).order_by("next_attempt_at")
        rows = list(stuck.values_list("pk", "organization_id", "status", "attempts")[:STUCK_BATCH])
        if not rows:
            return 0
        interrupted = "The previous attempt was interrupted (worker lost)."
        for pk, _, status, attempts in rows:
            if status != DeliveryStatus.SENDING:
                continue
            changes = (
                {
                    "status": DeliveryStatus.FAILED,
                    "next_attempt_at": None,
                    "last_error": interrupted,
                }
                if attempts >= MAX_ATTEMPTS
                else {"status": DeliveryStatus.RETRYING, "last_error": interrupted}
            )
            WebhookDelivery.objects.filter(
                pk=pk, status=DeliveryStatus.SENDING, next_attempt_at__lt=moment
            ).update(**changes)
        requeue = [
            (org_id, pk)
            for pk, org_id, status, attempts in rows
            if status != DeliveryStatus.SENDING or attempts < MAX_ATTEMPTS
        ]
        WebhookDelivery.objects.filter(
            pk__in=[pk for _, pk in requeue],
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
        ).update(next_attempt_at=moment)
    from responses.tasks import send_webhook_delivery

    for organization_id, pk in requeue:
        send_webhook_delivery.delay(organization_id, pk)
    if requeue:
        logger.info("Re-queued %d stuck webhook deliveries.", len(requeue))
    return len(requeue)
