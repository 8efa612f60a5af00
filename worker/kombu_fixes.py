"""One fix to kombu's Redis transport, which a Redis restart turned into dead workers.

When the broker connection drops, Celery's consumer closes the connection while task
threads are still acking. A channel whose connection is already torn down (its transport's
`client` set to None) then tries to hand its unacked messages back and builds a new Redis
pool from `connection.client.hostname`: an AttributeError. kombu's close paths swallow
connection errors only, so Celery logs "Unrecoverable error" and the worker exits; with
every worker gone, the job stalls. Seen in `tests/chaos/test_redis_restart.py` under load,
with kombu 5.7.0.

The fix makes "no connection any more" a connection error, which every close path already
tolerates: the unacked messages stay in Redis's unacked set, and the visibility sweep puts
them back on the queue.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as redis_transport
from redis.exceptions import ConnectionError as RedisConnectionError

_original_connparams = redis_transport.Channel._connparams


def _connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
    if self.connection.client is None:
        raise RedisConnectionError("the broker connection is already closed")
    return _original_connparams(self, asynchronous)


def apply() -> None:
    """Install the fix (idempotent)."""
    redis_transport.Channel._connparams = _connparams
