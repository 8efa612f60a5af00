"""docmill.result/v1: the pydantic models and the shipped JSON Schema agree on what a line's
angle may be, and on a page's resolutions."""

from __future__ import annotations

import jsonschema
import pydantic
import pytest

from docmill.result import DocumentPage, Line, ModelsInfo, OcrResult, SourceInfo, validate_result


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


@pytest.mark.parametrize(("dpi_y", "keys"), [(None, ["count", "dpi", "index", "text"]),
                                            (98.0, ["count", "dpi", "dpi_y", "index", "text"])])
def test_a_pages_vertical_resolution_is_written_only_where_it_has_one(dpi_y, keys):
    """A fax page states its 98 dpi; every other page's result is what it was before the field."""
    doc = {**_doc(0), "page": DocumentPage(index=1, count=1, dpi=204.0, dpi_y=dpi_y).model_dump(mode="json")}
    validate_result(doc)
    assert sorted(doc["page"]) == keys
    assert OcrResult.model_validate(doc).page.dpi_y == dpi_y
