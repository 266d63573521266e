"""Django's PostgreSQL backend, with a health check that skips a connection in steady use.

With CONN_HEALTH_CHECKS, Django starts each request's first query with `SELECT 1`, a round
trip per request, to catch a persistent connection the server closed while it sat in the
pool. A connection whose previous request ended less than IDLE_BEFORE_CHECK seconds before
this one began was working a moment ago, so it is checked only when it has sat idle
longer. If the server dropped it within that moment anyway, the request's query fails,
Django marks the connection as errored, and closes it when the request ends (its own
check after an error), as it does for a connection that breaks mid-request.
"""

import time

from django.db.backends.postgresql import base

IDLE_BEFORE_CHECK = 5.0  # seconds


class DatabaseWrapper(base.DatabaseWrapper):
    _boundary: float | None = None  # when the last request (or task) began or ended
    _idle: float | None = None  # how long the connection sat unused before this request

    def close_if_unusable_or_obsolete(self):
        # Django calls this as each request (and Celery task) begins and ends.
        super().close_if_unusable_or_obsolete()
        moment = time.monotonic()
        if self.connection is None:
            self._boundary = self._idle = None
            return
        self._idle = None if self._boundary is None else moment - self._boundary
        self._boundary = moment

    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and not self.health_check_done
            and self._idle is not None
            and self._idle < IDLE_BEFORE_CHECK
        ):
            self.health_check_done = True
        return super().close_if_health_check_failed()
