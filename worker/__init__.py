"""Worker: ONNXRuntime sessions, the OCR engine, the in-process runner and (later) Celery tasks."""
