"""pyiqa's own declaration of its metrics (``DEFAULT_CONFIGS``: mode, ``lower_better``, range),
read from its module file: importing the pyiqa package pulls in torchvision models (seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.api.metric import MetricUnavailable

_PYIQA_CONFIGS: dict[str, dict[str, Any]] | None = None


def pyiqa_configs() -> dict[str, dict[str, Any]]:
    """pyiqa's ``DEFAULT_CONFIGS`` (mode, ``lower_better``, range of every metric), read from its
    module file without importing the pyiqa package (which pulls in torchvision models)."""
    global _PYIQA_CONFIGS
    if _PYIQA_CONFIGS is None:
        import importlib.util

        package = importlib.util.find_spec("pyiqa")
        if package is None or not package.submodule_search_locations:
            raise MetricUnavailable("pyiqa is not installed")
        path = Path(list(package.submodule_search_locations)[0]) / "default_model_configs.py"
        spec = importlib.util.spec_from_file_location("_pyiqa_default_model_configs", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        _PYIQA_CONFIGS = dict(module.DEFAULT_CONFIGS)
    return _PYIQA_CONFIGS


def pyiqa_direction(name: str) -> bool:
    """``lower_better`` as pyiqa declares it (its configs omit the key for higher-is-better)."""
    return bool(pyiqa_configs()[name].get("lower_better", False))
