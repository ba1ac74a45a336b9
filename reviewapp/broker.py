"""The Celery broker transport: kombu's Redis transport, made to survive a Redis restart.

When the connection to Redis drops, kombu closes the connection object (the transport's `client`
becomes None) before the channel hands its unacknowledged messages back to the queue. Doing that
needs the server's address, read from `client`, so the worker died with AttributeError
("'NoneType' object has no attribute 'hostname'") instead of reconnecting (celery and kombu
5.7.0). A worker always holds unacknowledged messages (countdown tasks such as each answer's
resolution, and acks_late tasks it is running), so every Redis restart stopped every worker.

This channel remembers the connection it was opened with and uses it when the transport has
already let go. Selected by `CELERY_BROKER_TRANSPORT` for redis:// and rediss:// broker URLs.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    def __init__(self, connection: Any, **kwargs: Any) -> None:
        self._opened_with = connection.client  # set first: the parent's __init__ already connects
        super().__init__(connection, **kwargs)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport.client is not None or self._opened_with is None:
            return super()._connparams(asynchronous)
        transport.client = self._opened_with
        try:
            return super()._connparams(asynchronous)
        finally:
            transport.client = None


class Transport(redis.Transport):
    Channel = Channel
