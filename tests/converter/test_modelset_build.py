"""Building model sets from real (tiny) ONNX models, and the `docmill models` commands."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import BinaryIO

import onnx
import onnxruntime
import pytest

import docmill
from converter.modelset_build import build_model_set, load_dictionary
from converter.onnx_info import read_onnx_info
from docmill.cli import main
from docmill import hashstamp
from docmill.hashstamp import sha256_file
from docmill.modelset import LATEST_FILE, ModelSet, ModelSetError, SourceProvenance, parse_dictionary

from .conftest import TINY_DICT, make_rec


def _provenance(models: dict[str, Path]) -> dict[str, SourceProvenance]:
    return {stage: SourceProvenance(uri=path.as_uri(), sha256=sha256_file(path))
            for stage, path in models.items()}


def _build(models: dict[str, Path], out_root: Path, dictionary: list[str] = TINY_DICT,
           defaults: dict | None = None, name: str = "tiny") -> Path:
    return build_model_set(name, models["det"], models["cls"], models["rec"], dictionary,
                           _provenance(models), defaults or {}, out_root)


def test_onnx_info_reads_opset_tensors_and_the_embedded_dictionary(tiny_models) -> None:
    info = read_onnx_info(tiny_models["rec"])
    assert info.opset == 13
    assert [(t.name, t.shape, t.type) for t in info.inputs] == [("x", ["N", 3, "H", "W"], "FLOAT")]
    assert [(t.name, t.shape) for t in info.outputs] == [("y", ["N", "T", 7])]
    assert info.character == TINY_DICT
    assert read_onnx_info(tiny_models["det"]).character is None


def test_a_built_set_has_every_file_a_full_manifest_and_loads_verified(tiny_models, tmp_path) -> None:
    folder = _build(tiny_models, tmp_path / "sets")
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    assert folder.parent.name == "tiny" and folder.name == manifest["version"]
    assert (folder.parent / LATEST_FILE).read_text() == manifest["version"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "cls.onnx", "det.onnx", "dict.txt", "manifest.json", "rec.onnx"]
    for stage in ("det", "cls", "rec"):
        entry = manifest["models"][stage]
        assert (folder / entry["file"]).read_bytes() == tiny_models[stage].read_bytes()
        assert entry["sha256"] == sha256_file(tiny_models[stage]) == entry["source"]["sha256"]
        assert entry["bytes"] == tiny_models[stage].stat().st_size and entry["opset"] == 13
    assert manifest["models"]["rec"]["outputs"] == [{"name": "y", "shape": ["N", "T", 7], "type": "FLOAT"}]
    assert manifest["models"]["det"]["preprocess"] == {
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 1 / 255,
        "color": "BGR", "multiple": 32}
    assert manifest["models"]["cls"]["preprocess"] == {"image_shape": [3, 48, 192],
                                                       "normalize": "(x/255-0.5)/0.5"}
    assert manifest["models"]["rec"]["preprocess"]["image_shape"] == [3, 48, 320]
    assert manifest["dict"]["entries"] == 5
    assert manifest["tools"] == {"docmill": docmill.__version__, "onnx": onnx.__version__,
                                 "onnxruntime": onnxruntime.__version__}
    loaded = ModelSet.load(folder)
    assert loaded.characters == TINY_DICT


def test_dict_txt_is_one_entry_per_lf_line(tiny_models, tmp_path) -> None:
    folder = _build(tiny_models, tmp_path / "sets")
    raw = (folder / "dict.txt").read_bytes()
    assert b"\r" not in raw
    assert raw.decode("utf-8") == "a\nb\n\u3000\né\n \n"


def test_a_dictionary_of_the_wrong_size_is_refused_naming_both_numbers(tiny_models, tmp_path) -> None:
    with pytest.raises(ModelSetError, match="has 4 entries but the rec model outputs 7 classes"):
        _build(tiny_models, tmp_path / "sets", dictionary=TINY_DICT[:-1])
    assert not (tmp_path / "sets" / "tiny").exists()


def test_a_symbolic_class_dimension_is_learned_by_running_the_model(tiny_models, tmp_path) -> None:
    symbolic = dict(tiny_models, rec=make_rec(tmp_path / "sym.onnx", 7, symbolic=True))
    assert read_onnx_info(symbolic["rec"]).outputs[0].shape[-1] == "C"
    assert ModelSet.load(_build(symbolic, tmp_path / "ok")).characters == TINY_DICT
    with pytest.raises(ModelSetError, match="has 6 entries but the rec model outputs 7 classes"):
        _build(symbolic, tmp_path / "bad", dictionary=[*TINY_DICT, "z"])


def test_dictionary_entries_with_line_breaks_are_refused(tiny_models, tmp_path) -> None:
    with pytest.raises(ModelSetError, match=r"entries \[1\] contain line breaks"):
        _build(tiny_models, tmp_path / "sets", dictionary=["a", "b\r", "c", "d", "e"])


def test_same_inputs_give_the_same_version_and_rebuilding_changes_nothing(tiny_models, tmp_path) -> None:
    first = _build(tiny_models, tmp_path / "a")
    elsewhere = _build(tiny_models, tmp_path / "b")
    assert first.name == elsewhere.name
    stamps = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    assert _build(tiny_models, tmp_path / "a") == first
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamps
    other_defaults = _build(tiny_models, tmp_path / "a", defaults={"drop_score": 0.4})
    assert other_defaults.name != first.name
    assert (first.parent / LATEST_FILE).read_text() == other_defaults.name
    assert ModelSet.load(other_defaults).manifest.engine_defaults().drop_score == 0.4


@pytest.mark.parametrize("stamped", [False, True], ids=["hashed", "stamped-before"])
def test_a_tampered_set_is_refused_on_load_and_repaired_by_a_rebuild(tiny_models, tmp_path, monkeypatch,
                                                                      stamped) -> None:
    """Stamped: a load kept the files' hashes first (docmill.hashstamp); the change is still caught."""
    folder = _build(tiny_models, tmp_path / "sets")
    if stamped:
        monkeypatch.setattr(hashstamp, "RACY_S", 0.0)  # the files are seconds old: stamp them anyway
        ModelSet.load(folder)
        assert (folder / hashstamp.STAMP_FILE).is_file()
    rec = folder / "rec.onnx"
    data = bytearray(rec.read_bytes())
    data[-1] ^= 0xFF
    rec.write_bytes(bytes(data))
    with pytest.raises(ModelSetError, match="tampered"):
        ModelSet.load(folder)
    assert _build(tiny_models, tmp_path / "sets") == folder
    assert ModelSet.load(folder).path("rec").read_bytes() == tiny_models["rec"].read_bytes()


def test_a_file_onnxruntime_cannot_open_is_refused_naming_its_stage(tiny_models, tmp_path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelSetError, match=f"cls model {broken}: cannot be loaded"):
        _build(dict(tiny_models, cls=broken), tmp_path / "sets")


def test_bad_names_and_defaults_are_refused(tiny_models, tmp_path) -> None:
    for name in ("a/b", "x@1", "", ".hidden"):
        with pytest.raises(ModelSetError, match="set name"):
            _build(tiny_models, tmp_path / "sets", name=name)
    with pytest.raises(ModelSetError, match="not valid engine options"):
        _build(tiny_models, tmp_path / "sets", defaults={"no_such_option": 1})


def test_dictionaries_load_from_text_with_crlf_and_bom_or_from_rec_metadata(tiny_models, tmp_path) -> None:
    text = tmp_path / "dict.txt"
    text.write_bytes("\ufeffa\r\nb\r\n\u3000\r\né\r\n \r\n".encode("utf-8"))
    assert load_dictionary(text) == TINY_DICT
    assert load_dictionary(tiny_models["rec"]) == TINY_DICT
    with pytest.raises(ModelSetError, match="no `character` metadata"):
        load_dictionary(tiny_models["det"])


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("DOCMILL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _import_args(models: dict[str, Path], *extra: str) -> list[str]:
    return ["models", "import", "--det", str(models["det"]), "--cls", str(models["cls"]),
            "--rec", str(models["rec"]), *extra]


def test_cli_imports_a_custom_set_and_lists_it(tiny_models, cache, capsys) -> None:
    assert main(_import_args(tiny_models, "--name", "tiny")) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder.parent == cache / "models" / "tiny" and ModelSet.load(folder).characters == TINY_DICT
    assert main(_import_args(tiny_models, "--name", "tiny")) == 0
    assert Path(capsys.readouterr().out.strip()) == folder
    assert main(["models", "list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["SET", "VERSION", "LATEST", "DET", "CLS", "REC", "DICT", "TOOLS"]
    assert row.split()[:3] == ["tiny", folder.name, "*"] and row.split()[6] == "5"
    assert f"onnxruntime={onnxruntime.__version__}" in row


def test_cli_takes_a_crlf_dictionary_file(tiny_models, cache, tmp_path, capsys) -> None:
    plain_rec = make_rec(tmp_path / "plain_rec.onnx", 7)
    dict_file = tmp_path / "keys.txt"
    dict_file.write_bytes("\r\n".join(TINY_DICT).encode("utf-8") + b"\r\n")
    args = _import_args(dict(tiny_models, rec=plain_rec), "--name", "tiny")
    assert main(args) == 1
    assert "no `character` metadata" in capsys.readouterr().err
    assert main([*args, "--dict", str(dict_file)]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert ModelSet.load(folder).characters == TINY_DICT
    assert ModelSet.load(folder).manifest.dictionary.source.uri == dict_file.resolve().as_uri()


def test_cli_list_marks_only_the_latest_version(tiny_models, cache, capsys) -> None:
    assert main(["models", "list"]) == 0
    assert "no model sets" in capsys.readouterr().err
    dictionary = cache.parent / "d.txt"
    dictionary.write_text("\n".join(TINY_DICT) + "\n", "utf-8")
    assert main(_import_args(tiny_models, "--name", "tiny")) == 0
    assert main(_import_args(tiny_models, "--name", "tiny", "--dict", str(dictionary))) == 0
    capsys.readouterr()
    build_model_set("tiny", tiny_models["det"], tiny_models["cls"], tiny_models["rec"], TINY_DICT,
                    _provenance(tiny_models), {"drop_score": 0.3}, cache / "models")
    main(["models", "list"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(rows) == 2
    latest = (cache / "models" / "tiny" / LATEST_FILE).read_text()
    assert [row[1] for row in rows if row[2] == "*"] == [latest]


@pytest.mark.parametrize("argv, message", [
    (["--preset", "pp-ocrv4-ch", "--det", "x.onnx"], "--preset cannot be combined with --det"),
    (["--preset", "nope"], "presets: pp-ocrv4-ch, pp-ocrv4-en, pp-ocrv5"),
    (["--det", "d.onnx", "--rec", "r.onnx"], "missing --cls, --name"),
    (["--det", "d", "--cls", "c", "--rec", "r", "--name", "a/b"], "set name 'a/b'"),
    (["--det", "d", "--cls", "c", "--rec", "r", "--name", "pp-ocrv5"], "is a preset's name"),
])
def test_cli_usage_errors_exit_2_with_one_line(argv, message, cache, capsys) -> None:
    assert main(["models", "import", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_fetch_failures_exit_1_with_one_line(tiny_models, cache, tmp_path, capsys) -> None:
    args = _import_args(dict(tiny_models, det=tmp_path / "missing.onnx"), "--name", "tiny")
    assert main(args) == 1
    assert capsys.readouterr().err.splitlines()[-1] == f"docmill: {tmp_path / 'missing.onnx'}: no such file"


def test_cli_refuses_a_publish_destination_it_cannot_write_before_building(tiny_models, cache, tmp_path,
                                                                        capsys) -> None:
    (tmp_path / "taken").write_text("a file where the sets' folder should be")
    dest = tmp_path / "taken" / "sets"
    assert main(_import_args(tiny_models, "--name", "tiny", "--publish", str(dest))) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"docmill: --publish {dest}: cannot write the model set there (") and err.count("\n") == 1
    assert not (cache / "models").exists()  # nothing fetched or built


def test_cli_publishes_to_a_local_folder(tiny_models, cache, tmp_path, capsys) -> None:
    dest = tmp_path / "published"
    assert main(_import_args(tiny_models, "--name", "tiny", "--publish", str(dest))) == 0
    folder = Path(capsys.readouterr().out.strip())
    published = dest / "tiny" / folder.name
    assert ModelSet.load(published).manifest == ModelSet.load(folder).manifest
    assert (dest / "tiny" / LATEST_FILE).read_text() == folder.name
    assert main(_import_args(tiny_models, "--name", "tiny", "--publish", "gs://bucket/models")) == 2


class RecordingStorage:
    """The real S3 storage on the test server, keeping every write in order as it passes."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self.real = real
        self.writes: list[tuple[str, bytes, str, dict]] = []

    def read_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        return self.real.read_bytes(uri, max_bytes)

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/json",
                    metadata: dict | None = None) -> None:
        self.writes.append((uri, data, content_type, metadata or {}))
        self.real.write_bytes(uri, data, content_type, metadata)

    def write_from(self, uri: str, source: BinaryIO, content_type: str, metadata: dict | None = None) -> None:
        data = source.read()
        self.writes.append((uri, data, content_type, metadata or {}))
        self.real.write_from(uri, io.BytesIO(data), content_type, metadata)


@pytest.mark.services
def test_cli_publishes_to_s3_objects_first_manifest_next_latest_last(tiny_models, cache, monkeypatch,
                                                                     capsys, s3_endpoint, s3_bucket) -> None:
    from docmill.storage import S3Storage

    monkeypatch.setenv("DOCMILL_S3_ENDPOINT_URL", s3_endpoint)  # for the check that --publish takes writes
    storage = RecordingStorage(S3Storage(s3_endpoint))
    monkeypatch.setattr("converter.models_cli.open_storage", lambda uri, settings: storage)
    assert main(_import_args(tiny_models, "--name", "tiny", "--publish", f"s3://{s3_bucket}/sets")) == 0
    folder = Path(capsys.readouterr().out.strip())
    prefix = f"s3://{s3_bucket}/sets/tiny/{folder.name}"
    uris = [w[0] for w in storage.writes]
    assert sorted(uris[:4]) == [f"{prefix}/{f}" for f in ("cls.onnx", "det.onnx", "dict.txt", "rec.onnx")]
    assert uris[4:] == [f"{prefix}/manifest.json", f"s3://{s3_bucket}/sets/tiny/LATEST"]
    for uri, data, _, metadata in storage.writes[:4]:
        assert data == (folder / uri.rsplit("/", 1)[1]).read_bytes()
        assert metadata == {"sha256": sha256_file(folder / uri.rsplit("/", 1)[1])}
    assert storage.writes[4][1] == (folder / "manifest.json").read_bytes()
    assert storage.writes[5][1] == folder.name.encode()
    dict_write = next(w for w in storage.writes if w[0].endswith("/dict.txt"))
    assert parse_dictionary(dict_write[1].decode()) == TINY_DICT and dict_write[2].startswith("text/plain")


@pytest.mark.services
def test_publish_to_s3_twice_uploads_once(tiny_models, cache, capsys, s3_client, s3_bucket, s3_endpoint,
                                          monkeypatch) -> None:
    monkeypatch.setenv("DOCMILL_S3_ENDPOINT_URL", s3_endpoint)
    dest = f"s3://{s3_bucket}/sets"
    assert main(_import_args(tiny_models, "--name", "tiny", "--publish", dest)) == 0
    first = capsys.readouterr().err
    assert "uploading det.onnx" in first
    assert main(_import_args(tiny_models, "--name", "tiny", "--publish", dest)) == 0
    second = capsys.readouterr().err
    assert "already published" in second and "uploading" not in second
    version = s3_client.get_object(Bucket=s3_bucket, Key="sets/tiny/LATEST")["Body"].read().decode()
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert {f"sets/tiny/{version}/{f}" for f in ("det.onnx", "cls.onnx", "rec.onnx", "dict.txt", "manifest.json")} <= keys
