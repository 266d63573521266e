"""Array literals for hand-written PostgreSQL statements read back as the values they hold."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils.timezone import now

from nps_platform.sql import pg_array

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="array literals are PostgreSQL's"
)


@on_postgresql
@pytest.mark.parametrize(
    ("values", "cast"),
    [
        (['a"b', "c\\d", "{,}", " spaced ", "NULL", "", "émoji 🎉", "tab\there"], "text[]"),
        ([1, 22, 2**62], "bigint[]"),
        ([3, None, 10], "smallint[]"),
    ],
)
def test_it_passes_arrays_to_postgresql_as_literals_that_read_back_the_same(values, cast):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{cast}", [pg_array(values)])
        assert cursor.fetchone()[0] == values


@on_postgresql
def test_it_passes_aware_moments_in_an_array_literal():
    moments = [now(), now() - timedelta(days=3, microseconds=7), now()]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz[]", [pg_array(moments)])
        assert cursor.fetchone()[0] == moments


def test_it_refuses_naive_moments_and_other_values_in_an_array():
    with pytest.raises(ValueError, match="aware"):
        pg_array([datetime(2026, 1, 1)])  # noqa: DTZ001 (the point: a naive one)
    with pytest.raises(TypeError, match="not True"):
        pg_array([True])
