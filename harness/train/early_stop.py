"""Early stopping: stop a training when its validation curve flattens, and keep the best weights.

:class:`EarlyStopper` counts the validations since the best value of one metric (an improvement
is a change by more than ``min_delta`` in the metric's better direction). Its count lives in the
checkpoint (:attr:`LoopState.early_stop`), so a resumed training continues it; whether it has
stopped is read against the recipe's *current* rule, so raising ``patience`` (or removing
``early_stop``) and resuming lets a stopped training go on. A count of another metric or task
(the rule changed) starts again from zero.

The best-validation weights go to ``<out stem>.best<suffix>`` beside the checkpoint (``x.pt`` →
``x.best.pt``), without training state (like :func:`~harness.api.checkpoints.export_weights`):
``bench run -r 'NAME[checkpoint=x.best.pt]'`` evaluates them; their provenance and sidecar say
the iteration and value. The file is written when the validation improves, not at checkpoints:
with ``val_every`` a multiple of ``checkpoint_every`` the two always agree after a kill.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.train.recipe import EarlyStopRule


def best_path(out: Path) -> Path:
    """Where the best-validation weights of the checkpoint ``out`` go."""
    out = Path(out)
    return out.with_name(f"{out.stem}.best{out.suffix}")


class EarlyStopper:
    """The early-stopping count of one logged metric (``key``, e.g. ``val_psnr``)."""

    def __init__(self, rule: EarlyStopRule, key: str, lower_better: bool):
        self.rule, self.key, self.lower_better = rule, key, lower_better
        self.best: float | None = None
        self.best_step: int | None = None
        self.since_best = 0

    def restore(self, stored: dict[str, Any] | None) -> bool:
        """Continue the count a checkpoint stored; False (count from zero) when there is none
        or it counted another metric."""
        if not stored or stored.get("key") != self.key:
            return False
        self.best, self.best_step = stored.get("best"), stored.get("best_step")
        self.since_best = int(stored.get("since_best", 0))
        return True

    def state(self) -> dict[str, Any]:
        """The count as the checkpoint stores it (plain values)."""
        return {"key": self.key, "best": self.best, "best_step": self.best_step,
                "since_best": self.since_best, "rule": self.rule.describe()}

    def update(self, value: float, step: int) -> bool:
        """Count the validation at ``step``; True when it is the new best."""
        improved = math.isfinite(value) or value == (-math.inf if self.lower_better else math.inf)
        if improved and self.best is not None:
            delta = self.best - value if self.lower_better else value - self.best
            improved = delta > self.rule.min_delta
        if improved:
            self.best, self.best_step, self.since_best = float(value), step, 0
        else:
            self.since_best += 1
        return improved

    @property
    def stopped(self) -> bool:
        """``patience`` validations in a row without an improvement (under the current rule)."""
        return self.since_best >= self.rule.patience

    def reason(self) -> str:
        """Why the training stopped, in one line (printed and tagged in MLflow)."""
        return (f"early stop: {self.key} did not improve by more than {self.rule.min_delta:g} over its "
                f"best {self.best:.6g} (iteration {self.best_step}) in {self.since_best} validations "
                f"(patience {self.rule.patience})")

    def best_record(self) -> dict[str, Any]:
        """What the best weights' provenance says about them."""
        return {"metric": self.key, "value": self.best, "iteration": self.best_step,
                "lower_better": self.lower_better, "rule": self.rule.describe()}
