"""The producer's subcommand: `docmill produce`."""

from __future__ import annotations

from docmill.commandline import Subparsers, lazy
from docmill.documents import FORMATS_HELP, PDF_TEXT_HELP, PDF_TEXT_MODES
from docmill.inputs import INCLUDE_HELP
from docmill.messages import MAX_ITEMS_PER_TASK, QUEUE

DEFAULT_CHUNK = 16
DEFAULT_PAGES_PER_TASK = 4  # chosen by bench.pages_per_task (docs/documents.md)
DEFAULT_MAX_PENDING = 10_000


def register(sub: Subparsers) -> None:
    p = sub.add_parser("produce", help="list an input prefix and enqueue OCR tasks as a tracked job",
                       description="List an input prefix and enqueue Celery tasks on DOCMILL_BROKER_URL as "
                       "a tracked job. Prints the job id on stdout; follow it with `docmill status JOB`.")
    p.add_argument("input", nargs="?", help="s3://bucket/prefix/ (or a folder every worker sees) holding the images")
    p.add_argument("--out", help="s3://bucket/prefix/ (or a shared folder) for the results; checked for a "
                   "write before anything is enqueued")
    p.add_argument("--job", help="job id (default: generated from the time)")
    p.add_argument("--models", help="published model set: s3://.../<set> (LATEST is read once, at job start), "
                   "s3://.../<set>/<version>, or a folder every worker sees (default: DOCMILL_MODELS)")
    p.add_argument("--include", help=INCLUDE_HELP)
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                   help=f"images per task, 1 to {MAX_ITEMS_PER_TASK} (default {DEFAULT_CHUNK})")
    p.add_argument("--pages-per-task", type=int, default=DEFAULT_PAGES_PER_TASK,
                   help=f"a PDF or multi-page TIFF is split into tasks of this many pages, so one long "
                   f"document spreads over many workers (default {DEFAULT_PAGES_PER_TASK})")
    p.add_argument("--pdf-text", choices=PDF_TEXT_MODES, default="ocr", help=PDF_TEXT_HELP)
    p.add_argument("--format", default="json", metavar="FORMATS", help=FORMATS_HELP)
    skip = p.add_mutually_exclusive_group()
    skip.add_argument("--skip-existing", dest="skip_existing", action="store_true", default=True,
                      help="skip images whose result has the same source ETag and model version (default)")
    skip.add_argument("--force", dest="skip_existing", action="store_false", help="redo every image")
    p.add_argument("--max-pending", type=int, default=DEFAULT_MAX_PENDING,
                   help=f"wait while the queue holds more tasks than this (default {DEFAULT_MAX_PENDING})")
    p.add_argument("--queue", default=QUEUE, help=f"Celery queue the workers consume (default {QUEUE})")
    p.add_argument("--resume", metavar="JOB", help="continue a job after its last enqueued key, "
                   "with the job's own settings (only --max-pending may change)")
    p.set_defaults(handler=lazy("producer.cli", "cmd_produce"))
