"""The document spool: one local copy per (source, ETag) while any task uses it, a copy that
has no name (so a killed worker leaves no file behind), and no copy at all of a local input."""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile

import pytest

from docmill.messages import TaskItem
from docmill.settings import Settings
from pages.source import open_document
from tests.pages import numbered_pdf
from worker.documents import DocumentSpool

pytestmark = pytest.mark.services


def test_an_s3_document_is_copied_once_without_a_name_and_freed_by_its_last_user(s3_client, s3_bucket,
                                                                                 s3_endpoint):
    body = numbered_pdf(3)
    etag = s3_client.put_object(Bucket=s3_bucket, Key="a.pdf", Body=body)["ETag"].strip('"')
    item = TaskItem(src=f"s3://{s3_bucket}/a.pdf", dst=f"s3://{s3_bucket}/out/a.pdf.json", etag=etag)
    spool = DocumentSpool(Settings(s3_endpoint_url=s3_endpoint))
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "docmill-doc-*")))
    first, second = spool.acquire(item), spool.acquire(item)
    assert first is second and first.size == len(body) and first.sha256 == hashlib.sha256(body).hexdigest()
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "docmill-doc-*"))) == before  # no name on disk
    with open_document(first.path) as document:  # the render child opens it through /proc
        assert document.page_count == 3
    spool.release(item)
    assert os.path.exists(first.path)
    spool.release(item)
    assert not os.path.exists(first.path)


def test_a_local_document_is_read_in_place(tmp_path):
    source = tmp_path / "b.pdf"
    source.write_bytes(numbered_pdf(2))
    spool = DocumentSpool(Settings())
    item = TaskItem(src=str(source), dst=str(tmp_path / "out" / "b.pdf.json"))
    spooled = spool.acquire(item)
    assert spooled.path == str(source) and spooled.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    spool.release(item)
    assert source.exists()
