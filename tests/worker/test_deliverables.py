"""worker.deliverables: a long document's files are made from page results read one at a
time, and a stored page result that cannot be read costs the document its files, never the
run."""

from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path

import pikepdf

import pytest

from docmill.documents import DocumentResult, page_result_uri
from docmill.messages import TaskItem
from docmill.result import ModelsInfo, SourceInfo
from docmill.settings import Settings
from docmill.storage import StorageError
from tests.worker.outputs import hand_line, hand_result, rect
from tests.pages import numbered_pdf
from worker.deliverables import DeliverableWriter, FedPages, LazyPages, output_files
from worker.documents import DocumentSpool
from worker.metrics import Metrics
from worker.outputs import searchable_pdf
from worker.outputs.page import OutputPage
from worker.writer import ResultWriter


def test_lazy_pages_load_each_page_when_it_is_reached():
    loaded: list[int] = []

    def load(index: int) -> OutputPage:
        loaded.append(index)
        return OutputPage(hand_result([], 10, 10), 10, 10)

    pages = LazyPages(5, load)
    assert len(pages) == 5 and loaded == []
    for number, _ in enumerate(pages):
        assert loaded[-1] == number  # one at a time, as iterated
    assert len(pages[1:4]) == 3 and pages[-1] is not None
    with pytest.raises(IndexError):
        pages[5]


def test_an_index_error_inside_a_load_is_an_error_not_the_end_of_the_pages():
    def load(index: int) -> OutputPage:
        if index == 2:
            raise IndexError("a frame the TIFF no longer has")
        return OutputPage(hand_result([], 10, 10), 10, 10)

    with pytest.raises(IndexError, match="no longer has"):
        list(LazyPages(4, load))  # a Sequence's default iteration would end at page 2 without a word


def test_every_format_is_made_from_one_read_of_each_page():
    """txt, ALTO and the searchable PDF of a 3-page PDF load each stored page once, in order,
    and each file holds every page."""
    loaded: list[int] = []

    def load(index: int) -> OutputPage:
        loaded.append(index)
        return OutputPage(hand_result([hand_line(f"page {index + 1}", rect(10, 10, 200, 40))], 612, 792), 612, 792, 72)

    make_pdf = partial(searchable_pdf.pdf_with_text, numbered_pdf(3))
    with output_files(["txt", "alto", "pdf"], LazyPages(3, load), make_pdf) as files:
        made = {fmt: (file.seek(0), file.read())[1] for fmt, file in files.items()}
    assert loaded == [0, 1, 2]
    assert made["txt"].decode().split("\f") == ["page 1\n", "page 2\n", "page 3\n"]
    assert made["alto"].decode().count("<Page ") == 3
    with pikepdf.open(io.BytesIO(made["pdf"])) as pdf:
        assert len(pdf.pages) == 3


def test_fed_pages_feed_each_page_once_in_order_however_the_maker_reads_them():
    pages = [OutputPage(hand_result([], 10, 10), 10, 10) for _ in range(4)]
    fed: list[int] = []
    seen = FedPages(pages, lambda page: fed.append(next(i for i, p in enumerate(pages) if p is page)))
    assert seen[2] is pages[2] and seen[0] is pages[0] and seen[-2] is pages[2]
    assert fed == [0, 1, 2]
    seen.finish()
    assert fed == [0, 1, 2, 3]


def _document(tmp_path: Path, pages: int) -> tuple[DeliverableWriter, DocumentResult, TaskItem]:
    settings = Settings()
    dst = str(tmp_path / "out" / "scan.pdf.json")
    item = TaskItem(src=str(tmp_path / "scan.pdf"), dst=dst)
    for number in range(1, pages + 1):
        result = hand_result([hand_line(f"page {number}", rect(10, 10, 200, 40))], 300, 100)
        path = Path(page_result_uri(dst, number, pages))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(result.to_json_bytes())
    document = DocumentResult(source=SourceInfo(uri=item.src), kind="pdf", page_count=pages,
                              models=ModelsInfo(set="pp-ocrv6", version="test"))
    return DeliverableWriter(ResultWriter(settings, Metrics()), DocumentSpool(settings)), document, item


def test_a_documents_text_formats_are_made_page_by_page_from_its_stored_results(tmp_path):
    writer, document, item = _document(tmp_path, 3)
    writer.document(document, item, ["txt", "alto"])
    assert (tmp_path / "out" / "scan.pdf.txt").read_text().split("\f") == ["page 1\n", "page 2\n", "page 3\n"]
    assert (tmp_path / "out" / "scan.pdf.alto.xml").read_text().count("<Page ") == 3


def test_a_stored_page_result_that_is_no_longer_valid_is_a_write_error(tmp_path):
    writer, document, item = _document(tmp_path, 2)
    broken = Path(page_result_uri(item.dst, 2, 2))
    broken.write_text(json.dumps({"schema": "docmill.result/v1", "lines": "not a list"}))
    with pytest.raises(StorageError) as info:
        writer.document(document, item, ["txt"])
    assert info.value.code == "write_error" and "not a valid page result" in str(info.value)
    assert not (tmp_path / "out" / "scan.pdf.txt").exists()
    assert writer.finish_document(document, item, ["txt"]) == "write_error"
