"""The page source: image, PDF and multi-page TIFF bytes in, page images out, one page at a
time, within limits on pixels, time and memory. Never OCR.

Its own package because both sides need it: the producer counts a document's pages to split it
into page-range tasks, and the runners decode and render them. It imports no docmill package.

Use `pages.decode` for single images, `pages.source` (sniff_kind,
open_document) and the types in `pages.document` for documents. Nothing is re-exported here on
purpose: the render child imports this package, and it must stay free of numpy, OpenCV and
ONNXRuntime.
"""
