"""`--visualize`: the page with its boxes on the left and the recognised text placed at the
same positions on a white panel on the right (the layout of PaddleOCR's draw_ocr_box_txt)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from docmill.result import Line

_BOX_COLOUR = (0, 160, 0)


def render_png(image: np.ndarray, lines: Sequence[Line]) -> bytes:
    """PNG bytes of the side-by-side rendering for a BGR image and its result lines."""
    h, w = image.shape[:2]
    left = image.copy()
    right = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(right)
    for line in lines:
        pts = np.array(line.box, dtype=np.int32)
        cv2.polylines(left, [pts], True, _BOX_COLOUR, max(1, min(h, w) // 400))
        draw.polygon([tuple(p) for p in line.box], outline=(0, 160, 0))
        box_h = max(8, int(np.linalg.norm(pts[0] - pts[3])))
        font = ImageFont.load_default(size=max(8, int(box_h * 0.8)))
        draw.text((int(pts[0][0]), int(pts[0][1])), line.text, fill=(0, 0, 0), font=font)
    canvas = np.hstack([left, cv2.cvtColor(np.asarray(right), cv2.COLOR_RGB2BGR)])
    ok, png = cv2.imencode(".png", canvas)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()
