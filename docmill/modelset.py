"""Model sets: det/cls/rec ONNX files, a dictionary and a manifest, in one versioned folder.

Layout (local folder or object-store prefix, the same either way):
    <root>/<set>/<version>/{det.onnx, cls.onnx, rec.onnx, dict.txt, manifest.json}
    <root>/<set>/LATEST            (text: the newest version)
The version is a hash of the content, so the same inputs always give the same version.
Loading verifies every file's sha256 against the manifest and refuses a mismatch: a worker
never runs a half-copied or tampered set. A file is hashed again only when its stat has moved
(docmill.hashstamp).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from docmill.hashstamp import HashStamps
from docmill.options import EngineOptions

if TYPE_CHECKING:
    from docmill.messages import ModelsRef
    from docmill.settings import Settings
    from docmill.storage import Storage

MANIFEST_SCHEMA = "docmill.modelset/v1"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "LATEST"
DICT_FILE = "dict.txt"
STAGES = ("det", "cls", "rec")  # every set has these
OPTIONAL_STAGES = ("ori",)  # page orientation (0/90/180/270), used by use_doc_orientation


class ModelSetError(Exception):
    """A model set that cannot be used; the message says what to do."""


class TensorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    shape: list[int | str | None]
    type: str


class SourceProvenance(BaseModel):
    """Where a model file came from: a URI (file, https, s3, pypi:, npm:) and its own sha256."""

    model_config = ConfigDict(extra="forbid")
    uri: str
    sha256: str
    member: str | None = None


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str
    sha256: str
    bytes: int
    opset: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    preprocess: dict[str, Any] = Field(default_factory=dict)
    source: SourceProvenance
    parity: dict[str, Any] | None = None


class DictEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: Literal["dict.txt"] = DICT_FILE
    sha256: str
    entries: int
    source: SourceProvenance | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: Literal["docmill.modelset/v1"] = Field(MANIFEST_SCHEMA, alias="schema")
    name: str
    version: str
    models: dict[Literal["det", "cls", "rec", "ori"], ModelEntry]
    dictionary: DictEntry = Field(alias="dict")
    defaults: dict[str, Any] = Field(default_factory=dict)
    measurements: dict[str, Any] = Field(default_factory=dict)
    tools: dict[str, str] = Field(default_factory=dict)

    def engine_defaults(self) -> EngineOptions:
        """PaddleOCR defaults with this set's measured defaults on top."""
        return EngineOptions().merged(self.defaults)

    def files(self) -> list[tuple[str, str]]:
        """Each file of the set but the manifest itself, with its sha256."""
        return [*((m.file, m.sha256) for m in self.models.values()), (self.dictionary.file, self.dictionary.sha256)]

    def to_json_bytes(self) -> bytes:
        data = self.model_dump(mode="json", by_alias=True)
        return (json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_version(file_hashes: dict[str, str], defaults: dict[str, Any]) -> str:
    """Version = hash of what decides the output: every file's sha256 and the defaults."""
    canon = json.dumps({"files": file_hashes, "defaults": defaults}, sort_keys=True)
    return sha256_bytes(canon.encode())[:16]


def parse_dictionary(text: str) -> list[str]:
    """Dictionary lines, CRLF stripped, the trailing empty line (if any) dropped.

    A line holding a single space is a real entry (en_dict ends with one), so lines are not
    stripped of spaces, only of line-end characters."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class ModelSet:
    """A verified, loaded model set on local disk."""

    def __init__(self, root: Path, manifest: Manifest, characters: list[str]):
        self.root = root
        self.manifest = manifest
        self.characters = characters

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def path(self, stage: str) -> Path:
        return self.root / self.manifest.models[stage].file

    def files(self) -> list[Path]:
        """The set's own files, manifest included; not what a runner caches beside them
        (the engine's prepared models, worker.engine.prepare)."""
        return [*(self.root / name for name, _ in self.manifest.files()), self.root / MANIFEST_FILE]

    def has(self, stage: str) -> bool:
        return stage in self.manifest.models

    @classmethod
    def load(cls, root: Path, verify: bool = True) -> "ModelSet":
        """Read and (by default) verify a set folder; raise ModelSetError on any problem."""
        root = Path(root)
        manifest_path = root / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ModelSetError(f"{root}: no {MANIFEST_FILE}; not a model set folder")
        try:
            manifest = Manifest.model_validate_json(manifest_path.read_bytes())
        except ValueError as exc:
            raise ModelSetError(f"{manifest_path}: invalid manifest ({exc.__class__.__name__}: "
                                f"{str(exc).splitlines()[0]})") from exc
        return cls.load_unpublished(root, manifest, verify)

    @classmethod
    def load_unpublished(cls, root: Path, manifest: Manifest, verify: bool = True) -> "ModelSet":
        """Check the files of `root` against a manifest held in memory (the manifest file
        itself may not be written yet)."""
        missing = [s for s in STAGES if s not in manifest.models]
        if missing:
            raise ModelSetError(f"{root / MANIFEST_FILE}: manifest lacks models {missing}")
        if verify:
            entries = [(m.file, m.sha256, m.bytes) for m in manifest.models.values()]
            entries.append((manifest.dictionary.file, manifest.dictionary.sha256, None))
            stamps = HashStamps(root)
            for file, expected, size in entries:
                _verify_file(root / file, expected, size, stamps)
            stamps.save()
        characters = parse_dictionary((root / manifest.dictionary.file).read_text("utf-8"))
        if len(characters) != manifest.dictionary.entries:
            raise ModelSetError(f"{root / DICT_FILE}: {len(characters)} entries, manifest says "
                                f"{manifest.dictionary.entries}")
        return cls(root, manifest, characters)


def _verify_file(path: Path, expected: str, size: int | None, stamps: HashStamps) -> None:
    if not path.is_file():
        raise ModelSetError(f"{path}: missing from the model set; re-import or re-publish it")
    if size is not None and path.stat().st_size != size:
        raise ModelSetError(f"{path}: {path.stat().st_size} bytes, manifest says {size}; "
                            "the set is incomplete or tampered with")
    actual = stamps.sha256(path)
    if actual != expected:
        raise ModelSetError(f"{path}: sha256 {actual[:12]}… does not match the manifest "
                            f"({expected[:12]}…); the set is tampered with or corrupt")


def latest_version_dir(set_dir: Path) -> Path | None:
    """`<set>/LATEST` -> `<set>/<version>` when both exist."""
    pointer = set_dir / LATEST_FILE
    if not pointer.is_file():
        return None
    version_dir = set_dir / pointer.read_text("utf-8").strip()
    return version_dir if (version_dir / MANIFEST_FILE).is_file() else None


def find_local_set(ref: str, cache: Path) -> Path | None:
    """Find a local set without fetching anything (see `locate` for the full resolver).

    `ref` may be a version folder (has manifest.json), a set folder (has LATEST), or a set
    name (`pp-ocrv4-ch`, or `pp-ocrv4-ch@<version>`) looked up in `cache`."""
    path = Path(ref).expanduser()
    if (path / MANIFEST_FILE).is_file():
        return path
    if path.is_dir():
        return latest_version_dir(path)
    name, _, version = ref.partition("@")
    if "/" in name or not name:
        return None
    set_dir = cache / name
    if version:
        candidate = set_dir / version
        return candidate if (candidate / MANIFEST_FILE).is_file() else None
    return latest_version_dir(set_dir)


_CONTENT_TYPES = {".onnx": "application/octet-stream", ".txt": "text/plain; charset=utf-8"}


def publish(src: Path, manifest: Manifest, dest: str, storage: "Storage",
            progress: "Callable[[str], None]" = lambda message: None) -> str:
    """Publish the set in folder `src` to `dest/<set>/<version>/` through the storage
    interface, for folders and object stores alike: objects first, manifest next, LATEST
    last, so a reader that sees LATEST finds a whole set. A version whose manifest is already
    there with the same bytes is not written again (the version is a content hash); only
    LATEST is pointed at it. Returns the version folder's URI."""
    from docmill.storage import ObjectNotFound, join_uri

    target = join_uri(dest, f"{manifest.name}/{manifest.version}")
    latest = join_uri(dest, f"{manifest.name}/{LATEST_FILE}")
    manifest_bytes = manifest.to_json_bytes()
    try:
        published = storage.read_bytes(join_uri(target, MANIFEST_FILE)) == manifest_bytes
    except ObjectNotFound:
        published = False
    if published:
        progress(f"{manifest.name}: {manifest.version} already published")
    else:
        for file, sha256 in manifest.files():
            progress(f"{manifest.name}: uploading {file}")
            with (src / file).open("rb") as model_file:  # in parts: a server-size model is hundreds of MB
                storage.write_from(join_uri(target, file), model_file, _CONTENT_TYPES[Path(file).suffix],
                                   {"sha256": sha256})
        storage.write_bytes(join_uri(target, MANIFEST_FILE), manifest_bytes, "application/json", {})
    storage.write_bytes(latest, manifest.version.encode(), "text/plain", {})
    return target


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file + rename. The temp name is unique per call: worker processes sharing one
    cache fetch the same set at once, and a shared name let one rename the other's file away."""
    import os
    import uuid

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fetch_remote_set(uri: str, settings: Any) -> Path:
    """Copy a published set from object storage into the local cache and verify it.

    `uri` is `s3://bucket/prefix/<set>` (follows LATEST) or `.../<set>/<version>`. Files land
    in `<cache>/models/<set>/<version>/` under temporary names first; the manifest is written
    last, so an interrupted fetch is never mistaken for a complete set."""
    from docmill.storage import join_uri, open_storage

    storage = open_storage(uri, settings)
    base, manifest_bytes = read_published_manifest(storage, uri)
    manifest = Manifest.model_validate_json(manifest_bytes)
    target = settings.model_cache / manifest.name / manifest.version
    if (target / MANIFEST_FILE).is_file() and (target / MANIFEST_FILE).read_bytes() == manifest_bytes:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for file in [m.file for m in manifest.models.values()] + [manifest.dictionary.file]:
        _write_atomic(target / file, storage.read_bytes(join_uri(base, file)))
    try:
        ModelSet.load_unpublished(target, manifest)
    except ModelSetError:
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        raise
    _write_atomic(target / MANIFEST_FILE, manifest_bytes)
    return target


def read_published_manifest(storage: Any, uri: str) -> tuple[str, bytes]:
    """(version folder URI, manifest bytes) of a published set: `uri` is a version folder,
    or a set folder whose LATEST names the version. One read of LATEST, so a caller pins
    the version it saw even while a new one is being published."""
    from docmill.storage import ObjectNotFound, join_uri

    base = uri.rstrip("/")
    try:
        return base, storage.read_bytes(join_uri(base, MANIFEST_FILE))
    except ObjectNotFound:
        pass
    try:
        version = storage.read_bytes(join_uri(base, LATEST_FILE)).decode().strip()
    except ObjectNotFound:
        raise ModelSetError(f"{uri}: neither {MANIFEST_FILE} nor {LATEST_FILE} found; "
                            "not a published model set") from None
    base = join_uri(base, version)
    return base, storage.read_bytes(join_uri(base, MANIFEST_FILE))


def locate(ref: str, settings: "Settings") -> Path:
    """The one model-set resolver: a version folder, a set folder (its LATEST), a cached set
    name (`name` or `name@version`) or a published `s3://` set (fetched into the cache and
    verified) -> the local version folder. Importing a preset that is not cached yet is the
    converter's job (`converter.presets.ensure_model_set`), layered on top of this."""
    from docmill.storage import is_s3_uri

    if is_s3_uri(ref):
        return fetch_remote_set(ref, settings)
    found = find_local_set(ref, settings.model_cache)
    if found is None:
        raise ModelSetError(f"model set {ref!r} not found (not a set folder, nor in {settings.model_cache}); "
                            f"use a folder with {MANIFEST_FILE}, an s3:// set, or `docmill models import`")
    return found


def open_model_set(ref: str, settings: "Settings") -> ModelSet:
    """`locate`, then load the set with every file verified against its manifest."""
    return ModelSet.load(locate(ref, settings))


def pin_for_job(ref: str, settings: "Settings") -> tuple["ModelsRef", str]:
    """Pin the set a distributed job runs on, once, at job start: (version reference, set
    name). Workers on other hosts must be able to read it, so it must be a storage URI: an
    `s3://` set (LATEST read once here) or an explicit folder every worker sees at the same
    path. A bare set name would pin this machine's cache path, so it is refused with the
    command that publishes it."""
    from docmill.messages import ModelsRef
    from docmill.storage import is_s3_uri, open_storage

    if is_s3_uri(ref):
        base, data = read_published_manifest(open_storage(ref, settings), ref)
        manifest = Manifest.model_validate_json(data)
        return ModelsRef(uri=base, version=manifest.version), manifest.name
    if not Path(ref).expanduser().exists():
        raise ModelSetError(f"--models {ref}: a distributed job needs its model set in shared storage; "
                            f"publish it (docmill models import --preset {ref} --publish s3://BUCKET/models) "
                            f"and pass --models s3://BUCKET/models/{ref}")
    folder = find_local_set(ref, settings.model_cache)
    if folder is None:
        raise ModelSetError(f"--models {ref}: not a published model set (s3://.../<set>, "
                            f"a set folder with {LATEST_FILE}, or a version folder)")
    manifest = Manifest.model_validate_json((folder / MANIFEST_FILE).read_bytes())
    return ModelsRef(uri=str(folder.resolve()), version=manifest.version), manifest.name
