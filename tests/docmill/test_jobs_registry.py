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
import redis
from kombu import Connection, Exchange, Producer, Queue

from docmill.jobs import ONE_LIST_PER_QUEUE, UNREADABLE, WorkerRegistry, connect

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
    """A kombu channel and a queue of its own, bound and kept the way docmill's are."""
    name = f"q-{uuid.uuid4().hex[:8]}"
    with Connection(redis_url, transport_options=ONE_LIST_PER_QUEUE) as conn:
        chan = conn.channel()
        queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
        queue(chan).declare()
        yield chan, name
        chan.close()  # kombu re-queues what a test left unacked, and the queue goes with it
        queue(conn.channel()).delete()


def take(chan: Any, queue: str, count: int, body: dict | None = None, **options: Any) -> list[str]:
    """Publish `count` messages (`body`, or {"n": n}) and take them without acking: their
    delivery tags, now in kombu's `unacked` hash as a worker's prefetched or running tasks are."""
    publish(chan, queue, count, body, **options)
    return [chan.basic_get(queue, no_ack=False).delivery_tag for _ in range(count)]


def publish(chan: Any, queue: str, count: int, body: dict | None = None, **options: Any) -> None:
    """`count` messages (`body`, or {"n": n}) on `queue`, as Celery publishes to it."""
    producer = Producer(chan)
    for n in range(count):
        producer.publish(body or {"n": n}, exchange=queue, routing_key=queue, serializer="json", **options)


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
    on the same list (bar the delivery tag), the queue's one list whatever the priority."""
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


def move_to_taking(registry: WorkerRegistry, taker: str, queue: str) -> str:
    """What a worker's take does: the next message, moved off `queue` into its taking list."""
    return registry.r.execute_command(*registry.take_command(taker, queue, 1))


def tag_of(payload: str) -> str:
    return json.loads(payload)["properties"]["delivery_tag"]


@pytest.mark.parametrize("blmove", [True, False])
def test_the_take_command_moves_the_next_message_into_the_taking_list(registry, channel, blmove):
    chan, queue = channel
    publish(chan, queue, 2)
    registry._has_blmove = blmove  # False: the BRPOPLPUSH a Redis before 6.2 gets
    taker = worker()
    first = move_to_taking(registry, taker, queue)
    assert json.loads(first)["body"] and registry.r.lrange(registry.taking_key(taker), 0, -1) == [first]
    assert registry.r.llen(queue) == 1
    registry.taken(taker, first)
    assert not registry.r.exists(registry.taking_key(taker))
    assert registry.r.execute_command(*registry.take_command(taker, f"{queue}-empty", 0.1)) is None


def test_the_sweep_moves_the_oldest_message_of_the_first_list_that_has_one(registry, channel):
    chan, queue = channel
    publish(chan, queue, 2)
    taker, lists = worker(), [f"{queue}-empty", queue]
    oldest = registry.r.lindex(queue, -1)
    assert registry.r.execute_command(*registry.sweep_command(taker, lists)) == [queue, oldest]
    assert registry.r.lrange(registry.taking_key(taker), 0, -1) == [oldest] and registry.r.llen(queue) == 1
    registry.r.delete(queue)
    assert registry.r.execute_command(*registry.sweep_command(taker, lists)) is None
    registry.r.delete(registry.taking_key(taker))


def test_a_lapsed_workers_taking_list_goes_back_once_bar_what_kombu_recorded(registry, channel):
    """A worker killed between its take and kombu's record leaves the task in its taking list
    only: it goes back on the queue as it was. A task kombu recorded goes back once, from `unacked`."""
    chan, queue = channel
    publish(chan, queue, 1)
    lost = worker()
    unrecorded = move_to_taking(registry, lost, queue)
    recorded = take(chan, queue, 1)[0]  # in `unacked`, and still in the taking list:
    registry.r.lpush(registry.taking_key(lost), json.dumps({"properties": {  # killed before its drop
        "delivery_tag": recorded, "delivery_info": {"exchange": queue, "routing_key": queue}}}))
    registry.beat(lost, [recorded])
    assert sorted(registry.recover(lost, 0)) == sorted([tag_of(unrecorded), recorded])
    back = registry.r.lrange(queue, 0, -1)
    assert unrecorded in back and sorted(tag_of(m) for m in back) == sorted([tag_of(unrecorded), recorded])
    assert not registry.r.exists(registry.taking_key(lost)) and not registry.r.hexists("unacked", recorded)
    assert registry.recover(lost, 0) is None and registry.r.llen(queue) == 2


def test_a_live_workers_taking_list_is_left_alone(registry, channel):
    chan, queue = channel
    publish(chan, queue, 1)
    live = worker()
    taken = move_to_taking(registry, live, queue)
    registry.beat(live, [])
    assert registry.recover(live, 30) is None
    assert registry.r.lrange(registry.taking_key(live), 0, -1) == [taken] and registry.r.llen(queue) == 0


def test_leaving_gives_back_what_the_taking_list_holds(registry, channel):
    chan, queue = channel
    publish(chan, queue, 2)
    leaving = worker()
    registry.beat(leaving, [])
    first, second = move_to_taking(registry, leaving, queue), move_to_taking(registry, leaving, queue)
    registry.leave(leaving)
    assert sorted(registry.r.lrange(queue, 0, -1)) == sorted([first, second])
    assert not registry.r.exists(registry.taking_key(leaving)) and leaving not in registry.lapsed(0)


def test_a_taking_list_entry_that_is_not_utf8_is_set_aside_and_recovery_goes_on(redis_url, registry, channel):
    """The registry's client decodes replies: such bytes raised out of recover(), and so out
    of every live worker's sweep of lapsed workers, at every beat."""
    chan, queue = channel
    publish(chan, queue, 1)
    lost, raw = worker(), redis.Redis.from_url(redis_url)
    good = move_to_taking(registry, lost, queue)
    foreign = b"\xff\xfe " + uuid.uuid4().hex.encode()
    raw.rpush(registry.taking_key(lost), foreign)
    registry.beat(lost, [])
    try:
        assert registry.recover(lost, 0) == [tag_of(good)]
        assert registry.r.lrange(queue, 0, -1) == [good] and raw.lrange(UNREADABLE, 0, -1).count(foreign) == 1
        assert not registry.r.exists(registry.taking_key(lost))
    finally:
        raw.lrem(UNREADABLE, 0, foreign)


@pytest.mark.parametrize("foreign", ["not a message UNIQUE", json.dumps({"body": "UNIQUE"}), json.dumps([1, "UNIQUE"]),
                                     json.dumps({"properties": {"delivery_tag": "UNIQUE", "delivery_info": {}}})])
def test_a_message_no_queue_can_take_is_set_aside_from_a_lapsed_workers_taking_list(
        redis_url, registry, channel, caplog, foreign):
    """Not given back (a worker would take it again, and could not read it), not dropped, not
    left in a taking list no one reads: set aside whole, once, and logged."""
    chan, queue = channel
    publish(chan, queue, 1)
    lost = worker()
    good = move_to_taking(registry, lost, queue)
    marked = foreign.replace("UNIQUE", uuid.uuid4().hex)
    registry.r.rpush(registry.taking_key(lost), marked)
    registry.beat(lost, [])
    try:
        with caplog.at_level("ERROR", logger="docmill.jobs"):
            assert registry.recover(lost, 0) == [tag_of(good)]
        set_aside = redis.Redis.from_url(redis_url).lrange(UNREADABLE, 0, -1)  # bytes: others may not be UTF-8
        assert registry.r.lrange(queue, 0, -1) == [good] and set_aside.count(marked.encode()) == 1
        assert not registry.r.exists(registry.taking_key(lost))
        assert f"set aside 1 unreadable message(s) from worker {lost}'s taking list" in caplog.text
    finally:
        registry.r.lrem(UNREADABLE, 0, marked)


def test_a_server_that_denies_info_gets_blmove(redis_url, registry):
    """An ACL that denies INFO (some managed Redis) must not stop a worker from taking."""
    user = f"test-noinfo-{uuid.uuid4().hex[:6]}"
    registry.r.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                           commands=["+@all", "-info"])
    try:
        denied = WorkerRegistry(connect(redis_url.replace("redis://", f"redis://{user}:pw@", 1)))
        assert denied.take_command("w", "q", 1)[0] == "BLMOVE"
    finally:
        registry.r.acl_deluser(user)
