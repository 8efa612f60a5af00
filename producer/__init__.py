"""Producer: lists S3 prefixes and enqueues OCR tasks as tracked jobs (see the distributed issue)."""
