"""Follow-up events: `followup.created`, `followup.status_changed` and `followup.closed`.

Each is sent as a Django signal (for apps that depend on this one) and, on commit, to the
organization's outbound webhooks through the responses app's signed sender.

`loop_changed(organization_id, followup_ids)` is sent once per committed transaction that
changed what the loop figures read of some follow-ups (opening, re-planning, first contact,
status, closing): the ids of all of them, for insights to recount.
"""

from django.db import transaction
from django.dispatch import Signal
from django_scopes import scope

from nps_platform.signals import OnCommitBatch

followup_event = Signal()  # kwargs: organization_id, followup_id, event
loop_changed = Signal()  # kwargs: organization_id, followup_ids

_loop_batch = OnCommitBatch(loop_changed, "followup_ids")


def loop_changed_on_commit(organization_id: int, followup_ids) -> None:
    """Sends `loop_changed` for these follow-ups when the transaction commits, batched: one
    signal per organization and transaction, however many changes it makes."""
    _loop_batch.add(organization_id, followup_ids)


def payload(followup) -> dict:
    return {
        "id": followup.pk,
        "response_id": followup.response_id,
        "account_id": followup.account_id,
        "contact_id": followup.contact_id,
        "playbook": followup.playbook,
        "status": followup.status,
        "priority": followup.priority,
        "assignee": followup.assignee.email if followup.assignee_id else None,
        "due_at": followup.due_at.isoformat() if followup.due_at else None,
        "outcome": followup.outcome or None,
        "closed_at": followup.closed_at.isoformat() if followup.closed_at else None,
    }


def emit(*, organization, followup, event: str) -> None:
    data = payload(followup)
    stamp = followup.updated_at.isoformat() if followup.updated_at else ""

    def send():
        from responses import webhooks

        # On commit the request's scope may be gone (a task, a public page): enter ours.
        with scope(organization=organization):
            _send(webhooks)

    def _send(webhooks):
        followup_event.send(
            sender=followup.__class__,
            organization_id=organization.pk,
            followup_id=followup.pk,
            event=event,
        )
        webhooks.event_emit(
            organization=organization,
            event_type=event,
            key=f"{event}:{followup.pk}:{followup.status}:{stamp}",
            data=data,
        )

    transaction.on_commit(send)


def emit_many(*, organization, followups, event: str) -> None:
    """emit() for a batch: one look at the webhook endpoints for all of them (none want
    the event: no query per follow-up)."""
    items = [
        (f.pk, payload(f), f.updated_at.isoformat() if f.updated_at else "", f.status)
        for f in followups
    ]
    if not items:
        return

    def send():
        from responses import webhooks

        for followup_id, *_ in items:
            followup_event.send(
                sender=followups[0].__class__,
                organization_id=organization.pk,
                followup_id=followup_id,
                event=event,
            )
        active = webhooks.endpoints_of(organization).filter(is_active=True)
        if not any(endpoint.wants(event) for endpoint in active):
            return
        for followup_id, data, stamp, status in items:
            webhooks.event_emit(
                organization=organization,
                event_type=event,
                key=f"{event}:{followup_id}:{status}:{stamp}",
                data=data,
            )

    transaction.on_commit(send)
