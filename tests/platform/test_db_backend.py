"""The PostgreSQL backend's health check: skipped for a connection in steady use, done for
one that sat idle (and then it replaces a connection the server dropped)."""

import psycopg
import pytest
from django.db import close_old_connections, connection, connections

from nps_platform.postgresql import base

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's backend"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def checks(monkeypatch):
    seen = []
    real = base.DatabaseWrapper.is_usable

    def is_usable(self):
        seen.append(self.alias)
        return real(self)

    monkeypatch.setattr(base.DatabaseWrapper, "is_usable", is_usable)
    return seen


def a_request():
    """What Django does around a request: close_old_connections as it begins and ends."""
    close_old_connections()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    close_old_connections()
    return pid


def test_it_skips_the_health_check_for_a_connection_in_steady_use(checks):
    assert isinstance(connections["default"], base.DatabaseWrapper)
    connection.ensure_connection()
    first = a_request()
    checks.clear()
    assert [a_request() for _ in range(3)] == [first] * 3
    assert checks == []


def test_it_checks_a_connection_that_sat_idle_and_replaces_a_dropped_one(checks, monkeypatch):
    connection.ensure_connection()
    first = a_request()
    monkeypatch.setattr(base, "IDLE_BEFORE_CHECK", 0.0)  # as if it had sat idle long enough
    with psycopg.connect(
        **{k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"},
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [first])
    checks.clear()
    second = a_request()
    assert checks == ["default"]
    assert second != first
