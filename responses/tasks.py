"""Thin Celery tasks for responses: each takes ids and calls one service."""

import json
from functools import partial

from celery import shared_task
from django.db import transaction

from nps_platform import broker
from nps_platform.celery import tenant_task
from nps_platform.models import Organization
from responses import analysis, events, slack, webhooks
from responses.models import Response


@tenant_task(name="responses.announce", acks_late=True)
def announce_recorded(
    organization_id: int,
    created_ids: list[int],
    updated_ids: list[int],
    historical_ids: list[int],
) -> int:
    """Sends `events.response_recorded` for a committed batch, in the worker: the request
    that recorded it publishes this one message, and the receivers (follow-ups, analysis,
    webhooks, Slack, rollups, invitations) enqueue their own tasks from here. Each of those
    is idempotent, so a redelivered announcement changes nothing."""
    events.response_recorded.send(
        sender=Response,
        organization_id=organization_id,
        created_ids=created_ids,
        updated_ids=updated_ids,
        historical_ids=historical_ids,
    )
    return len(created_ids) + len(updated_ids)


def announce_recorded_on_commit(
    organization_id: int,
    created_ids: list[int],
    updated_ids: list[int],
    historical_ids: list[int],
) -> None:
    """Announces a recorded batch (`events.response_recorded`) once the transaction commits.

    With a Redis broker the batch joins the organization's announcement queue, and
    `responses.announce_queued` is published only when no drain of it is scheduled yet: at
    hundreds of answers a second, a request costs one Redis round trip instead of a Celery
    message, and the worker sends one event for many requests. In-process mode sends it at
    once, as `announce_recorded` does."""
    transaction.on_commit(
        partial(_announce, organization_id, created_ids, updated_ids, historical_ids)
    )


def _announcement_queue(organization_id: int) -> str:
    return f"nps:responses:announce:{organization_id}"


def _announce(organization_id, created_ids, updated_ids, historical_ids) -> None:
    if not broker.coalescing_available():
        announce_recorded.delay(organization_id, created_ids, updated_ids, historical_ids)
        return
    queue = _announcement_queue(organization_id)
    if broker.queue_push(queue, json.dumps([created_ids, updated_ids, historical_ids])):
        try:
            announce_queued.delay(organization_id)
        except BaseException:
            broker.queue_unschedule(queue)  # the next batch publishes it
            raise


# Ids per event when queued batches are merged: the size of the largest batch.
ANNOUNCE_MAX_IDS = 1000


@tenant_task(name="responses.announce_queued", acks_late=True)
def announce_queued(organization_id: int) -> None:
    """Sends `events.response_recorded` for the batches queued by
    announce_recorded_on_commit, merged into events of up to ANNOUNCE_MAX_IDS ids. A batch is
    announced at least once (a drain that dies is redone); the receivers are idempotent."""

    def send(items: list[str]) -> None:
        for created_ids, updated_ids, historical_ids in _merged(items):
            announce_recorded.run(organization_id, created_ids, updated_ids, historical_ids)

    if broker.queue_drain(_announcement_queue(organization_id), send):
        announce_queued.delay(organization_id)  # more than one run's share: go on in another


def _merged(items: list[str]):
    batch: tuple[list, list, list] = ([], [], [])
    for item in items:
        created_ids, updated_ids, historical_ids = json.loads(item)
        size = len(batch[0]) + len(batch[1])
        if size and size + len(created_ids) + len(updated_ids) > ANNOUNCE_MAX_IDS:
            yield batch
            batch = ([], [], [])
        batch[0].extend(created_ids)
        batch[1].extend(updated_ids)
        batch[2].extend(historical_ids)
    if batch[0] or batch[1]:
        yield batch


@tenant_task(name="responses.analyze", acks_late=True)  # lower priority: CELERY_TASK_ROUTES
def analyze_responses(organization_id: int, response_ids: list[int]) -> int:
    organization = Organization.objects.get(pk=organization_id)
    return analysis.responses_analyze(organization=organization, response_ids=response_ids)


# --- Webhooks -----------------------------------------------------------------------------


def _later(task, args: list, countdown: int) -> None:
    """Queues the next attempt. In-process mode (no broker) has no timer: running it at once
    would retry in a loop inside the request, so the delivery waits for the stuck-delivery
    sweep or the Redeliver button instead."""
    if task.app.conf.task_always_eager:
        return
    task.apply_async(args, countdown=countdown)


@tenant_task(name="responses.webhooks_fan_out", acks_late=True)
def webhooks_fan_out(organization_id: int, created_ids: list[int], updated_ids: list[int]) -> int:
    """Makes (idempotently) the deliveries for recorded responses and queues their sends."""
    organization = Organization.objects.get(pk=organization_id)
    made = webhooks.deliveries_fan_out(
        organization=organization, created_ids=created_ids, updated_ids=updated_ids
    )
    return len(made)


@tenant_task(name="responses.webhook_send", acks_late=True)
def send_webhook_delivery(organization_id: int, delivery_id: int) -> str:
    """One attempt; a second message for the same delivery finds it claimed and does nothing."""
    organization = Organization.objects.get(pk=organization_id)
    outcome = webhooks.delivery_send(organization=organization, delivery_id=delivery_id)
    if outcome.retry_in is not None:
        _later(send_webhook_delivery, [organization_id, delivery_id], outcome.retry_in)
    return outcome.status


@shared_task(name="responses.webhooks_requeue_stuck", acks_late=True)
def requeue_stuck_webhook_deliveries() -> int:
    """Beat: re-queues deliveries whose message was lost (every tenant)."""
    return webhooks.deliveries_requeue_stuck()


# --- Slack --------------------------------------------------------------------------------


@tenant_task(name="responses.slack_alerts", acks_late=True)
def queue_slack_alerts(organization_id: int, response_ids: list[int]) -> int:
    organization = Organization.objects.get(pk=organization_id)
    return slack.slack_alerts_queue(organization=organization, response_ids=response_ids)


@tenant_task(name="responses.slack_send", acks_late=True)
def send_slack_message(
    organization_id: int, payload: dict, dedupe: str | None, attempt: int = 1
) -> str:
    organization = Organization.objects.get(pk=organization_id)
    outcome = slack.message_post(
        organization=organization, payload=payload, dedupe=dedupe, attempt=attempt
    )
    if outcome.retry_in is not None:
        _later(
            send_slack_message, [organization_id, payload, dedupe, attempt + 1], outcome.retry_in
        )
    return outcome.status


# Registered here so workers that autodiscover `tasks` modules know it.
from responses.tasks_idempotency import purge_idempotency_keys  # noqa: E402, F401
