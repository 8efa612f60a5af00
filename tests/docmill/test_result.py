"""docmill.result/v1: the pydantic models and the shipped JSON Schema agree on what a line's
angle may be."""

from __future__ import annotations

import jsonschema
import pydantic
import pytest

from docmill.result import Line, ModelsInfo, OcrResult, SourceInfo, validate_result


def _doc(angle: int) -> dict:
    line = {"text": "up the spine", "score": 0.9, "box": [[0, 0], [20, 0], [20, 200], [0, 200]], "angle": angle,
            "angle_score": None, "block": 0, "words": None}
    result = OcrResult(source=SourceInfo(uri="memory://page"), models=ModelsInfo(set="s", version="v"),
                       providers=["CPUExecutionProvider"])
    return {**result.model_dump(mode="json", by_alias=True), "lines": [line]}


@pytest.mark.parametrize("angle", [0, 90, 180, 270])
def test_a_line_runs_any_quarter_turn(angle):
    doc = _doc(angle)
    validate_result(doc)
    assert OcrResult.model_validate(doc).lines[0].angle == angle


@pytest.mark.parametrize("angle", [45, 360, -90])
def test_other_line_angles_are_refused_by_both(angle):
    with pytest.raises(jsonschema.ValidationError):
        validate_result(_doc(angle))
    with pytest.raises(pydantic.ValidationError):
        Line.model_validate(_doc(angle)["lines"][0])
