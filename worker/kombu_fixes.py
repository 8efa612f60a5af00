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

It is applied only to the kombu versions known to need it (AFFECTED). A test reproduces
the bug on the unpatched transport, so it fails, and says to drop this module, once an
upstream release no longer has it.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu
from kombu.transport import redis as redis_transport
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger(__name__)

AFFECTED = ((5, 3), (5, 8))  # [first, last) kombu (major, minor) with the double-close bug
_original_connparams = redis_transport.Channel._connparams


def _connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
    if self.connection.client is None:
        raise RedisConnectionError("the broker connection is already closed")
    return _original_connparams(self, asynchronous)


def within(bounds: tuple[tuple[int, int], tuple[int, int]], version: str) -> bool:
    """Whether kombu `version` is in [first, last) of (major, minor) `bounds`."""
    major, minor = (int(part) for part in version.split(".")[:2])
    return bounds[0] <= (major, minor) < bounds[1]


def needed(version: str = kombu.__version__) -> bool:
    return within(AFFECTED, version)


def apply(version: str = kombu.__version__) -> bool:
    """Install the fix where this kombu version needs it (idempotent); True when installed."""
    if not needed(version):
        log.info("kombu %s is outside %s: its Redis transport is used unpatched", version, AFFECTED)
        return False
    redis_transport.Channel._connparams = _connparams
    return True


def restore() -> None:
    """The transport as kombu ships it (for the test that checks the bug is still there)."""
    redis_transport.Channel._connparams = _original_connparams
