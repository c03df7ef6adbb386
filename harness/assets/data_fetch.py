"""``bench data fetch``: download a dataset from its declared sources, or say what to do offline.

``fetch`` never overwrites existing files and never downloads when ``BENCH_OFFLINE`` or
``HF_HUB_OFFLINE`` is set; URL downloads are verified against their sha256 before extraction.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.api.task import DataMissingError
from harness.assets.cache import offline
from harness.assets.datasets import DatasetSpec, DataSource, LayoutMatch, find_layout
from harness.io.hashing import file_sha256


class DataFetchError(RuntimeError):
    """The data could not be fetched; the message says where to get them and how to lay them out."""


def fetch_dataset(spec: DatasetSpec, root: Path, *, log: Callable[[str], None] = print) -> LayoutMatch:
    """Make ``spec``'s data present under ``root``: a no-op if a layout is already there,
    otherwise try each downloadable source in order. Raises :class:`DataFetchError` with the
    how-to-get message when offline or when every source fails."""
    root = Path(root)
    try:
        match = find_layout(spec, root)
        log(f"{spec.name}: already present ({match.layout.name} layout)")
        return match
    except DataMissingError:
        pass
    downloadable = [s for s in spec.sources if s.downloadable]
    if not downloadable:
        raise DataFetchError(f"{spec.name} has no automatic download (licence or hosting).\n"
                             f"{spec.how_to_get(root)}")
    if offline():
        raise DataFetchError(f"{spec.name}: downloads are disabled (BENCH_OFFLINE/HF_HUB_OFFLINE "
                             f"is set, or this machine is offline).\n{spec.how_to_get(root)}")
    errors = []
    for source in downloadable:
        log(f"{spec.name}: fetching from {source.describe()}")
        try:
            _FETCHERS[source.kind](source, root)
            match = find_layout(spec, root)
            log(f"{spec.name}: now present ({match.layout.name} layout)")
            return match
        except Exception as exc:  # every failure ends in the same advice
            errors.append(f"{source.location}: {type(exc).__name__}: {exc}")
    raise DataFetchError(f"{spec.name}: every source failed:\n  " + "\n  ".join(errors) +
                         f"\n{spec.how_to_get(root)}")


def _fetch_hf_files(source: DataSource, root: Path) -> None:
    from fnmatch import fnmatch

    from huggingface_hub import snapshot_download

    patterns = [pattern for pattern, _ in source.files]
    local = Path(snapshot_download(repo_id=source.location, repo_type="dataset",
                                   allow_patterns=patterns))
    copied = 0
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        relative = path.relative_to(local).as_posix()
        for pattern, target in source.files:
            if fnmatch(relative, pattern):
                copied += _copy_new(path, root / target / path.name)
                break
    if not copied:
        raise FileNotFoundError(f"no file of {source.location} matches {patterns}")


def export_hf_dataset(rows: Iterable[dict[str, Any]], source: DataSource, root: Path) -> int:
    """Write the image ``columns`` of a ``datasets`` table to folders (PNG); returns files written.

    Separate from the download so it can be tested on an in-memory table.
    """
    written = 0
    for index, row in enumerate(rows):
        stem = Path(str(row[source.name_column])).stem if source.name_column else f"{index:05d}"
        for column, target in source.columns:
            image = row[column]
            path = root / target / f"{stem}.png"
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            image.convert("RGB").save(path)
            written += 1
    return written


def _fetch_hf_dataset(source: DataSource, root: Path) -> None:
    import datasets

    table = datasets.load_dataset(source.location, split=source.split)
    if not export_hf_dataset(table, source, root):
        raise FileNotFoundError(f"{source.location}[{source.split}] exported no image")


def _fetch_url(source: DataSource, root: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        name = Path(urllib.parse.urlparse(source.location).path).name or "download"
        download = Path(tmp) / name
        request = urllib.request.Request(source.location, headers={"User-Agent": "restorebench"})
        with urllib.request.urlopen(request, timeout=60) as response, open(download, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        if source.sha256:
            digest = file_sha256(download)
            if digest != source.sha256.lower():
                raise ValueError(f"sha256 {digest} does not match the declared {source.sha256}")
        mapping = source.files or (("", ""),)
        if zipfile.is_zipfile(download):
            with zipfile.ZipFile(download) as archive:
                _extract((m for m in archive.namelist() if not m.endswith("/")),
                         lambda m: archive.open(m), mapping, root)
        elif tarfile.is_tarfile(download):
            with tarfile.open(download) as archive:
                members = [m for m in archive.getmembers() if m.isfile()]
                by_name = {m.name: m for m in members}
                _extract(by_name, lambda m: archive.extractfile(by_name[m]), mapping, root)
        else:
            target = mapping[0][1]
            _copy_new(download, root / target / name)


def _extract(members: Iterable[str], opener: Callable[[str], Any],
             mapping: tuple[tuple[str, str], ...], root: Path) -> None:
    for member in members:
        for prefix, target in mapping:
            if member.startswith(prefix):
                relative = Path(member[len(prefix):].lstrip("/"))
                if ".." in relative.parts:
                    raise ValueError(f"unsafe archive member {member!r}")
                destination = root / target / relative
                if destination.exists():
                    break
                destination.parent.mkdir(parents=True, exist_ok=True)
                with opener(member) as src, open(destination, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                break


def _copy_new(source: Path, destination: Path) -> int:
    if destination.exists():
        return 0
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    return 1


_FETCHERS: dict[str, Callable[[DataSource, Path], None]] = {
    "hf-files": _fetch_hf_files, "hf-dataset": _fetch_hf_dataset, "url": _fetch_url}
