"""Downloads: file:// URLs, checksums, progress, and the no-network message (never the network)."""

from __future__ import annotations

import hashlib
import io
import urllib.error

import pytest

from cloudphys.data import DataFile
from cloudphys.data import download as dl
from cloudphys.data.cloud import CLOUD_FILES, load_cloud_cv
from cloudphys.data.download import fetch, sha256_of, verify
from cloudphys.errors import DataError


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.fixture(autouse=True)
def _guard(monkeypatch):
    monkeypatch.delenv("CLOUDPHYS_OFFLINE", raising=False)
    monkeypatch.setattr(dl, "urlopen", _no_network)


def _file_url_opener(monkeypatch):
    import urllib.request

    calls = []

    def opener(url, timeout=None):
        assert url.startswith("file://"), url
        calls.append(url)
        return urllib.request.urlopen(url, timeout=timeout)

    monkeypatch.setattr(dl, "urlopen", opener)
    return calls


def test_download_from_file_url(tmp_path, monkeypatch):
    src = tmp_path / "published.csv"
    src.write_bytes(b"cloud,cv,n_atoms\n1 a | 1a | Si 1.0,24.5,1\n")
    f = DataFile("cloud/x.csv", url=src.as_uri(), sha256=sha256_of(src))
    calls = _file_url_opener(monkeypatch)
    root = tmp_path / "data"
    p = fetch(f, root=root, progress=True)
    assert p == root / "cloud" / "x.csv" and p.read_bytes() == src.read_bytes()
    assert calls == [src.as_uri()]
    assert fetch(f, root=root) == p and len(calls) == 1  # present: no second download
    assert not list((root / "cloud").glob(".*part"))


def test_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "tampered.csv"
    src.write_bytes(b"something else\n")
    f = DataFile("cloud/y.csv", url=src.as_uri(), sha256="0" * 64)
    _file_url_opener(monkeypatch)
    with pytest.raises(DataError, match="fails verification"):
        fetch(f, root=tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "cloud" / "y.csv").exists()
    assert list((tmp_path / "data" / "cloud").iterdir()) == []
    with pytest.raises(DataError, match="expected 0000"):
        verify(f, src)


def test_no_network_message_names_file_place_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError) as info:
        load_cloud_cv("test", progress=False)
    msg = str(info.value)
    f = CLOUD_FILES["cloud/cloud_cv_test.csv"]
    assert str(tmp_path / "data" / "cloud" / "cloud_cv_test.csv") in msg
    assert f.url in msg and f.sha256 in msg and "name resolution" in msg


def test_offline_env_skips_download(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_OFFLINE", "1")
    monkeypatch.setattr(dl, "urlopen", lambda *a, **k: pytest.fail("must not download"))
    f = DataFile("a/b.csv", url="https://example.invalid/b.csv")
    with pytest.raises(DataError, match="downloads are disabled"):
        fetch(f, root=tmp_path)


def test_broken_transfer(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        headers = {"Content-Length": "100"}

        def read(self, n=-1):
            raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(dl, "urlopen", lambda *a, **k: Broken())
    with pytest.raises(DataError, match="broke off"):
        fetch(DataFile("a/c.csv", url="https://example.invalid/c.csv"), root=tmp_path, progress=False)
    assert list((tmp_path / "a").iterdir()) == []


def test_registered_checksums_match_shared_files(data_root):
    for f in CLOUD_FILES.values():
        p = data_root / f.path
        if p.is_file():
            assert hashlib.sha256(p.read_bytes()).hexdigest() == f.sha256, f.path
            assert p.stat().st_size == f.size, f.path
            assert f.url.startswith("https://raw.githubusercontent.com/ChangwenXu98/CLOUD/main/")
