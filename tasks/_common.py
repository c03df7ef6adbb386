"""Shared pieces of task loaders: the data root, image listing, and clean image sets."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.api.task import DataMissingError
from harness.assets.datasets import DatasetSpec, DataSource, Layout, LayoutMatch, find_layout
from harness.io.images import IMAGE_SUFFIXES


def data_root() -> Path:
    """``$BENCH_DATA_ROOT`` (``--data-root`` sets it), default ``./data``."""
    return Path(os.environ.get("BENCH_DATA_ROOT", "data")).expanduser()


def natural_key(text: str) -> list[object]:
    """Sort ``2`` before ``10`` (file stems of most benchmarks are numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def list_images(folder: Path) -> list[Path]:
    files = [p for p in Path(folder).iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.stem))


class AmbiguousPairingError(ValueError):
    """Two files of one folder share a stem, so a sample id or its GT would be a guess."""


def by_unique_stem(files: list[Path], where: str, why: str) -> dict[str, Path]:
    """``{stem: file}``; :class:`AmbiguousPairingError` naming every clash (``z.png`` and
    ``z.tif``): picking one silently would score against the wrong image or drop a sample."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(path.stem, []).append(path)
    clashes = {stem: paths for stem, paths in groups.items() if len(paths) > 1}
    if clashes:
        shown = "; ".join(" and ".join(p.name for p in paths) for paths in list(clashes.values())[:5])
        more = f" (+{len(clashes) - 5} more stems)" if len(clashes) > 5 else ""
        raise AmbiguousPairingError(f"{where} has several files with one stem ({shown}{more}); "
                                    f"{why}, so keep one file per stem (move or rename the others)")
    return {stem: paths[0] for stem, paths in groups.items()}


def tao_square(path: Path, size: int = 256) -> torch.Tensor:
    """The TAO/LD-RPS preprocessing: centre crop along the shorter edge, PIL bicubic resize to
    ``size``×``size``, on the 8-bit image (TAO README). It reproduces TAO's LOL_256x256 low images
    bit-exactly from the 600×400 originals (pinned in tests/test_task_presets.py)."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        width, height = img.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        square = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    array = np.asarray(square, dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


@dataclass(frozen=True)
class CleanSet:
    """A folder of clean images under the data root, used by synthetic tasks.

    ``relative`` is the canonical folder (this project's layout, how CI provides the data);
    ``alternatives`` are other accepted layouts, tried in order after it. ``sizes`` are the
    benchmark's (H, W) (validation flags other sizes, e.g. FFDNet's 500×500 Kodak crops).
    """

    name: str
    relative: str
    expected_count: int
    source: str
    citation: str = ""
    alternatives: tuple[tuple[str, str], ...] = ()
    sizes: frozenset[tuple[int, int]] | None = None
    sources: tuple[DataSource, ...] = ()

    def spec(self) -> DatasetSpec:
        layouts = [Layout("canonical", (("images", self.relative),))]
        layouts += [Layout(name, (("images", rel),)) for name, rel in self.alternatives]
        return DatasetSpec(self.name, tuple(layouts),
                           (*self.sources, DataSource("manual", self.source)), self.source)

    def match(self) -> LayoutMatch:
        return find_layout(self.spec(), data_root())

    def folder(self) -> Path:
        """The detected folder (the canonical one when nothing is present)."""
        try:
            folder = self.match().paths["images"]
        except DataMissingError:
            return data_root() / self.relative
        assert folder is not None
        return folder

    def images(self) -> list[Path]:
        folder = self.match().paths["images"]
        assert folder is not None
        images = list_images(folder)
        if not images:
            raise DataMissingError(f"{self.name}: no images at {folder}.\n"
                                   f"{self.spec().how_to_get(data_root())}")
        return images


_KODAK_SIZES = frozenset({(512, 768), (768, 512)})
_BSD_SIZES = frozenset({(321, 481), (481, 321)})

CLEAN_SETS: dict[str, CleanSet] = {
    "kodak24": CleanSet("kodak24", "denoise/kodak24", 24,
                        "https://r0k.us/graphics/kodak/ (kodim01.png..kodim24.png, 768x512)",
                        "Kodak Lossless True Color Image Suite",
                        alternatives=(("upper", "denoise/Kodak24"), ("restormer", "Datasets/test/Kodak"),
                                      ("root", "Kodak24")),
                        sizes=_KODAK_SIZES,
                        sources=(DataSource("hf-files", "SCU-VIP-Lab/compression-eval-datasets",
                                            files=(("kodak/kodim*.png", "denoise/kodak24"),),
                                            note="unofficial copy; sizes checked by validate"),)),
    "cbsd68": CleanSet("cbsd68", "denoise/cbsd68", 68,
                       "https://github.com/cszn/FFDNet/tree/master/testsets/CBSD68",
                       "Martin et al., ICCV 2001 (BSD); colour set as in DnCNN/FFDNet",
                       alternatives=(("upper", "denoise/CBSD68"), ("restormer", "Datasets/test/CBSD68"),
                                     ("root", "CBSD68")),
                       sizes=_BSD_SIZES),
    # The FFDNet paper's Kodak24: 500x500 centre crops of the canonical images (its Kodak tables
    # were measured on these; later papers use the full 768x512 set above).
    "kodak24c500": CleanSet("kodak24c500", "denoise/kodak24_crop500", 24,
                            "https://github.com/cszn/FFDNet/tree/master/testsets/Kodak24 "
                            "(500x500 centre crops)",
                            "Kodak Lossless True Color Image Suite; crops as in Zhang et al., "
                            "FFDNet, TIP 2018",
                            alternatives=(("ffdnet", "FFDNet/testsets/Kodak24"),),
                            sizes=frozenset({(500, 500)})),
    "mcmaster": CleanSet("mcmaster", "denoise/mcmaster", 18,
                         "https://github.com/cszn/FFDNet/tree/master/testsets/McMaster",
                         "Zhang et al., J. Electron. Imaging 2011 (McMaster)",
                         alternatives=(("upper", "denoise/McMaster"),
                                       ("restormer", "Datasets/test/McMaster"), ("root", "McMaster")),
                         sizes=frozenset({(500, 500)})),
}
