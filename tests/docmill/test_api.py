"""The Python API: `from docmill import Ocr; Ocr().read(image)` on paths, bytes, grey, BGR
and BGRA arrays and PIL images, typed results, batches, and clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def ocr():
    from docmill import Ocr

    return Ocr(device="cpu")


@pytest.fixture(scope="module")
def letter(sample_pages):
    images, truth = sample_pages
    return images["letter.png"], truth["letter.png"]


def test_img_12_read_as_a_grey_array_gives_its_lines(ocr, shared_dir):
    from docmill import Ocr  # the one-liner of the issue, on the default set

    grey = cv2.imread(str(shared_dir / "data/paddleocr/doc/imgs_en/img_12.jpg"), cv2.IMREAD_GRAYSCALE)
    page = Ocr(device="cpu").read(grey)
    texts = [line.text for line in page.lines]
    assert texts[0] == "ACKNOWLEDGEMENTS" and len(texts) >= 10
    assert (page.width, page.height) == (grey.shape[1], grey.shape[0])


def test_every_input_form_gives_the_same_lines(ocr, letter, tmp_path):
    bgr, truth = letter
    path = tmp_path / "letter.png"
    cv2.imwrite(str(path), bgr)
    forms = {
        "path": str(path),
        "pathlib": path,
        "bytes": path.read_bytes(),
        "bgr": bgr,
        "bgra": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
        "grey": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
        "grey 1 channel": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None],
        "pil": Image.open(path),
    }
    texts = {name: [line.text for line in ocr.read(form).lines] for name, form in forms.items()}
    assert texts["bgr"][:3] == truth[:3]
    for name, got in texts.items():
        assert got == texts["bgr"], name


def test_lines_are_typed_with_box_score_and_angle(ocr, letter):
    from docmill import OcrLine

    line = ocr.read(letter[0]).lines[0]
    assert isinstance(line, OcrLine) and isinstance(line.text, str)
    assert 0 < line.score <= 1 and line.angle in (0, 180)
    assert len(line.box) == 4 and all(len(point) == 2 for point in line.box)


def test_read_many_keeps_order_across_batches(sample_pages):
    from docmill import Ocr

    images, _ = sample_pages
    ocr = Ocr(device="cpu", batch_size=2)
    names = list(images)
    pages = list(ocr.read_many(images[name] for name in names))
    assert len(pages) == len(names)
    for name, page in zip(names, pages):
        assert [l.text for l in page.lines] == [l.text for l in ocr.read(images[name]).lines]


def test_read_many_batches_stay_within_the_pixel_budget(sample_pages, tmp_path):
    from docmill import Ocr
    from docmill.settings import Settings
    from worker.engine.pipeline import page_pixels

    images, _ = sample_pages
    paths = []
    for name, image in images.items():
        paths.append(tmp_path / f"{name}.png")
        cv2.imwrite(str(paths[-1]), image)
    ocr = Ocr(device="cpu", batch_size=8, settings=Settings(device="cpu"))
    costs = {str(p): page_pixels(image.shape[1], image.shape[0], ocr.options) for p, image in zip(paths, images.values())}
    ocr.settings = Settings(device="cpu", pixel_budget_mp=(max(costs.values()) + 1) / 1e6)
    batches: list[int] = []
    real_run = ocr._engine.run
    ocr._engine.run = lambda arrays, options: batches.append(sum(  # record, then the real engine
        page_pixels(a.shape[1], a.shape[0], options) for a in arrays)) or real_run(arrays, options)
    pages = list(ocr.read_many(paths))
    assert len(pages) == len(paths) and len(batches) > 1
    assert max(batches) <= ocr.settings.pixel_budget()


def test_options_apply_and_bad_ones_fail_at_construction(letter):
    from pydantic import ValidationError

    from docmill import Ocr

    assert Ocr(device="cpu", drop_score=0.9999).read(letter[0]).lines != Ocr(device="cpu").read(letter[0]).lines
    with pytest.raises(ValidationError):
        Ocr(device="cpu", det_thresh=2)


def test_a_misspelt_option_names_the_nearest_one_before_any_model_loads(tmp_path):
    from docmill import Ocr
    from docmill.settings import Settings

    nowhere = Settings(models=str(tmp_path / "no-such-set"))  # loading it would fail otherwise
    with pytest.raises(TypeError, match=r"Ocr\(\) got an unknown engine option 'det_tresh'; did you mean det_thresh\?"):
        Ocr(settings=nowhere, det_tresh=0.3)
    with pytest.raises(TypeError, match=r"unknown engine option 'zzz'$"):
        Ocr(settings=nowhere, zzz=1)


def test_bad_input_is_a_clear_error(ocr):
    with pytest.raises(ValueError, match="decode_error"):
        ocr.read(b"not an image")
    with pytest.raises(ValueError, match="channels"):
        ocr.read(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(TypeError, match="numpy array or a PIL image"):
        ocr.read(12)


def test_read_many_gives_an_error_page_for_each_bad_input_and_reads_the_rest(ocr, letter, tmp_path):
    """One bad file among many must not end the loop: each comes back in its place with what
    read() would have raised, and the good ones around it are read."""
    from tests.pages import encrypted, text_pdf

    bgr, truth = letter
    good = tmp_path / "letter.png"
    cv2.imwrite(str(good), bgr)
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(encrypted(text_pdf([["x"]])))
    inputs = [good, b"not an image", tmp_path / "missing.png", np.zeros((10, 10, 2), np.uint8),
              good.read_bytes()[: len(good.read_bytes()) // 2], locked, tmp_path, bgr]
    pages = list(ocr.read_many(inputs))
    errors = [page.error.split(":", 1)[0] if page.error else None for page in pages]
    assert errors == [None, "decode_error", "not_found", "decode_error", "decode_error", "encrypted",
                      "read_error", None]
    assert [line.text for line in pages[0].lines][:3] == truth[:3]
    assert [line.text for line in pages[-1].lines] == [line.text for line in pages[0].lines]
    assert all(not page.lines for page in pages[1:-1]) and "channels" in pages[3].error
    with pytest.raises(TypeError, match="numpy array or a PIL image"):
        list(ocr.read_many([good, 12]))


def test_documents_read_page_by_page_everywhere_an_image_is_read(ocr, tmp_path):
    from tests.pages import encrypted, scan, scanned_pdf, tagged_tiff, text_pdf, tiff

    pdf = scanned_pdf([scan("FIRST PAGE"), scan("SECOND PAGE")], dpi=150)
    (tmp_path / "two.pdf").write_bytes(pdf)
    pages = list(ocr.read_document(tmp_path / "two.pdf"))
    assert [(p.page, p.dpi, "FIRST" in p.text, "SECOND" in p.text) for p in pages] == [
        (1, 150.0, True, False), (2, 150.0, False, True)]
    mixed = list(ocr.read_many([scan_bytes := tiff([scan("FRAME ONE"), scan("FRAME TWO")]), pdf]))
    assert [p.page for p in mixed] == [1, 2, 1, 2] and "TWO" in mixed[1].text
    assert "ONLY" in ocr.read(scanned_pdf([scan("ONLY PAGE")], dpi=150)).text
    late = scan("LATE PAGE", size=(900, 200))
    assert "LATE" in ocr.read(tagged_tiff([(late.resize((90, 20)), {254: 1}), (late, {254: 0})])).text  # not its thumbnail
    with pytest.raises(ValueError, match="a document of 2 pages: use read_document"):
        ocr.read(scan_bytes)
    with pytest.raises(ValueError, match="^encrypted"):
        list(ocr.read_document(encrypted(text_pdf([["x"]]))))
    embedded = list(ocr.read_document(text_pdf([["Digital words"]]), pdf_text="embedded"))
    assert embedded[0].text_from == "embedded" and embedded[0].text == "Digital words"


def test_export_gives_the_files_docmill_run_writes(ocr, tmp_path):
    import subprocess

    from tests.pages import scan, scanned_pdf

    files = ocr.export(scanned_pdf([scan("EXPORT ONE"), scan("EXPORT TWO")], dpi=150), ["pdf", "txt", "hocr"])
    assert set(files) == {"json", "pdf", "txt", "hocr"}
    (tmp_path / "out.pdf").write_bytes(files["pdf"])
    extracted = subprocess.run(["pdftotext", str(tmp_path / "out.pdf"), "-"], capture_output=True, text=True,
                               check=True).stdout
    assert "ONE" in extracted and "TWO" in extracted and "TWO" in files["txt"].decode()
    with pytest.raises(ValueError, match=r"export\(\) formats: unknown docx"):
        ocr.export(b"x", ["docx"])
    with pytest.raises(ValueError, match="^decode_error"):
        ocr.export(b"not an image at all", ["txt"])
    as_text = ocr.export(scanned_pdf([scan("EXPORT ONE")], dpi=150), "txt,hocr")  # as --format takes it
    assert set(as_text) == {"json", "txt", "hocr"} and "ONE" in as_text["txt"].decode()


def test_a_fax_is_read_as_docmill_run_reads_it_and_answers_in_its_own_pixels(ocr, monkeypatch):
    """A fax at 204 x 98 dpi (every other row), alone and as a frame of a document: the engine
    is given it with square pixels (twice as tall), and the page and boxes come back in the
    file's own pixels."""
    from PIL import Image

    from tests.pages import encoded, scan, tiff

    engine, shapes = ocr._engine, []
    run = engine.run

    def recorded(arrays, options):  # type: ignore[no-untyped-def]
        shapes.extend(a.shape for a in arrays)
        return run(arrays, options)

    monkeypatch.setattr(engine, "run", recorded)
    frame = scan("FAX PAGE", size=(900, 200)).resize((900, 100), Image.Resampling.NEAREST) \
        .point(lambda v: 255 if v > 128 else 0).convert("1")
    fax = {282: 204, 283: 98, 296: 2}
    alone = ocr.read(encoded(frame, "TIFF", compression="group3", tiffinfo=fax))
    pages = list(ocr.read_document(tiff([frame, frame], compression="group3", tiffinfo=fax)))
    assert shapes == [(208, 900, 3)] * 3
    for page in (alone, *pages):
        assert (page.width, page.height) == (900, 100)
        assert page.text.replace(" ", "") == "FAXPAGE"
        assert all(0 <= y < 100 for line in page.lines for _, y in line.box)
