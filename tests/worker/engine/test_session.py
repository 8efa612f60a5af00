"""ModelSession's narrow twin: runs go to it only while engine calls crowd each other, and only
once it is built; the engine's pages read the same whichever session ran them."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from docmill.settings import Settings
from worker.engine.pixels import pixel_batch
from worker.engine.providers import narrow_threads
from worker.engine.session import EngineCalls, ModelSession, batch_bucket


def _adds_bytes(value: float, x_shape: list[int | None]) -> bytes:
    """A one-node model, y = x + value."""
    const = helper.make_tensor("c", TensorProto.FLOAT, [1], [value])
    graph = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "adds",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [const])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _adds(value: float) -> ort.InferenceSession:
    """A real session whose output says which one ran: x + value."""
    return ort.InferenceSession(_adds_bytes(value, [None]), providers=["CPUExecutionProvider"])


def _built(session: ort.InferenceSession) -> Future:
    future: Future = Future()
    future.set_result(session)
    return future


def _which(session: ModelSession) -> float:
    return float(session.run(np.zeros(1, np.float32))[0])


def test_runs_take_the_twin_only_while_calls_crowd():
    calls = EngineCalls()
    session = ModelSession(_adds(0.0), narrow=_built(_adds(1.0)), calls=calls)
    assert _which(session) == 0.0
    with calls.call():
        assert _which(session) == 0.0  # one call alone keeps every thread
        with calls.call():
            assert _which(session) == 1.0
        assert _which(session) == 0.0
    assert not calls.crowded


def test_a_twin_still_being_built_leaves_runs_on_the_wide_session():
    calls, building = EngineCalls(), Future()
    session = ModelSession(_adds(0.0), narrow=building, calls=calls)
    with calls.call(), calls.call():
        assert _which(session) == 0.0
        building.set_result(_adds(1.0))
        assert _which(session) == 1.0


def test_crowding_is_counted_across_threads():
    calls, inside, release = EngineCalls(), threading.Barrier(2), threading.Event()

    def other_call() -> None:
        with calls.call():
            inside.wait()
            release.wait(5)

    thread = threading.Thread(target=other_call)
    thread.start()
    with calls.call():
        inside.wait()
        assert calls.crowded
        release.set()
    thread.join()
    assert not calls.crowded


class _Overlaps:
    """An ORT session stand-in that records how many runs were inside it at once (the real
    session under test is ModelSession's lock, not ORT)."""

    def __init__(self) -> None:
        self.inside, self.most = 0, 0
        self._count = threading.Lock()

    def get_inputs(self):  # type: ignore[no-untyped-def]
        return _adds(0.0).get_inputs()

    get_outputs = get_inputs

    def run(self, names, feed, options):  # type: ignore[no-untyped-def]
        with self._count:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.05)
        with self._count:
            self.inside -= 1
        return [feed["x"]]


@pytest.mark.parametrize("exclusive", [True, False])
def test_an_exclusive_session_runs_one_batch_at_a_time(exclusive: bool):
    inner = _Overlaps()
    session = ModelSession(inner, exclusive=exclusive)
    threads = [threading.Thread(target=session.run, args=(np.zeros(1, np.float32),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (inner.most == 1) == exclusive
    assert 4 * 0.05 * 0.9 <= session.busy_s < 4 * 0.05 * 2  # each run's own time: waits for the lock add 0.3 s


@pytest.mark.parametrize(("intra", "streams", "expected"),
                         [(8, 2, 4), (2, 2, 1), (3, 2, 1), (8, 1, None), (1, 2, None)])
def test_narrow_threads_are_each_streams_share_of_the_cores(intra: int, streams: int, expected: int | None):
    assert narrow_threads(Settings(intra_op_threads=intra), streams) == expected


@pytest.mark.models
@pytest.mark.slow
def test_pages_read_the_same_on_narrow_sessions(engine_for, sample_pages):
    """Two engine calls at once (so every run takes a narrow twin) read each page as one call
    alone does on the wide sessions."""
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet
    from worker.engine.pipeline import OcrEngine

    settings = Settings(device="cpu", intra_op_threads=2, engine_streams=2)
    engine = OcrEngine.load(ModelSet.load(ensure_model_set("pp-ocrv4-ch", settings)), settings)
    images, _ = sample_pages
    pages = list(images.values())[:4]
    alone = [[line.text for line in page.lines] for page in engine.run(pages)]
    engine.rec_session._narrow.result(timeout=60)  # every twin is built once rec's (the last) is
    together: list = [None, None]
    meet = threading.Barrier(2)

    def read(half: int) -> None:
        meet.wait()
        together[half] = engine.run_each(pages[half * 2 : half * 2 + 2])

    threads = [threading.Thread(target=read, args=(half,)) for half in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [[line.text for line in page.lines] for half in together for page in half] == alone


@pytest.mark.parametrize(("count", "bucket"), [(1, 1), (2, 2), (3, 4), (5, 8), (8, 8), (9, 16), (100, 128)])
def test_batch_buckets_are_the_next_power_of_two(count: int, bucket: int):
    assert batch_bucket(count) == bucket


def test_a_bucketed_run_pads_the_batch_and_gives_back_only_its_own_items():
    session = ModelSession(_adds(1.0))
    batch = np.arange(5, dtype=np.float32)
    out = session.run(batch, bucketed=True)
    assert out.tolist() == (batch + 1).tolist()
    assert session.run(batch[:3], bucketed=True).tolist() == [1.0, 2.0, 3.0]
    assert session.distinct_shapes == 2  # 5 and 3 items ran as 8 and 4
    session.run(batch[:4])
    session.run(batch[:6], bucketed=True)
    assert session.distinct_shapes == 2  # 4 as it is, 6 as 8: shapes already met


def test_full_rec_runs_fill_their_bucket_so_only_a_widths_last_run_is_padded():
    from docmill.options import EngineOptions
    from worker.engine.rec import batch_count

    cuda = EngineOptions(rec_batch_size=256, rec_batch_width=32768, batch_buckets=True)
    assert batch_count(320, cuda) == 64  # 102 fit: the bucket below
    assert batch_count(20000, cuda) == 1
    assert batch_count(320, cuda.merged({"batch_buckets": False})) == 102


def test_the_first_run_of_each_shape_is_counted_apart():
    session = ModelSession(_adds(1.0))
    session.run(np.zeros(4, np.float32))
    first = session.new_shape_s
    assert 0 < first == session.busy_s
    session.run(np.zeros(4, np.float32))
    assert session.new_shape_s == first < session.busy_s  # a shape met before is not new
    session.run(np.zeros(5, np.float32))
    assert session.new_shape_s > first


def test_with_spawn_each_shape_keeps_a_session_of_its_own_up_to_the_cap():
    """The first shape runs on the session given; each new one on a session spawned for it and
    kept for its later runs; past the cap, shapes share the first session."""
    spawned: list[float] = []

    def spawn() -> ort.InferenceSession:
        spawned.append(10.0 * (len(spawned) + 1))
        return _adds(spawned[-1])

    session = ModelSession(_adds(0.0), spawn=spawn, shape_sessions=3)
    ran = {size: float(session.run(np.zeros(size, np.float32))[0]) for size in (1, 2, 3, 4)}
    assert ran == {1: 0.0, 2: 10.0, 3: 20.0, 4: 0.0}  # 4 is past the cap of 3
    assert [float(session.run(np.zeros(size, np.float32))[0]) for size in (3, 2, 1)] == [20.0, 10.0, 0.0]
    assert spawned == [10.0, 20.0] and session.distinct_shapes == 4


def _adds_model(path: Path) -> Path:
    """The one-node model as an image model's file: NCHW input, 3 channels."""
    path.write_bytes(_adds_bytes(1.0, [None, 3, None, None]))
    return path


def _count_sessions(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    from worker.engine import optimized

    created: list[str] = []
    real = optimized.open_session
    monkeypatch.setattr(optimized, "open_session", lambda *a, **k: created.append("session") or real(*a, **k))
    return created


def _run_widths(session: ModelSession, widths: tuple[int, ...]) -> None:
    for width in widths:
        session.run(pixel_batch([np.zeros((2, width, 3), np.uint8)], (2, width), [1.0] * 3, [0.0] * 3))


def test_the_shape_sessions_setting_caps_a_models_sessions_on_the_cuda_path(tmp_path, monkeypatch):
    """Through the engine's CUDA branch (the provider's name patched to the CPU's, as
    bench.cuda_path does): `shape_sessions` is what open_session gives ModelSession."""
    from worker.engine import providers

    monkeypatch.setattr(providers, "CUDA", providers.CPU)
    monkeypatch.setattr(providers, "provider_config", lambda names, settings: [(name, {}) for name in names])
    created = _count_sessions(monkeypatch)
    settings = Settings(session_per_shape=True, shape_sessions=3)
    session = providers.open_session(str(_adds_model(tmp_path / "adds.onnx")), [providers.CPU], settings)
    _run_widths(session, (4, 8, 12, 16, 20, 8))
    assert created == ["session"] * 3 and session.distinct_shapes == 5  # 16 and 20 share the first


def test_session_per_shape_is_off_by_default_and_never_spawns_on_cpu(tmp_path, monkeypatch):
    from worker.engine import providers

    assert Settings().session_per_shape is False
    created = _count_sessions(monkeypatch)
    session = providers.open_session(str(_adds_model(tmp_path / "adds.onnx")), [providers.CPU],
                                     Settings(session_per_shape=True))
    _run_widths(session, (4, 8, 4))
    assert created == ["session"] and session.distinct_shapes == 2


def _adds_and_doubles() -> ort.InferenceSession:
    """Two outputs of different shapes: y = x + 1 (as x) and s = the sum of x * 2 (a scalar)."""
    nodes = [helper.make_node("Add", ["x", "one"], ["y"]), helper.make_node("Add", ["x", "x"], ["twice"]),
             helper.make_node("ReduceSum", ["twice"], ["s"], keepdims=0)]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("s", TensorProto.FLOAT, None)],
                              [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _bound_runs(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """Counts ONNXRuntime's own bound runs, which still run."""
    bound: list[int] = []
    real = ort.InferenceSession.run_with_iobinding
    monkeypatch.setattr(ort.InferenceSession, "run_with_iobinding",
                        lambda self, *a, **k: bound.append(1) or real(self, *a, **k))
    return bound


def test_a_bound_run_gives_every_output_of_a_plain_run_in_order(monkeypatch):
    bound = _bound_runs(monkeypatch)
    x = np.arange(6, dtype=np.float32)
    plain = ModelSession(_adds_and_doubles()).run_all(x)
    outputs = ModelSession(_adds_and_doubles(), io_binding=True).run_all(x)
    assert len(bound) == 1 and len(plain) == len(outputs) == 2
    assert all(np.array_equal(a, b) and a.shape == b.shape for a, b in zip(plain, outputs))
    assert outputs[1] == 30.0 and np.array_equal(outputs[0], x + 1)


def test_with_io_binding_every_engine_run_is_bound_and_the_pages_read_the_same(engine_for, sample_pages,
                                                                               monkeypatch):
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet
    from worker.engine.pipeline import OcrEngine

    settings = Settings(device="cpu", io_binding=True)
    bound_engine = OcrEngine.load(ModelSet.load(ensure_model_set("pp-ocrv4-ch", settings)), settings)
    plain_engine, _ = engine_for("pp-ocrv4-ch")
    pages = list(sample_pages[0].values())[:3]
    bound = _bound_runs(monkeypatch)
    read_bound = [[(line.text, line.box) for line in page.lines] for page in bound_engine.run(pages)]
    runs = len(bound)
    read_plain = [[(line.text, line.box) for line in page.lines] for page in plain_engine.run(pages)]
    assert runs >= 3 and len(bound) == runs  # det, cls and rec bound; the plain engine never
    assert read_bound == read_plain and all(read_plain)
