"""Thin Celery tasks for the send scheduler: each takes ids and calls one service.

Beat runs `surveys.tick` (planning, every 15 minutes) and `surveys.dispatch_tick` (sending,
every minute); both only list who has work and enqueue a tenant task per organization or
programme, which does the work inside that tenant's scope.
"""

from celery import shared_task
from django.utils.timezone import now
from django_scopes import scopes_disabled

from nps_platform.celery import tenant_task
from nps_platform.models import Organization
from surveys import scheduler
from surveys.models import Programme

DISPATCH_BATCH = 200
EAGER_DISPATCH_ROUNDS = 50  # in-process mode: batches sent in one call, with no broker


@shared_task(name="surveys.tick", acks_late=True)
def tick() -> int:
    """Beat: enqueues planning for every active programme, and the reminders."""
    # A system task: beat names no tenant, so listing which organizations have active
    # programmes has to look across all of them. Only this listing runs unscoped; the work
    # is done by the tenant tasks, each inside its own organization's scope.
    with scopes_disabled():
        pairs = list(
            Programme.objects.filter(is_active=True, survey__is_active=True, channel_email=True)
            .order_by("organization_id", "pk")
            .values_list("organization_id", "pk")
        )
        reminding = sorted(
            set(
                Programme.objects.filter(
                    is_active=True, reminder_after_days__isnull=False
                ).values_list("organization_id", flat=True)
            )
        )
    for organization_id, programme_id in pairs:
        plan_programme.delay(organization_id, programme_id)
    for organization_id in reminding:
        plan_reminders.delay(organization_id)
    return len(pairs)


@tenant_task(name="surveys.plan_programme", acks_late=True)
def plan_programme(organization_id: int, programme_id: int) -> int:
    organization = Organization.objects.get(pk=organization_id)
    programme = (
        Programme.objects.filter(organization=organization, pk=programme_id)
        .select_related("survey", "segment")
        .first()
    )
    if programme is None:  # deleted since the tick
        return 0
    report = scheduler.programme_plan(organization=organization, programme=programme)
    return report.planned


@shared_task(name="surveys.dispatch_tick", acks_late=True)
def dispatch_tick() -> int:
    """Beat: enqueues a dispatcher for every organization with invitations due."""
    # A system task, like tick: the listing of organizations with due invitations spans
    # tenants; each dispatcher runs in its own organization's scope.
    with scopes_disabled():
        organization_ids = list(
            scheduler.organizations_with_due(now()).values_list("pk", flat=True)
        )
    for organization_id in organization_ids:
        dispatch_due.delay(organization_id)
    return len(organization_ids)


@tenant_task(name="surveys.dispatch_due", acks_late=True)
def dispatch_due(organization_id: int, batch: int = DISPATCH_BATCH) -> int:
    """Sends one batch of due invitations and re-enqueues itself while more are due. Two
    of these may run at once: each invitation is claimed by compare-and-set."""
    organization = Organization.objects.get(pk=organization_id)
    sent = 0
    for _ in range(EAGER_DISPATCH_ROUNDS):
        report = scheduler.invitations_dispatch(organization=organization, batch=batch)
        sent += report.sent
        if not report.more:
            break
        if not dispatch_due.app.conf.task_always_eager:
            dispatch_due.delay(organization_id, batch)
            break
        # In-process mode has no broker to hand the next batch to: loop here (bounded).
    return sent


@tenant_task(name="surveys.plan_reminders", acks_late=True)
def plan_reminders(organization_id: int) -> int:
    organization = Organization.objects.get(pk=organization_id)
    return scheduler.reminders_plan(organization=organization)


@tenant_task(name="surveys.mark_answered", acks_late=True)
def mark_answered(organization_id: int, response_ids: list[int]) -> int:
    organization = Organization.objects.get(pk=organization_id)
    return scheduler.invitations_mark_answered(organization=organization, response_ids=response_ids)
