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
