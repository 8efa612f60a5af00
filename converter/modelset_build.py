"""Build a model set from ONNX files and a dictionary; import one from sources.

Building is where a set earns its manifest: every model must open in onnxruntime, and the rec
model's class count must be the dictionary plus two (CTC blank first, space last), because a
dictionary off by one decodes every character wrong without any error.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

import docmill
from docmill.hashstamp import sha256_file
from docmill.modelset import (DICT_FILE, MANIFEST_FILE, OPTIONAL_STAGES, STAGES, DictEntry, Manifest, ModelEntry,
                              ModelSet, ModelSetError, SourceProvenance, content_version, parse_dictionary, publish,
                              sha256_bytes)
from docmill.options import EngineOptions
from docmill.settings import Settings
from docmill.storage import LocalStorage

from converter.onnx_info import OnnxInfo, read_onnx_info
from converter.sources import FetchedSource, fetch

NORMALIZE_HALF = "(x/255-0.5)/0.5"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    """Progress goes to stderr so that stdout stays machine-readable."""
    print(f"docmill: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Source:
    """One source string (see converter.sources) and, when pinned, the sha256 it must have."""

    uri: str
    sha256: str | None = None


@dataclass(frozen=True)
class SetRecipe:
    """Everything that decides a model set: where each file comes from and the defaults."""

    name: str
    det: Source
    cls: Source
    rec: Source
    dictionary: Source | None = None  # None: the rec model's `character` metadata
    defaults: dict[str, Any] = field(default_factory=dict)
    ori: Source | None = None  # page orientation model, for use_doc_orientation

    def pins(self) -> dict[str, str | None]:
        """Each model's pinned sha256, by stage (what a cached build must have recorded)."""
        stages = [*STAGES, *(s for s in OPTIONAL_STAGES if getattr(self, s) is not None)]
        return {stage: getattr(self, stage).sha256 for stage in stages}


@dataclass(frozen=True)
class _CheckedModel:
    path: Path
    info: OnnxInfo
    session: ort.InferenceSession


def check_set_name(name: str) -> None:
    """Set names become folder names and are split on '@' when resolved, so keep them plain."""
    if not _SET_NAME.match(name or ""):
        raise ModelSetError(f"set name {name!r}: use letters, digits, '.', '_' and '-' only, "
                            "starting with a letter or digit")


def import_set(recipe: SetRecipe, settings: Settings, progress: Progress = stderr_progress) -> Path:
    """Fetch the recipe's sources (cached under cache_dir/downloads), build the set into the
    model cache and return its version folder."""
    downloads = settings.cache_dir / "downloads"
    with import_lock(settings.cache_dir), \
            tempfile.TemporaryDirectory(prefix=".scratch-", dir=settings.cache_dir) as scratch:
        fetched: dict[str, FetchedSource] = {}
        for stage in recipe.pins():
            source: Source = getattr(recipe, stage)
            progress(f"{recipe.name}: fetching {stage} from {source.uri}")
            fetched[stage] = fetch(source.uri, downloads, Path(scratch), source.sha256)
        if recipe.dictionary is None:
            fetched["dict"] = fetched["rec"]
        else:
            progress(f"{recipe.name}: fetching dictionary from {recipe.dictionary.uri}")
            fetched["dict"] = fetch(recipe.dictionary.uri, downloads, Path(scratch),
                                    recipe.dictionary.sha256)
        progress(f"{recipe.name}: checking the models in onnxruntime and building the set")
        return build_model_set(
            recipe.name, fetched["det"].path, fetched["cls"].path, fetched["rec"].path,
            load_dictionary(fetched["dict"].path),
            {stage: f.provenance for stage, f in fetched.items()},
            recipe.defaults, settings.model_cache, ori=fetched["ori"].path if "ori" in fetched else None)


@contextmanager
def import_lock(cache_dir: Path) -> Iterator[None]:
    """Workers started together all import a missing preset on first use; one import at a
    time per cache keeps them from downloading and publishing the same files at once."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".import.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def load_dictionary(path: Path) -> list[str]:
    """Entries from an ONNX file's `character` metadata or from a text file. Text is decoded
    as utf-8-sig because some dictionaries start with a BOM that would become part of entry 0;
    CRLF line ends (some wheels ship them) are stripped by parse_dictionary."""
    if path.suffix == ".onnx":
        entries = read_onnx_info(path).character
        if entries is None:
            raise ModelSetError(f"{path}: no `character` metadata; give the dictionary as a text file")
        return entries
    return parse_dictionary(path.read_bytes().decode("utf-8-sig"))


def build_model_set(name: str, det: Path, cls: Path, rec: Path, dictionary: list[str],
                    provenance: dict[str, SourceProvenance], defaults: dict[str, Any],
                    out_root: Path, parity: dict[str, dict[str, Any]] | None = None,
                    tools: dict[str, str] | None = None, ori: Path | None = None) -> Path:
    """Check the models and the dictionary, publish `out_root/<name>/<version>/` (version =
    content hash, LATEST updated) and return it after loading it back with verification.
    `provenance` maps det/cls/rec (and optionally dict) to where each file came from; a
    conversion adds each model's `parity` figures and the `tools` that made the files."""
    check_set_name(name)
    options = _engine_options(defaults)
    paths = {"det": det, "cls": cls, "rec": rec} | ({"ori": ori} if ori is not None else {})
    checked = {stage: _check_model(stage, Path(path)) for stage, path in paths.items()}
    _check_dictionary(dictionary, _rec_class_count(checked["rec"], options))
    dict_bytes = _dictionary_bytes(dictionary)
    manifest = _manifest(name, checked, dictionary, dict_bytes, provenance, defaults, options)
    manifest = _with_conversion(manifest, parity or {}, tools or {})
    with tempfile.TemporaryDirectory(prefix="docmill-staging-") as staging:
        for stage, model in checked.items():
            (Path(staging) / f"{stage}.onnx").symlink_to(model.path.resolve())
        (Path(staging) / DICT_FILE).write_bytes(dict_bytes)
        _discard_damaged(out_root / name / manifest.version)
        target = Path(publish(Path(staging), manifest, str(out_root), LocalStorage()))
    ModelSet.load(target)
    return target


def _engine_options(defaults: dict[str, Any]) -> EngineOptions:
    try:
        return EngineOptions().merged(defaults)
    except ValueError as exc:
        raise ModelSetError(f"defaults {defaults}: not valid engine options "
                            f"({str(exc).splitlines()[0]})") from exc


def _check_model(stage: str, path: Path) -> _CheckedModel:
    """Open the model the way a worker will; a file that onnx or onnxruntime refuses (both
    raise their own exception types) must never reach a manifest."""
    try:
        info = read_onnx_info(path)
        session = _cpu_session(path)
    except Exception as exc:  # noqa: BLE001 - onnx, protobuf and onnxruntime errors alike
        first = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        raise ModelSetError(f"{stage} model {path}: cannot be loaded ({first})") from exc
    return _CheckedModel(path, info, session)


def _cpu_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _rec_class_count(model: _CheckedModel, options: EngineOptions) -> int:
    """The last output dimension; when the file leaves it symbolic, run the model once on a
    blank line image to learn it."""
    shape = model.info.outputs[0].shape
    if shape and isinstance(shape[-1], int) and shape[-1] > 0:
        return shape[-1]
    blank = np.zeros((1, *options.rec_image_shape), dtype=np.float32)
    output = model.session.run(None, {model.session.get_inputs()[0].name: blank})[0]
    return int(output.shape[-1])


def _check_dictionary(dictionary: list[str], classes: int) -> None:
    broken = [i for i, entry in enumerate(dictionary) if "\n" in entry or "\r" in entry]
    if broken:
        raise ModelSetError(f"dictionary entries {broken[:5]} contain line breaks; one entry per line")
    if len(dictionary) + 2 != classes:
        raise ModelSetError(
            f"the dictionary has {len(dictionary)} entries but the rec model outputs {classes} "
            f"classes (expected {len(dictionary)} + 2: blank first, space last); "
            "use the dictionary this rec model was trained with")


def _dictionary_bytes(dictionary: list[str]) -> bytes:
    return "".join(f"{entry}\n" for entry in dictionary).encode("utf-8")


def _preprocess(options: EngineOptions) -> dict[str, dict[str, Any]]:
    """PaddleOCR's inference.yml preprocessing, recorded so a reader needs no other source."""
    return {
        "det": {"mean": list(options.det_mean), "std": list(options.det_std), "scale": 1 / 255,
                "color": "BGR", "multiple": 32},
        "cls": {"image_shape": list(options.cls_image_shape), "normalize": NORMALIZE_HALF},
        "rec": {"image_shape": list(options.rec_image_shape), "normalize": NORMALIZE_HALF},
        "ori": {"resize_short": 256, "crop": 224, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                "scale": 1 / 255, "color": "BGR", "labels": [0, 90, 180, 270]},
    }


def _manifest(name: str, checked: dict[str, _CheckedModel], dictionary: list[str],
              dict_bytes: bytes, provenance: dict[str, SourceProvenance],
              defaults: dict[str, Any], options: EngineOptions) -> Manifest:
    preprocess = _preprocess(options)
    models = {stage: ModelEntry(
        file=f"{stage}.onnx", sha256=sha256_file(model.path), bytes=model.path.stat().st_size,
        opset=model.info.opset, inputs=model.info.inputs, outputs=model.info.outputs,
        preprocess=preprocess[stage], source=provenance[stage]) for stage, model in checked.items()}
    dict_entry = DictEntry(sha256=sha256_bytes(dict_bytes), entries=len(dictionary),
                           source=provenance.get("dict"))
    hashes = {m.file: m.sha256 for m in models.values()} | {DICT_FILE: dict_entry.sha256}
    return Manifest(name=name, version=content_version(hashes, defaults), models=models,
                    dictionary=dict_entry, defaults=defaults,
                    tools={"docmill": docmill.__version__, "onnx": installed_version("onnx"),
                           "onnxruntime": ort.__version__})


def _with_conversion(manifest: Manifest, parity: dict[str, dict[str, Any]],
                     tools: dict[str, str]) -> Manifest:
    """Parity figures and converter versions describe the files but do not decide the output,
    so they stay out of the version hash."""
    models = {stage: entry.model_copy(update={"parity": parity.get(stage)})
              for stage, entry in manifest.models.items()}
    return manifest.model_copy(update={"models": models, "tools": {**manifest.tools, **tools}})


def _discard_damaged(version_dir: Path) -> None:
    """publish keeps a version whose manifest is already in place, so a damaged copy
    (a file edited or truncated) would stay damaged; remove it to have it written afresh."""
    if not (version_dir / MANIFEST_FILE).is_file():
        return
    try:
        ModelSet.load(version_dir)
    except ModelSetError:
        shutil.rmtree(version_dir)
