"""bench.pdf_memory runs end to end on short documents: each case writes the whole PDF, the
same size whether made in memory or through a file, so its peaks compare like with like."""

from __future__ import annotations

import json

from bench import pdf_memory


def test_every_case_writes_the_whole_pdf(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pdf_memory, "save_result", lambda name, doc: _saved(tmp_path, doc))
    assert pdf_memory.main(["--pages", "1,2"]) == 0
    report = json.loads((tmp_path / "pdf_memory.json").read_text())
    cases = report["cases"]
    assert len(cases) == 8 and set(report["growth"]) == {"pdf held", "pdf file", "tiff held", "tiff file"}
    for kind in ("pdf", "tiff"):
        for pages in (1, 2):
            held, made = cases[f"{kind} held {pages}"], cases[f"{kind} file {pages}"]
            assert held["out_mb"] > 0.5 * pages and abs(made["out_mb"] - held["out_mb"]) < 0.01, (kind, pages)


def _saved(folder, doc):  # type: ignore[no-untyped-def]
    path = folder / "pdf_memory.json"
    path.write_text(json.dumps(doc))
    return path
