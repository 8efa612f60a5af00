"""The converter's defaults and limits, in one place: its command-line flags and its code
both read them from here (registering the flags must not import onnx or Paddle)."""

from __future__ import annotations

MIN_OPSET, MAX_OPSET = 7, 19
DEFAULT_OPSET = 11  # what the seed documents ask for; paddle2onnx raises it where an op needs more
# Parity with Paddle: random inputs within 1e-4, a real page and its crops within 1e-3
# (converter/parity.py says why these two figures).
DEFAULT_TOLERANCE = 1e-4
DEFAULT_REAL_TOLERANCE = 1e-3
DEFAULT_MAX_CER = 0.002  # int8 or fp16 text against fp32 text, the speed issue's accuracy tolerance
