"""The page source: PDF and multi-page TIFF documents in, page images out, one page at a time,
within limits on pixels, time and memory. Never OCR.

Use `worker.documents.source` (sniff_kind, is_document_name, open_document) and the types in
`worker.documents.document`. Nothing is re-exported here on purpose: the render child imports
this package, and it must stay free of numpy, OpenCV and ONNXRuntime.
"""
