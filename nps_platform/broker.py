"""The Celery broker transport: kombu's Redis transport, with one Redis client per channel.

kombu builds a new redis-py client for every message it publishes. The connection comes
from a pool either way, but building the client (its table of reply parsers) costs about a
millisecond of CPU, several times the LPUSH itself; a recorded response publishes one task
per receiver of `response_recorded`. A redis-py client over a connection pool is
thread-safe, so the channel keeps one (settings.CELERY_BROKER_TRANSPORT names this class).
"""

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
