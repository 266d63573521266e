"""The Celery app, and the base task every tenant task uses.

Reliability settings (acks_late, reject on worker lost, prefetch 1, time limits below the
Redis visibility timeout, JSON only) and the beat schedule live in settings.py as CELERY_*.
"""

import os

from celery import Celery
from celery.contrib.django.task import DjangoTask
from django_scopes import scope

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nps_platform.settings")

app = Celery("nps_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class TenantTask(DjangoTask):
    """A task whose first argument is `organization_id`; its body runs in that tenant's scope.

    Enqueue with `delay_on_commit(organization_id, …)` so a rolled-back transaction
    enqueues nothing and the worker never reads rows that are not committed yet.
    """

    abstract = True
    acks_late = True

    def __call__(self, organization_id, *args, **kwargs):
        if not organization_id:
            # django-scopes treats a None value as "no filter": refuse instead of leaking.
            raise ValueError(f"{self.name} needs an organization_id, got {organization_id!r}")
        with scope(organization=organization_id):
            return super().__call__(organization_id, *args, **kwargs)


def tenant_task(*args, **options):
    """`@tenant_task(...)` declares a task that takes `organization_id` first."""
    return app.task(*args, base=TenantTask, **options)
