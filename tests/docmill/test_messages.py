"""The task message refuses anything the producer would not write."""

import pytest
from pydantic import ValidationError

from docmill.messages import OcrTask


def _payload(**changes):
    data = {"schema": "docmill.task/v1", "job": "j1", "seq": 0,
            "models": {"uri": "s3://m/pp-ocrv4-ch", "version": "abc"}, "options": {},
            "out_prefix": "s3://out/p", "items": [{"src": "s3://in/a.jpg", "dst": "s3://out/p/a.jpg.json",
                                                   "etag": "e", "bytes": 10}]}
    data.update(changes)
    return data


def test_valid_message_round_trips():
    task = OcrTask.model_validate(_payload())
    assert OcrTask.model_validate(task.to_payload()) == task and task.task_key == "j1:0"


@pytest.mark.parametrize("changes", [
    {"extra_field": 1},
    {"schema": "docmill.task/v2"},
    {"job": "../etc"},
    {"items": []},
    {"options": {"det_thresh": 5}},
    {"options": {"no_such_option": 1}},
    {"items": [{"src": "s3://in/a.jpg", "dst": "s3://out/elsewhere/a.json"}]},
    {"items": [{"src": "s3://in/a.jpg", "dst": "s3://out/p/../q/a.json"}]},
    {"items": [{"src": "s3://in/a.jpg", "dst": "s3://out/p/"}]},
    {"items": [{"src": "s3://in/a.jpg", "dst": "s3://out/p/a.json", "size": 3}]},
])
def test_refused(changes):
    with pytest.raises(ValidationError):
        OcrTask.model_validate(_payload(**changes))


def test_missing_field_refused():
    data = _payload()
    del data["models"]
    with pytest.raises(ValidationError):
        OcrTask.model_validate(data)


def test_a_task_that_uses_no_document_feature_is_sent_as_before_documents():
    """Workers from before documents refuse unknown fields: a task that needs none of them
    carries none of them, and one that does carries them."""
    from docmill.messages import ModelsRef, OcrTask, TaskItem

    plain = OcrTask(job="j", seq=0, models=ModelsRef(uri="s3://m/set/v", version="v"), out_prefix="s3://o",
                    items=[TaskItem(src="s3://i/a.png", dst="s3://o/a.png.json")]).to_payload()
    assert "pdf_text" not in plain and "formats" not in plain and "skip_existing" not in plain
    assert set(plain["items"][0]) == {"src", "dst", "etag", "bytes"}
    split = OcrTask(job="j", seq=0, models=ModelsRef(uri="s3://m/set/v", version="v"), out_prefix="s3://o",
                    formats=["pdf"], items=[TaskItem(src="s3://i/a.pdf", dst="s3://o/a.pdf.json", pages=(1, 8),
                                                     page_count=20)]).to_payload()
    assert split["formats"] == ["pdf"] and split["items"][0]["pages"] == [1, 8]
    assert OcrTask.model_validate(split).items[0].pages == (1, 8)
    kept = OcrTask(job="j", seq=0, models=ModelsRef(uri="s3://m/set/v", version="v"), out_prefix="s3://o",
                   skip_existing=True, items=[TaskItem(src="s3://i/a.png", dst="s3://o/a.png.json",
                                                       formats_only=True)]).to_payload()
    assert kept["skip_existing"] is True and kept["items"][0]["formats_only"] is True
    assert OcrTask.model_validate(kept).items[0].formats_only
