"""Test documents built in memory: PDFs (text, scanned, rotated, encrypted, hostile) and TIFFs,
as bytes, with known content so that tests check pixels and positions, not only shapes.

Shared with the tests that wire the page source into the runners: import from here.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import img2pdf
import numpy as np
import pikepdf
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

LETTER_PT = (612.0, 792.0)
TEXT_X_PT = 72.0  # left edge of every text line text_pdf draws
TEXT_SIZE_PT = 24.0


def text_baseline_pt(line: int) -> float:
    """Distance from the page's top edge to the baseline of text_pdf's `line` (0-based)."""
    return 100.0 + 60.0 * line


def text_pdf(pages: Sequence[Sequence[str]], size: tuple[float, float] = LETTER_PT) -> bytes:
    """One page per entry, its lines in Helvetica TEXT_SIZE_PT at TEXT_X_PT, text_baseline_pt(i)."""
    doc = FPDF(unit="pt", format=size)
    doc.set_font("helvetica", size=TEXT_SIZE_PT)
    for lines in pages:
        doc.add_page()
        for i, line in enumerate(lines):
            doc.text(TEXT_X_PT, text_baseline_pt(i), line)
    return bytes(doc.output())


def numbered_pdf(pages: int, first: int = 1) -> bytes:
    """Small pages (4 x 1 in), each with its own number printed: 'Page 0001', ..."""
    doc = FPDF(unit="pt", format=(288.0, 72.0))
    doc.set_font("helvetica", size=28)
    for number in range(first, first + pages):
        doc.add_page()
        doc.text(24, 48, f"Page {number:04d}")
    return bytes(doc.output())


def numbered_scan_pdf(pages: int, dpi: int = 150) -> bytes:
    """Scanned pages (600 x 150 pixels at `dpi`, no text layer), each with its number drawn:
    'Page 0001', ..."""
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 48)
    images = []
    for number in range(1, pages + 1):
        image = Image.new("L", (600, 150), 255)
        ImageDraw.Draw(image).text((30, 40), f"Page {number:04d}", fill=0, font=font)
        images.append(encoded(image, "PNG", dpi=(dpi, dpi)))
    return img2pdf.convert(images)


def pieces_pdf(pieces: Sequence[tuple[float, str]], baseline_pt: float = 100.0) -> bytes:
    """One letter page with each (x in pt, text) piece written separately on one baseline."""
    doc = FPDF(unit="pt", format=LETTER_PT)
    doc.set_font("helvetica", size=TEXT_SIZE_PT)
    doc.add_page()
    for x, text in pieces:
        doc.text(x, baseline_pt, text)
    return bytes(doc.output())


def page_image(text: str, size: tuple[int, int] = (600, 400), seed: int = 0) -> Image.Image:
    """A greyscale "scan": white, a few dark blocks placed by `seed`, and `text` in large type."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, size[0] - 60)), int(rng.integers(0, size[1] - 60))
        draw.rectangle((x, y, x + 50, y + 30), fill=int(rng.integers(0, 100)))
    draw.text((20, size[1] // 2), text, fill=0, font=ImageFont.load_default(size=40))
    return image


def scan(text: str, size: tuple[int, int] = (700, 160)) -> Image.Image:
    """A clean greyscale "scan" of one line in DejaVu Sans, big enough to OCR at any test DPI."""
    image = Image.new("L", size, 255)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 56)
    ImageDraw.Draw(image).text((30, 40), text, fill=0, font=font)
    return image


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def scanned_pdf(images: Sequence[Image.Image], dpi: int = 100) -> bytes:
    """A PDF of page images, each page exactly image-size at `dpi` (PNG in, Flate inside)."""
    return img2pdf.convert([encoded(im, "PNG", dpi=(dpi, dpi)) for im in images])


def image_pdf(image_bytes: bytes, dpi: int) -> bytes:
    """A one-page PDF holding the encoded image as it is (img2pdf keeps CCITT G4 and JPEG 2000
    streams), the page sized so that rendering at `dpi` gives the image's own pixels."""
    return img2pdf.convert(image_bytes, layout_fun=img2pdf.get_fixed_dpi_layout_fun((dpi, dpi)))


def tiff(frames: Sequence[Image.Image], dpi: float | None = None, **params: object) -> bytes:
    """A multi-page TIFF of the frames, with a resolution tag when `dpi` is given."""
    extra = {"dpi": (dpi, dpi)} if dpi else {}
    return encoded(frames[0], "TIFF", save_all=True, append_images=list(frames[1:]), **extra, **params)


def tagged_tiff(frames: Sequence[tuple[Image.Image, dict[int, int]]]) -> bytes:
    """A multi-page TIFF whose frames each carry tags of their own (Pillow's save_all gives
    every frame the same), e.g. NewSubfileType (254) marking reduced-resolution copies."""
    from PIL import TiffImagePlugin

    buffer = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(buffer, new=True) as writer:
        for frame, tags in frames:
            frame.save(writer, "TIFF", tiffinfo=tags)
            writer.newFrame()
    return buffer.getvalue()


def _rewrite(data: bytes, change: Callable[[pikepdf.Pdf], None] | None = None, **save: object) -> bytes:
    pdf = pikepdf.open(io.BytesIO(data))
    if change is not None:
        change(pdf)
    buf = io.BytesIO()
    pdf.save(buf, **save)
    return buf.getvalue()


def rotated(data: bytes, degrees: int) -> bytes:
    """The PDF with /Rotate set on every page."""
    def turn(pdf: pikepdf.Pdf) -> None:
        for page in pdf.pages:
            page.Rotate = degrees
    return _rewrite(data, turn)


def encrypted(data: bytes, user_password: str = "secret") -> bytes:
    """AES-256 encrypted; an empty user password opens without one (owner restrictions only)."""
    return _rewrite(data, encryption=pikepdf.Encryption(owner="owner", user=user_password))


def empty_pdf() -> bytes:
    """A well-formed PDF whose page tree holds no page."""
    buf = io.BytesIO()
    pikepdf.new().save(buf)
    return buf.getvalue()


def content_pdf(contents: Sequence[bytes], size: tuple[float, float] = LETTER_PT) -> bytes:
    """One page per raw content stream (compressed), for pages no generator would write."""
    pdf = pikepdf.new()
    for content in contents:
        page = pdf.add_blank_page(page_size=size)
        page.obj.Contents = pdf.make_stream(content)
    buf = io.BytesIO()
    pdf.save(buf, compress_streams=True)
    return buf.getvalue()


BLANK = b""
SLOW_PAGE = b"0.5 g 0 0 612 792 re f\n" * 50_000  # full-page fills: ~2 ms each to render
BLOATED_PAGE = b"0 0 m 1 1 l S\n" * 1_500_000  # ~270 bytes of pdfium objects per path: ~400 MB
