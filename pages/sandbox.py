"""The render child: one process per open PDF, where pdfium parses and renders under a
wall-clock and an address-space limit, so that a hostile page costs one page, not the worker.

Why a process: pdfium cannot be interrupted from outside, and it answers allocation failure by
aborting. Why a fresh interpreter (`python -m pages.sandbox`) rather than a forked
one: the worker may hold ONNXRuntime/CUDA threads, which `fork` would copy half-alive; and
unlike multiprocessing's spawn/forkserver it does not re-import the caller's main module in the
child (350 ms for the CLI's) nor touch process-wide multiprocessing state. It starts in about
85 ms, paid once per open document and once after each page that had to be cut off.

Protocol, over one socket pair with multiprocessing's message framing: the child says "ready"
once imported; the parent sends the limits and then the document's bytes or its path; the child sets its
memory limit, opens the PDF and answers with the page count; then each request `(op, index)`
gets `("ok", value)` or `("error", DocumentError)`. A render's "ok" is followed by a memfd
(passed with SCM_RIGHTS) that pdfium drew the page's BGR bytes straight into, and that the
parent maps: the pixels are never copied, where sending them through the socket copied them
three times over (about twice the overhead, measured with bench/pdf_dpi.py). Nothing here
imports numpy or OpenCV. Linux only (memfd, /proc).
"""

from __future__ import annotations

import errno
import mmap
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

from pages.document import DocumentError, PageInfo, PageLimits, held_descriptor

_START_TIMEOUT_S = 30.0  # an interpreter's imports under load; the document has no part in it
_PARENT_CHECK_S = 1.0
_MEMORY_SIGNALS = frozenset({signal.SIGABRT, signal.SIGKILL})  # pdfium's bad_alloc; the OOM killer

# pages.pdf (pypdfium2) is imported by the child alone: the parent only talks to it.
_QUERIES = {"info": "page_info", "lines": "embedded_lines"}


class RenderChild:
    """One PDF held open in a child process. A page that runs out of time or memory ends the
    child; the next request starts a fresh one (re-sending the bytes), so the document stays
    usable. One thread at a time, like the Document that owns it: the pipe carries one exchange.
    """

    def __init__(self, source: bytes | str, limits: PageLimits) -> None:
        self._source, self._limits = source, limits
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._finalizer: weakref.finalize | None = None
        try:
            self.page_count: int = self._start()
        except BaseException:
            self.close()
            raise

    def query(self, op: str, index: int) -> Any:
        """A page's info ("info") or embedded lines ("lines"), under the page time limit."""
        return self._exchange((op, index), index, receive_pixels=False)[0]

    def render(self, index: int) -> tuple[PageInfo, mmap.mmap]:
        """A page's info and its packed BGR bytes (height * width * 3), mapped from the page file
        the child drew into (once the child has closed it, this mapping is its only holder)."""
        return self._exchange(("render", index), index, receive_pixels=True)

    def close(self) -> None:
        """Ends the child now (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()
        self._proc = self._conn = self._finalizer = None

    def _exchange(self, request: tuple[str, int], index: int, receive_pixels: bool) -> tuple[Any, Any]:
        if self._conn is None:
            self._start()
        deadline = time.monotonic() + self._limits.render_timeout_s
        self._connection().send(request)
        value = self._reply(deadline, index)
        if not receive_pixels:
            return value, None
        self._wait(deadline, index)
        page_file = reduction.recv_handle(self._connection())
        try:
            return value, mmap.mmap(page_file, value.width * value.height * 3)
        finally:
            os.close(page_file)

    def _connection(self) -> Connection:
        assert self._conn is not None, "the render child is closed"
        return self._conn

    def _start(self) -> int:
        """A fresh child with the document open; its page count."""
        ours, theirs = socket.socketpair()
        inherited, path = _inherited_file(self._source)
        with ours, theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pages.sandbox", str(theirs.fileno())],
                pass_fds=(theirs.fileno(), *inherited), stdin=subprocess.DEVNULL, stdout=2)  # stdout stays ours
            self._conn = Connection(ours.detach())
        self._finalizer = weakref.finalize(self, _end, self._proc, self._conn)
        self._wait_ready()
        self._conn.send(self._limits)
        if isinstance(self._source, bytes):
            self._conn.send(("bytes", None))
            self._conn.send_bytes(self._source)
        else:  # a path: pdfium reads the file as it needs it, so the document is never held whole
            self._conn.send(("path", path))
        return self._reply(time.monotonic() + self._limits.render_timeout_s, None)

    def _wait_ready(self) -> None:
        """The child's "ready": failing that, the fault is this machine's, not the document's."""
        try:
            if self._connection().poll(_START_TIMEOUT_S):
                self._connection().recv()
                return
            problem = f"did not start within {_START_TIMEOUT_S:.0f} s"
        except (EOFError, OSError):
            problem = f"exited at start ({self._proc.wait() if self._proc else None}); see its stderr"
        self.close()
        raise RuntimeError(f"the render child {problem}")

    def _reply(self, deadline: float, index: int | None) -> Any:
        self._wait(deadline, index)
        try:
            status, value = self._connection().recv()
        except (EOFError, OSError):
            raise self._died(index) from None
        if status == "error":
            raise value
        return value

    def _wait(self, deadline: float, index: int | None) -> None:
        """Until the child has something to say; past the deadline it is killed."""
        if not self._connection().poll(max(0.0, deadline - time.monotonic())):
            self.close()
            raise DocumentError("render_timeout",
                                f"{_what(index)}: cut off after {self._limits.render_timeout_s:g} s", index)

    def _died(self, index: int | None) -> DocumentError:
        """The child's death as a coded error: an abort or SIGKILL is memory, anything else a crash."""
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self.close()
        sig = signal.Signals(-code) if code is not None and code < 0 else None
        if sig in _MEMORY_SIGNALS:
            return DocumentError("render_memory", f"{_what(index)}: the renderer was stopped ({sig.name}) "
                                 f"past its {self._limits.render_memory_mb} MB memory limit", index)
        how = f"crashed ({sig.name})" if sig else f"exited ({code})"
        return DocumentError("decode_error", f"{_what(index)}: the renderer {how}", index)


def _inherited_file(source: bytes | str) -> tuple[tuple[int, ...], bytes | str]:
    """A file the caller holds only by descriptor (/proc/<our pid>/fd/N, a spooled copy with no
    name) is handed to the child as that descriptor, opened there as /proc/self/fd/N: the child
    then needs no access to another process's /proc entries, which hardened hosts refuse."""
    fd = held_descriptor(source) if isinstance(source, str) else None
    return ((), source) if fd is None else ((fd,), f"/proc/self/fd/{fd}")


def _what(index: int | None) -> str:
    return "opening the PDF" if index is None else f"page {index + 1}"


def _end(proc: subprocess.Popen[bytes], conn: Connection) -> None:
    conn.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# ---- in the child ----------------------------------------------------------------------------


def _serve(conn: Connection) -> None:
    """The child's life: set up, open the document, answer requests until the pipe closes."""
    _watch_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends us
    conn.send(("ok", "ready"))
    limits: PageLimits = conn.recv()
    how, path = conn.recv()
    data = conn.recv_bytes() if how == "bytes" else path
    _limit_address_space(limits.render_memory_mb)
    from pages import pdf

    try:
        document = pdf.open_pdf(data)
    except DocumentError as exc:
        conn.send(("error", exc))
        return
    conn.send(("ok", len(document)))
    while True:
        try:
            op, index = conn.recv()
        except EOFError:
            return
        _answer(conn, document, limits, op, index)


def _answer(conn: Connection, document: Any, limits: PageLimits, op: str, index: int) -> None:
    """One request; every failure is sent back as a DocumentError for that page."""
    try:
        if op == "render":
            info, page_file = _render_to_file(document, index, limits)
            conn.send(("ok", info))
            reduction.send_handle(conn, page_file, os.getppid())
            os.close(page_file)
        else:
            from pages import pdf

            conn.send(("ok", getattr(pdf, _QUERIES[op])(document, index, limits)))
    except DocumentError as exc:
        conn.send(("error", exc))
    except MemoryError:
        conn.send(("error", DocumentError("render_memory", f"page {index + 1}: out of memory", index)))
    except Exception as exc:  # noqa: BLE001 - a page's failure is that page's result
        conn.send(("error", DocumentError("decode_error", f"page {index + 1}: {type(exc).__name__}: {exc}", index)))


def _render_to_file(document: Any, index: int, limits: PageLimits) -> tuple[PageInfo, int]:
    """The page rendered straight into an anonymous in-memory file, to hand to the parent."""
    page_file = os.memfd_create(f"docmill-page-{index + 1}", os.MFD_CLOEXEC)

    def allocate(size: int) -> mmap.mmap:
        try:
            os.ftruncate(page_file, size)
            return mmap.mmap(page_file, size)
        except OSError as exc:
            if exc.errno == errno.ENOMEM:  # past the address-space limit
                raise MemoryError(f"{size} bytes for the page bitmap") from exc
            raise

    from pages import pdf

    try:
        info, mapped = pdf.render(document, index, limits, allocate)
        mapped.close()
    except BaseException:
        os.close(page_file)
        raise
    return info, page_file


def _watch_parent() -> None:
    """Exits when the parent is gone, even in the middle of a render (pdfium runs without the
    GIL under ctypes): a render stuck in a hostile page never outlives the worker."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _limit_address_space(memory_mb: int) -> None:
    """Address space capped at what the child holds now (interpreter, pdfium, the document's
    bytes) plus memory_mb: pdfium's allocations past it fail, and the child aborts or raises."""
    limit = _address_space_bytes() + (memory_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _address_space_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) << 10
    raise RuntimeError("no VmSize in /proc/self/status")


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
