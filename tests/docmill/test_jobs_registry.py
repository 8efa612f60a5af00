"""WorkerRegistry against a real Redis and kombu's real Redis transport: a lapsed worker's
unacked messages go back on their queue once, exactly as kombu's own restore puts them;
acked messages and live workers' messages stay where they are."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer, Queue

from docmill.jobs import WorkerRegistry, connect

pytestmark = pytest.mark.services


@pytest.fixture
def registry(redis_url: str) -> Iterator[WorkerRegistry]:
    registry = WorkerRegistry(connect(redis_url))
    yield registry
    for worker in registry.r.zrange(WorkerRegistry.WORKERS, 0, -1):
        if worker.startswith("test-"):
            registry.leave(worker)


@pytest.fixture
def channel(redis_url: str) -> Iterator[tuple[Any, str]]:
    """A kombu channel and a queue of its own, bound the way Celery binds docmill's queue."""
    name = f"q-{uuid.uuid4().hex[:8]}"
    with Connection(redis_url) as conn:
        chan = conn.channel()
        queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
        queue(chan).declare()
        yield chan, name
        chan.close()  # kombu re-queues what a test left unacked, and the queue goes with it
        queue(conn.channel()).delete()


def take(chan: Any, queue: str, count: int, body: dict | None = None, **publish: Any) -> list[str]:
    """Publish `count` messages (`body`, or {"n": n}) and take them without acking: their
    delivery tags, now in kombu's `unacked` hash as a worker's prefetched or running tasks are."""
    producer = Producer(chan)
    for n in range(count):
        producer.publish(body or {"n": n}, exchange=queue, routing_key=queue, serializer="json", **publish)
    return [chan.basic_get(queue, no_ack=False).delivery_tag for _ in range(count)]


def queued(registry: WorkerRegistry, key: str) -> list[dict]:
    return [json.loads(raw) for raw in registry.r.lrange(key, 0, -1)]


def worker() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_lapsed_worker_tags_are_restored_once_and_acked_ones_are_not(registry, channel):
    chan, queue = channel
    tags = take(chan, queue, 3)
    lost = worker()
    registry.beat(lost, tags)
    chan.basic_ack(tags[0])
    assert lost in registry.lapsed(0)
    assert sorted(registry.recover(lost, 0)) == sorted(tags[1:])
    assert sorted(m["properties"]["delivery_tag"] for m in queued(registry, queue)) == sorted(tags[1:])
    assert not registry.r.hexists("unacked", tags[1]) and registry.r.zscore("unacked_index", tags[1]) is None
    assert registry.recover(lost, 0) is None  # dropped: nothing is restored twice
    assert lost not in registry.lapsed(0) and not registry.r.exists(registry.tags_key(lost))
    assert sorted(chan.basic_get(queue, no_ack=True).payload["n"] for _ in tags[1:]) == [1, 2]


def test_a_live_worker_is_not_touched(registry, channel):
    chan, queue = channel
    tags = take(chan, queue, 2)
    live = worker()
    registry.beat(live, [tags[0]])
    registry.hold(live, tags[1])
    assert live not in registry.lapsed(30)
    assert registry.recover(live, 30) is None
    assert registry.r.llen(queue) == 0 and all(registry.r.hexists("unacked", tag) for tag in tags)
    assert registry.r.smembers(registry.tags_key(live)) == set(tags)


def test_a_beat_forgets_acked_tags(registry, channel):
    chan, queue = channel
    tags = take(chan, queue, 2)
    live = worker()
    registry.beat(live, tags)
    chan.basic_ack(tags[0])
    registry.beat(live, [])
    assert registry.r.smembers(registry.tags_key(live)) == {tags[1]}


@pytest.mark.parametrize("priority", [None, 0, 5, 9])
def test_restored_message_is_what_kombus_own_restore_writes(registry, channel, priority):
    """kombu's QoS.restore_by_tag restores one message, the registry its twin: the same bytes
    on the same list (bar the delivery tag), priority steps included."""
    chan, queue = channel
    ours, kombus = take(chan, queue, 2, {"same": "body"}, **({} if priority is None else {"priority": priority}))
    lost = worker()
    registry.beat(lost, [ours])
    chan.qos.restore_by_tag(kombus)
    assert registry.recover(lost, 0) == [ours]
    lists = [key for key in (queue, *(f"{queue}\x06\x16{step}" for step in (3, 6, 9))) if registry.r.llen(key)]
    assert len(lists) == 1
    first, second = registry.r.lrange(lists[0], 0, -1)
    assert first.replace(kombus, "TAG") == second.replace(ours, "TAG")
    assert json.loads(first)["headers"]["redelivered"] is True


def test_two_workers_racing_restore_each_tag_once(redis_url, registry, channel):
    chan, queue = channel
    tags = take(chan, queue, 4)
    lost = worker()
    registry.beat(lost, tags)
    racers = [WorkerRegistry(connect(redis_url)) for _ in range(4)]
    barrier = threading.Barrier(len(racers))
    results: list[list[str] | None] = []

    def race(racer: WorkerRegistry) -> None:
        barrier.wait()
        results.append(racer.recover(lost, 0))

    threads = [threading.Thread(target=race, args=(racer,)) for racer in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    restored = [tag for result in results if result for tag in result]
    assert sorted(restored) == sorted(tags)
    assert registry.r.llen(queue) == len(tags)


def test_unrecorded_old_deliveries_go_back_once_and_recorded_or_young_ones_stay(registry, channel):
    """A worker killed after kombu recorded a delivery but before the worker recorded its tag."""
    chan, queue = channel
    tags = take(chan, queue, 3)
    live = worker()
    registry.beat(live, [tags[0]])  # tags[1:]: taken by a worker that died before recording them
    assert not set(tags) & set(registry.recover_orphans(60))  # younger than the lapse: left alone
    restored = registry.recover_orphans(0)
    assert set(tags[1:]) <= set(restored) and tags[0] not in restored
    assert sorted(m["properties"]["delivery_tag"] for m in queued(registry, queue)) == sorted(tags[1:])
    assert registry.r.hexists("unacked", tags[0]) and not registry.r.hexists("unacked", tags[1])
    assert not set(tags) & set(registry.recover_orphans(0))  # nothing is restored twice
    assert sorted(chan.basic_get(queue, no_ack=True).payload["n"] for _ in tags[1:]) == [1, 2]
