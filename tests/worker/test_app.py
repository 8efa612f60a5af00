"""worker.app's broker transport: what kombu does with a killed worker's unacked tasks."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from kombu import Connection

from docmill.settings import Settings
from worker.app import transport_options

pytestmark = pytest.mark.services


def test_a_worker_killed_mid_sweep_holds_up_the_other_sweeps_for_one_interval_only(redis_url: str) -> None:
    """The sweep's lock, taken as kombu takes it and never released (kill -9 mid-sweep), must
    not keep another worker's sweep from restoring an expired task for long: kombu's own
    expiry is 300 s."""
    settings = Settings(visibility_timeout_s=1, restore_interval_s=1)
    tag = uuid.uuid4().hex[:8]
    keys = {"unacked_key": f"unacked-{tag}", "unacked_index_key": f"unacked-index-{tag}",
            "unacked_mutex_key": f"unacked-mutex-{tag}"}
    conn = Connection(redis_url, transport_options={**transport_options(settings), **keys})
    queue = conn.SimpleQueue(f"sweep-{tag}")
    client = redis.Redis.from_url(redis_url)
    try:
        queue.put({"n": 1})
        message = queue.get(timeout=5)  # delivered to a worker that then dies: never acked
        qos = queue.consumer.channel.qos
        dead_sweeper = client.lock(keys["unacked_mutex_key"], timeout=queue.consumer.channel.unacked_mutex_expire)
        assert dead_sweeper.acquire(blocking=False)  # kombu's Mutex, never released
        time.sleep(settings.restore_interval_s + 0.5)  # the lock's expiry; the task's visibility timeout
        qos.restore_visible(interval=1)
        assert not client.hexists(keys["unacked_key"], message.delivery_tag)
        assert queue.get(timeout=5).payload == {"n": 1}  # back on the queue
    finally:
        client.delete(*keys.values(), f"sweep-{tag}")
        conn.release()
