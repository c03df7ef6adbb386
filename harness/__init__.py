"""restorebench's core, in layers (``docs/architecture.md``): io < api < assets < {metrics,
tracking} < run < {train, study, report} < cli. Each sub-package imports only from its own layer
or below (``tests/test_layers.py``).

Nothing here names a concrete restorer or task; they plug in through the registries. The public
names below are imported on first access (PEP 562), so ``import harness`` (and ``bench --help``)
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = ("RESTORERS", "TASKS", "Restorer", "RestorerInfo", "build_restorer", "register_restorer",
            "DataMissingError", "MetricConventions", "Sample", "Task", "build_task", "register_task")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:  # the plugin API lives in harness.api; these names stay for old plugins
        return getattr(importlib.import_module("harness.api"), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
