"""Validation during training: the training restorer evaluated by ``bench run``'s own executor on
one or more tasks, so ``bench run -r RESTORER[checkpoint=...] -t TASK --seed SEED --limit
VAL_LIMIT`` on the saved weights gives the same numbers.

One task: metrics are named as ``bench run`` names them (``psnr``, logged ``val_psnr``). Several
tasks (``val_tasks``): ``<task label>_<metric>`` (logged ``val_<task>_<metric>``), the label made
MLflow-safe by :func:`harness.tracking.store.sanitize_key`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from harness.api.restorer import Restorer
from harness.run.plan import Plan, make_plan
from harness.tracking.store import sanitize_key
from harness.train.config import TrainConfig


class ValidationFailed(RuntimeError):
    """An image of the validation task failed (``bench run`` would record it as failed)."""


def validation_plan(config: TrainConfig, device: torch.device) -> Plan | None:
    """Validation as ``bench run -r RESTORER -t VAL_TASK... --seed SEED --limit VAL_LIMIT
    --metrics VAL_METRICS`` would plan it: same task ids, so the same per-image seeds."""
    tasks = config.validation_tasks()
    if not tasks:
        return None
    return make_plan([config.restorer], tasks, seed=config.seed, limit=config.val_limit,
                     metrics=config.val_metrics, check_assets=False, device=str(device))


def metric_prefixes(plan: Plan) -> dict[str, str]:
    """Task id → the prefix of its metric names: none with one task, ``<label>_`` with several."""
    if len(plan.tasks) == 1:
        return {plan.tasks[0].id: ""}
    return {task.id: sanitize_key(task.label) + "_" for task in plan.tasks}


@contextmanager
def evaluation_weights(restorer: Restorer, ema: dict[str, Any] | None, device: torch.device):
    """The restorer in eval mode with the EMA's weights swapped in (when EMA is on), the RNG
    forked: inside, evaluating changes nothing in the training trajectory; after, the training
    weights and mode are back."""
    modules = restorer.train_modules()
    saved = None
    if ema is not None:
        saved = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in modules.items()}
        for name, module in modules.items():
            module.load_state_dict(ema[name].module.state_dict())
    for module in modules.values():
        module.eval()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        for module in modules.values():
            module.train()
        if saved is not None:
            for name, module in modules.items():
                module.load_state_dict(saved[name])


def validate(restorer: Restorer, plan: Plan, ema: dict[str, Any] | None,
             device: torch.device) -> dict[str, float]:
    """Mean metrics of the training restorer on each task of ``plan``, named as the module
    docstring says (warm-up, per-image seeds from the task id, output checks and metric suite
    are the executor's). With EMA the average is evaluated. A failed image fails the training
    (its error is the message)."""
    from harness.run.executor import Loaded, LocalExecutor

    with evaluation_weights(restorer, ema, device):
        loaded = Loaded(plan.restorers[0], restorer, warmed=restorer.warmup == "none")
        records = list(LocalExecutor(plan).stream(loaded, plan.units))  # on plan.device
    failed = [r for r in records if r.status != "ok"]
    if failed:
        raise ValidationFailed(f"validation on {failed[0].task} failed on "
                               f"{failed[0].sample_id}: {failed[0].error}")
    prefixes = metric_prefixes(plan)
    totals: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.metrics.items():
            totals.setdefault(prefixes[record.task_id] + key, []).append(value)
    return {k: float(np.mean(v)) for k, v in totals.items()}
