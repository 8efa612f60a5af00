"""The OCR engine: images in, lines out. Knows nothing of Celery, Redis or S3."""
