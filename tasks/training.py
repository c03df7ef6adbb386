"""Training pairs for trainable restorers: seeded random crops of clean images, degraded on the fly.

``DegradedCrops("kodak24", "noise+blur+lowlight", severity=(1, 5), crop=128, length=10_000)``
is a map-style ``torch.utils.data.Dataset`` whose item ``i`` is ``(lq, gt)``, both (3,crop,crop)
float in [0,1]. Item ``i`` depends only on ``(seed, epoch, i)``: a CPU generator seeded from them
picks the image, the crop position, a horizontal flip and (for a severity range) the level, then
degrades the crop with the same generator. So the pairs are identical whatever the number of
DataLoader workers, their order, or the device; :meth:`set_epoch` gives fresh pairs each epoch.

The crop is taken *before* degrading (cheaper for large images); operators pad by reflection at
the crop border, and the haze depth proxy is computed on the crop. Clean images are decoded once
and cached in memory (the clean sets here are tens of images).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from harness.images import read_image
from tasks._common import list_images
from tasks.degradations import Compose, build_degradation, canonical_spec, check_severity
from tasks.synthetic import SKIMAGE_PHOTOS, FolderSource, clean_source, skimage_photo


def _load_clean(clean: str | Path) -> list[tuple[str, torch.Tensor]]:
    """(id, image) pairs of a clean-set name, ``"skimage"``, or a folder path."""
    path = Path(clean).expanduser()
    if path.is_dir():
        return [(p.stem, read_image(p)) for p in list_images(path)]
    source = clean_source(str(clean))
    if source == "skimage":
        return [(name, skimage_photo(name, crop=0)) for name in SKIMAGE_PHOTOS]
    assert isinstance(source, FolderSource)
    return [(stem, read_image(p)) for stem, p in source.paths().items()]


class DegradedCrops(torch.utils.data.Dataset):
    """Seeded random crops of a clean folder, degraded by an operator mixture.

    Args:
        clean: a clean-set name (``kodak24``, ``cbsd68``, ``mcmaster``, ``skimage``) or a folder.
        degradation: operator/family spec, e.g. ``noise+blur+lowlight`` or ``gaussian_noise``.
        severity: a level 1-5, or an inclusive ``(low, high)`` range drawn per item.
        crop: side of the square crops (images smaller than that are used whole).
        length: items per epoch.
        seed: base seed; with ``epoch`` and the index it fixes every item.
        return_params: also return the drawn parameters as a JSON string (collates as a list).
        operator_options: passed to the operators (e.g. ``color_cast=True``).
    """

    def __init__(self, clean: str | Path, degradation: str, severity: int | tuple[int, int] = 3,
                 crop: int = 128, length: int = 1000, seed: int = 0, return_params: bool = False,
                 **operator_options: Any):
        self.spec = canonical_spec(degradation)
        low, high = (severity, severity) if isinstance(severity, int) else severity
        self.levels = list(range(check_severity(low), check_severity(high) + 1))
        if not self.levels:
            raise ValueError(f"severity range {severity} is empty; give (low, high) with low <= high")
        self.operators: dict[int, Compose] = {
            level: build_degradation(self.spec, level, **operator_options) for level in self.levels}
        self.crop, self.length, self.seed = int(crop), int(length), int(seed)
        self.return_params = return_params
        self.epoch = 0
        self.images = _load_clean(clean)
        if not self.images:
            raise ValueError(f"no clean images found for {clean!r}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def item_seed(self, index: int) -> int:
        key = f"train|{self.spec}|{self.seed}|{self.epoch}|{index}"
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & ((1 << 63) - 1)

    def sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """``(lq, gt, params)`` of item ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        seed = self.item_seed(index)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        draw = lambda n: int(torch.randint(n, (), generator=generator))  # noqa: E731
        image_id, image = self.images[draw(len(self.images))]
        level = self.levels[draw(len(self.levels))]
        height, width = image.shape[-2:]
        h, w = min(self.crop, height), min(self.crop, width)
        top, left = draw(height - h + 1), draw(width - w + 1)
        flip = bool(draw(2))
        gt = image[:, top:top + h, left:left + w]
        gt = (gt.flip(-1) if flip else gt).contiguous()
        lq, params = self.operators[level](gt, generator)
        return lq, gt, {"image_id": image_id, "top": top, "left": left, "flip": flip,
                        "severity": level, "seed": seed, **params}

    def __getitem__(self, index: int):
        lq, gt, params = self.sample(index)
        if self.return_params:
            return lq, gt, json.dumps(params)
        return lq, gt
