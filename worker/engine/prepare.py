"""What the engine loads in place of a model file: the graph rewritten for running, cached.

Three rewrites, all exact:
- pixel input (always, for the engine): the model takes a batch's bytes (uint8 NHWC), masks
  of each item's rows and columns, whether any item is padded, and the per-channel scale
  and shift, and normalises in the graph what the host used to (worker.engine.pixels.PixelBatch
  says why);
- graph folding (`graphfold`, when `fold_graph` is on);
- for rec on a GPU, a CTC head: ArgMax and ReduceMax over the class axis after the softmax,
  so a run returns each step's best class and its probability instead of every class's.
  PP-OCRv6's rec has 18,710 classes, so 18,710 times less data comes back to the host, and
  the host no longer scans them. On CPU the host's numpy is the cheaper place: over a batch
  of 6 x 80 steps x 18,710 classes, one thread, numpy's argmax and max take 2.0 ms and
  ONNXRuntime's ArgMax alone 7.5 ms, so CPU sessions keep the plain output.

Rewriting costs about 0.4 s of CPU at every process start (onnx load, fold, serialise), so
the result is cached beside the model, as `.prepared/<stem>.<rewrites>.<key>.onnx` in the
model set's folder: it goes when the set goes. The key covers the source file (size, mtime)
and the rewriting code itself, so an edited model or a changed rewrite never meets a stale
file; writing a new one removes the older ones of the same rewrites, with what was derived
from them (a CPU and a CUDA process sharing the set keep theirs apart). It is written as every local result is
(LocalStorage: a temporary name, then a rename), so a concurrent process (a GPU worker starts
several) never reads half a file. Where the folder is read-only, the rewrite is used from
memory.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path

from docmill.storage import LocalStorage, StorageError

log = logging.getLogger(__name__)

PREPARED_DIR, KEY_CHARS = ".prepared", 24
BEST_CLASS, BEST_PROB = "docmill_ctc_best_class", "docmill_ctc_best_prob"
PIXEL_MIN_OPSET = 9  # the oldest the pixel prefix's operators are written for
_CODE = (Path(__file__), Path(__file__).with_name("graphfold.py"))


@lru_cache(maxsize=1)
def _code_digest() -> str:
    digest = hashlib.sha256()
    for path in _CODE:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _rewrites(fold: bool, ctc_head: bool, pixels: bool) -> str:
    return ("folded" if fold else "plain") + ("-ctc" if ctc_head else "") + ("-pixels" if pixels else "")


def source_key(path: Path, *made_by: str, chars: int) -> str:
    """The key of a file derived from `path` by what `made_by` names: it changes when the
    source file does (its size or mtime), or when any of `made_by` does."""
    stat = path.stat()
    text = "|".join((str(stat.st_size), str(stat.st_mtime_ns), *made_by))
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def cached_path(path: Path, fold: bool, ctc_head: bool, pixels: bool = False) -> Path:
    """Where one rewrite of one model file by one version of this code is kept."""
    key = source_key(path, _code_digest(), chars=KEY_CHARS)
    return path.parent / PREPARED_DIR / f"{path.stem}.{_rewrites(fold, ctc_head, pixels)}.{key}.onnx"


def prepared_model(path: str | Path, *, fold: bool, ctc_head: bool, pixels: bool = False) -> str | bytes:
    """What to hand to onnxruntime.InferenceSession for the model at `path`: the file itself
    when nothing is rewritten, else the cached rewrite's path (made on first use), or its
    bytes when it cannot be cached."""
    source = Path(path)
    if not (fold or ctc_head or pixels):
        return str(source)
    cached = cached_path(source, fold, ctc_head, pixels)
    if cached.is_file():
        return str(cached)
    data = rewrite(source, fold=fold, ctc_head=ctc_head, pixels=pixels)
    try:
        LocalStorage().write_bytes(str(cached), data, "application/octet-stream")
    except StorageError as exc:
        log.info("%s: cannot cache the prepared model (%s); using it from memory", cached, exc)
        return data
    for stale in cached.parent.glob(f"{source.stem}.{_rewrites(fold, ctc_head, pixels)}.{'?' * KEY_CHARS}.onnx"):
        if stale != cached:
            for derived in cached.parent.glob(f"{stale.stem}.*"):  # ORT's saved graph of it (optimized)
                derived.unlink(missing_ok=True)
            stale.unlink(missing_ok=True)
    return str(cached)


def rewrite(path: Path, *, fold: bool, ctc_head: bool, pixels: bool = False) -> bytes:
    """The model at `path` with the rewrites asked for, serialised."""
    import onnx

    from worker.engine.graphfold import fold_model

    model = onnx.load(str(path))
    if fold:
        log.info("%s: folded %s", path, fold_model(model).as_dict())
    if ctc_head:
        add_ctc_head(model)
    if pixels:
        add_pixel_input(model)
    return model.SerializeToString()


def add_pixel_input(model) -> None:  # type: ignore[no-untyped-def]  # onnx.ModelProto, imported lazily
    """Replace the model's N x 3 x H x W float input with PixelBatch's inputs (PIXEL_INPUTS):
    uint8 pixels N x H x W x 3, which of each item's rows (N x H) and columns (N x W) hold
    it, whether any item is padded at all, and the per-channel scale and shift (1 x 3 x 1 x
    1). The graph transposes, casts, scales and shifts the pixels and, in a batch with
    padding, zeroes every position outside an item, as the host did with a zero-padded float
    batch. The mask is skipped where nothing is padded (a lone page on CPU): it cost 4 of a
    det page's 9.5 ms of normalising, and as a Where 2.5 ms more than as a Mul. Raises
    ValueError for a model older than opset 9 or without one 4-D image input."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from worker.engine.pixels import PIXEL_INPUTS

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < PIXEL_MIN_OPSET:
        raise ValueError(f"model opset {opset}: docmill needs opset {PIXEL_MIN_OPSET} or newer; reconvert it")
    image = graph.input[0]
    tensor = image.type.tensor_type
    dims = [d.dim_param or (d.dim_value or None) for d in tensor.shape.dim]
    if len(graph.input) != 1 or len(dims) != 4:
        raise ValueError(f"{image.name}: expected one N x 3 x H x W image input")
    pixels, rows, cols, padded, scale, shift = PIXEL_INPUTS
    consts = {"docmill_row_shape": np.array([0, 1, -1, 1], np.int64),
              "docmill_col_shape": np.array([0, 1, 1, -1], np.int64)}
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in consts.items())
    normalised = image.name if tensor.elem_type == TensorProto.FLOAT else "docmill_normalised"
    node = helper.make_node
    masked = helper.make_graph([
        node("Reshape", [rows, "docmill_row_shape"], ["docmill_in_rows"]),
        node("Reshape", [cols, "docmill_col_shape"], ["docmill_in_cols"]),
        node("And", ["docmill_in_rows", "docmill_in_cols"], ["docmill_inside"]),
        node("Cast", ["docmill_inside"], ["docmill_keep"], to=TensorProto.FLOAT),
        node("Mul", ["docmill_affine", "docmill_keep"], ["docmill_masked"]),
    ], "docmill_mask_padding", [], [helper.make_tensor_value_info("docmill_masked", TensorProto.FLOAT, None)])
    unmasked = helper.make_graph([node("Identity", ["docmill_affine"], ["docmill_whole"])], "docmill_no_padding",
                                 [], [helper.make_tensor_value_info("docmill_whole", TensorProto.FLOAT, None)])
    nodes = [
        node("Transpose", [pixels], ["docmill_planes"], perm=[0, 3, 1, 2]),  # bytes move cheaper than floats
        node("Cast", ["docmill_planes"], ["docmill_float"], to=TensorProto.FLOAT),
        node("Mul", ["docmill_float", scale], ["docmill_scaled"]),
        node("Add", ["docmill_scaled", shift], ["docmill_affine"]),
        node("If", [padded], [normalised], then_branch=masked, else_branch=unmasked),
    ]
    if normalised != image.name:
        nodes.append(node("Cast", [normalised], [image.name], to=tensor.elem_type))
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    del graph.input[:]
    graph.input.extend([
        helper.make_tensor_value_info(pixels, TensorProto.UINT8, [dims[0], dims[2], dims[3], 3]),
        helper.make_tensor_value_info(rows, TensorProto.BOOL, [dims[0], dims[2]]),
        helper.make_tensor_value_info(cols, TensorProto.BOOL, [dims[0], dims[3]]),
        helper.make_tensor_value_info(padded, TensorProto.BOOL, [1]),
        helper.make_tensor_value_info(scale, TensorProto.FLOAT, [1, 3, 1, 1]),
        helper.make_tensor_value_info(shift, TensorProto.FLOAT, [1, 3, 1, 1])])


def add_ctc_head(model) -> bool:  # type: ignore[no-untyped-def]  # onnx.ModelProto, imported lazily
    """Replace a recogniser's (batch, steps, classes) output with two: each step's best class
    (int64) and its probability. Returns False, changing nothing, for any other output."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    output = graph.output[0]
    dims = output.type.tensor_type.shape.dim
    if len(graph.output) != 1 or len(dims) != 3:
        return False
    steps = [d.dim_param or (d.dim_value or None) for d in dims[:2]]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    argmax = helper.make_node("ArgMax", [output.name], [BEST_CLASS], axis=2, keepdims=0)
    if opset >= 18:  # axes became an input
        import numpy as np

        graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "docmill_ctc_axes"))
        reduce = helper.make_node("ReduceMax", [output.name, "docmill_ctc_axes"], [BEST_PROB], keepdims=0)
    else:
        reduce = helper.make_node("ReduceMax", [output.name], [BEST_PROB], axes=[2], keepdims=0)
    graph.node.extend([argmax, reduce])
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(BEST_CLASS, TensorProto.INT64, steps),
                         helper.make_tensor_value_info(BEST_PROB, TensorProto.FLOAT, steps)])
    return True

