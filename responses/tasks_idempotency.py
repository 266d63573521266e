"""Periodic housekeeping for idempotency keys. Thin: it calls one service.

Not a tenant task: it purges every organization's expired keys at once (the service
disables scopes for that, see `idempotency.idempotency_keys_purge`).
"""

from celery import shared_task

from responses import idempotency


@shared_task(acks_late=True)
def purge_idempotency_keys() -> int:
    return idempotency.idempotency_keys_purge()
