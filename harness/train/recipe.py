"""The loop's hyper-parameters (:class:`Recipe`) and the early-stopping rule (:class:`EarlyStopRule`),
each validated when built: a bad value is a one-line ``ValueError`` naming the key and what it may be.

A :class:`Recipe` is what ``--resume`` compares (:meth:`Recipe.identity`): a checkpoint trained
with other values is refused. The early-stopping rule is *not* part of it: it decides when to
stop, not what an iteration computes, so it may be added to (or changed in) a running training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Recipe:
    """The hyper-parameters of the loop (all recorded in the checkpoint and MLflow)."""

    iters: int = 1000
    batch_size: int | None = None  # 8, or the first progressive stage's batch
    lr: float = 2e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_iters: int = 0
    min_lr_ratio: float = 0.01
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    amp: str = "auto"  # auto (bf16 on CUDA, off on CPU) | off | bf16 | fp16
    num_workers: int = 0
    progressive: tuple[tuple[int, int, int], ...] | None = None  # (iters, crop, batch) per stage

    def __post_init__(self) -> None:
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"--amp {self.amp!r}: choose auto, off, bf16 or fp16")
        if self.progressive is not None:
            self.progressive = check_stages(self.progressive, self.iters, self.batch_size)
            self.batch_size = self.progressive[0][2]
        elif self.batch_size is None:
            self.batch_size = 8
        for name in ("iters", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        check_ranges(self)

    def stages(self) -> list[tuple[int, int, int | None, int]]:
        """``(first iteration, end iteration, crop or None, batch)`` of each data stage; one stage
        without ``progressive`` (the training set's own crop)."""
        if not self.progressive:
            return [(0, self.iters, None, int(self.batch_size or 8))]
        out, start = [], 0
        for iters, crop, batch in self.progressive:
            out.append((start, start + iters, crop, batch))
            start += iters
        return out

    def identity(self) -> dict[str, Any]:
        """The recipe as ``--resume`` compares it (``progressive`` only when set, so checkpoints
        written before the key existed still resume)."""
        values = asdict(self)
        if values["progressive"] is None:
            del values["progressive"]
        else:
            values["progressive"] = [list(stage) for stage in values["progressive"]]
        return values

    def lr_factor(self, step: int) -> float:
        """Linear warm-up to 1, then cosine to ``min_lr_ratio`` at ``iters``."""
        if self.warmup_iters and step < self.warmup_iters:
            return (step + 1) / self.warmup_iters
        span = max(1, self.iters - self.warmup_iters)
        progress = min(1.0, (step - self.warmup_iters) / span)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def check_ranges(recipe: Recipe) -> None:
    """Every number finite and in its range (``--lr nan`` or ``--ema 2`` would train garbage)."""
    def bad(flag: str, value: Any, allowed: str) -> ValueError:
        return ValueError(f"--{flag} {value}: must be {allowed}")

    numbers = {"lr": recipe.lr, "weight_decay": recipe.weight_decay,
               "min_lr_ratio": recipe.min_lr_ratio, "grad_clip": recipe.grad_clip,
               "ema": recipe.ema_decay}
    for flag, value in numbers.items():
        if value is not None and not math.isfinite(float(value)):
            raise bad(flag.replace("_", "-"), value, "a finite number")
    if recipe.lr <= 0:
        raise bad("lr", recipe.lr, "positive")
    if recipe.weight_decay < 0:
        raise bad("weight-decay", recipe.weight_decay, ">= 0")
    if not 0 <= recipe.min_lr_ratio <= 1:
        raise bad("min-lr-ratio", recipe.min_lr_ratio, "in [0, 1]")
    if recipe.grad_clip is not None and recipe.grad_clip <= 0:
        raise bad("grad-clip", recipe.grad_clip, "positive (or 0 in the CLI for off)")
    if recipe.ema_decay is not None and not 0 < recipe.ema_decay < 1:
        raise bad("ema", recipe.ema_decay, "in (0, 1), e.g. 0.999 (leave it out for no EMA)")
    for flag, value in (("warmup-iters", recipe.warmup_iters), ("num-workers", recipe.num_workers)):
        if value < 0:
            raise bad(flag, value, ">= 0")

def check_stages(stages: Any, iters: int, batch_size: int | None) -> tuple[tuple[int, int, int], ...]:
    """Validate ``progressive``: non-empty ``[iters, crop, batch]`` triples of positive integers
    whose iterations add up to ``iters``; ``batch_size``, if given, is the first stage's batch."""
    usage = "progressive is a list of [iters, crop, batch] stages, e.g. [[92000, 192, 8], [80000, 256, 4]]"
    if isinstance(stages, (str, bytes)) or not hasattr(stages, "__iter__"):
        raise ValueError(f"{usage}; got {stages!r}")
    out = []
    for stage in stages:
        values = list(stage) if isinstance(stage, (list, tuple)) else None
        if (values is None or len(values) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)):
            raise ValueError(f"{usage}, each a positive integer; got stage {stage!r}")
        out.append((values[0], values[1], values[2]))
    if not out:
        raise ValueError(f"{usage}; got an empty list")
    total = sum(stage[0] for stage in out)
    if total != iters:
        raise ValueError(f"progressive stages add up to {total} iterations, but iters is {iters}; "
                         f"make them equal")
    if batch_size is not None and batch_size != out[0][2]:
        raise ValueError(f"batch_size {batch_size} conflicts with progressive (first stage batch "
                         f"{out[0][2]}); leave batch_size out, the stages set it")
    return tuple(out)


@dataclass(frozen=True)
class EarlyStopRule:
    """Stop when validation flattens: after ``patience`` validations in a row none of which
    improved ``metric`` on ``task`` by more than ``min_delta`` over the best value so far.

    ``metric`` is a validation metric name (``psnr``; ``val_psnr`` is accepted too); which way is
    better comes from :func:`harness.metrics.directions.metric_direction`. ``task`` is one of the
    validation tasks as written in the recipe, ``None`` for the first."""

    metric: str
    patience: int
    min_delta: float = 0.0
    task: str | None = None

    KEYS = ("metric", "patience", "min_delta", "task")

    @classmethod
    def parse(cls, value: Any) -> EarlyStopRule:
        """The rule from the recipe's ``early_stop`` mapping; ValueError says what is wrong."""
        usage = "early_stop is a mapping like {metric: psnr, patience: 4, min_delta: 0.02}"
        if not isinstance(value, dict):
            raise ValueError(f"{usage}; got {value!r}")
        unknown = sorted(set(value) - set(cls.KEYS))
        if unknown or "metric" not in value or "patience" not in value:
            raise ValueError(f"{usage} (keys: {', '.join(cls.KEYS)}; metric and patience required); "
                             f"got {value!r}")
        metric, patience = value["metric"], value["patience"]
        min_delta, task = value.get("min_delta", 0.0), value.get("task")
        if not isinstance(metric, str) or not metric.strip():
            raise ValueError(f"early_stop.metric {metric!r}: give a validation metric name, e.g. psnr")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"early_stop.patience {patience!r}: must be an integer >= 1 "
                             f"(validations without improvement before stopping)")
        if (isinstance(min_delta, bool) or not isinstance(min_delta, (int, float))
                or not math.isfinite(min_delta) or min_delta < 0):
            raise ValueError(f"early_stop.min_delta {min_delta!r}: must be a finite number >= 0")
        if task is not None and not isinstance(task, str):
            raise ValueError(f"early_stop.task {task!r}: give one of the validation tasks as written")
        metric = metric.strip()
        return cls(metric.removeprefix("val_"), patience, float(min_delta), task)

    def lower_better(self) -> bool:
        """The metric's direction; ValueError when nothing declares one (stopping on a guess
        would keep the wrong weights)."""
        from harness.metrics.directions import metric_direction

        lower = metric_direction(self.metric)
        if lower is None:
            raise ValueError(f"early_stop.metric {self.metric!r}: no known direction (higher or lower "
                             f"better); use a registered metric such as psnr or ssim")
        return lower

    def describe(self) -> dict[str, Any]:
        """The rule as recorded in MLflow params and the checkpoint's provenance."""
        return asdict(self)
