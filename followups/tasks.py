"""Thin Celery tasks for follow-ups: ids in, one service call."""

from django_scopes import scopes_disabled

from followups import services
from nps_platform.celery import app, tenant_task
from nps_platform.models import Organization


@tenant_task(name="followups.open", acks_late=True)
def open_followups(organization_id: int, response_ids: list[int]) -> list[int]:
    organization = Organization.objects.get(pk=organization_id)
    return services.followups_open_for_responses(
        organization=organization, response_ids=response_ids
    )


@tenant_task(name="followups.escalate", acks_late=True)
def escalate_overdue(organization_id: int) -> list[int]:
    organization = Organization.objects.get(pk=organization_id)
    return services.followups_escalate_overdue(organization=organization)


@tenant_task(name="followups.digest", acks_late=True)
def send_digests(organization_id: int) -> int:
    organization = Organization.objects.get(pk=organization_id)
    return services.digests_send(organization=organization)


@app.task(name="followups.sweep", acks_late=True)
def sweep(kind: str) -> int:
    """Beat entry point: fan a per-organization task out to every organization.
    A system task across tenants: it only lists organization ids."""
    task = {"escalate": escalate_overdue, "digest": send_digests}[kind]
    with scopes_disabled():
        ids = list(Organization.objects.values_list("pk", flat=True))
    for organization_id in ids:
        task.delay(organization_id)
    return len(ids)
