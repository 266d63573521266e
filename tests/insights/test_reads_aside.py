"""On PostgreSQL, outside a transaction, the dashboard runs some reads on a second
connection in a thread: the figures are the same as when every read runs in turn, an
error in a read set aside reaches the caller, and the thread is gone when the dashboard
returns. (The tests commit their data, so the second connection sees it.)"""

import datetime
import threading

import pytest
from django.db import connection, transaction
from django_scopes import scope, scopes_disabled

from insights import metrics, selectors, services
from responses.models import Response
from tests.accounts.factories import SegmentFactory
from tests.insights.factories import FollowUpFactory
from tests.insights.test_metrics import MAY, accounts_world

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="reads run aside on PostgreSQL only"
    ),
]


@pytest.fixture
def world(org_a):
    """Three accounts' answers in May, a segment, and a follow-up of each detractor
    answer, contacted after 2, 4, … hours and closed twice as late."""
    accounts_world(org_a)
    SegmentFactory(organization=org_a, name="Everyone")
    with scopes_disabled():
        detractors = Response.objects.filter(organization=org_a, score__lte=6).order_by("pk")
        for hours, response in enumerate(detractors, start=1):
            FollowUpFactory(
                response=response,
                first_contact_at=response.submitted_at + datetime.timedelta(hours=2 * hours),
                closed_at=response.submitted_at + datetime.timedelta(hours=4 * hours),
                status="closed",
                outcome="resolved",
            )
    with scope(organization=org_a.pk):
        services.rollup_rebuild(org_a.pk)
    return org_a


@pytest.fixture
def aside_threads(monkeypatch):
    """The names of the threads that ran reads set aside."""
    names = []
    run = selectors._Aside.run

    def spying(self):
        names.append(threading.current_thread().name)
        return run(self)

    monkeypatch.setattr(selectors._Aside, "run", spying)
    return names


def dashboard(org):
    with scope(organization=org.pk):
        return metrics.dashboard(org, MAY)


def test_it_computes_the_same_figures_with_reads_aside(world, settings, aside_threads):
    settings.DASHBOARD_READS_ASIDE = False
    in_turn = dashboard(world)
    assert aside_threads == []
    settings.DASHBOARD_READS_ASIDE = True
    aside = dashboard(world)
    assert set(aside_threads) == {"insights-reads-aside"}
    assert aside == in_turn
    assert aside.loop.median_hours_to_first_contact is not None
    assert [row.name for row in aside.segments] == ["Everyone"]
    assert not [t for t in threading.enumerate() if t.name == "insights-reads-aside"]


def test_it_hands_an_error_of_a_read_aside_to_the_caller(world, monkeypatch, aside_threads):
    def failing(rows):
        raise RuntimeError("the medians failed")

    monkeypatch.setattr(selectors, "_loop_medians_rollup", failing)
    with pytest.raises(RuntimeError, match="the medians failed"):
        dashboard(world)
    assert aside_threads
    assert not [t for t in threading.enumerate() if t.name == "insights-reads-aside"]


def test_it_reads_in_turn_inside_a_transaction(world, aside_threads):
    with transaction.atomic():
        dashboard(world)
    assert aside_threads == []
