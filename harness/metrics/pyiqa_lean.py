"""Create a pyiqa metric while importing only the modules it needs.

``import pyiqa`` runs ``pyiqa/__init__.py``, which imports the model/dataset API, and through
``pyiqa.archs.arch_util`` ``torchvision.transforms`` → ``torchvision`` → ``torchvision.models``,
``torchvision.datasets`` and (via torchvision's operator registrations) ``torch._dynamo``: about
1.2–2 s of every ``bench`` process, for metrics (PSNR, SSIM, NIQE) that need none of it.

:func:`create_lean` instead registers *lazy* package modules for ``pyiqa``, ``pyiqa.utils`` and
``pyiqa.archs`` and a lazy ``pyiqa.archs.arch_util``: importing ``pyiqa.archs.niqe_arch`` then
loads only that file and its light dependencies (``color_util``, ``matlab_utils``, ``func_util``,
``registry``). A lazy module runs its real source the first time anything asks it for a name it
does not have, so a later ``import pyiqa; pyiqa.create_metric(...)`` or ``from pyiqa.utils import
get_root_logger`` still sees the complete package (``tests/test_metrics_fast.py`` checks it in a
fresh interpreter). The network modules are pyiqa's own classes, configured from pyiqa's own
``DEFAULT_CONFIGS``, so the numbers are pyiqa's.

What is skipped is pyiqa's ``InferenceModel`` wrapper: its input-range assertion, path loading and
loss mode. :class:`LeanMetric` keeps the rest (no grad, FR/NR dispatch, ``lower_better``).

Measure with ``python -X importtime -c "from harness.metrics.pyiqa_lean import create_lean;
create_lean('niqe', pretrained_model_path=...)"`` (see ``benchmarks/metrics_vs_pyiqa.py``).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import re
import sys
import threading
import types
from pathlib import Path
from typing import Any

import torch

#: pyiqa's metrics whose arch modules import nothing heavy (checked by the tests).
LEAN_METRICS = ("psnr", "psnry", "ssim", "ssimc", "niqe", "niqe_matlab")

_LOCK = threading.RLock()
_HF_URL = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/{}"


class _LazyModule(types.ModuleType):
    """A module (or package) that executes its real source on the first missing attribute."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or self.__dict__.get("_lean_loaded"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")
        with _LOCK:
            if not self.__dict__.get("_lean_loaded"):
                self.__dict__["_lean_loaded"] = True
                source = Path(self.__file__).read_text(encoding="utf-8")
                exec(compile(source, self.__file__, "exec"), self.__dict__)
        try:
            return self.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}") from None


def _pyiqa_root() -> Path:
    spec = importlib.util.find_spec("pyiqa")
    if spec is None or not spec.submodule_search_locations:
        from harness.api.metric import MetricUnavailable

        raise MetricUnavailable("pyiqa is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _lazy(name: str, file: Path, package: bool) -> _LazyModule:
    module = _LazyModule(name)
    spec = importlib.util.spec_from_file_location(
        name, file, submodule_search_locations=[str(file.parent)] if package else None)
    module.__spec__ = spec
    module.__file__ = str(file)
    module.__loader__ = spec.loader if spec else None
    module.__package__ = name if package else name.rpartition(".")[0]
    if package:
        module.__path__ = [str(file.parent)]
    return module


def install_lazy_pyiqa() -> None:
    """Register the lazy modules unless pyiqa (or the lean set) is already imported. Call it
    before importing any ``pyiqa.*`` submodule to keep that import lean."""
    with _LOCK:
        if "pyiqa" in sys.modules:
            return
        root = _pyiqa_root()
        for name, rel, package in (("pyiqa", "__init__.py", True),
                                   ("pyiqa.utils", "utils/__init__.py", True),
                                   ("pyiqa.archs", "archs/__init__.py", True),
                                   ("pyiqa.archs.arch_util", "archs/arch_util.py", False)):
            sys.modules[name] = _lazy(name, root / rel, package)
        sys.modules["pyiqa"].utils = sys.modules["pyiqa.utils"]
        sys.modules["pyiqa"].archs = sys.modules["pyiqa.archs"]
        arch_util = sys.modules["pyiqa.archs.arch_util"]
        sys.modules["pyiqa.archs"].arch_util = arch_util

        def get_url_from_name(name: str, store_base: str = "hugging_face",
                              base_url: str | None = None) -> str:
            """pyiqa's URL helper without ``huggingface_hub`` (same URLs); only for default
            weights, which the harness never downloads through pyiqa."""
            if base_url is not None:
                return f"{base_url}/{name}"
            if store_base == "github":
                return f"https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/{name}"
            return _HF_URL.format(name)

        arch_util.__dict__["get_url_from_name"] = get_url_from_name


def _arch_module(type_name: str) -> types.ModuleType:
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type_name)).lower()
    for candidate in (f"pyiqa.archs.{type_name.lower()}_arch", f"pyiqa.archs.{snake}_arch"):
        try:
            return importlib.import_module(candidate)
        except ModuleNotFoundError as exc:
            if exc.name != candidate:
                raise
    raise ModuleNotFoundError(f"no pyiqa arch module for {type_name}")


class LeanMetric(torch.nn.Module):
    """A pyiqa network module with ``InferenceModel``'s calling convention (no grad)."""

    def __init__(self, name: str, net: torch.nn.Module, mode: str, lower_better: bool):
        super().__init__()
        self.metric_name, self.net, self.metric_mode, self.lower_better = name, net, mode, lower_better

    def forward(self, target: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            if self.metric_mode == "FR":
                if ref is None:
                    raise ValueError(f"{self.metric_name} needs a reference image")
                return self.net(target, ref)
            return self.net(target)


def create_lean(name: str, device: torch.device | str = "cpu", **opts: Any) -> LeanMetric:
    """``pyiqa.create_metric(name, **opts)`` for the metrics in :data:`LEAN_METRICS`, importing
    only their modules. Falls back to pyiqa's own ``create_metric`` (full import) for others."""
    if name not in LEAN_METRICS:
        import pyiqa

        metric = pyiqa.create_metric(name, device=device, as_loss=False, **opts)
        return LeanMetric(name, metric, metric.metric_mode, bool(metric.lower_better))
    install_lazy_pyiqa()
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    config = copy.deepcopy(DEFAULT_CONFIGS[name])
    metric_opts = config["metric_opts"]
    type_name = metric_opts.pop("type")
    metric_opts.update(opts)
    net = getattr(_arch_module(type_name), type_name)(**metric_opts).eval().to(device)
    return LeanMetric(name, net, config["metric_mode"], bool(config.get("lower_better", False)))
