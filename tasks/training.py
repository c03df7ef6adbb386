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
from harness.training_sets import register_training_set
from tasks._common import data_root, list_images
from tasks.degradations import Compose, build_degradation, canonical_spec, check_severity
from tasks.synthetic import SKIMAGE_PHOTOS, FolderSource, clean_source, skimage_photo


def _load_clean(clean: str | Path) -> list[tuple[str, torch.Tensor]]:
    """(id, image) pairs of a clean-set name, ``"skimage"``, a folder path, or several of them
    joined by ``+`` (``cbsd68+skimage``; ids are prefixed by their set to stay unique)."""
    if isinstance(clean, str) and "+" in clean:
        return [(f"{part}/{i}", image) for part in clean.split("+") for i, image in _load_clean(part)]
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


# Paired training splits of real benchmarks ---------------------------------------------------------
class PairedCrops(torch.utils.data.Dataset):
    """Seeded random crops of (LQ, GT) image pairs (a benchmark's training split).

    Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: pair, crop position and flip
    are drawn from a CPU generator seeded by them (as :class:`DegradedCrops`). Images are decoded
    on use (training splits are hundreds of large images; caching them would cost gigabytes).
    """

    def __init__(self, pairs: list[tuple[Path, Path]], crop: int = 128, length: int = 1000,
                 seed: int = 0, name: str = "pairs"):
        if not pairs:
            raise ValueError(f"{name}: no (LQ, GT) pairs found")
        self.pairs, self.crop, self.length = pairs, int(crop), int(length)
        self.seed, self.name = int(seed), name
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        key = f"pairs|{self.name}|{self.seed}|{self.epoch}|{index}"
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & ((1 << 63) - 1)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        draw = lambda n: int(torch.randint(n, (), generator=generator))  # noqa: E731
        lq_path, gt_path = self.pairs[draw(len(self.pairs))]
        lq, gt = read_image(lq_path), read_image(gt_path)
        if lq.shape != gt.shape:
            raise ValueError(f"{lq_path} and {gt_path} differ in size: {tuple(lq.shape)} vs "
                             f"{tuple(gt.shape)}")
        height, width = lq.shape[-2:]
        h, w = min(self.crop, height), min(self.crop, width)
        top, left = draw(height - h + 1), draw(width - w + 1)
        flip = bool(draw(2))
        crops = [x[:, top:top + h, left:left + w] for x in (lq, gt)]
        if flip:
            crops = [x.flip(-1) for x in crops]
        return crops[0].contiguous(), crops[1].contiguous()


def _pairs_by_stem(lq_dir: Path, gt_dir: Path, what: str, where: str) -> list[tuple[Path, Path]]:
    from harness.task import DataMissingError

    if not lq_dir.is_dir() or not gt_dir.is_dir():
        raise DataMissingError(f"{what}: expected LQ images in {lq_dir} and GT in {gt_dir}. {where}")
    gts = {p.stem: p for p in list_images(gt_dir)}
    return [(p, gts[p.stem]) for p in list_images(lq_dir) if p.stem in gts]


def _severity(value: int | str | list[int]) -> int | tuple[int, int]:
    if isinstance(value, int):
        return value
    if isinstance(value, list) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    low, _, high = str(value).partition("-")
    return (int(low), int(high or low))


@register_training_set("degraded", "synth")
def degraded(clean: str = "cbsd68", degradation: str = "noise+blur+lowlight",
             severity: int | str = "1-5", crop: int = 128, length: int = 10_000, seed: int = 0,
             **operator_options: Any) -> DegradedCrops:
    """Seeded degraded crops of a clean set: ``degraded[clean=cbsd68,degradation=noise,severity=1-5]``.

    Args:
        clean: a clean-set name (kodak24, cbsd68, mcmaster, skimage) or a folder of clean images.
        degradation: operator / family spec (``noise+blur+lowlight``, ``gaussian_noise``...).
        severity: a level 1-5 or a range ``"1-5"`` drawn per item.
        crop: side of the square crops.
        length: items per epoch.
    """
    return DegradedCrops(clean, degradation, severity=_severity(severity), crop=crop, length=length,
                         seed=seed, **operator_options)


@register_training_set("folder-pairs")
def folder_pairs(lq: str, gt: str, crop: int = 128, length: int = 10_000, seed: int = 0) -> PairedCrops:
    """Paired crops of two folders matched by file stem: ``folder-pairs[lq=DIR,gt=DIR]``.

    Args:
        lq: folder of degraded images.
        gt: folder of clean images with the same file stems.
    """
    pairs = _pairs_by_stem(Path(lq).expanduser(), Path(gt).expanduser(), "folder-pairs", "")
    return PairedCrops(pairs, crop, length, seed, name=f"folder-pairs:{lq}")


LOL_TRAIN_LAYOUTS = (("lowlight/LOLdataset/our485/low", "lowlight/LOLdataset/our485/high"),
                     ("LOLdataset/our485/low", "LOLdataset/our485/high"),
                     ("lowlight/LOLv1/Train/input", "lowlight/LOLv1/Train/target"),
                     ("lowlight/LOLv1/Train/low", "lowlight/LOLv1/Train/high"))


@register_training_set("lolv1-train", "lol-our485")
def lolv1_train(crop: int = 128, length: int = 10_000, seed: int = 0) -> PairedCrops:
    """LOL-v1 ``our485`` (485 pairs, 600×400), the training split every LOL-v1 paper uses.

    Args:
        crop: side of the square crops.
        length: items per epoch.
    """
    root = data_root()
    for lq, gt in LOL_TRAIN_LAYOUTS:
        if (root / lq).is_dir() and (root / gt).is_dir():
            return PairedCrops(_pairs_by_stem(root / lq, root / gt, "lolv1-train", ""), crop, length,
                               seed, name="lolv1-train")
    from harness.task import DataMissingError

    raise DataMissingError(
        f"lolv1-train: LOL-v1 our485 not found under {root} (BENCH_DATA_ROOT). Download LOLdataset.zip "
        f"from https://daooshee.github.io/BMVC2018website/ and extract it under {root / 'lowlight'} "
        f"(expected {root / LOL_TRAIN_LAYOUTS[0][0]} and .../high)")


@register_training_set("gopro-train")
def gopro_train(crop: int = 256, length: int = 10_000, seed: int = 0) -> PairedCrops:
    """GoPro train split (2103 pairs in 22 sequences; ``blur``, not ``blur_gamma``).

    Args:
        crop: side of the square crops.
        length: items per epoch.
    """
    from harness.task import DataMissingError

    root = data_root()
    for base in (root / "deblur" / "GOPRO_Large" / "train", root / "GOPRO_Large" / "train"):
        if base.is_dir():
            pairs = [pair for seq in sorted(base.iterdir()) if seq.is_dir()
                     for pair in _pairs_by_stem(seq / "blur", seq / "sharp", "gopro-train", "")]
            return PairedCrops(pairs, crop, length, seed, name="gopro-train")
    raise DataMissingError(f"gopro-train: GOPRO_Large/train not found under {root / 'deblur'}; get "
                           f"GOPRO_Large.zip from https://seungjunnah.github.io/Datasets/gopro")


@register_training_set("sidd-train")
def sidd_train(crop: int = 256, length: int = 10_000, seed: int = 0) -> PairedCrops:
    """SIDD-Medium sRGB (320 pairs: ``Data/<scene>/*NOISY_SRGB_010.PNG`` / ``*GT_SRGB_010.PNG``).

    Args:
        crop: side of the square crops.
        length: items per epoch.
    """
    from harness.task import DataMissingError

    root = data_root()
    for base in (root / "denoise" / "SIDD_Medium_Srgb" / "Data", root / "SIDD_Medium_Srgb" / "Data"):
        if base.is_dir():
            pairs = []
            for scene in sorted(base.iterdir()):
                for noisy in sorted(scene.glob("*NOISY_SRGB_*.PNG")):
                    gt = noisy.with_name(noisy.name.replace("NOISY", "GT"))
                    if gt.exists():
                        pairs.append((noisy, gt))
            return PairedCrops(pairs, crop, length, seed, name="sidd-train")
    raise DataMissingError(f"sidd-train: SIDD_Medium_Srgb/Data not found under {root / 'denoise'}; "
                           f"get SIDD-Medium sRGB from https://abdokamel.github.io/sidd/")
