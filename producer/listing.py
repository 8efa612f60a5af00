"""What a job has to do: the sources under the input prefix, in listing order, in chunks (the
enqueuer drops those whose result is already current: docmill.resultcheck).

Everything here streams: a listing of 100 million keys is read page by page and handed on a
chunk at a time, so the producer's memory does not grow with the size of the prefix.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from docmill.inputs import Include
from docmill.storage import ObjectRef, S3Storage, Storage

_LAST_MODIFIED = re.compile(rb"<LastModified>[^<]*</LastModified>")
T = TypeVar("T")


def iter_sources(storage: Storage, in_uri: str, include: Include,
                 start_after: str = "") -> Iterator[ObjectRef]:
    """Objects under `in_uri` that match `include`, in listing order, after `start_after`."""
    for ref in storage.iter_objects(in_uri, (), start_after=start_after):
        if include(ref.key):
            yield ref


def drop_last_modified(storage: Storage) -> None:
    """boto3 parses every listed object's LastModified with dateutil, the largest client-side
    cost of a listing (about two thirds of its CPU); nothing downstream reads it, so strip it
    from ListObjectsV2 responses before they are parsed. Registered once per client."""
    if isinstance(storage, S3Storage):
        storage.client.meta.events.register("before-parse.s3.ListObjectsV2", _strip_last_modified,
                                            unique_id="docmill-producer-strip-last-modified")


def _strip_last_modified(response_dict: dict[str, Any], **_: Any) -> None:
    body = response_dict.get("body")
    if isinstance(body, bytes):
        response_dict["body"] = _LAST_MODIFIED.sub(b"", body)


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """`items`, produced by a background thread up to `depth` ahead, so waiting for the next
    listing page overlaps with sending the tasks of the last one. An error in the thread is
    raised here; leaving the loop early stops the thread."""
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in items:
                if not _put(buffer, ("item", item), stop):
                    return
            _put(buffer, ("end", None), stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            _put(buffer, ("error", exc), stop)

    threading.Thread(target=fill, name="docmill-listing", daemon=True).start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def _put(buffer: queue.Queue[tuple[str, Any]], entry: tuple[str, Any], stop: threading.Event) -> bool:
    """Put unless the consumer has gone; False when it has."""
    while not stop.is_set():
        try:
            buffer.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def chunked(refs: Iterable[ObjectRef], size: int) -> Iterator[list[ObjectRef]]:
    """Consecutive groups of `size` references (the last may be shorter)."""
    chunk: list[ObjectRef] = []
    for ref in refs:
        chunk.append(ref)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


