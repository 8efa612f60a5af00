"""The worker package's subcommands: `docmill run` (in-process) and `docmill worker` (Celery).
Registering them imports neither ONNXRuntime nor Celery."""

from __future__ import annotations

from docmill.commandline import Subparsers, lazy
from docmill.documents import FORMATS_HELP, PDF_TEXT_HELP, PDF_TEXT_MODES
from docmill.inputs import DEFAULT_INCLUDE, INCLUDE_HELP
from docmill.settings import DEFAULT_MODEL_SET, GPU_DEFAULT_MODEL_SET

DEVICES = ["auto", "cpu", "cuda"]


def register(sub: Subparsers) -> None:
    _add_run(sub)
    _add_worker(sub)


def _add_run(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="OCR images and documents in-process (no broker): files, folders, "
                       "s3:// prefixes",
                       description="OCR images, PDFs and multi-page TIFFs in-process with the same engine as "
                       "the workers. Writes OUT/<path relative to its input>.json per image; a document "
                       "writes OUT/<rel>/page-NNNN.json per page and OUT/<rel>.json for the whole. Prints a "
                       "JSON summary on stdout.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="an image or document file, a folder "
                   "(searched recursively) or an s3://bucket/prefix; several may be given")
    p.add_argument("--out", required=True, help="output folder or s3://bucket/prefix (checked for a "
                   "write before any work)")
    p.add_argument("--models", help="model set: preset name, folder, or s3:// URI (default: DOCMILL_MODELS, else "
                   f"{DEFAULT_MODEL_SET}, or {GPU_DEFAULT_MODEL_SET} on CUDA)")
    p.add_argument("--device", choices=DEVICES, help="where the models run (default: DOCMILL_DEVICE, auto)")
    p.add_argument("--batch-images", type=int, help="images per engine batch (default: DOCMILL_BATCH_IMAGES)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an engine option for this run (repeatable; see docmill config)")
    p.add_argument("--include", default=DEFAULT_INCLUDE, metavar="PATTERNS", help=INCLUDE_HELP)
    p.add_argument("--pdf-text", choices=PDF_TEXT_MODES, default="ocr", help=PDF_TEXT_HELP)
    p.add_argument("--format", default="json", metavar="FORMATS", help=FORMATS_HELP)
    p.add_argument("--visualize", action="store_true", help="write a PNG with boxes and text beside each JSON")
    p.add_argument("--skip-existing", action="store_true",
                   help="resume: pass over inputs whose result is current (same source ETag and model "
                   "version, with every --format file), as docmill produce does; otherwise every result "
                   "is written again")
    p.add_argument("--fail-on-error", action="store_true", help="exit 1 when any image or page failed")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary line on stderr")
    p.set_defaults(handler=lazy("worker.local", "cmd_run"))


def _add_worker(sub: Subparsers) -> None:
    p = sub.add_parser("worker", help="run a Celery worker: OCR tasks from the broker, results to storage",
                       description="A Celery worker on DOCMILL_BROKER_URL. It exits with one line if the "
                       "broker does not answer within DOCMILL_BROKER_WAIT_S.")
    p.add_argument("--concurrency", type=int, default=4, help="tasks in flight at once; their items share "
                   "batches (default 4)")
    p.add_argument("--processes", type=int, default=1, help="engine processes on this host, each a worker "
                   "of its own started as a fresh interpreter, never forked (default 1; see docs/operating.md)")
    p.add_argument("--gpus", help="GPUs to run on, by index (0,1) or 'all': --processes engine processes per "
                   "GPU, each seeing only its own (CUDA_VISIBLE_DEVICES); without it every process takes GPU 0")
    p.add_argument("--pool", choices=["threads", "prefork", "solo"], default="threads",
                   help="Celery pool (default threads: one engine per process, shared by its tasks)")
    p.add_argument("--device", choices=DEVICES, help="where the models run (default: DOCMILL_DEVICE, auto)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--max-batch-images", type=int, help="dynamic batcher: images per engine batch "
                   "(default: DOCMILL_BATCH_IMAGES)")
    p.add_argument("--max-delay-ms", type=float, default=20.0,
                   help="dynamic batcher: longest wait for a fuller batch (default 20)")
    p.add_argument("--redelivery-cap", type=int, default=3,
                   help="worker deaths an item may cause before it is given up as worker_lost (default 3)")
    p.add_argument("--queue", default="docmill", help="Celery queues to consume, comma-separated (default "
                   "docmill; several: docmill,urgent)")
    p.add_argument("--hostname", help="Celery node name (default: celery@HOST)")
    p.add_argument("--check", action="store_true",
                   help="check broker, storage and providers, print one line each, exit 0 only if all pass")
    p.set_defaults(handler=lazy("worker.service", "cmd_worker"))
