"""Show-through: the reverse side's text seen through thin paper. The detector boxes it and
the recogniser reads it as confident nonsense ("pob γssl ert rvo aqmui" at 0.74 for "The
quick brown fox jumps" seen from behind), which then fills the page's text, its searchable
PDF and its search index.

Such a line is faint and mirrored, so a faint line is read once more, mirrored; if that
reading is sure, and better than the line as it stands, it is the other side's text and is
dropped. Real text reads worse mirrored, or no better. `python -m bench.show_through` (the
demo pages over another's text seen from behind at 10, 18 and 30% of the ink's darkness):
the fronts' word F1 rose from 0.996 / 0.752 / 0.726 to 1.000 / 0.949 / 0.934, and the lines
read on blank fronts fell from 43 / 59 / 60 to 2 / 18 / 13 (what is left: numbers and short
words, which read alike both ways, and reverse-side words the detector joined to a front
line). On the 113 shared images (1,497 lines) it dropped no line, at the same speed: their
33 faint lines are the most it reads twice, and none of them reads better mirrored but a
one-character one. The reverse side's lines had a contrast of 21 to 65, the front lines
over them 235 or more.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from docmill.options import EngineOptions
from worker.engine import rec
from worker.engine.session import ModelSession

MAX_CONTRAST = 80  # grey levels between a crop's 5th and 95th percentiles: faint ink
MIRRORED_SCORE = 0.95  # a show-through line read mirrored is read surely (0.96 to 1.00 on the drawn pages)
MARGIN = 0.05  # and better than as it stands, by at least this
MIN_CHARS = 4  # a shorter mirrored reading ("0", "XS") proves nothing: many glyphs are symmetric


def contrast(crop: np.ndarray) -> int:
    """Grey levels between the crop's darkest and lightest 5%: the ink's strength against
    its paper, robust to a few specks."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    cumulative = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel().cumsum()
    total = cumulative[-1]
    return int(np.searchsorted(cumulative, 0.95 * total)) - int(np.searchsorted(cumulative, 0.05 * total))


def mirrored_lines(session: ModelSession, crops: Sequence[np.ndarray], texts: Sequence[rec.Recognized],
                   characters: Sequence[str], opts: EngineOptions) -> set[int]:
    """The indices of the crops (upright, as rec read them) that are show-through."""
    suspects = [i for i, (crop, text) in enumerate(zip(crops, texts))
                if text.score <= 1.0 - MARGIN and contrast(crop) < MAX_CONTRAST]
    if not suspects:
        return set()
    mirrored = rec.recognize(session, [cv2.flip(crops[i], 1) for i in suspects], characters, opts)
    return {i for i, again in zip(suspects, mirrored) if len(again.text.strip()) >= MIN_CHARS
            and again.score >= max(MIRRORED_SCORE, texts[i].score + MARGIN)}
