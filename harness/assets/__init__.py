"""Layer 2 — files the harness needs and checks: the offline-first asset cache (weights and metric
parameters with canonical sources and sha256), dataset layouts, ``bench data fetch|validate``.

The asset cache's public names (what restorer modules use to declare and fetch their weights)
are re-exported here: ``from harness.assets import Asset, AssetFile, register_asset, fetch``
(``sha256_of`` is :func:`harness.io.hashing.file_sha256` under the name plugins know). A run
records how it checked each file in its own scope: ``with verification_log(rehash) as log``.
"""

from __future__ import annotations

from harness.assets.cache import (
    ASSETS,
    Asset,
    AssetCorruptError,
    AssetFile,
    AssetMissingError,
    FileStatus,
    VerificationLog,
    asset_dir,
    bench_home,
    fetch,
    import_dir,
    missing_message,
    offline,
    register_asset,
    rehash_always,
    sha256_of,
    status,
    verification_log,
)
from harness.assets.declarations import load_all_declarations

__all__ = ["ASSETS", "Asset", "AssetCorruptError", "AssetFile", "AssetMissingError",
           "FileStatus", "VerificationLog", "asset_dir", "bench_home", "fetch", "import_dir",
           "load_all_declarations", "missing_message", "offline", "register_asset", "rehash_always",
           "sha256_of", "status", "verification_log"]
