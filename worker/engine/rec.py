"""Text recognition (CTC): preprocess -> session run -> postprocess.

Follows PaddleOCR's TextRecognizer: height 48, aspect ratio kept, values scaled to [-1, 1],
right-padded with zeros. PaddleOCR pads each batch to its widest member, which makes a
crop's text depend on its batch mates (the SVTR neck attends over the padding). Here a
crop's padded width depends on the crop alone: its natural width rounded up to
`rec_width_multiple`, never below the model's 320. Crops sharing a width run together.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from docmill.options import EngineOptions
from worker.engine.lineimage import line_tensor
from worker.engine.session import ModelSession


@dataclass(frozen=True)
class Recognized:
    text: str
    score: float


def padded_width(crop: np.ndarray, opts: EngineOptions, fixed_width: int | None) -> int:
    """The width this crop is padded to: the model's fixed width if it has one, else its
    own width at height H rounded up to the bucket multiple, at least the base width."""
    if fixed_width:
        return fixed_width
    _, height, base = opts.rec_image_shape
    natural = int(height * crop.shape[1] / float(crop.shape[0]))
    step = opts.rec_width_multiple
    return max(base, -(-natural // step) * step)


def postprocess(probs: np.ndarray, characters: Sequence[str]) -> list[Recognized]:
    """Greedy CTC: best class per step, collapse repeats, drop blanks (class 0); the score
    is the mean probability of the kept steps (0 for an empty line)."""
    idx = probs.argmax(axis=2)
    best = probs.max(axis=2)
    out = []
    for row_idx, row_prob in zip(idx, best):
        keep = np.ones(len(row_idx), dtype=bool)
        keep[1:] = row_idx[1:] != row_idx[:-1]
        keep &= row_idx != 0
        text = "".join(characters[i] for i in row_idx[keep])
        score = float(row_prob[keep].mean()) if keep.any() else 0.0
        out.append(Recognized(text, score))
    return out


def recognize(
    session: ModelSession, crops: Sequence[np.ndarray], characters: Sequence[str], opts: EngineOptions
) -> list[Recognized]:
    """Recognise every crop: group by padded width, sort by aspect ratio inside a group,
    run batches of rec_batch_size, map results back to input order."""
    _, height, _ = opts.rec_image_shape
    fixed = session.input_shape[3] if isinstance(session.input_shape[3], int) else None
    groups: dict[int, list[int]] = defaultdict(list)
    for i, crop in enumerate(crops):
        groups[padded_width(crop, opts, fixed)].append(i)
    results: list[Recognized | None] = [None] * len(crops)
    for width, members in sorted(groups.items()):
        members.sort(key=lambda i: crops[i].shape[1] / float(crops[i].shape[0]))
        for start in range(0, len(members), opts.rec_batch_size):
            chunk = members[start : start + opts.rec_batch_size]
            batch = np.stack([line_tensor(crops[i], height, width) for i in chunk])
            for i, rec in zip(chunk, postprocess(session.run(batch), characters)):
                results[i] = rec
    return results  # type: ignore[return-value]


def output_characters(dictionary: Sequence[str]) -> list[str]:
    """Class index -> character: blank first, the dictionary, then the space PaddleOCR adds."""
    return ["", *dictionary, " "]
