"""worker.kombu_taking against a real Redis and kombu's real Redis transport, through its own
event loop path (`drain_events`): a task is always in the queue, in the worker's taking list or
in `unacked`, whatever moment the worker dies at, and nothing taken is delivered twice."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue
from redis.exceptions import ConnectionError as RedisConnectionError

from docmill.jobs import ONE_LIST_PER_QUEUE, UNREADABLE, WorkerRegistry, connect
from worker import kombu_taking
from worker.kombu_taking import TAKER_OPTION, Taker

pytestmark = pytest.mark.services


class Killed(BaseException):
    """Stands for the SIGKILL: nothing after it in the worker runs."""


@pytest.fixture
def registry(redis_url: str) -> WorkerRegistry:
    return WorkerRegistry(connect(redis_url))


@pytest.fixture
def taker(registry: WorkerRegistry) -> Iterator[Taker]:
    kombu_taking.apply()
    taker = Taker(registry)
    taker.own(f"test-taker-{uuid.uuid4().hex[:8]}")
    yield taker
    registry.r.delete(registry.taking_key(taker.worker))


@pytest.fixture
def queue_name(registry: WorkerRegistry) -> Iterator[str]:
    name = f"q-{uuid.uuid4().hex[:8]}"
    yield name
    registry.r.delete(name, f"{name}-b")


def worker_connection(redis_url: str, taker: Taker | None) -> Connection:
    return Connection(redis_url, transport_options={**ONE_LIST_PER_QUEUE, TAKER_OPTION: taker})


def bound(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def publish(redis_url: str, name: str, count: int = 1) -> None:
    with Connection(redis_url, transport_options=ONE_LIST_PER_QUEUE) as conn:
        producer = Producer(conn.channel())
        for n in range(count):
            producer.publish({"n": n}, exchange=bound(name).exchange, routing_key=name, serializer="json",
                             declare=[bound(name)])


def consume(conn: Connection, names: list[str], got: list[Any], events: int = 1) -> None:
    with Consumer(conn, [bound(name) for name in names], callbacks=[lambda body, message: got.append(message)]):
        for _ in range(events):
            conn.drain_events(timeout=5)


def wait_for(check, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_a_take_is_recorded_in_unacked_and_leaves_the_taking_list(redis_url, registry, taker, queue_name):
    publish(redis_url, queue_name, 2)
    got: list[Any] = []
    with worker_connection(redis_url, taker) as conn:
        consume(conn, [queue_name], got, events=2)
        tags = [message.delivery_tag for message in got]
        assert [message.payload["n"] for message in got] == [0, 1]
        assert all(registry.r.hexists("unacked", tag) for tag in tags)
        assert registry.r.llen(registry.taking_key(taker.worker)) == 0 and registry.r.llen(queue_name) == 0
        for message in got:
            message.ack()
    assert not any(registry.r.hexists("unacked", tag) for tag in tags)


@pytest.mark.parametrize("also_consumed", [0, 1])
def test_a_worker_killed_between_take_and_record_leaves_the_task_for_recovery(redis_url, registry, taker,
                                                                              queue_name, also_consumed):
    """The window kombu's BRPOP leaves open: the task must be in the taking list, and the
    lapsed worker's recovery puts back exactly that message on its own queue, where the next
    worker gets it; for a worker on two queues (the sweep) too."""
    consumed = [f"{queue_name}-b"] * also_consumed + [queue_name]
    publish(redis_url, queue_name)

    def die(payload: str) -> None:
        raise Killed

    taker.on_taken = die
    registry.beat(taker.worker, [])
    with worker_connection(redis_url, taker) as conn, pytest.raises(Killed):
        consume(conn, consumed, [])
    taken = registry.r.lrange(registry.taking_key(taker.worker), 0, -1)
    assert len(taken) == 1 and registry.r.llen(queue_name) == 0
    tag = json.loads(taken[0])["properties"]["delivery_tag"]
    assert not registry.r.hexists("unacked", tag)
    assert registry.recover(taker.worker, 0) == [tag]
    assert registry.r.lrange(queue_name, 0, -1) == taken and registry.r.llen(f"{queue_name}-b") == 0
    got: list[Any] = []
    with worker_connection(redis_url, taker) as conn:
        taker.on_taken = None
        consume(conn, consumed, got)
        assert [message.delivery_tag for message in got] == [tag]
        got[0].ack()


def test_a_take_whose_reply_was_lost_is_given_back_before_the_next(redis_url, registry, taker, queue_name):
    """The connection drops after Redis moved the task but before its reply was read: the
    next take gives it back first, so it is delivered once, not stranded in the taking list."""
    publish(redis_url, queue_name)
    got: list[Any] = []
    with worker_connection(redis_url, taker) as conn:
        with Consumer(conn, [bound(queue_name)], callbacks=[lambda body, message: got.append(message)]):
            chan = conn.default_channel
            conn.transport.cycle._register_BRPOP(chan)  # sends the take, as the event loop does
            assert wait_for(lambda: registry.r.llen(registry.taking_key(taker.worker)) == 1)
            chan.client.connection.disconnect()
            chan._in_poll = None
            conn.drain_events(timeout=5)
        assert [message.payload["n"] for message in got] == [0]
        assert registry.r.llen(registry.taking_key(taker.worker)) == 0 and registry.r.llen(queue_name) == 0
        got[0].ack()


def test_a_message_kombu_cannot_read_is_set_aside_and_the_worker_goes_on(redis_url, registry, taker, queue_name,
                                                                         caplog):
    """kombu would raise out of the event loop (and Celery stop the worker for good), with
    the message gone: here it is set aside whole, and the next message is delivered."""
    foreign = [f"not json {uuid.uuid4().hex}", json.dumps({"body": uuid.uuid4().hex}),
               json.dumps({"body": "", "properties": {"delivery_tag": uuid.uuid4().hex, "delivery_info": {}}})]
    registry.r.lpush(queue_name, *foreign)  # taken from the right: these first
    publish(redis_url, queue_name)
    got: list[Any] = []
    try:
        with caplog.at_level(logging.ERROR, logger="worker.kombu_taking"), worker_connection(redis_url, taker) as conn:
            consume(conn, [queue_name], got)
            got[0].ack()
        assert [message.payload["n"] for message in got] == [0]
        set_aside = redis.Redis.from_url(redis_url).lrange(UNREADABLE, 0, -1)  # bytes: others may not be UTF-8
        assert [payload.decode() for payload in set_aside if payload.decode(errors="replace") in foreign] == foreign
        assert registry.r.llen(registry.taking_key(taker.worker)) == 0 and registry.r.llen(queue_name) == 0
        assert caplog.text.count(f"set aside in {UNREADABLE}") == 3
    finally:
        for payload in foreign:
            registry.r.lrem(UNREADABLE, 1, payload)


def test_a_message_that_is_not_utf8_is_set_aside_byte_for_byte(redis_url, registry, taker, queue_name):
    """Decoded, its bytes would match nothing in Redis: it would stay in the taking list."""
    raw = redis.Redis.from_url(redis_url)
    foreign = b"\xff\xfe not UTF-8 " + uuid.uuid4().hex.encode()
    raw.lpush(queue_name, foreign)
    publish(redis_url, queue_name)
    got: list[Any] = []
    try:
        with worker_connection(redis_url, taker) as conn:
            consume(conn, [queue_name], got)
            got[0].ack()
        assert raw.lrange(UNREADABLE, 0, -1).count(foreign) == 1
        assert raw.llen(registry.taking_key(taker.worker)) == 0
    finally:
        raw.lrem(UNREADABLE, 0, foreign)


def test_a_delivery_that_raises_after_kombus_record_leaves_the_task_in_unacked_alone(redis_url, registry, taker,
                                                                                   queue_name):
    """kombu restores it from `unacked`; a copy left in the taking list would go back too."""
    publish(redis_url, queue_name)
    got: list[Any] = []

    def broken_consumer(body: Any, message: Any) -> None:
        got.append(message)
        raise RuntimeError("a consumer bug")

    with worker_connection(redis_url, taker) as conn:
        with Consumer(conn, [bound(queue_name)], callbacks=[broken_consumer]), pytest.raises(RuntimeError):
            conn.drain_events(timeout=5)
        assert registry.r.hexists("unacked", got[0].delivery_tag)
        assert registry.r.llen(registry.taking_key(taker.worker)) == 0 and registry.r.llen(queue_name) == 0
        got[0].ack()


def test_a_delivery_that_raises_before_kombus_record_is_given_back_by_the_next_take(redis_url, registry, taker,
                                                                                  queue_name):
    publish(redis_url, queue_name)
    got: list[Any] = []
    with worker_connection(redis_url, taker) as conn:
        with Consumer(conn, [bound(queue_name)], callbacks=[lambda body, message: got.append(message)]):
            qos = conn.default_channel.qos
            qos.append = _refuse  # type: ignore[method-assign]
            with pytest.raises(RedisConnectionError):
                conn.drain_events(timeout=5)
            assert registry.r.llen(registry.taking_key(taker.worker)) == 1
            del qos.append
            conn.drain_events(timeout=5)
        assert [message.payload["n"] for message in got] == [0]
        assert registry.r.llen(registry.taking_key(taker.worker)) == 0 and registry.r.llen(queue_name) == 0
        got[0].ack()


def _refuse(message: Any, tag: str) -> None:
    raise RedisConnectionError("unacked out of reach")


def test_an_unregistered_worker_takes_nothing(redis_url, registry, queue_name):
    kombu_taking.apply()
    unregistered = Taker(registry)
    publish(redis_url, queue_name)
    with worker_connection(redis_url, unregistered) as conn, Consumer(conn, [bound(queue_name)], callbacks=[]), \
            pytest.raises(socket.timeout):
        conn.drain_events(timeout=1.5)
    assert registry.r.llen(queue_name) == 1


def test_a_worker_on_two_queues_takes_from_each_in_one_step(redis_url, registry, taker, queue_name, caplog):
    """No blocking move waits on two lists: the sweep moves from whichever has a message, and
    each message is delivered as from its own queue."""
    second = f"{queue_name}-b"
    publish(redis_url, second, 2)
    publish(redis_url, queue_name)
    got: list[Any] = []
    with caplog.at_level(logging.WARNING, logger="worker.kombu_taking"), worker_connection(redis_url, taker) as conn:
        consume(conn, [queue_name, second], got, events=3)
        assert sorted((message.delivery_info["routing_key"], message.payload["n"]) for message in got) == [
            (queue_name, 0), (second, 0), (second, 1)]
        assert all(registry.r.hexists("unacked", message.delivery_tag) for message in got)
        assert registry.r.llen(registry.taking_key(taker.worker)) == 0
        assert registry.r.llen(queue_name) == 0 and registry.r.llen(second) == 0
        for message in got:
            message.ack()
    assert "BRPOP" not in caplog.text


def test_an_idle_worker_on_two_queues_takes_what_arrives_on_either(redis_url, registry, taker, queue_name):
    """All empty, the worker blocks on the first list; a message on the second waits for that
    block's one-second timeout, then the next sweep takes it."""
    second = f"{queue_name}-b"
    got: list[Any] = []
    with worker_connection(redis_url, taker) as conn:
        with Consumer(conn, [bound(queue_name), bound(second)], callbacks=[lambda body, message: got.append(message)]):
            later = threading.Timer(0.3, publish, (redis_url, second))
            later.start()
            started = time.monotonic()
            conn.drain_events(timeout=5)
            later.join()
        assert [message.delivery_info["routing_key"] for message in got] == [second]
        assert time.monotonic() - started < 3
        got[0].ack()


def test_a_channel_with_a_key_prefix_takes_with_brpop_and_says_so(redis_url, registry, taker, queue_name, caplog):
    """The restoring scripts read kombu's tables unprefixed, so a prefixed channel keeps kombu's
    own take, and says what that leaves open."""
    options = {**ONE_LIST_PER_QUEUE, "global_keyprefix": "pfx:"}
    with Connection(redis_url, transport_options=options) as conn:
        Producer(conn.channel()).publish({"n": 0}, exchange=bound(queue_name).exchange, routing_key=queue_name,
                                         serializer="json", declare=[bound(queue_name)])
    got: list[Any] = []
    try:
        with caplog.at_level(logging.WARNING, logger="worker.kombu_taking"), \
                Connection(redis_url, transport_options={**options, TAKER_OPTION: taker}) as conn:
            consume(conn, [queue_name], got)
            got[0].ack()
        assert [message.payload["n"] for message in got] == [0]
        assert "BRPOP" in caplog.text and "global_keyprefix" in caplog.text
    finally:
        registry.r.delete(*registry.r.keys("pfx:*") or ["pfx:none"])


def test_a_drop_redis_refused_is_made_before_the_next_take(redis_url, registry, taker, queue_name):
    """A message left in the taking list after its ack would be given back and run twice."""
    refusals = []
    real_taken = registry.taken

    def refuse_once(worker: str, payload: str) -> None:
        if not refusals:
            refusals.append(payload)
            raise RedisConnectionError("Redis went away")
        real_taken(worker, payload)

    registry.taken = refuse_once  # type: ignore[method-assign]
    publish(redis_url, queue_name, 2)
    got: list[Any] = []
    with worker_connection(redis_url, taker) as conn:
        consume(conn, [queue_name], got)
        assert registry.r.lrange(registry.taking_key(taker.worker), 0, -1) == [payload.decode() for payload in refusals]
        consume(conn, [queue_name], got)
        assert registry.r.llen(registry.taking_key(taker.worker)) == 0
        for message in got:
            message.ack()


def test_connections_without_a_taker_run_kombus_own_take(redis_url, queue_name):
    kombu_taking.apply()
    publish(redis_url, queue_name)
    got: list[Any] = []
    with worker_connection(redis_url, None) as conn:
        consume(conn, [queue_name], got)
        got[0].ack()
    assert [message.payload["n"] for message in got] == [0]


@pytest.mark.parametrize("version, installed", [("5.7.0", True), ("5.3.1", True), ("5.2.4", False),
                                                 ("5.8.0", False), ("6.0.0", False)])
def test_the_take_is_replaced_only_in_the_kombu_versions_it_was_read_against(version: str, installed: bool) -> None:
    from kombu.transport import redis as redis_transport

    kombu_taking.restore()
    try:
        assert kombu_taking.apply(version) is installed
        assert (redis_transport.Channel._brpop_read is kombu_taking._take_read) is installed
    finally:
        kombu_taking.apply()



def test_the_installed_kombu_is_one_the_take_was_read_against() -> None:
    """celery asks for kombu>=5.7 with no upper bound, and outside KNOWN the take is kombu's
    BRPOP again. When this fails, read the new kombu's `_brpop_start` and `_brpop_read`
    against worker/kombu_taking.py, run this file, then widen KNOWN."""
    import kombu

    assert kombu_taking.known(), f"kombu {kombu.__version__} is outside {kombu_taking.KNOWN}"
