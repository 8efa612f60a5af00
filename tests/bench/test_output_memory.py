"""bench.output_memory runs end to end on short documents: each case writes its whole files,
the same size whether made in memory or through a file, so its peaks compare like with like."""

from __future__ import annotations

import json

from bench import output_memory


def test_every_case_writes_its_whole_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(output_memory, "save_result", lambda name, doc: _saved(tmp_path, doc))
    assert output_memory.main(["--pages", "2"]) == 0
    report = json.loads((tmp_path / "output_memory.json").read_text())
    cases = report["cases"]
    kinds = ("pdf", "tiff", "text")
    assert len(cases) == 6 and set(report["growth"]) == {f"{kind} {how}" for kind in kinds for how in ("held", "file")}
    for kind in kinds:
        held, made = cases[f"{kind} held 2"], cases[f"{kind} file 2"]
        assert held["out_mb"] > 0.2 and abs(made["out_mb"] - held["out_mb"]) < 0.01, kind


def _saved(folder, doc):  # type: ignore[no-untyped-def]
    path = folder / "output_memory.json"
    path.write_text(json.dumps(doc))
    return path
