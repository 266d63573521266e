"""Periodic housekeeping for the platform. Tasks are thin: they call one service."""

from celery import shared_task

from nps_platform import services


@shared_task(acks_late=True)
def purge_expired_teammate_invitations() -> int:
    return services.invitations_purge_expired()
