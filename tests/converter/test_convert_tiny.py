"""`docmill convert` end to end on tiny Paddle models built here with paddle itself: publish,
republish, dry run, every refusal, a conversion that does not load, `convert model` from an
inference folder and from a dygraph factory, and a set published to the S3 test server and
read back by the worker-side loader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from converter.paddle_model import PARAMS_FILE, PIR_FILE, import_paddle
from docmill.cli import main
from docmill.modelset import LATEST_FILE, MANIFEST_FILE, ModelSet, ModelSetError, fetch_remote_set
from docmill.settings import Settings

TINY_DICT = ["a", "b", "\u3000", "é", " "]  # 5 entries: the tiny rec outputs 7 classes
REPO = Path(__file__).resolve().parents[2]


def make_lenet():  # noqa: ANN201 - a paddle.nn.Layer; `--dygraph` factories take no arguments
    """The seed's LeNet example, shrunk: the factory `convert model --dygraph` is tested with."""
    import paddle
    from paddle import nn

    paddle.seed(7)
    return nn.Sequential(nn.Conv2D(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
                         nn.Flatten(), nn.Linear(4 * 14 * 14, 10), nn.Softmax())


def _tiny_layers() -> dict:
    """det: conv, batch norm, nearest upsampling (an interp op), sigmoid map; cls: two-way
    softmax; rec: [N, T, 7] CTC-style softmax."""
    import paddle
    from paddle import nn

    class Det(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.Conv2D(3, 4, 3, stride=2, padding=1)
            self.norm = nn.BatchNorm2D(4)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.head = nn.Conv2D(4, 1, 1)

        def forward(self, x):  # noqa: ANN001, ANN201
            return nn.functional.sigmoid(self.head(self.up(nn.functional.relu(self.norm(self.down(x))))))

    class Cls(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.pool, self.fc = nn.Conv2D(3, 4, 3, padding=1), nn.AdaptiveAvgPool2D(1), nn.Linear(4, 2)

        def forward(self, x):  # noqa: ANN001, ANN201
            return nn.functional.softmax(self.fc(paddle.flatten(self.pool(self.conv(x)), 1)), -1)

    class Rec(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2D(3, 8, 3, padding=1), nn.Linear(8, len(TINY_DICT) + 2)

        def forward(self, x):  # noqa: ANN001, ANN201
            return nn.functional.softmax(self.fc(self.conv(x).mean(axis=2).transpose([0, 2, 1])), -1)

    paddle.seed(0)
    return {"det": (Det(), [None, 3, None, None]), "cls": (Cls(), [None, 3, 48, None]),
            "rec": (Rec(), [None, 3, 48, None])}


@pytest.fixture(scope="module")
def tiny_paddle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """det/cls/rec inference folders (PIR format, as paddle 3 saves) and a dictionary file."""
    paddle = import_paddle()

    root = tmp_path_factory.mktemp("tiny-paddle")
    folders = {}
    for stage, (layer, shape) in _tiny_layers().items():
        layer.eval()
        paddle.jit.save(layer, str(root / stage / "inference"),
                        input_spec=[paddle.static.InputSpec(shape, "float32", "x")])
        folders[stage] = root / stage
    folders["dict"] = root / "dict.txt"
    folders["dict"].write_bytes("".join(f"{e}\r\n" for e in TINY_DICT).encode())
    return folders


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCMILL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _convert(models: dict[str, Path], *extra: str, name: str = "tiny") -> list[str]:
    return ["convert", "--det", str(models["det"]), "--cls", str(models["cls"]), "--rec", str(models["rec"]),
            "--dict", str(models["dict"]), "--name", name, *extra]


def _error_line(capsys: pytest.CaptureFixture) -> str:
    """The one line a failed run ends with; no traceback may precede it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def _copy(models: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    copied = {}
    for key, path in models.items():
        target = tmp_path / "copy" / path.name
        (shutil.copytree if path.is_dir() else shutil.copyfile)(path, target)
        copied[key] = target
    return copied


@pytest.mark.slow
def test_a_tiny_set_converts_publishes_and_republishing_changes_nothing(tiny_paddle, cache, tmp_path, capsys) -> None:
    dest = tmp_path / "published"
    assert main(_convert(tiny_paddle, "--publish", str(dest))) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(next((cache / "converted" / "tiny").glob("*/")))
    for step in ("fetching", "sha256", "pir format", "paddle2onnx", "onnxslim", "full check", "parity"):
        assert step in err
    assert "MODEL" in err and "SLIMMED" in err  # the final table
    version = (dest / "tiny" / LATEST_FILE).read_text()
    folder = dest / "tiny" / version
    manifest = json.loads((folder / MANIFEST_FILE).read_text("utf-8"))
    assert {"paddlepaddle", "paddle2onnx", "onnxslim", "onnx", "onnxruntime"} <= set(manifest["tools"])
    for stage in ("det", "cls", "rec"):
        parity = manifest["models"][stage]["parity"]
        random_shapes = {tuple(c["shape"]) for c in parity["cases"] if c["input"] == "random"}
        assert len(random_shapes) >= 3
        assert all(c["max_abs_diff"] <= c["tolerance"] for c in parity["cases"])
        assert any(c["input"] != "random" for c in parity["cases"])  # a real page or its crops
        assert manifest["models"][stage]["source"]["sha256"]
    rec = onnx.load(str(folder / "rec.onnx"))
    assert {p.key: p.value for p in rec.metadata_props}["character"] == "\n".join(TINY_DICT)
    assert (folder / "dict.txt").read_bytes() == "".join(f"{e}\n" for e in TINY_DICT).encode()
    assert ModelSet.load(folder).characters == TINY_DICT

    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert main(_convert(tiny_paddle, "--publish", str(dest))) == 0
    assert (dest / "tiny" / LATEST_FILE).read_text() == version
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


@pytest.mark.slow
def test_dry_run_checks_everything_and_publishes_nothing(tiny_paddle, cache, tmp_path, capsys) -> None:
    dest = tmp_path / "published"
    assert main(_convert(tiny_paddle, "--publish", str(dest), "--dry-run")) == 0
    assert capsys.readouterr().out.startswith("tiny/")
    assert not dest.exists() and not (cache / "converted").exists()


def _nrtr_rec(models: dict[str, Path], decoder: str) -> None:
    (models["rec"] / "inference.yml").write_text(
        f"Global:\n  model_name: my_rec\nPostProcess:\n  name: {decoder}\n", "utf-8")


def _no_params(models: dict[str, Path], _: str) -> None:
    (models["det"] / PARAMS_FILE).unlink()


def _truncated_params(models: dict[str, Path], _: str) -> None:
    params = models["cls"] / PARAMS_FILE
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])


def _garbage_graph(models: dict[str, Path], _: str) -> None:
    (models["det"] / PIR_FILE).write_text("{not json", "utf-8")


def _short_dictionary(models: dict[str, Path], _: str) -> None:
    models["dict"].write_text("a\nb\nc\nd\n", "utf-8")


def _missing_folder(models: dict[str, Path], _: str) -> None:
    shutil.rmtree(models["cls"])


@pytest.mark.parametrize("damage, detail, expected", [
    (_nrtr_rec, "NRTRLabelDecode", "a NRTR recogniser"),
    (_nrtr_rec, "SARLabelDecode", "a SAR recogniser"),
    (_nrtr_rec, "AttnLabelDecode", "a RARE recogniser"),
    (_nrtr_rec, "SRNLabelDecode", "a SRN recogniser"),
    (_no_params, "", "inference.pdiparams is missing or empty"),
    (_truncated_params, "", "paddle cannot load this model"),
    (_garbage_graph, "", "paddle cannot load this model"),
    (_short_dictionary, "", "the dictionary has 4 entries but the rec model"),
    (_missing_folder, "", "no such file"),
])
def test_bad_inputs_are_refused_in_one_line_before_any_conversion(
        tiny_paddle, cache, tmp_path, capsys, damage, detail, expected) -> None:
    models = _copy(tiny_paddle, tmp_path)
    damage(models, detail)
    dest = tmp_path / "published"
    assert main(_convert(models, "--publish", str(dest))) != 0
    line = _error_line(capsys)
    assert line.startswith("docmill: ") and expected in line
    assert "paddle2onnx (opset" not in capsys.readouterr().err
    assert not dest.exists() and not (cache / "converted").exists()


@pytest.mark.slow
def test_a_conversion_whose_output_does_not_load_is_refused(tiny_paddle, cache, tmp_path, capsys) -> None:
    """A rank-2 input fixed onto a conv net: paddle2onnx writes it, the gates refuse it."""
    dest = tmp_path / "published"
    assert main(_convert(tiny_paddle, "--publish", str(dest), "--no-slim", "--input-shape", "det:x=[1,3,64]")) == 1
    line = _error_line(capsys)
    assert line.startswith("docmill: det.onnx: fails onnx.checker full check")
    assert not dest.exists() and not (cache / "converted").exists()


def test_without_the_paddle_stack_it_says_how_to_install_it(tiny_paddle, tmp_path) -> None:
    """A `paddle` package that fails to import stands in for an install without the extra."""
    fake = tmp_path / "fake" / "paddle"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named paddle')\n", "utf-8")
    env = {**os.environ, "PYTHONPATH": str(fake.parent), "DOCMILL_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "converter", *_convert(tiny_paddle)[1:],
                           "--publish", str(tmp_path / "published")],
                          capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "docmill: the converter needs paddle, which is not installed (No module named paddle); "
        "run: pip install 'docmill[convert]'"]
    assert not (tmp_path / "published").exists()


@pytest.mark.slow
def test_convert_model_converts_one_inference_folder_and_prints_a_summary(tiny_paddle, tmp_path, capsys) -> None:
    out = tmp_path / "det.onnx"
    assert main(["convert", "model", "--paddle", str(tiny_paddle["det"]), "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert f"wrote {out}: opset 11" in summary
    assert "input x FLOAT" in summary and "output" in summary
    assert summary.count("parity random") >= 3
    onnx.checker.check_model(str(out), full_check=True)


@pytest.mark.slow
def test_convert_model_exports_a_dygraph_model_with_paddles_own_export(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(REPO)  # the factory module is found from the working directory
    out = tmp_path / "lenet.onnx"
    assert main(["convert", "model", "--dygraph", "tests.converter.test_convert_tiny:make_lenet",
                 "--input-spec", "[None,1,28,28]", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "input x FLOAT" in summary
    shapes = [line.split("[", 1)[1].split("]")[0] for line in summary.splitlines() if "parity random" in line]
    assert shapes == ["1, 1, 28, 28", "2, 1, 28, 28", "3, 1, 28, 28"]
    assert onnx.load(str(out)).graph.output[0].type.tensor_type.shape.dim[-1].dim_value == 10


def _upload_folder(s3_client, bucket: str, folder: Path, prefix: str) -> None:  # noqa: ANN001
    for path in folder.iterdir():
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=path.read_bytes())


@pytest.mark.slow
@pytest.mark.services
def test_a_set_published_to_s3_reads_back_verified_and_a_tampered_object_is_refused(
        tiny_paddle, cache, tmp_path, monkeypatch, s3_endpoint, s3_client, s3_bucket, capsys) -> None:
    monkeypatch.setenv("DOCMILL_S3_ENDPOINT_URL", s3_endpoint)
    _upload_folder(s3_client, s3_bucket, tiny_paddle["det"], "paddle/det")  # an s3:// source too
    models = {**tiny_paddle, "det": f"s3://{s3_bucket}/paddle/det/"}
    assert main(_convert(models, "--publish", f"s3://{s3_bucket}/sets")) == 0
    assert f"s3://{s3_bucket}/paddle/det/" in capsys.readouterr().err
    version = s3_client.get_object(Bucket=s3_bucket, Key="sets/tiny/LATEST")["Body"].read().decode()

    reader = Settings(cache_dir=tmp_path / "worker-cache", s3_endpoint_url=s3_endpoint)
    folder = fetch_remote_set(f"s3://{s3_bucket}/sets/tiny", reader)
    loaded = ModelSet.load(folder)
    assert loaded.version == version and loaded.characters == TINY_DICT

    s3_client.put_object(Bucket=s3_bucket, Key=f"sets/tiny/{version}/rec.onnx", Body=b"tampered")
    fresh = Settings(cache_dir=tmp_path / "fresh-cache", s3_endpoint_url=s3_endpoint)
    with pytest.raises(ModelSetError, match="rec.onnx"):
        fetch_remote_set(f"s3://{s3_bucket}/sets/tiny", fresh)
    assert not (tmp_path / "fresh-cache" / "models" / "tiny" / version / MANIFEST_FILE).exists()
