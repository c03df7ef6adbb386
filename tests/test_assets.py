"""The asset cache: import by sha256, verification, offline errors, downloads from a stand-in."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from harness.assets import cache as assets
from harness.assets.cache import (
    Asset,
    AssetCorruptError,
    AssetFile,
    AssetMissingError,
    fetch,
    import_dir,
    register_asset,
    status,
)


def _asset(tmp_path: Path, payload: bytes, url: str = "https://example.org/blob.bin",
           name: str = "test-blob") -> Asset:
    digest = hashlib.sha256(payload).hexdigest()
    asset = Asset(name, (AssetFile("blob.bin", digest, url, len(payload)),))
    assets.ASSETS.pop(name, None)
    return register_asset(asset)


@pytest.fixture
def blob_asset(tmp_path):
    payload = b"restorebench test payload"
    asset = _asset(tmp_path, payload)
    yield asset, payload
    assets.ASSETS.pop(asset.name, None)


def test_offline_error_names_file_source_and_import_command(blob_asset):
    asset, _ = blob_asset
    with pytest.raises(AssetMissingError) as info:
        fetch(asset.name, "blob.bin")
    message = str(info.value)
    assert "blob.bin" in message
    assert "https://example.org/blob.bin" in message
    assert "bench assets import" in message
    assert "BENCH_OFFLINE" in message


def test_import_matches_by_sha256_in_any_layout(blob_asset, tmp_path):
    asset, payload = blob_asset
    nested = tmp_path / "somewhere" / "deep"
    nested.mkdir(parents=True)
    (nested / "renamed.weights").write_bytes(payload)
    (nested / "other.bin").write_bytes(b"not it")
    imported = import_dir(tmp_path / "somewhere", {asset.name: asset}).imported
    assert [(i.asset, i.file) for i in imported] == [(asset.name, "blob.bin")]
    assert fetch(asset.name, "blob.bin").read_bytes() == payload


def test_corrupt_file_in_cache_is_refused(blob_asset):
    asset, _ = blob_asset
    target = assets.asset_dir(asset.name) / "blob.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"tampered")
    with pytest.raises(AssetCorruptError, match="does not match"):
        fetch(asset.name, "blob.bin")
    assert [s.status for s in status({asset.name: asset})] == ["corrupt"]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _Handler(*a, directory=str(root), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_online_download_is_verified_and_cached(http_root, tmp_path, monkeypatch):
    root, base = http_root
    payload = b"weights from the canonical source"
    (root / "w.bin").write_bytes(payload)
    asset = _asset(tmp_path, payload, url=f"{base}/w.bin", name="test-download")
    monkeypatch.delenv("BENCH_OFFLINE")
    path = fetch(asset.name, "blob.bin")
    assert path.read_bytes() == payload
    (root / "w.bin").unlink()  # second fetch comes from the cache
    assert fetch(asset.name, "blob.bin") == path
    assets.ASSETS.pop(asset.name)


def test_download_with_wrong_hash_leaves_nothing_behind(http_root, tmp_path, monkeypatch):
    root, base = http_root
    (root / "w.bin").write_bytes(b"changed upstream")
    asset = _asset(tmp_path, b"what we declared", url=f"{base}/w.bin", name="test-badhash")
    monkeypatch.delenv("BENCH_OFFLINE")
    with pytest.raises(AssetCorruptError):
        fetch(asset.name, "blob.bin")
    assert list(assets.asset_dir(asset.name).glob("*")) == []
    assets.ASSETS.pop(asset.name)


def test_unreachable_source_gives_the_offline_advice(tmp_path, monkeypatch):
    asset = _asset(tmp_path, b"x", url="http://127.0.0.1:9/never.bin", name="test-unreachable")
    monkeypatch.delenv("BENCH_OFFLINE")
    with pytest.raises(AssetMissingError, match="download failed.*bench assets import"):
        fetch(asset.name, "blob.bin")
    assets.ASSETS.pop(asset.name)


def test_shared_weights_folder_imports_niqe_parameters(weights_home):
    from harness.metrics.suite import NIQE_PARAMS

    path = fetch(NIQE_PARAMS.name, "niqe_pris_params.npz")
    assert assets.sha256_of(path) == NIQE_PARAMS.files[0].sha256


def test_verification_log_is_scoped_to_its_run(blob_asset, tmp_path):
    """A run's ``asset_checks`` hold that run's files only, and ``rehash`` ends with its scope."""
    asset, payload = blob_asset
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "blob.bin").write_bytes(payload)
    import_dir(tmp_path / "in", {asset.name: asset})  # hashed once: the stamp is fresh
    path = str(assets.asset_dir(asset.name) / "blob.bin")
    with assets.verification_log(rehash=True) as first:
        fetch(asset.name, "blob.bin")
        with assets.verification_log() as inner:  # nested: recorded in both, its own rehash
            fetch(asset.name, "blob.bin")
    assert first.as_dict() == {path: "re-hashed (sha256)"}
    assert inner.checks[path].startswith("stamp trusted")
    with assets.verification_log() as second:
        assert second.checks == {}  # nothing left over from the first scope
        fetch(asset.name, "blob.bin")
    assert second.checks[path].startswith("stamp trusted")
    assert not assets.rehash_always()


def test_sha256_of_is_the_one_file_hasher():
    from harness.io.hashing import file_sha256

    assert assets.sha256_of is file_sha256
