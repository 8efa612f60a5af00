"""`docmill run` end to end: every input gets exactly one valid result, bad input gets its
error code, S3 in and out work against a real S3 HTTP server, and bad flags fail in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from docmill.cli import main
from docmill.result import validate_result
from tests import fixtures_images as fx

pytestmark = [pytest.mark.models, pytest.mark.slow]

BAD_INPUTS = {
    "zero.jpg": (fx.zero_bytes, "decode_error"),
    "truncated.jpg": (fx.truncated_jpeg, "decode_error"),
    "random.jpg": (fx.random_bytes, "decode_error"),
    "pdf_named.jpg": (fx.pdf_named_jpg, "decode_error"),
    "huge_header.png": (fx.png_huge_header, "too_large"),
}
ODD_BUT_FINE = {
    "one_pixel.png": fx.png_1x1,
    "rgba.png": fx.rgba_png,
    "grey16.png": fx.grey16_png,
    "cmyk.jpg": fx.cmyk_jpeg,
    "exif6.jpg": lambda: fx.exif_jpeg(6),
    "palette.png": fx.palette_png,
}


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, sample_pages) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    images, _ = sample_pages
    (folder / "pages").mkdir()
    for name, image in images.items():
        cv2.imwrite(str(folder / "pages" / name), image)
    for name, (make, _) in BAD_INPUTS.items():
        (folder / name).write_bytes(make())
    for name, make in ODD_BUT_FINE.items():
        (folder / name).write_bytes(make())
    (folder / "notes.txt").write_text("not an image: not listed")
    return folder


def _results(out: Path) -> dict[str, dict]:
    return {p.relative_to(out).as_posix(): json.loads(p.read_text("utf-8")) for p in out.rglob("*.json")}


def test_every_input_gets_one_valid_result(mixed_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(mixed_folder), "--out", str(out), "--models", "pp-ocrv4-ch",
                 "--device", "cpu", "--batch-images", "3", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = _results(out)
    images = [p.relative_to(mixed_folder).as_posix() for p in mixed_folder.rglob("*")
              if p.is_file() and p.suffix != ".txt"]
    assert sorted(results) == sorted(f"{name}.json" for name in images)
    for doc in results.values():
        validate_result(doc)
        assert doc["providers"] == ["CPUExecutionProvider"]
    for name, (_, code) in BAD_INPUTS.items():
        assert results[f"{name}.json"]["error"]["code"] == code
        assert results[f"{name}.json"]["lines"] == []
    for name in ODD_BUT_FINE:
        assert results[f"{name}.json"]["error"] is None
    letter = results["pages/letter.png.json"]
    assert letter["lines"][0]["text"] == "Northwind Paper Company"
    assert letter["source"]["sha256"] and letter["image"]["width"] > 1000
    assert summary["failed"] == len(BAD_INPUTS) and summary["images"] == len(images)
    assert summary["providers"] == ["CPUExecutionProvider"]


def test_fail_on_error_exits_1_and_visualize_writes_png(mixed_folder, tmp_path):
    out = tmp_path / "out"
    code = main(["run", str(mixed_folder / "pages" / "letter.png"), str(mixed_folder / "zero.jpg"),
                 "--out", str(out), "--visualize", "--fail-on-error", "--quiet"])
    assert code == 1
    png = cv2.imread(str(out / "letter.png.png"))
    source = cv2.imread(str(mixed_folder / "pages" / "letter.png"))
    assert png.shape[1] == 2 * source.shape[1]  # page and text panel side by side
    assert not (out / "zero.jpg.png").exists()


def test_skip_existing_resumes_a_run_and_redoes_only_what_changed(mixed_folder, tmp_path, capsys):
    pages = tmp_path / "pages"
    pages.mkdir()
    for name in ("letter.png", "rotated.jpg"):
        (pages / name).write_bytes((mixed_folder / "pages" / name).read_bytes())
    out = tmp_path / "out"

    def run(*extra: str) -> dict:
        assert main(["run", str(pages), "--out", str(out), "--models", "pp-ocrv4-ch", "--device", "cpu",
                     "--quiet", "--skip-existing", *extra]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    first, again = run(), run()
    assert (first["images"], first["current"], first["replaced"]) == (2, 0, 0)
    assert (again["images"], again["current"], again["ok"]) == (0, 2, 0)
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    os.utime(pages / "letter.png", ns=(0, 10**9))  # the page scanned again, in place
    redone = run()
    assert (redone["images"], redone["current"], redone["replaced"]) == (1, 1, 1)
    assert [p.name for p, ns in written.items() if p.stat().st_mtime_ns != ns] == ["letter.png.json"]
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    with_text = run("--format", "txt")  # a format asked for the first time: made from the results kept
    assert (with_text["images"], with_text["current"], with_text["results_kept"], with_text["replaced"]) == (0, 0, 2, 0)
    assert sorted(p.name for p in out.glob("*.txt")) == ["letter.png.txt", "rotated.jpg.txt"]
    assert all(p.stat().st_mtime_ns == ns for p, ns in written.items())


def test_a_run_into_an_earlier_runs_out_says_how_many_results_it_replaced(mixed_folder, tmp_path, capsys):
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "letter.png").write_bytes((mixed_folder / "pages" / "letter.png").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    (out / "letter.png.json").write_text("{}")  # an earlier run's result, or anything of that name
    assert main(["run", str(pages), "--out", str(out), "--models", "pp-ocrv4-ch", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["replaced"] == 1
    assert ", 1 earlier result replaced" in captured.err.strip().splitlines()[-1]


def test_a_rerun_into_an_out_inside_its_input_reads_none_of_its_own_results(mixed_folder, tmp_path, capsys):
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "letter.png").write_bytes((mixed_folder / "pages" / "letter.png").read_bytes())

    def run() -> tuple[dict, str]:
        assert main(["run", str(pages), "--out", str(pages / "ocr"), "--models", "pp-ocrv4-ch", "--device", "cpu",
                     "--format", "pdf", "--visualize"]) == 0
        captured = capsys.readouterr()
        return json.loads(captured.out.strip().splitlines()[-1]), captured.err.strip().splitlines()[-1]

    first, _ = run()
    again, line = run()
    assert (first["images"], again["images"], again["documents"]) == (1, 1, 0)
    assert sorted(p.relative_to(pages).as_posix() for p in pages.rglob("*") if p.is_file()) == [
        "letter.png", "ocr/letter.png.json", "ocr/letter.png.pdf", "ocr/letter.png.png"]
    assert again["skipped"] == {".json": 1, ".pdf written by docmill in --out": 1,
                                ".png written by docmill in --out": 1}
    assert "1 .pdf written by docmill in --out, 1 .png written by docmill in --out" in line


@pytest.mark.services
def test_s3_in_and_out(sample_pages, s3_client, s3_bucket, s3_endpoint, monkeypatch, tmp_path, capsys):
    images, _ = sample_pages
    ok, png = cv2.imencode(".png", images["letter.png"])
    s3_client.put_object(Bucket=s3_bucket, Key="in/a/letter.png", Body=png.tobytes())
    s3_client.put_object(Bucket=s3_bucket, Key="in/bad.jpg", Body=fx.truncated_jpeg())
    for earlier in ("out/bad.jpg.json", "out/gone.jpg.json", "outer/a/letter.png.json"):
        s3_client.put_object(Bucket=s3_bucket, Key=earlier, Body=b"{}")
    monkeypatch.setenv("DOCMILL_S3_ENDPOINT_URL", s3_endpoint)
    assert main(["run", f"s3://{s3_bucket}/in/", "--out", f"s3://{s3_bucket}/out", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["replaced"] == 1  # bad.jpg's only
    good = s3_client.get_object(Bucket=s3_bucket, Key="out/a/letter.png.json")
    assert good["ContentType"] == "application/json"
    doc = json.loads(good["Body"].read())
    validate_result(doc)
    assert doc["source"]["uri"] == f"s3://{s3_bucket}/in/a/letter.png" and doc["source"]["etag"]
    assert doc["lines"][0]["text"] == "Northwind Paper Company"
    bad = json.loads(s3_client.get_object(Bucket=s3_bucket, Key="out/bad.jpg.json")["Body"].read())
    assert bad["error"]["code"] == "decode_error"


def test_engine_failure_on_one_image_spares_the_others(engine_for, sample_pages):
    engine, _ = engine_for("pp-ocrv4-ch")
    images, _ = sample_pages
    broken = np.zeros((40, 40, 2), dtype=np.uint8)  # two channels: the engine cannot take it
    outputs = engine.run_each([images["letter.png"], broken, images["rotated.jpg"]], engine.options)
    assert outputs[1].code == "engine_error"
    assert outputs[0].lines[0].text == "Northwind Paper Company" and outputs[2].lines


@pytest.mark.parametrize("argv,needle", [
    (["--device", "cuda"], "--device cuda: CUDA is not available"),
    (["--set", "det_thresh=2"], "det_thresh"),
    (["--set", "no_such_option=1"], "expected KEY=VALUE"),
    (["--set", "det_tresh=0.3"], "did you mean det_thresh?"),
    (["--models", "no-such-set"], "no-such-set"),
    (["--batch-images", "0"], "--batch-images"),
    (["--skip-existing", "--visualize"], "--skip-existing"),
])
def test_bad_flags_fail_in_one_line_with_exit_2(mixed_folder, tmp_path, capsys, argv, needle):
    from worker.engine.providers import cuda_works

    if argv[:2] == ["--device", "cuda"] and cuda_works():
        pytest.skip("this machine has CUDA")
    code = main(["run", str(mixed_folder / "pages"), "--out", str(tmp_path / "o"), "--quiet", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "o").exists()


def test_missing_input_is_a_usage_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_config_masks_secrets(monkeypatch, capsys):
    monkeypatch.setenv("DOCMILL_BROKER_URL", "redis://user:hunter2secret@example:6379/0")
    monkeypatch.setenv("DOCMILL_S3_ENDPOINT_URL", "http://key:s3secretpw@127.0.0.1:9000")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2secret" not in out and "s3secretpw" not in out
    assert json.loads(out)["broker_url"] == "redis://user:***@example:6379/0"


@pytest.mark.services
def test_models_from_s3_are_fetched_verified_and_tampering_refused(
        engine_for, s3_client, s3_bucket, s3_endpoint, monkeypatch, tmp_path, sample_pages, capsys):
    _, model_set = engine_for("pp-ocrv4-en")
    prefix = f"sets/{model_set.name}"
    for path in model_set.files():
        s3_client.put_object(Bucket=s3_bucket, Key=f"{prefix}/{model_set.version}/{path.name}",
                             Body=path.read_bytes())
    s3_client.put_object(Bucket=s3_bucket, Key=f"{prefix}/LATEST", Body=model_set.version.encode())
    monkeypatch.setenv("DOCMILL_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("DOCMILL_CACHE_DIR", str(tmp_path / "cache"))
    images, _ = sample_pages
    cv2.imwrite(str(tmp_path / "letter.png"), images["letter.png"])
    args = ["run", str(tmp_path / "letter.png"), "--out", str(tmp_path / "out"), "--quiet",
            "--models", f"s3://{s3_bucket}/{prefix}"]
    assert main(args) == 0
    fetched = tmp_path / "cache" / "models" / model_set.name / model_set.version
    assert (fetched / "manifest.json").read_bytes() == (model_set.root / "manifest.json").read_bytes()
    doc = json.loads((tmp_path / "out" / "letter.png.json").read_text())
    assert doc["models"] == {"set": model_set.name, "version": model_set.version}

    import shutil

    shutil.rmtree(tmp_path / "cache")
    s3_client.put_object(Bucket=s3_bucket, Key=f"{prefix}/{model_set.version}/cls.onnx", Body=b"tampered")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cls.onnx" in err and "tampered" in err
    assert not (fetched / "manifest.json").exists()


@pytest.mark.parametrize("suffix", [".jpg", ".jp2"])
def test_a_600_dpi_scan_read_at_half_size_is_boxed_in_its_own_pixels(tmp_path, suffix):
    """The result of a JPEG (or JPEG 2000, an archive's master) read reduced gives the file's
    size and boxes where the text is in the file, whatever size the engine read it at."""
    from pages.decode import REDUCE_ABOVE_LONG_SIDE

    page = np.full((1200, REDUCE_ABOVE_LONG_SIDE + 400, 3), 255, np.uint8)
    cv2.putText(page, "WIDE SCAN 2024", (3000, 700), cv2.FONT_HERSHEY_SIMPLEX, 6, (0, 0, 0), 14, cv2.LINE_AA)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / f"wide{suffix}").write_bytes(fx.encode(page[:, :, ::-1], "JPEG2000" if suffix == ".jp2" else "JPEG"))
    assert main(["run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == 0
    result = json.loads((tmp_path / "out" / f"wide{suffix}.json").read_text())
    validate_result(result)
    assert result["image"] == {"width": REDUCE_ABOVE_LONG_SIDE + 400, "height": 1200}
    line = next(line for line in result["lines"] if "WIDE" in line["text"])
    xs, ys = [x for x, _ in line["box"]], [y for _, y in line["box"]]
    (width, height), _ = cv2.getTextSize("WIDE SCAN 2024", cv2.FONT_HERSHEY_SIMPLEX, 6, 14)
    assert abs(min(xs) - 3000) < 40 and abs(max(xs) - (3000 + width)) < 40, line["box"]
    assert abs(min(ys) - (700 - height)) < 40 and abs(max(ys) - 700) < 40, line["box"]


def test_an_out_that_cannot_be_listed_leaves_the_replaced_count_unknown(monkeypatch, tmp_path, capsys):
    """Credentials may write results but not list them: the run goes on, and says so."""
    from docmill.messages import TaskItem
    from docmill.settings import Settings
    from docmill.storage import StorageError
    from worker import local

    class _WriteOnly:
        def iter_objects(self, root_uri: str, suffixes: tuple[str, ...]):
            raise StorageError("s3://out: AccessDenied (ListObjectsV2)")

    monkeypatch.setattr(local, "open_storage", lambda uri, settings: _WriteOnly())
    inputs = local.Inputs(items=[TaskItem(src="s3://in/a.png", dst="s3://out/a.png.json")])
    assert local._results_there(inputs, "s3://out", Settings()) is None
    assert "cannot list s3://out to count the results it replaces: s3://out: AccessDenied" in capsys.readouterr().err


def test_a_document_a_stopped_run_left_only_pages_of_counts_as_replaced_unless_they_are_kept(tmp_path):
    from docmill.documents import page_result_uri
    from docmill.messages import TaskItem
    from docmill.settings import Settings
    from worker import local

    out = tmp_path / "out"
    items = [TaskItem(src=str(tmp_path / name), dst=str(out / f"{name}.json")) for name in ("a.pdf", "b.pdf", "c.png")]
    for uri in (page_result_uri(items[0].dst, 3, 3), str(out / "c.png.json")):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).write_text("{}")
    inputs = local.Inputs(items=items)
    assert local._results_there(inputs, str(out), Settings()) == 2
    assert local._results_there(inputs, str(out), Settings(), pages_too=False) == 1


@pytest.mark.parametrize(("first", "then", "read_again"), [
    ("hocr", "hocr,alto", 0),  # its result has word boxes: only the ALTO is made
    ("txt", "txt,hocr", 1),  # it has none, and hOCR places words: the image is read again
])
def test_an_images_format_asked_for_later_is_made_from_its_kept_result(tmp_path, capsys, first, then, read_again):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    page = np.full((120, 640, 3), 255, np.uint8)
    cv2.putText(page, "KEPT RESULT", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 4)
    cv2.imwrite(str(folder / "page.png"), page)
    args = ["run", str(folder), "--out", str(out), "--device", "cpu", "--quiet", "--models", "pp-ocrv4-ch"]
    assert main([*args, "--format", first]) == 0
    written = (out / "page.png.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args, "--format", then, "--skip-existing"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["images"], summary["results_kept"]) == (read_again, 1 - read_again)
    assert ((out / "page.png.json").stat().st_mtime_ns == written) == (not read_again)
    added = (out / f"page.png.{then.split(',')[1].replace('alto', 'alto.xml')}").read_text()
    assert "KEPT" in added and "RESULT" in added
