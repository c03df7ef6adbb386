"""What one ``bench train`` training is given (:class:`TrainConfig`) and what it returns
(:class:`TrainSummary`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.run.plan import RestorerItem
from harness.train.recipe import EarlyStopRule, Recipe


@dataclass
class TrainConfig:
    restorer: RestorerItem
    train_set: tuple[str, dict[str, Any]]
    out: Path
    recipe: Recipe = field(default_factory=Recipe)
    val_task: tuple[str, dict[str, Any]] | None = None
    #: more validation tasks after ``val_task``; with more than one task in all, each metric is
    #: logged as ``val_<task>_<metric>`` (one task: ``val_<metric>``, as always)
    val_tasks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    val_every: int = 500
    val_limit: int | None = 4
    val_metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim"])
    early_stop: EarlyStopRule | None = None
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    tracking: bool = True
    tracking_uri: str | None = None
    experiment: str = "restorebench-train"
    output_dir: Path = Path("results")
    show_progress: bool = True
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    #: torch intra-op threads; None = ``OMP_NUM_THREADS`` if set, else the CPUs this process may
    #: use (:func:`harness.io.threads.choose_threads`; the host's core count oversubscribes)
    threads: int | None = None

    def validation_tasks(self) -> list[tuple[str, dict[str, Any]]]:
        """``val_task`` then ``val_tasks``: every task validated on, in the order they are logged."""
        return ([self.val_task] if self.val_task is not None else []) + list(self.val_tasks)


@dataclass
class TrainSummary:
    checkpoint: Path
    sha256: str
    iteration: int
    last_validation: dict[str, float]
    seconds: float
    resumed_from: int | None
    #: why the training stopped before ``iters`` (early stopping), else None
    stopped_early: str | None = None
    #: the best-validation weights (``<out>.best.pt``) when early stopping is on
    best: Path | None = None


def spec_string(name: str, options: dict[str, Any]) -> str:
    from harness.run.units import format_options

    return f"{name}[{format_options(options)}]" if options else name
