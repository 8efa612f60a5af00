"""Output writers: from page results (and the page images, or the original PDF) to a
deliverable file. They run no model and touch no Celery, Redis or storage; the runners
decide where the files go.

- text.TextWriter / text.text: plain text in reading order;
- hocr.HocrWriter / hocr.hocr: hOCR 1.2;
- alto.AltoWriter / alto.alto: ALTO 4.4;
- searchable_pdf.pdf_from_images, searchable_pdf.pdf_with_text: searchable PDF.

Each takes the pages of one image or one document, page.OutputPage each, in order. The
text formats' writers (page.PageWriter) write a page at a time into a file, so a long
document's file is never whole in memory; their functions give one file's bytes. The PDF
functions write into a file too.
"""
