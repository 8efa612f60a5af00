"""worker.kombu_fixes: a broker connection closed twice (what a Redis restart does to a
worker whose task threads are acking) must not raise anything but a connection error, and
the message that was in flight must stay in Redis's unacked set for the sweep to restore."""

from __future__ import annotations

import uuid

import pytest
import redis
from kombu import Connection

from worker import kombu_fixes

pytestmark = pytest.mark.services


def test_closing_a_torn_down_connection_keeps_the_message(redis_url: str) -> None:
    kombu_fixes.apply()
    conn = Connection(redis_url)
    name = f"kombu-fix-{uuid.uuid4().hex[:8]}"
    queue = conn.SimpleQueue(name)
    queue.put({"n": 1})
    message = queue.get(timeout=5)  # delivered, not acked
    conn._do_close_transport()  # the first close, from another thread
    conn.release()  # the consumer's own close: without the fix, AttributeError
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.hexists("unacked", message.delivery_tag)
    finally:
        client.hdel("unacked", message.delivery_tag)
        client.zrem("unacked_index", message.delivery_tag)
        client.delete(name)


def test_upstream_still_has_the_bug(redis_url: str) -> None:
    """The canary: on the unpatched transport the double close still raises AttributeError.
    When this fails, the installed kombu fixed it: drop worker/kombu_fixes.py (and this test)."""
    kombu_fixes.restore()
    conn = Connection(redis_url)
    name = f"kombu-bug-{uuid.uuid4().hex[:8]}"
    queue = conn.SimpleQueue(name)
    queue.put({"n": 1})
    message = queue.get(timeout=5)
    conn._do_close_transport()
    try:
        with pytest.raises(AttributeError, match="hostname"):
            conn.release()
    finally:
        kombu_fixes.apply()
        client = redis.Redis.from_url(redis_url)
        client.hdel("unacked", message.delivery_tag)
        client.zrem("unacked_index", message.delivery_tag)
        client.delete(name)


@pytest.mark.parametrize("version, installed", [("5.7.0", True), ("5.3.1", True), ("5.2.4", False),
                                                 ("5.8.0", False), ("6.0.0", False)])
def test_the_fix_is_applied_only_to_affected_versions(version: str, installed: bool) -> None:
    from kombu.transport import redis as redis_transport

    kombu_fixes.restore()
    try:
        assert kombu_fixes.apply(version) is installed
        assert (redis_transport.Channel._connparams is kombu_fixes._connparams) is installed
    finally:
        kombu_fixes.apply()
