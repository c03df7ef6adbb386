"""Layer 1 — the plugin API: registries, typed options, the ``Restorer`` / ``Task`` / metric
interfaces, item parsing, checkpoints and training-set registration.

A plugin imports everything it needs from here::

    from harness.api import Restorer, register_restorer, Task, Sample, register_task

``docs/plugins.md`` is the guide (a complete package in ``examples/restorebench-plugin-example``):
entry-point groups ``restorebench.restorers`` / ``.tasks`` / ``.metrics`` / ``.commands``, value
``"module:attribute"``. Only the names in ``__all__`` are the public API; the submodules'
other names may change. ``require(module, what, dist)`` gives a command of an optional stack the
one-line "needs the X extra" error.

The names are imported on first access (PEP 562): ``import harness.api.registries`` (what the
fast CLI does) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RESTORERS": "registries", "TASKS": "registries", "METRICS": "registries",
    "Registry": "registry", "UnknownNameError": "registry",
    "Restorer": "restorer", "RestorerInfo": "restorer", "build_restorer": "restorer",
    "register_restorer": "restorer",
    "DataMissingError": "task", "MetricConventions": "task", "Sample": "task", "Task": "task",
    "build_task": "task", "register_task": "task",
    "MetricSpec": "metric", "DatasetMetric": "metric", "MetricUnavailable": "metric",
    "OptionError": "options", "Range": "options",
    "register_training_set": "training_sets", "build_training_set": "training_sets",
    "require": "extras", "install_hint": "extras",
    "Check": "checks", "CHECKS": "checks", "register_check": "checks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"harness.api.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harness.api' has no attribute {name!r}")
