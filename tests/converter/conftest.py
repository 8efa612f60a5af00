"""Fixtures for the converter tests: tiny but real ONNX models shaped like PP-OCR's det/cls/rec
(onnxruntime runs them), archives built on the spot, and a local HTTP server that can be told
to fail its first requests."""

from __future__ import annotations

import io
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
OPSET = 13
IR_VERSION = 8  # old enough for any onnxruntime the project supports


def _save(path: Path, nodes: list, output_shape: list, weights: list[np.ndarray],
          metadata: dict[str, str]) -> Path:
    graph = helper.make_graph(
        nodes, path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        initializer=[numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    helper.set_model_props(model, metadata)
    onnx.save(model, str(path))
    return path


def make_det(path: Path) -> Path:
    """[N,3,H,W] -> probability map [N,1,H,W]."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Sigmoid", ["m"], ["y"])]
    return _save(path, nodes, ["N", 1, "H", "W"], [], {})


def make_cls(path: Path) -> Path:
    """[N,3,H,W] -> two-way softmax [N,2]."""
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "w0"], ["l"]),
             helper.make_node("Softmax", ["l"], ["y"], axis=-1)]
    weight = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
    return _save(path, nodes, ["N", 2], [weight], {})


def make_rec(path: Path, classes: int, symbolic: bool = False,
             character: list[str] | None = None) -> Path:
    """[N,3,48,W] -> CTC-style [N,T,classes]; the class dimension is written as a name instead
    of a number when `symbolic`, as some exports do."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2], keepdims=0),
             helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["t", "w0"], ["l"]),
             helper.make_node("Softmax", ["l"], ["y"], axis=-1)]
    weight = np.linspace(-1, 1, 3 * classes, dtype=np.float32).reshape(3, classes)
    metadata = {"character": "\n".join(character)} if character is not None else {}
    return _save(path, nodes, ["N", "T", "C" if symbolic else classes], [weight], metadata)


# Entry 2 is U+3000 and the last a plain space: both must survive as entries.
TINY_DICT = ["a", "b", "\u3000", "é", " "]


@pytest.fixture
def tiny_models(tmp_path: Path) -> dict[str, Path]:
    """det/cls/rec for a five-entry dictionary; rec embeds that dictionary as `character`."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    return {"det": make_det(folder / "det.onnx"), "cls": make_cls(folder / "cls.onnx"),
            "rec": make_rec(folder / "rec.onnx", 7, character=TINY_DICT)}


def build_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def build_tgz(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that timed out leaves a broken pipe behind: expected here, not news."""


class ScriptedServer:
    """Serves the files of `root` on 127.0.0.1. Each entry of `failures` is spent by one
    request: "503" answers 503, "slow" stalls longer than a short client timeout before
    answering, "truncate" promises more bytes than it sends."""

    def __init__(self, root: Path):
        self.root = root
        self.failures: list[str] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def _next_failure(self) -> str | None:
        with self._lock:
            self.requests += 1
            return self.failures.pop(0) if self.failures else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                failure = server._next_failure()
                if failure == "503":
                    self.send_error(503)
                    return
                if failure == "slow":
                    time.sleep(1.5)
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                extra = 100 if failure == "truncate" else 0
                self.send_header("Content-Length", str(len(data) + extra))
                self.end_headers()
                self.wfile.write(data)
                if failure == "truncate":
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        return Handler

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def http_server(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    with ScriptedServer(root) as server:
        yield server
