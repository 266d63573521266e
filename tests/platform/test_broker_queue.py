"""Coalesced work queues on the Redis broker (nps_platform.broker): many pushes, one drain
scheduled at a time, every item handed over at least once and in order."""

import os
import uuid

import pytest
import redis

from nps_platform import broker
from nps_platform.celery import app as celery_app

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")


@pytest.fixture
def queue():
    name = f"nps:test:queue:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    client.delete(name, f"{name}:scheduled", f"{name}:processing")


def test_it_asks_for_one_drain_however_many_items_arrive(queue):
    assert broker.queue_push(queue, "a") is True
    assert broker.queue_push(queue, "b") is False
    assert broker.queue_push(queue, "c") is False


def test_it_hands_every_item_over_in_order_and_clears_the_mark(queue):
    for item in "abcde":
        broker.queue_push(queue, item)
    handled = []
    more = broker.queue_drain(queue, handled.append, chunk=2)
    assert not more
    assert handled == [["a", "b"], ["c", "d"], ["e"]]
    assert broker.queue_push(queue, "f") is True  # nothing scheduled any more


def test_it_hands_over_again_what_a_failed_drain_had_taken(queue):
    for item in "abc":
        broker.queue_push(queue, item)

    def crash(items):
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError):
        broker.queue_drain(queue, crash, chunk=2)
    handled = []
    broker.queue_drain(queue, handled.append, chunk=2)
    assert sum(handled, []) == ["a", "b", "c"]


def test_it_drops_items_that_fail_twice_and_goes_on(queue, caplog):
    for item in "abc":
        broker.queue_push(queue, item)

    def crash(items):
        raise RuntimeError("bad item")

    with pytest.raises(RuntimeError):
        broker.queue_drain(queue, crash, chunk=2)
    assert broker.queue_push(queue, "d") is True  # a failed drain unschedules itself
    handled = []

    def crash_on_a(items):
        if "a" in items:
            raise RuntimeError("bad item")
        handled.append(items)

    assert broker.queue_drain(queue, crash_on_a, chunk=5) is False
    assert handled == [["c", "d"]]
    assert "failed twice" in caplog.text
    broker.queue_drain(queue, handled.append)
    assert handled == [["c", "d"]]  # nothing left, not even in processing


def test_it_stops_after_its_share_and_keeps_the_mark(queue):
    for item in "abcde":
        broker.queue_push(queue, item)
    handled = []
    assert broker.queue_drain(queue, handled.append, chunk=2, max_chunks=1) is True
    assert handled == [["a", "b"]]
    assert broker.queue_push(queue, "f") is False  # the caller publishes the next run
    broker.queue_drain(queue, handled.append, chunk=10)
    assert handled[-1] == ["c", "d", "e", "f"]


def test_it_is_off_when_tasks_run_in_process(settings):
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        assert broker.coalescing_available() is False
    finally:
        celery_app.conf.task_always_eager = previous
