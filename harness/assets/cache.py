"""The offline-first asset cache: weights and metric parameters with canonical sources and sha256.

Every file the project needs at run time is declared as an :class:`Asset` (by the module that
uses it) with its canonical source and sha256. Files live in ``$BENCH_HOME/assets/<asset>/``
(default ``~/.cache/restorebench``). On first use a missing file is downloaded (when online) and
verified; offline, :class:`AssetMissingError` names the file, its source and the import command.
``bench assets import DIR`` copies matching files (found by their full sha256, any folder
layout) from a folder, which is how air-gapped machines and CI get them. A file is never matched
by name or by a hash prefix there, and a verified file in the cache is never replaced.

Nothing downloads at import time. ``BENCH_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) forbids downloads.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.io.hashing import file_sha256

_CHUNK = 1 << 20

#: The public name plugins use (``from harness.assets import sha256_of``): the one file hasher.
sha256_of = file_sha256


class AssetMissingError(FileNotFoundError):
    """An asset file is absent (or failed verification) and could not be downloaded."""


class AssetCorruptError(ValueError):
    """A file's sha256 does not match its declaration."""


@dataclass(frozen=True)
class AssetFile:
    """One file of an asset.

    Attributes:
        name: path inside the asset folder (may contain ``/``).
        sha256: full hex digest. A prefix (at least 8 hex digits; torchvision's
            ``alexnet-owt-7be5be79.pth`` convention) is accepted for downloads from ``url`` only:
            :func:`import_dir` refuses to import a file declared by a prefix.
        url: canonical source, ``https://...`` or ``hf://<repo_id>::<path>``.
        package: optional ``(distribution, path)`` of a pip-installed distribution that ships
            a byte-identical copy; it is used (never imported, only read) before downloading.
    """

    name: str
    sha256: str
    url: str
    size: int | None = None
    package: tuple[str, str] | None = None

    def matches(self, digest: str) -> bool:
        return digest.startswith(self.sha256.lower())

    @property
    def full_hash(self) -> bool:
        """Whether the declaration is a whole sha256 (what ``bench assets import`` needs)."""
        return len(self.sha256) == 64


@dataclass(frozen=True)
class Asset:
    name: str
    files: tuple[AssetFile, ...]
    description: str = ""
    licence: str = ""
    homepage: str = ""

    def file(self, name: str | None = None) -> AssetFile:
        if name is None:
            if len(self.files) != 1:
                raise ValueError(f"asset {self.name!r} has several files; name one")
            return self.files[0]
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(f"asset {self.name!r} has no file {name!r}")


ASSETS: dict[str, Asset] = {}


def register_asset(asset: Asset) -> Asset:
    existing = ASSETS.get(asset.name)
    if existing is not None and existing != asset:
        raise ValueError(f"asset {asset.name!r} is declared twice with different contents")
    ASSETS[asset.name] = asset
    return asset


# Locations ----------------------------------------------------------------------------------------
def bench_home() -> Path:
    return Path(os.environ.get("BENCH_HOME", Path.home() / ".cache" / "restorebench")).expanduser()


def asset_dir(asset: str) -> Path:
    return bench_home() / "assets" / asset


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("BENCH_OFFLINE", "HF_HUB_OFFLINE"))


# Fetching -----------------------------------------------------------------------------------------
def fetch(asset_name: str, file_name: str | None = None, *, download: bool = True) -> Path:
    """Return the verified local path of an asset file, downloading it if allowed.

    Raises:
        AssetMissingError: absent and not downloadable (offline, or the download failed).
        AssetCorruptError: present but its sha256 does not match.
    """
    asset = ASSETS.get(asset_name)
    if asset is None:
        raise KeyError(f"unknown asset {asset_name!r}; known: {sorted(ASSETS)}")
    spec = asset.file(file_name)
    target = asset_dir(asset.name) / spec.name
    if target.exists():
        _verify(target, spec)
        return target
    if _copy_from_package(spec, target):
        return target
    reason = "downloads are disabled (BENCH_OFFLINE/HF_HUB_OFFLINE)" if offline() else ""
    if download and not offline():
        try:
            _download(spec, target)
            return target
        except AssetCorruptError:
            raise
        except Exception as exc:  # network errors of every kind end in the same advice
            reason = f"download failed: {type(exc).__name__}: {exc}"
    raise AssetMissingError(missing_message(asset, spec, reason or "not in the cache"))


def _copy_from_package(spec: AssetFile, target: Path) -> bool:
    """Copy the file from an installed distribution that ships it, if there is one."""
    if spec.package is None:
        return False
    distribution, member = spec.package
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return False
    for entry in files:
        if str(entry) == member:
            source = Path(str(entry.locate()))
            if source.exists() and spec.matches(file_sha256(source)):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                _verify(target, spec)
                return True
    return False


def missing_message(asset: Asset, spec: AssetFile, reason: str) -> str:
    return (f"asset {asset.name!r} file {spec.name!r} is missing ({reason}). "
            f"Canonical source: {spec.url} (sha256 {spec.sha256}). "
            f"Download it on a machine with internet access and run "
            f"`bench assets import <folder>` (any folder layout; files are matched by sha256), "
            f"or place it at {asset_dir(asset.name) / spec.name}.")


# Verification -------------------------------------------------------------------------------------
@dataclass
class VerificationLog:
    """How each asset file used inside one :func:`verification_log` scope was checked.

    A run opens its own scope, so ``results.json`` lists that run's files and nothing left over
    from an earlier run in the same process (a study runs many), and ``rehash`` applies to that
    run only.

    Attributes:
        rehash: re-hash every file on use instead of trusting its stamp (``--verify-assets``).
        checks: path → ``"re-hashed (sha256)"`` or ``"stamp trusted (...)"``.
    """

    rehash: bool = False
    checks: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, str]:
        """The checks sorted by path (what ``results.json`` stores under ``asset_checks``)."""
        return dict(sorted(self.checks.items()))


_REHASHED = "re-hashed (sha256)"

#: Open scopes, innermost last; the first is the process-wide log, which is never closed.
_LOGS: list[VerificationLog] = [VerificationLog()]


@contextmanager
def verification_log(rehash: bool = False) -> Iterator[VerificationLog]:
    """A scope whose asset checks are recorded in the :class:`VerificationLog` it yields.

    Scopes nest: a check is recorded in every open scope, and the innermost one's ``rehash``
    applies (``BENCH_VERIFY_ASSETS=1`` forces re-hashing everywhere)."""
    log = VerificationLog(rehash=rehash)
    _LOGS.append(log)
    try:
        yield log
    finally:
        _LOGS.remove(log)


def rehash_always() -> bool:
    """Whether a file used now is re-hashed rather than trusted by its stamp."""
    return _LOGS[-1].rehash or os.environ.get("BENCH_VERIFY_ASSETS", "").lower() in ("1", "true", "yes")


def _record(path: Path, how: str) -> None:
    """Record ``how`` in every open scope; a file re-hashed in a scope stays so there (its later
    stamp checks trust that very hash)."""
    for log in _LOGS:
        if not log.checks.get(str(path), "").startswith(_REHASHED):
            log.checks[str(path)] = how


def _verify(path: Path, spec: AssetFile, rehash: bool | None = None) -> None:
    """Check ``path`` against its declared sha256.

    Hashing a multi-GB checkpoint on every run costs seconds, so by default a ``.verified``
    stamp (size, mtime and the declared digest of the last successful hash) is trusted. A stamp
    can be fooled by a file altered with its size and mtime restored; ``rehash=True`` (``bench
    assets verify`` always, ``bench run --verify-assets``) ignores it. Which of the two happened
    is recorded in the open :class:`VerificationLog` scopes and written to ``results.json``.
    """
    rehash = rehash_always() if rehash is None else rehash
    stamp = path.with_name(path.name + ".verified")
    stat = path.stat()
    key = f"{stat.st_size}:{stat.st_mtime_ns}:{spec.sha256}"
    if not rehash and stamp.exists() and stamp.read_text() == key:
        _record(path, "stamp trusted (size+mtime unchanged since last sha256 check)")
        return
    _record(path, _REHASHED)
    _require_match(path, spec, str(path), f"delete it and re-import or re-download from {spec.url}")
    stamp.write_text(key)


def _require_match(path: Path, spec: AssetFile, what: str, advice: str) -> None:
    """Hash ``path``; :class:`AssetCorruptError` naming ``what`` and ``advice`` on a mismatch."""
    digest = file_sha256(path)
    if not spec.matches(digest):
        raise AssetCorruptError(f"{what}: sha256 {digest} does not match the declared "
                                f"{spec.sha256}; {advice}")


def _download(spec: AssetFile, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if spec.url.startswith("hf://"):
        from huggingface_hub import hf_hub_download

        repo_id, _, filename = spec.url[len("hf://"):].partition("::")
        downloaded = Path(hf_hub_download(repo_id=repo_id, filename=filename))
        _verify_file(downloaded, spec)
        shutil.copyfile(downloaded, target)
        return
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            request = urllib.request.Request(spec.url, headers={"User-Agent": "restorebench"})
            with urllib.request.urlopen(request, timeout=30) as response:
                shutil.copyfileobj(response, tmp, _CHUNK)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    try:
        _verify_file(tmp_path, spec)
    except AssetCorruptError:
        tmp_path.unlink(missing_ok=True)
        raise
    tmp_path.replace(target)


def _verify_file(path: Path, spec: AssetFile) -> None:
    """A fresh download (no stamp to trust): always hashed."""
    _require_match(path, spec, f"downloaded {spec.url}",
                   "the source changed or the download was corrupted")


# Import / verify / list -----------------------------------------------------------------------
@dataclass
class FileStatus:
    asset: str
    file: str
    status: str  # ok | missing | corrupt
    path: Path
    source: str


def status(assets: dict[str, Asset] | None = None, rehash: bool = False) -> Iterator[FileStatus]:
    """State of every declared file; ``rehash`` re-computes every sha256 (``bench assets
    verify``) instead of trusting the stamps (``bench assets list``)."""
    for asset in (assets or ASSETS).values():
        for spec in asset.files:
            path = asset_dir(asset.name) / spec.name
            if not path.exists():
                state = "missing"
            else:
                try:
                    _verify(path, spec, rehash=rehash)
                    state = "ok"
                except AssetCorruptError:
                    state = "corrupt"
            yield FileStatus(asset.name, spec.name, state, path, spec.url)


@dataclass
class ImportReport:
    """What :func:`import_dir` did: files imported, already present, and declared files it
    could not import because only a hash prefix is declared."""

    imported: list[FileStatus] = field(default_factory=list)
    present: list[FileStatus] = field(default_factory=list)
    prefix_only: list[tuple[str, str]] = field(default_factory=list)


def import_dir(folder: Path, assets: dict[str, Asset] | None = None) -> ImportReport:
    """Copy every declared file found under ``folder`` into the cache, matched by its full
    sha256 only (never by name, never by a declared prefix; the file name is irrelevant).

    A target that already verifies is left alone (never replaced by another file); a corrupt
    one is replaced by the verified copy. Copies are written to a temporary name, hashed again
    and renamed, so a half-written file is never taken for the asset.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder; give the folder that holds the "
                                 f"downloaded files")
    wanted = [(a, f) for a in (assets or ASSETS).values() for f in a.files]
    report = ImportReport(prefix_only=[(a.name, f.name) for a, f in wanted if not f.full_hash])
    by_digest = {f.sha256.lower(): (a, f) for a, f in wanted if f.full_hash}
    sizes = {f.size for a, f in wanted if f.full_hash}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        if None not in sizes and path.stat().st_size not in sizes:
            continue
        match = by_digest.get(file_sha256(path))
        if match is None:
            continue
        asset, spec = match
        target = asset_dir(asset.name) / spec.name
        if target.exists() and _verifies(target, spec):
            report.present.append(FileStatus(asset.name, spec.name, "ok", target, str(path)))
            continue
        _copy_verified(path, target, spec)
        report.imported.append(FileStatus(asset.name, spec.name, "ok", target, str(path)))
    return report


def _verifies(path: Path, spec: AssetFile) -> bool:
    try:
        _verify(path, spec, rehash=True)
        return True
    except AssetCorruptError:
        return False


def _copy_verified(source: Path, target: Path, spec: AssetFile) -> None:
    """Copy to a temporary file beside ``target``, verify the copy, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.import{os.getpid()}")
    try:
        shutil.copyfile(source, tmp)
        _require_match(tmp, spec, f"copy of {source}", "the file changed while it was copied")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    _verify(target, spec, rehash=True)
