"""Storage URIs: local folders and s3:// prefixes behind one small interface.

Callers never branch on the scheme: `open_storage(uri, settings)` picks the backend, and every
failure a caller must record in a result is a `StorageError` whose `code` is a result error
code (not_found, too_large, read_error). Listings stream, so a prefix with millions of objects
never sits in memory.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import takewhile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from docmill.inputs import is_input_name

if TYPE_CHECKING:
    from docmill.settings import Settings

S3_SCHEME = "s3://"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# Separators the local OS honours besides "/": a key segment holding one would escape its folder.
_LOCAL_SEPARATORS = frozenset({os.sep, os.altsep} - {None, "/"})
# Local write failures no retry cures: no permission, a file where a folder must be, a
# read-only or pseudo file system (/proc), a name too long.
_PERMANENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EROFS,
                               errno.ENAMETOOLONG, errno.ENOENT, errno.EEXIST})
# S3 error codes that say the request can never succeed as it stands.
_S3_PERMANENT = frozenset({"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId",
                           "SignatureDoesNotMatch", "InvalidBucketName", "AccountProblem"})
PROBE_PREFIX = "_docmill/probe-"
UPLOAD_PART_BYTES = 16 << 20  # a multipart upload's part; with UPLOAD_THREADS, what it holds at once
UPLOAD_THREADS = 4


class StorageError(Exception):
    """A storage failure; `code` is the docmill.result error code to record for it.
    `permanent` failures (a missing bucket, access denied, a path that can never be a file)
    will not be cured by retrying, so callers fail the affected items at once instead."""

    code: str = "read_error"
    permanent: bool = False

    def __init__(self, message: str, code: str | None = None, permanent: bool | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if permanent is not None:
            self.permanent = permanent


class ObjectNotFound(StorageError):
    code = "not_found"
    permanent = True


class ObjectTooLarge(StorageError):
    code = "too_large"
    permanent = True


@dataclass(frozen=True)
class ObjectRef:
    """One listed object. `key` is relative to the listing root, '/'-separated."""

    uri: str
    key: str
    size: int | None = None
    etag: str | None = None


class Storage(Protocol):
    """What the runner and workers need from a place that holds images and results."""

    def iter_objects(self, root_uri: str, suffixes: tuple[str, ...],
                     start_after: str = "") -> Iterator[ObjectRef]: ...

    def read_bytes(self, uri: str, max_bytes: int | None = None) -> bytes: ...

    def read_into(self, uri: str, target: BinaryIO, max_bytes: int | None = None) -> int:
        """Copy the object into `target` in chunks (a document need not fit in memory);
        returns its size."""
        ...

    def read_start(self, uri: str, count: int) -> bytes:
        """The object's first `count` bytes (all of it when shorter): enough to tell what it
        is without fetching the rest."""
        ...

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/json",
                    metadata: dict[str, str] | None = None) -> None: ...

    def write_from(self, uri: str, source: BinaryIO, content_type: str,
                   metadata: dict[str, str] | None = None) -> None:
        """Write what `source` holds from where it stands to its end, read in chunks: a
        searchable PDF as large as its scan is never whole in memory."""
        ...

    def exists(self, uri: str) -> bool: ...

    def head(self, uri: str) -> ObjectRef: ...

    def delete(self, uri: str) -> None: ...


# --- URIs ---------------------------------------------------------------------------------


def is_s3_uri(uri: str) -> bool:
    return uri[: len(S3_SCHEME)].lower() == S3_SCHEME


def split_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/some/key -> ("bucket", "some/key"); the key may be empty (whole bucket)."""
    if not is_s3_uri(uri):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI without a bucket: {uri!r}")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"invalid bucket name {bucket!r} in {uri!r}")
    return bucket, key


def _local_path(uri: str) -> Path:
    """A local path; a URI of another scheme is a caller's mistake that must not silently
    become a folder named 'gs:'."""
    if _SCHEME.match(uri):
        raise ValueError(f"unsupported storage scheme in {uri!r} (use a path or s3://)")
    return Path(uri)


def join_uri(root: str, rel: str) -> str:
    """`rel` ('/'-separated, already safe) under `root`, for a local folder or an s3 prefix."""
    rel = rel.lstrip("/")
    if is_s3_uri(root):
        bucket, prefix = split_s3_uri(root)
        prefix = prefix.rstrip("/")
        return f"{S3_SCHEME}{bucket}/{prefix + '/' if prefix else ''}{rel}"
    return os.path.join(root, *rel.split("/"))


def is_text(uri: str) -> bool:
    """False for a local path whose bytes are not UTF-8 (lone surrogates in Python's str)."""
    try:
        uri.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(uri: str) -> str:
    """A path as its bytes would print, undecodable ones escaped (\\xff), for messages."""
    return os.fsencode(uri).decode("utf-8", "backslashreplace") if not is_text(uri) else uri


def _safe_key(key: str, local: bool) -> str:
    """`key` as '/'-joined segments that cannot leave their root.

    Empty and '.' segments (leading slashes, '//') are dropped, as a path means the same
    without them. '..' is refused: resolving it would map 'a/../b' onto the real 'a/b', and
    dropping it would invent a folder. Backslashes are plain characters on S3 and on POSIX;
    where the OS treats them as separators they are refused. A local name in bytes that are not
    UTF-8 (Python holds them as lone surrogates) is refused: JSON and task messages carry text.
    """
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if not parts:
        raise ValueError(f"key {key!r} names no object")
    if not is_text(key):
        raise ValueError(f"name '{printable(key)}' is not UTF-8, so no result can name its source; rename it")
    for part in parts:
        if part == "..":
            raise ValueError(f"key {key!r} has a '..' segment")
        if "\0" in part:
            raise ValueError(f"key {key!r} contains a NUL character")
        if local and any(sep in part for sep in _LOCAL_SEPARATORS):
            raise ValueError(f"key {key!r} contains a path separator of this OS")
    return "/".join(parts)


def key_under(root: str, uri: str) -> str | None:
    """`uri`'s '/'-separated key below `root` (a local folder or an s3 prefix), or None when it
    does not lie below it. Local paths are compared made absolute, so 'out' and './out' agree."""
    if is_s3_uri(root) != is_s3_uri(uri):
        return None
    if is_s3_uri(root):
        (bucket, prefix), (uri_bucket, key) = split_s3_uri(root), split_s3_uri(uri)
        prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        return key[len(prefix):] if bucket == uri_bucket and key.startswith(prefix) and key != prefix else None
    base, path = os.path.abspath(root), os.path.abspath(uri)
    if path == base or not path.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return Path(os.path.relpath(path, base)).as_posix()


def written_by_docmill(out_root: str, uri: str) -> bool:
    """Whether `uri` is a file docmill wrote into `out_root` for an input: every result is named
    after its input (OUT/<rel>.json, .pdf, .png) or lies in a document's folder
    (OUT/<rel>/page-0001.json). Where --out lies in the input folder, a second run would
    otherwise read the first run's searchable PDFs and pictures as new inputs."""
    key = key_under(out_root, uri)
    if key is None:
        return False
    *folders, name = key.split("/")
    return is_input_name(name.rsplit(".", 1)[0] if "." in name else "") or any(map(is_input_name, folders))


def result_uri(out_root: str, key: str) -> str:
    """Where the result for `key` goes: OUT/<key>.json (a/b.jpg -> OUT/a/b.jpg.json), never
    outside `out_root`. Raises ValueError for a key that cannot be made safe."""
    return join_uri(out_root, _safe_key(key, local=not is_s3_uri(out_root)) + ".json")


def _matches(name: str, suffixes: tuple[str, ...]) -> bool:
    """Case-insensitive suffix test; no suffixes means every object."""
    return not suffixes or name.lower().endswith(tuple(s.lower() for s in suffixes))


def iter_between(storage: Storage, folder_uri: str, suffixes: tuple[str, ...], first: str,
                 last: str) -> Iterator[ObjectRef]:
    """The objects directly in `folder_uri` whose names sort from `first` to `last`, both
    included, in that order. The listing starts just before `first` and stops past `last`
    (StartAfter on S3, a pruned walk here), so a slice of a large folder lists none of the rest."""
    listed = storage.iter_objects(folder_uri, suffixes, start_after=first[:-1])
    return (ref for ref in takewhile(lambda ref: ref.key <= last, listed) if ref.key >= first and "/" not in ref.key)


_COPY_CHUNK = 1 << 20


def _read_whole(storage: Storage, uri: str, max_bytes: int | None) -> bytes:
    buffer = io.BytesIO()
    storage.read_into(uri, buffer, max_bytes)
    return buffer.getvalue()


def _copy_capped(uri: str, source: Any, target: BinaryIO, max_bytes: int | None) -> int:
    """Copy chunk by chunk, refusing (ObjectTooLarge) as soon as more than max_bytes came."""
    size = 0
    while chunk := source.read(_COPY_CHUNK):
        size += len(chunk)
        _check_size(uri, size, max_bytes)
        target.write(chunk)
    return size


# --- local ----------------------------------------------------------------------------------


class LocalStorage:
    """Plain files. Writes are atomic (temp file + os.replace), so a reader never sees half a
    result, even when a worker dies mid-write. Content type and metadata are not stored."""

    def iter_objects(self, root_uri: str, suffixes: tuple[str, ...],
                     start_after: str = "") -> Iterator[ObjectRef]:
        """Files under the folder, recursively, in sorted order (folders one by one, so a
        huge tree is never listed at once). A root that is a file yields just that file,
        whatever its suffix: a file named explicitly is never skipped in silence.
        `start_after` (a key this listing yielded) resumes after that key, in this order."""
        root = _local_path(root_uri)
        if root.is_file():
            if not start_after:
                st = root.stat()
                yield ObjectRef(str(root), root.name, st.st_size, local_etag(st))
            return
        if not root.is_dir():
            raise ObjectNotFound(f"{root_uri}: no such file or folder")
        after = _walk_order(start_after) if start_after else ()
        for dirpath, dirnames, filenames in os.walk(root):
            rel = Path(dirpath).relative_to(root).as_posix()
            here = tuple((1, part) for part in rel.split("/") if part not in ("", "."))
            # Prune folders that lie wholly before the cursor, so a resume does not re-walk them.
            dirnames[:] = [d for d in sorted(dirnames) if not _wholly_before(here + ((1, d),), after)]
            for name in sorted(filenames):
                if _matches(name, suffixes) and here + ((0, name),) > after:
                    yield self._ref(root, Path(dirpath) / name)

    @staticmethod
    def _ref(root: Path, path: Path) -> ObjectRef:
        key = path.relative_to(root).as_posix()
        try:
            st = path.stat()
        except OSError:  # vanished or a dangling link: reading it will report the error
            return ObjectRef(str(path), key)
        return ObjectRef(str(path), key, st.st_size, local_etag(st))

    def read_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        return _read_whole(self, uri, max_bytes)

    def read_into(self, uri: str, target: BinaryIO, max_bytes: int | None = None) -> int:
        path = _local_path(uri)
        try:
            with path.open("rb") as f:
                _check_size(uri, os.fstat(f.fileno()).st_size, max_bytes)
                return _copy_capped(uri, f, target, max_bytes)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{uri}: no such file") from exc
        except OSError as exc:
            raise StorageError(f"{uri}: {type(exc).__name__}: {exc}") from exc

    def read_start(self, uri: str, count: int) -> bytes:
        try:
            with _local_path(uri).open("rb") as f:
                return f.read(count)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{uri}: no such file") from exc
        except OSError as exc:
            raise StorageError(f"{uri}: {type(exc).__name__}: {exc}") from exc

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/json",
                    metadata: dict[str, str] | None = None) -> None:
        self._write(uri, lambda f: f.write(data))

    def write_from(self, uri: str, source: BinaryIO, content_type: str,
                   metadata: dict[str, str] | None = None) -> None:
        self._write(uri, lambda f: shutil.copyfileobj(source, f, _COPY_CHUNK))

    @staticmethod
    def _write(uri: str, fill: Callable[[BinaryIO], object]) -> None:
        """A whole file or none: `fill` writes a temporary beside it, which then replaces it."""
        path = _local_path(uri)
        tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")  # not from the name: that may be at NAME_MAX
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # os.open with 0o666 keeps the umask's permissions (mkstemp would force 0600).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as f:
                fill(f)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):  # under a file, even the unlink fails
                tmp.unlink(missing_ok=True)
            raise StorageError(f"{uri}: {type(exc).__name__}: {exc}", code="write_error",
                               permanent=exc.errno in _PERMANENT_ERRNOS) from exc

    def exists(self, uri: str) -> bool:
        return _local_path(uri).is_file()

    def delete(self, uri: str) -> None:
        _local_path(uri).unlink(missing_ok=True)

    def head(self, uri: str) -> ObjectRef:
        path = _local_path(uri)
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{uri}: no such file") from exc
        except OSError as exc:
            raise StorageError(f"{uri}: {type(exc).__name__}: {exc}") from exc
        if not path.is_file():
            raise StorageError(f"{uri}: not a file")
        return ObjectRef(uri, path.name, st.st_size, local_etag(st))


def local_etag(st: os.stat_result) -> str:
    """A local file's stand-in for an S3 ETag: its size and modification time (in ns), as web
    servers tag static files. A result records its source's ETag, and --skip-existing redoes
    a source whose ETag changed; without one, a page rescanned in place kept its old result.
    Reading every file to hash it would double a listing's I/O; a touched but unchanged file
    is only redone."""
    return f"{st.st_size:x}-{st.st_mtime_ns:x}"


def _walk_order(key: str) -> tuple[tuple[int, str], ...]:
    """A sort key matching LocalStorage's listing order: in each folder, its files (by name)
    come before its subfolders (by name)."""
    parts = key.split("/")
    return tuple((1, part) for part in parts[:-1]) + ((0, parts[-1]),)


def _wholly_before(folder: tuple[tuple[int, str], ...], after: tuple[tuple[int, str], ...]) -> bool:
    """Whether every key under `folder` sorts at or before the cursor `after`."""
    return bool(after) and folder < after[: len(folder)]


def _check_size(uri: str, size: int | None, max_bytes: int | None) -> None:
    if max_bytes is not None and size is not None and size > max_bytes:
        raise ObjectTooLarge(f"{uri}: {size} bytes exceeds the limit of {max_bytes}")


# --- S3 -------------------------------------------------------------------------------------


class S3Storage:
    """S3 and S3-compatible servers (MinIO, Ceph, moto) through one boto3 client.

    Credentials come from the standard AWS chain (environment, profile, instance role).
    """

    def __init__(self, endpoint_url: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {"retries": {"max_attempts": 5, "mode": "standard"}}
        if endpoint_url:
            # Self-hosted servers rarely resolve bucket.host names, and older ones reject the
            # default CRC checksums boto3 >= 1.36 adds to every upload.
            options.update(s3={"addressing_style": "path"},
                           request_checksum_calculation="when_required",
                           response_checksum_validation="when_required")
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, config=Config(**options))
        self._retries = 0
        self._retries_lock = threading.Lock()
        self.client.meta.events.register("after-call.s3", self._count_retries)

    def _count_retries(self, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        """botocore retries throttling, 5xx and resets inside one call; each call's
        response says how many times (RetryAttempts), failed calls included."""
        attempts = ((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts", 0)
        if attempts:
            with self._retries_lock:
                self._retries += attempts

    @property
    def retries(self) -> int:
        """Requests this client re-sent since it was made."""
        with self._retries_lock:
            return self._retries

    def iter_objects(self, root_uri: str, suffixes: tuple[str, ...],
                     start_after: str = "") -> Iterator[ObjectRef]:
        """Objects under the prefix, page by page (ListObjectsV2), in key order. A root naming
        one object yields that object; otherwise the root is a folder: 's3://b/imgs' lists
        'imgs/...' but not 'imgs2/...'. `start_after` (a key this listing yielded) resumes
        after that key: the server skips what precedes it (StartAfter)."""
        bucket, key = split_s3_uri(root_uri)
        if key and not key.endswith("/"):
            single = self._head_or_none(bucket, key, root_uri)
            if single is not None:
                if not start_after:
                    yield single
                return
            key += "/"
        params = {"Bucket": bucket, "Prefix": key}
        if start_after:
            params["StartAfter"] = key + start_after
        pages = self.client.get_paginator("list_objects_v2").paginate(**params)
        try:
            for page in pages:
                for obj in page.get("Contents", ()):
                    name = obj["Key"]
                    if not name.endswith("/") and _matches(name, suffixes):
                        yield ObjectRef(f"{S3_SCHEME}{bucket}/{name}", name[len(key):],
                                        obj.get("Size"), _etag(obj.get("ETag")))
        except Exception as exc:  # noqa: BLE001 - botocore raises many unrelated classes
            raise _s3_error(exc, root_uri) from exc

    def _head_or_none(self, bucket: str, key: str, uri: str) -> ObjectRef | None:
        try:
            return self._head(bucket, key, uri)
        except ObjectNotFound:
            return None

    def _head(self, bucket: str, key: str, uri: str) -> ObjectRef:
        try:
            resp = self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            raise _s3_error(exc, uri) from exc
        return ObjectRef(uri, key.rsplit("/", 1)[-1], resp.get("ContentLength"), _etag(resp.get("ETag")))

    def read_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        return _read_whole(self, uri, max_bytes)

    def read_into(self, uri: str, target: BinaryIO, max_bytes: int | None = None) -> int:
        """An oversized object is refused from its Content-Length, before its body is read."""
        bucket, key = split_s3_uri(uri)
        try:
            resp = self.client.get_object(Bucket=bucket, Key=key)
            body = resp["Body"]
            try:
                _check_size(uri, resp.get("ContentLength"), max_bytes)
                return _copy_capped(uri, body, target, max_bytes)
            finally:
                body.close()
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _s3_error(exc, uri) from exc

    def read_start(self, uri: str, count: int) -> bytes:
        """A ranged GET; an empty object, which has no byte 0 to range over (416), is b""."""
        bucket, key = split_s3_uri(uri)
        try:
            body = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{count - 1}")["Body"]
            try:
                return body.read(count)
            finally:
                body.close()
        except Exception as exc:  # noqa: BLE001
            if _s3_code(exc) == "InvalidRange":
                return b""
            raise _s3_error(exc, uri) from exc

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/json",
                    metadata: dict[str, str] | None = None) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type,
                                   Metadata=metadata or {})
        except Exception as exc:  # noqa: BLE001
            raise _s3_write_error(exc, uri) from exc

    def write_from(self, uri: str, source: BinaryIO, content_type: str,
                   metadata: dict[str, str] | None = None) -> None:
        """In parts (a multipart upload past one part's size), so an object may pass the 5 GB
        a single PUT can hold; a failed upload's parts are aborted, not left behind."""
        from boto3.s3.transfer import TransferConfig

        bucket, key = split_s3_uri(uri)
        try:
            self.client.upload_fileobj(source, bucket, key, ExtraArgs={"ContentType": content_type,
                                                                       "Metadata": metadata or {}},
                                       Config=TransferConfig(multipart_threshold=UPLOAD_PART_BYTES,
                                                             multipart_chunksize=UPLOAD_PART_BYTES,
                                                             max_concurrency=UPLOAD_THREADS))
        except Exception as exc:  # noqa: BLE001
            raise _s3_write_error(exc, uri) from exc

    def delete(self, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            raise _s3_write_error(exc, uri) from exc

    def exists(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        return self._head_or_none(bucket, key, uri) is not None

    def head(self, uri: str) -> ObjectRef:
        bucket, key = split_s3_uri(uri)
        return self._head(bucket, key, uri)


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


def _s3_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError ('403' when only the status is known), or
    of the ClientError behind boto3's S3UploadFailedError."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError

    if isinstance(exc, S3UploadFailedError) and exc.__context__ is not None:
        return _s3_code(exc.__context__)
    if not isinstance(exc, ClientError):
        return None
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = exc.response.get("Error", {}).get("Code")
    return "AccessDenied" if status == 403 and code in (None, "403", "Forbidden") else code or str(status)


def _s3_write_error(exc: Exception, uri: str) -> StorageError:
    return StorageError(f"{uri}: {type(exc).__name__}: {exc}", code="write_error",
                        permanent=_s3_code(exc) in _S3_PERMANENT)


def _s3_error(exc: Exception, uri: str) -> StorageError:
    """Map a botocore failure on a read to a StorageError; a 404 of any kind is not_found,
    access denied is a permanent `access_denied`, anything else a retryable read_error."""
    from botocore.exceptions import ClientError

    code = _s3_code(exc)
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket", "NotFound", "404"):
            return ObjectNotFound(f"{uri}: not found ({code})")
    if code in _S3_PERMANENT:
        return StorageError(f"{uri}: access denied ({code})", code="access_denied", permanent=True)
    return StorageError(f"{uri}: {type(exc).__name__}: {exc}")


# --- choosing -------------------------------------------------------------------------------


_LOCAL = LocalStorage()


_S3_CLIENTS: dict[str | None, S3Storage] = {}
_S3_CLIENTS_LOCK = threading.Lock()


def _s3_storage(endpoint_url: str | None) -> S3Storage:
    """One client per endpoint: clients are thread-safe and costly to build (~50 ms)."""
    with _S3_CLIENTS_LOCK:
        if endpoint_url not in _S3_CLIENTS:
            _S3_CLIENTS[endpoint_url] = S3Storage(endpoint_url)
        return _S3_CLIENTS[endpoint_url]


def s3_retries() -> int:
    """Requests this process's S3 clients re-sent (boto3's own retries), for the metrics."""
    with _S3_CLIENTS_LOCK:
        clients = list(_S3_CLIENTS.values())
    return sum(client.retries for client in clients)


def probe_writable(out_root: str, settings: Settings) -> None:
    """Write and delete a small object under `out_root`, so an output that can never take a
    result (a missing bucket, no permission, a file or /proc path) is found before any work
    rather than after it. Raises StorageError with what went wrong."""
    storage = open_storage(out_root, settings)
    probe = join_uri(out_root, f"{PROBE_PREFIX}{uuid.uuid4().hex}")
    created = [] if is_s3_uri(out_root) else _missing_folders(Path(probe).parent)
    try:
        storage.write_bytes(probe, b"docmill write probe\n", "text/plain")
        storage.delete(probe)
    finally:
        for folder in created:  # deepest first: a probe leaves no trace behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def require_writable(out_root: str, settings: Settings, flag: str = "--out", what: str = "results") -> None:
    """`probe_writable` as the one line a command stops with (exit 2) before any work:
    `docmill run` and `docmill produce` for their --out, the model commands for --publish."""
    from docmill.errors import UsageError

    try:
        probe_writable(out_root, settings)
    except (StorageError, ValueError) as exc:
        raise UsageError(f"{flag} {out_root}: cannot write {what} there ({str(exc).splitlines()[0]})") from exc


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def open_storage(uri: str, settings: Settings) -> Storage:
    """The backend for `uri`'s scheme: s3:// or a local path."""
    if is_s3_uri(uri):
        return _s3_storage(settings.s3_endpoint_url)
    _local_path(uri)  # refuse unknown schemes here rather than at first use
    return _LOCAL
