"""Job state in Redis: written by the producer, updated by workers, read by `docmill status`.

Keys (all under `docmill:job:<id>`):
    <key>            hash: totals, times, models, prefixes, listing cursor
    <key>:tasks      set of task numbers whose outcomes are counted (redelivery never
                     counts a task twice)
    <key>:failed     hash src (or src#page=N) -> error code
    <key>:attempts   hash task:<seq> -> deliveries, item:<item key> -> deliveries while a worker died
    <key>:documents  hash document result uri -> page count, for documents split into page ranges
    <key>:doc:<dst>  hash page number -> that page's summary (JSON), as its task recorded it
    <key>:recorded   set of document result uris whose document is counted
    docmill queue    the Celery queue's list (its depth, for the producer's backpressure)
Outcomes are recorded per task, atomically, by one Lua script, which also says whether that
call completed the job, so exactly one worker writes the job summary.

What the job counts (`total`, `done`, `failed`, `skipped`) are images and documents: a
document is done once its result is written, after its last page. Pages are counted apart
(`pages`, `pages_done`, `pages_failed`) for `docmill status`. `kept` counts the results, of
images and of pages, that a `--skip-existing` job kept from an earlier run rather than read
again (within `done` and `pages_done`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

PREFIX = "docmill:job:"
PLAN_FIELD = "producer_plan"  # in the job's hash: the producer's plan, as JSON

_FINISH_IF_COMPLETE = """
local s = redis.call('HMGET', KEYS[1], 'total', 'done', 'failed', 'skipped', 'listing_done', 'finished_at')
if s[5] == '1' and (s[6] == false or s[6] == '') and
   tonumber(s[2]) + tonumber(s[3]) + tonumber(s[4] or 0) >= tonumber(s[1]) then
  redis.call('HSET', KEYS[1], 'finished_at', NOW)
  return FINISHED
end
return COUNTED
"""

_RECORD_TASK = """
local key = KEYS[1]
if redis.call('SADD', key .. ':tasks', ARGV[1]) == 0 then return {0} end
redis.call('HINCRBY', key, 'done', tonumber(ARGV[2]))
redis.call('HINCRBY', key, 'failed', tonumber(ARGV[3]))
redis.call('HINCRBY', key, 'pages_done', tonumber(ARGV[5]))
redis.call('HINCRBY', key, 'pages_failed', tonumber(ARGV[6]))
redis.call('HINCRBY', key, 'kept', tonumber(ARGV[7]))
local failures = tonumber(ARGV[8])
for i = 9, 8 + 2 * failures, 2 do
  redis.call('HSET', key .. ':failed', ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', key, 'code:' .. ARGV[i + 1], 1)
end
local completed, i = {}, 9 + 2 * failures
while i <= #ARGV do
  local dst, pages = ARGV[i], tonumber(ARGV[i + 1])
  local hash = key .. ':doc:' .. dst
  local before = redis.call('HLEN', hash)
  for j = i + 2, i + 2 * pages, 2 do redis.call('HSET', hash, ARGV[j], ARGV[j + 1]) end
  local count = tonumber(redis.call('HGET', key .. ':documents', dst) or '0')
  if count > 0 and before < count and redis.call('HLEN', hash) >= count then table.insert(completed, dst) end
  i = i + 2 + 2 * pages
end
""" + _FINISH_IF_COMPLETE.replace("NOW", "ARGV[4]").replace("FINISHED", "{2, unpack(completed)}").replace(
    "COUNTED", "{1, unpack(completed)}")

_RECORD_DOCUMENT = """
local key = KEYS[1]
if redis.call('SADD', key .. ':recorded', ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', key, 'documents_done', 1)
if ARGV[3] == '' then
  redis.call('HINCRBY', key, 'done', 1)
else
  redis.call('HINCRBY', key, 'failed', 1)
  redis.call('HSET', key .. ':failed', ARGV[2], ARGV[3])
  redis.call('HINCRBY', key, 'code:' .. ARGV[3], 1)
end
""" + _FINISH_IF_COMPLETE.replace("NOW", "ARGV[4]").replace("FINISHED", "2").replace("COUNTED", "1")

_END_ITEM = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
"""

_FINISH_LISTING = _FINISH_IF_COMPLETE.replace("NOW", "ARGV[1]").replace("FINISHED", "1").replace("COUNTED", "0")


class JobState(BaseModel):
    """What `docmill status JOB --json` prints (and the job summary is built from)."""

    job: str
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0
    finished: bool = False
    listing_done: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    in_prefix: str = ""
    out_prefix: str = ""
    models: dict[str, str] = Field(default_factory=dict)
    cursor: str = ""
    tasks_enqueued: int = 0
    failure_codes: dict[str, int] = Field(default_factory=dict)
    documents: int = 0  # documents split into page ranges, and how many of them are counted
    documents_done: int = 0
    pages: int = 0  # their pages, and how many of those have a result
    pages_done: int = 0
    pages_failed: int = 0
    kept: int = 0  # earlier results kept (--skip-existing), images' and pages', within done and pages_done


class TaskPages(BaseModel):
    """A task's document pages, for record_task: how many got a result and how many failed,
    and each split document's page summaries (JSON) by page number."""

    done: int = 0
    failed: int = 0
    summaries: dict[str, dict[int, str]] = Field(default_factory=dict)


class JobNotFound(Exception):
    """No job with that id in this Redis."""


class JobStore:
    """Job state operations on a redis-py client (decode_responses=True)."""

    def __init__(self, client: Any):
        self.r = client
        self._record = client.register_script(_RECORD_TASK)
        self._record_document = client.register_script(_RECORD_DOCUMENT)
        self._finish = client.register_script(_FINISH_LISTING)
        self._end_item = client.register_script(_END_ITEM)

    @staticmethod
    def key(job: str) -> str:
        return PREFIX + job

    def create(self, job: str, in_prefix: str, out_prefix: str, models_uri: str, models_version: str) -> None:
        """A new job; an existing job with that id is an error (use resume)."""
        fields = {"job": job, "in_prefix": in_prefix, "out_prefix": out_prefix,
                  "models_uri": models_uri, "models_version": models_version,
                  "started_at": repr(time.time()), "total": 0, "done": 0, "failed": 0,
                  "skipped": 0, "listing_done": 0, "cursor": "", "tasks_enqueued": 0}
        if not self.r.hsetnx(self.key(job), "job", job):
            raise ValueError(f"job {job!r} already exists; use --resume {job} or another --job")
        self.r.hset(self.key(job), mapping=fields)

    def exists(self, job: str) -> bool:
        return bool(self.r.exists(self.key(job)))

    def save_plan(self, job: str, plan_json: str) -> None:
        """The producer's plan for this job (what a resumed run must reproduce)."""
        self.r.hset(self.key(job), PLAN_FIELD, plan_json)

    def load_plan(self, job: str) -> str | None:
        return self.r.hget(self.key(job), PLAN_FIELD)

    def queue_depth(self, queue: str) -> int:
        """Tasks waiting on a Celery queue (kombu's Redis transport keeps each queue as a list)."""
        return int(self.r.llen(queue))

    def count_delivery(self, job: str, seq: int) -> int:
        """How many times task `seq` has now been delivered (1 on its first run)."""
        return int(self.r.hincrby(self.key(job) + ":attempts", f"task:{seq}", 1))

    def count_item_start(self, job: str, item: str) -> int:
        """Count one more start of an item (`TaskItem.key`) after a redelivery; each start
        that gets an outcome is taken off again (`count_item_end`), so what stays counts the
        workers that died while processing it."""
        return int(self.r.hincrby(self.key(job) + ":attempts", f"item:{item}", 1))

    def count_item_end(self, job: str, item: str) -> None:
        """One start of the item got an outcome. Only that start is taken off: a copy of the
        task that ran the item at the same time and died keeps its count (clearing the whole
        count let a poison item kill more workers than the cap)."""
        self._end_item(keys=[self.key(job) + ":attempts"], args=[f"item:{item}"])

    def record_enqueued(self, job: str, items: int, tasks: int, skipped: int, cursor: str) -> None:
        """After a task is on the queue: count its items and move the listing cursor."""
        pipe = self.r.pipeline()
        pipe.hincrby(self.key(job), "total", items + skipped)
        pipe.hincrby(self.key(job), "skipped", skipped)
        pipe.hincrby(self.key(job), "tasks_enqueued", tasks)
        pipe.hset(self.key(job), "cursor", cursor)
        pipe.execute()

    def register_document(self, job: str, dst: str, page_count: int) -> None:
        """A document the producer split into page ranges: its pages must all be recorded
        before its result is written. Idempotent (a resumed producer registers it again)."""
        if self.r.hsetnx(self.key(job) + ":documents", dst, page_count):
            pipe = self.r.pipeline()
            pipe.hincrby(self.key(job), "documents", 1)
            pipe.hincrby(self.key(job), "pages", page_count)
            pipe.execute()

    def finish_listing(self, job: str) -> bool:
        """Listing is complete; True when that already completes the job (all skipped)."""
        self.r.hset(self.key(job), "listing_done", 1)
        return bool(self._finish(keys=[self.key(job)], args=[repr(time.time())]))

    def record_task(self, job: str, seq: int, failures: dict[str, str], done: int, failed: int | None = None,
                    pages: TaskPages | None = None, kept: int = 0) -> int:
        """Count one task's outcomes once: 0 = already counted (a redelivery), 1 = counted,
        2 = counted and this completed the job (the caller writes the summary). `failures`
        names every failed image and page; `done` and `failed` (default: as many as
        `failures`) count images and whole documents, `pages` the task's document pages,
        `kept` the results among them kept from an earlier run."""
        return self.record_task_pages(job, seq, failures, done, failed, pages, kept)[0]

    def record_task_pages(self, job: str, seq: int, failures: dict[str, str], done: int, failed: int | None = None,
                          pages: TaskPages | None = None, kept: int = 0) -> tuple[int, list[str]]:
        """record_task, and the split documents whose last page this call recorded: their
        results are this caller's to write, nobody else's (the check is in the same script)."""
        pages = pages or TaskPages()
        args: list[Any] = [seq, done, len(failures) if failed is None else failed, repr(time.time()),
                           pages.done, pages.failed, kept, len(failures)]
        for src, code in failures.items():
            args += [src, code]
        for dst, summaries in pages.summaries.items():
            args += [dst, len(summaries)]
            for number, summary in summaries.items():
                args += [number, summary]
        status, *completed = self._record(keys=[self.key(job)], args=args)
        return int(status), list(completed)

    def documents_to_finish(self, job: str, dsts: list[str]) -> list[str]:
        """Of these split documents, those whose pages are all recorded but which are not
        counted yet: after a redelivered task (whose first run may have died between recording
        the last page and writing the result), their results are due."""
        key = self.key(job)
        pipe = self.r.pipeline()
        for dst in dsts:
            pipe.hget(key + ":documents", dst)
            pipe.hlen(f"{key}:doc:{dst}")
            pipe.sismember(key + ":recorded", dst)
        replies = pipe.execute()
        return [dst for i, dst in enumerate(dsts)
                if replies[3 * i] is not None and replies[3 * i + 1] >= int(replies[3 * i]) and not replies[3 * i + 2]]

    def document_pages(self, job: str, dst: str) -> dict[int, str]:
        """A split document's page summaries (JSON), by page number."""
        return {int(k): v for k, v in self.r.hscan_iter(f"{self.key(job)}:doc:{dst}", count=1000)}

    def record_document(self, job: str, dst: str, src: str, code: str | None) -> int:
        """Count a split document once its result is written: done, or failed with `code`.
        Returns like record_task: 0 = already counted, 1 = counted, 2 = completed the job."""
        return int(self._record_document(keys=[self.key(job)], args=[dst, src, code or "", repr(time.time())]))

    def get(self, job: str) -> JobState:
        raw = self.r.hgetall(self.key(job))
        if not raw:
            raise JobNotFound(f"no job {job!r} in this Redis (check DOCMILL_BROKER_URL)")
        ints = {k: int(raw.get(k, 0)) for k in ("total", "done", "failed", "skipped", "tasks_enqueued", "documents",
                                                  "documents_done", "pages", "pages_done", "pages_failed", "kept")}
        finished_at = float(raw["finished_at"]) if raw.get("finished_at") else None
        return JobState(
            job=job, **ints,
            pending=max(ints["total"] - ints["done"] - ints["failed"] - ints["skipped"], 0),
            finished=finished_at is not None, listing_done=raw.get("listing_done") == "1",
            started_at=float(raw["started_at"]) if raw.get("started_at") else None,
            finished_at=finished_at, in_prefix=raw.get("in_prefix", ""),
            out_prefix=raw.get("out_prefix", ""), cursor=raw.get("cursor", ""),
            models={"uri": raw.get("models_uri", ""), "version": raw.get("models_version", "")},
            failure_codes={k[5:]: int(v) for k, v in raw.items() if k.startswith("code:")},
        )

    def failed_items(self, job: str, limit: int = 1000) -> dict[str, str]:
        """Up to `limit` failed sources with their error codes (HSCAN, never the whole hash)."""
        out: dict[str, str] = {}
        for src, code in self.r.hscan_iter(self.key(job) + ":failed", count=500):
            out[src] = code
            if len(out) >= limit:
                break
        return out

    def summary(self, job: str) -> dict[str, Any]:
        """The job summary written to OUT/_docmill/jobs/<job>.json when the job finishes."""
        state = self.get(job)
        duration = (state.finished_at or time.time()) - (state.started_at or time.time())
        return {"schema": "docmill.job/v1", "job": job, "total": state.total, "done": state.done,
                "failed": state.failed, "skipped": state.skipped, "documents": state.documents,
                "pages": state.pages, "pages_done": state.pages_done, "pages_failed": state.pages_failed,
                "kept": state.kept,
                "models": state.models,
                "in_prefix": state.in_prefix, "out_prefix": state.out_prefix,
                "started_at": state.started_at, "finished_at": state.finished_at,
                "duration_s": round(duration, 3), "failure_codes": state.failure_codes,
                "failures": self.failed_items(job)}


def summary_uri(out_prefix: str, job: str) -> str:
    return out_prefix.rstrip("/") + f"/_docmill/jobs/{job}.json"


def write_summary(store: JobStore, job: str, out_prefix: str, storage: Any) -> str:
    """OUT/_docmill/jobs/<job>.json, written by whoever finished the job: the worker that
    counted the last task, or the producer when every item was skipped."""
    uri = summary_uri(out_prefix, job)
    data = json.dumps(store.summary(job), indent=1, sort_keys=True).encode()
    storage.write_bytes(uri, data, content_type="application/json")
    return uri


REDIS_RETRIES = 30  # with backoff capped at 1 s: a Redis restart of up to ~25 s is ridden over


def connect(url: str) -> Any:
    """A redis-py client for the broker URL (redis:// or rediss://, AUTH from the URL).
    redis-py's default (3 quick retries) let a Redis restart kill producers and fail tasks,
    so connection errors (a refused connect is a bare OSError to redis-py) are retried with
    backoff for about half a minute."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                                socket_keepalive=True, retry_on_timeout=True,
                                retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), REDIS_RETRIES,
                                            supported_errors=(redis.exceptions.ConnectionError,
                                                              redis.exceptions.TimeoutError, OSError)),
                                retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError])


_NOW = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"

_BEAT = _NOW + """
redis.call('ZADD', KEYS[1], now, ARGV[1])
for i = 2, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
for _, tag in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('HEXISTS', KEYS[3], tag) == 0 then redis.call('SREM', KEYS[2], tag) end
end
"""

_LAPSED = _NOW + "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))"

# The scripts take `tag, payload, n, queue...` groups (WorkerRegistry._restore_args). `restore`
# moves a tag only while it is still in kombu's `unacked`, as kombu's QoS.restore_by_tag would.
# `give_back` moves a message out of a worker's taking list onto its queue, unless kombu had
# recorded it in `unacked` already (then `restore`, or the orphan sweep, deals with it).
_RESTORE = """
local function restore(unacked, index, i)
  local tag, payload, queues = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if redis.call('HDEL', unacked, tag) == 0 then return false end
  redis.call('ZREM', index, tag)
  for q = i + 3, i + 2 + queues do redis.call('RPUSH', ARGV[q], payload) end
  return true
end
local function give_back(taking, unacked, i)
  local tag, payload, queues = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if redis.call('LREM', taking, 1, payload) == 0 or redis.call('HEXISTS', unacked, tag) == 1 then return false end
  for q = i + 3, i + 2 + queues do redis.call('RPUSH', ARGV[q], payload) end
  return true
end
"""

_RECOVER = _NOW + _RESTORE + """
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not beat or tonumber(beat) > now - tonumber(ARGV[2]) then return false end
local restored, i, taken_end = {}, 4, 3 + tonumber(ARGV[3])
while i <= taken_end do
  if give_back(KEYS[5], KEYS[3], i) then restored[#restored + 1] = ARGV[i] end
  i = i + 3 + tonumber(ARGV[i + 2])
end
while i <= #ARGV do
  if restore(KEYS[3], KEYS[4], i) then restored[#restored + 1] = ARGV[i] end
  i = i + 3 + tonumber(ARGV[i + 2])
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return restored
"""

_ORPHANS = _NOW + _RESTORE + """
local restored, i = {}, 2
while i <= #ARGV do
  local tag, recorded = ARGV[i], false
  for k = 3, #KEYS do
    if redis.call('SISMEMBER', KEYS[k], tag) == 1 then recorded = true end
  end
  local delivered = redis.call('ZSCORE', KEYS[2], tag)
  if delivered and tonumber(delivered) <= now - tonumber(ARGV[1]) and not recorded
      and restore(KEYS[1], KEYS[2], i) then
    restored[#restored + 1] = tag
  end
  i = i + 3 + tonumber(ARGV[i + 2])
end
return restored
"""

# One step for a worker on several lists: the next message of the first list that has one,
# moved into the taking list (KEYS[#KEYS]) as BLMOVE moves it; nil when every list is empty.
_SWEEP = """
local taking = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  local message = redis.call('RPOP', KEYS[i])
  if message then
    redis.call('LPUSH', taking, message)
    return {KEYS[i], message}
  end
end
return false
"""

_GIVE_BACK = _RESTORE + """
local given, i = {}, 1
while i <= #ARGV do
  if give_back(KEYS[1], KEYS[2], i) then given[#given + 1] = ARGV[i] end
  i = i + 3 + tonumber(ARGV[i + 2])
end
return given
"""

UNREADABLE = "docmill:unreadable"
"""Messages taken off a queue that are no kombu message (not JSON, or without the delivery
tag and routing kombu records), or that route to no queue: set aside here, as taken, so that
one neither stops the worker that took it nor stays in a taking list for ever. An operator
can read them, and push one back onto its queue once mended."""

ONE_LIST_PER_QUEUE = {"priority_steps": [0]}
"""kombu's Redis transport option for producers and workers alike: each queue is one list,
with no lists per priority step, so a worker on one queue blocks on one key in one atomic
move (WorkerRegistry.take_command). A priority given to a task changes nothing."""


class WorkerRegistry:
    """Live workers and the kombu delivery tags they hold, so a dead worker's tasks go back
    on the queue long before kombu's visibility timeout (which must outlast the slowest task).

    Keys: `docmill:workers` (sorted set: worker -> its last beat, on Redis's clock, so hosts'
    clocks never matter), `docmill:worker:<worker>:tags` (set of delivery tags) and
    `docmill:worker:<worker>:taking` (list: the messages it has moved off the queue and kombu
    has not recorded yet, worker/kombu_taking.py). kombu's Redis transport keeps each unacked
    message in its `unacked` hash, as JSON `[message, exchange, routing_key]`, and its delivery
    time in `unacked_index`; a tag absent from `unacked` was acked or restored already, so it
    is not re-queued. A message keeps its tag when it is restored, so once re-delivered it is
    back in `unacked` under that tag, recorded by the worker that took it.
    """

    WORKERS = "docmill:workers"

    def __init__(self, client: Any):
        from kombu.transport.redis import Channel

        self.r = client
        self.kombu = Channel  # its class attributes: the transport's key names
        self._beat = client.register_script(_BEAT)
        self._lapsed = client.register_script(_LAPSED)
        self._recover = client.register_script(_RECOVER)
        self._orphans = client.register_script(_ORPHANS)
        self._give_back = client.register_script(_GIVE_BACK)
        self._has_blmove: bool | None = None

    @staticmethod
    def tags_key(worker: str) -> str:
        return f"docmill:worker:{worker}:tags"

    @staticmethod
    def taking_key(worker: str) -> str:
        return f"docmill:worker:{worker}:taking"

    def take_command(self, worker: str, queue: str, timeout: float) -> list[Any]:
        """The blocking command that moves the next message from `queue` into `worker`'s
        taking list in one step: BLMOVE, or on a Redis before 6.2 its older twin BRPOPLPUSH.
        A server that will not say its version (INFO denied by an ACL) is taken to be recent."""
        if self._has_blmove is None:
            import redis

            try:
                version = str(self.r.info("server").get("redis_version", "0"))
            except redis.exceptions.ResponseError:
                version = "6.2"
            self._has_blmove = tuple(int(part) for part in version.split(".")[:2]) >= (6, 2)
        if self._has_blmove:
            return ["BLMOVE", queue, self.taking_key(worker), "RIGHT", "LEFT", timeout]
        return ["BRPOPLPUSH", queue, self.taking_key(worker), timeout]

    def sweep_command(self, worker: str, lists: list[str]) -> list[Any]:
        """The command that moves the next message of the first of `lists` that has one into
        `worker`'s taking list in one step, without blocking (no blocking move waits on several
        lists); its reply is `[list, message]`, or nil when all are empty."""
        return ["EVAL", _SWEEP, len(lists) + 1, *lists, self.taking_key(worker)]

    def taken(self, worker: str, payload: bytes | str) -> None:
        """kombu has recorded this message in `unacked`: it leaves the taking list."""
        self.r.lrem(self.taking_key(worker), 1, payload)

    def give_back(self, worker: str) -> list[str]:
        """Put what `worker`'s taking list holds back on its queue, bar what kombu recorded
        in `unacked` meanwhile; the tags given back. For a take whose reply never arrived (a
        dropped connection) and for a clean shutdown. A message no queue can take is set
        aside in UNREADABLE."""
        args = self._taking_args(worker)
        if not args:
            return []
        return self._set_aside_told(worker, self._give_back(keys=[self.taking_key(worker), self.kombu.unacked_key],
                                                            args=args))

    def set_aside(self, worker: str, payload: bytes | str) -> bool:
        """Move one unreadable message from `worker`'s taking list to UNREADABLE (False: it
        was no longer there)."""
        return bool(self._give_back(keys=[self.taking_key(worker), self.kombu.unacked_key],
                                    args=_group(_SET_ASIDE, payload, [UNREADABLE])))

    def beat(self, worker: str, tags: list[str]) -> None:
        """Register or refresh `worker`, add the tags it holds, and forget those already acked."""
        self._beat(keys=[self.WORKERS, self.tags_key(worker), self.kombu.unacked_key], args=[worker, *tags])

    def hold(self, worker: str, tag: str) -> None:
        """Record one tag the moment it is received, not at the next beat."""
        self.r.sadd(self.tags_key(worker), tag)

    def leave(self, worker: str) -> None:
        """A clean shutdown: the worker acked or re-queued everything it held, and gives back
        anything still in its taking list."""
        self.give_back(worker)
        self.r.pipeline().zrem(self.WORKERS, worker).delete(self.tags_key(worker)).execute()

    def census(self, lost_after_s: float) -> tuple[int, int]:
        """(live, silent): registered workers that beat within `lost_after_s`, and those that
        have not and are not recovered yet, on Redis's clock."""
        seconds, micros = self.r.time()
        live = self.r.zcount(self.WORKERS, seconds + micros / 1e6 - lost_after_s, "+inf")
        return live, self.r.zcard(self.WORKERS) - live

    def lapsed(self, lost_after_s: float) -> list[str]:
        """Workers whose last beat is more than `lost_after_s` old."""
        return list(self._lapsed(keys=[self.WORKERS], args=[lost_after_s]))

    def recover(self, worker: str, lost_after_s: float) -> list[str] | None:
        """Put the unacked messages of a lapsed worker back on their queues, as kombu's
        `QoS.restore_by_tag` would, and what its taking list holds, and drop the worker; the
        tags re-queued. One script checks the lapse and moves each tag only if it is still in
        `unacked` (or still in the taking list and not in `unacked`), so two workers racing
        here, or an ack landing meanwhile, never make a second copy. None: the worker beat
        again, or another worker recovered it first."""
        taken = self._taking_args(worker)
        tags = sorted(self.r.smembers(self.tags_key(worker)))
        args: list[Any] = [worker, lost_after_s, len(taken), *taken]
        for tag, entry in zip(tags, self.r.hmget(self.kombu.unacked_key, tags) if tags else []):
            if entry:
                args += self._restore_args(tag, entry)
        keys = [self.WORKERS, self.tags_key(worker), self.kombu.unacked_key, self.kombu.unacked_index_key,
                self.taking_key(worker)]
        restored = self._recover(keys=keys, args=args)
        return None if restored is None else self._set_aside_told(worker, restored)

    def recover_orphans(self, min_age_s: float) -> list[str]:
        """Put back on their queues the unacked messages delivered over `min_age_s` ago that
        no registered worker has recorded; the tags re-queued. kombu records a delivery in
        `unacked` before the worker's `task_received` records the tag, so a worker killed
        between the two leaves a task no lapsed worker holds; without this it would wait
        for the visibility timeout. A live worker records a tag within a beat of taking it,
        so `min_age_s` (the lapse, several beats) spares every task in a live worker's hands.
        One script re-checks age, records and `unacked` per tag, so a tag recorded or
        restored meanwhile is left alone. kombu stamps a delivery with the worker host's
        clock, so hosts' clocks must agree with Redis's to well within `min_age_s`."""
        now = self.r.time()
        old = self.r.zrangebyscore(self.kombu.unacked_index_key, "-inf", now[0] + now[1] / 1e6 - min_age_s)
        if not old:
            return []
        tag_sets = [self.tags_key(worker) for worker in self.r.zrange(self.WORKERS, 0, -1)]
        recorded = self.r.sunion(tag_sets) if tag_sets else set()
        orphans = [tag for tag in old if tag not in recorded]  # long tasks in live hands: no payload read
        if not orphans:
            return []
        args: list[Any] = [min_age_s]
        for tag, entry in zip(orphans, self.r.hmget(self.kombu.unacked_key, orphans)):
            if entry:
                args += self._restore_args(tag, entry)
        keys = [self.kombu.unacked_key, self.kombu.unacked_index_key, *tag_sets]
        return list(self._orphans(keys=keys, args=args))

    def _restore_args(self, tag: str, entry: str) -> list[Any]:
        """`tag, message, n, queue...` for the script: the message marked redelivered, for each
        queue its routing reaches (kombu's `Channel._do_restore_message`). A message that
        reaches no queue is left to kombu's own sweep."""
        from kombu.utils.json import dumps, loads

        message, exchange, routing_key = loads(entry)
        try:
            message["headers"]["redelivered"] = True
            message["properties"]["delivery_info"]["redelivered"] = True
        except KeyError:
            pass
        return _group(tag, dumps(message), self._route(exchange, routing_key))

    def _taking_args(self, worker: str) -> list[Any]:
        """The script's groups for every message in `worker`'s taking list, read as bytes:
        one that is not UTF-8 would stop this client's decoding (and with it the recovery of
        every lapsed worker after it), and must be matched byte for byte to be set aside."""
        from redis.client import NEVER_DECODE

        entries = self.r.execute_command("LRANGE", self.taking_key(worker), 0, -1, **{NEVER_DECODE: True})
        return [arg for entry in entries for arg in self._taken_args(entry)]

    def _taken_args(self, entry: bytes) -> list[Any]:
        """`tag, message, n, queue...` for a message in a taking list, which went no further
        than that list: its own bytes, back on the queues its routing reaches, or on the queue
        its routing key names. A message that is not UTF-8 JSON with a tag and routing, or is
        routed to no queue, goes to UNREADABLE under the tag _SET_ASIDE instead."""
        from kombu.utils.json import loads

        try:
            properties = loads(entry.decode())["properties"]
            tag, info = properties["delivery_tag"], properties["delivery_info"]
            queues = self._route(info.get("exchange") or "", info.get("routing_key") or "") or [info["routing_key"]]
        except (ValueError, TypeError, KeyError, AttributeError):  # UnicodeDecodeError is a ValueError
            return _group(_SET_ASIDE, entry, [UNREADABLE])
        readable = isinstance(tag, str) and tag and all(queues)
        return _group(tag, entry, queues) if readable else _group(_SET_ASIDE, entry, [UNREADABLE])

    @staticmethod
    def _set_aside_told(worker: str, moved: list[str]) -> list[str]:
        """The tags a script re-queued, once it has logged those it set aside."""
        aside = sum(tag == _SET_ASIDE for tag in moved)
        if aside:
            log.error("set aside %d unreadable message(s) from worker %s's taking list in %s", aside, worker, UNREADABLE)
        return [tag for tag in moved if tag != _SET_ASIDE]

    def _route(self, exchange: str, routing_key: str) -> list[str]:
        """The queues a direct exchange (Celery's kind) routes `routing_key` to, from kombu's
        binding table; the default exchange routes to the queue named by the key. Each queue
        is one list (ONE_LIST_PER_QUEUE), whatever the message's priority."""
        if not exchange:
            return [routing_key]
        rows = (row.split(self.kombu.sep) for row in self.r.smembers(self.kombu.keyprefix_queue % exchange))
        return sorted({queue for key, _, queue in rows if key == routing_key})


_SET_ASIDE = ""  # the scripts' tag for a message set aside: kombu's delivery tags are never empty


def _group(tag: str, payload: bytes | str, queues: list[str]) -> list[Any]:
    """One `tag, payload, n, queue...` group of the restoring scripts; none without a queue."""
    return [tag, payload, len(queues), *queues] if queues else []
