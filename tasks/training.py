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
import inspect
import json
from pathlib import Path
from typing import Any, Literal

import torch

from harness.api.training_sets import register_training_set
from harness.io.images import read_image
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


#: the ``degradation`` alternative that leaves the crop clean (lq = gt)
CLEAN_ALTERNATIVE = "none"


def _alternative_spec(part: str) -> str:
    part = part.strip()
    return CLEAN_ALTERNATIVE if part == CLEAN_ALTERNATIVE else canonical_spec(part)


def _build_alternative(spec: str, level: int, options: dict[str, Any], several: bool) -> Compose | None:
    """The operator of one alternative at one level (``None`` for ``none``). With several
    alternatives an option goes only to those whose operators take it (``options_used`` records
    which); with one, an option no operator takes is an error, as in :func:`build_degradation`."""
    if spec == CLEAN_ALTERNATIVE:
        return None
    if not several:
        operator = build_degradation(spec, level, **options)
        operator.options_used = set(options)  # type: ignore[attr-defined]
        return operator
    from tasks.degradations.compose import operator_class

    accepted: set[str] = set()
    for token in spec.split("+"):
        accepted |= set(inspect.signature(operator_class(token).__init__).parameters)
    taken = {k: v for k, v in options.items() if k in accepted}
    operator = build_degradation(spec, level, **taken)
    operator.options_used = set(taken)  # type: ignore[attr-defined]
    return operator


class DegradedCrops(torch.utils.data.Dataset):
    """Seeded random crops of a clean folder, degraded by an operator mixture.

    Args:
        clean: a clean-set name (``kodak24``, ``cbsd68``, ``mcmaster``, ``skimage``) or a folder.
        degradation: operator/family spec, e.g. ``noise+blur+lowlight`` or ``gaussian_noise``; or
            several specs joined by ``|`` (``noise|haze|rain|noise+blur+lowlight|none``): each item
            then draws one of them uniformly (list one twice to double its share; ``none`` gives
            a clean pair, lq = gt), as all-in-one restorers train (AirNet, PromptIR).
        severity: a level 1-5, or an inclusive ``(low, high)`` range drawn per item.
        crop: side of the square crops (images smaller than that are used whole).
        length: items per epoch.
        seed: base seed; with ``epoch`` and the index it fixes every item.
        return_params: also return the drawn parameters as a JSON string (collates as a list).
        quantize: round the degraded crop to 8 bits, as the evaluation inputs are stored (it
            matters in the dark, where a few codes hold the whole image).
        operator_options: passed to the operators (e.g. ``color_cast=True``); with alternatives,
            to those alternatives whose operators take the option.
    """

    def __init__(self, clean: str | Path, degradation: str, severity: int | tuple[int, int] = 3,
                 crop: int = 128, length: int = 1000, seed: int = 0, return_params: bool = False,
                 quantize: bool = False, **operator_options: Any):
        self.alternatives = [_alternative_spec(part) for part in str(degradation).split("|")]
        self.spec = "|".join(self.alternatives)
        low, high = (severity, severity) if isinstance(severity, int) else severity
        self.levels = list(range(check_severity(low), check_severity(high) + 1))
        if not self.levels:
            raise ValueError(f"severity range {severity} is empty; give (low, high) with low <= high")
        self.operators: dict[tuple[str, int], Compose | None] = {
            (alt, level): _build_alternative(alt, level, operator_options, len(self.alternatives) > 1)
            for alt in dict.fromkeys(self.alternatives) for level in self.levels}
        unused = sorted(set(operator_options) - {key for op in self.operators.values() if op is not None
                                                 for key in getattr(op, "options_used", ())})
        if unused:
            raise ValueError(f"degradation {degradation!r}: no operator takes option(s) {unused}")
        self.crop, self.length, self.seed = int(crop), int(length), int(seed)
        self.return_params, self.quantize = return_params, bool(quantize)
        self.epoch = 0
        self.images = _load_clean(clean)
        if not self.images:
            raise ValueError(f"no clean images found for {clean!r}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_crop(self, crop: int) -> None:
        """Change the crop side (progressive patches: the loop calls it at a stage boundary)."""
        self.crop = int(crop)

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
        alternative = self.alternatives[0]
        if len(self.alternatives) > 1:  # drawn last, so a single spec draws as it always did
            alternative = self.alternatives[draw(len(self.alternatives))]
        operator = self.operators[(alternative, level)]
        lq, params = (gt.clone(), {"order": [], "ops": []}) if operator is None else operator(gt, generator)
        if self.quantize:
            lq = (lq * 255.0).round() / 255.0
        extra = {"degradation": alternative} if len(self.alternatives) > 1 else {}
        return lq, gt, {"image_id": image_id, "top": top, "left": left, "flip": flip,
                        "severity": level, "seed": seed, **extra, **params}

    def __getitem__(self, index: int):
        lq, gt, params = self.sample(index)
        if self.return_params:
            return lq, gt, json.dumps(params)
        return lq, gt


Augment = Literal["hflip", "dihedral"]


# Paired training splits of real benchmarks ---------------------------------------------------------
class PairedCrops(torch.utils.data.Dataset):
    """Seeded random crops of (LQ, GT) image pairs (a benchmark's training split).

    Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: pair, crop position and flip
    are drawn from a CPU generator seeded by them (as :class:`DegradedCrops`). Images are decoded
    on use (training splits are hundreds of large images; caching them would cost gigabytes).

    Args:
        pairs: ``(LQ path, GT path)`` pairs of equal-sized images.
        crop: side of the square crops (:meth:`set_crop` changes it: progressive patches).
        length: items per epoch.
        seed: base seed; with the epoch and the index it fixes every item.
        name: the set's name (part of the item seeds, so two sets draw differently).
        augment: ``hflip`` (a random horizontal flip) or ``dihedral`` (BasicSR ``augment``: random
            horizontal flip, vertical flip and, on square crops, a 90° rotation).
        pad: reflect-pad pairs smaller than the crop up to the crop (BasicSR ``padding``), so sets
            of mixed image sizes still batch; off, a small pair is used whole.
    """

    AUGMENTS = ("hflip", "dihedral")

    def __init__(self, pairs: list[tuple[Path, Path]], crop: int = 128, length: int = 1000,
                 seed: int = 0, name: str = "pairs", augment: str = "hflip", pad: bool = False):
        if not pairs:
            raise ValueError(f"{name}: no (LQ, GT) pairs found")
        if augment not in self.AUGMENTS:
            raise ValueError(f"{name}: augment={augment!r}; choose one of {self.AUGMENTS}")
        self.pairs, self.crop, self.length = pairs, int(crop), int(length)
        self.seed, self.name = int(seed), name
        self.augment, self.pad = augment, bool(pad)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_crop(self, crop: int) -> None:
        """Change the crop side (progressive patches: the loop calls it at a stage boundary)."""
        self.crop = int(crop)

    def __len__(self) -> int:
        return self.length

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = max(0, self.crop - height), max(0, self.crop - width)
        if not (pad_h or pad_w):
            return x
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        return torch.nn.functional.pad(x[None], (0, pad_w, 0, pad_h), mode=mode)[0]

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
        if self.pad:
            lq, gt = self._padded(lq), self._padded(gt)
        height, width = lq.shape[-2:]
        h, w = min(self.crop, height), min(self.crop, width)
        top, left = draw(height - h + 1), draw(width - w + 1)
        flip = bool(draw(2))
        crops = [x[:, top:top + h, left:left + w] for x in (lq, gt)]
        if flip:
            crops = [x.flip(-1) for x in crops]
        if self.augment == "dihedral":
            vflip, rotate = bool(draw(2)), bool(draw(2))
            if vflip:
                crops = [x.flip(-2) for x in crops]
            if rotate and h == w:  # a 90° turn of a non-square crop would not batch
                crops = [x.transpose(-2, -1) for x in crops]
        return crops[0].contiguous(), crops[1].contiguous()


def _pairs_by_stem(lq_dir: Path, gt_dir: Path, what: str, where: str) -> list[tuple[Path, Path]]:
    from harness.api.task import DataMissingError

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
             quantize: bool = False, **operator_options: Any) -> DegradedCrops:
    """Seeded degraded crops of a clean set: ``degraded[clean=cbsd68,degradation=noise,severity=1-5]``.

    Args:
        clean: a clean-set name (kodak24, cbsd68, mcmaster, skimage) or a folder of clean images.
        degradation: operator / family spec (``noise+blur+lowlight``, ``gaussian_noise``...), or
            several joined by ``|`` of which each crop draws one (``none``: a clean pair).
        severity: a level 1-5 or a range ``"1-5"`` drawn per item.
        crop: side of the square crops.
        length: items per epoch.
        quantize: round the degraded crops to 8 bits (as stored evaluation inputs are).
    """
    return DegradedCrops(clean, degradation, severity=_severity(severity), crop=crop, length=length,
                         seed=seed, quantize=quantize, **operator_options)


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
def lolv1_train(crop: int = 128, length: int = 10_000, seed: int = 0,
                augment: Augment = "hflip") -> PairedCrops:
    """LOL-v1 ``our485`` (485 pairs, 600×400), the training split every LOL-v1 paper uses.

    Args:
        crop: side of the square crops.
        length: items per epoch.
        augment: ``hflip`` (default) or ``dihedral`` (flips + 90° rotations, BasicSR ``augment``).
    """
    root = data_root()
    for lq, gt in LOL_TRAIN_LAYOUTS:
        if (root / lq).is_dir() and (root / gt).is_dir():
            return PairedCrops(_pairs_by_stem(root / lq, root / gt, "lolv1-train", ""), crop, length,
                               seed, name="lolv1-train", augment=augment)
    from harness.api.task import DataMissingError

    raise DataMissingError(
        f"lolv1-train: LOL-v1 our485 not found under {root} (BENCH_DATA_ROOT). Download LOLdataset.zip "
        f"from https://daooshee.github.io/BMVC2018website/ and extract it under {root / 'lowlight'} "
        f"(expected {root / LOL_TRAIN_LAYOUTS[0][0]} and .../high)")


@register_training_set("gopro-train")
def gopro_train(crop: int = 256, length: int = 10_000, seed: int = 0,
                augment: Augment = "hflip") -> PairedCrops:
    """GoPro train split (2103 pairs in 22 sequences; ``blur``, not ``blur_gamma``).

    Args:
        crop: side of the square crops.
        length: items per epoch.
        augment: ``hflip`` (default) or ``dihedral`` (flips + 90° rotations, BasicSR ``augment``).
    """
    from harness.api.task import DataMissingError

    root = data_root()
    for base in (root / "deblur" / "GOPRO_Large" / "train", root / "GOPRO_Large" / "train"):
        if base.is_dir():
            pairs = [pair for seq in sorted(base.iterdir()) if seq.is_dir()
                     for pair in _pairs_by_stem(seq / "blur", seq / "sharp", "gopro-train", "")]
            return PairedCrops(pairs, crop, length, seed, name="gopro-train", augment=augment)
    raise DataMissingError(f"gopro-train: GOPRO_Large/train not found under {root / 'deblur'}; get "
                           f"GOPRO_Large.zip from https://seungjunnah.github.io/Datasets/gopro")


@register_training_set("sidd-train")
def sidd_train(crop: int = 256, length: int = 10_000, seed: int = 0,
               augment: Augment = "hflip") -> PairedCrops:
    """SIDD-Medium sRGB (320 pairs: ``Data/<scene>/*NOISY_SRGB_010.PNG`` / ``*GT_SRGB_010.PNG``).

    Args:
        crop: side of the square crops.
        length: items per epoch.
        augment: ``hflip`` (default) or ``dihedral`` (flips + 90° rotations, BasicSR ``augment``).
    """
    from harness.api.task import DataMissingError

    root = data_root()
    for base in (root / "denoise" / "SIDD_Medium_Srgb" / "Data", root / "SIDD_Medium_Srgb" / "Data"):
        if base.is_dir():
            pairs = []
            for scene in sorted(base.iterdir()):
                for noisy in sorted(scene.glob("*NOISY_SRGB_*.PNG")):
                    gt = noisy.with_name(noisy.name.replace("NOISY", "GT"))
                    if gt.exists():
                        pairs.append((noisy, gt))
            return PairedCrops(pairs, crop, length, seed, name="sidd-train", augment=augment)
    raise DataMissingError(f"sidd-train: SIDD_Medium_Srgb/Data not found under {root / 'denoise'}; "
                           f"get SIDD-Medium sRGB from https://abdokamel.github.io/sidd/")


# Training splits whose layouts mirror the evaluation tasks' (tasks/derain, underwater, lowlight) ----
def _spec_pairs(spec: Any, what: str, pair_rule: Any = None) -> list[tuple[Path, Path]]:
    """(LQ, GT) pairs of the first layout of ``spec`` found under BENCH_DATA_ROOT; a missing set
    raises :class:`DataMissingError` with the sources and every accepted layout."""
    from harness.api.task import DataMissingError
    from harness.assets.datasets import find_layout

    root = data_root()
    try:
        paths = find_layout(spec, root).paths
    except DataMissingError as exc:
        raise DataMissingError(f"{what}: {exc}") from None
    lq_dir, gt_dir = paths["lq"], paths["gt"]
    assert lq_dir is not None and gt_dir is not None
    gts = {p.stem: p for p in list_images(gt_dir)}
    pairs = []
    for lq in list_images(lq_dir):
        stem = lq.stem if lq.stem in gts or pair_rule is None else pair_rule(lq.stem)
        if stem in gts:
            pairs.append((lq, gts[stem]))
    return pairs


def _rain13k_spec() -> Any:
    from harness.assets.datasets import DatasetSpec, DataSource
    from tasks._dataset import layouts_for

    return DatasetSpec(
        "Rain13K train (Restormer)",
        layouts=layouts_for(
            ("restormer", {"lq": "derain/Rain13K/input", "gt": "derain/Rain13K/target"},
             "Restormer Datasets/train/Rain13K/{input,target}, the folder pair rain100l's layouts use"),
            ("restormer-train", {"lq": "derain/train/Rain13K/input", "gt": "derain/train/Rain13K/target"}),
            ("restormer-root", {"lq": "Datasets/train/Rain13K/input", "gt": "Datasets/train/Rain13K/target"}),
            ("root", {"lq": "Rain13K/input", "gt": "Rain13K/target"}),
        ),
        sources=(DataSource("manual", "https://github.com/swz30/Restormer/blob/main/Deraining/download_data.py",
                            note="`python download_data.py --data train` (Google Drive train.zip: "
                                 "train/Rain13K/{input,target}, 13,712 pairs)"),),
        homepage="https://github.com/swz30/Restormer/tree/main/Deraining",
    )


@register_training_set("rain13k-train", "rain13k")
def rain13k_train(crop: int = 128, length: int = 10_000, seed: int = 0, augment: Augment = "hflip",
                  pad: bool = True) -> PairedCrops:
    """Rain13K (Restormer's deraining training set, 13,712 pairs), the training set of Rain100L.

    Pairs are matched by file stem (``rain-XXX`` also matches ``norain-XXX``, as in ``rain100l``).
    The images differ in size, so pairs smaller than the crop are reflect-padded (``pad``).

    Args:
        crop: side of the square crops.
        length: items per epoch.
        augment: ``hflip`` or ``dihedral`` (flips + 90° rotations, BasicSR ``augment``).
        pad: reflect-pad pairs smaller than the crop (BasicSR ``padding``).
    """
    from tasks.derain import rain_to_norain

    pairs = _spec_pairs(_rain13k_spec(), "rain13k-train", rain_to_norain)
    return PairedCrops(pairs, crop, length, seed, name="rain13k-train", augment=augment, pad=pad)


def uieb_train_pairs() -> list[tuple[Path, Path]]:
    """UIEB pairs (the ``uieb-t90`` task's layouts) minus every image of the T90 split.

    Names are compared by file name *and* by stem, so a copy re-encoded to another format still
    keeps its T90 images out of training."""
    from tasks.underwater import UIEB_SPEC, split_names

    test = split_names()
    names, stems = set(test), {Path(name).stem for name in test}
    return [(lq, gt) for lq, gt in _spec_pairs(UIEB_SPEC, "uieb-train")
            if lq.name not in names and lq.stem not in stems
            and gt.name not in names and gt.stem not in stems]


@register_training_set("uieb-train", "uieb-t800")
def uieb_train(crop: int = 128, length: int = 10_000, seed: int = 0, augment: Augment = "hflip",
               pad: bool = True) -> PairedCrops:
    """UIEB's 890 raw/reference pairs minus the 90 of ``tasks/splits/uieb_t90.txt``: 800 pairs.

    Same folders as the ``uieb-t90`` task (``underwater/UIEB/raw-890``, ``reference-890``); the
    split file's sha256 is checked as there. UIEB images differ in size, so pairs smaller than the
    crop are reflect-padded (``pad``).

    Args:
        crop: side of the square crops.
        length: items per epoch.
        augment: ``hflip`` or ``dihedral`` (flips + 90° rotations, BasicSR ``augment``).
        pad: reflect-pad pairs smaller than the crop (BasicSR ``padding``).
    """
    return PairedCrops(uieb_train_pairs(), crop, length, seed, name="uieb-train", augment=augment,
                       pad=pad)


def _baid_train_spec() -> Any:
    from harness.assets.datasets import DatasetSpec
    from tasks._dataset import layouts_for
    from tasks.lowlight import BAID_SPEC

    return DatasetSpec(
        "BAID train (backlit)",
        layouts=layouts_for(
            ("baid-input-gt", {"lq": "lowlight/BAID/train/input", "gt": "lowlight/BAID/train/GT"}),
            ("baid-input-target", {"lq": "lowlight/BAID/train/input", "gt": "lowlight/BAID/train/target"}),
            ("baid-root", {"lq": "BAID/train/input", "gt": "BAID/train/GT"}),
            ("ci", {"lq": "lowlight/baid_train/input", "gt": "lowlight/baid_train/gt"}),
        ),
        sources=BAID_SPEC.sources,
        homepage=BAID_SPEC.homepage,
    )


@register_training_set("baid-train")
def baid_train(crop: int = 128, length: int = 10_000, seed: int = 0, augment: Augment = "hflip",
               pad: bool = True) -> PairedCrops:
    """BAID's training split (Lv et al. 2022): the ``train/`` sibling of the ``baid`` task's
    ``test/`` folder (368 test pairs there), in the same ``input`` / ``GT`` (or ``target``) layout.

    The release's folder names are unverified offline (see ``tasks/lowlight.py``); a copy in
    another layout can be used with ``folder-pairs[lq=…,gt=…]``.

    Args:
        crop: side of the square crops.
        length: items per epoch.
        augment: ``hflip`` or ``dihedral`` (flips + 90° rotations, BasicSR ``augment``).
        pad: reflect-pad pairs smaller than the crop (BasicSR ``padding``).
    """
    return PairedCrops(_spec_pairs(_baid_train_spec(), "baid-train"), crop, length, seed,
                       name="baid-train", augment=augment, pad=pad)
