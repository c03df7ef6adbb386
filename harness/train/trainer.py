"""The generic training loop behind ``bench train``: one loop for every trainable restorer.

The restorer supplies the model and the losses (:meth:`Restorer.setup_training`,
:meth:`~Restorer.parameter_groups`, :meth:`~Restorer.training_step`); the loop supplies what every
method needs and nobody should write twice:

* AdamW (``torch.optim.AdamW``) with a linear warm-up then cosine decay
  (``torch.optim.lr_scheduler.LambdaLR``), gradient-norm clipping, optional EMA
  (``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``), mixed precision on
  CUDA (``torch.autocast`` bf16 by default, fp16 with a ``GradScaler``);
* deterministic data order and progressive patches (:mod:`harness.train.data`): a resumed run
  draws exactly the batches an uninterrupted one would, in the stage it would;
* validation on one or more registered tasks every ``val_every`` iterations with ``bench run``'s
  executor (:mod:`harness.train.validation`; EMA weights when EMA is on; the global RNG is forked
  around it, so validating changes nothing in the training trajectory);
* optional early stopping when validation flattens, keeping the best weights beside the
  checkpoint (:mod:`harness.train.early_stop`);
* MLflow: one run per training *across resumes* (:mod:`harness.train.mlflow_run`) with the recipe
  as params, loss terms and validation metrics as metrics stepped by iteration (batched), the
  final checkpoint's sidecar as an artifact;
* resumable checkpoints (:mod:`harness.train.state`, :mod:`harness.api.checkpoints`) written
  atomically every ``checkpoint_every`` iterations. ``--resume`` continues from ``--out`` and
  refuses a checkpoint whose recipe (:class:`~harness.train.recipe.Recipe`) differs.

A killed-and-resumed run ends with the same weights as an uninterrupted one on the CPU (tested).
On CUDA this holds as far as the kernels are deterministic (``torch.use_deterministic_algorithms``
is left to the user: it slows training and some ops refuse it).

The names other code imports from here (``Recipe``, ``TrainConfig``, ``Trainer``, ``train``,
``checkpoint_lock``, ``ValidationFailed``...) stay importable from this module.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api.checkpoints import read_checkpoint, write_checkpoint
from harness.api.items import parse_item
from harness.api.restorer import Restorer, build_restorer
from harness.api.training_sets import build_training_set
from harness.io.results import git_hash, now_iso
from harness.run.plan import Plan, restorer_spec
from harness.train.config import TrainConfig, TrainSummary, spec_string
from harness.train.data import Batches, batch_order
from harness.train.early_stop import EarlyStopper, best_path
from harness.train.mlflow_run import RunRecord, open_training_run
from harness.train.recipe import EarlyStopRule, Recipe
from harness.train.state import LoopState, autocast_dtype, checkpoint_lock, restore_training, training_state
from harness.train.validation import ValidationFailed, metric_prefixes, validate, validation_plan

# the names this module always had (tests and older callers import them from here)
_Batches, _batch_order, _State = Batches, batch_order, LoopState
__all__ = ["EarlyStopRule", "Recipe", "TrainConfig", "TrainSummary", "Trainer", "ValidationFailed",
           "checkpoint_lock", "spec_string", "train"]


class Trainer:
    def __init__(self, config: TrainConfig, console: Any = None):
        from harness.run.runner import resolve_device

        self.config = config
        self.console = console
        self.device = resolve_device(config.device)
        self.spec = restorer_spec(config.restorer)  # validates name and options first
        self.train_spec = spec_string(*config.train_set)
        self.val_specs = [spec_string(*task) for task in config.validation_tasks()]
        self.val_spec = self.val_specs[0] if self.val_specs else None
        self.stop_task = self._check_early_stop()
        self.stop_key: str | None = None  # the logged metric early stopping watches (set by _prepare)

    # Set-up ---------------------------------------------------------------------------------------
    def _check_early_stop(self) -> int | None:
        """The index of the validation task early stopping watches; ValueError for a rule that
        cannot work with this training (no validation, a metric not validated or without a
        direction, a task not validated on), before anything loads."""
        config, rule = self.config, self.config.early_stop
        if rule is None:
            return None
        tasks = config.validation_tasks()
        if not tasks:
            raise ValueError("early_stop needs a validation task: give val_task (or val_tasks)")
        if rule.metric not in config.val_metrics:
            raise ValueError(f"early_stop.metric {rule.metric!r} is not validated; add it to "
                             f"val_metrics (now {','.join(config.val_metrics)})")
        rule.lower_better()
        if rule.task is None:
            return 0
        wanted = parse_item(rule.task)
        for index, task in enumerate(tasks):
            if task == wanted or spec_string(*task) == rule.task:
                return index
        raise ValueError(f"early_stop.task {rule.task!r} is not a validation task; choose one of "
                         f"{self.val_specs}")

    def _identity(self) -> dict[str, Any]:
        """What must match for ``--resume`` to continue a checkpoint (not the validation, the
        early-stopping rule or where things are logged: they do not change the weights)."""
        return {"restorer": self.spec.name, "config": self.spec.config, "train_set": self.train_spec,
                "seed": self.config.seed, "recipe": self.config.recipe.identity()}

    def _provenance(self, validation: dict[str, float], seconds: float) -> dict[str, Any]:
        provenance = {"command": " ".join(self.config.argv), "train_set": self.train_spec,
                      "train_seed": self.config.seed, "val_task": self.val_spec,
                      "git_hash": git_hash(), "created": now_iso(), "recipe": asdict(self.config.recipe),
                      "identity": self._identity(), "last_validation": validation,
                      "device": str(self.device), "train_seconds": round(seconds, 1),
                      "torch": torch.__version__}
        if len(self.val_specs) > 1:
            provenance["val_tasks"] = self.val_specs
        if self.config.early_stop is not None:
            provenance["early_stop"] = self.config.early_stop.describe()
        return provenance

    def params(self, start: int) -> dict[str, Any]:
        """The MLflow params of a new run (a continued run keeps its first attempt's)."""
        config = self.config
        params = {"restorer": self.spec.name, "restorer.label": self.spec.label,
                  "restorer.config": self.spec.config, "train_set": self.train_spec,
                  "val_task": self.val_spec, "seed": config.seed, "device": str(self.device),
                  "out": str(config.out), "resumed_at": start,
                  **{f"measurement.{k}": v for k, v in self.environment.params().items()},
                  **{f"recipe.{k}": v for k, v in asdict(config.recipe).items()}}
        if len(self.val_specs) > 1:
            params["val_tasks"] = self.val_specs
        if config.early_stop is not None:
            params.update({f"early_stop.{k}": v for k, v in config.early_stop.describe().items()})
        return params

    def run(self) -> TrainSummary:
        """Train (or continue a checkpoint with ``resume``) to ``recipe.iters`` or until early
        stopping; the MLflow run ends FAILED (KILLED on Ctrl-C) if training raises. The checkpoint
        is locked for the whole training (:func:`checkpoint_lock`): a second ``bench train --out``
        on the same file refuses instead of training alongside and overwriting it."""
        with checkpoint_lock(Path(self.config.out)):
            return self._run()

    def _run(self) -> TrainSummary:
        config, out = self.config, Path(self.config.out)
        if out.exists() and not config.resume:
            raise FileExistsError(f"{out} exists; pass --resume to continue that training or "
                                  f"choose another --out")
        from harness.io.threads import configure_timing

        self.environment = configure_timing(config.threads)  # before torch's thread pool starts
        dataset, val_plan, restorer = self._prepare()
        resumed = config.resume and out.exists()
        state = self._start(restorer, out)
        stopper = self._stopper(state)
        if stopper is not None and stopper.stopped:
            return self._already_stopped(out, state, stopper)
        record = RunRecord(out, config.tracking)
        record.prepare(state.mlflow, resumed)
        tracker = open_training_run(self, state.start, record)
        try:
            sha, seconds = self._loop(dataset, val_plan, restorer, state, tracker, out, (stopper, record))
        except BaseException as exc:
            tracker.finish(None, {}, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        if not sha:  # nothing left to do (a finished run resumed): keep the existing file
            sha = read_checkpoint(out).sha256
        reason = stopper.reason() if stopper is not None and stopper.stopped else None
        sidecar = out.with_name(out.name + ".json")
        tracker.finish(sidecar if sidecar.exists() else None, {}, "FINISHED",
                       tags={"stop_reason": reason} if reason else None)
        return TrainSummary(out, sha, state.iteration, state.validation, seconds,
                            state.start if resumed and state.start else None, reason,
                            best_path(out) if stopper is not None else None)

    def _start(self, restorer: Restorer, out: Path) -> LoopState:
        """Seed, set the restorer up for training, build the optimisation state, and load it
        from ``out`` when resuming."""
        config, recipe = self.config, self.config.recipe
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)
        restorer.setup_training(self.device)
        modules = restorer.train_modules()
        optimizer = torch.optim.AdamW(restorer.parameter_groups(), lr=recipe.lr,
                                      betas=recipe.betas, weight_decay=recipe.weight_decay)
        dtype = autocast_dtype(recipe, self.device)
        state = LoopState(modules, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, recipe.lr_factor),
                          torch.amp.GradScaler("cuda", enabled=dtype == torch.float16), self._ema(modules),
                          dtype)
        if config.resume and out.exists():
            restore_training(out, restorer, state, self._identity_text())
        return state

    def _identity_text(self) -> str:
        return json.dumps(self._identity(), sort_keys=True, default=str)

    def _stopper(self, state: LoopState) -> EarlyStopper | None:
        """The early-stopping count, continued from the checkpoint when it holds one for the
        same metric (a checkpoint without one counts from here, and says so)."""
        rule = self.config.early_stop
        if rule is None or self.stop_key is None:
            return None
        stopper = EarlyStopper(rule, self.stop_key, rule.lower_better())
        if not stopper.restore(state.early_stop) and state.start:
            self._say(f"early stopping on {self.stop_key} counts from iteration {state.start} "
                      f"(the checkpoint holds no count for it)")
        state.early_stop = stopper.state()
        return stopper

    def _already_stopped(self, out: Path, state: LoopState, stopper: EarlyStopper) -> TrainSummary:
        """A resumed training that had stopped early: nothing to train."""
        reason = stopper.reason()
        self._say(f"{out} stopped early at iteration {state.start}; nothing to train ({reason}). "
                  f"Raise early_stop.patience or remove early_stop to continue it.")
        return TrainSummary(out, read_checkpoint(out).sha256, state.start, state.validation,
                            state.elapsed_before, state.start, reason, best_path(out))

    def _say(self, line: str) -> None:
        if self.console is not None:
            self.console.print(line, markup=False, highlight=False)
        else:
            print(line, flush=True)

    # The loop -------------------------------------------------------------------------------------
    def _loop(self, dataset: Any, val_plan: Plan | None, restorer: Restorer, state: LoopState,
              tracker: Any, out: Path, helpers: tuple[EarlyStopper | None, RunRecord]) -> tuple[str, float]:
        """The iterations from ``state.start`` on: step, log, validate, checkpoint; stop at
        ``iters`` or when early stopping says so. Returns the last checkpoint's sha256 (empty if
        none was written) and the training seconds."""
        config, recipe = self.config, self.config.recipe
        stopper, record = helpers
        begin = time.perf_counter()
        sha, stop = "", False
        pending: list[tuple[int, dict[str, float]]] = []
        with _progress(config.show_progress, self.console) as progress:
            bar = progress.add_task(f"train {self.spec.label}", total=recipe.iters, completed=state.start)
            step = state.start
            for lq, gt in Batches(dataset, recipe, config.seed, state.start):
                if step >= recipe.iters:
                    break
                pending.append((step + 1, self._step(restorer, state, lq, gt, step)))
                step = state.iteration = step + 1
                progress.advance(bar)
                last = step == recipe.iters
                if step % config.log_every == 0 or last:
                    self._print_line(step, pending[-1][1], time.perf_counter() - begin, state.start)
                    tracker.log_steps(pending)
                    pending = []
                if val_plan is not None and (step % config.val_every == 0 or last):
                    seconds = state.elapsed_before + time.perf_counter() - begin
                    stop = self._validate(restorer, val_plan, state, tracker, step, (stopper, out, seconds))
                if step % config.checkpoint_every == 0 or last or stop:
                    state.mlflow = record.confirmed() or state.mlflow
                    sha = self._save(out, restorer, state, step,
                                     state.elapsed_before + time.perf_counter() - begin)
                if stop:
                    break
        tracker.log_steps(pending)
        return sha, state.elapsed_before + time.perf_counter() - begin

    def _validate(self, restorer: Restorer, plan: Plan, state: LoopState, tracker: Any, step: int,
                  context: tuple[EarlyStopper | None, Path, float]) -> bool:
        """Validate at iteration ``step``, log it, count it for early stopping and keep the best
        weights; True when training should stop now."""
        stopper, out, seconds = context
        state.validation = validate(restorer, plan, state.ema, self.device)
        logged = {f"val_{k}": v for k, v in state.validation.items()}
        self._print_line(step, logged)
        tracker.log_steps([(step, logged)])
        if stopper is None:
            return False
        if stopper.key not in logged:
            raise ValidationFailed(f"early_stop watches {stopper.key}, but validation gave only "
                                   f"{sorted(logged)}")
        if stopper.update(logged[stopper.key], step):
            self._save_best(out, restorer, state, stopper, seconds)
        state.early_stop = stopper.state()
        if stopper.stopped:
            self._say(f"iter {step}: {stopper.reason()}; best weights in {best_path(out)}")
            return True
        return False

    def _print_line(self, step: int, values: dict[str, float], seconds: float | None = None,
                    start: int = 0) -> None:
        """With the bars off (``--no-progress``, logs, CI), one line every ``log_every``
        iterations and after each validation, so a long training is not silent until it ends."""
        if self.config.show_progress:
            return
        text = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
        rate = f"  {seconds / max(1, step - start):.2f} s/it" if seconds is not None else ""
        self._say(f"iter {step}/{self.config.recipe.iters}  {text}{rate}")

    def _step(self, restorer: Restorer, state: LoopState, lq: torch.Tensor, gt: torch.Tensor,
              step: int) -> dict[str, float]:
        """One optimisation step; returns the loss terms and the learning rate."""
        recipe = self.config.recipe
        lq, gt = lq.to(self.device), gt.to(self.device)
        with torch.autocast(self.device.type, dtype=state.dtype or torch.float32,
                            enabled=state.dtype is not None):
            losses = restorer.training_step(lq, gt, step, recipe.iters)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.spec.label}: loss is {float(loss.detach())} at iteration "
                                     f"{step}; lower --lr or enable --grad-clip")
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        if recipe.grad_clip:
            state.scaler.unscale_(state.optimizer)
            params = [p for group in state.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        if state.ema is not None:
            for name, average in state.ema.items():
                average.update_parameters(state.modules[name])
        return ({k: float(v.detach()) for k, v in losses.items()}
                | {"lr": state.scheduler.get_last_lr()[0]})

    def _prepare(self) -> tuple[Any, Plan | None, Restorer]:
        """The training set, the validation plan (data checked) and the untrained restorer."""
        config = self.config
        dataset = build_training_set(config.train_set[0], seed=config.seed, **config.train_set[1])
        val_plan = validation_plan(config, self.device)
        if val_plan is not None and self.stop_task is not None and config.early_stop is not None:
            prefix = metric_prefixes(val_plan)[val_plan.tasks[self.stop_task].id]
            self.stop_key = f"val_{prefix}{config.early_stop.metric}"
        restorer = build_restorer(self.spec.name, **self.spec.options)
        if not restorer.trainable:
            raise ValueError(f"restorer {self.spec.name!r} is not trainable (no training hooks)")
        return dataset, val_plan, restorer

    def check(self) -> dict[str, Any]:
        """Everything :meth:`run` checks before its first step, without training: the restorer
        spec and that it trains, the training set (built, so its data must be present), the
        batches and progressive stages against it, the validation tasks' data and the
        early-stopping rule. Returns a summary; raises what ``run`` would raise."""
        dataset, val_plan, _ = self._prepare()
        Batches(dataset, self.config.recipe, self.config.seed, 0)
        report = {"restorer": self.spec.label, "train_set": self.train_spec, "items": len(dataset),
                  "val_task": self.val_spec,
                  "val_samples": sum(len(u.sample_ids) for u in val_plan.units) if val_plan else 0,
                  "stages": self.config.recipe.stages(), "out": str(self.config.out)}
        if len(self.val_specs) > 1:
            report["val_tasks"] = self.val_specs
        if self.stop_key is not None:
            report["early_stop"] = {**self.config.early_stop.describe(), "watches": self.stop_key}
        return report

    def _ema(self, modules: dict[str, torch.nn.Module]) -> dict[str, Any] | None:
        decay = self.config.recipe.ema_decay
        if not decay:
            return None
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        return {name: AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
                for name, module in modules.items()}

    # Checkpoints ----------------------------------------------------------------------------------
    def _save(self, out: Path, restorer: Restorer, state: LoopState, step: int, seconds: float) -> str:
        training = training_state(state, step, self.config.recipe.iters, seconds, self._identity_text())
        ema = state.ema
        return write_checkpoint(out, restorer=self.spec.name, config=self.spec.config,
                                model=restorer.state_dict(),
                                ema={n: a.module.state_dict() for n, a in ema.items()} if ema else None,
                                training=training, provenance=self._provenance(state.validation, seconds))

    def _save_best(self, out: Path, restorer: Restorer, state: LoopState, stopper: EarlyStopper,
                   seconds: float) -> str:
        """The weights just validated as the best so far, without training state (what ships);
        their iteration and value are in the provenance (``best``) and the sidecar."""
        provenance = {**self._provenance(state.validation, seconds), "best": stopper.best_record(),
                      "best_of": out.name}
        return write_checkpoint(best_path(out), restorer=self.spec.name, config=self.spec.config,
                                model=state.inference_weights(restorer), ema=None, training=None,
                                provenance=provenance)


def _progress(show: bool, console: Any):
    from harness.run.runner import _progress as progress

    return progress(show, console, unit="it")


def train(config: TrainConfig, console: Any = None) -> TrainSummary:
    return Trainer(config, console).run()
