"""`docmill worker`: the Celery worker with docmill's defaults (thread pool, so every task of
the process shares one engine and one dynamic batcher)."""

from __future__ import annotations

import argparse

from docmill.settings import Settings


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if args.check:
        from worker.check import run_checks

        return run_checks(settings, args.device or settings.device)
    from worker import app as celery_app
    from worker.metrics import serve

    celery_app.HOST_OPTIONS.update(
        device=args.device, max_batch_images=args.max_batch_images, max_delay_ms=args.max_delay_ms,
        redelivery_cap=args.redelivery_cap)
    _pull_default_models(settings)
    if args.metrics_port is not None:
        serve(celery_app.host().metrics, args.metrics_port)
    argv = ["worker", f"--pool={args.pool}", f"--concurrency={args.concurrency}", "-Q", args.queue,
            f"--loglevel={settings.log_level}", "--without-gossip", "--without-mingle",
            "--without-heartbeat"]
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    celery_app.app.worker_main(argv=argv)
    return 0



def _pull_default_models(settings: Settings) -> None:
    """Pull and verify the configured published set at start, so a bad or missing set shows
    at deploy time, not on the first task (tasks still load the version their job pinned)."""
    import sys

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
