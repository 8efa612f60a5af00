"""`make bench`: docmill against its peers, side by side in one run, on the same images. A
benchmark, not a test: it prints a table and writes it to bench/results/latest.json; it fails
only when a side cannot run at all.

    .venv/bin/python -m bench.run_bench [--dataset sroie|paddleocr|all] [--models SET]
                                        [--repeat N] [--sides SIDE,...] [--device auto]

A side is `docmill:SET` (`docmill run` on that model set), `rapidocr:SET` (RapidOCR 1.4.4 in
.venv-peer on the same set's det/cls/rec files), or `rapidocr3` (the newest peer, RapidOCR
3.10.0 in .venv-peer3, with its own defaults and the PP-OCRv6 files it ships). By default:
docmill on --models and on pp-ocrv6 (the same files as RapidOCR 3.10.0), RapidOCR 3.10.0,
and docmill and RapidOCR 1.4.4 on pp-ocrv4-ch. Ratios are docmill / the peer: against
RapidOCR 3.10.0, and against RapidOCR 1.4.4 on the same files.

Each side runs as its own process and is timed from the outside, the same way for all:
- images/s: images / wall time of the whole process (start-up and model load included);
- steady/s: (images - 1) / (wall of the full run - wall of a run on the first image alone),
  i.e. start-up, model load and the warm-up image taken out by a baseline measured in the
  same round;
- CPU s/image: the steady part again, in CPU seconds (user + sys) rather than wall: much
  less sensitive to other load on the machine than the rates;
- peak RSS: ru_maxrss of the process (os.wait4);
- model %: the side's own det+cls+rec time (summed timings_ms) over the wall of that run;
- accuracy: ../shared/bench/score.py on the results (datasets with labels only).
Rounds alternate the order of the sides; the figures are medians over rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.paths import PADDLEOCR_TRUTH, REPO, SHARED, SROIE_IMAGES, SROIE_LABELS
from bench.results import save_result
from docmill.inputs import is_image_name
from docmill.settings import DEFAULT_MODEL_SET

SCORER = SHARED / "bench" / "score.py"
DOCMILL_BIN = REPO / ".venv" / "bin" / "docmill"
PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"
PEER3_PYTHON = REPO / ".venv-peer3" / "bin" / "python"
NEWEST_PEER = "rapidocr3"
V6_SET, V4_SET = "pp-ocrv6", "pp-ocrv4-ch"
PEER_SETUP = {"rapidocr": "make .venv-peer/.installed (RapidOCR 1.4.4, docmill's onnxruntime version)",
              "rapidocr3": "make .venv-peer3/.installed (RapidOCR 3.10.0, docmill's onnxruntime version)"}


@dataclass(frozen=True)
class Dataset:
    """`prefix` is where results must sit under the scored folder to match the labels' paths."""

    name: str
    images: Path
    prefix: str
    labels: Path | None = None
    ground_truth: Path | None = None  # {relative image path: [lines]}, checked for `checked`
    checked: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()  # only these subfolders of `images` (copied together first)

    def assembled(self, work: Path) -> "Dataset":
        """The dataset with `images` pointing at one folder holding just its `parts`."""
        if not self.parts:
            return self
        folder = work / f"{self.name}-images"
        for part in self.parts:
            shutil.copytree(self.images / part, folder / part, dirs_exist_ok=True)
        return dataclasses.replace(self, images=folder, parts=())


def datasets() -> dict[str, Dataset]:
    return {
        "sroie": Dataset("sroie", SROIE_IMAGES, "images", labels=SROIE_LABELS),
        "paddleocr": Dataset("paddleocr", PADDLEOCR_TRUTH.parent / "doc", "doc", ground_truth=PADDLEOCR_TRUTH,
                             checked=("doc/imgs_en/img_12.jpg",), parts=("imgs", "imgs_en")),
    }


@dataclass(frozen=True)
class Models:
    name: str
    version: str
    root: Path
    paths: dict[str, Path]


@dataclass
class Run:
    """One child process: wall and CPU seconds, peak RSS (KiB), exit code, output."""

    wall_s: float
    cpu_s: float
    maxrss_kib: int
    rc: int
    stdout: str
    stderr: str
    timed_out: bool = False


@dataclass
class SideRuns:
    full: list[Run] = field(default_factory=list)
    one: list[Run] = field(default_factory=list)
    out: Path | None = None  # the scored folder of the last full run


def resolve_models(ref: str) -> Models:
    """The set's files, verified, through docmill's resolver (a preset is imported on first
    use), so every side given this set runs the same files."""
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet, ModelSetError
    from docmill.settings import Settings

    try:
        mset = ModelSet.load(ensure_model_set(ref, Settings()))
    except ModelSetError as exc:
        raise SystemExit(f"bench: {exc}") from exc
    return Models(mset.name, mset.version, mset.root, {s: mset.path(s) for s in ("det", "cls", "rec")})


def measure(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float | None = None) -> Run:
    """Run a child to completion; os.wait4 gives its own peak RSS, unmixed with other children.
    After `timeout` seconds the child's whole process group is killed (`Run.timed_out`)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=timeout is not None)
        killer = threading.Timer(timeout, _kill_group, (proc.pid,)) if timeout else None
        if killer:
            killer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timed_out = killer is not None and killer.finished.is_set()
        if killer:
            killer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, proc.returncode,
                   out.read().decode(errors="replace"), err.read().decode(errors="replace"), timed_out)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Side:
    """One contender: `kind` (docmill, rapidocr, rapidocr3), the model set it runs, if any,
    and settings of docmill's own to try (`docmill:SET@DOCMILL_X=1`: env for that side; glibc's
    `MALLOC_*` tunables too)."""

    kind: str
    models: Models | None = None
    env: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        base = f"{self.kind}:{self.models.name}" if self.models else self.kind
        return base + "".join(f"@{key}={value}" for key, value in self.env)

    def command(self, images: Path, out: Path, device: str) -> list[str]:
        if self.kind == "docmill":
            assert self.models
            return [str(DOCMILL_BIN), "run", str(images), "--out", str(out), "--models", str(self.models.root),
                    "--device", device, "--quiet"]
        if self.kind == NEWEST_PEER:
            return [str(PEER3_PYTHON), "-m", "bench.peer_rapidocr3", "--images", str(images), "--out", str(out)]
        assert self.models
        return [str(PEER_PYTHON), "-m", "bench.peer_rapidocr", "--images", str(images), "--out", str(out),
                "--det", str(self.models.paths["det"]), "--cls", str(self.models.paths["cls"]),
                "--rec", str(self.models.paths["rec"]), "--set-name", self.models.name,
                "--set-version", self.models.version]


def parse_sides(text: str) -> list[Side]:
    """`docmill:SET,rapidocr:SET,rapidocr3` -> sides, each set resolved once."""
    sets: dict[str, Models] = {}
    sides = []
    for spec in dict.fromkeys(part.strip() for part in text.split(",") if part.strip()):
        head, *assignments = spec.split("@")
        kind, _, set_ref = head.partition(":")
        env = tuple(tuple(a.split("=", 1)) for a in assignments)
        if kind not in ("docmill", "rapidocr", NEWEST_PEER) or (kind == NEWEST_PEER) != (not set_ref) \
                or any(len(pair) != 2 or not pair[0].startswith(("DOCMILL_", "MALLOC_")) for pair in env) \
                or (env and kind != "docmill"):
            raise SystemExit(f"bench: side {spec!r}: use docmill:SET[@DOCMILL_X=V...], rapidocr:SET "
                             f"or {NEWEST_PEER}")
        if set_ref and set_ref not in sets:
            sets[set_ref] = resolve_models(set_ref)
        sides.append(Side(kind, sets.get(set_ref), env))  # type: ignore[arg-type]
    return sides


def default_sides(models: str) -> str:
    return ",".join(dict.fromkeys([f"docmill:{models}", f"docmill:{V6_SET}", NEWEST_PEER,
                                   f"docmill:{V4_SET}", f"rapidocr:{V4_SET}"]))


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_name(p.name))


def one_image_folder(images: list[Path], root: Path, work: Path) -> Path:
    """A folder holding only the first image: the baseline run (start-up, load, warm-up)."""
    folder = work / "one-image"
    target = folder / images[0].relative_to(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(images[0], target)
    return folder


def run_rounds(ds: Dataset, sides: list[Side], repeat: int, device: str, work: Path) -> dict[str, SideRuns]:
    """`repeat` rounds; odd rounds reverse the side order so neither always runs first
    (page cache, CPU clocks). Each side writes into a fresh folder every time: nothing reused."""
    one = one_image_folder(list_images(ds.images), ds.images, work)
    runs = {side.label: SideRuns() for side in sides}
    for rnd in range(repeat):
        for side in sides if rnd % 2 == 0 else sides[::-1]:
            base = work / f"{side_folder(side)}-r{rnd}"
            done = runs[side.label]
            done.one.append(_checked(side.label, measure(side.command(one, base / "one", device), REPO,
                                                         dict(side.env))))
            done.full.append(_checked(side.label, measure(
                side.command(ds.images, base / "full" / ds.prefix, device), REPO, dict(side.env))))
            done.out = base / "full"
            print(f"  {ds.name} round {rnd + 1}/{repeat} {side.label}: {done.full[-1].wall_s:.1f} s",
                  file=sys.stderr)
    return runs


def side_folder(side: Side) -> str:
    """A folder name for a side's outputs (labels hold ':', '@' and '=')."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in side.label)


def _checked(side: str, run: Run) -> Run:
    if run.rc != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"bench: {side} exited {run.rc}:\n{tail}")
    return run


def score(labels: Path, results: Path) -> dict[str, Any]:
    """The shared scorer's metrics (it prints one JSON object on its last line)."""
    done = subprocess.run([sys.executable, str(SCORER), str(labels), str(results), "--json"],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def result_docs(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text("utf-8")) for p in sorted(folder.rglob("*.json"))]


def stage_seconds(docs: list[dict[str, Any]]) -> dict[str, float]:
    """What each side reports as its own per-stage time, summed over images."""
    return {k: round(sum(d["timings_ms"][k] for d in docs) / 1e3, 3)
            for k in ("decode", "det", "cls", "rec", "total")}


def check_lines(ds: Dataset, folder: Path) -> dict[str, Any]:
    """Recognised lines of the transcribed document pages against ground_truth.json."""
    from demo.scoring import compare_lines

    if not ds.ground_truth:
        return {}
    truth = json.loads(ds.ground_truth.read_text("utf-8"))
    out = {}
    for rel in ds.checked:
        doc = json.loads((folder / f"{rel}.json").read_text("utf-8"))
        out[rel] = compare_lines(truth[rel], [line["text"] for line in doc["lines"]])
    return out


def summarise(ds: Dataset, runs: SideRuns, n_images: int) -> dict[str, Any]:
    """Medians over rounds; steady rate from per-round differences against the baseline."""
    wall = statistics.median(r.wall_s for r in runs.full)
    steady = statistics.median(f.wall_s - o.wall_s for f, o in zip(runs.full, runs.one, strict=True))
    steady_cpu = statistics.median(f.cpu_s - o.cpu_s for f, o in zip(runs.full, runs.one, strict=True))
    docs = result_docs(runs.out)
    stages = stage_seconds(docs)
    model_s = stages["det"] + stages["cls"] + stages["rec"]
    row: dict[str, Any] = {
        "images": n_images, "errors": sum(d["error"] is not None for d in docs),
        "wall_s": round(wall, 3), "images_per_s": round(n_images / wall, 4),
        "baseline_s": round(statistics.median(r.wall_s for r in runs.one), 3),
        "steady_images_per_s": round((n_images - 1) / steady, 4) if steady > 0 else None,
        "steady_cpu_s_per_image": round(steady_cpu / (n_images - 1), 3) if n_images > 1 else None,
        "peak_rss_mb": round(max(r.maxrss_kib for r in runs.full) / 1024, 1),
        "providers": docs[0]["providers"] if docs else [],
        "stage_s": stages, "model_s": round(model_s, 3),
        "model_share": round(model_s / runs.full[-1].wall_s, 3),  # the run the results came from
        "walls_s": [round(r.wall_s, 3) for r in runs.full],
        "baseline_walls_s": [round(r.wall_s, 3) for r in runs.one],
        "cpus_s": [round(r.cpu_s, 3) for r in runs.full],
    }
    row.update(session_overhead(runs.full[-1], wall=runs.full[-1].wall_s))
    if ds.labels:
        metrics = score(ds.labels, runs.out)
        row.update({k: round(metrics[k], 4) for k in ("word_f1", "cer_nospace", "det_recall")})
    if ds.checked:
        row["line_check"] = check_lines(ds, runs.out)
    return row


def session_overhead(run: Run, wall: float) -> dict[str, Any]:
    """docmill's own account (its JSON summary line): per stage, the stage's wall time over
    the time inside session runs, and the whole run's wall over all session time: what is
    left to win outside the models. Empty for a side that does not report it."""
    try:
        summary = json.loads(run.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}
    sessions, stages = summary.get("session_s"), summary.get("stage_s")
    if not sessions or not stages:
        return {}
    ratios = {k: round(stages[k] / sessions[k], 3) for k in sessions if sessions[k] > 0 and k in stages}
    return {"session_s": sessions, "stage_over_session": ratios,
            "wall_over_session": round(wall / sum(sessions.values()), 3)}


def add_ratios(rows: dict[str, dict[str, Any]]) -> None:
    """On each docmill row, docmill / peer for both rates: against the newest peer, and
    against RapidOCR 1.4.4 on the same model files (a peer's own rows carry none)."""
    for label, ours in rows.items():
        kind, _, set_name = label.partition(":")
        if kind != "docmill":
            continue
        for tag, peer in (("newest", rows.get(NEWEST_PEER)), ("same_files", rows.get(f"rapidocr:{set_name}"))):
            if not peer:
                continue
            ours[f"rss_ratio_{tag}"] = round(ours["peak_rss_mb"] / peer["peak_rss_mb"], 3)
            for key in ("images_per_s", "steady_images_per_s"):
                if ours.get(key) and peer.get(key):
                    ours[f"ratio_{tag}_{key}"] = round(ours[key] / peer[key], 3)


COLUMNS = (  # header, row key, width, format; x3.10 / x1.4.4: docmill over RapidOCR 3.10.0 / 1.4.4
    ("images/s", "images_per_s", 9, ".3f"), ("x3.10", "ratio_newest_images_per_s", 6, ".2f"),
    ("x1.4.4", "ratio_same_files_images_per_s", 7, ".2f"), ("steady/s", "steady_images_per_s", 9, ".3f"),
    ("x3.10", "ratio_newest_steady_images_per_s", 6, ".2f"),
    ("x1.4.4", "ratio_same_files_steady_images_per_s", 7, ".2f"),
    ("CPU s/img", "steady_cpu_s_per_image", 10, ".2f"), ("RSS MB", "peak_rss_mb", 7, ".0f"),
    ("word_f1", "word_f1", 8, ".3f"), ("cer_ns", "cer_nospace", 7, ".3f"),
    ("det_rec", "det_recall", 8, ".3f"), ("model %", "model_share", 8, ".0%"),
)


def format_table(title: str, rows: dict[str, dict[str, Any]]) -> str:
    """One line per side; a dash where a figure does not apply (no labels, single side)."""
    def cell(r: dict[str, Any], key: str, width: int, fmt: str) -> str:
        return (format(r[key], fmt) if r.get(key) is not None else "-").rjust(width)

    pad = max(len(side) for side in rows) + 1
    lines = [title, " " * pad + "".join(h.rjust(w) for h, _, w, _ in COLUMNS) + "  providers"]
    for side, r in rows.items():
        lines.append(side.ljust(pad) + "".join(cell(r, k, w, f) for _, k, w, f in COLUMNS)
                     + "  " + ",".join(r["providers"]))
        if r.get("stage_over_session"):
            per_stage = ", ".join(f"{k} {v:.2f}" for k, v in r["stage_over_session"].items())
            lines.append(" " * pad + f"wall / time in session runs: run {r['wall_over_session']:.2f}; "
                         f"per stage {per_stage}")
        for image, check in r.get("line_check", {}).items():
            lines.append(" " * pad + f"{image}: {check['exact_lines']}/{check['expected_lines']} lines exact "
                         f"in order, {check['char_edit_distance']} char edits (whitespace ignored)")
    return "\n".join(lines)


def bench_dataset(ds: Dataset, sides: list[Side], repeat: int, device: str, work: Path) -> dict[str, Any]:
    ds = ds.assembled(work)
    n_images = len(list_images(ds.images))
    runs = run_rounds(ds, sides, repeat, device, work / ds.name)
    rows = {side.label: summarise(ds, runs[side.label], n_images) for side in sides}
    add_ratios(rows)
    return {"images": n_images, "path": str(ds.images), "rows": rows}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["sroie", "paddleocr", "all"], default="sroie")
    p.add_argument("--models", default=DEFAULT_MODEL_SET, help="docmill's default model set (name or folder)")
    p.add_argument("--repeat", type=int, default=2, help="rounds, alternating the side order")
    p.add_argument("--sides", help="comma-separated docmill:SET, rapidocr:SET, rapidocr3 "
                   "(default: see the module docstring)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="docmill's device (the peers always run on CPU, their default)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be 1 or more")
    return args


def missing_tools(sides: list[Side]) -> str | None:
    need = {"docmill": DOCMILL_BIN, "rapidocr": PEER_PYTHON, NEWEST_PEER: PEER3_PYTHON}
    for side in sides:
        if not need[side.kind].is_file():
            return f"{need[side.kind]} not found; " + PEER_SETUP.get(side.kind, "install docmill into .venv")
    return None


def report_header(args: argparse.Namespace, sides: list[Side]) -> dict[str, Any]:
    """What a reader needs to compare two latest.json files: host, load, models, settings."""
    load = os.getloadavg()
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print(f"bench: note: load average {load[0]:.1f} on {os.cpu_count()} CPUs before start; "
              "rates will be noisy (CPU s/img less so)", file=sys.stderr)
    return {"schema": "docmill.bench/v1",
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                     "python": platform.python_version()},
            "load_average_at_start": [round(x, 2) for x in load],
            "sides": {side.label: {"set": side.models.name, "version": side.models.version} if side.models
                      else {"set": side.kind} for side in sides},
            "default_set": args.models,
            "repeat": args.repeat, "device": args.device, "datasets": {}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not SHARED.is_dir():
        print(f"bench: {SHARED} not found; nothing to benchmark against (skipped)")
        return 0
    sides = parse_sides(args.sides or default_sides(args.models))
    problem = missing_tools(sides)
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 2
    chosen = ["sroie", "paddleocr"] if args.dataset == "all" else [args.dataset]
    report = report_header(args, sides)
    with tempfile.TemporaryDirectory(prefix="docmill-bench-") as work:
        for name in chosen:
            ds = datasets()[name]
            report["datasets"][name] = result = bench_dataset(ds, sides, args.repeat, args.device, Path(work))
            print(format_table(f"{name}: {result['images']} images, {args.repeat} round(s), "
                               f"{os.cpu_count()} CPUs", result["rows"]))
    print(f"written {save_result('latest', report).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
