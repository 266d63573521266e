"""The Celery broker transport: kombu's Redis transport, with one Redis client per channel.

kombu builds a new redis-py client for every message it publishes. The connection comes
from a pool either way, but building the client (its table of reply parsers) costs about a
millisecond of CPU, several times the LPUSH itself; a recorded response publishes one task
per receiver of `response_recorded`. A redis-py client over a connection pool is
thread-safe, so the channel keeps one (settings.CELERY_BROKER_TRANSPORT names this class).

Below it, coalesced work queues: many requests add items, one task handles them.
"""

import functools
import logging
import threading
from collections.abc import Callable

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:  # the worker's BRPOP client: one per channel already
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


# --- Coalesced work queues ----------------------------------------------------------------
#
# Many requests each add an item; one task at a time handles what has gathered. A request
# pays one Redis round trip (RPUSH, and SET NX of the queue's "scheduled" mark) instead of
# publishing a Celery message, which costs several times more CPU in Celery's message
# building; the task is published only by the request that set the mark. Items are handed
# over at least once: a drain moves them to the queue's "processing" list before handling
# them and removes them after, and the next drain of the queue handles whatever a drain that
# died or failed left there, once more (items that fail again are logged and dropped, so
# one that always fails cannot block the queue). Handlers must therefore be idempotent.

logger = logging.getLogger(__name__)

# Longer than a drain waits in the Celery queue and runs: while set, no request publishes.
# If it expires under a long backlog, a second drain runs alongside; items still go to one
# of them (each chunk is taken atomically).
SCHEDULED_SECONDS = 600
_TAKE = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
    redis.call('LTRIM', KEYS[1], #items, -1)
    redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""
_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def coalescing_available() -> bool:
    """Whether tasks go to a Redis broker (not run in-process), so queues can be used."""
    from nps_platform.celery import app

    return not app.conf.task_always_eager and _broker_url().startswith(("redis://", "rediss://"))


@functools.cache
def _broker_url() -> str:
    from nps_platform.celery import app

    return app.conf.broker_url or ""


def redis_client(url: str) -> redis.Redis:
    """One redis-py client per process and server URL (it pools its connections and is
    thread-safe): building one per call, as Django's cache backend does, costs more than
    the command itself. Used by these queues and by the API's rate limit."""
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            # Once only: a client that lost the race would close its pool, under a thread
            # still using one of its connections, when collected.
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = redis.Redis.from_url(url)
    return client


def _client() -> redis.Redis:
    return redis_client(_broker_url())


def queue_push(queue: str, item: str) -> bool:
    """Appends `item` to `queue`; True when the caller must publish the queue's drain task
    (none was scheduled), False when a scheduled drain will take it."""
    pipe = _client().pipeline(transaction=False)
    pipe.rpush(queue, item)
    pipe.set(f"{queue}:scheduled", 1, nx=True, ex=SCHEDULED_SECONDS)
    _, scheduled_now = pipe.execute()
    return bool(scheduled_now)


def queue_unschedule(queue: str) -> None:
    """Forgets the scheduled mark (its task could not be published): the next push
    publishes again."""
    _client().delete(f"{queue}:scheduled")


def queue_drain(
    queue: str, handle: Callable[[list[str]], None], *, chunk: int = 100, max_chunks: int = 50
) -> bool:
    """Hands the queue's items to `handle`, `chunk` at a time and in order, then clears the
    scheduled mark. Returns True when items remain after `max_chunks` chunks (the mark is
    kept: the caller publishes the drain again, so one task never runs unbounded)."""
    client = _client()
    processing, scheduled = f"{queue}:processing", f"{queue}:scheduled"
    leftovers = client.lrange(processing, 0, -1)
    if leftovers:  # taken by a drain that died or failed before it was done: once more
        try:
            _handle(leftovers, handle)
        except Exception:
            # Twice is enough: an item that always fails must not hold up the queue.
            logger.exception("Dropped %d items of %s that failed twice.", len(leftovers), queue)
        _release(client, processing, leftovers)
    take = client.register_script(_TAKE)
    for _ in range(max_chunks):
        items = take(keys=[queue, processing], args=[chunk])
        if items:
            try:
                _handle(items, handle)
            except Exception:
                client.delete(scheduled)  # the next push schedules a drain, which retries them
                raise
            _release(client, processing, items)
            continue
        client.delete(scheduled)
        # An item pushed after our last take, by a request that saw the mark still set:
        # take the mark again and go on (or a newer request took it and published).
        if not client.llen(queue) or not client.set(scheduled, 1, nx=True, ex=SCHEDULED_SECONDS):
            return False
    return True


def _handle(items: list, handle) -> None:
    handle([item.decode() if isinstance(item, bytes) else item for item in items])


def _release(client, processing: str, items: list) -> None:
    pipe = client.pipeline(transaction=False)
    for item in items:
        pipe.lrem(processing, 1, item)
    pipe.execute()
