"""The metric protocol: what a metric declares and how the runner feeds it.

Two kinds of metric share one declaration (:class:`MetricSpec`):

* **per-image** (``kind="image"``): ``build(conventions, device)`` returns a scorer
  ``(out, gt, meta) -> (B,) tensor | float``; the runner stores one value per image in the sample
  record and aggregates mean / std / bootstrap CI (PSNR, SSIM, LPIPS, NIQE, any pyiqa metric).
* **dataset-level** (``kind="dataset"``): ``build`` returns a :class:`DatasetMetric`. Per image
  its :meth:`~DatasetMetric.update` returns a small JSON-serialisable *state* (for mAP: the
  matched detections; for a count: a number), which the runner stores in the sample record under
  ``metric_states[name]``. The reducer calls :meth:`~DatasetMetric.compute` once on all states
  of a (restorer, task) unit. Because the states live in the records, a dataset-level metric
  survives ``--resume``, shards executed in any order and other executors (Ray): nothing but the
  records is needed to reduce.

``meta`` is the sample's meta (labels, boxes, the task's sigma): detection metrics read their
ground truth there. ``mode`` is ``FR`` (needs GT), ``NR`` or ``meta`` (needs only meta).

Direction (``lower_better``) is declared by every built-in metric and read from pyiqa's own
configuration (``DEFAULT_CONFIGS[name]['metric_opts']['lower_better']`` via ``pyiqa``'s
``InferenceModel.lower_better``) for metrics used by their pyiqa name, never guessed from a name.

Plugins register metrics through the entry-point group ``restorebench.metrics`` (value:
``"module:attr"`` naming a :class:`MetricSpec`), like restorers and tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MODES = ("FR", "NR", "meta")
KINDS = ("image", "dataset")
GROUPS = ("quality", "detection", "timing")


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed on this machine (weights missing, backend absent)."""


class DatasetMetric(ABC):
    """A metric over a whole set, reduced from per-image states.

    Subclasses implement :meth:`update` (called once per image, batch of one, after the task's
    conventions were applied to ``out``) and :meth:`compute`. States must be JSON-serialisable
    (lists, dicts, numbers, strings) and small: they are written into ``samples.jsonl``.
    """

    @abstractmethod
    def update(self, out: Any, gt: Any | None, meta: dict[str, Any]) -> Any:
        """The state this image contributes (JSON-serialisable)."""

    @abstractmethod
    def compute(self, states: list[Any]) -> dict[str, float]:
        """Reduce the states of every image of a unit. Keys: the metric's own name for the
        headline value, ``name.sub`` for companions (``map50``, ``map50.precision``...)."""


@dataclass(frozen=True)
class MetricSpec:
    """A metric the runner can compute.

    Attributes:
        name: key in results and MLflow.
        mode: ``FR`` (needs GT), ``NR``, or ``meta`` (needs only the sample's meta).
        lower_better: direction, used by tables, best-of markers and plots.
        description: one line for ``bench list metrics``.
        build: ``(conventions, device) -> scorer`` (``kind="image"``: a callable
            ``(out, gt, meta) -> value``; ``kind="dataset"``: a :class:`DatasetMetric`).
        describe: ``conventions -> {param: value}``, what exactly is computed (logged).
        kind: ``image`` or ``dataset``.
        min_side: the smallest image side (after ``crop_border``) the metric can score, and
        min_side_why: what needs it (``"SSIM's 11x11 Gaussian window"``). A smaller image gets
            a "not computed" reason in its record instead of a NaN and numpy warnings.
        group: which table a report shows it in (:data:`GROUPS`; :mod:`harness.metrics.directions`).
    """

    name: str
    mode: str
    lower_better: bool
    description: str
    build: Callable[[Any, Any], Any]
    describe: Callable[[Any], dict[str, Any]]
    kind: str = "image"
    min_side: int = 0
    min_side_why: str = ""
    group: str = "quality"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"metric {self.name!r}: mode must be one of {MODES}, got {self.mode!r}")
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.group not in GROUPS:
            raise ValueError(f"metric {self.name!r}: group must be one of {GROUPS}, got {self.group!r}")
