"""`docmill worker`: the Celery worker with docmill's defaults (thread pool, so every task of
the process shares one engine and one dynamic batcher); with `--processes N`, N of them under
one supervisor (worker/supervisor.py).

Before Celery starts, the broker must answer within `DOCMILL_BROKER_WAIT_S`: a worker pointed
at a dead broker says so in one line and exits, instead of retrying in silence. Before that, a
worker asked for `--device cuda` where CUDA does not load says so and exits 2: it would
otherwise take tasks and fail each one until its retries ran out (_check_device).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from docmill.errors import EXIT_FAILED, EXIT_OK, UsageError
from docmill.messages import queue_names
from docmill.settings import Settings
from worker.gpus import VISIBLE, GpuListError, gpu_devices

BROKER_POLL_S = 1.0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.check import check_broker, run_checks

    _check_flags(args)
    devices = _gpu_devices(args, settings)
    children = [{}] * args.processes if devices is None else [{VISIBLE: device} for device in devices]
    _check_metrics_port(args.metrics_port, len(children))
    if args.check:
        return run_checks(settings, args.device or settings.device, devices)
    supervised = devices is not None or args.processes > 1
    if not supervised:  # a supervisor's children each check their own device (Supervisor)
        _check_device(args.device or settings.device, args.pool)
    broker = wait_for_broker(settings, check_broker)
    if not broker.ok:
        print(f"docmill worker: cannot start: broker {broker.detail} "
              f"(waited {settings.broker_wait_s}s; DOCMILL_BROKER_WAIT_S sets how long)", file=sys.stderr)
        return EXIT_FAILED
    if supervised:
        from worker.supervisor import Supervisor

        return Supervisor(_worker_argv(args), children).run()
    _pull_default_models(settings)
    app = _app(args, settings)
    argv = ["worker", f"--pool={args.pool}", f"--concurrency={args.concurrency}", "-Q", args.queue,
            f"--loglevel={settings.log_level}", "--without-gossip", "--without-mingle"]
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    app.worker_main(argv=argv)
    return EXIT_OK


def _check_flags(args: argparse.Namespace) -> None:
    """One line for a value no worker runs with, before anything starts (a concurrency of 0
    would take no task). A redelivery cap of 0 is a choice: an item in flight when a worker
    died is given up at once."""
    for flag, value, least in (("--processes", args.processes, 1), ("--concurrency", args.concurrency, 1),
                               ("--max-batch-images", args.max_batch_images, 1),
                               ("--redelivery-cap", args.redelivery_cap, 0), ("--max-delay-ms", args.max_delay_ms, 0)):
        if value is not None and value < least:
            raise UsageError(f"{flag} must be {least} or more")
    try:
        queue_names(args.queue)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_metrics_port(port: int | None, processes: int) -> None:
    """Each of `processes` serves metrics on `port` + its index, all of which must be ports."""
    if port is not None and not (1 <= port and port + processes - 1 <= 65535):
        raise UsageError(f"--metrics-port must be between 1 and {65536 - processes}"
                         + (f" ({processes} processes take ports {port} and up)" if processes > 1 else ""))


def _check_device(device: str, pool: str) -> None:
    """UsageError for `--device cuda` where CUDA does not load; `auto` falls back to CPU and
    `cpu` needs nothing. Under Celery's prefork pool the probe runs in a child of its own: a
    CUDA context made here would be inherited broken by the pool's forked processes."""
    if device != "cuda":
        return
    if pool != "prefork":
        from worker.engine.providers import resolve_providers

        resolve_providers(device)  # DeviceUnavailable is a usage error
        return
    probe = subprocess.run([sys.executable, "-c", CUDA_PROBE], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise UsageError(probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else
                         "--device cuda: CUDA did not load in a probe process; use --device auto or cpu")


# The prefork pool's device check, run as a child: the message is DeviceUnavailable's own.
CUDA_PROBE = """
import sys
from worker.engine.providers import DeviceUnavailable, resolve_providers
try:
    resolve_providers("cuda")
except DeviceUnavailable as exc:
    sys.exit(str(exc))
"""


def _gpu_devices(args: argparse.Namespace, settings: Settings) -> list[str] | None:
    """Each child's CUDA_VISIBLE_DEVICES under `--gpus`, checked against the driver before any
    work (worker/gpus.py); None without --gpus."""
    if args.gpus is None:
        return None
    if (args.device or settings.device) == "cpu":
        raise UsageError("--gpus needs --device cuda or auto; leave it out to run on CPU")
    try:
        return gpu_devices(args.gpus, args.processes)
    except GpuListError as exc:
        raise UsageError(str(exc)) from exc


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The flags a child worker of `--processes` runs with: this command's own."""
    argv = ["--pool", args.pool, "--concurrency", str(args.concurrency), "--queue", args.queue,
            "--max-delay-ms", str(args.max_delay_ms), "--redelivery-cap", str(args.redelivery_cap)]
    for flag, value in (("--device", args.device), ("--metrics-port", args.metrics_port),
                        ("--max-batch-images", args.max_batch_images), ("--hostname", args.hostname)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def wait_for_broker(settings: Settings, check):  # type: ignore[no-untyped-def]
    """The broker check, repeated until it passes or `broker_wait_s` is spent (a broker
    that starts a little after its workers is normal in a compose stack)."""
    deadline = time.monotonic() + settings.broker_wait_s
    while True:
        outcome = check(settings)
        if outcome.ok or time.monotonic() >= deadline:
            return outcome
        time.sleep(BROKER_POLL_S)


def _app(args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def]
    from worker.app import make_app
    from worker.metrics import Metrics, serve

    metrics = Metrics()
    if args.metrics_port is not None:
        serve(metrics, args.metrics_port)
    return make_app(settings, {"device": args.device, "max_batch_images": args.max_batch_images,
                               "max_delay_ms": args.max_delay_ms, "redelivery_cap": args.redelivery_cap,
                               "metrics": metrics})


def _pull_default_models(settings: Settings) -> None:
    """Pull and verify the configured published set at start, so a bad or missing set shows
    at deploy time, not on the first task (tasks still load the version their job pinned)."""
    from docmill.modelset import ModelSetError, fetch_remote_set
    from docmill.storage import StorageError, is_s3_uri

    if not is_s3_uri(settings.models):
        return
    try:
        path = fetch_remote_set(settings.models, settings)
    except (ModelSetError, StorageError) as exc:
        print(f"docmill worker: cannot pull {settings.models}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return
    print(f"docmill worker: model set {settings.models} verified in {path}", file=sys.stderr)
