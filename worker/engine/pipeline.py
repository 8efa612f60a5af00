"""The OCR pipeline over a batch of images: det -> reading order -> crops -> cls -> rec.

Work is pooled across the images of a call: det runs batched per canvas shape, and the
crops of every image go through cls and rec together, so small pages and short lines
still fill batches. Every output maps back to its image; an image's lines never depend
on which other images share the call.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, TypeVar

import numpy as np

from docmill.options import DEVICE_DEFAULTS, EngineOptions
from docmill.result import ResultError
from worker.engine import cls, det, geometry, layout, orientation, rec, showthrough
from worker.engine.memory import fix_mmap_threshold, trim_heap
from worker.engine.pixels import as_bgr
from worker.engine.session import EngineCalls, ModelSession

T = TypeVar("T")

if TYPE_CHECKING:
    from docmill.modelset import ModelSet
    from docmill.settings import Settings

log = logging.getLogger(__name__)
STAGES = ("det", "cls", "rec")
# Engine calls run at once per process (Settings.engine_streams when set): while one is inside
# a model, another's host work goes on, so a GPU is fed without gaps; on CPU the two share
# the cores through narrow sessions (worker.engine.session).
DEFAULT_STREAMS = 2
# How much better a page's lines must read turned half round than as they stand for the line
# classifier's "upside down" to stand (_confirm_half_turns).
HALF_TURN_MARGIN = 0.1


@dataclass(frozen=True)
class TextWord:
    text: str
    score: float
    box: list[list[int]]


@dataclass(frozen=True)
class TextLine:
    text: str
    score: float
    box: list[list[int]]
    angle: int
    angle_score: float | None
    block: int = 0
    words: tuple[TextWord, ...] | None = None  # with word_boxes only


@dataclass
class PageLines:
    """One image's lines in reading order, the angle it was turned by to stand upright (when
    page orientation ran), and the model time attributed to it (ms)."""

    lines: list[TextLine] = field(default_factory=list)
    orientation: orientation.PageAngle | None = None
    timings_ms: dict[str, float] = field(default_factory=lambda: {"ori": 0.0, "det": 0.0, "cls": 0.0, "rec": 0.0})


@dataclass(frozen=True)
class _Crop:
    page: int
    box: np.ndarray
    image: np.ndarray
    vertical: bool = False  # turned a quarter to read (geometry.crop_line)

    @property
    def aspect(self) -> float:
        """Width over height of the crop as read: a line's length in line heights."""
        return self.image.shape[1] / self.image.shape[0]


@dataclass
class _Located:
    """A batch after orientation, detection and cropping: all that reading its lines needs
    (each page's turn and sizes, the line crops), and none of the pages' own pixels."""

    pages: list[PageLines]
    turns: list[orientation.PageAngle]
    original_hw: list[tuple[int, int]]
    upright_hw: list[tuple[int, int]]
    crops: list[_Crop]

    def page(self, index: int) -> "_Located":
        """One page's part alone, its crops renumbered as page 0, its lines not yet read."""
        crops = [_Crop(0, crop.box, crop.image, crop.vertical) for crop in self.crops if crop.page == index]
        fresh = PageLines(timings_ms=dict(self.pages[index].timings_ms))
        return _Located([fresh], [self.turns[index]], [self.original_hw[index]],
                        [self.upright_hw[index]], crops)


# What detection holds per pixel of its input, in decoded page pixels (3 bytes each): about
# 150 bytes of activations per input pixel (PP-OCRv6 det on CPU: peak RSS of one call on 1
# and 4 copies of a receipt, 296 and 425 MB, for 3 x 0.29 MP more input), so 48.
DET_PIXEL_WEIGHT = 48


def page_pixels(width: int, height: int, options: EngineOptions) -> int:
    """What the engine holds for one page of this size, in page pixels: the page itself and
    detection's working memory for its input (crops are cut from the page's own area). The
    unit of the pixel budget."""
    det_h, det_w = det.resized_shape(height, width, options)
    return width * height + DET_PIXEL_WEIGHT * det_h * det_w


def _word_boxes(crop: _Crop, spans: Sequence[rec.WordSpan], turned: bool, page_turn: int,
                upright_hw: tuple[int, int], original_hw: tuple[int, int]) -> tuple[TextWord, ...]:
    """A line's words boxed in the input's pixels: their spans of the crop rec read go back
    through the crop's turns and rectification onto the upright page, then through the
    page's turn, as the line's own box does."""
    quads = geometry.span_quads(crop.box, [(span.left, span.right) for span in spans], turned, crop.vertical)
    height, width = original_hw
    return tuple(
        TextWord(span.text, round(span.score, 6),
                 orientation.to_original(geometry.clip_box(quad, *upright_hw), page_turn, width, height)
                 .astype(int).tolist())
        for span, quad in zip(spans, quads))


def _runs(crop: _Crop, angle: cls.Angle | None) -> int:
    """Which way a line's text runs on the page it was cut from, in degrees clockwise: down
    the page (90) when its crop was turned a quarter to read it, then turned half round
    where the classifier read it upside down."""
    return ((90 if crop.vertical else 0) + (angle.angle if angle else 0)) % 360


def _as_read(crops: Sequence[_Crop], angles: list[cls.Angle] | None) -> list[np.ndarray]:
    """The crops as rec reads them: those the classifier turned half round, turned."""
    images = [c.image for c in crops]
    return cls.apply(images, angles) if angles else images


def _mean_score(texts: Iterable[rec.Recognized]) -> float:
    scores = [text.score for text in texts]
    return sum(scores) / len(scores) if scores else 0.0


def _by_page(crops: Sequence[_Crop]) -> dict[int, list[int]]:
    """Each page's crops' indices."""
    by_page: dict[int, list[int]] = defaultdict(list)
    for i, crop in enumerate(crops):
        by_page[crop.page].append(i)
    return by_page


def _runs_down(crops: Sequence[_Crop], min_aspect: float) -> bool | None:
    """Whether most of these crops' text runs down their page, or None where no line is long
    enough to say: text is weighed by length in line heights, and lines shorter than
    `min_aspect` (a digit alone is a tall box) do not count."""
    votes = {True: 0.0, False: 0.0}
    for crop in crops:
        if crop.aspect >= min_aspect:
            votes[crop.vertical] += crop.aspect
    if not any(votes.values()):
        return None
    return votes[True] > votes[False]


def _short_follow_page(crops: list[_Crop], uprights: Sequence[np.ndarray], min_aspect: float) -> list[_Crop]:
    """The crops, with those shorter than `min_aspect` line heights cut again the way their
    page's text runs. A box 1.5 times taller than wide is read turned a quarter (PaddleOCR's
    rule), but a short one is a character or two, which stand as their page's do: a lone
    digit's box is that tall, and read turned, the shared receipts' "3" came out as "m" and
    its line said it ran down the page. On a page whose text runs down, a digit's box is
    wide, and is turned with its neighbours."""
    out = list(crops)
    for members in _by_page(crops).values():
        down = _runs_down([crops[i] for i in members], min_aspect)
        if down is None:
            continue
        for i in members:
            crop = crops[i]
            if crop.aspect < min_aspect and crop.vertical != down:
                out[i] = _Crop(crop.page, crop.box, *geometry.crop_line(uprights[crop.page], crop.box, vertical=down))
    return out


def _lines_stand(crops: list[_Crop], by_page: dict[int, list[int]], upside_down: set[int],
                 min_aspect: float) -> dict[int, int]:
    """Per page, how far its lines stand turned (clockwise) on it: 180 where the classifier's
    majority reads them upside down, plus 90 where most of its text runs down the page
    (_runs_down), as on a sideways page the orientation model was not sure of or turned a
    quarter wrong."""
    return {page: ((90 if _runs_down([crops[i] for i in members], min_aspect) else 0)
                   + (180 if page in upside_down else 0)) % 360
            for page, members in by_page.items()}


def _further(turn: orientation.PageAngle, stands: int) -> int:
    """How much further than its turn a page was turned: what its lines stand turned, less a
    quarter that the page model finds no likelier than the page without it. Upright
    characters in vertical columns (Chinese, Japanese) run down a page that is not turned,
    and the page model sees them upright (0.92 on the shared `imgs/1.jpg`), where a sideways
    page it was not sure of still leans to its true turn."""
    if stands % 180 == 0 or turn.turned(stands).score > turn.turned(stands - 90).score:
        return stands
    return stands - 90


class OcrEngine:
    """Long-lived: holds one session per model and serves any number of calls, from any
    number of threads (it keeps no per-call state on itself). It owns everything about
    running models (providers, sessions, graph folding, the batch-with-fallback), so callers
    ask it for its providers and session time instead of reaching into its sessions."""

    def __init__(
        self,
        det_session: ModelSession,
        cls_session: ModelSession | None,
        rec_session: ModelSession,
        dictionary: Sequence[str],
        options: EngineOptions,
        ori_session: ModelSession | None = None,
        streams: int = 1,
        calls: EngineCalls | None = None,
    ):
        self.det_session = det_session
        self.cls_session = cls_session
        self.rec_session = rec_session
        self.ori_session = ori_session
        self.characters = rec.output_characters(dictionary)
        self.options = options
        self.streams = streams
        self._calls = calls or EngineCalls()

    @classmethod
    def load(cls, model_set: "ModelSet", settings: "Settings", device: str | None = None) -> "OcrEngine":
        """Three sessions on the providers that really load for `device` (auto, cpu, cuda;
        default: settings), with the set's measured defaults, the device's (DEVICE_DEFAULTS)
        and the operator's DOCMILL_ENGINE__* overrides on top. Raises DeviceUnavailable for an unusable device.
        On CPU with more than one stream, cls, rec and ori also get narrow twin sessions, and
        det runs one page at a time on every core (worker.engine.session)."""
        from worker.engine.providers import CUDA, narrow_threads, open_session, resolve_providers

        fix_mmap_threshold(settings.malloc_mmap_threshold_kb)
        providers = resolve_providers(device or settings.device)
        stages = [*STAGES, *(["ori"] if model_set.has("ori") else [])]
        on_gpu = CUDA in providers
        streams, calls = settings.engine_streams or DEFAULT_STREAMS, EngineCalls()
        narrow = None if on_gpu else narrow_threads(settings, streams)
        sessions = {stage: open_session(str(model_set.path(stage)), providers, settings,
                                        ctc_head=stage == "rec" and on_gpu, calls=calls,
                                        narrow=None if stage == "det" else narrow,
                                        exclusive=stage == "det" and narrow is not None)
                    for stage in stages}
        options = (model_set.manifest.engine_defaults().merged(DEVICE_DEFAULTS.get("cuda" if on_gpu else "cpu"))
                   .merged(settings.engine.as_dict()))
        log.info("model set %s@%s on %s", model_set.name, model_set.version,
                 ",".join(sessions["det"].providers))
        return cls(sessions["det"], sessions["cls"], sessions["rec"], model_set.characters, options,
                   sessions.get("ori"), streams, calls)

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions really run on, in priority order."""
        return self.det_session.providers

    @property
    def on_gpu(self) -> bool:
        from worker.engine.providers import CUDA

        return CUDA in self.providers

    def session_seconds(self) -> dict[str, float]:
        """Seconds spent inside each model's session runs so far (the rest of a stage's
        wall time is docmill's own pre- and post-processing)."""
        return self._per_model(lambda session: session.busy_s, 0.0)

    def new_shape_seconds(self) -> dict[str, float]:
        """Of those, the seconds of each model's first run of every input shape."""
        return self._per_model(lambda session: session.new_shape_s, 0.0)

    def distinct_shapes(self) -> dict[str, int]:
        """Distinct input shapes each model has run so far."""
        return self._per_model(lambda session: session.distinct_shapes, 0)

    def _per_model(self, read: Callable[[ModelSession], T], absent: T) -> dict[str, T]:
        sessions = {"ori": self.ori_session, "det": self.det_session, "cls": self.cls_session, "rec": self.rec_session}
        return {name: read(session) if session else absent for name, session in sessions.items()}

    def run_each(self, images: list[np.ndarray],
                 options: EngineOptions | None = None) -> list["PageLines | ResultError"]:
        """Like `run`, but a failure costs only the image that caused it: when the batch
        fails as a whole, each image is run alone, and one that still fails gets an
        `engine_error` in its place.

        It takes `images` over: the list is emptied once the pages are located (oriented,
        detected and their lines cut out), so that, where the caller kept no other
        reference, full-resolution pages are freed before recognition, the longest part.
        Once the batch's crops are gone too, the heap's free pages go back to the system
        (memory.trim_heap), so a mix of pages does not leave the process holding them."""
        opts = options or self.options
        with self._calls.call():
            try:
                located = self._locate(images, opts)
            except Exception:  # noqa: BLE001 - isolate the culprit below
                return [self._alone(lambda image=image: self._read(self._locate([image], opts), opts)[0])
                        for image in images]
            images.clear()
            pages = self._read_each(located, opts)
            del located
        trim_heap()
        return pages

    def _read_each(self, located: "_Located", opts: EngineOptions) -> list["PageLines | ResultError"]:
        try:
            return list(self._read(located, opts))
        except Exception:  # noqa: BLE001 - read each page's lines alone
            return [self._alone(lambda page=page: self._read(located.page(page), opts)[0])
                    for page in range(len(located.pages))]

    @staticmethod
    def _alone(work: Callable[[], PageLines]) -> "PageLines | ResultError":
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - one image's failure becomes its result
            log.exception("engine failed on one image")
            return ResultError(code="engine_error", message=f"{type(exc).__name__}: {exc}"[:500])

    def run(self, images: Sequence[np.ndarray], options: EngineOptions | None = None) -> list[PageLines]:
        """OCR a batch of images (BGR, BGRA or grey arrays); one PageLines per image, in
        input order.

        Unlike PaddleOCR, a line's text is stripped of the spaces CTC reads in a box's margin
        (dilated boxes often gain one), and lines left empty are dropped."""
        opts = options or self.options
        with self._calls.call():
            return self._read(self._locate(images, opts), opts)

    def _locate(self, images: Sequence[np.ndarray], opts: EngineOptions) -> "_Located":
        """Turn each page upright, find its lines and cut them out."""
        originals = [as_bgr(image) for image in images]
        pages = [PageLines() for _ in originals]
        turns = self._orient(originals, opts, pages)
        uprights = [orientation.upright(image, turn.angle) for image, turn in zip(originals, turns)]
        boxes = self._detect(uprights, opts, pages)
        crops = [_Crop(page, box, *geometry.crop_line(image, box))
                 for page, image in enumerate(uprights) for box in boxes[page]]
        crops = _short_follow_page(crops, uprights, opts.cls_min_aspect)
        return _Located(pages, turns, [image.shape[:2] for image in originals],
                        [image.shape[:2] for image in uprights], crops)

    def _read(self, located: "_Located", opts: EngineOptions) -> list[PageLines]:
        """Classify and recognise the located lines, and assemble each page in reading order."""
        pages, turns, crops = located.pages, located.turns, located.crops
        by_page = _by_page(crops)
        angles, upside_down = self._classify(crops, by_page, opts, pages)
        images_up = _as_read(crops, angles)
        texts = self._timed(pages, "rec", [c.page for c in crops],
                            lambda: rec.recognize(self.rec_session, images_up, self.characters, opts))
        if angles:
            upside_down = self._confirm_half_turns(located, by_page, upside_down, angles, texts, opts)
            self._confirm_contrary_lines(located, by_page, upside_down, angles, texts, opts)
        if opts.drop_show_through:
            by_page = self._without_show_through(located, by_page, _as_read(crops, angles), texts, opts)
        stands = _lines_stand(crops, by_page, upside_down, opts.cls_min_aspect)
        # A page whose lines still stand turned after its turn (upside down, or running down
        # it) was turned that much further (_further): its reported turn says so (a false
        # half turn of an upright page reports 0, a missed quarter turn 90 or 270), and its
        # lines' angles are against that turn, so page turn plus line angle, the way each
        # line's text runs, is unchanged.
        further = {page: _further(turns[page], stands.get(page, 0)) if opts.use_doc_orientation else 0
                   for page in range(len(pages))}
        for page, (members, blocks) in self._reading_order(crops, by_page, located.upright_hw, stands,
                                                          opts).items():
            height, width = located.original_hw[page]
            for i, block in zip(members, blocks):
                text, angle = texts[i], angles[i] if angles else None
                if text.score < opts.drop_score or not text.text.strip():
                    continue
                words = None
                if text.words is not None:
                    words = _word_boxes(crops[i], text.words, bool(angle and angle.rotate), turns[page].angle,
                                        located.upright_hw[page], (height, width))
                pages[page].lines.append(TextLine(
                    text=text.text.strip(), score=round(text.score, 6),
                    box=orientation.to_original(crops[i].box, turns[page].angle, width, height).astype(int).tolist(),
                    angle=(_runs(crops[i], angle) - further[page]) % 360,
                    angle_score=round(angle.score, 6) if angle else None,
                    block=block, words=words))
        for index, (page, turn) in enumerate(zip(pages, turns)):
            if opts.use_doc_orientation:
                page.orientation = turn.turned(further[index])
        return pages

    def _confirm_half_turns(self, located: "_Located", by_page: dict[int, list[int]], upside_down: set[int],
                            angles: list[cls.Angle], texts: list[rec.Recognized], opts: EngineOptions) -> set[int]:
        """The pages whose lines the classifier's majority turned half round and that the page
        model (where it judges the page) finds likelier so, or that read better so. The other
        pages' lines read as they stand (`angles` and `texts` changed in place).

        The classifier says "upside down" of scripts the set cannot read (Korean, Kannada,
        Marathi, Nepali on the shared images), and such pages were reported turned 180. A
        real half turn reads far better turned: 0.97-1.00 against 0.60-0.79 mean line score
        on the shared receipts and pages turned 180; unreadable scripts read no better
        (-0.11 to +0.04)."""
        confirmed, crops, turns = set(), located.crops, located.turns
        for page in upside_down:
            if orientation.judges(*located.upright_hw[page]) and turns[page].turned(180).score > turns[page].score:
                confirmed.add(page)
                continue
            turned = [i for i in by_page[page] if angles[i].rotate]
            standing = self._timed(located.pages, "rec", [page] * len(turned), lambda turned=turned: rec.recognize(
                self.rec_session, [crops[i].image for i in turned], self.characters, opts))
            if _mean_score(texts[i] for i in turned) >= _mean_score(standing) + HALF_TURN_MARGIN:
                confirmed.add(page)
                continue
            for i, text in zip(turned, standing):
                angles[i], texts[i] = cls.Angle(0, 1.0 - angles[i].score, False), text
        return confirmed

    def _confirm_contrary_lines(self, located: "_Located", by_page: dict[int, list[int]], upside_down: set[int],
                                angles: list[cls.Angle], texts: list[rec.Recognized], opts: EngineOptions) -> None:
        """Lines the classifier turned against their page's way up (its own verdict at
        `cls_strong_thresh`) keep that turn only where they read no worse so than the page's
        way; the others are read the page's way (`angles` and `texts` changed in place).

        The classifier squeezes a line into 192 x 48 pixels, and a long line of small print
        squeezed that much is a blur it may call upside down at 0.99 and more: 11 lines of
        a drawn A3 page of 8 pt columns were read turned into nonsense ("mar ri al ay" for
        "market winter harbour discuss council repairs harbour monday")."""
        contrary = [i for page, members in by_page.items() for i in members
                    if angles[i].rotate != (page in upside_down)]
        if not contrary:
            return
        pages_way = [cls.Angle(180, 1.0, True) if located.crops[i].page in upside_down else cls.Angle(0, 1.0, False)
                     for i in contrary]
        images = cls.apply([located.crops[i].image for i in contrary], pages_way)
        again = self._timed(located.pages, "rec", [located.crops[i].page for i in contrary],
                            lambda: rec.recognize(self.rec_session, images, self.characters, opts))
        for i, way, text in zip(contrary, pages_way, again):
            if text.score > texts[i].score:
                angles[i], texts[i] = cls.Angle(way.angle, 1.0 - angles[i].score, way.rotate), text

    def _without_show_through(self, located: "_Located", by_page: dict[int, list[int]], images: list[np.ndarray],
                              texts: list[rec.Recognized], opts: EngineOptions) -> dict[int, list[int]]:
        """`by_page` less the lines that are the reverse side's text seen through the paper
        (worker.engine.showthrough), before reading order and page turns are judged."""
        dropped = self._timed(located.pages, "rec", [c.page for c in located.crops], lambda: showthrough.mirrored_lines(
            self.rec_session, images, texts, self.characters, opts))
        if not dropped:
            return by_page
        kept = {page: [i for i in members if i not in dropped] for page, members in by_page.items()}
        return {page: members for page, members in kept.items() if members}

    def check(self, options: EngineOptions) -> None:
        """Refuse options this engine's model set cannot serve (a ValueError saying what to
        do), so a caller can stop before any work instead of failing page by page."""
        if options.use_doc_orientation and self.ori_session is None:
            raise ValueError("use_doc_orientation: this model set has no page orientation model (ori); "
                             "use pp-ocrv6, which carries one, or set use_doc_orientation=false")

    def _orient(self, images: list[np.ndarray], opts: EngineOptions, pages: list[PageLines]) -> list[orientation.PageAngle]:
        """Each page's angle (0 for every page when page orientation is off)."""
        if not opts.use_doc_orientation:
            return [orientation.PageAngle(0, 1.0)] * len(images)
        self.check(opts)
        return self._timed(pages, "ori", list(range(len(images))),
                           lambda: orientation.classify(self.ori_session, images, opts.ori_min_score,
                                                        opts.batch_buckets))

    @staticmethod
    def _reading_order(crops: list[_Crop], by_page: dict[int, list[int]], upright_hw: list[tuple[int, int]],
                       stands: dict[int, int], opts: EngineOptions) -> dict[int, tuple[list[int], list[int]]]:
        """Per page, its crops' indices in reading order and their blocks: by column and
        block (or PaddleOCR's rows), on the page turned back by what its lines stand
        turned (_lines_stand), so an upside-down or sideways page reads in its own order."""
        out = {}
        for page, idxs in by_page.items():
            height, width = upright_hw[page]
            boxes = [orientation.turned_back(crops[i].box, stands[page], width, height) for i in idxs]
            if opts.reading_order == "rows":
                order, blocks = geometry.reading_order(boxes), [0] * len(boxes)
            else:
                found = layout.reading_order(boxes)
                order, blocks = found.indices, found.blocks
            out[page] = ([idxs[k] for k in order], blocks)
        return out

    def _detect(self, images: Sequence[np.ndarray], opts: EngineOptions, pages: list[PageLines]) -> list[list[np.ndarray]]:
        """Boxes per image; pages of small print (det.small_text) detected again at the
        finer `det_small_text_side_len`, whose boxes replace the first ones."""
        boxes = self._detect_at(images, list(range(len(images))), opts, pages)
        finer = det.finer(opts)
        if finer is not None:
            small = [i for i, image in enumerate(images) if det.small_text(boxes[i], image.shape[:2], opts, finer)]
            for i, found in zip(small, self._detect_at(images, small, finer, pages)):
                boxes[i] = found
        return boxes

    def _detect_at(self, images: Sequence[np.ndarray], which: Sequence[int], opts: EngineOptions,
                   pages: list[PageLines]) -> list[list[np.ndarray]]:
        """Boxes for the images `which` indexes, in that order. They are grouped by the
        canvas their det input will need, so each group runs in batches; an input is made
        just before its batch runs and dropped after it, so a batch of pages never holds
        more than one det batch of inputs (at det's 1280 px, 3.5 MB of bytes a page)."""
        boxes: dict[int, list[np.ndarray]] = {i: [] for i in which}
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i in which:
            hw = det.resized_shape(*images[i].shape[:2], opts)
            groups[det.canvas_shape(hw, opts.det_canvas_multiple)].append(i)
        for canvas, members in groups.items():
            for start_idx in range(0, len(members), opts.det_batch_size):
                chunk = members[start_idx : start_idx + opts.det_batch_size]
                inputs = [self._timed(pages, "det", [i], lambda i=i: det.preprocess(images[i], opts)) for i in chunk]
                probs = self._timed(pages, "det", chunk,
                                    lambda: det.run(self.det_session, inputs, canvas, opts, opts.batch_buckets))
                for i, item, prob in zip(chunk, inputs, probs):
                    boxes[i] = self._timed(pages, "det", [i],
                                           lambda item=item, prob=prob: det.postprocess(prob, item.src_hw, opts))
        return [boxes[i] for i in which]

    def _classify(self, crops: list[_Crop], by_page: dict[int, list[int]], opts: EngineOptions,
                  pages: list[PageLines]) -> tuple[list[cls.Angle] | None, set[int]]:
        """Each crop's final angle, decided per page from the classifier's verdicts, and the
        pages whose majority is upside down."""
        if not (opts.use_angle_cls and self.cls_session is not None):
            return None, set()
        verdicts = self._timed(pages, "cls", [c.page for c in crops],
                               lambda: cls.classify(self.cls_session, [c.image for c in crops], opts))
        angles: list[cls.Angle] = list(verdicts)
        upside_down = set()
        for page, members in by_page.items():
            decided = cls.decide([verdicts[i] for i in members], [crops[i].aspect for i in members], opts)
            if decided.angle == 180:
                upside_down.add(page)
            for i, angle in zip(members, decided.lines):
                angles[i] = angle
        return angles, upside_down

    @staticmethod
    def _timed(pages: list[PageLines], stage: str, owners: list[int], work):  # type: ignore[no-untyped-def]
        """Run `work`, sharing its wall time among the pages in `owners` (one share per
        owned item: a page with more crops carries more of the cls/rec time)."""
        start = time.perf_counter()
        result = work()
        if owners:
            share = (time.perf_counter() - start) * 1000 / len(owners)
            for page in owners:
                pages[page].timings_ms[stage] += share
        return result
