"""Image-quality metrics, built with pyiqa and configured by each task's conventions.

Each metric is a :class:`MetricSpec` in the ``METRICS`` registry: whether it needs a reference
(FR) or not (NR), its direction, and a ``build`` that returns a scorer for a given task's
:class:`~harness.api.task.MetricConventions`. Any other pyiqa metric is usable by its pyiqa name
(``--metrics psnr,dists``) with pyiqa's defaults, which are then logged as such.

Conventions applied here, not inside pyiqa, so they are identical for every metric:

* the output is clamped to [0,1]; with ``quantize`` it is rounded to 8-bit levels (BasicSR
  ``tensor2img``, the KAIR/DnCNN scripts) before any metric — NR metrics too (pyiqa#23: NIQE is
  unstable unless computed on the 8-bit image);
* ``gt_mean`` rescales the output so that its grey mean equals the GT's (KinD /
  Retinexformer ``--GT_mean``), for FR metrics only;
* ``crop_border`` pixels are removed on each side for FR metrics;
* PSNR/SSIM colour space: ``rgb``; ``ycbcr601`` = pyiqa ``color_space='ycbcr'`` (BT.601
  limited range, the MATLAB ``rgb2ycbcr`` Y); ``yiq`` = pyiqa's default luma.

Weights come through the asset cache: NIQE's official pristine parameters
(``modelparameters.mat``) and LPIPS's linear layers plus the torchvision AlexNet backbone. A metric
whose weights are absent raises :class:`MetricUnavailable` with the reason; the runner reports it
as missing and goes on.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from harness.api.metric import DatasetMetric, MetricSpec, MetricUnavailable
from harness.api.registries import METRICS
from harness.api.registry import UnknownNameError
from harness.api.task import MetricConventions
from harness.assets.cache import Asset, AssetMissingError, fetch
from harness.assets.metric_weights import LPIPS_BACKBONES, LPIPS_LINEAR, NIQE_PARAMS
from harness.io.hashing import file_sha256
from harness.io.safe_load import load_torch_file
from harness.metrics.pyiqa_configs import pyiqa_configs, pyiqa_direction

__all__ = ["METRICS", "DatasetMetric", "MetricSpec", "MetricSuite", "MetricUnavailable",
           "get_metric", "pyiqa_configs", "pyiqa_direction"]

Scorer = Callable[[torch.Tensor, torch.Tensor | None, dict[str, Any]], torch.Tensor]



def _metric_asset(asset: Asset, file_name: str) -> Path:
    try:
        return fetch(asset.name, file_name)
    except AssetMissingError as exc:
        raise MetricUnavailable(str(exc)) from exc


def _pyiqa():
    try:
        import pyiqa
    except ImportError as exc:  # pragma: no cover - pyiqa is a hard dependency
        raise MetricUnavailable(f"pyiqa is not installed: {exc}") from exc
    return pyiqa


def _quiet_create(name: str, device: torch.device, **opts: Any):
    """``pyiqa.create_metric`` without its prints (it announces downloads on stdout). The
    built-in metrics are created from pyiqa's own modules only (:mod:`harness.metrics.pyiqa_lean`): a
    full ``import pyiqa`` pulls in torchvision.models and torch._dynamo (seconds per process).
    Every ``torch.load`` pyiqa makes meanwhile is weights-only (:func:`weights_only_torch_load`)."""
    from harness.metrics.pyiqa_lean import LEAN_METRICS, create_lean

    with contextlib.redirect_stdout(io.StringIO()), weights_only_torch_load():
        if name in LEAN_METRICS:
            return create_lean(name, device, **opts)
        return _pyiqa().create_metric(name, device=device, as_loss=False, **opts)


def _color_opts(color_space: str) -> dict[str, Any]:
    if color_space == "rgb":
        return {"test_y_channel": False}
    return {"test_y_channel": True, "color_space": {"ycbcr601": "ycbcr", "yiq": "yiq"}[color_space]}


def ssim_color_space(conventions: MetricConventions) -> str:
    return conventions.ssim_color_space or conventions.color_space


# Built-in metrics --------------------------------------------------------------------------------
def _build_psnr(conventions: MetricConventions, device: torch.device) -> Scorer:
    opts = _color_opts(conventions.color_space)
    if device.type == "cpu":  # pyiqa's formula in float64: thread- and CPU-independent (psnr_cpu.py)
        from harness.metrics.psnr_cpu import psnr_cpu

        return lambda out, gt, meta: psnr_cpu(out, gt, opts["test_y_channel"],
                                               opts.get("color_space", "yiq"))
    metric = _quiet_create("psnr", device, **opts)
    return lambda out, gt, meta: metric(out, gt)


def _build_ssim(conventions: MetricConventions, device: torch.device) -> Scorer:
    opts = _color_opts(ssim_color_space(conventions))
    if device.type == "cpu":  # same numbers as pyiqa, ~30x faster (see harness/metrics/ssim_cpu.py)
        from harness.metrics.ssim_cpu import ssim_cpu

        return lambda out, gt, meta: ssim_cpu(out, gt, opts["test_y_channel"],
                                               opts.get("color_space", "yiq"))
    metric = _quiet_create("ssim", device, downsample=False, **opts)
    return lambda out, gt, meta: metric(out, gt)


def _install_torchvision_checkpoint(path: Path) -> None:
    """Make torchvision's ``weights='IMAGENET1K_V1'`` find the verified file offline."""
    target = Path(torch.hub.get_dir()) / "checkpoints" / path.name
    if not target.exists() or file_sha256(target) != file_sha256(path):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _build_lpips(conventions: MetricConventions, device: torch.device) -> Scorer:
    backbone = _metric_asset(LPIPS_BACKBONES, "alexnet-owt-7be5be79.pth")
    linear = _metric_asset(LPIPS_LINEAR, "alex.pth")
    _install_torchvision_checkpoint(backbone)
    metric = _quiet_create("lpips", device, pretrained_model_path=str(linear))
    return lambda out, gt, meta: metric(out, gt)


def niqe_mat_file() -> Path:
    """pyiqa reads a MATLAB ``.mat``; write one from the verified npz (same mu/cov) once."""
    npz = _metric_asset(NIQE_PARAMS, "niqe_pris_params.npz")
    mat = npz.with_name("niqe_pris_params_from_npz.mat")
    if not mat.exists() or mat.stat().st_mtime < npz.stat().st_mtime:
        import scipy.io

        from harness.io.safe_load import load_npz

        params = load_npz(npz, what="NIQE parameters")
        tmp = mat.with_suffix(".tmp.mat")
        scipy.io.savemat(tmp, {"mu_prisparam": params["mu_pris_param"],
                               "cov_prisparam": params["cov_pris_param"]})
        tmp.replace(mat)
    return mat


def _fr_description(impl: str) -> Callable[[MetricConventions], dict[str, Any]]:
    return lambda c: {"impl": impl, "color_space": c.color_space, "crop_border": c.crop_border}


METRICS.register("psnr", target=MetricSpec(
    "psnr", "FR", False, "PSNR (dB), pyiqa psnr, data range 1", _build_psnr,
    _fr_description("pyiqa psnr (its formula in float64 on CPU)")))
METRICS.register("ssim", target=MetricSpec(
    "ssim", "FR", False, "SSIM, pyiqa (Wang: Gaussian 11/1.5, valid, channel mean)", _build_ssim,
    lambda c: {"impl": "pyiqa ssim (wang, no downsample; separable float64 on CPU)",
               "color_space": ssim_color_space(c),
               "crop_border": c.crop_border}, min_side=11, min_side_why="SSIM's 11x11 Gaussian window"))
METRICS.register("lpips", "lpips_alex", target=MetricSpec(
    "lpips", "FR", True, "LPIPS v0.1, AlexNet backbone (needs ImageNet weights)", _build_lpips,
    lambda c: {"impl": "pyiqa lpips", "net": "alex", "version": "0.1", "color_space": "rgb",
               "crop_border": c.crop_border}))
def _register_niqe() -> None:
    """``niqe`` = the MATLAB-faithful implementation, ``niqe-pyiqa`` = pyiqa's (both documented
    in :mod:`harness.metrics.niqe_matlab`; the implementation is logged with the run's params)."""
    from dataclasses import replace

    from harness.metrics.niqe_matlab import NIQE_SPECS

    for spec in NIQE_SPECS:
        METRICS.register(spec.name, target=replace(spec, min_side=96,
                                                   min_side_why="NIQE's 96x96 blocks"))


_register_niqe()


def get_metric(name: str) -> MetricSpec:
    """A registered metric, or any pyiqa metric by its pyiqa name (pyiqa defaults).

    Mode and direction of a pyiqa metric come from pyiqa's own configuration, so ``ilniqe``,
    ``gmsd`` or ``lpips-vgg`` get the right arrow without a list kept here."""
    try:
        return METRICS.get(name)
    except UnknownNameError:
        configs = pyiqa_configs()
        if name not in configs:
            raise
        mode = configs[name].get("metric_mode", "FR")

        def build(conventions: MetricConventions, device: torch.device) -> Scorer:
            metric = create_with_weight_advice(name, device)
            if mode == "NR":
                return lambda out, gt, meta: metric(out)
            return lambda out, gt, meta: metric(out, gt)

        return MetricSpec(name, mode, pyiqa_direction(name), f"pyiqa {name} (pyiqa defaults)", build,
                          lambda c: {"impl": f"pyiqa {name}", "options": "pyiqa defaults",
                                     "lower_better": pyiqa_direction(name)})


def pyiqa_cache_dir() -> Path:
    """Where bench has pyiqa look for (and download) its weight files: ``$BENCH_HOME/pyiqa``,
    not pyiqa's own ``<torch hub>/pyiqa`` (:func:`point_pyiqa_at_bench_home`)."""
    from harness.assets.cache import bench_home

    return bench_home() / "pyiqa"


def point_pyiqa_at_bench_home() -> Path:
    """Set pyiqa's cache folder (``download_util.DEFAULT_CACHE_DIR``, and the copies its arch
    modules took at import) to :func:`pyiqa_cache_dir`; returns it."""
    import sys

    _pyiqa()
    import pyiqa.utils.download_util as download_util

    folder = str(pyiqa_cache_dir())
    download_util.DEFAULT_CACHE_DIR = folder
    for name, module in list(sys.modules.items()):
        if name.startswith("pyiqa.") and hasattr(module, "DEFAULT_CACHE_DIR"):
            module.DEFAULT_CACHE_DIR = folder
    return Path(folder)


_TORCH_LOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def weights_only_torch_load() -> Iterator[None]:
    """While pyiqa builds a metric, every ``torch.load`` it calls is weights-only (pyiqa passes
    ``weights_only=False`` for several weight files, and declares no sha256 for any of them):
    a weight file carrying code is refused with :class:`~harness.io.safe_load.UnsafeFileError`
    instead of run. Process-wide for the duration (serialised by a lock)."""
    original = torch.load

    def safe_load(f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("weights_only", None)
        if isinstance(f, (str, os.PathLike)):
            return load_torch_file(f, what="pyiqa weight file")
        return original(f, *args, weights_only=True, **kwargs)

    with _TORCH_LOAD_LOCK:
        torch.load = safe_load
        try:
            yield
        finally:
            torch.load = original


def pyiqa_weight_names() -> set[str]:
    """File names of every weight pyiqa can download, read from its arch modules' text
    (``get_url_from_name('x.pth')`` and literal URLs) without importing them. pyiqa declares no
    sha256 for them, so ``bench assets import`` does not import them (it names those it saw)."""
    import importlib.util
    import re

    package = importlib.util.find_spec("pyiqa")
    if package is None or not package.submodule_search_locations:
        return set()
    root = Path(list(package.submodule_search_locations)[0]) / "archs"
    names: set[str] = set()
    pattern = re.compile(r"get_url_from_name\(\s*['\"]([^'\"]+)['\"]|https?://[^'\"\s]+/([^/'\"\s]+"
                         r"\.(?:pth|pt|mat|npz|pkl|ckpt|bin|safetensors))")
    for path in root.glob("*.py"):
        for match in pattern.finditer(path.read_text(encoding="utf-8", errors="replace")):
            names.add(match.group(1) or match.group(2))
    return names


def pyiqa_named_files(folder: Path) -> list[Path]:
    """Files under ``folder`` named like a pyiqa weight file: ``bench assets import`` lists them
    as not imported (no declared sha256 to verify them against)."""
    names = pyiqa_weight_names()
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name in names)


def create_with_weight_advice(name: str, device: torch.device) -> Any:
    """``pyiqa.create_metric`` with its cache in ``$BENCH_HOME/pyiqa`` and weights-only loading
    (:func:`weights_only_torch_load`); when a weight file is absent and cannot be downloaded
    (offline, ``BENCH_OFFLINE=1``, no network), raises :class:`MetricUnavailable` naming the
    file, its source and where to put it, instead of a bare ``URLError``. Offline, no download
    is attempted at all (no DNS timeout)."""
    from harness.assets.cache import offline

    point_pyiqa_at_bench_home()
    import pyiqa.utils.download_util as download_util

    wanted: list[tuple[str, str]] = []
    original = download_util.download_url_to_file

    def recording(url: str, dst: str, *args: Any, **kwargs: Any) -> Any:
        wanted.append((url, dst))
        if offline():
            raise ConnectionError("downloads are disabled (BENCH_OFFLINE/HF_HUB_OFFLINE)")
        return original(url, dst, *args, **kwargs)

    download_util.download_url_to_file = recording
    try:
        return _quiet_create(name, device)
    except Exception as exc:
        if not wanted:
            raise
        url, dst = wanted[-1]
        Path(dst).unlink(missing_ok=True)  # a partial download would be taken as the file
        raise MetricUnavailable(
            f"{name} needs the weight file {Path(dst).name!r} (source: {url}), which is not in "
            f"{Path(dst).parent} and could not be downloaded ({type(exc).__name__}: {exc}). "
            f"pyiqa publishes no sha256 for it, so `bench assets import` cannot verify a copy: "
            f"download it from that source yourself and place it at {dst} (it is loaded "
            f"weights-only; docs/security.md).") from exc
    finally:
        download_util.download_url_to_file = original


# Convention-aware preprocessing -------------------------------------------------------------------
def prepare_output(out: torch.Tensor, conventions: MetricConventions) -> torch.Tensor:
    """Clamp, and quantise to 8-bit levels when the task says so."""
    out = out.clamp(0.0, 1.0)
    return torch.round(out * 255.0) / 255.0 if conventions.quantize else out


def apply_gt_mean(out: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Scale ``out`` so its grey (BT.601 luma) mean equals the GT's (Retinexformer ``--GT_mean``)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=out.device, dtype=out.dtype).view(1, 3, 1, 1)
    mean_out = (out * weights).sum(1).mean(dim=(-2, -1)).clamp_min(1e-8)
    mean_gt = (gt * weights).sum(1).mean(dim=(-2, -1))
    return (out * (mean_gt / mean_out).view(-1, 1, 1, 1)).clamp(0.0, 1.0)


def crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border else x


class MetricSuite:
    """The metrics of one (task conventions, device) pair, built once and reused per image.

    Per-image metrics give one value per image; dataset-level metrics give one JSON state per
    image (``score`` returns them) and are reduced by :meth:`reduce` from the records' states.
    ``extra`` are :class:`MetricSpec` objects not in the registry (e.g. a detection metric
    configured by ``bench detect``).
    """

    def __init__(self, names: list[str], conventions: MetricConventions, device: torch.device,
                 has_gt: bool, extra: list[MetricSpec] | None = None,
                 build_kinds: tuple[str, ...] = ("image", "dataset")):
        """``build_kinds``: which metrics to build; the others are only declared (params and
        directions), e.g. a cluster driver that reduces dataset metrics but scores no image."""
        self.conventions = conventions
        self.scorers: dict[str, tuple[MetricSpec, Any]] = {}
        self.missing: dict[str, str] = {}
        self.specs: dict[str, MetricSpec] = {}
        for spec in [*(get_metric(name) for name in names), *(extra or [])]:
            self.specs[spec.name] = spec
            if spec.mode == "FR" and not has_gt:
                self.missing[spec.name] = "task has no ground truth (full-reference metric)"
                continue
            if spec.kind not in build_kinds:
                continue
            try:
                self.scorers[spec.name] = (spec, spec.build(conventions, device))
            except MetricUnavailable as exc:
                self.missing[spec.name] = str(exc)
            except Exception as exc:  # a broken metric backend must not end the run
                self.missing[spec.name] = f"{type(exc).__name__}: {exc}"

    def params(self) -> dict[str, Any]:
        out = dict(self.conventions.as_params())
        for name, spec in self.specs.items():
            for key, value in spec.describe(self.conventions).items():
                out[f"{name}.{key}"] = value
        return out

    def directions(self) -> dict[str, dict[str, Any]]:
        """``{metric: {lower_better, mode, kind, group}}`` for results.json; reports read it
        through :mod:`harness.metrics.directions`."""
        return {name: {"lower_better": spec.lower_better, "mode": spec.mode, "kind": spec.kind,
                       "group": spec.group}
                for name, spec in self.specs.items()}

    @torch.inference_mode()
    def score(self, out: torch.Tensor, gt: torch.Tensor | None, meta: dict[str, Any] | None = None
              ) -> tuple[dict[str, float], dict[str, str], dict[str, Any]]:
        """Per-image values, per-metric errors, and dataset-level states of one image."""
        meta = meta or {}
        out = prepare_output(out, self.conventions)
        fr_out = out
        if gt is not None:
            if gt.shape != out.shape:
                raise ValueError(f"output shape {tuple(out.shape)} differs from GT "
                                 f"{tuple(gt.shape)}")
            if self.conventions.gt_mean:
                fr_out = apply_gt_mean(out, gt)
            fr_out, gt = crop(fr_out, self.conventions.crop_border), crop(gt, self.conventions.crop_border)
        values: dict[str, float] = {}
        errors: dict[str, str] = {}
        states: dict[str, Any] = {}
        for name, (spec, scorer) in self.scorers.items():
            image_out = fr_out if spec.mode == "FR" else out
            height, width = image_out.shape[-2:]
            if spec.min_side and min(height, width) < spec.min_side:
                cropped = " after crop_border" if spec.mode == "FR" and self.conventions.crop_border else ""
                errors[name] = (f"not computed: the image is {width}x{height}{cropped}, smaller than "
                                f"{spec.min_side_why or name} (needs at least "
                                f"{spec.min_side}x{spec.min_side})")
                continue
            try:
                if spec.kind == "dataset":
                    states[name] = scorer.update(image_out, gt, meta)
                else:
                    value = scorer(image_out, gt if spec.mode == "FR" else None, meta)
                    value = float(value.flatten()[0] if isinstance(value, torch.Tensor) else value)
                    if value != value:  # NaN: say so instead of recording a bare null
                        errors[name] = f"not computed: {name} returned NaN on this {width}x{height} image"
                        continue
                    values[name] = value
            except Exception as exc:
                errors[name] = f"not computed: {type(exc).__name__}: {exc}"
        return values, errors, states

    def reduce(self, records: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
        """Dataset-level values of a unit from its records' states: ``{key: {mean, n, ...}}``."""
        out: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, (spec, scorer) in self.scorers.items():
            if spec.kind != "dataset":
                continue
            states = [r["metric_states"][name] for r in records
                      if r.get("status") == "ok" and name in r.get("metric_states", {})]
            if not states:
                continue
            try:
                for key, value in scorer.compute(states).items():
                    out[key] = {"mean": float(value), "std": None, "ci95": [None, None],
                                "n": len(states), "kind": "dataset"}
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
        return out, errors
