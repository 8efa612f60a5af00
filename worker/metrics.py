"""Worker metrics in Prometheus' text format, served on `--metrics-port` (no dependency:
the format is a few lines of text)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from docmill.storage import s3_retries

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    """Counters and the batch-size histogram, thread-safe."""

    def __init__(self, storage_retries: Callable[[], int] = s3_retries) -> None:
        self._lock = threading.Lock()
        self._storage_retries = storage_retries  # boto3 retries inside a call, read at render
        self.items: Counter = Counter()  # outcome -> count (ok, or an error code)
        self.batch_sizes: Counter = Counter()
        self.retries: Counter = Counter()  # what was retried (storage_write, ...)
        self.tasks: Counter = Counter()  # done, redelivered, rejected

    def observe_batch(self, size: int) -> None:
        with self._lock:
            self.batch_sizes[size] += 1

    def count(self, counter: str, key: str, n: int = 1) -> None:
        with self._lock:
            getattr(self, counter)[key] += n

    def histogram(self) -> dict[int, int]:
        with self._lock:
            return dict(sorted(self.batch_sizes.items()))

    def render(self) -> str:
        storage_requests = self._storage_retries()
        with self._lock:
            lines = ["# TYPE docmill_items_total counter"]
            lines += [f'docmill_items_total{{outcome="{k}"}} {v}' for k, v in sorted(self.items.items())]
            lines.append("# TYPE docmill_tasks_total counter")
            lines += [f'docmill_tasks_total{{event="{k}"}} {v}' for k, v in sorted(self.tasks.items())]
            lines.append("# TYPE docmill_retries_total counter")
            retries = {**self.retries, "storage_request": storage_requests}
            lines += [f'docmill_retries_total{{what="{k}"}} {v}' for k, v in sorted(retries.items())]
            lines.append("# TYPE docmill_batch_size histogram")
            for bucket in BATCH_BUCKETS:
                total_le = sum(v for k, v in self.batch_sizes.items() if k <= bucket)
                lines.append(f'docmill_batch_size_bucket{{le="{bucket}"}} {total_le}')
            total = sum(self.batch_sizes.values())
            lines.append(f'docmill_batch_size_bucket{{le="+Inf"}} {total}')
            lines.append(f"docmill_batch_size_sum {sum(k * v for k, v in self.batch_sizes.items())}")
            lines.append(f"docmill_batch_size_count {total}")
        return "\n".join(lines) + "\n"


def serve(metrics: Metrics, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve /metrics on a daemon thread; returns the server (its port if 0 was asked)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") != "/metrics":
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="docmill-metrics", daemon=True).start()
    return server
