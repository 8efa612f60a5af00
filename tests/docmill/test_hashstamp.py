"""docmill.hashstamp: a file is hashed again exactly when its stat has moved."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from docmill import hashstamp
from docmill.hashstamp import STAMP_FILE, HashStamps


@pytest.fixture
def settled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file old enough to be stamped (no racy window in these tests)."""
    monkeypatch.setattr(hashstamp, "RACY_S", 0.0)
    path = tmp_path / "rec.onnx"
    path.write_bytes(b"weights" * 1000)
    return path


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_hash_is_stamped_and_reused(settled: Path) -> None:
    stamps = HashStamps(settled.parent)
    assert stamps.sha256(settled) == _digest(settled.read_bytes())
    stamps.save()
    stamp_path = settled.parent / STAMP_FILE
    stored = json.loads(stamp_path.read_bytes())
    # Plant a different digest under the same stat: a reader that uses it proves it did not hash.
    stored[settled.name][1] = "0" * 64
    stamp_path.write_bytes(json.dumps(stored).encode())
    assert HashStamps(settled.parent).sha256(settled) == "0" * 64


def test_changed_file_is_hashed_again(settled: Path) -> None:
    stamps = HashStamps(settled.parent)
    stamps.sha256(settled)
    stamps.save()
    settled.write_bytes(b"tampered" * 875)  # same size, new bytes
    assert HashStamps(settled.parent).sha256(settled) == _digest(b"tampered" * 875)


def test_mtime_set_back_does_not_hide_a_change(settled: Path) -> None:
    before = settled.stat()
    stamps = HashStamps(settled.parent)
    stamps.sha256(settled)
    stamps.save()
    settled.write_bytes(b"tampered" * 875)
    os.utime(settled, ns=(before.st_atime_ns, before.st_mtime_ns))  # ctime still moves
    assert HashStamps(settled.parent).sha256(settled) == _digest(b"tampered" * 875)


def test_fresh_file_is_not_stamped(tmp_path: Path) -> None:
    path = tmp_path / "det.onnx"
    path.write_bytes(b"new")
    stamps = HashStamps(tmp_path)
    assert stamps.sha256(path) == _digest(b"new")
    stamps.save()
    assert not (tmp_path / STAMP_FILE).exists()


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"rec.onnx": "x"}'])
def test_unreadable_stamp_means_hashing(settled: Path, content: bytes) -> None:
    (settled.parent / STAMP_FILE).write_bytes(content)
    assert HashStamps(settled.parent).sha256(settled) == _digest(settled.read_bytes())


def test_unwritable_stamp_hashes_without_failing(settled: Path) -> None:
    (settled.parent / STAMP_FILE).mkdir()  # where the stamp would go, a folder: writing it fails
    stamps = HashStamps(settled.parent)
    assert stamps.sha256(settled) == _digest(settled.read_bytes())
    stamps.save()
    assert (settled.parent / STAMP_FILE).is_dir()
