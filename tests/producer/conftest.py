"""Producer fixtures: a published (manifest-only) model set in the moto S3 server, a queue of
its own per test on the real Redis, and a decoder for the kombu messages Celery left there."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from bench.fake_modelset import SET_NAME, SET_VERSION, manifest_bytes
from docmill.jobs import connect
from docmill.messages import OcrTask

@pytest.fixture
def models_uri(s3_client, s3_bucket: str) -> str:
    """s3://BUCKET/models/tiny-set with LATEST -> SET_VERSION."""
    s3_client.put_object(Bucket=s3_bucket, Key=f"models/{SET_NAME}/{SET_VERSION}/manifest.json",
                         Body=manifest_bytes())
    s3_client.put_object(Bucket=s3_bucket, Key=f"models/{SET_NAME}/LATEST", Body=SET_VERSION.encode())
    return f"s3://{s3_bucket}/models/{SET_NAME}"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, s3_endpoint: str) -> None:
    """Settings for the code under test, in the environment (subprocesses inherit it)."""
    monkeypatch.setenv("DOCMILL_BROKER_URL", redis_url)
    monkeypatch.setenv("DOCMILL_S3_ENDPOINT_URL", s3_endpoint)


@pytest.fixture
def redis_client(redis_url: str) -> Any:
    return connect(redis_url)


@pytest.fixture
def queue(redis_client: Any, job_id: str) -> Iterator[str]:
    """A queue name of this test's own (no worker consumes it); its list, kombu's binding and
    the job's keys are removed afterwards."""
    name = f"test-queue-{uuid.uuid4().hex[:12]}"
    yield name
    keys = [name, f"_kombu.binding.{name}", *redis_client.scan_iter(f"docmill:job:{job_id}*")]
    redis_client.delete(*keys)


def put_objects(s3_client, bucket: str, keys: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Tiny objects, body = key (so sizes and ETags differ per key), in parallel."""
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3_client.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


@dataclass
class Queued:
    envelope: dict[str, Any]
    task: OcrTask


def decode(raw: str) -> Queued:
    """One message as Celery (protocol 2) put it on the Redis list: a kombu JSON envelope whose
    base64 body is [args, kwargs, embed]; args[0] must validate as docmill.task/v1."""
    envelope = json.loads(raw)
    assert envelope["properties"]["body_encoding"] == "base64"
    args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    assert len(args) == 1 and kwargs == {}
    return Queued(envelope, OcrTask.model_validate(args[0]))


def drain(redis_client: Any, queue: str) -> list[Queued]:
    """Every message on the queue, oldest first (kombu LPUSHes, workers BRPOP), removed."""
    out = []
    while (raw := redis_client.rpop(queue)) is not None:
        out.append(decode(raw))
    return out
