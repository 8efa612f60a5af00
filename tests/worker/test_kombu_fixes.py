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
