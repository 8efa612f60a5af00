"""Output writers: pure functions from page results (and the page images, or the original PDF)
to the bytes of a deliverable file. They run no model and touch no Celery, Redis or storage;
the runners decide where the bytes go.

- text.text: plain text in reading order;
- hocr.hocr: hOCR 1.2;
- alto.alto: ALTO 4.4;
- searchable_pdf.pdf_from_images, searchable_pdf.pdf_with_text: searchable PDF.

Each takes the pages of one image or one document as a sequence of page.OutputPage.
"""
