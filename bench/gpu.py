"""`make bench-gpu`: one prepared benchmark for a machine with one NVIDIA GPU, that needs no
package registry. Rehearse it anywhere with `make bench-gpu ARGS="--device cpu --quick"` (the
test suite does), so it cannot rot before a GPU is at hand.

    python -m bench.gpu [--device cuda|cpu] [--quick] [--wheels DIR] [--redis-server PATH]
                        [--images 2000] [--processes 2] [--models SET] [--fp16-models SET]

1. Set-up: with `--wheels DIR`, installs every wheel there (onnxruntime-gpu, celery, redis,
   boto3, pydantic, shapely, pyclipper, moto, onnxconverter-common for the FP16 copy, ...) into `.gpu-deps/` with pip's --no-index, and
   puts it first on the path; otherwise uses what is installed. A redis-server comes from PATH
   or `--redis-server` (for example one unpacked with `dpkg -x`). The model sets come from the
   model cache (carry `~/.cache/docmill/models` and point DOCMILL_CACHE_DIR at it): nothing is
   fetched.
2. `docmill run` on the SROIE sample receipts repeated to `--images`, and on PaddleOCR's
   document pages, with `--models` and its FP16 copy: `--fp16-models` when given, else one
   built here from `--models` by `docmill models fp16`'s own function, accuracy gate
   included (on CUDA, against `--models` on CUDA); a copy that fails the gate is recorded and
   not run. With `--device cpu` the copy is built but neither gated nor run: ONNXRuntime's CPU
   provider computes these models in float32 (converter/fp16.py), so the JSON says so instead.
3. The distributed path on this machine: its own Redis, the S3 test server, a published model
   set, `docmill worker --processes N`, a producer job over the receipts.

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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.distributed import free_port, s3_with_models, wait_job
from bench.results import save_result
from bench.run_bench import REPO, SHARED, measure

RECEIPTS = SHARED / "data" / "sroie_sample" / "images"
PAGES = SHARED / "data" / "paddleocr" / "doc"
DEPS = REPO / ".gpu-deps"
QUICK_IMAGES = 6
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


def install_wheels(wheels: Path) -> float:
    """Every wheel in `wheels` into DEPS, offline; seconds taken."""
    started = time.perf_counter()
    found = sorted(str(p) for p in wheels.glob("*.whl"))
    if not found:
        raise SystemExit(f"bench.gpu: no .whl files in {wheels}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", "--target",
                    str(DEPS), *found], check=True)
    return time.perf_counter() - started


def child_env(device: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, DOCMILL_DEVICE=device, **(extra or {}))
    if DEPS.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(DEPS), str(REPO), env.get("PYTHONPATH")]))
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


def docmill_run(folder: Path, out: Path, models: str, env: dict[str, str]) -> dict[str, Any]:
    with GpuSampler() as gpu:
        run = measure([sys.executable, "-m", "docmill.cli", "run", str(folder), "--out", str(out), "--models",
                       models, "--quiet"], REPO, env)
    if run.rc != 0:
        raise SystemExit(f"bench.gpu: docmill run exited {run.rc}: {run.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    images = summary["images"]
    return {"images": images, "images_per_s": round(images / run.wall_s, 2), "wall_s": round(run.wall_s, 2),
            "engine_images_per_s": summary["images_per_s"], "providers": summary["providers"],
            "stages_ms": {k: round(v / images * 1000, 2) for k, v in summary["stage_s"].items()},
            "session_ms": {k: round(v / images * 1000, 2) for k, v in summary["session_s"].items()},
            "distinct_shapes": summary["distinct_shapes"], "host_rss_mb": round(run.maxrss_kib / 1024, 1),
            "failed": summary["failed"], **gpu.figures()}


def distributed(folder: Path, models: str, processes: int, env: dict[str, str], redis_bin: str,
                work: Path) -> dict[str, Any]:
    """Producer -> Redis -> `docmill worker --processes N` -> S3 on this machine."""
    redis_port, s3_port, queue = free_port(), free_port(), f"gpu-{os.getpid()}"
    env = dict(env, DOCMILL_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
               DOCMILL_S3_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}", AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    procs = [subprocess.Popen([redis_bin, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        s3, published = s3_with_models(env, models, procs)
        for path in sorted(folder.iterdir()):
            s3.upload_file(str(path.resolve()), "bench-in", f"receipts/{path.name}")
        procs.append(subprocess.Popen([sys.executable, "-m", "docmill.cli", "worker", "--queue", queue,
                                       "--processes", str(processes)], env=env,
                                      stdout=open(work / "worker.log", "wb"), stderr=subprocess.STDOUT))
        started = time.perf_counter()
        with GpuSampler() as gpu:
            job = subprocess.run([sys.executable, "-m", "docmill.cli", "produce", "s3://bench-in/receipts/", "--out",
                                  "s3://bench-out/receipts/", "--models", published, "--queue", queue, "--force"],
                                 env=env, check=True, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL).stdout.strip().splitlines()[-1]
            state = wait_job(env, job)
        seconds = time.perf_counter() - started
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    return {"images": state["done"] + state["failed"], "failed": state["failed"], "processes": processes,
            "seconds": round(seconds, 2), "images_per_s": round((state["done"] + state["failed"]) / seconds, 2),
            **gpu.figures()}


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
        folder, report = gated_fp16_set(fp32, settings, work / "fp16", work / "fp16-scratch", "cuda",
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
    p.add_argument("--processes", type=int, default=2, help="docmill worker --processes, distributed run")
    p.add_argument("--models", default="pp-ocrv6")
    p.add_argument("--fp16-models", help="the same set in FP16 (a folder or preset), run beside it; "
                   "default: built from --models here and gated (`docmill models fp16`)")
    args = p.parse_args(argv)
    if not RECEIPTS.is_dir():
        print(f"bench.gpu: {RECEIPTS} not found; nothing to measure (skipped)")
        return 0
    started = time.perf_counter()
    setup_s = install_wheels(args.wheels) if args.wheels else 0.0
    if DEPS.is_dir():
        sys.path.insert(0, str(DEPS))  # boto3 and redis for this process too
    env = child_env(args.device)
    count = QUICK_IMAGES if args.quick else args.images
    with tempfile.TemporaryDirectory(prefix="docmill-gpu-") as tmp:
        work = Path(tmp)
        sets = {"receipts": receipts_set(work / "receipts", count), "pages": pages_set(work / "pages", args.quick)}
        fp16_models, fp16 = fp16_variant(args, work)
        runs: dict[str, Any] = {}
        for label, models in (("default", args.models), ("fp16", fp16_models)):
            if models is None:
                continue
            for name in sets:
                runs[f"{label}:{name}"] = docmill_run(work / name, work / "out" / label / name, models, env)
                print(f"  {label} {name}: {runs[f'{label}:{name}']['images_per_s']} images/s", file=sys.stderr)
        runs["distributed:receipts"] = distributed(work / "receipts", args.models, 1 if args.quick else args.processes,
                                                   env, args.redis_server, work)
    report = {"schema": "docmill.bench.gpu/v1", "device": args.device, "quick": args.quick,
              "onnxruntime": _onnxruntime_version(env), "model_set": args.models,
              "fp16_model_set": args.fp16_models or fp16.get("set"), "fp16": fp16,
              "sets": sets, "setup_s": round(setup_s, 1), "runs": runs,
              "images_per_s": runs["default:receipts"]["images_per_s"],
              "gpu_util_mean": runs["default:receipts"]["gpu_util_mean"],
              "stages_ms": runs["default:receipts"]["stages_ms"],
              "distinct_shapes": runs["default:receipts"]["distinct_shapes"],
              "total_s": round(time.perf_counter() - started, 1)}
    name = "gpu" if args.device == "cuda" and not args.quick else "gpu-rehearsal"
    print(json.dumps({k: report[k] for k in ("device", "images_per_s", "gpu_util_mean", "distinct_shapes",
                                             "total_s")}))
    print(f"written {save_result(name, report).relative_to(REPO)}")
    if report["total_s"] > TIME_LIMIT_S:
        print(f"bench.gpu: took {report['total_s']} s, over the {TIME_LIMIT_S} s it must fit in", file=sys.stderr)
    return 0


def _onnxruntime_version(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", "import onnxruntime; print(onnxruntime.__version__)"], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
