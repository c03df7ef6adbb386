"""Base class of the real-dataset presets: layout detection, pairing, validation hooks.

A preset sets ``dataset`` (a :class:`~harness.assets.datasets.DatasetSpec` with its candidate layouts and
sources), ``pair_rule`` (LQ stem → GT stem), ``expected_count`` and, when the benchmark has fixed
image sizes, ``expected_sizes``. The layout is detected lazily (on first use), so listing tasks
never touches the disk more than once per task.

Pairing policy (why ``check_available`` is stricter than ``sample_ids``): ``sample_ids`` lists
every LQ image found, so ``bench list tasks`` can say ``partial (4 of 15)`` for a copy without GT;
``check_available`` — what the runner calls before loading any model — refuses a GT task whose GT
folder is absent or whose LQ images lack partners, because such a run could only produce
failures or silently different numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from harness.api.task import DataMissingError, Sample, Task
from harness.assets.datasets import DatasetSpec, LayoutMatch, find_layout
from harness.io.images import read_image_info
from tasks._common import by_unique_stem, data_root, list_images


def same_stem(stem: str) -> str:
    return stem


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding pixels."""
    with Image.open(path) as img:
        width, height = img.size
    return height, width


class DatasetTask(Task):
    """A paired (or LQ-only) folder dataset found under ``BENCH_DATA_ROOT`` by layout detection."""

    dataset: DatasetSpec
    #: allowed (H, W) of the LQ images, or None when the benchmark's sizes vary.
    expected_sizes: frozenset[tuple[int, int]] | None = None

    def __init__(self) -> None:
        super().__init__()
        self._match: LayoutMatch | None = None
        self._match_root: Path | None = None
        self._index: dict[str, tuple[Path, Path | None]] | None = None

    @staticmethod
    def pair_rule(stem: str) -> str:
        return stem

    # Layout -------------------------------------------------------------------------------------
    def data_spec(self) -> DatasetSpec:
        """What ``bench data validate|fetch`` read: layouts and sources."""
        return self.dataset

    def match(self) -> LayoutMatch:
        root = data_root()
        if self._match is None or self._match_root != root:
            self._match, self._match_root, self._index = find_layout(self.dataset, root), root, None
        return self._match

    def data_location(self) -> dict[str, Any]:
        return self.match().describe()

    def gt_dir(self) -> Path | None:
        return self.match().paths.get("gt")

    # Index --------------------------------------------------------------------------------------
    def build_index(self) -> dict[str, tuple[Path, Path | None]]:
        """``id -> (lq path, gt path or None)``; default: LQ folder paired by ``pair_rule``."""
        paths = self.match().paths
        lq_dir, gt_dir = paths["lq"], paths.get("gt")
        assert lq_dir is not None
        gt_by_stem = by_unique_stem(list_images(gt_dir), f"{self.name}: GT folder {gt_dir}",
                                    "the GT is found by stem") if gt_dir is not None else {}
        lq_by_stem = by_unique_stem(list_images(lq_dir), f"{self.name}: LQ folder {lq_dir}",
                                    "sample ids are file stems")
        return {stem: (p, gt_by_stem.get(self.pair_rule(stem))) for stem, p in lq_by_stem.items()}

    def index(self) -> dict[str, tuple[Path, Path | None]]:
        self.match()
        if self._index is None:
            self._index = self.build_index()
            if not self._index:
                raise DataMissingError(f"{self.name}: the {self.match().layout.name} layout was "
                                       f"found but holds no image.\n"
                                       f"{self.dataset.how_to_get(data_root())}")
        return self._index

    def sample_ids(self) -> list[str]:
        return list(self.index())

    def check_available(self) -> None:
        index = self.index()
        if not self.has_gt:
            return
        layout = self.match().layout.name
        if self.gt_dir() is None:
            lq_dir = self.match().paths.get("lq")
            raise DataMissingError(
                f"{self.name}: found {len(index)} LQ image(s) ({layout} layout, {lq_dir}) but no "
                f"ground truth, so full-reference metrics cannot run.\n"
                f"{self._what_works_now(lq_dir)}{self.dataset.how_to_get(data_root())}")
        unpaired = [i for i, (_, gt) in index.items() if gt is None]
        if unpaired:
            raise DataMissingError(
                f"{self.name}: {len(unpaired)} of {len(index)} LQ image(s) have no GT partner in "
                f"{self.gt_dir()} (e.g. {unpaired[:3]}); run `bench data validate {self.name}`.")

    def _what_works_now(self, lq_dir: Path | None) -> str:
        """What the user can run today instead: related presets whose data are present (the
        ``lolv1-*`` variants for ``lolv1``), and the LQ images alone with no-reference metrics."""
        from harness.api.registries import TASKS
        from harness.api.task import build_task

        present = []
        for name in TASKS.names():
            if not name.startswith(f"{self.name}-"):
                continue
            try:
                present.append(f"{name} ({len(build_task(name).sample_ids())} images)")
            except Exception:  # absent or broken: not a suggestion
                continue
        lines = [f"Present now: -t {', -t '.join(present)}"] if present else []
        lines.append(f"Score the {len(self.index())} LQ image(s) without GT (NIQE only): "
                     f"-t 'folder[lq={lq_dir}]' --metrics niqe")
        return "".join(line + "\n" for line in lines)

    # Validation and loading -------------------------------------------------------------------------
    def probe(self, sample_id: str) -> dict[str, Any]:
        lq_path, gt_path = self.index()[sample_id]
        lq_size = image_size(lq_path)
        gt_size = None
        if gt_path is not None:
            gt_size = self.gt_size_for(image_size(gt_path), lq_size)
        elif self.has_gt and self.gt_dir() is not None:
            raise FileNotFoundError(f"no GT for {lq_path.name} in {self.gt_dir()} "
                                    f"(expected stem {self.pair_rule(lq_path.stem)!r})")
        return {"lq_size": lq_size, "gt_size": gt_size}

    def gt_size_for(self, gt_size: tuple[int, int], lq_size: tuple[int, int]) -> tuple[int, int]:
        """GT size after :meth:`prepare_gt` (presets that crop the GT override both)."""
        return gt_size

    def prepare_gt(self, gt: Any, lq: Any, meta: dict[str, Any]) -> Any:
        return gt

    def load(self, sample_id: str) -> Sample:
        lq_path, gt_path = self.index()[sample_id]
        lq, lq_conversion = read_image_info(lq_path)
        meta: dict[str, Any] = {"lq_path": str(lq_path), "gt_path": str(gt_path) if gt_path else None}
        conversions = {"lq": lq_conversion} if lq_conversion else {}
        gt = None
        if self.has_gt:
            if gt_path is None:
                raise FileNotFoundError(f"no GT for {lq_path.name} (expected stem "
                                        f"{self.pair_rule(lq_path.stem)!r} in {self.gt_dir()})")
            gt_image, gt_conversion = read_image_info(gt_path)
            if gt_conversion:
                conversions["gt"] = gt_conversion
            gt = self.prepare_gt(gt_image, lq, meta)
            if gt.shape != lq.shape:
                raise ValueError(f"{lq_path.name}: LQ {tuple(lq.shape[1:])} and GT "
                                 f"{tuple(gt.shape[1:])} differ in size")
        if conversions:
            meta["input_conversion"] = conversions
        return Sample(sample_id, lq, gt, meta)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        try:
            out["data"] = self.data_location()
        except DataMissingError:
            out["data"] = None
        return out


def layouts_for(*candidates: tuple[str, dict[str, str]] | tuple[str, dict[str, str], str],
                optional: tuple[str, ...] = ()) -> tuple[Any, ...]:
    """Shorthand: ``("official", {"lq": "a/low", "gt": "a/high"}, "note")`` → ``Layout``."""
    from harness.assets.datasets import Layout

    out = []
    for candidate in candidates:
        name, parts = candidate[0], candidate[1]
        note = candidate[2] if len(candidate) > 2 else ""
        out.append(Layout(name, tuple(parts.items()), frozenset(p for p in optional if p in parts),
                          note))
    return tuple(out)
