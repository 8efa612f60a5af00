"""Taking a task off the queue in one step, so that a SIGKILL cannot lose it.

kombu's Redis transport takes a message with BRPOP, which removes it from the queue, and
records it in `unacked` only afterwards, in Python (`QoS.append`). A worker killed between
the two lost that task: in no queue, in `unacked` nowhere (`make chaos` lost one so, with
kombu 5.7.0). Here a worker's channel takes with BLMOVE instead, which moves the message
into the worker's own taking list (docmill.jobs.WorkerRegistry.taking_key) in the same step,
and drops it from there once kombu has recorded it. So the message is always in the queue,
in a taking list, or in `unacked`, and the heartbeat puts a lapsed worker's taking list back
on the queue with the rest of what it held.

A worker on one list (a queue, kept as one list: ONE_LIST_PER_QUEUE) blocks in BLMOVE. No
blocking move waits on several lists, so a worker on several queues (or on a queue's
priority lists) moves the next message of the first list that has one with a script
(WorkerRegistry.sweep_command), in kombu's order of lists; when all are empty it blocks in
BLMOVE on the first list for kombu's BRPOP timeout (one second), then sweeps again. A
message arriving on another list meanwhile waits that second, never more. A channel that
prefixes its keys keeps kombu's BRPOP and says so once. A channel takes nothing until its
worker is registered, so no taking list belongs to a worker no one would recover.

The patch replaces `Channel._brpop_start` and `_brpop_read` for channels whose connection
carries a Taker in its transport options (TAKER_OPTION); every other channel runs kombu's
own code. It is applied to the kombu versions whose transport it was read against (KNOWN).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic
from typing import Any

import kombu
from kombu.transport import redis as redis_transport
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from docmill.jobs import UNREADABLE, WorkerRegistry
from worker.kombu_fixes import within

log = logging.getLogger(__name__)

KNOWN = ((5, 3), (5, 8))  # [first, last) kombu (major, minor) whose BRPOP path this replaces
TAKER_OPTION = "docmill_taker"
_original_start = redis_transport.Channel._brpop_start
_original_read = redis_transport.Channel._brpop_read


class Taker:
    """One worker's side of taking: its name once registered, whether a take is unsettled
    (its reply was cut off, or its delivery raised before kombu recorded it: the message may
    sit in the taking list), and the drops from its taking list that Redis refused (retried
    before the next take). `on_taken` runs between the move and kombu's record: the chaos
    tests' fault hook."""

    def __init__(self, registry: WorkerRegistry, on_taken: Callable[[str], None] | None = None):
        self.registry = registry
        self.on_taken = on_taken
        self.worker: str | None = None
        self.unsettled = False
        self._owed: list[bytes] = []
        self._warned = False

    def __repr__(self) -> str:  # Celery prints transport options in its banner and `inspect conf`
        return f"<docmill Taker for {self.worker or 'an unregistered worker'}>"

    def own(self, worker: str) -> None:
        """The worker is registered: it may take now."""
        self.worker = worker

    def before_take(self) -> None:
        """Settle what earlier takes left: an unsettled take's message, given back unless
        kombu recorded it, and drops Redis refused."""
        assert self.worker is not None
        if self.unsettled:
            given = self.registry.give_back(self.worker)
            if given:
                log.warning("gave back %d task(s) whose take did not finish: %s", len(given), ", ".join(given))
            self.unsettled = False
        while self._owed:
            self.registry.taken(self.worker, self._owed[0])
            self._owed.pop(0)

    def recorded(self, payload: bytes) -> None:
        """kombu recorded the message in `unacked`: drop it from the taking list (`payload` is
        its bytes as taken, which the list holds), or owe the drop should Redis refuse now (a
        message left there after its ack would run twice)."""
        assert self.worker is not None
        try:
            self.registry.taken(self.worker, payload)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            log.warning("could not drop a taken task from %s; trying before the next take",
                        self.registry.taking_key(self.worker))
            self._owed.append(payload)

    def failed(self, payload: bytes, recorded: bool) -> None:
        """Delivering the message raised. Recorded in `unacked`, it leaves the taking list
        (kombu restores it from there; a second copy would run it twice); otherwise the next
        take gives it back, as for a cut-off take."""
        if recorded:
            self.recorded(payload)
        else:
            self.unsettled = True

    def unreadable(self, payload: bytes, queue: str, why: str) -> None:
        """A message kombu cannot read (`payload`: its bytes as taken): set aside, not
        delivered, not lost."""
        assert self.worker is not None
        self.unsettled = True  # should Redis refuse the move now, the next take's give_back sets it aside
        moved = self.registry.set_aside(self.worker, payload)
        self.unsettled = False
        where = f"set aside in {UNREADABLE}" if moved else "no longer in the taking list to set aside"
        log.error("a message on queue %s is not one kombu can read (%s): %s, %d bytes", queue, why[:200], where,
                  len(payload))

    def falls_back(self) -> None:
        if not self._warned:
            log.warning("taking with kombu's BRPOP, which a SIGKILL can interrupt with a task in no "
                        "list (docs/guarantees.md): the channel prefixes its keys (global_keyprefix)")
            self._warned = True


def _taker(channel: Any) -> Taker | None:
    return (channel.connection.client.transport_options or {}).get(TAKER_OPTION)


def _take_start(self: Any, timeout: float | None = None) -> None:
    """kombu's `_brpop_start`, sending the taker's BLMOVE on one list, or on several its sweep
    of them all, and BLMOVE on the first once a sweep found them all empty."""
    taker = _taker(self)
    if taker is None:
        return _original_start(self, timeout)
    queues = self._queue_cycle.consume(len(self.active_queues))
    if not queues:
        return None
    if self.global_keyprefix:
        taker.falls_back()
        return _original_start(self, timeout)
    if taker.worker is None:
        return None  # the event loop polls again within a second; the first beat lands first
    taker.before_take()
    keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]  # kombu's order
    timeout = self.brpop_timeout if timeout is None else timeout
    if len(keys) == 1 or getattr(self, "_docmill_swept_empty", False):
        self._docmill_take = ("BLMOVE", keys[0])
        command = taker.registry.take_command(taker.worker, keys[0], timeout or 0)
    else:
        self._docmill_take = ("EVAL", None)
        command = taker.registry.sweep_command(taker.worker, keys)
    self._in_poll = self.client.connection
    self._brpop_sent_at = monotonic()
    taker.unsettled = True
    self.client.connection.send_command(*command)
    return None


def _take_read(self: Any, **options: Any) -> bool:
    """kombu's `_brpop_read` for the taker's BLMOVE or sweep: deliver (kombu records the
    message in `unacked`), then drop it from the taking list."""
    take = getattr(self, "_docmill_take", None)
    if take is None:
        return _original_read(self, **options)
    command, key = take
    taker = _taker(self)
    try:
        try:
            reply = self.client.parse_response(self.client.connection, command, **options)
        except self.connection_errors:
            self.client.connection.disconnect()
            raise
        taker.unsettled = False
        self._docmill_swept_empty = command == "EVAL" and not reply  # then block until the next arrives
        key, item = reply if command == "EVAL" and reply else (key, reply)
        if not item:
            raise redis_transport.Empty()
        queue = bytes_to_str(key).rsplit(self.sep, 1)[0]  # a priority list's key names its queue first
        if taker.on_taken:
            taker.on_taken(bytes_to_str(item))
        self._queue_cycle.rotate(queue)
        message = _readable(self, item, queue, taker)
        try:
            self.connection._deliver(message, queue)
        except Exception:
            taker.failed(item, message["properties"]["delivery_tag"] in self.qos._delivered)
            raise
        taker.recorded(item)
        return True
    finally:
        self._in_poll = None
        self._docmill_take = None
        flush = getattr(self, "_flush_brpop_reauth", None)
        if flush:
            flush()


def _readable(channel: Any, item: bytes, queue: str, taker: Taker) -> dict[str, Any]:
    """The message as kombu reads it (bytes_to_str, then JSON), or Empty once an unreadable
    one is set aside: kombu would raise out of the worker's event loop, and Celery would stop
    the worker for good. Registry calls get `item`'s own bytes: a message that is not UTF-8
    reads with replacement characters, which would match nothing in Redis."""
    try:
        message = loads(bytes_to_str(item))
        channel.Message(message, channel=channel)  # kombu's own reading: properties, delivery tag, body
        info = message["properties"]["delivery_info"]
        if "exchange" not in info or "routing_key" not in info:  # what QoS.append records
            raise KeyError("delivery_info has no exchange or routing_key")
    except Exception as exc:  # noqa: BLE001 - whatever kombu would stumble on
        taker.unreadable(item, queue, f"{type(exc).__name__}: {exc}")
        raise redis_transport.Empty() from None
    return message


def known(version: str = kombu.__version__) -> bool:
    return within(KNOWN, version)


def apply(version: str = kombu.__version__) -> bool:
    """Install the atomic take where this kombu version's transport is the one it was read
    against (idempotent); True when installed."""
    if not known(version):
        log.warning("kombu %s is outside %s: tasks are taken with its BRPOP, which a SIGKILL can "
                    "interrupt with a task in no list (docs/guarantees.md)", version, KNOWN)
        return False
    redis_transport.Channel._brpop_start = _take_start
    redis_transport.Channel._brpop_read = _take_read
    return True


def restore() -> None:
    """The transport as kombu ships it."""
    redis_transport.Channel._brpop_start = _original_start
    redis_transport.Channel._brpop_read = _original_read

