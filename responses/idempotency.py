"""Idempotency keys for the responses API: a client that retries a POST with the same
`Idempotency-Key` gets the first answer again instead of a second write.

A key belongs to one organization and lives 24 hours. The first request with a key claims
it: an IdempotencyKey row (in flight, with the request's fingerprint) is inserted and
committed at once, so a concurrent request with the same key finds it. The request is then
processed, and its answer (status and body) stored in the same transaction as its writes:
either both are kept or neither. Later requests with that key:

- the same fingerprint, answered: the stored status and body again (`replayed`);
- the same fingerprint, still in flight: IdempotencyKeyInFlight (409, retry later);
- another fingerprint: IdempotencyKeyReused (422, a client bug).

An answer of 4xx is stored like any other (the same request fails the same way). An
exception, or a 5xx, deletes the claim so a retry can proceed. A key older than 24 hours
is ignored (its row replaced), and `idempotency_keys_purge` deletes such rows.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils.timezone import now
from django_scopes import scopes_disabled
from psycopg.types.json import Jsonb

from nps_platform.models import Organization
from responses import services
from responses.models import IdempotencyKey

KEY_TTL = timedelta(hours=24)
# A claim still in flight after this long belongs to a request that died without cleaning
# up (a killed worker); requests time out long before (gunicorn: 30 s), so it is abandoned.
IN_FLIGHT_TIMEOUT = timedelta(minutes=5)
MAX_KEY_LENGTH = 255
_CLAIM_ATTEMPTS = 3


class IdempotencyError(Exception):
    """A request the key refuses; `status_code` and `code` say how to answer it."""

    status_code = 400
    code = "invalid"


class InvalidIdempotencyKey(IdempotencyError):
    pass


class IdempotencyKeyInFlight(IdempotencyError):
    status_code = 409
    code = "idempotency_key_in_flight"


class IdempotencyKeyReused(IdempotencyError):
    status_code = 422
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: Any
    replayed: bool = False


def clean_key(raw: str | None) -> str | None:
    """The key a client sent (None when it sent none); InvalidIdempotencyKey if unusable."""
    if raw is None:
        return None
    key = raw.strip()
    if not key:
        raise InvalidIdempotencyKey(
            "The Idempotency-Key header is empty: send 1 to 255 characters, such as a UUID, "
            "or leave the header out."
        )
    if not key.isprintable():
        raise InvalidIdempotencyKey("The Idempotency-Key holds control characters.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            f"The Idempotency-Key is {len(key)} characters long; the most is {MAX_KEY_LENGTH}."
        )
    return key


def canonical(body: Any) -> Any:
    """`body` as plain JSON values with every object's keys sorted: what is stored and sent,
    so an answer replayed from the database (PostgreSQL's jsonb reorders keys) is the same,
    byte for byte, as the first one. A NUL character (which jsonb cannot hold; an error
    message may quote a field name sent with one) becomes U+FFFD."""
    text = json.dumps(body, sort_keys=True, cls=DjangoJSONEncoder)
    if "\\u0000" in text:
        text = json.dumps(_without_nul(json.loads(text)), sort_keys=True)
    return json.loads(text)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def idempotent(
    *,
    organization: Organization,
    key: str | None,
    request_hash: str | None,
    process: Callable[[], tuple[int, Any]],
) -> Answer:
    """Runs `process` (returning status and JSON body) at most once per organization and key.

    Without a key, simply runs it. Raises IdempotencyKeyInFlight or IdempotencyKeyReused
    for a request that must not run. Call it outside any transaction: the claim must be
    committed before processing starts for a concurrent request to see it.
    """
    if key is None:
        status_code, body = process()
        return Answer(status_code, body)
    claimed = _claim(organization, key, request_hash)
    if isinstance(claimed, Answer):
        return claimed
    try:
        with transaction.atomic():
            status_code, body = process()
            body = canonical(body)
            if status_code >= 500:
                IdempotencyKey.objects.filter(organization=organization, pk=claimed.pk).delete()
            else:
                _store_answer(organization, claimed.pk, status_code, body)
    except BaseException:
        _release(organization, claimed)
        raise
    return Answer(status_code, body)


def _claim(organization: Organization, key: str, request_hash: str) -> IdempotencyKey | Answer:
    """Our new in-flight row for the key, or the stored answer to replay."""
    for _ in range(_CLAIM_ATTEMPTS):
        row = IdempotencyKey(
            organization=organization,
            key=key,
            request_hash=request_hash,
            in_flight=True,
            created_at=now(),
        )
        try:
            # Its own transaction, committed at once so a concurrent request sees it (under
            # an outer transaction, as in tests, a savepoint keeps a unique violation from
            # spoiling it).
            if connection.vendor == "postgresql" and not connection.in_atomic_block:
                _insert_claim_at_once(row)
            else:
                with transaction.atomic():
                    _insert_claim(row)
            return row
        except IntegrityError:
            pass  # The key is taken: by an answer, a request in flight, or an old claim.
        existing = IdempotencyKey.objects.filter(organization=organization, key=key).first()
        if existing is None:
            continue  # Released or purged in between: claim again.
        if _is_stale(existing):
            IdempotencyKey.objects.filter(organization=organization, pk=existing.pk).delete()
            continue
        if existing.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different request in the last "
                "24 hours; send a new key for a new request."
            )
        if existing.in_flight:
            raise IdempotencyKeyInFlight(
                "A request with this Idempotency-Key is still being processed; retry in a "
                "moment to get its answer."
            )
        return Answer(existing.status_code, canonical(existing.body), replayed=True)
    raise IdempotencyKeyInFlight(
        "Requests with this Idempotency-Key are competing; retry in a moment."
    )


# On PostgreSQL the two statements every keyed request runs are prepared once per
# connection (services.prepared_cursor): through the ORM, building them cost more CPU than
# recording the answer.
_CLAIM_SQL = """
INSERT INTO responses_idempotencykey (organization_id, key, request_hash, in_flight, created_at)
VALUES (%s, %s, %s, true, %s) RETURNING id
"""
_ANSWER_SQL = """
UPDATE responses_idempotencykey SET in_flight = false, status_code = %s, body = %s
WHERE organization_id = %s AND id = %s
"""


def _insert_claim(row: IdempotencyKey) -> None:
    """row.save(force_insert=True) for a new in-flight claim."""
    if connection.vendor != "postgresql":
        row.save(force_insert=True)
        return
    with services.prepared_cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [row.organization_id, row.key, row.request_hash, row.created_at])
        (row.pk,) = cursor.fetchone()
    row._state.adding = False
    row._state.db = connection.alias


def _store_answer(organization: Organization, pk: int, status_code: int, body: Any) -> None:
    if connection.vendor != "postgresql":
        IdempotencyKey.objects.filter(organization=organization, pk=pk).update(
            in_flight=False, status_code=status_code, body=body
        )
        return
    with services.prepared_cursor() as cursor:
        cursor.execute(_ANSWER_SQL, [status_code, Jsonb(body), organization.pk, pk])


# The claim's own transaction in one round trip: PostgreSQL runs the statements of one
# message as one transaction. SET LOCAL lets its commit return before its WAL reaches disk.
# Visibility to other sessions is immediate either way; only durability waits. That is
# safe here: the processing transaction that follows commits synchronously, which flushes
# the WAL up to it, claim included. A crash before then loses only the claim of a request
# that recorded nothing, and the client's retry then runs afresh, as it should. It saves
# a disk flush per keyed request.
_CLAIM_AT_ONCE_SQL = "SET LOCAL synchronous_commit TO OFF; " + _CLAIM_SQL


def _insert_claim_at_once(row: IdempotencyKey) -> None:
    """_insert_claim outside any transaction, on PostgreSQL: BEGIN, the INSERT and COMMIT
    travel together."""
    with connection.cursor() as cursor:  # binds parameters here: several statements at once
        cursor.execute(
            _CLAIM_AT_ONCE_SQL, [row.organization_id, row.key, row.request_hash, row.created_at]
        )
        cursor.cursor.nextset()
        (row.pk,) = cursor.fetchone()
    row._state.adding = False
    row._state.db = connection.alias


def _is_stale(row: IdempotencyKey) -> bool:
    age = now() - row.created_at
    return age >= KEY_TTL or (row.in_flight and age >= IN_FLIGHT_TIMEOUT)


def _release(organization: Organization, claimed: IdempotencyKey) -> None:
    """Forgets our claim after a failure, so a retry with the key is processed afresh."""
    IdempotencyKey.objects.filter(organization=organization, pk=claimed.pk).delete()


def idempotency_keys_purge(*, older_than: timedelta = KEY_TTL) -> int:
    """Deletes every organization's keys older than `older_than` (24 h); returns how many.

    A system task across tenants: scopes are disabled because the rule (age) is the same
    for every organization and the rows are deleted, never read or shown.
    """
    with scopes_disabled():
        deleted, _ = IdempotencyKey.objects.filter(created_at__lt=now() - older_than).delete()
    return deleted
