"""Searchable PDF: the page as it was, under an invisible text layer of the recognised words.

Two sources:
- image pages (`pdf_from_images`): each image becomes a page of its own size at its DPI
  (DEFAULT_DPI when the file states none: 300, the usual scanning resolution, which keeps an
  A4 scan of 2480 x 3508 pixels A4-sized). A grey or RGB JPEG goes in as it is (DCTDecode,
  as img2pdf does; its EXIF orientation is applied by the placement, not by re-encoding); a
  plain PNG's compressed data goes in as it is (Flate with PNG predictors); so does a grey or
  RGB JP2 file (JPXDecode). Any other image, and each frame of a multi-page TIFF, goes in as
  the pixels the engine read: black and white in CCITT Group 4, a frame stored as JPEG as a
  JPEG with its own quantisation, a lossy WebP as a JPEG (or PNG where smaller), the rest
  losslessly as such a PNG. A frame the engine could
  not read is a blank page of its size, so the others keep their page numbers;
- a PDF (`pdf_with_text`): its pages are kept as they are (pikepdf), their content wrapped in
  q/Q, and the text layer added as one more content stream. Page pixels map to PDF user
  space through the page's visible box (the crop box within the media box, its origin
  wherever it lies) and /Rotate, at the DPI the page was rendered at.

A page that page orientation found turned is shown upright: its /Rotate is turned back by
that angle (OCRmyPDF's --rotate-pages, here whenever the engine turned the page to read it).

The text layer uses one glyph-less font (glyphless.py) in text render mode 3 (invisible).
Each word is drawn on its box: its baseline at the box's bottom plus the font's descent,
its size the box's height (so the font's ascent and descent span the box), and scaled
horizontally (Tz) so its characters span the box's width. Words run the way their line's
text runs (page and line turns included), and between two words of a line a space spans the
gap, so extraction and search find words where they are and selection runs on unbroken.
"""

from __future__ import annotations

import io
import shutil
import struct
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pikepdf
from PIL import Image, JpegImagePlugin
from PIL.TiffImagePlugin import (JPEGTABLES, PHOTOMETRIC_INTERPRETATION, ROWSPERSTRIP, STRIPBYTECOUNTS,
                                  STRIPOFFSETS, TILEBYTECOUNTS, TILEOFFSETS)

from docmill.result import OcrResult, Word
from pages.decode import decode_frame, decode_image, pixel_stretch, turned_sideways
from worker.outputs.glyphless import ADVANCE, ASCENT, DESCENT, UNITS_PER_EM, TextFont
from worker.outputs.page import OutputPage, exif_orientation
from worker.outputs.reading import line_words, reading_corners, text_angle

DEFAULT_DPI = 300.0
PAGES_PER_PART = 20  # image pages held in memory at once while a long document's PDF is made
SNAP_DEGREES = 10.0  # a skew this small is drawn straight (see _word)
POINTS_PER_INCH = 72.0
Matrix = tuple[float, float, float, float, float, float]  # a PDF matrix [a b c d e f]
_BASELINE_UP = -DESCENT / (ASCENT - DESCENT)  # the baseline's height in a word's box, as a share
_JPEG_COLOURS = {"L": pikepdf.Name.DeviceGray, "RGB": pikepdf.Name.DeviceRGB}
_PNG_COLOURS = {0: (1, pikepdf.Name.DeviceGray), 2: (3, pikepdf.Name.DeviceRGB)}  # IHDR colour type
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_JPEG = ("jpeg", "tiff_jpeg")  # Pillow's names for TIFF's JPEG compressions (7, and the old 6)
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
_FALLBACK_JPEG_QUALITY = 90
_WEBP_MAX_CHUNKS = 16  # a WebP's chunks before its image data: VP8X, ICCP, ANIM, EXIF, an ANMF header
_MIN_IS_BLACK = 1  # TIFF PhotometricInterpretation
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"  # the JP2 file format's first box (a bare codestream has none)
# EXIF orientation: displayed (x, y) from stored (u, v), both 0 to 1 from the top-left corner,
# as rows of x = a u + b v + c and y = d u + e v + f (Pillow's exif_transpose for each value).
_EXIF_PLACEMENT = {1: ((1, 0, 0), (0, 1, 0)), 2: ((-1, 0, 1), (0, 1, 0)), 3: ((-1, 0, 1), (0, -1, 1)),
                   4: ((1, 0, 0), (0, -1, 1)), 5: ((0, 1, 0), (1, 0, 0)), 6: ((0, -1, 1), (1, 0, 0)),
                   7: ((0, -1, 1), (-1, 0, 1)), 8: ((0, 1, 0), (-1, 0, 1))}


def pdf_from_images(pages: Sequence[OutputPage], target: BinaryIO) -> None:
    """Write to `target` a PDF of the page images, each page under its text layer; every page
    needs `image`. A long document is made PAGES_PER_PART pages at a time, each part saved to
    a temporary file, and the parts joined by qpdf's own page merging, which copies their data
    as it writes (pikepdf's pages.extend copies it all into memory first): only one part's page
    images are ever held. Each image file is opened once for all the pages it holds: a TIFF
    finds a frame by walking its chain of frame headers, so opening it again for each page
    made a 1,000-page TIFF cost 23 s of CPU."""
    with ExitStack() as stack:
        images = _ImageFiles(stack)
        if len(pages) <= PAGES_PER_PART:
            with _image_part(pages, images) as pdf:
                _save(pdf, target, deterministic_id=True)
            return
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="docmill-pdf-")))
        parts = []
        for start in range(0, len(pages), PAGES_PER_PART):
            parts.append(str(folder / f"{start}.pdf"))
            with _image_part(pages[start:start + PAGES_PER_PART], images) as pdf:
                _save(pdf, Path(parts[-1]), deterministic_id=True)
        joined = folder / "joined.pdf"
        pikepdf.Job(["qpdf", "--empty", "--deterministic-id", "--pages", *parts, "--", str(joined)]).run()
        for part in parts:  # before the copy: disk holds at most twice the PDF
            Path(part).unlink()
        with joined.open("rb") as made:
            shutil.copyfileobj(made, target, 1 << 20)


class _ImageFiles:
    """Each page's image file opened once, for all the pages it holds (by path, or by the
    bytes the pages share), until the stack closes."""

    def __init__(self, stack: ExitStack):
        self.stack = stack
        self.opened: dict[int | str, tuple[Image.Image, BinaryIO]] = {}

    def of(self, page: OutputPage) -> tuple[Image.Image, BinaryIO]:
        if page.image is None:
            raise ValueError(f"page {page.number}: a PDF built from images needs each page's image file")
        key = page.image if isinstance(page.image, str) else id(page.image)
        if key not in self.opened:
            file = (self.stack.enter_context(open(page.image, "rb")) if isinstance(page.image, str)  # noqa: SIM115
                    else io.BytesIO(page.image))
            self.opened[key] = self.stack.enter_context(Image.open(file)), file
        return self.opened[key]


def _image_part(pages: Sequence[OutputPage], images: _ImageFiles) -> pikepdf.Pdf:
    """A new PDF of these pages, in memory."""
    pdf = pikepdf.new()
    font = TextFont(pdf)
    for page in pages:
        _image_page(pdf, font, page, *images.of(page))
    font.finish()
    return pdf


def pdf_with_text(source: bytes | str, pages: Sequence[OutputPage], target: BinaryIO) -> None:
    """Write to `target` the PDF `source` (its bytes, or the path of a file holding them, which
    qpdf then reads as it needs, so that a large scan is not held whole beside the PDF made
    from it) with a text layer on each of its pages; `pages` are its pages in order, one each.
    A page whose text came from the PDF itself (`embedded`), that has text of its own
    (`text_layer`), or that has no lines, is left as it is. The source is closed on return, so
    its caller may let it go."""
    with pikepdf.open(io.BytesIO(source) if isinstance(source, bytes) else source) as pdf:
        if len(pdf.pages) != len(pages):
            raise ValueError(f"the PDF has {len(pdf.pages)} pages but {len(pages)} page results were given")
        font = TextFont(pdf)
        for pdf_page, page in zip(pdf.pages, pages):
            if _has_ocr_text(page.result) and not page.text_layer:
                pdf_page.contents_add(b"q\n", prepend=True)
                pdf_page.contents_add(b"\nQ\n")
                pdf_page.contents_add(_text_layer(page, font, _font_name(pdf_page, font), _pdf_pixels(pdf_page, page)))
                _show_upright(pdf_page, page.result)
        font.finish()
        _save(pdf, target, deterministic_id=False, keep_encryption=pdf.is_encrypted)


def _has_ocr_text(result: OcrResult) -> bool:
    return bool(result.lines) and not (result.page and result.page.text == "embedded")


def _save(pdf: pikepdf.Pdf, target: BinaryIO | Path, deterministic_id: bool, keep_encryption: bool = False) -> None:
    """The PDF written out; an encrypted source (one that opens without a password, its
    owner's restrictions only) stays encrypted as it was."""
    pdf.save(target, compress_streams=True, deterministic_id=deterministic_id, encryption=keep_encryption)


def _font_name(pdf_page: pikepdf.Page, font: TextFont) -> pikepdf.Name:
    """The page's resource name for the font: the first /OCRTextN that the page's fonts do
    not use for another font (pages may share one resource dictionary)."""
    fonts = pdf_page.resources.get(pikepdf.Name.Font, pikepdf.Dictionary())
    n = 0
    while (name := pikepdf.Name(f"/OCRText{n}")) in fonts and not _same(fonts[name], font.font):
        n += 1
    if name not in fonts:
        pdf_page.add_resource(font.font, pikepdf.Name.Font, name)
    return name


def _same(a: pikepdf.Object, b: pikepdf.Object) -> bool:
    return a.is_indirect and b.is_indirect and a.objgen == b.objgen


def _pdf_pixels(pdf_page: pikepdf.Page, page: OutputPage) -> Matrix:
    """Page pixels (as rendered: the visible box, /Rotate applied, origin top-left) to the
    page's user space."""
    box = pikepdf.Rectangle(pdf_page.mediabox) & pikepdf.Rectangle(pdf_page.cropbox)
    rotation = pdf_page.rotation // 90 * 90
    shown_w, shown_h = (box.width, box.height) if rotation in (0, 180) else (box.height, box.width)
    sx = POINTS_PER_INCH / page.dpi if page.dpi else shown_w / page.width
    sy = POINTS_PER_INCH / page.dpi if page.dpi else shown_h / page.height
    x0, y0, x1, y1 = box.llx, box.lly, box.urx, box.ury
    return {0: (sx, 0, 0, -sy, x0, y1), 90: (0, sx, sy, 0, x0, y0),
            180: (-sx, 0, 0, sy, x1, y0), 270: (0, -sx, -sy, 0, x1, y1)}[rotation]


def _image_page(pdf: pikepdf.Pdf, font: TextFont, page: OutputPage, im: Image.Image, file: BinaryIO) -> None:
    """The page drawn from `im`, its image `file` opened (for a TIFF's frame, the whole TIFF)."""
    width_pt, height_pt = _size_pt(page, im)
    pdf_page = pdf.add_blank_page(page_size=(width_pt, height_pt))
    if page.result.error is not None:  # a frame that could not be read stays a blank page of its size
        return
    image, orientation = _image_xobject(pdf, page, im, file)
    name = pdf_page.add_resource(image, pikepdf.Name.XObject, pikepdf.Name("/Im0"))
    placement = _matrix(_placement(orientation, width_pt, height_pt))
    pdf_page.contents_add(f"q {placement} cm {name} Do Q\n".encode())
    if _has_ocr_text(page.result):
        font_name = _font_name(pdf_page, font)
        pixels_to_user = (width_pt / page.width, 0, 0, -height_pt / page.height, 0, height_pt)
        pdf_page.contents_add(_text_layer(page, font, font_name, pixels_to_user))
        _show_upright(pdf_page, page.result)


def _size_pt(page: OutputPage, im: Image.Image) -> tuple[float, float]:
    """The image page's size in points: its pixels at the resolution its file states
    (DEFAULT_DPI when none), each axis at its own where the file states two, as a fax at 204
    x 98 dpi does (at one, its page came out half as tall as the paper)."""
    scale = POINTS_PER_INCH / (page.dpi or DEFAULT_DPI)  # page.dpi: the stored image's x resolution
    x_over_y, turned = _resolution_shape(page, im)
    if turned:  # shown turned: its width runs along the stored y
        return page.width * scale * x_over_y, page.height * scale
    return page.width * scale, page.height * scale * x_over_y


def _resolution_shape(page: OutputPage, im: Image.Image) -> tuple[float, bool]:
    """The stored image's x resolution over its y resolution, and whether EXIF shows it
    turned sideways; (1, False) for a frame whose header cannot be read (its page is blank)."""
    try:
        if page.frame is not None:
            im.seek(page.frame)
        stretch_x, stretch_y = pixel_stretch(im)
        return stretch_y / stretch_x, turned_sideways(im)
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for a broken header
        return 1.0, False


def _show_upright(pdf_page: pikepdf.Page, result: OcrResult) -> None:
    """Turn the page's /Rotate back by the turn page orientation found in it, so that viewers
    show it upright and text extraction meets its lines running left to right: poppler read
    a page turned 270 bottom line first, and in -raw one word a line. Only how the page is
    shown changes; its content and text layer stay as they are."""
    turned = result.orientation.angle if result.orientation else 0
    if turned:
        pdf_page.Rotate = (pdf_page.rotation - turned) % 360


def _placement(orientation: int, width_pt: float, height_pt: float) -> Matrix:
    """The image's matrix: its unit square (PDF image space, first row at the top) onto the
    page, turned or mirrored as its EXIF orientation says it is displayed."""
    (a, b, c), (d, e, f) = _EXIF_PLACEMENT[orientation]
    stored = np.array([[1, 0, 0], [0, -1, 1], [0, 0, 1]])  # image space (s, t) -> stored (u, v)
    shown = np.array([[a, b, c], [d, e, f], [0, 0, 1]])
    page = np.array([[width_pt, 0, 0], [0, -height_pt, height_pt], [0, 0, 1]])  # (x, y) -> points
    m = page @ shown @ stored
    return m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2]


def _image_xobject(pdf: pikepdf.Pdf, page: OutputPage, im: Image.Image,
                   file: BinaryIO) -> tuple[pikepdf.Stream, int]:
    """The page's image as an image XObject, and the EXIF orientation to place it with: the
    file's own data where a PDF can hold it, else the pixels the engine read (same decoder)."""
    pixels = page.width * page.height
    if page.frame is None:
        data = _read_at(file, 0, -1)
        kept = _kept_as_is(pdf, data, im)
        if kept is not None:
            return kept
        read = decode_image(data, max_pixels=pixels)
    else:
        im.seek(page.frame)
        read = decode_frame(im, pixels)
    return _encoded(pdf, read, _lossy_settings(im, file), png_if_smaller=im.format == "WEBP"), 1


def _kept_as_is(pdf: pikepdf.Pdf, data: bytes, im: Image.Image) -> tuple[pikepdf.Stream, int] | None:
    """An image file whose data a PDF holds as it is, with its EXIF orientation; None for others."""
    if im.format == "JPEG" and im.mode in _JPEG_COLOURS:
        return _jpeg(pdf, data, im), exif_orientation(im)
    if im.format == "PNG" and _plain_png(data) and exif_orientation(im) == 1:
        return _png(pdf, data), 1
    if im.format == "JPEG2000" and im.mode in _JPEG_COLOURS and data.startswith(_JP2_SIGNATURE):
        return _jpx(pdf, data, im), 1
    return None


def _encoded(pdf: pikepdf.Pdf, bgr: np.ndarray, jpeg: dict[str, object] | None,
             png_if_smaller: bool = False) -> pikepdf.Stream:
    """Decoded pixels as an image XObject: black and white in CCITT Group 4 (lossless, and 56%
    of one-bit PNG data on the receipts, bench.tiff_pdf); an image the source stored lossily
    as a JPEG (`jpeg`: a TIFF frame with the source's quantisation, so that it keeps its size
    and quality; as PNG, a colour scan grew 3.7 times), or as a PNG when that is no bigger
    and `png_if_smaller` (a lossy WebP of a clean drawn page); anything else as a lossless PNG."""
    grey = bgr[:, :, 0] if (bgr[:, :, 0] == bgr[:, :, 1]).all() and (bgr[:, :, 1] == bgr[:, :, 2]).all() else None
    if grey is not None and bool(np.isin(grey, (0, 255)).all()):
        return _ccitt_g4(pdf, grey)
    image = Image.fromarray(grey) if grey is not None else Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    png = io.BytesIO()
    if jpeg is None or png_if_smaller:
        image.save(png, "PNG")
    if jpeg is None:
        return _png(pdf, png.getvalue())
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **jpeg)
    if png_if_smaller and png.tell() <= buffer.tell():
        return _png(pdf, png.getvalue())
    with Image.open(buffer) as encoded:
        return _jpeg(pdf, buffer.getvalue(), encoded)


def _lossy_settings(im: Image.Image, file: BinaryIO) -> dict[str, object] | None:
    """Pillow's JPEG save options for an image its source stored lossily, None for others
    (they go in losslessly). A TIFF frame stored as JPEG is encoded like it was: its
    quantisation tables and chroma subsampling, read from its first strip or tile completed
    by the shared JPEGTables (quality 90 where they cannot be read). A lossy WebP goes in at
    quality 90 (or as PNG where that is smaller): 1.7 to 2.6 times the WebP at 40 to 49 dB,
    where PNG took 5 to 13 times it (bench.tiff_pdf)."""
    if im.format == "WEBP":
        return {"quality": _FALLBACK_JPEG_QUALITY} if _lossy_webp(file) else None
    if im.format != "TIFF" or im.info.get("compression") not in _TIFF_JPEG:
        return None
    tags = im.tag_v2
    offsets = tags.get(STRIPOFFSETS) or tags.get(TILEOFFSETS)
    counts = tags.get(STRIPBYTECOUNTS) or tags.get(TILEBYTECOUNTS)
    fallback = {"quality": _FALLBACK_JPEG_QUALITY}
    try:
        first = _read_at(file, offsets[0], counts[0])
        tables = tags.get(JPEGTABLES, b"")
        stream = tables[:-2] + first[2:] if tables.endswith(_JPEG_EOI) and first.startswith(_JPEG_SOI) else first
        with Image.open(io.BytesIO(stream), formats=["JPEG"]) as source:
            if not source.quantization:
                return fallback
            return {"qtables": source.quantization, "subsampling": JpegImagePlugin.get_sampling(source)}
    except Exception:  # noqa: BLE001 - a frame whose tables cannot be read still goes in as a JPEG
        return fallback


def _lossy_webp(file: BinaryIO) -> bool:
    """Whether a WebP file's image is VP8 (lossy) rather than VP8L (lossless): its chunk after
    the RIFF header, or in an extended file the first image chunk after the others (into an
    animation's first frame), read chunk header by chunk header."""
    at = 12
    for _ in range(_WEBP_MAX_CHUNKS):
        header = _read_at(file, at, 8)
        if len(header) < 8:
            return False
        kind, size = header[:4], struct.unpack("<I", header[4:])[0]
        if kind in (b"VP8 ", b"VP8L"):
            return kind == b"VP8 "
        at += 8 + (16 if kind == b"ANMF" else size + (size & 1))  # into a frame's chunks, over any other
    return False


def _read_at(file: BinaryIO, offset: int, count: int) -> bytes:
    """`count` bytes at `offset` (-1: the rest), the file left where it was (Pillow reads the
    same file)."""
    was = file.tell()
    try:
        file.seek(offset)
        return file.read(count)
    finally:
        file.seek(was)


def _ccitt_g4(pdf: pikepdf.Pdf, grey: np.ndarray) -> pikepdf.Stream:
    """A black-and-white page (0 and 255 only) in CCITT Group 4, as libtiff encodes it in one strip."""
    height, width = grey.shape
    buffer = io.BytesIO()
    Image.fromarray(grey).convert("1", dither=Image.Dither.NONE).save(
        buffer, "TIFF", compression="group4", tiffinfo={ROWSPERSTRIP: height})
    with Image.open(buffer) as tiff:
        start, length = tiff.tag_v2[STRIPOFFSETS][0], tiff.tag_v2[STRIPBYTECOUNTS][0]
        black_is_one = tiff.tag_v2[PHOTOMETRIC_INTERPRETATION] == _MIN_IS_BLACK  # its coded white is then 0
    parms = pikepdf.Dictionary(K=-1, Columns=width, Rows=height, BlackIs1=black_is_one)
    return pdf.make_stream(buffer.getvalue()[start:start + length], Type=pikepdf.Name.XObject,
                           Subtype=pikepdf.Name.Image, Width=width, Height=height,
                           ColorSpace=pikepdf.Name.DeviceGray, BitsPerComponent=1,
                           Filter=pikepdf.Name.CCITTFaxDecode, DecodeParms=parms)


def _jpx(pdf: pikepdf.Pdf, data: bytes, im: Image.Image) -> pikepdf.Stream:
    """A JP2 file as it is (JPXDecode, PDF 1.5): an archive's master image is neither
    re-encoded nor inflated to PNG. The colour space and depth come from the file itself."""
    return pdf.make_stream(data, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=im.width,
                           Height=im.height, Filter=pikepdf.Name.JPXDecode)


def _jpeg(pdf: pikepdf.Pdf, data: bytes, im: Image.Image) -> pikepdf.Stream:
    return pdf.make_stream(data, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=im.width,
                           Height=im.height, ColorSpace=_JPEG_COLOURS[im.mode], BitsPerComponent=8,
                           Filter=pikepdf.Name.DCTDecode)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG file's chunks as (type, data)."""
    chunks, at = [], len(_PNG_SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


def _plain_png(data: bytes) -> bool:
    """A PNG whose compressed data a PDF can hold as it is: grey or RGB, 8 bits or fewer,
    not interlaced, with no transparency."""
    chunks = dict(_png_chunks(data))
    _, _, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    return colour in _PNG_COLOURS and depth <= 8 and not interlace and b"tRNS" not in chunks


def _png(pdf: pikepdf.Pdf, data: bytes) -> pikepdf.Stream:
    """A plain PNG's pixels as a Flate image with PNG predictors, its data copied as it is."""
    chunks = _png_chunks(data)
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", dict(chunks)[b"IHDR"])
    components, space = _PNG_COLOURS[colour]
    parms = pikepdf.Dictionary(Predictor=15, Colors=components, BitsPerComponent=depth, Columns=width)
    return pdf.make_stream(b"".join(body for kind, body in chunks if kind == b"IDAT"),
                           Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=width, Height=height,
                           ColorSpace=space, BitsPerComponent=depth, Filter=pikepdf.Name.FlateDecode,
                           DecodeParms=parms)


def _text_layer(page: OutputPage, font: TextFont, font_name: pikepdf.Name, pixels_to_user: Matrix) -> bytes:
    """The page's words as invisible text, drawn in page pixels mapped by `pixels_to_user`."""
    ops = [f"q {_matrix(pixels_to_user)} cm BT 3 Tr {font_name} 1 Tf"]
    for line in page.result.lines:
        words = line_words(page.result, line)
        angle = text_angle(page.result, line)
        ops += [_word(font, word, following, angle) for word, following in zip(words, [*words[1:], None])]
    ops.append("ET Q")
    return ("\n".join(op for op in ops if op) + "\n").encode("ascii")


def _word(font: TextFont, word: Word, following: Word | None, angle: int) -> str:
    """One word on its box: the text matrix puts the baseline on the box and the font's
    height to the box's, Tz stretches its characters to the box's width; then a space that
    fills the gap to the `following` word of its line ("" for a box too small for text).

    A word within SNAP_DEGREES of running along an axis is drawn along that axis, over the
    box's extent on it: text extraction (poppler's, and so search) takes slanted glyphs for
    diagonal text and breaks words apart ("Sa rah"), where a scan's slight skew should read
    as the straight line it is."""
    corners = reading_corners(word.box, angle)
    along, up = _axes(corners)
    a, u = corners @ along, corners @ up
    width, height = a.max() - a.min(), u.max() - u.min()
    if height < 1 or width < 1 or not word.text:
        return ""
    origin = along * a.min() + up * (u.min() + height * _BASELINE_UP)
    text_matrix = _matrix((*(along * height), *(up * height), *origin))
    ops = f"{_stretch(width, len(word.text), height)} Tz {text_matrix} Tm <{font.encode(word.text).hex()}> Tj"
    if following is None:
        return ops
    gap = float((reading_corners(following.box, angle) @ along).min() - a.max())
    return ops + f" {_stretch(max(gap, 1.0), 1, height)} Tz <{font.encode(' ').hex()}> Tj"


def _axes(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along the text and up from its baseline (in pixels, y down), from a box's
    reading-ordered corners; snapped to the nearest axis within SNAP_DEGREES."""
    top_left, top_right, bottom_right, bottom_left = corners
    along = top_right - top_left + bottom_right - bottom_left
    along = along / max(float(np.linalg.norm(along)), 1e-9)
    degrees = np.degrees(np.arctan2(along[1], along[0]))
    nearest = round(degrees / 90) * 90
    if abs(degrees - nearest) <= SNAP_DEGREES:
        along = np.array([np.cos(np.radians(nearest)), np.sin(np.radians(nearest))]).round(12)
    return along, np.array([along[1], -along[0]])


def _stretch(width: float, characters: int, height: float) -> str:
    """The horizontal scaling (Tz, percent) that makes `characters` glyphs of a font as big
    as `height` span `width`."""
    return _number(100 * width / (characters * ADVANCE / UNITS_PER_EM * height))


def _matrix(m: Sequence[float]) -> str:
    return " ".join(_number(v) for v in m)


def _number(value: float) -> str:
    """A PDF number: fixed point (PDF has no exponents), four decimals at most."""
    text = f"{float(value):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
