"""Host CPU outside inference: what docmill itself costs per image, start-up included.

The GPU issue's measure: `docmill run` with one ONNXRuntime thread and one engine stream
(two streams' runs would wait for each other's cores inside their timed runs), the child's whole CPU
time (user + system, from its rusage) minus the seconds spent inside session runs (its JSON
summary's `session_s`), divided by the images it read. On a GPU host this is the work that
must keep up with the GPU, so it is the figure to cut. Each model set is run `--repeat`
times and the lowest is kept (the machine's noise only ever adds).

With `--steady`, each set also reads every image twice (a folder of two links to each), and
the difference gives the host CPU of one more image, start-up left out: on a GPU host
that reads thousands of pages per process, that is the figure that sizes the CPUs.

With `--cuda-path`, `docmill run` goes through the engine's CUDA branches on CPU
(bench.cuda_path): the CUDA defaults, the CTC head in rec's graph, batch buckets. Its host
CPU is what a GPU worker spends outside its GPU's runs, but for decoding's and copying's
differences on a real GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.paths import REPO, SROIE_IMAGES
from bench.results import save_result
from bench.run_bench import DOCMILL_BIN
from docmill.settings import DEFAULT_MODEL_SET

DEFAULT_IMAGES = SROIE_IMAGES
ONE_THREAD = {"DOCMILL_INTRA_OP_THREADS": "1", "DOCMILL_INTER_OP_THREADS": "1", "DOCMILL_ENGINE_STREAMS": "1"}


def _child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _docmill_run(cuda_path: bool) -> list[str]:
    """`docmill run`, or the same through the engine's CUDA branches on CPU."""
    return [sys.executable, "-m", "bench.cuda_path", "run"] if cuda_path else [str(DOCMILL_BIN), "run"]


def measure(models: str, images: Path, cuda_path: bool = False) -> dict:
    """One `docmill run` of `images` on `models` with one ORT thread and stream: its CPU, session time,
    and their difference per image (ms)."""
    env = {**os.environ, **ONE_THREAD}
    with tempfile.TemporaryDirectory(prefix="docmill-hostcpu-") as out:
        before, start = _child_cpu_s(), time.perf_counter()
        proc = subprocess.run([*_docmill_run(cuda_path), str(images), "--out", out,
                               "--models", models, "--device", "cpu", "--quiet"],
                              env=env, cwd=REPO, capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - start, _child_cpu_s() - before
    if proc.returncode != 0:
        raise SystemExit(f"docmill run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    summary = json.loads(proc.stdout)
    return {"models": models, "images": summary["images"] + summary["pages"], "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3), "session_s": round(sum(summary["session_s"].values()), 3),
            "session_by_model_s": summary["session_s"], "host_ms_per_image": host_ms_per_image(cpu, summary),
            "stage_s": summary["stage_s"], "distinct_shapes": summary["distinct_shapes"]}


def host_ms_per_image(cpu_s: float, summary: dict) -> float:
    """CPU seconds of a `docmill run` outside its session runs, per image or page, in ms. Trees from
    before documents were read have no `pages` in their summary (bench.versus runs them)."""
    host_s = cpu_s - sum(summary["session_s"].values())
    return round(host_s * 1000 / (summary["images"] + summary.get("pages", 0)), 1)


def doubled(images: Path, folder: Path) -> Path:
    """`folder` holding two links (a- and b-) to each file directly in `images`."""
    for path in sorted(images.iterdir()):
        if path.is_file():
            for prefix in ("a-", "b-"):
                (folder / f"{prefix}{path.name}").symlink_to(path.resolve())
    return folder


def steady(once: dict, twice: dict) -> dict:
    """Host CPU of one more image (ms) and of start-up (s), from runs over N and 2N images."""
    host = [run["cpu_s"] - run["session_s"] for run in (once, twice)]
    extra = twice["images"] - once["images"]
    per_image = (host[1] - host[0]) / extra
    return {"steady_host_ms_per_image": round(per_image * 1000, 1),
            "startup_host_s": round(host[0] - per_image * once["images"], 3)}


def best_of(models: str, images: Path, repeat: int, cuda_path: bool = False) -> dict:
    runs = [measure(models, images, cuda_path) for _ in range(repeat)]
    best = min(runs, key=lambda run: run["host_ms_per_image"])
    best["runs_host_ms_per_image"] = [run["host_ms_per_image"] for run in runs]
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=f"{DEFAULT_MODEL_SET},pp-ocrv4-ch", help="comma-separated model sets")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--steady", action="store_true", help="also run each image twice: host CPU per extra image")
    parser.add_argument("--cuda-path", action="store_true", help="through the engine's CUDA branches on CPU "
                                                                 "(bench.cuda_path)")
    args = parser.parse_args(argv)
    if not args.images.is_dir():
        raise SystemExit(f"no images at {args.images}: give --images a folder")
    rows = []
    with tempfile.TemporaryDirectory(prefix="docmill-hostcpu-twice-") as twice_dir:
        twice = doubled(args.images, Path(twice_dir)) if args.steady else None
        for models in args.models.split(","):
            best = best_of(models, args.images, args.repeat, args.cuda_path)
            line = (f"{models:14s} {best['images']} images  host CPU outside inference "
                    f"{best['host_ms_per_image']:.1f} ms/image (runs {best['runs_host_ms_per_image']}); "
                    f"cpu {best['cpu_s']} s, session {best['session_s']} s")
            if twice is not None:
                best.update(steady(best, best_of(models, twice, args.repeat, args.cuda_path)))
                line += (f"; one more image {best['steady_host_ms_per_image']} ms, "
                         f"start-up {best['startup_host_s']} s")
            rows.append(best)
            print(line, flush=True)
    path = save_result("host_cpu", {"images": str(args.images), "cuda_path": args.cuda_path, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
