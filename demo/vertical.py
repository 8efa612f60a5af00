"""Pages of vertical Chinese and Japanese: upright characters in columns that run down the
page, read right to left, as books, newspapers and signs set them. Drawn with Droid Sans
Fallback (Debian fonts-droid-fallback), whose glyphs cover both scripts, so each column is an
exact-match target and reading order has a known answer.

- `poems`: five columns of ten characters (Tang quatrains, in the public domain);
- `haiku`: three Japanese columns, kana and kanji (Basho's frog, and two plain sentences);
- `tiers`: two tiers of four columns of fourteen characters under each other, a rule between
  them, as a newspaper sets them: the top tier is read first, each right to left. Tiers of
  columns under about eight characters are read across the rule instead, each column then
  the one under it: the layout takes a gutter only between lines at least 8 times longer
  than high, the rule that keeps a receipt's labels beside their amounts
  (worker/engine/layout.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf")  # Debian fonts-droid-fallback
FONT_PX, PITCH, COLUMN_GAP, MARGIN = 44, 48, 80, 80

POEMS = ("床前明月光疑是地上霜", "举头望明月低头思故乡", "白日依山尽黄河入海流", "欲穷千里目更上一层楼",
         "春眠不觉晓处处闻啼鸟")
HAIKU = ("古池や蛙飛び込む水の音", "しずかな夜に月がのぼる", "東京の町はとても広い")
TIERS = (("朝辞白帝彩云间千里江陵一日还", "两岸猿声啼不住轻舟已过万重山", "故人西辞黄鹤楼烟花三月下扬州",
          "孤帆远影碧空尽唯见长江天际流"),
         ("月落乌啼霜满天江枫渔火对愁眠", "姑苏城外寒山寺夜半钟声到客船", "黄河远上白云间一片孤城万仞山",
          "羌笛何须怨杨柳春风不度玉门关"))


def _columns(draw: ImageDraw.ImageDraw, columns: tuple[str, ...], right: int, top: int) -> None:
    """Each column's characters top to bottom, the first column at the right."""
    font = ImageFont.truetype(str(FONT), FONT_PX)
    for k, column in enumerate(columns):
        x = right - FONT_PX - k * COLUMN_GAP
        for i, char in enumerate(column):
            draw.text((x, top + i * PITCH), char, fill=0, font=font)


def _tier_height(columns: tuple[str, ...]) -> int:
    return max(len(column) for column in columns) * PITCH


def _page(tiers: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """The tiers under each other, a rule between each two, as a BGR array."""
    width = 2 * MARGIN + max(len(columns) for columns in tiers) * COLUMN_GAP
    height = 2 * MARGIN + sum(_tier_height(columns) for columns in tiers) + (len(tiers) - 1) * 2 * MARGIN
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    top = MARGIN
    for n, columns in enumerate(tiers):
        if n:
            draw.line([(MARGIN, top - MARGIN), (width - MARGIN, top - MARGIN)], fill=0, width=2)
        _columns(draw, columns, width - MARGIN, top)
        top += _tier_height(columns) + 2 * MARGIN
    grey = np.asarray(page)
    return np.repeat(grey[:, :, None], 3, axis=2)


def pages() -> dict[str, tuple[np.ndarray, list[str]]]:
    """Each page by name: its BGR pixels and its columns in reading order."""
    return {"poems": (_page((POEMS,)), list(POEMS)),
            "haiku": (_page((HAIKU,)), list(HAIKU)),
            "tiers": (_page(TIERS), [column for columns in TIERS for column in columns])}
