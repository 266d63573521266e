"""Thin Celery tasks for responses: each takes ids and calls one service."""

from nps_platform.celery import tenant_task
from nps_platform.models import Organization
from responses import analysis


@tenant_task(name="responses.analyze", acks_late=True)
def analyze_responses(organization_id: int, response_ids: list[int]) -> int:
    organization = Organization.objects.get(pk=organization_id)
    return analysis.responses_analyze(organization=organization, response_ids=response_ids)
