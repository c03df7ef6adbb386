"""The one place that says which way a metric is better and which group it belongs to.

Every reader asks here: the report (best-of marks, the detection tables), the study tables and
figures (arrows, heatmap colours), ``bench detect``'s table. A metric's **direction**
(``lower_better``) and **group** (:data:`GROUPS`: ``quality``, ``detection``, ``timing``) come,
in this order, from

1. the run's own declaration (``results.json`` ``metrics: {name: {lower_better, group, ...}}``,
   written from each :class:`~harness.api.metric.MetricSpec`);
2. the runner's own measurements (:data:`RUNTIME_METRICS`: lower is better, group ``timing``);
3. the metric registry (built-in and plugin :class:`~harness.api.metric.MetricSpec`);
4. pyiqa's ``DEFAULT_CONFIGS`` for a metric used by its pyiqa name (group ``quality``).

A name none of them knows has no direction (``None``): a report that guessed would mark the wrong
restorer as best. A companion key (``map50.precision``) has the group of its headline metric but
no direction unless declared: it need not point the headline's way.

Nothing here imports torch or pyiqa at module level: pyiqa's configuration is read from its file
(:mod:`harness.metrics.pyiqa_configs`), and the registry is imported only when a name is looked up there.
"""

from __future__ import annotations

from typing import Any

from harness.api.metric import MetricUnavailable
from harness.metrics.pyiqa_configs import pyiqa_configs, pyiqa_direction

#: Measurements the runner itself makes, with their fixed direction (lower is better).
RUNTIME_METRICS = ("latency_ms", "peak_mem_mb")
#: Names ``bench detect`` gave its metrics before results declared a group: read old files only.
_LEGACY_DETECTION_PREFIXES = ("det_", "consistency_")

def _registered(name: str) -> Any | None:
    """The registry's :class:`MetricSpec` of ``name`` (built-ins and plugins), or ``None``."""
    from harness.metrics.suite import METRICS

    try:
        return METRICS.get(name) if name in METRICS else None
    except Exception:  # a plugin that fails to import declares nothing
        return None


def _in_pyiqa(name: str) -> bool:
    try:
        return name in pyiqa_configs()
    except MetricUnavailable:
        return False


def metric_direction(name: str, declared: dict[str, Any] | None = None) -> bool | None:
    """True if lower is better, False if higher is, None if unknown (see the module docstring)."""
    entry = (declared or {}).get(name)
    if isinstance(entry, dict) and isinstance(entry.get("lower_better"), bool):
        return entry["lower_better"]
    if name in RUNTIME_METRICS:
        return True
    if "." in name:
        return None
    spec = _registered(name)
    if spec is not None:
        return bool(spec.lower_better)
    return pyiqa_direction(name) if _in_pyiqa(name) else None


def metric_group(name: str, declared: dict[str, Any] | None = None) -> str | None:
    """``quality``, ``detection`` or ``timing``; ``None`` for a name nothing declares."""
    headline = name.split(".", 1)[0]
    entry = (declared or {}).get(name) or (declared or {}).get(headline)
    if isinstance(entry, dict) and entry.get("group"):
        return str(entry["group"])
    if headline in RUNTIME_METRICS:
        return "timing"
    if headline.startswith(_LEGACY_DETECTION_PREFIXES) and _registered(headline) is None:
        return "detection"  # a file from before groups were declared
    spec = _registered(headline)
    if spec is not None:
        return spec.group
    return "quality" if _in_pyiqa(headline) else None


def direction_arrow(name: str, declared: dict[str, Any] | None = None) -> str:
    """``↓`` (lower is better), ``↑`` (higher is) or ``?`` (unknown), for table headers."""
    lower = metric_direction(name, declared)
    return "?" if lower is None else "↓" if lower else "↑"
