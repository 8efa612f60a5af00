"""This checkout against another tree of docmill, on the same images, in one run: whether a
change made `docmill run` slower on this machine.

    .venv/bin/python -m bench.versus OTHER_TREE [--images DIR] [--rounds 3] [--host-cpu]
        [--models SET [--other-models SET]] [-- RUN ARGS...]

OTHER_TREE is a checkout of another commit (`git worktree add /tmp/old <commit>`); both run
with this checkout's virtual environment, the other tree first on PYTHONPATH, so only the
code differs. Rounds alternate which side goes first; each run is timed from the outside
(bench.run_bench.measure). It prints, per side, the runs' images/s from `docmill run`'s
summary, wall and CPU seconds, the CPU outside session runs per image, and their medians, and
writes bench/results/versus.json. `--host-cpu` runs both sides with one ORT thread and one
stream, so that last figure is bench.host_cpu's, measured turn about. `--other-models` gives
the other tree a set of its own: today's default set against the set an older tree read with.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.host_cpu import ONE_THREAD, host_ms_per_image
from bench.paths import REPO, SROIE_IMAGES
from bench.results import save_result
from bench.run_bench import measure

PYTHON = REPO / ".venv" / "bin" / "python"


def run_side(tree: Path, images: Path, extra: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """One `docmill run` of `images` with the code of `tree`."""
    with tempfile.TemporaryDirectory(prefix="docmill-versus-") as out:
        run = measure([str(PYTHON), "-m", "docmill.cli", "run", str(images), "--out", out, "--quiet", *extra],
                      cwd=tree, env={**(env or {}), "PYTHONPATH": str(tree)})
    if run.rc != 0:
        raise SystemExit(f"{tree}: docmill run failed ({run.rc}): {run.stderr.strip()[-400:]}")
    summary = json.loads(run.stdout)
    return {"images_per_s": summary["images_per_s"], "wall_s": round(run.wall_s, 2), "cpu_s": round(run.cpu_s, 2),
            "host_ms_per_image": host_ms_per_image(run.cpu_s, summary)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="more `docmill run` arguments go after --")
    parser.add_argument("other", type=Path, help="another docmill checkout")
    parser.add_argument("--images", type=Path, default=SROIE_IMAGES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--host-cpu", action="store_true", help="one ORT thread and stream, as bench.host_cpu")
    parser.add_argument("--models", help="model set for this tree (default: its own default)")
    parser.add_argument("--other-models", help="model set for the other tree (default: --models)")
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)  # argparse cannot take them after a positional
    args = parser.parse_args(argv[:cut])
    args.run_args = argv[cut + 1 :]
    if not (args.other / "docmill" / "cli.py").is_file():
        raise SystemExit(f"{args.other}: not a docmill checkout; make one with git worktree add")
    if not args.images.is_dir():
        raise SystemExit(f"no images at {args.images}: give --images a folder")
    sides = {"this": REPO, "other": args.other.resolve()}
    models = {"this": args.models, "other": args.other_models or args.models}
    side_args = {name: [*args.run_args, *(["--models", models[name]] if models[name] else [])] for name in sides}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    env = ONE_THREAD if args.host_cpu else None
    for round_no in range(args.rounds):
        order = list(sides) if round_no % 2 == 0 else list(reversed(sides))
        for name in order:
            runs[name].append(run_side(sides[name], args.images, side_args[name], env))
            print(f"round {round_no + 1} {name:5s} {runs[name][-1]}", flush=True)
    report = {"images": str(args.images), "other": str(sides["other"]), "models": models, "runs": runs,
              "medians": {name: {key: statistics.median(r[key] for r in side) for key in side[0]}
                          for name, side in runs.items()}}
    for name, median in report["medians"].items():
        print(f"median {name:5s} {median}")
    print(f"wrote {save_result('versus', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
