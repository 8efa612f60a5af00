"""What the one-step take costs: messages a kombu consumer takes, records and acks per second,
through kombu's own BRPOP and through the worker's taker (worker/kombu_taking.py), in
alternated rounds on the same Redis.

    python -m bench.take_rate [--messages 3000] [--rounds 3] [--queues 1] [--redis redis://127.0.0.1:6379/14]

The taker adds one LREM per message (and a BLMOVE in place of the BRPOP). With `--queues 2`
or more, the consumer reads that many queues, the messages dealt among them in turn: the taker
then sweeps them with a script where kombu sends one BRPOP over all. A docmill task
carries whole images or page ranges, so per-task costs this small never show in `make bench`;
this isolates them.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from kombu import Connection, Consumer, Exchange, Producer, Queue

from bench.results import save_result
from docmill.jobs import ONE_LIST_PER_QUEUE, WorkerRegistry, connect
from worker import kombu_taking
from worker.kombu_taking import TAKER_OPTION, Taker


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def rate(redis_url: str, messages: int, taker: Taker | None, queues: int = 1) -> float:
    """Messages per second for one consumer of `queues` queues that takes, then acks,
    `messages` queued ones, dealt among the queues in turn."""
    stem = f"take-rate-{uuid.uuid4().hex[:8]}"
    names = [f"{stem}-{n}" for n in range(queues)]
    with Connection(redis_url, transport_options=ONE_LIST_PER_QUEUE) as conn:
        producer = Producer(conn.channel())
        for n in range(messages):
            name = names[n % queues]
            producer.publish({"n": n}, exchange=_queue(name).exchange, routing_key=name, serializer="json",
                             declare=[_queue(name)] if n < queues else [])
    done = 0

    def ack(body: object, message: object) -> None:
        nonlocal done
        message.ack()  # type: ignore[attr-defined]
        done += 1

    with Connection(redis_url, transport_options={**ONE_LIST_PER_QUEUE, TAKER_OPTION: taker}) as conn, \
            Consumer(conn, [_queue(name) for name in names], callbacks=[ack]):
        start = time.perf_counter()
        while done < messages:
            conn.drain_events(timeout=5)
        elapsed = time.perf_counter() - start
        for name in names:
            _queue(name)(conn.channel()).delete()
    return messages / elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--queues", type=int, default=1, help="queues the consumer reads (default 1)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = p.parse_args(argv)
    kombu_taking.apply()
    registry = WorkerRegistry(connect(args.redis))
    taker = Taker(registry)
    taker.own(f"bench-take-rate-{uuid.uuid4().hex[:8]}")
    rates: dict[str, list[float]] = {"brpop": [], "taker": []}
    for _ in range(args.rounds):
        rates["brpop"].append(rate(args.redis, args.messages, None, args.queues))
        rates["taker"].append(rate(args.redis, args.messages, taker, args.queues))
    medians = {side: statistics.median(values) for side, values in rates.items()}
    result = {"messages": args.messages, "queues": args.queues, "rounds": rates, "median_per_s": medians,
              "taker_over_brpop": round(medians["taker"] / medians["brpop"], 3)}
    for side, values in rates.items():
        print(f"{side:6} {' '.join(f'{v:,.0f}' for v in values)} messages/s (median {medians[side]:,.0f})")
    print(f"taker / brpop: {result['taker_over_brpop']}")
    save_result("take_rate", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
