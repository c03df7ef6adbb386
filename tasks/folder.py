"""The generic paired-folder task: a folder of degraded images and an optional folder of GT,
paired by file stem (``folder[lq=path/low,gt=path/high]``).

Without ``gt`` only no-reference metrics run. Dataset presets subclass :class:`PairedFolderTask`
and give a pairing rule (``rain-001`` → ``norain-001``, ``1400_1`` → ``1400``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.api.task import DataMissingError, MetricConventions, Sample, Task, register_task
from harness.io.images import read_image_info
from tasks._common import by_unique_stem, list_images


def same_stem(stem: str) -> str:
    return stem


class PairedFolderTask(Task):
    """LQ images in one folder, GT (optional) in another, matched by a stem rule."""

    pair_rule: Callable[[str], str] = staticmethod(same_stem)

    def __init__(self, lq: str | Path, gt: str | Path | None = None, *, name: str = "",
                 description: str = "", conventions: MetricConventions | None = None,
                 expected_count: int | None = None):
        super().__init__()
        self.lq_dir = Path(lq).expanduser()
        self.gt_dir = Path(gt).expanduser() if gt else None
        self.name = name or self.name
        self.description = description or self.description or (
            f"paired folder {self.lq_dir}" + (f" vs {self.gt_dir}" if self.gt_dir else " (no GT)"))
        self.has_gt = self.gt_dir is not None
        if conventions is not None:
            self.conventions = conventions
        if expected_count is not None:
            self.expected_count = expected_count
        self.options = {"lq": str(self.lq_dir), "gt": str(self.gt_dir) if self.gt_dir else None}
        self._index: dict[str, tuple[Path, Path | None]] | None = None

    def missing_message(self) -> str:
        return f"{self.name or 'folder'}: no images found in {self.lq_dir}"

    def _build_index(self) -> dict[str, tuple[Path, Path | None]]:
        label = self.name or "folder"
        if not self.lq_dir.is_dir():
            raise DataMissingError(f"{label}: LQ folder {self.lq_dir} does not exist")
        if self.gt_dir is not None and not self.gt_dir.is_dir():
            # only what is wrong: the LQ folder may be fine
            raise DataMissingError(f"{label}: GT folder {self.gt_dir} does not exist (give an "
                                   "existing folder, or leave gt out to score without GT)")
        lq_files = list_images(self.lq_dir)
        if not lq_files:
            raise DataMissingError(self.missing_message())
        lq_by_stem = by_unique_stem(lq_files, f"{label}: LQ folder {self.lq_dir}",
                                    "sample ids are file stems")
        gt_by_stem = by_unique_stem(list_images(self.gt_dir), f"{label}: GT folder {self.gt_dir}",
                                    "the GT is found by stem") if self.gt_dir else {}
        return {stem: (path, gt_by_stem.get(self.pair_rule(stem)) if self.gt_dir else None)
                for stem, path in lq_by_stem.items()}

    def index(self) -> dict[str, tuple[Path, Path | None]]:
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def sample_ids(self) -> list[str]:
        return list(self.index())

    def unpaired(self) -> list[str]:
        """LQ ids with no GT partner (each fails at load time with a clear error)."""
        return [i for i, (_, gt) in self.index().items() if self.gt_dir and gt is None]

    def load(self, sample_id: str) -> Sample:
        lq_path, gt_path = self.index()[sample_id]
        lq, lq_conversion = read_image_info(lq_path)
        conversions = {"lq": lq_conversion} if lq_conversion else {}
        gt = None
        if self.gt_dir is not None:
            if gt_path is None:
                raise FileNotFoundError(f"no GT for {lq_path.name} in {self.gt_dir} "
                                        f"(expected stem {self.pair_rule(lq_path.stem)!r})")
            gt, gt_conversion = read_image_info(gt_path)
            if gt_conversion:
                conversions["gt"] = gt_conversion
            if gt.shape != lq.shape:
                raise ValueError(f"{lq_path.name}: LQ {tuple(lq.shape[1:])} and GT "
                                 f"{tuple(gt.shape[1:])} differ in size")
        meta = {"lq_path": str(lq_path), "gt_path": str(gt_path) if gt_path else None}
        if conversions:  # grey / RGBA / palette files: how they became RGB (in the record)
            meta["input_conversion"] = conversions
        return Sample(sample_id, lq, gt, meta)


@register_task("folder")
def folder(lq: str | None = None, gt: str | None = None) -> Task:
    """``folder[lq=DIR,gt=DIR]``: any folder pair; ``gt`` optional."""
    if lq is None:
        return _UnconfiguredFolder()
    return PairedFolderTask(lq, gt, name="folder")


class _UnconfiguredFolder(Task):
    name = "folder"
    description = "Your own images: -t 'folder[lq=DIR,gt=DIR]' (GT optional, paired by stem)"
    degradation = "any"
    #: what ``bench list tasks`` shows in the data column: the folders come with each run
    data_note = "yours: -t 'folder[lq=DIR]'"

    def sample_ids(self) -> list[str]:
        raise DataMissingError("the folder task needs its folders: -t 'folder[lq=DIR,gt=DIR]'")

    def load(self, sample_id: str) -> Sample:
        raise DataMissingError("the folder task needs its folders: -t 'folder[lq=DIR,gt=DIR]'")
