"""Thin task wrappers around insights.services."""

from insights import services
from nps_platform.celery import app, tenant_task


@tenant_task(name="insights.rollup_responses", acks_late=True)
def rollup_responses(organization_id, response_ids):
    """Recomputes the rollup days these responses touch (idempotent)."""
    services.rollup_responses(organization_id, response_ids)


@tenant_task(name="insights.rollup_followups", acks_late=True)
def rollup_followups(organization_id, followup_ids):
    """Rewrites the loop rows of these follow-ups (idempotent)."""
    services.rollup_followups(organization_id, followup_ids=followup_ids)


@tenant_task(name="insights.rollup_invitations", acks_late=True)
def rollup_invitations(organization_id, invitation_ids=(), days=()):
    """Recounts the invitation days of these invitations, and these days given as ISO
    dates (idempotent)."""
    from datetime import date

    services.rollup_invitations(
        organization_id,
        invitation_ids=invitation_ids,
        days=[date.fromisoformat(d) for d in days],
    )


@tenant_task(name="insights.rollup_days", acks_late=True)
def rollup_days(organization_id, days):
    """Recomputes the rollup of these days, given as ISO dates (idempotent)."""
    from datetime import date

    services.rollup_days(organization_id, [date.fromisoformat(d) for d in days])


@app.task(name="insights.rebuild_all", acks_late=True)
def rebuild_all():
    """Nightly exact rebuild of every organization's rollup, one task per organization."""
    from nps_platform.models import Organization

    for organization_id in Organization.objects.values_list("pk", flat=True):
        rebuild.delay(organization_id)


@tenant_task(name="insights.rebuild", acks_late=True)
def rebuild(organization_id):
    services.rollup_rebuild(organization_id)


@tenant_task(name="insights.weekly_digest", acks_late=True)
def weekly_digest(organization_id: int) -> int:
    """Last week's digest to the organization's executives; sends a week only once."""
    from insights import digest
    from nps_platform.models import Organization

    organization = Organization.objects.get(pk=organization_id)
    return digest.weekly_digest_send(organization=organization)


@app.task(name="insights.weekly_digest_sweep", acks_late=True)
def weekly_digest_sweep() -> int:
    """Beat entry point: one weekly_digest task per organization. A system task across
    tenants: it only lists organization ids."""
    from nps_platform.models import Organization

    ids = list(Organization.objects.values_list("pk", flat=True))
    for organization_id in ids:
        weekly_digest.delay(organization_id)
    return len(ids)
