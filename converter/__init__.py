"""Converter: obtains PP-OCR models, converts them to ONNX, builds, verifies and publishes model sets."""
