"""The registries of restorers, tasks and metrics, in a module that imports no torch.

``bench --help`` and ``bench list`` only need names and declared metadata; keeping the registry
objects here (their base classes are named as ``"module:attr"`` and imported on the first type
check) lets the built-in tables (``restorers/__init__.py``) and the CLI use them without loading
torch, pyiqa or any method module.
"""

from __future__ import annotations

from harness.api.registry import Registry

RESTORERS: Registry = Registry("restorer", base_cls="harness.api.restorer:Restorer",
                               entry_point_group="restorebench.restorers", modules=("restorers",))

TASKS: Registry = Registry("task", entry_point_group="restorebench.tasks", modules=("tasks",))

#: Built-in metrics are registered by :mod:`harness.metrics.suite`; plugins by the entry-point group.
METRICS: Registry = Registry("metric", entry_point_group="restorebench.metrics",
                             modules=("harness.metrics.suite",))
