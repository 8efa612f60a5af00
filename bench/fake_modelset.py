"""A published-looking model set that is only a manifest, for benchmarks (and the producer's
tests) that never run a model: the producer reads a set's name and version, never its ONNX files."""

from __future__ import annotations

import json

SET_NAME = "tiny-set"
SET_VERSION = "0123456789abcdef"


def manifest_bytes() -> bytes:
    """A manifest valid against docmill.modelset/v1, naming ONNX files that do not exist."""
    tensor = {"name": "x", "shape": [1, 3, None, None], "type": "tensor(float)"}
    entry = {"sha256": "0" * 64, "bytes": 1, "opset": 11, "inputs": [tensor], "outputs": [tensor],
             "source": {"uri": "file:///dev/null", "sha256": "0" * 64}}
    return json.dumps({"schema": "docmill.modelset/v1", "name": SET_NAME, "version": SET_VERSION,
                       "models": {s: {**entry, "file": f"{s}.onnx"} for s in ("det", "cls", "rec")},
                       "dict": {"sha256": "0" * 64, "entries": 1}}).encode()
