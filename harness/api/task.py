"""The ``Task`` interface, metric conventions, and the task registry.

A task is a fixed, ordered list of sample ids plus a way to load each one. Loading is per id (not
an iterator) so the runner can prefetch in a thread, skip finished ids on ``--resume``, and record
a single unreadable image as failed without ending the run.

Metric conventions (colour space, border crop, GT-mean, 8-bit quantisation) belong to the task,
because they are what makes a number comparable with a paper table (``conventions.md`` §2). Each
is a named option, written to ``results.json`` and logged as an MLflow param.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any, Literal

import torch

from harness.api.options import OptionSpec, Range, accepts_extra, declared_options, validate_options
from harness.api.registries import TASKS

COLOR_SPACES = ("rgb", "ycbcr601", "yiq")


@dataclass(frozen=True)
class MetricConventions:
    """How a benchmark scores its images.

    Attributes:
        color_space: ``rgb``; ``ycbcr601`` (BT.601 limited-range Y, MATLAB ``rgb2ycbcr``, the
            deraining convention); ``yiq`` (full-range luma, pyiqa's default Y).
        crop_border: pixels removed from every side before full-reference metrics.
        gt_mean: rescale the output so its grey mean matches the GT's (LOL "GT-mean" protocol).
        quantize: round the output to 8-bit levels before scoring (BasicSR ``tensor2img``,
            the DnCNN/KAIR test scripts); off = score the float output (Retinexformer).
        ssim: ``wang`` (Gaussian 11/σ1.5, valid, per-channel mean) is what pyiqa implements;
            kept as a field so a future MATLAB-3D variant is a named option, not a silent change.
        ssim_color_space: colour space of SSIM when it differs from PSNR's (the LD-RPS/pyiqa
            protocol scores RGB PSNR but Y(yiq) SSIM); ``None`` = same as ``color_space``.
    """

    color_space: Literal["rgb", "ycbcr601", "yiq"] = "rgb"
    crop_border: Annotated[int, Range(0, 256)] = 0
    gt_mean: bool = False
    quantize: bool = True
    ssim: Literal["wang"] = "wang"
    ssim_color_space: Literal["rgb", "ycbcr601", "yiq"] | None = None

    def __post_init__(self) -> None:
        for name in ("color_space", "ssim_color_space"):
            value = getattr(self, name)
            if value is not None and value not in COLOR_SPACES:
                raise ValueError(f"{name} must be one of {COLOR_SPACES}, got {value!r}")
        if self.ssim != "wang":
            raise ValueError(f"ssim={self.ssim!r}: only 'wang' (pyiqa) is implemented")
        if self.crop_border < 0:
            raise ValueError("crop_border must be >= 0")

    def as_params(self) -> dict[str, Any]:
        return {f"metric.{k}": v for k, v in asdict(self).items()}

    def with_options(self, **options: Any) -> MetricConventions:
        return replace(self, **options)


@dataclass
class Sample:
    """One evaluation item: ``lq`` and ``gt`` are (3,H,W) float tensors in [0,1] on the CPU."""

    id: str
    lq: torch.Tensor
    gt: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class DataMissingError(FileNotFoundError):
    """A task's data are not where it looks; the message says where to get them and put them."""


class Task(ABC):
    """Base class of every task.

    Subclasses set ``name``, ``description``, ``citation``, ``conventions``, ``has_gt`` and
    implement :meth:`sample_ids` and :meth:`load`. ``options`` are the preset's knobs (logged).
    """

    name: str = ""
    description: str = ""
    citation: str = ""
    #: "lowlight", "noise", "blur", "rain", "haze", "underwater", "mixed", ...
    degradation: str = ""
    has_gt: bool = True
    conventions: MetricConventions = MetricConventions()
    #: Number of samples the canonical benchmark has (for partial-set reporting), if known.
    expected_count: int | None = None
    #: Base seed for synthetic degradations; per-image seeds derive from it and the image id.
    seed: int = 0
    version: str = "1"

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    @abstractmethod
    def sample_ids(self) -> list[str]:
        """Stable ids in a fixed order. Raises :class:`DataMissingError` if data are absent."""

    @abstractmethod
    def load(self, sample_id: str) -> Sample:
        """Load (and for synthetic tasks, degrade) one sample; may raise for a bad file."""

    def check_available(self) -> None:
        """Raise :class:`DataMissingError` (with a how-to-fix message) if data are missing."""
        self.sample_ids()

    def default_metrics(self) -> list[str]:
        """Full-reference + no-reference metrics with GT; no-reference only without."""
        return ["psnr", "ssim", "lpips", "niqe"] if self.has_gt else ["niqe"]

    def image_seed(self, sample_id: str) -> int:
        """Per-image seed: identical across runs, devices and thread counts; distinct per image."""
        digest = hashlib.sha256(f"{self.name}|{self.seed}|{sample_id}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)

    def describe(self) -> dict[str, Any]:
        """What ``results.json`` records about the task."""
        return {"description": self.description, "citation": self.citation,
                "degradation": self.degradation, "has_gt": self.has_gt, "seed": self.seed,
                "version": self.version, "expected_count": self.expected_count,
                "options": dict(self.options), "conventions": asdict(self.conventions)}



def register_task(name: str, *aliases: str):
    """Register a task factory (a ``Task`` subclass or a function returning a ``Task``)."""
    return TASKS.register(name, *aliases)


def task_options(name: str) -> tuple[dict[str, OptionSpec], bool]:
    """The options a task accepts: its factory's (or class's) keyword arguments, declared by
    their type hints, plus every metric convention (``color_space``, ``crop_border``, ...), which
    every task takes. Returns ``(specs, accepts_unknown)``; the second is true only for a
    factory with ``**kwargs`` and no declared signature (a plugin that validates itself)."""
    factory = TASKS.get(name)
    specs = declared_options(factory)
    for key, spec in _CONVENTION_SPECS.items():
        specs.setdefault(key, spec)
    return specs, accepts_extra(factory)


def build_task(name: str, **options: Any) -> Task:
    """Build a task by name (or spec string) with preset options such as ``gt_mean=True``.

    Options are validated against :func:`task_options` first, so ``reference_noise=maybe``
    fails here, naming the option, the value and what is allowed, before any data is read or
    any model loads (:class:`harness.api.options.OptionError`)."""
    factory = TASKS.get(name)
    specs, extra_ok = task_options(name)
    validate_options("task", name, specs, options, extra_ok=extra_ok)
    convention_options = {k: options.pop(k) for k in list(options) if k in _CONVENTION_FIELDS}
    task = factory(**options)
    if not task.name:
        task.name = name
    if convention_options:
        task.conventions = task.conventions.with_options(**convention_options)
    task.options = {**task.options, **options, **convention_options}
    return task


_CONVENTION_FIELDS = frozenset(MetricConventions.__dataclass_fields__)
#: the conventions as options (from the dataclass's typed fields); none is required
_CONVENTION_SPECS = {k: OptionSpec(v.name, v.alternatives, v.default, v.help, required=False)
                     for k, v in declared_options(MetricConventions).items()}
