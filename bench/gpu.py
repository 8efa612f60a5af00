"""`make bench-gpu`: one prepared benchmark for a machine with one NVIDIA GPU, that needs no
package registry. Rehearse it anywhere with `make bench-gpu ARGS="--device cpu --quick"` (the
test suite does), so it cannot rot before a GPU is at hand.

    python -m bench.gpu [--device cuda|cpu] [--quick] [--wheels DIR] [--redis-server PATH]
                        [--images 2000] [--processes 4,8,16] [--models SET] [--fp16-models SET]

1. Set-up: with `--wheels DIR`, installs every wheel there (onnxruntime-gpu, celery, redis,
   boto3, pydantic, pyclipper, moto, onnxconverter-common for the FP16 copy, ...) into `.gpu-deps/` with pip's --no-index, and
   puts it first on the path; otherwise uses what is installed. A redis-server comes from PATH
   or `--redis-server` (for example one unpacked with `dpkg -x`). The model sets come from the
   model cache (carry `~/.cache/docmill/models` and point DOCMILL_CACHE_DIR at it): nothing is
   fetched.
2. `docmill run` on the SROIE sample receipts repeated to `--images`, and on PaddleOCR's
   document pages, with `--models` and its FP16 copy: `--fp16-models` when given, else one
   built here from `--models` by `docmill models fp16`'s own function, accuracy gate
   included (on CUDA, against `--models` on CUDA, on the demo pages and the 20 receipts); a
   copy that fails the gate is recorded and not run. With `--device cpu` the copy is built but neither gated nor run: ONNXRuntime's CPU
   provider computes these models in float32 (converter/fp16.py), so the JSON says so instead.
3. The distributed path on this machine: its own Redis, the S3 test server, a published model
   set, and for each N of `--processes`, a fresh `docmill worker --processes N` and a producer
   job over the receipts. The S3 test server is one Python process, and every image costs it
   two requests (GET the receipt, PUT its result: the job is `--force`, so the producer asks
   for no existing results), so its own ceiling is measured too (`s3_ceiling`), and the
   best N runs once more with the receipts, results and model set on the local filesystem (a
   shared mount, as a GPU host may have): docmill's rate without the test server's cap.

The runs go in order of what matters most (the default set's receipts, the distributed runs,
then FP16 and the pages), and the JSON is written after each, so a run cut short keeps what it
measured.

Each run reports images/s, GPU busy % and GPU memory (nvidia-smi sampled every 200 ms; null
without one), per-stage ms per image, the distinct input shapes each model met, and peak host
RSS. Results go to bench/results/gpu.json (`--device cpu` or `--quick`:
bench/results/gpu-rehearsal.json, never mistaken for GPU figures).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from bench.distributed import free_port, job_progress, s3_with_models
from bench.paths import REPO, SHARED, SROIE_IMAGES
from bench.results import save_result
from bench.ticker import Ticker

# Only the standard library and bench's own stdlib-only modules above: docmill and its
# dependencies are imported after `--wheels` has installed them (see `measure`).
RECEIPTS = SROIE_IMAGES
PAGES = SHARED / "data" / "paddleocr" / "doc"
DEPS = REPO / ".gpu-deps"
QUICK_IMAGES = 6
SWEEP_IMAGES = 400
RUN_CAP_S = 120  # one docmill run at most, so that one slow configuration leaves time for the rest
DIST_CAP_S = 90
# `--sweep`: the CUDA choices that DEVICE_DEFAULTS and Settings make, each against the defaults
# on the same receipts in the same run (label, environment, docmill run arguments), the two
# answers to shapes taken in turn first (docs/benchmarks.md, "First GPU run": a session per
# shape, and rec widths in steps of 320 px, which leave fewer shapes). The session per shape
# runs with room for every shape the receipts meet (rec met 59 on 200 of them, on the CUDA
# path run on CPU): past the cap the first session takes shapes in turn, the cost it is there
# to remove. cuDNN's
# DEFAULT search is left out: it is its fallback mode, 0.6 receipts/s on the H200
# (bench/results/gpu-probe.json). I/O binding is off unless this shows it helps: on CPU it cost
# 6% of images/s, nearly all of it in rec's runs (docs/using.md). Channels-last convolutions
# (`nhwc`) are what tensor cores want, at the price of layout transposes around them: ORT
# leaves them off by default, so they are timed, not assumed.
SWEEP: tuple[tuple[str, dict[str, str], tuple[str, ...]], ...] = (
    ("defaults", {}, ()),
    ("session_per_shape", {"DOCMILL_SESSION_PER_SHAPE": "true", "DOCMILL_SHAPE_SESSIONS": "256"}, ()),
    ("nhwc", {"DOCMILL_CUDA_PREFER_NHWC": "true"}, ()),
    ("rec_width=320", {}, ("--set", "rec_width_multiple=320")),
    ("buckets=off", {}, ("--set", "batch_buckets=false")),
    ("cudnn=EXHAUSTIVE", {"DOCMILL_CUDA_CONV_ALGO_SEARCH": "EXHAUSTIVE"}, ()),
    ("streams=4", {"DOCMILL_ENGINE_STREAMS": "4"}, ()),
    ("io_binding", {"DOCMILL_IO_BINDING": "true"}, ()),
    ("rec_width=128", {}, ("--set", "rec_width_multiple=128")),
    ("det_batch=1", {}, ("--set", "det_batch_size=1")),
    ("streams=1", {"DOCMILL_ENGINE_STREAMS": "1"}, ()),
)
# The FP16 copy once more on the sweep's receipts: half precision is where tensor cores want
# channels-last most.
FP16_SWEEP = ("fp16+nhwc", {"DOCMILL_CUDA_PREFER_NHWC": "true"}, ())
TIME_LIMIT_S = 8 * 60


class GpuSampler:
    """nvidia-smi's utilisation and memory every 200 ms, while a run lasts."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self._proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                           "--format=csv,noheader,nounits", "-lms", "200"],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            util, memory = (float(v) for v in line.split(",")[:2])
            self.samples.append((util, memory))

    def __exit__(self, *_: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()

    def figures(self) -> dict[str, float | None]:
        if not self.samples:
            return {"gpu_util_mean": None, "gpu_util_max": None, "gpu_memory_mb_max": None}
        utils = [u for u, _ in self.samples]
        return {"gpu_util_mean": round(sum(utils) / len(utils), 1), "gpu_util_max": max(utils),
                "gpu_memory_mb_max": max(m for _, m in self.samples)}


class ResultCounter(Ticker):
    """The result files in `out` every `every_s` while a `docmill run` writes them, as
    (seconds since the start, results so far): the same progress a distributed job's state
    gives, so both report a steady rate (steady_rate)."""

    def __init__(self, out: Path, every_s: float = 0.25) -> None:
        super().__init__(every_s)
        self.out = out
        self.samples: list[tuple[float, int]] = []

    def tick(self, elapsed_s: float) -> None:
        self.samples.append((elapsed_s, results_in(self.out)))

    def rates(self, images: int, seconds: float) -> dict[str, float]:
        """The run's steady and whole rates (see docmill_run)."""
        steady, tenth_s = steady_rate(self.samples, images, seconds)
        return {"images_per_s": round(steady, 2), "images_per_s_with_startup": round(images / seconds, 2),
                "first_tenth_s": round(tenth_s, 2)}


def results_in(out: Path) -> int:
    """Result files written so far to a `docmill run` --out folder of images."""
    return sum(1 for _ in out.glob("*.json")) if out.is_dir() else 0


def steady_rate(progress: list[tuple[float, int]], images: int, seconds: float) -> tuple[float, float]:
    """Images per second from the tenth of the run done to its end, and when that tenth was
    reached: start-up (CUDA, sessions, the first shapes' plans) is not spread over a short run.
    A run whose progress never showed a tenth before its end (one batch) gives its whole rate."""
    tenth = next(((at, done) for at, done in progress if done >= max(images, 1) / 10), (seconds, images))
    if tenth[1] >= images or tenth[0] >= seconds:
        return images / seconds, tenth[0]
    return (images - tenth[1]) / (seconds - tenth[0]), tenth[0]


def install_wheels(wheels: Path) -> float:
    """Every wheel in `wheels` into DEPS, offline; seconds taken."""
    started = time.perf_counter()
    found = sorted(str(p) for p in wheels.glob("*.whl"))
    if not found:
        raise SystemExit(f"bench.gpu: no .whl files in {wheels}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", "--target",
                    str(DEPS), *found], check=True)
    return time.perf_counter() - started


def cuda_library_dirs() -> list[str]:
    """The lib folders of the NVIDIA runtime wheels on this Python's path (nvidia-cublas,
    nvidia-cudnn-cu13, ...). onnxruntime-gpu finds CUDA and cuDNN through the loader's path,
    and an image whose CUDA came as wheels has them nowhere else."""
    found: set[str] = set()
    for entry in map(Path, sys.path):
        nvidia = entry / "nvidia"
        if nvidia.is_dir():
            found.update(str(lib.parent) for lib in nvidia.glob("**/lib/lib*.so*"))
    return sorted(found)


# ORT's own logging stays on here: when CUDA does not load, its reason is the output.
CUDA_CHECK = """
import onnxruntime as ort
from worker.engine.providers import CUDA, probe_model
from worker.gpus import GpuListError, driver_gpu_count
session = ort.InferenceSession(probe_model(), providers=[CUDA])
try:
    gpus = driver_gpu_count()
except GpuListError as exc:
    gpus = str(exc)
print(ort.__version__, ort.__file__, session.get_providers(), "driver GPUs (docmill worker --gpus):", gpus)
raise SystemExit(0 if CUDA in session.get_providers() else 1)
"""


def check_cuda() -> str:
    """Before any run: CUDA loads in a child with this environment, or the bench stops with
    ONNXRuntime's own words on why (a missing library, usually), not a minute later. Returns
    what the child said, with the GPUs `docmill worker --gpus` counts through the driver."""
    done = subprocess.run([sys.executable, "-c", CUDA_CHECK], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench.gpu: the CUDA provider does not load here:\n{done.stdout}{done.stderr[-3000:]}\n"
                         f"LD_LIBRARY_PATH={os.environ.get('LD_LIBRARY_PATH')}")
    print(f"  CUDA loads: {done.stdout.strip()}", file=sys.stderr)
    return done.stdout.strip()


def child_env(device: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, DOCMILL_DEVICE=device, **(extra or {}))
    if DEPS.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(DEPS), str(REPO), env.get("PYTHONPATH")]))
    if device == "cuda":
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [*cuda_library_dirs(), env.get("LD_LIBRARY_PATH")]))
    return env


def receipts_set(folder: Path, count: int) -> int:
    """`count` receipts, the sample's 20 repeated (links, so the set costs no disk)."""
    folder.mkdir(parents=True)
    sources = sorted(RECEIPTS.glob("*.jpg"))
    for n in range(count):
        (folder / f"{n:05d}-{sources[n % len(sources)].name}").symlink_to(sources[n % len(sources)])
    return count


def pages_set(folder: Path, quick: bool) -> int:
    folder.mkdir(parents=True)
    sources = sorted(p for sub in ("imgs", "imgs_en") for p in (PAGES / sub).glob("*.jpg"))
    for p in sources[:3] if quick else sources:
        (folder / p.name).symlink_to(p)
    return len(list(folder.iterdir()))


def docmill_run(folder: Path, out: Path, models: str, timeout: float, env: dict[str, str] | None = None,
                args: tuple[str, ...] = ()) -> dict[str, Any]:
    """`docmill run` in one process. `images_per_s` is the steady rate and
    `images_per_s_with_startup` the whole run's, as for the distributed runs (steady_rate).
    host_cpu_ms: its CPU outside session runs, per image (the work that must keep up with the
    GPU; on CUDA a run's launches count inside it). A run still going after `timeout` seconds
    is killed and reported by the results it had written."""
    from bench.run_bench import measure

    with GpuSampler() as gpu, ResultCounter(out) as counter:
        run = measure([sys.executable, "-m", "docmill.cli", "run", str(folder), "--out", str(out), "--models",
                       models, "--quiet", *args], REPO, env, timeout)
    if run.timed_out:
        written = results_in(out)
        return {"timed_out": True, "wall_s": round(run.wall_s, 2), "images": written,
                **counter.rates(written, run.wall_s), **gpu.figures()}
    if run.rc != 0:
        raise SystemExit(f"bench.gpu: docmill run exited {run.rc}: {run.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    images = summary["images"]
    return {"images": images, **counter.rates(images, run.wall_s),
            "wall_s": round(run.wall_s, 2), "engine_images_per_s": summary["images_per_s"],
            "providers": summary["providers"],
            "stages_ms": {k: round(v / images * 1000, 2) for k, v in summary["stage_s"].items()},
            "session_ms": {k: round(v / images * 1000, 2) for k, v in summary["session_s"].items()},
            "new_shape_s": summary["new_shape_s"], "distinct_shapes": summary["distinct_shapes"],
            "host_rss_mb": round(run.maxrss_kib / 1024, 1),
            "host_cpu_ms": round((run.cpu_s - sum(summary["session_s"].values())) / images * 1000, 1),
            "failed": summary["failed"], **gpu.figures()}


class Budget:
    """The bench's 8 minutes, shared out: each run may take what is left, less a reserve for
    the runs after it, and at most its own cap, so that a slow run is cut short and reported
    rather than eating the time of everything after it."""

    def __init__(self, total_s: float, reserve_s: float = 20.0):
        self.deadline = time.perf_counter() + total_s
        self.reserve_s = reserve_s

    def for_run(self, cap_s: float) -> float:
        return max(5.0, min(cap_s, self.deadline - time.perf_counter() - self.reserve_s))


def distributed(folder: Path, models: str, process_counts: list[int], env: dict[str, str], redis_bin: str,
                work: Path, budget: Budget) -> dict[str, dict[str, Any]]:
    """Producer -> Redis -> `docmill worker --processes N` -> S3 on this machine, once for each N
    in `process_counts` (one Redis, S3 server and upload for all): how many engine processes a
    GPU wants is chosen by measurement."""
    redis_port, s3_port = free_port(), free_port()
    env = dict(env, DOCMILL_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
               DOCMILL_S3_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}", AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    procs = [subprocess.Popen([redis_bin, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        s3, published = s3_with_models(env, models, procs)
        names = [path.name for path in sorted(folder.iterdir())]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda name: s3.upload_file(str((folder / name).resolve()), "bench-in", f"receipts/{name}"),
                          names))
        ceiling = s3_ceiling(s3, names[:50])
        rows = {}
        for count in process_counts:
            rows[f"distributed:receipts:p{count}"] = {
                **worker_run(env, published, count, work, budget.for_run(DIST_CAP_S), "s3://bench-in/receipts/",
                             f"s3://bench-out/receipts-p{count}/", f"s3-p{count}"), "s3_ceiling_images_per_s": ceiling}
        best = max(rows.values(), key=lambda row: row["images_per_s"])["processes"]
        rows[f"distributed:files:p{best}"] = worker_run(env, str(local_model_set(models)), best, work,
                                                        budget.for_run(DIST_CAP_S), str(folder.resolve()),
                                                        str(work / f"files-out-p{best}"), f"files-p{best}")
        return rows
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)


def s3_ceiling(s3: Any, names: list[str], seconds: float = 3.0) -> float:
    """The S3 test server's own ceiling in images/s: what an image of a `--force` job costs it
    (GET the receipt, PUT a result of a receipt's size), as fast as 16 threads can ask, for
    `seconds`. A distributed rate near it is the server's, not docmill's."""
    body = b"x" * 12_000
    stop = time.perf_counter() + seconds
    counts = [0] * 16

    def client(slot: int) -> None:
        while time.perf_counter() < stop:
            name = names[(slot + 16 * counts[slot]) % len(names)]
            s3.get_object(Bucket="bench-in", Key=f"receipts/{name}")["Body"].read()
            s3.put_object(Bucket="bench-out", Key=f"ceiling/{slot}-{counts[slot]}.json", Body=body)
            counts[slot] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(client, range(16)))
    return round(sum(counts) / (time.perf_counter() - started), 1)


def local_model_set(models: str) -> Path:
    """The folder of `models` (a preset) in the model cache, for a job whose storage is the
    local filesystem."""
    from converter.presets import ensure_model_set
    from docmill.settings import Settings

    return Path(ensure_model_set(models, Settings()))


def worker_run(env: dict[str, str], models: str, processes: int, work: Path, timeout: float, source: str,
               out: str, label: str) -> dict[str, Any]:
    """One job over the receipts at `source` (results to `out`), on a fresh `docmill worker
    --processes N` on a queue and log of its own, named by `label`.
    `images_per_s` is the steady rate, from the tenth of the job done to its end, so that the
    processes' start-up (CUDA, sessions, first shapes) is not spread over a short run;
    `images_per_s_with_startup` is the whole job's, start-up included. A job not finished
    after `timeout` seconds is reported by what it had done (`timed_out`)."""
    from docmill.jobs import JobStore, connect

    queue = f"gpu-{os.getpid()}-{label}"
    worker = subprocess.Popen([sys.executable, "-m", "docmill.cli", "worker", "--queue", queue, "--processes",
                               str(processes)], env=env, stdout=open(work / f"worker-{queue}.log", "wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    store = JobStore(connect(env["DOCMILL_BROKER_URL"]))
    try:
        started = time.perf_counter()
        with GpuSampler() as gpu:
            produced = subprocess.run([sys.executable, "-m", "docmill.cli", "produce", source, "--out", out,
                                       "--models", models, "--queue", queue, "--force"], env=env, text=True,
                                      capture_output=True)
            if produced.returncode != 0:
                raise SystemExit(f"bench.gpu: docmill produce exited {produced.returncode}: {produced.stderr.strip()}")
            job = produced.stdout.strip().splitlines()[-1]
            progress, finished = job_progress(store, job, started, timeout)
        seconds = time.perf_counter() - started
    finally:
        stop_group(worker)
    images = progress[-1][1]
    steady, tenth_s = steady_rate(progress, images, seconds)
    return {"images": images, "failed": store.get(job).failed, "processes": processes, "seconds": round(seconds, 2),
            "timed_out": not finished,
            "images_per_s": round(steady, 2), "images_per_s_with_startup": round(images / seconds, 2),
            "first_tenth_s": round(tenth_s, 2), **gpu.figures()}


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM (a warm shutdown), then after 30 s SIGKILL to the whole process group."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# Input shapes the session probe times: det pages and rec line batches as the CUDA defaults form
# them (128 px canvases, 64 px widths, power-of-two batches).
PROBE_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "det": ((1, 3, 960, 640), (8, 3, 960, 640), (1, 3, 1024, 1024), (8, 3, 1024, 768)),
    "rec": ((1, 3, 48, 320), (64, 3, 48, 320), (128, 3, 48, 512), (16, 3, 48, 1280), (4, 3, 48, 2048)),
}
QUICK_PROBE_SHAPES = {"det": ((1, 3, 256, 256),), "rec": ((1, 3, 48, 320), (8, 3, 48, 384))}


def session_probe(models: str, device: str, quick: bool) -> dict[str, Any]:
    """Each model session alone on fixed input shapes: the first run of a shape (its cuDNN plan
    and arena growth included) against the median of the next three; then the same shapes,
    all seen before, run in turn (`alternating`). onnxruntime since 1.20 keeps one cuDNN plan
    per Conv node, for the last shape it ran, so shapes taken in turn may pay a plan at every
    run (onnxruntime issue 23006): that total against the same runs' steady times says so.
    Run first, in a child of its own, so that it answers even when the whole-engine runs
    after it are cut short."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_time_shapes, models, device, QUICK_PROBE_SHAPES if quick else PROBE_SHAPES).result()


def _time_shapes(models: str, device: str, shapes: dict[str, tuple[tuple[int, ...], ...]]) -> dict[str, Any]:
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet
    from docmill.settings import Settings
    from worker.engine.providers import open_session, resolve_providers

    settings = Settings(device=device)
    model_set = ModelSet.load(ensure_model_set(models, settings))
    providers = resolve_providers(device)
    rows: dict[str, Any] = {}
    for stage, stage_shapes in shapes.items():
        session = open_session(str(model_set.path(stage)), providers, settings, ctc_head=stage == "rec")
        batches = [_pixels(shape) for shape in stage_shapes]
        steady_ms = []
        for shape, batch in zip(stage_shapes, batches):
            times = [_timed_run(session, batch) for _ in range(4)]
            steady_ms.append(round(sorted(times[1:])[1] * 1000, 2))
            rows[f"{stage}:{'x'.join(map(str, shape))}"] = {"first_ms": round(times[0] * 1000, 1),
                                                           "steady_ms": steady_ms[-1]}
        cycled = [_timed_run(session, batch) for _ in range(2) for batch in batches]
        rows[f"{stage}:alternating"] = {"runs": len(cycled), "total_ms": round(sum(cycled) * 1000, 1),
                                        "same_shapes_steady_total_ms": round(2 * sum(steady_ms), 1)}
    return {"providers": providers, "shapes": rows}


def _pixels(shape: tuple[int, int, int, int]) -> Any:
    """Random pixels for a model input of NCHW `shape`, as the engine feeds its sessions."""
    import numpy as np

    from worker.engine.pixels import pixel_batch

    count, _, height, width = shape
    items = np.random.default_rng(0).integers(0, 256, (count, height, width, 3), np.uint8)
    return pixel_batch(list(items), (height, width), [1 / 255] * 3, [0.0] * 3)


def _timed_run(session: Any, batch: Any) -> float:
    started = time.perf_counter()
    session.run_all(batch)
    return time.perf_counter() - started


def fp16_variant(args: argparse.Namespace, work: Path) -> tuple[str | None, dict[str, Any]]:
    """The FP16 set to run beside `--models` (None: none to run) and what the JSON records
    about it. Built in a child process: the gate's CUDA context would otherwise stay in this
    one and count in every later run's GPU memory."""
    if args.fp16_models:
        return args.fp16_models, {"built": False}
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(build_fp16, args.models, args.device, work).result()


def build_fp16(models: str, device: str, work: Path) -> tuple[str | None, dict[str, Any]]:
    """`<models>-fp16` under `work`, through `docmill models fp16`'s own function, gate
    included, on CUDA; on CPU built but neither gated nor run (converter/fp16.py says why)."""
    from converter.fp16 import NEEDS_CUDA, GateFailed, build_fp16_set, convert_set, gated_fp16_set
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet
    from docmill.settings import Settings

    settings = Settings(device=device)
    fp32 = ModelSet.load(ensure_model_set(models, settings))
    started = time.perf_counter()
    if device == "cpu":
        folder = build_fp16_set(fp32, convert_set(fp32, work / "fp16-scratch"), work / "fp16")
        return None, {"built": True, "set": f"{folder.parent.name}@{folder.name}", "gate": None,
                      "build_s": round(time.perf_counter() - started, 1), "not_run": NEEDS_CUDA}
    try:
        folder, report = gated_fp16_set(fp32, settings, work / "fp16", work / "fp16-scratch", "cuda", RECEIPTS,
                                        progress=lambda message: print(f"  {message}", file=sys.stderr))
    except GateFailed as exc:
        return None, {"built": True, "gate": exc.report.as_dict(), "not_run": str(exc)}
    return str(folder), {"built": True, "set": f"{folder.parent.name}@{folder.name}", "gate": report.as_dict(),
                         "build_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_IMAGES} receipts, 3 pages: a rehearsal")
    p.add_argument("--wheels", type=Path, help="install these wheels offline first (.gpu-deps/)")
    p.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--processes", type=process_counts, default=[4, 8, 16],
                   help="docmill worker --processes, one distributed run each (comma-separated)")
    p.add_argument("--models", default="pp-ocrv6")
    p.add_argument("--fp16-models", help="the same set in FP16 (a folder or preset), run beside it; "
                   "default: built from --models here and gated (`docmill models fp16`)")
    p.add_argument("--sweep", action="store_true", help=f"last, on {SWEEP_IMAGES} receipts: each CUDA choice "
                   "(a session per shape, rec widths, batch buckets, cuDNN search, streams, det batch) "
                   "against the defaults")
    args = p.parse_args(argv)
    if not RECEIPTS.is_dir():
        print(f"bench.gpu: {RECEIPTS} not found; nothing to measure (skipped)")
        return 0
    started, budget = time.perf_counter(), Budget(TIME_LIMIT_S)
    setup_s = install_wheels(args.wheels) if args.wheels else 0.0
    if DEPS.is_dir():
        sys.path.insert(0, str(DEPS))  # boto3 and redis for this process too
    os.environ.update(child_env(args.device))  # the FP16 gate's child too: CUDA's libraries load at start
    cuda_check = check_cuda() if args.device == "cuda" else None
    report: dict[str, Any] = {"schema": "docmill.bench.gpu/v1", "device": args.device, "quick": args.quick,
                              "onnxruntime": _onnxruntime_version(), "model_set": args.models,
                              "cuda_check": cuda_check, "setup_s": round(setup_s, 1), "runs": {}}
    name = "gpu" if args.device == "cuda" and not args.quick else "gpu-rehearsal"
    with tempfile.TemporaryDirectory(prefix="docmill-gpu-") as tmp:
        measure_all(args, Path(tmp), report, budget, lambda: save_result(name, report))
    report["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps({k: report[k] for k in ("device", "images_per_s", "gpu_util_mean", "distinct_shapes",
                                             "total_s")}))
    print(f"written {save_result(name, report).relative_to(REPO)}")
    if report["total_s"] > TIME_LIMIT_S:
        print(f"bench.gpu: took {report['total_s']} s, over the {TIME_LIMIT_S} s it must fit in", file=sys.stderr)
    return 0


def measure_all(args: argparse.Namespace, work: Path, report: dict[str, Any], budget: Budget,
                save: Callable[[], Path]) -> None:
    """Every run into report["runs"], most important first, saving after each: the sessions
    alone on fixed shapes, the default set on the receipts (one process, then the distributed
    runs), the pages, its FP16 copy, and with --sweep each CUDA choice."""
    count = QUICK_IMAGES if args.quick else args.images
    report["sets"] = {"receipts": receipts_set(work / "receipts", count), "pages": pages_set(work / "pages", args.quick)}
    runs = report["runs"]

    def run(key: str, folder: str, models: str, cap_s: float, env: dict[str, str] | None = None,
            extra: tuple[str, ...] = (), trial: bool = False) -> None:
        record(runs, key, lambda: docmill_run(work / folder, work / "out" / key.replace(":", "-"), models,
                                              budget.for_run(cap_s), env, extra), trial)
        save()

    report["session_probe"] = session_probe(args.models, args.device, args.quick)
    save()
    run("default:receipts", "receipts", args.models, RUN_CAP_S)
    report.update(headline(runs["default:receipts"]))
    for key, row in distributed(work / "receipts", args.models, [1] if args.quick else args.processes,
                                dict(os.environ), args.redis_server, work, budget).items():
        runs[key] = row
        print(f"  {key}: {row['images_per_s']} images/s", file=sys.stderr)
    report["best_run"] = max(runs, key=lambda key: runs[key]["images_per_s"])
    report["best_images_per_s"] = runs[report["best_run"]]["images_per_s"]
    save()
    fp16_models, report["fp16"] = fp16_variant(args, work)
    report["fp16_model_set"] = args.fp16_models or report["fp16"].get("set")
    run("default:pages", "pages", args.models, RUN_CAP_S)
    if fp16_models is not None:
        run("fp16:receipts", "receipts", fp16_models, RUN_CAP_S)
        run("fp16:pages", "pages", fp16_models, RUN_CAP_S)
    if args.sweep:
        receipts_set(work / "sweep", min(SWEEP_IMAGES, count))
        for label, extra_env, extra_args in SWEEP:
            run(f"sweep:{label}", "sweep", args.models, RUN_CAP_S / 2, extra_env, extra_args, trial=True)
        if fp16_models is not None:
            label, extra_env, extra_args = FP16_SWEEP
            run(f"sweep:{label}", "sweep", fp16_models, RUN_CAP_S / 2, extra_env, extra_args, trial=True)


def record(runs: dict[str, Any], key: str, attempt: Callable[[], dict[str, Any]], trial: bool = False) -> None:
    """`attempt`'s run into `runs` under `key`. A `trial` (a sweep's choice) that docmill
    refuses is recorded with its reason, and the sweep goes on: one choice this onnxruntime
    or GPU will not take must not cost the rest of a rare GPU's minutes."""
    try:
        runs[key] = attempt()
    except SystemExit as exc:
        if not trial:
            raise
        runs[key] = {"error": str(exc)}
    row = runs[key]
    print(f"  {key}: " + (f"{row['images_per_s']} images/s" if "images_per_s" in row else f"refused: {row['error']}"),
          file=sys.stderr)


def process_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("give one or more process counts, e.g. 2,4,8")
    return counts


def headline(run: dict[str, Any]) -> dict[str, Any]:
    """The top-level fields the issue names, from the default set's `docmill run` on the receipts."""
    return {key: run.get(key) for key in ("images_per_s", "gpu_util_mean", "stages_ms", "distinct_shapes")}


def _onnxruntime_version() -> str:
    return subprocess.run([sys.executable, "-c", "import onnxruntime; print(onnxruntime.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
