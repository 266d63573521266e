"""Background work for accounts. Tasks are thin: they take IDs and call one service."""

from accounts import imports
from nps_platform.celery import tenant_task


# A large file takes longer than the default time limits; these stay well below the
# broker's visibility timeout (CELERY_VISIBILITY_TIMEOUT, an hour) all the same.
@tenant_task(name="accounts.run_import", acks_late=True, soft_time_limit=1200, time_limit=1260)
def run_import(organization_id: int, import_id: int) -> None:
    """Runs a queued CSV import (see imports.import_run: claiming it makes a second
    delivery of a finished job a no-op, and a redelivered running one runs again)."""
    imports.import_run(organization_id=organization_id, import_id=import_id)
