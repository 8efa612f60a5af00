"""worker.deliverables: a long document's files are made from page results read one at a
time, and a stored page result that cannot be read costs the document its files, never the
run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docmill.documents import DocumentResult, page_result_uri
from docmill.messages import TaskItem
from docmill.result import ModelsInfo, SourceInfo
from docmill.settings import Settings
from docmill.storage import StorageError
from tests.worker.outputs import hand_line, hand_result, rect
from worker.deliverables import DeliverableWriter, LazyPages
from worker.documents import DocumentSpool
from worker.metrics import Metrics
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


def _document(tmp_path: Path, pages: int) -> tuple[DeliverableWriter, DocumentResult, TaskItem]:
    settings = Settings()
    dst = str(tmp_path / "out" / "scan.pdf.json")
    item = TaskItem(src=str(tmp_path / "scan.pdf"), dst=dst)
    for number in range(1, pages + 1):
        result = hand_result([hand_line(f"page {number}", rect(10, 10, 200, 40))], 300, 100)
        path = Path(page_result_uri(dst, number))
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
    broken = Path(page_result_uri(item.dst, 2))
    broken.write_text(json.dumps({"schema": "docmill.result/v1", "lines": "not a list"}))
    with pytest.raises(StorageError) as info:
        writer.document(document, item, ["txt"])
    assert info.value.code == "write_error" and "not a valid page result" in str(info.value)
    assert not (tmp_path / "out" / "scan.pdf.txt").exists()
    assert writer.finish_document(document, item, ["txt"]) == "write_error"
