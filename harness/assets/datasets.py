"""Datasets on disk: where a benchmark's files come from and how their folder layout is found.

Validation lives in :mod:`harness.assets.data_validation`, fetching in :mod:`harness.assets.data_fetch`.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.api.task import DataMissingError

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
