"""Synthetic-degradation tasks over clean image sets: ``synth:CLEAN:SPEC@LEVEL`` and presets.

``synth:kodak24:noise+blur+lowlight@3`` degrades every Kodak24 image with the
``noise+blur+lowlight`` mixture at severity 3 (see :mod:`tasks.degradations`). Options ride in
brackets: ``'synth:kodak24:lowlight@2[color_cast=true,crop=256]'``; ``crop`` takes a centre
crop (after which the image is degraded), any other option goes to the operators.

Clean sets are the folders of ``tasks._common.CLEAN_SETS`` under the data root (kodak24,
cbsd68, mcmaster), ``skimage`` (the five scikit-image photographs of the ``demo`` task, 256×256,
always available offline), or any folder: ``'synth:mine:jpeg@4[clean_dir=/path/to/pngs]'``.

Seeding: each image gets its own CPU ``torch.Generator`` seeded by :meth:`SyntheticTask.image_seed`,
a hash of the clean set, the canonical degradation spec (without the level), the task seed and
the image id. The task's display name and the severity are deliberately left out: the preset
``kodak24-mixed-s3`` and the spec string it stands for draw identically, and the five levels of a
severity study share their random numbers (common random numbers), so a severity curve shows the
effect of the level, not of a new noise draw. Everything drawn is in ``meta["degradation"]``.

Metric conventions: RGB, no border crop, outputs quantised to 8 bit (as the AWGN tasks).
Restorers are not told the parameters (blind): ``meta`` holds them only under ``degradation``.
"""

from __future__ import annotations

import hashlib
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch

from harness.api.options import Range as OptionRange
from harness.api.task import TASKS, DataMissingError, MetricConventions, Sample, Task, register_task
from harness.io.images import read_image
from tasks._common import CLEAN_SETS, list_images
from tasks.degradations import OPERATORS, build_degradation, canonical_spec, check_severity
from tasks.degradations.compose import operator_class

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")
SKIMAGE_CROP = 256


def skimage_photo(name: str, crop: int = SKIMAGE_CROP) -> torch.Tensor:
    """A scikit-image sample photograph, centre-cropped to ``crop``², as (3,H,W) float [0,1]."""
    from skimage import data

    array = getattr(data, name)()
    if isinstance(array, tuple):  # stereo pairs: the left view
        array = array[0]
    image = torch.from_numpy(array[..., :3].copy()).permute(2, 0, 1).float() / 255.0
    return centre_crop(image, crop)


def centre_crop(image: torch.Tensor, size: int | None) -> torch.Tensor:
    if not size:
        return image
    height, width = image.shape[-2:]
    h, w = min(size, height), min(size, width)
    top, left = (height - h) // 2, (width - w) // 2
    return image[:, top:top + h, left:left + w].contiguous()


# Clean image sources ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FolderSource:
    """Clean images in a folder; ``ids`` are file stems in natural order."""

    name: str
    folder_fn: Any  # () -> list[Path]; raises DataMissingError with a how-to-fix message
    expected_count: int | None = None
    citation: str = ""

    def paths(self) -> dict[str, Path]:
        return {p.stem: p for p in self.folder_fn()}

    def read(self, sample_id: str, paths: dict[str, Path]) -> torch.Tensor:
        return read_image(paths[sample_id])


def clean_source(name: str, clean_dir: str | None = None) -> FolderSource | str:
    """The named clean set, ``"skimage"``, or an ad-hoc folder given by ``clean_dir``."""
    if clean_dir is not None:
        folder = Path(clean_dir).expanduser()

        def listing() -> list[Path]:
            if not folder.is_dir() or not list_images(folder):
                raise DataMissingError(f"synth:{name}: no images in clean_dir={folder}")
            return list_images(folder)

        return FolderSource(name, listing)
    if name == "skimage":
        return "skimage"
    if name in CLEAN_SETS:
        clean = CLEAN_SETS[name]
        return FolderSource(name, clean.images, clean.expected_count, clean.citation)
    raise ValueError(f"unknown clean set {name!r}; use one of {sorted([*CLEAN_SETS, 'skimage'])} "
                     f"or give a folder: 'synth:NAME:SPEC@LEVEL[clean_dir=/path]'")


# The task --------------------------------------------------------------------------------------------
class SyntheticTask(Task):
    """Clean images degraded on load by a seeded operator mixture."""

    conventions = MetricConventions(color_space="rgb", crop_border=0, quantize=True)

    def __init__(self, clean: str, spec: str, severity: int, *, crop: int | None = None,
                 clean_dir: str | None = None, name: str = "", description: str = "",
                 **operator_options: Any):
        super().__init__()
        self.clean_name = clean
        self.source = clean_source(clean, clean_dir)
        self.spec = canonical_spec(spec)
        self.severity = check_severity(severity)
        self.crop = int(crop) if crop else None
        self.degradation_op = build_degradation(self.spec, self.severity, **operator_options)
        families = {operator_class(t).family for t in self.spec.split("+")}
        self.degradation = families.pop() if len(families) == 1 else "mixed"
        self.name = name or f"synth:{clean}:{self.spec}@{self.severity}"
        self.description = description or (
            f"{clean} degraded by {self.spec} at severity {self.severity} "
            f"({' → '.join(self.degradation_op.order)}), seeded per image")
        if isinstance(self.source, FolderSource):
            self.expected_count = self.source.expected_count
            self.citation = self.source.citation
        else:
            self.expected_count = len(SKIMAGE_PHOTOS)
            self.citation = "scikit-image data module (public-domain / CC0 images)"
        self.options = {"clean": clean, "degradation": self.spec, "severity": self.severity,
                        "crop": self.crop, **({"clean_dir": clean_dir} if clean_dir else {}),
                        **operator_options}
        self._paths: dict[str, Path] | None = None

    def _index(self) -> dict[str, Path]:
        if self._paths is None:
            assert isinstance(self.source, FolderSource)
            self._paths = self.source.paths()
        return self._paths

    def sample_ids(self) -> list[str]:
        if self.source == "skimage":
            return list(SKIMAGE_PHOTOS)
        return list(self._index())

    def clean_image(self, sample_id: str) -> torch.Tensor:
        if self.source == "skimage":
            if sample_id not in SKIMAGE_PHOTOS:
                raise KeyError(f"{sample_id!r} is not one of {SKIMAGE_PHOTOS}")
            return centre_crop(skimage_photo(sample_id), self.crop)
        assert isinstance(self.source, FolderSource)
        return centre_crop(self.source.read(sample_id, self._index()), self.crop)

    def image_seed(self, sample_id: str) -> int:
        """Seed from clean set, canonical spec, task seed and id (not name or level; see module)."""
        key = f"synth|{self.clean_name}|{self.spec}|{self.seed}|{sample_id}"
        digest = hashlib.sha256(key.encode()).digest()
        return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)

    def degrade(self, clean: torch.Tensor, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        lq, params = self.degradation_op(clean, generator)
        return lq, {"spec": self.spec, "severity": self.severity, "seed": seed, **params}

    def load(self, sample_id: str) -> Sample:
        clean = self.clean_image(sample_id)
        lq, record = self.degrade(clean, self.image_seed(sample_id))
        meta: dict[str, Any] = {"degradation": record}
        if isinstance(self.source, FolderSource):
            meta["gt_path"] = str(self._index()[sample_id])
        return Sample(sample_id, lq, clean, meta)


# Spec strings and presets ------------------------------------------------------------------------------
def parse_synth(name: str) -> tuple[str, str, int]:
    """``synth:kodak24:noise+blur+lowlight@3`` → ``("kodak24", "noise+blur+lowlight", 3)``."""
    body = name[len("synth:"):]
    clean, sep, rest = body.partition(":")
    spec, at, level = rest.rpartition("@")
    if not sep or not clean or not at or not spec:
        raise ValueError(f"cannot parse task {name!r}; expected synth:CLEAN:SPEC@LEVEL, e.g. "
                         "synth:kodak24:noise+blur+lowlight@3")
    try:
        severity = check_severity(int(level))
    except ValueError as exc:
        raise ValueError(f"task {name!r}: the level after '@' must be 1-5") from exc
    return clean, spec, severity


def _resolve(name: str):
    clean, spec, severity = parse_synth(name)
    canonical_spec(spec)  # fail now, at lookup, on a bad spec

    def factory(**options: Any) -> Task:
        return SyntheticTask(clean, spec, severity, **options)

    return declare_options(factory, spec)


def _task_options(crop: Annotated[int, OptionRange(8, 8192)] | None = None,
                  clean_dir: str | None = None) -> None:
    """The options every synthetic task takes besides its operators'.

    Args:
        crop: side of the centre crop taken before degrading; null = the whole image.
        clean_dir: a folder of clean images (for a clean set that is not built in).
    """


def declare_options(factory: Any, spec: str) -> Any:
    """Give a ``**options`` factory the signature (and type hints) of what it really takes:
    ``crop``, ``clean_dir`` and the options of the operators of ``spec`` (``sigma``,
    ``color_cast``). ``harness.api.options.declared_options`` then validates user values and
    ``bench list tasks`` shows them, from the operators' own constructor hints."""
    params = dict(inspect.signature(_task_options).parameters)
    hints = typing.get_type_hints(_task_options, include_extras=True)
    for token in canonical_spec(spec).split("+"):
        init = operator_class(token).__init__
        op_hints = typing.get_type_hints(init, include_extras=True)
        for name, param in inspect.signature(init).parameters.items():
            if name in ("self", "severity", "sensor_noise") or name in params:
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            params[name] = param.replace(kind=param.KEYWORD_ONLY)
            if name in op_hints:
                hints[name] = op_hints[name]
    keyword = [p.replace(kind=p.KEYWORD_ONLY) for p in params.values()]
    factory.__signature__ = inspect.Signature(keyword, return_annotation=Task)
    factory.__annotations__ = {**hints, "return": Task}
    factory.__doc__ = (factory.__doc__ or "") + "\n\n" + (_task_options.__doc__ or "")
    return factory


TASKS.add_resolver("synth:", _resolve)


def _preset(name: str, clean: str, spec: str, severity: int) -> None:
    def factory(**options: Any) -> Task:
        return SyntheticTask(clean, spec, severity, name=name, **options)

    factory.__doc__ = f"{clean} + {spec} at severity {severity}"
    register_task(name)(declare_options(factory, spec))


for _level in range(1, 6):
    _preset(f"kodak24-mixed-s{_level}", "kodak24", "noise+blur+lowlight", _level)
for _clean in ("mcmaster", "cbsd68"):
    _preset(f"{_clean}-mixed-s3", _clean, "noise+blur+lowlight", 3)
for _op in OPERATORS:
    _preset(f"kodak24-{_op.replace('_', '-')}-s3", "kodak24", _op, 3)
