"""Text recognition (CTC): preprocess -> session run -> postprocess.

Follows PaddleOCR's TextRecognizer: height 48, aspect ratio kept, values scaled to [-1, 1],
right-padded with zeros. PaddleOCR pads each batch to its widest member, which makes a
crop's text depend on its batch mates (the SVTR neck attends over the padding). Here a
crop's padded width depends on the crop alone: its natural width rounded up to
`rec_width_multiple`, never below the model's 320. Crops sharing a width run together.

With `word_boxes`, each line's words also say where they lie across the crop, from the CTC
steps their characters were read at (RapidOCR's `return_word_box` idea): a word runs from
half a character pitch before its first character's step to half a pitch after its last,
kept clear of the spaces' steps around it (word_spans).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from docmill.options import EngineOptions
from worker.engine.lineimage import line_batch, resized_width
from worker.engine.session import ModelSession


@dataclass(frozen=True)
class WordSpan:
    """A word of a recognised line and the columns it covers in the crop rec read, `left` and
    `right` as fractions of that crop's width (0 to 1)."""

    text: str
    score: float
    left: float
    right: float


@dataclass(frozen=True)
class Recognized:
    text: str
    score: float
    words: tuple[WordSpan, ...] | None = None  # with word_boxes only


def padded_width(crop: np.ndarray, opts: EngineOptions, fixed_width: int | None) -> int:
    """The width this crop is padded to: the model's fixed width if it has one, else its
    own width at height H rounded up to the bucket multiple, at least the base width."""
    if fixed_width:
        return fixed_width
    _, height, base = opts.rec_image_shape
    natural = int(height * crop.shape[1] / float(crop.shape[0]))
    step = opts.rec_width_multiple
    return max(base, -(-natural // step) * step)


def best_path(outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each step's best class and its probability, (batch, steps) each: as the engine's CTC
    head returns them (worker.engine.prepare), or taken here from a plain model's
    (batch, steps, classes) probabilities."""
    if len(outputs) == 2:
        return outputs[0], outputs[1]
    probs = outputs[0]
    best = probs.argmax(axis=2)
    return best, np.take_along_axis(probs, best[..., None], axis=2)[..., 0]  # half the cost of a max pass


def postprocess(outputs: Sequence[np.ndarray], characters: Sequence[str],
                extents: Sequence[float] | None = None) -> list[Recognized]:
    """Greedy CTC over a run's `outputs` (see best_path): best class per step, collapse
    repeats, drop blanks (class 0); the score is the mean probability of the kept steps (0
    for an empty line). With `extents` (each row's share of its steps that the crop fills,
    the rest being padding), each line's words too."""
    idx, best = best_path(outputs)
    keeps = idx != 0  # every row's kept steps at once, not row by row
    keeps[:, 1:] &= idx[:, 1:] != idx[:, :-1]
    out = []
    for row, (row_idx, row_prob, keep) in enumerate(zip(idx, best, keeps)):
        chars = [characters[i] for i in row_idx[keep].tolist()]
        kept_prob = row_prob[keep]
        score = float(kept_prob.mean()) if chars else 0.0
        words = None
        if extents is not None:
            step = 1 / (len(row_idx) * extents[row])
            words = word_spans(chars, (np.flatnonzero(keep) + 0.5) * step, kept_prob, step)
        out.append(Recognized("".join(chars), score, words))
    return out


def word_spans(chars: Sequence[str], centres: np.ndarray, probs: np.ndarray, step: float) -> tuple[WordSpan, ...]:
    """The line's words (runs of characters between spaces) with the crop columns they cover:
    `centres` are the characters' CTC step centres and `step` one step, as fractions of the
    crop's width. A word reaches half a character pitch beyond its outer characters, but
    stops half a step short of a neighbouring space's centre: a space is read in the middle
    of its gap, and narrow gaps would otherwise vanish between overreaching words."""
    runs: list[list[int]] = [[]]
    for k, char in enumerate(chars):
        if char.isspace():
            runs.append([])
        else:
            runs[-1].append(k)
    runs = [run for run in runs if run]
    half = _half_pitch(runs, centres)
    spaces = [float(centres[k]) for k, char in enumerate(chars) if char.isspace()]
    spans = []
    for run in runs:
        first, last = float(centres[run[0]]), float(centres[run[-1]])
        left = max([0.0, first - half] + [c + step / 2 for c in spaces if c < first])
        right = min([1.0, last + half] + [c - step / 2 for c in spaces if c > last])
        spans.append(WordSpan("".join(chars[k] for k in run), float(probs[run].mean()), left, right))
    return tuple(spans)


def _half_pitch(runs: list[list[int]], centres: np.ndarray) -> float:
    """Half the median step between neighbouring characters inside words (between any
    neighbours on a line of one-character words; the whole crop for a lone character)."""
    inside = [centres[b] - centres[a] for run in runs for a, b in zip(run, run[1:])]
    steps = inside or np.diff(centres).tolist()
    return float(np.median(steps)) / 2 if steps else 1.0


def batch_count(width: int, opts: EngineOptions) -> int:
    """Crops of this padded width per run: `rec_batch_size`, or with `rec_batch_width` as many
    as fit in that many columns (at least one, at most `rec_batch_size`); with `batch_buckets`,
    rounded down to a power of two, so that only a width's last run is padded."""
    count = opts.rec_batch_size if not opts.rec_batch_width else max(1, min(opts.rec_batch_size,
                                                                           opts.rec_batch_width // width))
    return 1 << (count.bit_length() - 1) if opts.batch_buckets else count  # full runs fill their bucket


def recognize(
    session: ModelSession, crops: Sequence[np.ndarray], characters: Sequence[str], opts: EngineOptions
) -> list[Recognized]:
    """Recognise every crop: group by padded width, sort by aspect ratio inside a group,
    run batches (batch_count), map results back to input order."""
    _, height, _ = opts.rec_image_shape
    fixed = session.input_width
    groups: dict[int, list[int]] = defaultdict(list)
    for i, crop in enumerate(crops):
        groups[padded_width(crop, opts, fixed)].append(i)
    results: list[Recognized | None] = [None] * len(crops)
    for width, members in sorted(groups.items()):
        members.sort(key=lambda i: crops[i].shape[1] / float(crops[i].shape[0]))
        per_run = batch_count(width, opts)
        for start in range(0, len(members), per_run):
            chunk = members[start : start + per_run]
            batch = line_batch([crops[i] for i in chunk], height, width)
            extents = [resized_width(crops[i], height, width) / width for i in chunk] if opts.word_boxes else None
            for i, rec in zip(chunk, postprocess(session.run_all(batch, opts.batch_buckets), characters, extents)):
                results[i] = rec
    return results  # type: ignore[return-value]


def output_characters(dictionary: Sequence[str]) -> list[str]:
    """Class index -> character: blank first, the dictionary, then the space PaddleOCR adds."""
    return ["", *dictionary, " "]
