"""Thin Celery tasks for responses: each takes ids and calls one service."""

from celery import shared_task

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
