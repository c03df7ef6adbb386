"""Datasets on disk: where a benchmark's files come from, how their folder layout is found, what a
validation reports, and how a fetch works (or, offline, what to do instead).

Dataset presets (in ``tasks/``) describe their data with a :class:`DatasetSpec`:

* ``layouts`` — candidate folder layouts under ``BENCH_DATA_ROOT``, tried **in order**: the
  official release first, then the common re-layouts (Restormer, Retinexformer, DehazeFormer, …),
  then this project's flat CI folders. The first candidate whose required parts exist wins, and
  its name is reported, so a user always sees *which* layout was read;
* ``sources`` — where to get the files (Hugging Face dataset repos, URLs with sha256 where
  known, or a homepage for data that can only be downloaded by hand).

Nothing here names a concrete dataset. A task that wants richer validation implements the small
:class:`ValidatableTask` protocol (``data_location()`` and ``probe(sample_id)``); any other task is
validated by loading its samples.

Choices where the spec is silent:

* a **partial** set (fewer samples than ``expected_count``, or LQ images whose GT folder is absent)
  is reported as ``partial (n of N)``, never as ``ok``; a broken one (unreadable files, LQ/GT size
  mismatch, LQ without its GT partner while the GT folder exists, wrong image size) is ``invalid``;
* ``fetch`` never overwrites existing files and never downloads when ``BENCH_OFFLINE`` or
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.assets import offline, sha256_of
from harness.task import DataMissingError, Task

SOURCE_KINDS = ("hf-files", "hf-dataset", "url", "manual")


# Descriptions -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSource:
    """One place a dataset can be obtained from.

    Attributes:
        kind: ``hf-files`` (files of a Hugging Face dataset repo, copied by ``files`` mapping),
            ``hf-dataset`` (a ``datasets`` table whose image ``columns`` are exported to folders),
            ``url`` (a file or a zip/tar archive, verified by ``sha256`` when given) or
            ``manual`` (a page to download from by hand; never fetched).
        location: HF repo id, URL, or homepage.
        files: ``hf-files``: ``(pattern in the repo, target folder under the data root)`` pairs;
            the pattern's directory part is stripped. ``url``: ``(member prefix, target)`` pairs
            for archives (``("", target)`` extracts everything into ``target``).
        columns: ``hf-dataset``: ``(image column, target folder)`` pairs.
        split: ``hf-dataset`` split to export.
        name_column: ``hf-dataset`` column holding file names (else ``00000.png`` …).
        sha256: of the downloaded file (``url``), when known.
        note: caveats (unofficial copy, licence unknown, layout unverified, …).
    """

    kind: str
    location: str
    files: tuple[tuple[str, str], ...] = ()
    columns: tuple[tuple[str, str], ...] = ()
    split: str = "test"
    name_column: str | None = None
    sha256: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"DataSource kind must be one of {SOURCE_KINDS}, got {self.kind!r}")

    @property
    def downloadable(self) -> bool:
        return self.kind != "manual"

    def describe(self) -> str:
        what = {"hf-files": "Hugging Face dataset repo", "hf-dataset": "Hugging Face dataset",
                "url": "URL", "manual": "download by hand from"}[self.kind]
        text = f"{what} {self.location}"
        if self.sha256:
            text += f" (sha256 {self.sha256})"
        if self.note:
            text += f" — {self.note}"
        return text


@dataclass(frozen=True)
class Layout:
    """A folder layout: named parts (``lq``, ``gt``, ``scenes``, a ``.mat`` file …) under the root.

    Attributes:
        name: shown to the user (``official``, ``restormer``, ``ci-flat`` …).
        parts: ``(part name, path relative to the data root)``; a folder must hold at least one
            file (recursively), a file must exist.
        optional: parts that may be absent (a GT folder missing from a partial copy); the task
            decides what an absent optional part means.
        note: what this layout is (shown by ``bench data validate``).
    """

    name: str
    parts: tuple[tuple[str, str], ...]
    optional: frozenset[str] = frozenset()
    note: str = ""

    def resolve(self, root: Path) -> dict[str, Path | None] | None:
        """The part paths if every required part is present, else ``None``."""
        found: dict[str, Path | None] = {}
        for part, relative in self.parts:
            path = root / relative
            if _present(path):
                found[part] = path
            elif part in self.optional:
                found[part] = None
            else:
                return None
        return found

    def describe(self, root: Path | None = None) -> str:
        base = f"{root}/" if root is not None else "<BENCH_DATA_ROOT>/"
        parts = ", ".join(f"{part}={base}{rel}" + (" (optional)" if part in self.optional else "")
                          for part, rel in self.parts)
        return f"{self.name}: {parts}" + (f" — {self.note}" if self.note else "")


def _present(path: Path) -> bool:
    if path.is_file():
        return True
    if path.is_dir():
        return any(p.is_file() and not p.name.startswith(".") for p in path.rglob("*"))
    return False


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to find, check and obtain one dataset."""

    name: str
    layouts: tuple[Layout, ...]
    sources: tuple[DataSource, ...] = ()
    homepage: str = ""
    licence: str = "research use (see homepage)"

    @property
    def install_layout(self) -> Layout:
        """The layout ``fetch`` writes and the how-to message recommends (the first one)."""
        return self.layouts[0]

    def how_to_get(self, root: Path) -> str:
        """Where to get the data and where to put them (the offline / missing-data advice)."""
        lines = [f"Get {self.name}:"]
        lines += [f"  - {s.describe()}" for s in self.sources] or [f"  - {self.homepage}"]
        lines.append(f"and put it at (BENCH_DATA_ROOT={root}):")
        lines.append(f"  {self.install_layout.describe()}")
        if len(self.layouts) > 1:
            lines.append("Also accepted (tried in this order):")
            lines += [f"  {layout.describe()}" for layout in self.layouts[1:]]
        return "\n".join(lines)


@dataclass(frozen=True)
class LayoutMatch:
    layout: Layout
    paths: dict[str, Path | None]

    def describe(self) -> dict[str, Any]:
        return {"layout": self.layout.name,
                **{part: str(path) if path else None for part, path in self.paths.items()}}


def find_layout(spec: DatasetSpec, root: Path) -> LayoutMatch:
    """The first layout of ``spec`` present under ``root``; :class:`DataMissingError` otherwise."""
    for layout in spec.layouts:
        paths = layout.resolve(root)
        if paths is not None:
            return LayoutMatch(layout, paths)
    raise DataMissingError(f"{spec.name}: no data found under {root} in any known layout.\n"
                           f"{spec.how_to_get(root)}\n"
                           f"Or run `bench data fetch` for a task that uses {spec.name}.")


# Validation ---------------------------------------------------------------------------------------
@runtime_checkable
class ValidatableTask(Protocol):
    """Optional task hooks that make validation cheap and precise."""

    def data_location(self) -> dict[str, Any]:
        """Which layout was found and where its parts are (raises DataMissingError)."""

    def probe(self, sample_id: str) -> dict[str, Any]:
        """Check one sample without decoding pixels if possible.

        Returns ``{"lq_size": (H, W), "gt_size": (H, W) | None}``; raises for an unreadable or
        unpaired file. A missing GT whose whole GT part is absent returns ``gt_size`` None.
        """


@dataclass
class ValidationReport:
    task: str
    status: str  # ok | partial | invalid | missing
    found: int = 0
    expected: int | None = None
    paired: int | None = None
    location: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    message: str = ""

    def summary(self) -> str:
        if self.status == "missing":
            return "missing"
        count = f"{self.found} of {self.expected}" if self.expected else f"{self.found}"
        text = f"{self.status} ({count} samples"
        if self.paired is not None:
            text += f", {self.paired} with GT"
        return text + ")"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "status": self.status, "found": self.found,
                "expected": self.expected, "paired": self.paired, "location": self.location,
                "problems": self.problems, "notes": self.notes, "message": self.message}


def validate_task(task: Task, *, max_problems: int = 20,
                  progress: Callable[[int, int], None] | None = None) -> ValidationReport:
    """Check presence, pairing, counts and image sizes of a task's data.

    Sizes are checked against ``task.expected_sizes`` (a set of ``(H, W)``) when the task declares
    it, and LQ against GT always.
    """
    report = ValidationReport(task.name, "missing", expected=task.expected_count)
    try:
        if isinstance(task, ValidatableTask):
            report.location = task.data_location()
        ids = task.sample_ids()
    except DataMissingError as exc:
        report.message = str(exc)
        return report
    report.found = len(ids)
    allowed: set[tuple[int, int]] | None = getattr(task, "expected_sizes", None)
    paired = 0
    for index, sample_id in enumerate(ids):
        try:
            sizes = _probe(task, sample_id)
        except Exception as exc:
            _add(report.problems, f"{sample_id}: {type(exc).__name__}: {exc}", max_problems)
            continue
        lq_size, gt_size = sizes["lq_size"], sizes.get("gt_size")
        if gt_size is not None:
            paired += 1
            if tuple(gt_size) != tuple(lq_size):
                _add(report.problems, f"{sample_id}: LQ {tuple(lq_size)} and GT {tuple(gt_size)} "
                                      f"differ in size", max_problems)
        if allowed and tuple(lq_size) not in allowed:
            _add(report.problems, f"{sample_id}: size {tuple(lq_size)} is not one of the "
                                  f"benchmark's {sorted(allowed)}", max_problems)
        if progress is not None:
            progress(index + 1, len(ids))
    if task.has_gt:
        report.paired = paired
        if paired < report.found and not report.problems:
            report.notes.append(f"GT absent for {report.found - paired} of {report.found} samples "
                                f"(GT folder missing from this copy): full-reference metrics "
                                f"cannot run")
    partial = bool(report.expected and report.found < report.expected)
    if task.has_gt and report.paired is not None and report.paired < report.found:
        partial = True
    if partial and report.expected and report.found < report.expected:
        report.notes.append(f"only {report.found} of the benchmark's {report.expected} samples "
                            f"are present: numbers are not comparable with published tables")
    if report.problems:
        report.status = "invalid"
    elif report.found == 0:
        report.status = "missing"
    else:
        report.status = "partial" if partial else "ok"
    return report


def _probe(task: Task, sample_id: str) -> dict[str, Any]:
    if isinstance(task, ValidatableTask):
        return task.probe(sample_id)
    sample = task.load(sample_id)
    gt = None if sample.gt is None else tuple(sample.gt.shape[-2:])
    return {"lq_size": tuple(sample.lq.shape[-2:]), "gt_size": gt}


def _add(problems: list[str], problem: str, limit: int) -> None:
    if len(problems) < limit:
        problems.append(problem)
    elif len(problems) == limit:
        problems.append("... (further problems not listed)")


# Fetching -----------------------------------------------------------------------------------------
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
            digest = sha256_of(download)
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
