"""Run the peer, RapidOCR 1.4.4 (`rapidocr_onnxruntime`), over a folder of images and write one
docmill.result/v1-shaped JSON per image, so the same scorer reads both sides.

Runs only in `.venv-peer` (its CPU onnxruntime and opencv-python must stay out of docmill's
.venv), hence it imports nothing from docmill and writes the result JSON by hand.
Settings are the peer's own defaults; only the three model paths are given, so both sides
run the same ONNX files.

    .venv-peer/bin/python -m bench.peer_rapidocr --images DIR --out DIR --det D --cls C --rec R

Prints one JSON summary line on stdout: images, errors, load_s (engine construction),
seconds/images_per_s (the image loop) and steady_seconds/steady_images_per_s (the loop
without its first, warm-up image).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
SCHEMA_ID = "docmill.result/v1"


def list_images(root: Path, limit: int | None) -> list[Path]:
    """Images under `root`, sorted, so every run sees them in the same order."""
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return paths[:limit] if limit else paths


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def models_version(paths: list[Path]) -> str:
    """A content hash of the model files, standing in for a model set version."""
    joined = ",".join(sha256_file(p) for p in paths)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def build_engine(det: Path, cls: Path, rec: Path) -> Any:
    from rapidocr_onnxruntime import RapidOCR

    for path in (det, cls, rec):
        if not path.is_file():
            raise SystemExit(f"peer_rapidocr: {path}: no such model file")
    return RapidOCR(det_model_path=str(det), cls_model_path=str(cls), rec_model_path=str(rec))


def to_line(box: list[list[float]], text: str, score: float) -> dict[str, Any]:
    """The peer's (box, text, score) as a result line. Its public API drops the angle
    classifier's verdict, so angle is 0 and angle_score null."""
    points = [[max(0, round(x)), max(0, round(y))] for x, y in box]
    return {"text": text, "score": min(1.0, max(0.0, float(score))), "box": points,
            "angle": 0, "angle_score": None}


Outcome = tuple[dict[str, int] | None, list[dict], dict[str, float], dict[str, str] | None]


def ocr_one(engine: Any, path: Path) -> Outcome:
    """(image size, lines, timings in ms, error) for one image; decode is timed apart from
    the pipeline by handing the peer its own decoded array (the same thing it does for a path)."""
    from rapidocr_onnxruntime.utils import LoadImageError

    start = time.perf_counter()
    try:
        img = engine.load_img(path)
    except (LoadImageError, OSError, ValueError) as exc:
        decode = ms_since(start)
        return None, [], {"decode": decode, "total": decode}, {"code": "decode_error", "message": str(exc)}
    decode = ms_since(start)
    size = {"width": int(img.shape[1]), "height": int(img.shape[0])}
    try:
        found, elapse = engine(img)
    except Exception as exc:  # noqa: BLE001 -- the peer's own failure is a result, not a crash of the bench
        error = {"code": "engine_error", "message": repr(exc)}
        return size, [], {"decode": decode, "total": ms_since(start)}, error
    det, cls, rec = elapse if found else (0.0, 0.0, 0.0)  # the peer returns (None, None) on a blank page
    timings = {"decode": decode, "det": det * 1e3, "cls": cls * 1e3, "rec": rec * 1e3, "total": ms_since(start)}
    return size, [to_line(*item[:3]) for item in found or []], timings, None


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1e3


def result_doc(path: Path, models: dict[str, str], providers: list[str], size: dict | None,
               lines: list[dict], timings: dict[str, float], error: dict | None) -> dict[str, Any]:
    all_timings = {"decode": 0.0, "det": 0.0, "cls": 0.0, "rec": 0.0, "total": 0.0, **timings}
    return {"schema": SCHEMA_ID,
            "source": {"uri": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path),
                       "etag": None},
            "image": size, "models": models, "providers": providers, "lines": lines,
            "timings_ms": {k: round(v, 3) for k, v in all_timings.items()}, "error": error}


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1) + "\n", "utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, required=True, help="folder of images (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="writes OUT/<path under --images>.json")
    p.add_argument("--det", type=Path, required=True)
    p.add_argument("--cls", type=Path, required=True)
    p.add_argument("--rec", type=Path, required=True)
    p.add_argument("--limit", type=int, help="only the first N images (sorted by path)")
    p.add_argument("--set-name", default="rapidocr-peer", help="models.set in the results")
    p.add_argument("--set-version", help="models.version (default: a hash of the model files)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images = list_images(args.images, args.limit)
    started = time.perf_counter()
    engine = build_engine(args.det, args.cls, args.rec)
    load_s = time.perf_counter() - started
    models = {"set": args.set_name,
              "version": args.set_version or models_version([args.det, args.cls, args.rec])}
    providers = list(engine.text_det.infer.session.get_providers())
    run_folder(lambda path: ocr_one(engine, path), images, args.images, args.out, models, providers, load_s)
    return 0


def run_folder(ocr: Any, images: list[Path], root: Path, out: Path, models: dict[str, str],
               providers: list[str], load_s: float) -> None:
    """OCR every image with `ocr(path) -> Outcome`, write each result under `out`, print the
    summary line; shared by both peers so they are timed and written the same way."""
    per_image, errors = [], 0
    for path in images:
        t0 = time.perf_counter()
        size, lines, timings, error = ocr(path)
        per_image.append(time.perf_counter() - t0)
        errors += error is not None
        write_json(out / (str(path.relative_to(root)) + ".json"),
                   result_doc(path, models, providers, size, lines, timings, error))
    print(json.dumps(summary(len(images), errors, load_s, per_image)))


def summary(n: int, errors: int, load_s: float, per_image: list[float]) -> dict[str, Any]:
    """Loop timing with and without the first image, which pays ONNXRuntime's first-run costs."""
    seconds, steady = sum(per_image), sum(per_image[1:])
    return {"images": n, "errors": errors, "load_s": round(load_s, 4), "seconds": round(seconds, 4),
            "images_per_s": _rate(n, seconds), "steady_seconds": round(steady, 4),
            "steady_images_per_s": _rate(n - 1, steady)}


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 4) if seconds > 0 else None


if __name__ == "__main__":
    sys.exit(main())
