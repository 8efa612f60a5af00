"""Run the newest peer, RapidOCR 3.10.0 (PyPI `rapidocr`), with its own defaults (the
PP-OCRv6 small det and rec it ships, its own pre- and post-processing) over a folder of
images, writing one docmill.result/v1-shaped JSON per image for the shared scorer.

Runs only in `.venv-peer3`, with the same onnxruntime version as docmill's .venv; it imports
nothing from docmill and shares the result writing with bench.peer_rapidocr.

    .venv-peer3/bin/python -m bench.peer_rapidocr3 --images DIR --out DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench.peer_rapidocr import list_images, ms_since, run_folder, to_line

SET_NAME = "rapidocr-3.10.0-defaults"


def ocr_one(engine: Any, path: Path) -> tuple[dict | None, list[dict], dict[str, float], dict | None]:
    """(image size, lines, timings in ms, error) for one image, decoded the peer's own way."""
    import cv2

    start = time.perf_counter()
    img = cv2.imread(str(path))
    decode = ms_since(start)
    if img is None:
        return None, [], {"decode": decode, "total": decode}, {"code": "decode_error", "message": "unreadable"}
    size = {"width": int(img.shape[1]), "height": int(img.shape[0])}
    try:
        out = engine(img)
    except Exception as exc:  # noqa: BLE001 -- the peer's own failure is a result, not a crash of the bench
        return size, [], {"decode": decode, "total": ms_since(start)}, {"code": "engine_error", "message": repr(exc)}
    det, cls, rec = (list(out.elapse_list) + [0.0, 0.0, 0.0])[:3]
    timings = {"decode": decode, "det": (det or 0.0) * 1e3, "cls": (cls or 0.0) * 1e3,
               "rec": (rec or 0.0) * 1e3, "total": ms_since(start)}
    if out.boxes is None or out.txts is None:
        return size, [], timings, None
    lines = [to_line(box.tolist(), text, score) for box, text, score in zip(out.boxes, out.txts, out.scores)]
    return size, lines, timings, None


def main(argv: list[str] | None = None) -> int:
    from rapidocr import RapidOCR

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    images = list_images(args.images, None)
    started = time.perf_counter()
    engine = RapidOCR()
    load_s = time.perf_counter() - started
    run_folder(lambda path: ocr_one(engine, path), images, args.images, args.out,
               {"set": SET_NAME, "version": "3.10.0"}, ["CPUExecutionProvider"], load_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
