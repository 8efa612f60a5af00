"""`--visualize`: the page with its boxes on the left and the recognised text placed in the
same boxes on a white panel on the right (the layout of PaddleOCR's draw_ocr_box_txt).

The text is set in Noto Sans CJK SC (the `noto-cjk-sans-otc` wheel, OFL-1.1): the default
models read Chinese, which Pillow's bundled font draws as empty boxes. Each line is drawn
upright into a patch the size of its box, at the largest size that fits, and the patch is
warped onto the box, so text follows a tilted box and never leaves it or the panel. A box
much taller than wide holds a vertical line: its text runs down, one glyph per row.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import cv2
import noto_cjk_sans_otc
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from docmill.result import Line

_BOX_COLOUR = (0, 160, 0)
_FONT_INDEX = 2  # Noto Sans CJK SC in the collection: simplified Chinese glyph forms
_REFERENCE_SIZE = 100  # measure at this size, then scale: glyph extents grow linearly
_FILL = 0.9  # of the box, leaving a margin so hinting never clips a glyph edge
_VERTICAL_RATIO = 1.5  # height / width above which a multi-glyph box is read as vertical


@lru_cache(maxsize=128)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(noto_cjk_sans_otc.FONT_PATH), max(1, size), index=_FONT_INDEX)


def _fitted_size(text: str, width: float, height: float) -> int:
    """The largest size at which `text` (drawn with anchor "mm") fits width x height."""
    left, top, right, bottom = _font(_REFERENCE_SIZE).getbbox(text, anchor="mm")
    scale = min(width / max(1, right - left), height / max(1, bottom - top))
    return int(_REFERENCE_SIZE * scale * _FILL)


def _text_patch(text: str, width: int, height: int) -> np.ndarray:
    """Greyscale patch (white ground) with `text` centred and fitted, vertical when tall."""
    patch = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(patch)
    if height > _VERTICAL_RATIO * width and len(text) > 1:
        pitch = height / len(text)
        font = _font(min(_fitted_size(ch, width, pitch) for ch in text if not ch.isspace()))
        for i, ch in enumerate(text):
            draw.text((width / 2, pitch * (i + 0.5)), ch, fill=0, font=font, anchor="mm")
    else:
        font = _font(_fitted_size(text, width, height))
        draw.text((width / 2, height / 2), text, fill=0, font=font, anchor="mm")
    return np.asarray(patch)


def _draw_text(panel: np.ndarray, box: np.ndarray, text: str) -> None:
    """Warp the fitted text patch onto `box`, darkening only the pixels the box covers."""
    width = int(round(max(np.linalg.norm(box[1] - box[0]), np.linalg.norm(box[2] - box[3]))))
    height = int(round(max(np.linalg.norm(box[3] - box[0]), np.linalg.norm(box[2] - box[1]))))
    if width < 2 or height < 2 or not text.strip():
        return
    x0, y0 = np.maximum(box.min(axis=0), 0).astype(int)
    x1, y1 = np.minimum(box.max(axis=0) + 1, panel.shape[1::-1]).astype(int)
    if x1 <= x0 or y1 <= y0:
        return
    src = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    warp = cv2.getPerspectiveTransform(src, np.float32(box - (x0, y0)))
    ink = cv2.warpPerspective(_text_patch(text, width, height), warp, (int(x1 - x0), int(y1 - y0)),
                              flags=cv2.INTER_LINEAR, borderValue=255)
    roi = panel[y0:y1, x0:x1]
    np.minimum(roi, ink[..., None], out=roi)


def render_png(image: np.ndarray, lines: Sequence[Line]) -> bytes:
    """PNG bytes of the side-by-side rendering for a BGR image and its result lines."""
    h, w = image.shape[:2]
    left = image.copy()
    right = np.full((h, w, 3), 255, dtype=np.uint8)
    thickness = max(1, min(h, w) // 400)
    for line in lines:
        pts = np.array(line.box, dtype=np.int32)
        _draw_text(right, pts.astype(np.float32), line.text)
        cv2.polylines(left, [pts], True, _BOX_COLOUR, thickness)
        cv2.polylines(right, [pts], True, _BOX_COLOUR, 1)
    ok, png = cv2.imencode(".png", np.hstack([left, right]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()
