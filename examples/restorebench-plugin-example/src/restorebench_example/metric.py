"""``mae``: mean absolute error over pixels and channels (full-reference, lower is better).

A metric is a :class:`harness.api.MetricSpec` instance (the entry point names the instance, not
a class). ``build(conventions, device)`` returns the scorer ``(out, gt, meta) -> (B,) tensor``;
restorebench clamps ``out`` to [0, 1], applies the task's conventions (8-bit quantisation,
border crop) to ``out`` and ``gt`` first, and aggregates mean / std / bootstrap CI itself.
``describe(conventions)`` is what gets logged as the metric's parameters.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.api import MetricConventions, MetricSpec


def _build(conventions: MetricConventions, device: Any):
    def score(out: torch.Tensor, gt: torch.Tensor | None, meta: dict[str, Any]) -> torch.Tensor:
        # float64 accumulation: the mean of 49k float32 differences is exact to ~1e-12 this way
        return (out.double() - gt.double()).abs().flatten(1).mean(dim=1)

    return score


MAE = MetricSpec(
    name="mae", mode="FR", lower_better=True,
    description="mean absolute error over pixels and channels (example plugin)",
    build=_build, describe=lambda conventions: {"impl": "restorebench_example.metric", "range": "[0,1]"})
