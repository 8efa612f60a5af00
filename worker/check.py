"""`docmill worker --check`: can this worker do its job here, now?

Container health checks and operators call this instead of starting Celery. A worker whose
broker, object storage or execution provider is wrong still starts and then fails task by task
(or waits on the broker forever), so each is tried for real: a PING on the broker, a HEAD on
the published model set (or a bucket listing on the configured endpoint), and a session on the
requested device. One line per check, with advice on failure; exit 0 only when all pass.
Timeouts are short because a health check that hangs is worse than one that fails.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from docmill.settings import Settings, mask_url
from docmill.storage import is_s3_uri, join_uri, split_s3_uri

TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Outcome:
    """One check's verdict; `detail` is shown to operators, so it never holds a secret."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.name:<10}{'OK' if self.ok else 'FAIL':<5}{self.detail}"


def check_broker(settings: Settings) -> Outcome:
    """PING through the same client the job store uses, with short socket timeouts."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from docmill.jobs import connect

    url = settings.broker_url.get_secret_value()
    shown = mask_url(url)
    try:
        client = connect(url)
        client.connection_pool.connection_kwargs.update(  # one try: the caller decides about more
            socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S, retry_on_timeout=False,
            retry=Retry(NoBackoff(), 0))
        client.ping()
    except redis.AuthenticationError as exc:
        return Outcome("broker", False, f"{shown}: {_first_line(exc)}; Redis refused the "
                       "credentials in DOCMILL_BROKER_URL: make them match its requirepass or ACL")
    except (redis.RedisError, OSError, ValueError) as exc:
        return Outcome("broker", False, f"{shown}: {_first_line(exc)}; is Redis running and "
                       "reachable, and is DOCMILL_BROKER_URL right?")
    return Outcome("broker", True, f"{shown} answers PING")


def check_storage(settings: Settings) -> Outcome:
    """The published model set when DOCMILL_MODELS is s3://, else the endpoint itself."""
    endpoint = settings.s3_endpoint_url
    where = f"endpoint {mask_url(endpoint)}" if endpoint else "AWS S3"
    if not is_s3_uri(settings.models) and not endpoint:
        return Outcome("storage", True, f"nothing to reach: DOCMILL_MODELS={settings.models} is "
                       "local and DOCMILL_S3_ENDPOINT_URL is unset")
    try:
        client = _s3_client(endpoint)
        if is_s3_uri(settings.models):
            return _check_model_set(client, settings.models, where)
        count = len(client.list_buckets().get("Buckets", []))
        return Outcome("storage", True, f"{where} answers ({count} buckets visible)")
    except Exception as exc:  # noqa: BLE001 - botocore raises many unrelated classes
        return Outcome("storage", False, _storage_advice(exc, where))


def _check_model_set(client: Any, uri: str, where: str) -> Outcome:
    """A set URI (LATEST) or a version URI (manifest.json): HEAD, never a download."""
    bucket, key = split_s3_uri(uri.rstrip("/"))
    missing = []
    for name in ("LATEST", "manifest.json"):
        try:
            client.head_object(Bucket=bucket, Key=split_s3_uri(join_uri(uri, name))[1])
            return Outcome("storage", True, f"{uri} on {where}: {name} found")
        except Exception as exc:  # noqa: BLE001
            if _status(exc) != 404:
                raise
            missing.append(name)
    return Outcome("storage", False, f"{uri} on {where}: no {' nor '.join(missing)}; publish the "
                   "set first (docmill convert --preset ... --publish s3://.../sets) or fix DOCMILL_MODELS")


def _s3_client(endpoint: str | None) -> Any:
    """A client like docmill.storage's (path-style for self-hosted servers) but with one
    attempt and short timeouts, so a dead endpoint fails in seconds."""
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {"connect_timeout": TIMEOUT_S, "read_timeout": TIMEOUT_S,
                               "retries": {"max_attempts": 1, "mode": "standard"}}
    if endpoint:
        options["s3"] = {"addressing_style": "path"}
    return boto3.session.Session().client("s3", endpoint_url=endpoint or None, config=Config(**options))


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _storage_advice(exc: Exception, where: str) -> str:
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    status = _status(exc)
    if isinstance(exc, EndpointConnectionError):
        return f"cannot connect to {where}; is the S3 server up and DOCMILL_S3_ENDPOINT_URL right?"
    if isinstance(exc, NoCredentialsError):
        return f"{where}: no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if status in (401, 403):
        return f"{where}: access denied ({status}); check the AWS credentials and the bucket policy"
    if status == 404:
        return f"{where}: bucket not found; create it or fix DOCMILL_MODELS"
    return f"{where}: {type(exc).__name__}: {_first_line(exc)}"


def check_providers(device: str) -> Outcome:
    """The providers a session really loads for the device, as the engine will pick them."""
    from worker.engine.providers import DeviceUnavailable, resolve_providers

    try:
        providers = resolve_providers(device)
    except DeviceUnavailable as exc:
        return Outcome("providers", False, _first_line(exc))
    return Outcome("providers", True, f"device {device}: {', '.join(providers)}")


def run_checks(settings: Settings, device: str, gpus: list[str] | None = None) -> int:
    """Print one line per check (secrets scrubbed); 0 when all pass, 1 otherwise. `gpus`: each
    child's GPU under `--gpus` (already checked against the driver), said in a line of its own."""
    checks: list[Callable[[], Outcome]] = [
        lambda: check_broker(settings), lambda: check_storage(settings), lambda: check_providers(device)]
    if gpus is not None:
        on = ", ".join(dict.fromkeys(gpus))
        checks.append(lambda: Outcome("gpus", True, f"{len(gpus)} processes, on GPUs {on}"))
    outcomes = [check() for check in checks]
    secrets = _secrets(settings)
    for outcome in outcomes:
        print(_scrub(outcome.line(), secrets), flush=True)
    failed = [o.name for o in outcomes if not o.ok]
    print(f"check: {'FAIL (' + ', '.join(failed) + ')' if failed else 'OK'}", file=sys.stderr)
    return 1 if failed else 0


def _secrets(settings: Settings) -> list[str]:
    """Passwords that could surface inside a library's error text (redis echoes hosts, not
    passwords, today; this keeps it that way whatever a future version prints)."""
    found = []
    for url in (settings.broker_url.get_secret_value(), settings.s3_endpoint_url or ""):
        password = urlsplit(url).password
        if password:
            found += [password, unquote(password)]
    return found


def _scrub(text: str, secrets: list[str]) -> str:
    text = mask_url(text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__
