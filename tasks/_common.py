"""Shared pieces of task loaders: the data root, image listing, and clean image sets."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.images import IMAGE_SUFFIXES
from harness.task import DataMissingError


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


@dataclass(frozen=True)
class CleanSet:
    """A folder of clean images under the data root, used by synthetic tasks."""

    name: str
    relative: str
    expected_count: int
    source: str
    citation: str = ""

    def folder(self) -> Path:
        return data_root() / self.relative

    def images(self) -> list[Path]:
        folder = self.folder()
        if not folder.is_dir() or not list_images(folder):
            raise DataMissingError(
                f"{self.name}: no images at {folder} (BENCH_DATA_ROOT={data_root()}). "
                f"Get the {self.expected_count} images from {self.source} and put them in "
                f"<BENCH_DATA_ROOT>/{self.relative}/, or run `bench data fetch` for a task "
                f"that uses {self.name}.")
        return list_images(folder)


CLEAN_SETS: dict[str, CleanSet] = {
    "kodak24": CleanSet("kodak24", "denoise/kodak24", 24,
                        "https://r0k.us/graphics/kodak/ (kodim01.png..kodim24.png, 768x512)",
                        "Kodak Lossless True Color Image Suite"),
    "cbsd68": CleanSet("cbsd68", "denoise/cbsd68", 68,
                       "https://github.com/cszn/FFDNet/tree/master/testsets/CBSD68",
                       "Martin et al., ICCV 2001 (BSD); colour set as in DnCNN/FFDNet"),
    "mcmaster": CleanSet("mcmaster", "denoise/mcmaster", 18,
                         "https://github.com/cszn/FFDNet/tree/master/testsets/McMaster",
                         "Zhang et al., J. Electron. Imaging 2011 (McMaster)"),
}
