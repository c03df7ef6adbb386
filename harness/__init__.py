"""restorebench's core: registries, interfaces, runner, metrics, tracking, assets, CLI.

Nothing here names a concrete restorer or task; they plug in through the registries. The public
names below are imported on first access (PEP 562), so ``import harness`` (and ``bench --help``)
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RESTORERS": "harness.registries", "TASKS": "harness.registries",
    "Restorer": "harness.restorer", "RestorerInfo": "harness.restorer",
    "build_restorer": "harness.restorer", "register_restorer": "harness.restorer",
    "DataMissingError": "harness.task", "MetricConventions": "harness.task", "Sample": "harness.task",
    "Task": "harness.task", "build_task": "harness.task", "register_task": "harness.task",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
