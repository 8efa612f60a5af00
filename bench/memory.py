"""`make bench` (memory part): peak RSS and images/s on big scans, docmill beside its peers
in one run. A benchmark, not a test: it prints a table, writes bench/results/memory.json,
and fails only when a side cannot run at all.

    .venv/bin/python -m bench.memory [--sides SIDE,...] [--copies 24] [--sets big,mixed]

Sets, built from ../shared's images in a scratch folder:
- big: `--copies` copies of sroie_sample/images/424.jpg (4961x7016, 34.8 MP, 104 MB decoded);
- mixed: the 20 SROIE receipts, PaddleOCR's 25 document images and three more copies each
  of the two big scans (424.jpg, 426.jpg), in a shuffled (seeded) order;
- one-big: 424.jpg alone, the reference for the mixed set ("what one big page costs").

Sides are bench.run_bench's (`docmill:SET`, `rapidocr:SET`, `rapidocr3`; a docmill side may
carry settings, `docmill:SET@DOCMILL_X=V`). Each run is one process, timed and measured from
outside (wall, CPU, ru_maxrss). Ratios are docmill / the peer it is paired with: RapidOCR
3.10.0 for the PP-OCRv6 sides, RapidOCR 1.4.4 on the same files for the others.

Docmill's texts are also checked for what the budget must never change: every copy of the
big page reads the same as the page read alone.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.paths import SROIE_IMAGES
from bench.results import save_result
from bench.run_bench import (NEWEST_PEER, REPO, SHARED, V6_SET, Run, Side, _checked, list_images, measure,
                             missing_tools, parse_sides, side_folder)
from docmill.settings import DEFAULT_MODEL_SET

SROIE = SROIE_IMAGES
DOCS = SHARED / "data" / "paddleocr" / "doc"
BIG = ("424.jpg", "426.jpg")
EXTRA_BIG_COPIES = 3
SEED = 17
DEFAULT_SIDES = f"docmill:{DEFAULT_MODEL_SET},{NEWEST_PEER},docmill:pp-ocrv4-ch,rapidocr:pp-ocrv4-ch"


def big_set(folder: Path, copies: int) -> Path:
    folder.mkdir(parents=True)
    for n in range(copies):
        shutil.copyfile(SROIE / BIG[0], folder / f"big-{n:03d}.jpg")
    return folder


def one_big_set(folder: Path) -> Path:
    return big_set(folder, 1)


def mixed_set(folder: Path) -> Path:
    """Small receipts, document photos and big scans, shuffled; file names carry the order
    (every side reads a folder in sorted order)."""
    sources = [*sorted(SROIE.glob("*.jpg")), *list_images(DOCS),
               *[SROIE / name for name in BIG for _ in range(EXTRA_BIG_COPIES)]]
    random.Random(SEED).shuffle(sources)
    folder.mkdir(parents=True)
    for n, src in enumerate(sources):
        shutil.copyfile(src, folder / f"{n:03d}-{src.name}")
    return folder


def row(run: Run, images: int) -> dict[str, Any]:
    return {"images": images, "wall_s": round(run.wall_s, 2), "cpu_s": round(run.cpu_s, 2),
            "images_per_s": round(images / run.wall_s, 4), "cpu_s_per_image": round(run.cpu_s / images, 3),
            "peak_rss_mb": round(run.maxrss_kib / 1024, 1)}


def texts(folder: Path) -> dict[str, list[str]]:
    return {p.name: [line["text"] for line in json.loads(p.read_text("utf-8"))["lines"]]
            for p in sorted(folder.rglob("*.json"))}


def same_texts(big_out: Path, one_out: Path) -> bool:
    """Every copy of the big page read exactly as the page alone."""
    alone = next(iter(texts(one_out).values()))
    return all(lines == alone for lines in texts(big_out).values())


def peer_of(side: Side, labels: list[str]) -> str | None:
    """The peer a docmill side is compared with: RapidOCR 3.10.0 for PP-OCRv6 (the files it
    ships), RapidOCR 1.4.4 on the same files otherwise."""
    if side.kind != "docmill" or side.models is None:
        return None
    peer = NEWEST_PEER if side.models.name.startswith(V6_SET) else f"rapidocr:{side.models.name}"
    return peer if peer in labels else None


def add_ratios(rows: dict[str, dict[str, Any]], sides: list[Side]) -> None:
    labels = list(rows)
    for side in sides:
        peer = peer_of(side, labels)
        if not peer:
            continue
        ours, theirs = rows[side.label], rows[peer]
        ours["peer"] = peer
        for name in ("big", "mixed"):
            if name in ours and name in theirs:
                ours[name]["speed_ratio"] = round(ours[name]["images_per_s"] / theirs[name]["images_per_s"], 3)
                ours[name]["rss_ratio"] = round(ours[name]["peak_rss_mb"] / theirs[name]["peak_rss_mb"], 3)
        if "mixed" in ours and "one-big" in ours:
            ours["mixed"]["rss_over_one_big"] = round(ours["mixed"]["peak_rss_mb"] / ours["one-big"]["peak_rss_mb"], 3)


def run_side(side: Side, sets: dict[str, Path], work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, folder in sets.items():
        dest = work / "out" / side_folder(side) / name
        run = _checked(side.label, measure(side.command(folder, dest, "cpu"), REPO, dict(side.env)))
        out[name] = row(run, len(list_images(folder)))
        print(f"  {side.label} {name}: {out[name]['wall_s']} s, {out[name]['peak_rss_mb']} MB", file=sys.stderr)
    if side.kind == "docmill" and "big" in sets and "one-big" in sets:
        base = work / "out" / side_folder(side)
        out["big"]["same_texts_as_alone"] = same_texts(base / "big", base / "one-big")
    return out


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    pad = max(len(label) for label in rows) + 1
    lines = [" " * pad + f"{'set':>8}{'images/s':>10}{'x peer':>8}{'CPU s/img':>10}{'RSS MB':>8}{'x peer':>8}"]
    for label, r in rows.items():
        for name in ("big", "mixed", "one-big"):
            if name not in r:
                continue
            c = r[name]
            speed = f"{c['speed_ratio']:.2f}" if "speed_ratio" in c else "-"
            rss = f"{c['rss_ratio']:.2f}" if "rss_ratio" in c else "-"
            note = f"  mixed/one-big RSS {c['rss_over_one_big']:.2f}" if "rss_over_one_big" in c else ""
            if "same_texts_as_alone" in c:
                note += f"  same texts as alone: {c['same_texts_as_alone']}"
            lines.append(f"{label.ljust(pad)}{name:>8}{c['images_per_s']:>10.3f}{speed:>8}"
                         f"{c['cpu_s_per_image']:>10.2f}{c['peak_rss_mb']:>8.0f}{rss:>8}{note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sides", default=DEFAULT_SIDES)
    p.add_argument("--copies", type=int, default=24, help="copies of the big page in the big set")
    p.add_argument("--sets", default="big,mixed,one-big")
    args = p.parse_args(argv)
    if not (SROIE / BIG[0]).is_file():
        print(f"bench.memory: {SROIE / BIG[0]} not found; nothing to measure (skipped)")
        return 0
    sides = parse_sides(args.sides)
    problem = missing_tools(sides)
    if problem:
        print(f"bench.memory: {problem}", file=sys.stderr)
        return 2
    builders = {"big": lambda f: big_set(f, args.copies), "mixed": mixed_set, "one-big": one_big_set}
    chosen = [name.strip() for name in args.sets.split(",") if name.strip()]
    if unknown := [name for name in chosen if name not in builders]:
        p.error(f"--sets: unknown {', '.join(unknown)}; choose from {', '.join(builders)}")
    with tempfile.TemporaryDirectory(prefix="docmill-membench-") as tmp:
        work = Path(tmp)
        sets = {name: builders[name](work / "in" / name) for name in chosen}
        counts = {name: len(list_images(folder)) for name, folder in sets.items()}
        rows = {side.label: run_side(side, sets, work) for side in sides}
    add_ratios(rows, sides)
    print(format_table(rows))
    report = {"schema": "docmill.bench.memory/v1", "copies": args.copies, "seed": SEED, "sets": counts,
              "rows": rows}
    print(f"written {save_result('memory', report).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
