"""`docmill run` on documents: PDFs and multi-page TIFFs become page results and one document
result each; hostile documents give coded error results and the run goes on; `--pdf-text`
decides what happens to pages that already have text. Every document is built here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from docmill.cli import main
from docmill.documents import page_result_uri, validate_document
from docmill.result import validate_result
from tests.pages import (BLANK, SLOW_PAGE, content_pdf, empty_pdf, encoded, encrypted, image_pdf, rotated,
                         scan, scanned_pdf, text_pdf, tiff)

pytestmark = [pytest.mark.models, pytest.mark.slow]


def mixed_pdf() -> bytes:
    """Page 1 born digital (a text layer), page 2 a scan (no text layer), in one PDF."""
    import io

    import pikepdf

    out = pikepdf.new()
    for part in (text_pdf([["Digital page words"]]), scanned_pdf([scan("SCANNED 2024")], dpi=150)):
        out.pages.extend(pikepdf.open(io.BytesIO(part)).pages)
    buf = io.BytesIO()
    out.save(buf)
    return buf.getvalue()


def run(inputs: list[Path], out: Path, *flags: str) -> None:
    assert main(["run", *map(str, inputs), "--out", str(out), "--device", "cpu", "--quiet", *flags]) == 0


def document(out: Path, name: str) -> dict:
    data = json.loads((out / f"{name}.json").read_text())
    validate_document(data)
    return data


def page(out: Path, name: str, number: int) -> dict:
    count = json.loads((out / f"{name}.json").read_text())["page_count"]
    data = json.loads(Path(page_result_uri(str(out / f"{name}.json"), number, count)).read_text())
    validate_result(data)
    return data


def texts(result: dict) -> str:
    return " ".join(line["text"] for line in result["lines"])


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> tuple[Path, Path]:
    """One run over a folder of good, odd and hostile documents (and an image among them)."""
    folder = tmp_path_factory.mktemp("documents")
    files = {
        "scans.pdf": scanned_pdf([scan("FIRST PAGE"), scan("SECOND PAGE"), scan("THIRD PAGE")], dpi=150),
        "turned.pdf": rotated(scanned_pdf([scan("TURNED PAGE")], dpi=150), 90),
        "frames.tif": tiff([scan("FRAME ONE"), scan("FRAME TWO")], dpi=150),
        "single.tif": tiff([scan("ONLY FRAME")]),
        "fax.pdf": image_pdf(encoded(scan("CCITT FAX").point(lambda v: 255 if v > 128 else 0).convert("1"),
                                     "TIFF", compression="group4"), 150),
        "jp2.pdf": image_pdf(encoded(scan("JPEG TWOK").convert("RGB"), "JPEG2000"), 150),
        "locked.pdf": encrypted(text_pdf([["secret"]])),
        "cut.pdf": scanned_pdf([scan("CUT SHORT")], dpi=150)[:700],
        "empty.pdf": empty_pdf(),
        "huge.pdf": content_pdf([BLANK], size=(200 * 72.0, 200 * 72.0)),
        "slow.pdf": content_pdf([BLANK, SLOW_PAGE * 40]),
        "png-named.pdf": encoded(scan("NOT A PDF"), "PNG"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as env:
        # slow.pdf's second page takes over an hour; huge.pdf's 10,000 x 10,000 render took 2.8 s
        # on a slow 2-CPU machine, so 2 s cut it off there
        env.setenv("DOCMILL_RENDER_TIMEOUT_S", "10")
        run([folder], out)
    return folder, out


def test_each_page_has_its_result_and_the_document_lists_them(documents):
    _, out = documents
    whole = document(out, "scans.pdf")
    assert (whole["kind"], whole["page_count"], whole["error"]) == ("pdf", 3, None)
    assert [(p["index"], p["status"], p["lines"] > 0) for p in whole["pages"]] == [
        (1, "ok", True), (2, "ok", True), (3, "ok", True)]
    for number, word in enumerate(("FIRST", "SECOND", "THIRD"), 1):
        result = page(out, "scans.pdf", number)
        assert result["page"] == {"index": number, "count": 3, "dpi": 150.0, "text": "ocr"}
        assert word in texts(result)
        assert result["source"]["sha256"] == whole["source"]["sha256"]


def test_a_rotated_page_is_read_upright_at_its_turned_size(documents):
    _, out = documents
    result = page(out, "turned.pdf", 1)
    assert "TURNED" in texts(result)
    assert result["image"]["height"] > result["image"]["width"]  # /Rotate 90 of a wide scan


def test_every_tiff_frame_is_a_page_and_a_one_page_tiff_stays_an_image(documents):
    _, out = documents
    assert [p["status"] for p in document(out, "frames.tif")["pages"]] == ["ok", "ok"]
    assert "TWO" in texts(page(out, "frames.tif", 2))
    single = json.loads((out / "single.tif.json").read_text())
    validate_result(single)
    assert single["page"] is None and "ONLY" in texts(single)
    assert not (out / "single.tif").exists()


@pytest.mark.parametrize(("name", "word"), [("fax.pdf", "FAX"), ("jp2.pdf", "JPEG")])
def test_ccitt_and_jpeg2000_page_images_are_read(documents, name, word):
    _, out = documents
    assert word in texts(page(out, name, 1))


@pytest.mark.parametrize(("name", "code"), [
    ("locked.pdf", "encrypted"), ("cut.pdf", "decode_error"), ("empty.pdf", "decode_error")])
def test_a_document_that_cannot_be_read_gets_an_error_result_and_no_pages(documents, name, code):
    _, out = documents
    whole = document(out, name)
    assert whole["error"]["code"] == code and whole["pages"] == [] and whole["page_count"] is None
    assert not (out / name).exists()


def test_an_absurd_page_is_rendered_under_the_pixel_cap(documents):
    _, out = documents
    result = page(out, "huge.pdf", 1)
    assert result["error"] is None
    assert result["image"]["width"] * result["image"]["height"] <= 100_000_000
    assert result["page"]["dpi"] < 150


def test_a_page_that_hangs_costs_that_page_only(documents):
    _, out = documents
    whole = document(out, "slow.pdf")
    assert [(p["status"], (p["error"] or {}).get("code")) for p in whole["pages"]] == [
        ("ok", None), ("failed", "render_timeout")]
    assert page(out, "slow.pdf", 2)["error"]["code"] == "render_timeout"


def test_a_png_named_pdf_is_read_as_the_image_it_is(documents):
    _, out = documents
    result = json.loads((out / "png-named.pdf.json").read_text())
    validate_result(result)
    assert "PDF" in texts(result) and result["page"] is None


@pytest.mark.parametrize(("mode", "first"), [
    ("ocr", ("ok", "ocr")), ("skip", ("skipped", "skipped")), ("embedded", ("ok", "embedded"))])
def test_pdf_text_modes_on_a_mixed_pdf(tmp_path, mode, first):
    source = tmp_path / "mixed.pdf"
    source.write_bytes(mixed_pdf())
    out = tmp_path / "out"
    run([source], out, "--pdf-text", mode)
    whole = document(out, "mixed.pdf")
    assert whole["pdf_text"] == mode
    assert [(p["status"], p["text"]) for p in whole["pages"]] == [first, ("ok", "ocr")]
    digital, scanned = page(out, "mixed.pdf", 1), page(out, "mixed.pdf", 2)
    assert "SCANNED" in texts(scanned)
    if mode == "skip":
        assert digital["lines"] == []
    else:
        assert "Digital" in texts(digital)
    if mode == "embedded":
        assert [line["score"] for line in digital["lines"]] == [1.0]


def test_a_page_range_of_a_document_that_changed_gets_error_pages(tmp_path):
    """A producer split the document into ranges, then it lost pages: the missing range's
    pages each get a decode_error result, so the document's last page is still recorded."""
    from converter.presets import ensure_model_set
    from docmill.messages import TaskItem
    from docmill.modelset import ModelSet
    from docmill.settings import Settings
    from worker.local import Inputs, run_items

    source = tmp_path / "shrunk.pdf"
    source.write_bytes(scanned_pdf([scan("ONE"), scan("TWO")], dpi=150))
    settings = Settings(device="cpu")
    dst = str(tmp_path / "out" / "shrunk.pdf.json")
    items = [TaskItem(src=str(source), dst=dst, pages=(1, 2), page_count=4),
             TaskItem(src=str(source), dst=dst, pages=(3, 4), page_count=4)]
    model_set = ModelSet.load(ensure_model_set(settings.models, settings))
    summary = run_items(Inputs(items=items), model_set, settings, "cpu", {}, 4, False, True)
    assert (summary.pages, summary.ok, summary.failed) == (4, 2, 2)
    for number in (3, 4):
        result = json.loads(Path(page_result_uri(dst, number, 4)).read_text())
        validate_result(result)
        assert result["error"]["code"] == "decode_error" and "changed after it was listed" in result["error"]["message"]
        assert result["page"]["index"] == number and result["page"]["count"] == 4


def test_the_searchable_pdf_adds_no_second_text_layer_to_a_born_digital_page(tmp_path):
    """--pdf-text ocr reads every page, but a page with text of its own keeps only that text in
    the searchable PDF: found once, not twice; the scanned page gets the OCR layer."""
    import subprocess

    source = tmp_path / "mixed.pdf"
    source.write_bytes(mixed_pdf())
    run([source], tmp_path / "out", "--format", "pdf")
    searchable = str(tmp_path / "out" / "mixed.pdf.pdf")
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", searchable, "-"], capture_output=True, text=True,
                           check=True).stdout
    second = subprocess.run(["pdftotext", "-f", "2", "-l", "2", searchable, "-"], capture_output=True, text=True,
                            check=True).stdout
    assert first.split() == ["Digital", "page", "words"]
    assert "SCANNED" in second


def test_a_cmyk_tiffs_searchable_pdf_has_every_frame_with_its_text(tmp_path):
    """A CMYK multi-page TIFF (prepress and some scanners) is read, and its searchable PDF is
    made from the frames as the engine read them: once a write_error, as PNG cannot hold CMYK."""
    import subprocess

    source = tmp_path / "cmyk.tif"
    source.write_bytes(tiff([scan("CYAN PAGE").convert("CMYK"), scan("BLACK PAGE").convert("CMYK")], dpi=150))
    run([source], tmp_path / "out", "--format", "pdf")
    searchable = str(tmp_path / "out" / "cmyk.tif.pdf")
    pages = [subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), searchable, "-"], capture_output=True, text=True,
                            check=True).stdout for n in (1, 2)]
    assert "CYAN" in pages[0] and "BLACK" in pages[1]


def test_a_tiff_frame_that_cannot_be_read_is_a_blank_page_of_the_searchable_pdf(tmp_path):
    """One corrupt frame is that page's decode_error; the searchable PDF still holds every
    page, the broken one blank at the frame's size, and the others' text where it was."""
    import io
    import subprocess

    from PIL import Image

    data = bytearray(tiff([scan("PAGE ONE"), scan("PAGE TWO", size=(900, 200)), scan("PAGE THREE")],
                          dpi=150, compression="tiff_lzw"))
    with Image.open(io.BytesIO(bytes(data))) as im:
        im.seek(1)
        start, length = im.tag_v2[273][0], im.tag_v2[279][0]
    data[start:start + length] = b"\xff" * length  # LZW codes not yet in its table
    source = tmp_path / "broken.tif"
    source.write_bytes(bytes(data))
    run([source], tmp_path / "out", "--format", "pdf")
    assert [p["status"] for p in document(tmp_path / "out", "broken.tif")["pages"]] == ["ok", "failed", "ok"]
    searchable = str(tmp_path / "out" / "broken.tif.pdf")
    shown = [subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), searchable, "-"], capture_output=True,
                            text=True, check=True).stdout.split() for n in (1, 2, 3)]
    assert shown == [["PAGE", "ONE"], [], ["PAGE", "THREE"]]
    info = subprocess.run(["pdfinfo", "-f", "2", "-l", "2", searchable], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"^Page +2 size: +432 x 96 pts$", info, re.MULTILINE)  # 900 x 200 pixels at 150 dpi


def test_hash_named_blobs_are_read_as_what_their_bytes_are(tmp_path, capsys):
    """A store of blobs with no suffix: passed over and counted by default; with --include '*'
    a PDF and a multi-page TIFF among them are documents, an image an image, and a text file
    an error result that says what it is. A blob named as an input is read by its bytes too."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "3fa9c2").write_bytes(scanned_pdf([scan("BLOB PDF ONE"), scan("BLOB PDF TWO")], dpi=150))
    (blobs / "b0c1d2").write_bytes(tiff([scan("FRAME ONE"), scan("FRAME TWO")], dpi=150))
    (blobs / "77aa01").write_bytes(encoded(scan("BLOB IMAGE"), "JPEG"))
    (blobs / "notes").write_bytes(b"not a page at all")
    assert main(["run", str(blobs), "--out", str(tmp_path / "none"), "--device", "cpu", "--quiet"]) == 2
    assert "passed over: 4 (none)" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["run", str(blobs), "--out", str(out), "--device", "cpu", "--include", "*"]) == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("docmill run: 2 images, 2 documents (4 pages, 0 failed), 5 ok, 1 failed") and (
        " images and pages/s on " in line)
    assert [p["status"] for p in document(out, "3fa9c2")["pages"]] == ["ok", "ok"]
    assert "TWO" in texts(page(out, "3fa9c2", 2))
    assert document(out, "b0c1d2")["kind"] == "tiff" and "TWO" in texts(page(out, "b0c1d2", 2))
    image = json.loads((out / "77aa01.json").read_text())
    assert "IMAGE" in texts(image) and not (out / "77aa01").exists()
    notes = json.loads((out / "notes.json").read_text())
    assert notes["error"]["code"] == "decode_error" and "not recognised" in notes["error"]["message"]
    run([blobs / "3fa9c2"], tmp_path / "named")
    assert document(tmp_path / "named", "3fa9c2")["page_count"] == 2


def test_a_standard_resolution_fax_reads_and_keeps_its_paper_size(tmp_path):
    """A fax at 204 x 98 dpi holds every other row: its text is read stretched back to square
    pixels, its boxes come back in the frame's own pixels, and its searchable PDF pages have the
    paper's size (at one resolution they came out half as tall); its results and hOCR state
    both resolutions."""
    import subprocess

    from PIL import Image

    frames = [scan(text, size=(900, 200)).resize((900, 100), Image.Resampling.NEAREST)
              .point(lambda v: 255 if v > 128 else 0).convert("1") for text in ("FAX PAGE ONE", "FAX PAGE TWO")]
    source = tmp_path / "fax.tif"
    source.write_bytes(tiff(frames, compression="group3", tiffinfo={282: 204, 283: 98, 296: 2}))
    run([source], tmp_path / "out", "--format", "pdf,hocr")
    for number, word in ((1, "ONE"), (2, "TWO")):
        result = page(tmp_path / "out", "fax.tif", number)
        assert (result["image"]["width"], result["image"]["height"]) == (900, 100)
        assert (result["page"]["dpi"], result["page"]["dpi_y"]) == (204, 98)
        assert texts(result).replace(" ", "") == f"FAXPAGE{word}"
        assert max(y for line in result["lines"] for _, y in line["box"]) < 100  # in the frame's pixels
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "2", str(tmp_path / "out" / "fax.tif.pdf")],
                          capture_output=True, text=True, check=True).stdout
    sizes = re.findall(r"^Page +\d+ size: +([\d.]+) x ([\d.]+) pts$", info, re.M)
    assert [(round(float(w), 1), round(float(h), 1)) for w, h in sizes] == [(317.6, 73.5)] * 2  # 900/204, 100/98 in
    assert re.findall(r"scan_res (\d+ \d+)", (tmp_path / "out" / "fax.tif.hocr").read_text()) == ["204 98"] * 2


def test_a_tiffs_thumbnails_and_pyramid_levels_are_not_read_as_pages(tmp_path):
    """A pyramidal master (the page and halves of it) is one image; a scan keeping a thumbnail
    after each page is a document of its pages, and its searchable PDF has just those."""
    import subprocess

    from tests.pages import tagged_tiff

    master = scan("MASTER PAGE", size=(900, 200))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "pyramid.tif").write_bytes(
        tagged_tiff([(master, {254: 0}), (master.resize((450, 100)), {254: 1}), (master.resize((225, 50)), {254: 1})]))
    first, second = scan("FIRST PAGE"), scan("SECOND PAGE")
    (tmp_path / "in" / "thumbs.tif").write_bytes(tagged_tiff(
        [(first, {254: 2}), (first.resize((70, 16)), {254: 1}), (second, {254: 2}), (second.resize((70, 16)), {254: 1})]))
    late = scan("LATE PAGE", size=(900, 200))
    (tmp_path / "in" / "thumb-first.tif").write_bytes(tagged_tiff([(late.resize((90, 20)), {254: 1}), (late, {254: 0})]))
    out = tmp_path / "out"
    run([tmp_path / "in"], out, "--format", "pdf")
    assert "MASTER" in texts(json.loads((out / "pyramid.tif.json").read_text()))
    assert not (out / "pyramid.tif").exists()
    assert document(out, "thumb-first.tif")["page_count"] == 1  # the thumbnail, read as the image, said nothing
    assert "LATE" in texts(page(out, "thumb-first.tif", 1))
    assert [p["status"] for p in document(out, "thumbs.tif")["pages"]] == ["ok", "ok"]
    assert "SECOND" in texts(page(out, "thumbs.tif", 2))
    shown = subprocess.run(["pdftotext", str(out / "thumbs.tif.pdf"), "-"], capture_output=True, text=True,
                           check=True).stdout.split("\f")[:-1]  # each page ends in a form feed
    assert len(shown) == 2 and "FIRST" in shown[0] and "SECOND" in shown[1]


def test_a_multipage_tiff_whose_pages_folder_would_be_itself_gets_one_error_and_no_pages(tmp_path):
    """--out the input folder: a PDF is refused before any work (tests/worker/test_local_checks.py), a TIFF is a
    document only once read, and then the document says why, without reading its pages."""
    (tmp_path / "frames.tif").write_bytes(tiff([scan("FRAME ONE"), scan("FRAME TWO")], dpi=150))
    (tmp_path / "single.tif").write_bytes(tiff([scan("ONLY FRAME")]))
    run([tmp_path], tmp_path)
    frames = document(tmp_path, "frames.tif")
    assert frames["error"]["code"] == "write_error" and frames["pages"] == []
    assert frames["error"]["message"].startswith(f"its page results go in {tmp_path}/frames.tif/, but ")
    assert "ONLY" in texts(json.loads((tmp_path / "single.tif.json").read_text()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.tif", "frames.tif.json", "single.tif",
                                                          "single.tif.json"]


def test_formats_too_large_to_hold_are_made_on_disk_and_come_out_the_same(tmp_path, monkeypatch):
    """Past IN_MEMORY_OUTPUT_BYTES a format file is made in a temporary file on disk and
    written from there (a searchable PDF is as large as its scan): the files are the same as
    those made in memory, and no temporary file is left."""
    import subprocess
    import tempfile

    from worker import deliverables

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "frames.tif").write_bytes(tiff([scan("FRAME ONE"), scan("FRAME TWO")], dpi=150))
    (folder / "scans.pdf").write_bytes(scanned_pdf([scan("FIRST PAGE"), scan("SECOND PAGE")], dpi=150))
    run([folder], tmp_path / "held", "--format", "pdf,alto,txt")
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    monkeypatch.setattr(deliverables, "IN_MEMORY_OUTPUT_BYTES", 1)
    run([folder], tmp_path / "spilled", "--format", "pdf,alto,txt")
    for name in ("frames.tif.pdf", "frames.tif.alto.xml", "frames.tif.txt", "scans.pdf.alto.xml", "scans.pdf.txt"):
        assert (tmp_path / "spilled" / name).read_bytes() == (tmp_path / "held" / name).read_bytes(), name
    texts = [subprocess.run(["pdftotext", str(out / "scans.pdf.pdf"), "-"], capture_output=True, text=True,
                            check=True).stdout for out in (tmp_path / "held", tmp_path / "spilled")]
    assert texts[0] == texts[1] and "SECOND" in texts[1]
    assert list(spill.iterdir()) == []


@pytest.mark.parametrize(("first", "then", "read_again"), [
    ("hocr", "hocr,alto", 0),  # the pages have their word boxes: none is read again
    ("txt", "txt,hocr", 2),  # they have none, and hOCR places words: every page is read again
])
def test_a_format_asked_for_later_is_made_from_the_pages_kept_where_they_serve(tmp_path, capsys, first, then,
                                                                                read_again):
    """A finished document asked for another --format with --skip-existing is not current,
    but each of its pages is, unless the new format needs word boxes its results lack: the
    new file is made from the stored page results."""
    source = tmp_path / "in" / "scans.pdf"
    source.parent.mkdir()
    source.write_bytes(scanned_pdf([scan("FIRST PAGE"), scan("SECOND PAGE")], dpi=150))
    run([source.parent], tmp_path / "out", "--format", first)
    capsys.readouterr()
    run([source.parent], tmp_path / "out", "--format", then, "--skip-existing")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["pages"], summary["results_kept"], summary["documents"]) == (read_again, 2 - read_again, 1)
    added = (tmp_path / "out" / f"scans.pdf.{then.split(',')[1].replace('alto', 'alto.xml')}").read_text()
    assert "FIRST" in added and "SECOND" in added
    assert all(line["words"] for number in (1, 2) for line in page(tmp_path / "out", "scans.pdf", number)["lines"])
