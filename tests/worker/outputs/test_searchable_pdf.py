"""Searchable PDF: it shows what the input showed (pdftoppm, mean absolute difference <= 2/255),
and poppler finds the result's words where the result boxed them (pdftotext -bbox-layout,
IoU >= 0.5), for image inputs and for PDF inputs, turned and offset ones included; any Unicode
text, CJK and beyond the BMP, comes back out; the glyph-less font is a real TrueType font."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pikepdf
import pytest
from PIL import Image, JpegImagePlugin

from bench.tiff_pdf import ycbcr_jpeg_tiff
from docmill.result import DocumentPage, OcrResult
from pages.decode import decode_frame, decode_image
from pages.document import PageLimits
from pages.source import open_document
from tests.pages import encoded, encrypted, scan, scanned_pdf, text_pdf, tiff
from tests.worker.drawn import bounds, iou
from tests.worker.outputs import hand_line, hand_result, mean_difference, pdf_text, pdf_words, rect, render
from worker.outputs import glyphless
from worker.outputs.page import EXIF_ORIENTATION, OutputPage
from worker.outputs.reading import line_words
from worker.outputs.searchable_pdf import DEFAULT_DPI, pdf_from_images, pdf_with_text

MAX_DIFFERENCE = 2.0
MIN_IOU = 0.5
RENDER_DPI = 150.0


def made_from_images(pages: list[OutputPage]) -> bytes:
    target = io.BytesIO()
    pdf_from_images(pages, target)
    return target.getvalue()


def made_with_text(source: bytes | str, pages: list[OutputPage]) -> bytes:
    target = io.BytesIO()
    pdf_with_text(source, pages, target)
    return target.getvalue()


def written(tmp_path: Path, data: bytes, name: str = "out.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def check_words(pdf: Path, result: OcrResult, dpi: float, page: int = 1) -> None:
    """Every word of the result is a word poppler finds in the PDF, on the word's box (the
    box turned back by the page's orientation: the PDF shows a turned page upright)."""
    scale = dpi / 72
    found = [(text, tuple(v * scale for v in box)) for text, box in pdf_words(pdf, page)]
    expected = [w for line in result.lines for w in line_words(result, line)]
    assert sorted(t for t, _ in found) == sorted(w.text for w in expected)
    turn = result.orientation.angle if result.orientation else 0
    for word in expected:
        box = [upright(point, turn, result.image.width, result.image.height) for point in word.box]
        best = max(iou(bounds(box), found_box) for text, found_box in found if text == word.text)
        assert best >= MIN_IOU, (word.text, box, [f for f in found if f[0] == word.text])


def upright(point: list[int], turn: int, width: int, height: int) -> list[int]:
    """A point of a page `width` x `height` that lies turned `turn` degrees clockwise, where
    it is once the page is turned back upright."""
    x, y = point
    return {0: [x, y], 90: [y, width - x], 180: [width - x, height - y], 270: [height - y, x]}[turn]


def grey_png(image: np.ndarray, **params: object) -> bytes:
    return encoded(Image.fromarray(image[:, :, 0]), "PNG", **params)


def test_the_glyphless_font_is_a_valid_truetype_font():
    from fontTools.ttLib import TTFont
    from PIL import ImageFont

    program = glyphless.font_program()
    font = TTFont(io.BytesIO(program), checkChecksums=2)  # raises on a wrong table checksum
    assert font["maxp"].numGlyphs == 2 and font["head"].unitsPerEm == glyphless.UNITS_PER_EM
    assert font["hmtx"]["glyph00001"][0] == glyphless.ADVANCE
    freetype = ImageFont.truetype(io.BytesIO(program), 100)  # FreeType, as poppler loads it
    assert freetype.getlength("abc") == 3 * 100 * glyphless.ADVANCE / glyphless.UNITS_PER_EM
    assert sum(np.frombuffer(program, np.uint8).reshape(-1, 4).astype(np.uint64).dot(
        [1 << 24, 1 << 16, 1 << 8, 1]).tolist()) % (1 << 32) == 0xB1B0AFBA  # the whole-file checksum


@pytest.mark.models
@pytest.mark.slow
def test_an_image_pages_words_are_where_pdftotext_finds_them(read, drawn, tmp_path):
    """A PNG stating no resolution: a page at 300 DPI, its data stored as it is."""
    data = grey_png(drawn.image)
    page = OutputPage.of_image(read(drawn.image), data, "drawn.png")
    assert page.dpi is None
    pdf = written(tmp_path, made_from_images([page]))
    check_words(pdf, page.result, DEFAULT_DPI)
    assert mean_difference(render(pdf, DEFAULT_DPI, tmp_path), np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))) \
        <= MAX_DIFFERENCE
    with pikepdf.open(pdf) as opened:
        image = next(iter(opened.pages[0].get_images().values()))
        assert image.Filter == pikepdf.Name.FlateDecode and image.read_raw_bytes() in data  # the PNG's own data


@pytest.mark.models
@pytest.mark.slow
def test_a_slightly_skewed_scans_words_are_found_whole(read, tmp_path):
    """The demo's page turned by 3 degrees, as a skewed scan is: poppler must find each word
    whole (not "Sa rah"), on its box."""
    from demo.pages import PAGES, render

    skewed = next(make() for make in PAGES if make().rotate)
    image = np.asarray(render(skewed).convert("RGB"))[:, :, ::-1].copy()
    data = encoded(Image.fromarray(image[:, :, ::-1]), "PNG", dpi=(150, 150))
    page = OutputPage.of_image(read(image), data, "skewed.png")
    check_words(written(tmp_path, made_from_images([page])), page.result, 150)


@pytest.mark.models
@pytest.mark.slow
def test_a_sideways_pages_words_run_down_it_in_the_pdf(read, drawn, tmp_path):
    """The drawn page turned a quarter clockwise and read without page orientation: each line
    runs down the image (angle 90), and poppler finds every word whole on its box."""
    import cv2

    turned = np.ascontiguousarray(cv2.rotate(drawn.image, cv2.ROTATE_90_CLOCKWISE))
    result = read(turned, use_doc_orientation=False)
    assert result.lines and all(line.angle == 90 for line in result.lines)
    page = OutputPage.of_image(result, grey_png(turned), "sideways.png")
    check_words(written(tmp_path, made_from_images([page])), result, DEFAULT_DPI)


TURNS = {90: "ROTATE_90_CLOCKWISE", 180: "ROTATE_180", 270: "ROTATE_90_COUNTERCLOCKWISE"}


def lines_of(pdf: Path) -> list[str]:
    return [" ".join(line.split()) for line in pdf_text(pdf).splitlines() if line.strip()]


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("turn", sorted(TURNS))
def test_a_page_scanned_turned_is_shown_upright_and_its_text_runs_in_order(read, drawn, tmp_path, turn):
    """The drawn page scanned turned, read with page orientation: the PDF shows it upright
    (its /Rotate turned back, the image data as it was) and pdftotext gives its lines in
    reading order, where before it gave them bottom first or one word a line."""
    import cv2

    turned = np.ascontiguousarray(cv2.rotate(drawn.image, getattr(cv2, TURNS[turn])))
    result = read(turned, use_doc_orientation=True)
    assert result.orientation and result.orientation.angle == turn
    data = grey_png(turned, dpi=(RENDER_DPI, RENDER_DPI))
    pdf = written(tmp_path, made_from_images([OutputPage.of_image(result, data, "turned.png")]))
    assert lines_of(pdf) == list(drawn.lines)
    assert mean_difference(render(pdf, RENDER_DPI, tmp_path), drawn.image[:, :, ::-1]) <= MAX_DIFFERENCE
    with pikepdf.open(pdf) as opened:
        assert opened.pages[0].Rotate == (360 - turn) % 360
        assert next(iter(opened.pages[0].get_images().values())).read_raw_bytes() in data


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("rotate", [0, 180])
def test_a_pdf_page_whose_scan_lies_turned_is_shown_upright(read, drawn, tmp_path, rotate):
    """A PDF page whose scan lies a quarter turned clockwise, its /Rotate 0 or 180: the page
    orientation found (90 or 270, as rendered) is taken off the /Rotate it already had."""
    import cv2

    scan = Image.fromarray(cv2.rotate(drawn.image, cv2.ROTATE_90_CLOCKWISE)[:, :, 0])
    source = _changed(scanned_pdf([scan], dpi=100), _turned(rotate))
    pages = _pages_of(source, read)
    assert pages[0].result.orientation and pages[0].result.orientation.angle == (90 + rotate) % 360
    out = written(tmp_path, made_with_text(source, pages))
    assert lines_of(out) == list(drawn.lines)
    with pikepdf.open(out) as opened:
        assert opened.pages[0].Rotate == 270


def test_only_a_page_found_turned_changes_its_rotate():
    line = hand_line("Upright", rect(10, 10, 200, 40))
    for turn, shown in ((None, None), (90, 270), (270, 90), (180, 180)):
        page = OutputPage(hand_result([line], 800, 600, orientation=turn), 800, 600,
                          image=grey_png(np.full((600, 800, 3), 255, np.uint8)), image_name="page.png")
        with pikepdf.open(io.BytesIO(made_from_images([page]))) as opened:
            assert opened.pages[0].get("/Rotate") == shown, turn


IMAGES = {
    "jpeg": lambda image: encoded(Image.fromarray(image[:, :, ::-1]), "JPEG", quality=90, dpi=(200, 200)),
    "png with dpi": lambda image: grey_png(image, dpi=(150, 150)),
    "bilevel tiff": lambda image: encoded(Image.fromarray(image[:, :, 0]).point(lambda v: 255 * (v > 128)).convert("1"),
                                          "TIFF", compression="group4", dpi=(200, 200)),
    "rgba png": lambda image: encoded(Image.fromarray(image[:, :, ::-1]).convert("RGBA"), "PNG"),
    "jp2": lambda image: encoded(Image.fromarray(image[:, :, ::-1]), "JPEG2000"),
    "grey jp2": lambda image: encoded(Image.fromarray(image[:, :, 0]), "JPEG2000", irreversible=True),
    "j2k codestream": lambda image: encoded(Image.fromarray(image[:, :, 0]), "JPEG2000", no_jp2=True),
    "lossy webp": lambda image: encoded(Image.fromarray(image[:, :, ::-1]), "WEBP", quality=80),
    "lossy webp with alpha and a profile": lambda image: encoded(
        Image.fromarray(image[:, :, ::-1]).convert("RGBA"), "WEBP", quality=80, icc_profile=bytes(20000)),
    "animated lossy webp": lambda image: encoded(Image.fromarray(image[:, :, ::-1]), "WEBP", quality=80,
                                                 save_all=True, append_images=[Image.new("RGB", image.shape[1::-1])]),
    "lossless webp": lambda image: encoded(Image.fromarray(image[:, :, ::-1]), "WEBP", lossless=True),
}


@pytest.mark.parametrize("kind", list(IMAGES))
def test_an_image_page_renders_like_its_image(drawn, tmp_path, kind):
    data = IMAGES[kind](drawn.image)
    shown = decode_image(data, 10**8)  # what the engine reads
    height, width = shown.shape[:2]
    line = hand_line("The quick brown fox jumps", rect(75, 59, 620, 108))
    page = OutputPage.of_image(hand_result([line], width, height), data, "page")
    assert (page.width, page.height) == (width, height)
    pdf = written(tmp_path, made_from_images([page]))
    dpi = page.dpi or DEFAULT_DPI
    assert mean_difference(render(pdf, dpi, tmp_path), shown[:, :, ::-1]) <= MAX_DIFFERENCE
    assert "The quick brown fox jumps" in pdf_text(pdf)
    with pikepdf.open(pdf) as opened:
        image = next(iter(opened.pages[0].get_images().values()))
        if kind == "jpeg":  # as it is: not decoded, not re-encoded
            assert image.Filter == pikepdf.Name.DCTDecode and image.read_raw_bytes() == data
        if kind == "png with dpi":
            assert image.read_raw_bytes() in data
        if kind.endswith("jp2"):  # the archive's master file as it is
            assert image.Filter == pikepdf.Name.JPXDecode and image.read_raw_bytes() == data
        if kind == "j2k codestream":  # PDF's JPXDecode takes the JP2 file format: the pixels go in as PNG
            assert image.Filter == pikepdf.Name.FlateDecode
        if "webp" in kind:  # never bigger than its pixels as PNG, as it went in before; lossless stays so
            assert len(image.read_raw_bytes()) <= len(encoded(Image.fromarray(shown[:, :, ::-1]), "PNG"))
        if kind == "lossless webp":
            assert image.Filter == pikepdf.Name.FlateDecode


def test_a_lossy_webp_photo_goes_in_as_jpeg_at_a_few_times_its_size_not_as_png(tmp_path):
    """A colour photo page as a lossy WebP: as PNG its pixels take many times the WebP, as
    JPEG a few, close to what the engine read."""
    rng = np.random.default_rng(3)
    scene = Image.fromarray(rng.normal(128, 40, (20, 30, 3)).clip(0, 255).astype(np.uint8))
    grain = rng.normal(0, 4, (800, 1200, 3))  # a camera's noise, which PNG cannot shrink
    photo = (np.asarray(scene.resize((1200, 800), Image.Resampling.BICUBIC)) + grain).clip(0, 255).astype(np.uint8)
    data = encoded(Image.fromarray(photo), "WEBP", quality=80)
    shown = decode_image(data, 10**8)
    page = OutputPage.of_image(hand_result([], 1200, 800), data, "photo.webp")
    pdf = written(tmp_path, made_from_images([page]))
    with pikepdf.open(pdf) as opened:
        image = next(iter(opened.pages[0].get_images().values()))
        assert image.Filter == pikepdf.Name.DCTDecode and len(image.read_raw_bytes()) <= 3 * len(data)
    assert len(encoded(Image.fromarray(shown[:, :, ::-1]), "PNG")) > 5 * len(data)
    assert mean_difference(render(pdf, DEFAULT_DPI, tmp_path), shown[:, :, ::-1]) <= MAX_DIFFERENCE


def _rgb_page(text: str) -> Image.Image:
    """A colour scan: a tinted photo-like ground under a line of text."""
    across = np.linspace(0, 1, 700)
    ground = np.stack([150 + 100 * across, np.full(700, 225.0), 200 - 60 * across], axis=1)
    ground = ground.astype(np.uint8)[None].repeat(300, axis=0)
    page = Image.fromarray(ground)
    page.paste(scan(text).convert("RGB").resize((560, 128)), (70, 80))
    return page


TIFF_FRAMES = {  # frames of a multi-page TIFF: how each is written, and how its page must hold it
    "group4": (lambda frames: tiff([f.convert("L").point(lambda v: 255 * (v > 128)).convert("1") for f in frames],
                                   dpi=200, compression="group4"), pikepdf.Name.CCITTFaxDecode),
    "jpeg in strips": (lambda frames: tiff(frames, dpi=200, compression="jpeg", quality=80), pikepdf.Name.DCTDecode),
    "lzw": (lambda frames: tiff(frames, dpi=200, compression="tiff_lzw"), pikepdf.Name.FlateDecode),
    "cmyk": (lambda frames: tiff([f.convert("CMYK") for f in frames], dpi=200), pikepdf.Name.FlateDecode),
}


@pytest.mark.parametrize("given", ["bytes", "path"])
@pytest.mark.parametrize("kind", list(TIFF_FRAMES))
def test_each_tiff_frame_renders_like_the_engine_read_it_in_a_pdf_no_bigger_than_needed(tmp_path, kind, given):
    """Every frame of a multi-page TIFF is its own page, as the engine read it (a CMYK frame
    too); black and white stays CCITT Group 4 and JPEG stays JPEG, so the PDF's images are not
    many times the TIFF. The same from the TIFF's bytes and from its file (a document's)."""
    make, kept_as = TIFF_FRAMES[kind]
    data = make([_rgb_page("FRAME ONE"), _rgb_page("FRAME TWO")])
    with Image.open(io.BytesIO(data)) as im:
        frames = []
        for index in range(2):
            im.seek(index)
            frames.append(decode_frame(im, 10**8))
    source = tmp_path / "scan.tif"
    source.write_bytes(data)
    image = data if given == "bytes" else str(source)
    pages = [OutputPage(hand_result([], f.shape[1], f.shape[0]), f.shape[1], f.shape[0], 200, "scan.tif", image,
                        frame=index) for index, f in enumerate(frames)]
    pdf = written(tmp_path, made_from_images(pages))
    with pikepdf.open(pdf) as opened:
        images = [next(iter(page.get_images().values())) for page in opened.pages]
        assert [image.Filter for image in images] == [kept_as, kept_as]
        held = sum(len(image.read_raw_bytes()) for image in images)
        if kind == "group4":  # lossless: every pixel as it was
            for image, frame in zip(images, frames):
                assert np.array_equal(np.asarray(pikepdf.PdfImage(image).as_pil_image().convert("L")), frame[:, :, 0])
    for number, frame in enumerate(frames, 1):
        assert mean_difference(render(pdf, 200, tmp_path, number), frame[:, :, ::-1]) <= MAX_DIFFERENCE
    if kind in ("group4", "jpeg in strips"):  # the pages' images take about what the frames took
        assert held <= 1.2 * len(data), (held, len(data))


def test_a_long_documents_pdf_is_made_in_parts_that_join_into_the_same_pages(tmp_path, monkeypatch):
    """Past PAGES_PER_PART pages the PDF is made part by part and the parts joined: every page
    is there in order, with its own image data and its words, as when made whole; no
    temporary file is left."""
    from worker.outputs import searchable_pdf

    frames = [_rgb_page(f"PAGE {n}") for n in range(1, 6)]
    source = tmp_path / "long.tif"
    source.write_bytes(tiff(frames, dpi=200, compression="jpeg"))
    box = [[20, 20], [300, 20], [300, 60], [20, 60]]
    pages = [OutputPage(hand_result([hand_line(f"page{n}", box)], f.width, f.height), f.width, f.height, 200,
                        "long.tif", str(source), frame=n - 1) for n, f in enumerate(frames, 1)]
    whole = written(tmp_path, made_from_images(pages), "whole.pdf")
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(spill))
    monkeypatch.setattr(searchable_pdf, "PAGES_PER_PART", 2)
    parted = written(tmp_path, made_from_images(pages), "parted.pdf")
    with pikepdf.open(whole) as a, pikepdf.open(parted) as b:
        assert len(b.pages) == len(a.pages) == 5
        for page_a, page_b in zip(a.pages, b.pages):
            image_a, image_b = (next(iter(p.get_images().values())) for p in (page_a, page_b))
            assert image_b.read_raw_bytes() == image_a.read_raw_bytes()
            assert page_b.mediabox == page_a.mediabox
    assert [pdf_text(parted).split()] == [[f"page{n}" for n in range(1, 6)]]
    assert list(spill.iterdir()) == []


def test_a_ycbcr_jpeg_tiff_keeps_its_quantisation_and_subsampling(tmp_path):
    """A colour scan's JPEG comes back out near bit for bit (re-encoding with its own tables
    and 4:2:0 sampling), at its own size rather than as a PNG many times it."""
    data = ycbcr_jpeg_tiff([_rgb_page("COLOUR SCAN")], dpi=200)
    read = decode_image(data, 10**8)
    page = OutputPage.of_image(hand_result([], read.shape[1], read.shape[0]), data, "scan.tif")
    assert page.dpi == 200
    pdf = written(tmp_path, made_from_images([page]))
    with pikepdf.open(pdf) as opened:
        image = next(iter(opened.pages[0].get_images().values()))
        assert image.Filter == pikepdf.Name.DCTDecode
        kept = image.read_raw_bytes()
    with Image.open(io.BytesIO(kept)) as jpeg:
        assert JpegImagePlugin.get_sampling(jpeg) == 2
        again = np.asarray(jpeg.convert("RGB")).astype(int)
    assert np.abs(again - read[:, :, ::-1]).mean() <= 0.5
    assert len(kept) <= 1.1 * len(data)


def test_a_fax_page_has_the_papers_size_and_its_words_on_their_boxes(tmp_path):
    """A fax at 204 x 98 dpi: the page is 8 x 4 inches for 1632 x 392 pixels, not 8 x 1.9, and
    each word lies on its box read through both resolutions."""
    image = Image.fromarray(np.full((392, 1632), 255, np.uint8)).convert("1")
    data = encoded(image, "TIFF", compression="group3", tiffinfo={282: 204, 283: 98, 296: 2})
    line = hand_line("paper size kept", rect(100, 100, 900, 160),
                     words=[("paper", rect(100, 100, 380, 160)), ("size", rect(420, 100, 620, 160)),
                            ("kept", rect(660, 100, 900, 160))])
    page = OutputPage.of_image(hand_result([line], 1632, 392), data, "fax.tif")
    assert (page.width, page.height, page.dpi, page.dpi_y) == (1632, 392, 204.0, 98.0)
    pdf = written(tmp_path, made_from_images([page]))
    with pikepdf.open(pdf) as opened:
        assert [round(float(v), 1) for v in opened.pages[0].mediabox] == [0, 0, 576.0, 288.0]
    words = pdf_words(pdf)
    assert sorted(text for text, _ in words) == ["kept", "paper", "size"]
    for text, (x0, y0, x1, y1) in words:
        found = (x0 * 204 / 72, y0 * 98 / 72, x1 * 204 / 72, y1 * 98 / 72)
        expected = next(w for w in line.words if w.text == text)
        assert iou(bounds(expected.box), found) >= MIN_IOU, (text, found)


# Pillow's transpose that undoes each EXIF orientation's display transform: stored = shown.transpose(...)
_STORED_AS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", sorted(_STORED_AS))
def test_a_jpeg_with_an_exif_orientation_is_placed_as_shown_not_re_encoded(drawn, tmp_path, orientation):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    shown = Image.fromarray(drawn.image[:, :, ::-1])
    data = encoded(shown.transpose(_STORED_AS[orientation]), "JPEG", quality=95, dpi=(200, 200), exif=exif.tobytes())
    read = decode_image(data, 10**8)
    assert mean_difference(read[:, :, ::-1], np.asarray(shown)) <= MAX_DIFFERENCE  # the engine sees it upright
    page = OutputPage.of_image(hand_result([], read.shape[1], read.shape[0]), data, "photo.jpg")
    assert (page.width, page.height, page.dpi) == (read.shape[1], read.shape[0], 200)
    pdf = written(tmp_path, made_from_images([page]))
    assert mean_difference(render(pdf, 200, tmp_path), read[:, :, ::-1]) <= MAX_DIFFERENCE
    with pikepdf.open(pdf) as opened:
        assert next(iter(opened.pages[0].get_images().values())).read_raw_bytes() == data


def _pages_of(source: bytes, read, dpi: float = RENDER_DPI) -> list[OutputPage]:  # type: ignore[no-untyped-def]
    """Each page of a PDF rendered by the page source and read by the engine."""
    pages = []
    with open_document(source, PageLimits(dpi=dpi, render_timeout_s=30)) as doc:
        for index in range(doc.page_count):
            rendered = doc.render_page(index)
            result = read(rendered.image, page=DocumentPage(index=index + 1, count=doc.page_count, dpi=rendered.dpi))
            pages.append(OutputPage(result, rendered.image.shape[1], rendered.image.shape[0], rendered.dpi, "doc.pdf"))
    return pages


def _offset_boxes(pdf: pikepdf.Pdf) -> None:
    """Media box and crop box with their origins off (0, 0), the crop box inside the media box."""
    for page in pdf.pages:
        width, height = float(page.mediabox[2]), float(page.mediabox[3])
        page.MediaBox = [-60, -45, width + 60, height + 45]
        page.CropBox = [-30, -15, width + 40, height + 25]


def _turned(degrees: int):  # type: ignore[no-untyped-def]
    def turn(pdf: pikepdf.Pdf) -> None:
        for page in pdf.pages:
            page.Rotate = degrees
    return turn


def _changed(data: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    pdf = pikepdf.open(io.BytesIO(data))
    change(pdf)
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


PDF_CHANGES = {"as scanned": lambda pdf: None, "turned 90": _turned(90), "turned 270": _turned(270),
               "turned 180": _turned(180), "offset boxes": _offset_boxes}


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("change", list(PDF_CHANGES))
def test_a_pdfs_pages_are_kept_and_its_words_found_where_they_are(read, drawn, tmp_path, change):
    """An upright page shows as it did; one shown turned (/Rotate) shows upright, as scanned."""
    scanned = scanned_pdf([Image.fromarray(drawn.image[:, :, 0])], dpi=100)
    source = _changed(scanned, PDF_CHANGES[change])
    pages = _pages_of(source, read)
    assert [line.text for line in pages[0].result.lines] == list(drawn.lines)
    turn = pages[0].result.orientation.angle if pages[0].result.orientation else 0
    assert turn == (int(change.split()[1]) if change.startswith("turned") else 0)
    out = written(tmp_path, made_with_text(source, pages))
    original = written(tmp_path, source, "in.pdf")
    shown = written(tmp_path, scanned, "scanned.pdf") if turn else original
    assert mean_difference(render(out, RENDER_DPI, tmp_path), render(shown, RENDER_DPI, tmp_path)) <= MAX_DIFFERENCE
    check_words(out, pages[0].result, RENDER_DPI)
    assert [" ".join(line.split()) for line in pdf_text(out).splitlines() if line.strip()] == list(drawn.lines)
    with pikepdf.open(original) as before, pikepdf.open(out) as after:
        kept = before.pages[0].obj.Contents.read_bytes()
        assert kept in after.pages[0].obj.Contents[1].read_bytes() and len(after.pages) == 1


@pytest.mark.models
@pytest.mark.slow
def test_a_document_keeps_every_page_and_leaves_its_own_text_alone(read, drawn, tmp_path):
    scanned = scanned_pdf([Image.fromarray(drawn.image[:, :, 0])] * 2, dpi=100)
    born_digital = text_pdf([["Already searchable"]])
    pdf = pikepdf.open(io.BytesIO(scanned))
    pdf.pages.extend(pikepdf.open(io.BytesIO(born_digital)).pages)
    buffer = io.BytesIO()
    pdf.save(buffer)
    source = buffer.getvalue()
    pages = _pages_of(source, read)
    embedded = pages[2].result.model_copy(update={"page": DocumentPage(index=3, count=3, text="embedded")})
    pages[2] = OutputPage(embedded, pages[2].width, pages[2].height, pages[2].dpi)
    out = written(tmp_path, made_with_text(source, pages))
    for number in (1, 2):
        check_words(out, pages[number - 1].result, RENDER_DPI, page=number)
    assert [t for t, _ in pdf_words(out, 3)] == ["Already", "searchable"]  # once: no text layer added
    with pytest.raises(ValueError, match="3 pages but 2"):
        made_with_text(source, pages[:2])


def test_an_encrypted_pdf_stays_encrypted_and_gets_its_text_layer(tmp_path):
    """Owner restrictions only (it opens without a password): kept, as the rest of the file."""
    source = encrypted(scanned_pdf([Image.new("L", (600, 200), 255)], dpi=100), user_password="")
    line = hand_line("kept locked", rect(50, 40, 400, 90), words=[("kept", rect(50, 40, 180, 90)),
                                                                   ("locked", rect(220, 40, 400, 90))])
    page = OutputPage(hand_result([line], 600, 200), 600, 200, 100.0)
    out = written(tmp_path, made_with_text(source, [page]))
    with pikepdf.open(out) as opened:
        assert opened.is_encrypted
    check_words(out, page.result, 100.0)


def _cjk_page(text: str, words: list[tuple[str, list[list[int]]]]) -> OutputPage:
    image = np.full((200, 600), 255, np.uint8)
    line = hand_line(text, rect(20, 40, 560, 90), words=words)
    return OutputPage.of_image(hand_result([line], 600, 200), encoded(Image.fromarray(image), "PNG"), "cjk.png")


def test_a_cjk_line_round_trips_through_pdftotext(tmp_path):
    page = _cjk_page("你好世界 docmill 日本語のテキスト", [("你好世界", rect(20, 40, 180, 90)),
                                                      ("docmill", rect(200, 40, 330, 90)),
                                                      ("日本語のテキスト", rect(350, 40, 560, 90))])
    pdf = written(tmp_path, made_from_images([page]))
    assert pdf_text(pdf).strip() == "你好世界 docmill 日本語のテキスト"
    check_words(pdf, page.result, DEFAULT_DPI)


def test_characters_beyond_the_basic_plane_round_trip(tmp_path):
    page = _cjk_page("𠀋𡈽 😀", [("𠀋𡈽", rect(20, 40, 120, 90)), ("😀", rect(200, 40, 250, 90))])
    pdf = written(tmp_path, made_from_images([page]))
    assert pdf_text(pdf).split() == ["𠀋𡈽", "😀"]


def test_every_image_page_needs_its_image():
    page = OutputPage(hand_result([], 100, 100), 100, 100)
    with pytest.raises(ValueError, match="image file"):
        made_from_images([page])
