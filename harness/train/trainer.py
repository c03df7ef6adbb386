"""The generic training loop behind ``bench train``: one loop for every trainable restorer.

The restorer supplies the model and the losses (:meth:`Restorer.setup_training`,
:meth:`~Restorer.parameter_groups`, :meth:`~Restorer.training_step`); the loop supplies what every
method needs and nobody should write twice:

* AdamW (``torch.optim.AdamW``) with a linear warm-up then cosine decay
  (``torch.optim.lr_scheduler.LambdaLR``), gradient-norm clipping, optional EMA
  (``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``), mixed precision on
  CUDA (``torch.autocast`` bf16 by default, fp16 with a ``GradScaler``);
* deterministic data order: batch ``b`` of epoch ``e`` is a slice of a permutation seeded by
  ``(seed, e)``, and a training set's items depend only on ``(seed, e, index)``; so a resumed run
  draws exactly the batches an uninterrupted one would, without replaying the skipped ones;
* optional progressive patches (``progressive``: ``[[iters, crop, batch], ...]`` stages, Restormer's
  ``gt_sizes``/``mini_batch_sizes``): each stage starts a fresh epoch and calls the training set's
  ``set_crop(crop)``; the stage of an iteration is a function of the recipe alone, so a resumed run
  uses the stage an uninterrupted one would;
* validation on a registered task every ``val_every`` iterations with the same
  :class:`~harness.metrics.suite.MetricSuite` as ``bench run`` (EMA weights when EMA is on; the global
  RNG is forked around it, so validating changes nothing in the training trajectory);
* MLflow: one run per training with the recipe as params, loss terms and validation metrics as
  step-indexed metrics (batched), the final checkpoint's sidecar as an artifact;
* resumable checkpoints (:mod:`harness.api.checkpoints`): model, EMA, optimiser, scheduler, scaler,
  every RNG state and the iteration, written atomically every ``checkpoint_every`` iterations.
  ``--resume`` continues from ``--out`` and refuses a checkpoint whose recipe differs.

A killed-and-resumed run ends with the same weights as an uninterrupted one on the CPU (tested).
On CUDA this holds as far as the kernels are deterministic (``torch.use_deterministic_algorithms``
is left to the user: it slows training and some ops refuse it).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api.checkpoints import read_checkpoint, write_checkpoint
from harness.api.restorer import Restorer, build_restorer
from harness.api.training_sets import build_training_set
from harness.io.results import FileLock, git_hash, now_iso
from harness.run.plan import Plan, RestorerItem, make_plan, restorer_spec


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
            self.progressive = _check_stages(self.progressive, self.iters, self.batch_size)
            self.batch_size = self.progressive[0][2]
        elif self.batch_size is None:
            self.batch_size = 8
        for name in ("iters", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        _check_ranges(self)

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


def _check_ranges(recipe: Recipe) -> None:
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

def _check_stages(stages: Any, iters: int, batch_size: int | None) -> tuple[tuple[int, int, int], ...]:
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


@dataclass
class TrainConfig:
    restorer: RestorerItem
    train_set: tuple[str, dict[str, Any]]
    out: Path
    recipe: Recipe = field(default_factory=Recipe)
    val_task: tuple[str, dict[str, Any]] | None = None
    val_every: int = 500
    val_limit: int | None = 4
    val_metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim"])
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


@dataclass
class TrainSummary:
    checkpoint: Path
    sha256: str
    iteration: int
    last_validation: dict[str, float]
    seconds: float
    resumed_from: int | None


def spec_string(name: str, options: dict[str, Any]) -> str:
    from harness.run.units import format_options

    return f"{name}[{format_options(options)}]" if options else name


def _batch_order(n_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch (drop-last), from a permutation seeded by (seed, epoch)."""
    key = hashlib.sha256(f"batches|{seed}|{epoch}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(key[:8], "little") & ((1 << 63) - 1))
    perm = torch.randperm(n_items, generator=generator).tolist()
    return [perm[i:i + batch_size] for i in range(0, n_items - batch_size + 1, batch_size)]


class _Batches:
    """Batches from step ``start`` on, crossing epochs and progressive stages; workers load items
    when asked to.

    Stage ``s`` (iterations ``[a, b)``, batch ``n``) owns the epochs from the sum of the earlier
    stages' epoch counts on, so iteration ``i`` maps to ``(epoch, offset, crop, batch)`` by the recipe
    alone. Without ``progressive`` that is ``divmod(i, len // batch)``, as it always was."""

    def __init__(self, dataset: Any, recipe: Recipe, seed: int, start: int):
        self.stages = recipe.stages()
        largest = max(batch for *_, batch in self.stages)
        if len(dataset) < largest:
            raise ValueError(f"the training set has {len(dataset)} items, fewer than one batch of "
                             f"{largest}; lower --batch-size or enlarge the set")
        if any(crop is not None for _, _, crop, _ in self.stages) and not hasattr(dataset, "set_crop"):
            raise ValueError(f"progressive patches need a training set with set_crop(size); "
                             f"{type(dataset).__name__} has none")
        self.dataset, self.recipe, self.seed = dataset, recipe, seed
        self.step = start

    def position(self, step: int) -> tuple[int, int, int | None, int | None, int]:
        """``(epoch, offset, stage end, crop, batch)`` of iteration ``step``; the last stage has no
        end (it runs on until the loop stops at ``iters``)."""
        first_epoch = 0
        for index, (begin, end, crop, batch) in enumerate(self.stages):
            per_epoch = len(self.dataset) // batch
            last = index == len(self.stages) - 1
            if step < end or last:
                epoch, offset = divmod(step - begin, per_epoch)
                return first_epoch + epoch, offset, None if last else end, crop, batch
            first_epoch += math.ceil((end - begin) / per_epoch)
        raise AssertionError("unreachable")

    def __iter__(self):
        while True:
            epoch, offset, end, crop, batch = self.position(self.step)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            if crop is not None:
                self.dataset.set_crop(crop)
            batches = _batch_order(len(self.dataset), batch, self.seed, epoch)[offset:]
            if end is not None:  # a stage ends mid-epoch: the next one starts a fresh epoch
                batches = batches[:end - self.step]
            # a private generator: creating a loader must not draw from the global RNG (a resumed
            # run creates one mid-epoch, where an uninterrupted run does not)
            loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=batches,
                                                 num_workers=self.recipe.num_workers,
                                                 generator=torch.Generator().manual_seed(epoch))
            for batch_items in loader:
                self.step += 1
                yield batch_items[0], batch_items[1]


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": json.dumps(_np_state()),
             "python": json.dumps(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _np_state() -> list[Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, keys.tolist(), pos, has_gauss, cached]


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = json.loads(state["numpy"])
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    python = json.loads(state["python"])
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _autocast_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    """Mixed precision is a CUDA option (``auto`` = bf16 there); the CPU trains in float32."""
    if device.type != "cuda" or recipe.amp == "off":
        return None
    return torch.float16 if recipe.amp == "fp16" else torch.bfloat16


class ValidationFailed(RuntimeError):
    """An image of the validation task failed (``bench run`` would record it as failed)."""


@dataclass
class _State:
    """What the loop updates: the optimisation state, where it starts, the last validation."""

    modules: dict[str, torch.nn.Module]
    optimizer: Any
    scheduler: Any
    scaler: Any
    ema: dict[str, Any] | None
    dtype: torch.dtype | None
    start: int = 0
    elapsed_before: float = 0.0
    validation: dict[str, float] = field(default_factory=dict)


class Trainer:
    def __init__(self, config: TrainConfig, console: Any = None):
        from harness.run.runner import resolve_device

        self.config = config
        self.console = console
        self.device = resolve_device(config.device)
        self.spec = restorer_spec(config.restorer)  # validates name and options first
        self.train_spec = spec_string(*config.train_set)
        self.val_spec = spec_string(*config.val_task) if config.val_task else None

    # Set-up ---------------------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        """What must match for ``--resume`` to continue a checkpoint."""
        return {"restorer": self.spec.name, "config": self.spec.config, "train_set": self.train_spec,
                "seed": self.config.seed, "recipe": self.config.recipe.identity()}

    def _provenance(self, validation: dict[str, float], seconds: float) -> dict[str, Any]:
        return {"command": " ".join(self.config.argv), "train_set": self.train_spec,
                "train_seed": self.config.seed, "val_task": self.val_spec,
                "git_hash": git_hash(), "created": now_iso(), "recipe": asdict(self.config.recipe),
                "identity": self._identity(), "last_validation": validation,
                "device": str(self.device), "train_seconds": round(seconds, 1),
                "torch": torch.__version__}

    def run(self) -> TrainSummary:
        """Train (or continue a checkpoint with ``resume``) to ``recipe.iters``; the MLflow run
        ends FAILED (KILLED on Ctrl-C) if training raises. The checkpoint is locked for the
        whole training (:func:`checkpoint_lock`): a second ``bench train --out`` on the same
        file refuses instead of training alongside and overwriting it."""
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
        state = self._start(restorer, out)
        tracker = self._tracker(state.start)
        try:
            sha, seconds = self._loop(dataset, val_plan, restorer, state, tracker, out)
        except BaseException as exc:
            tracker.finish(None, {}, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        if not sha:  # nothing left to do (a finished run resumed): keep the existing file
            sha = read_checkpoint(out).sha256
        sidecar = out.with_name(out.name + ".json")
        tracker.finish(sidecar if sidecar.exists() else None, {}, "FINISHED")
        return TrainSummary(out, sha, max(state.start, config.recipe.iters), state.validation,
                            seconds, state.start if config.resume and state.start else None)

    def _start(self, restorer: Restorer, out: Path) -> _State:
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
        dtype = _autocast_dtype(recipe, self.device)
        state = _State(modules, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, recipe.lr_factor),
                       torch.amp.GradScaler("cuda", enabled=dtype == torch.float16), self._ema(modules),
                       dtype)
        if config.resume and out.exists():
            state.start, state.elapsed_before, state.validation = self._restore(
                out, restorer, state.optimizer, state.scheduler, state.scaler, state.ema)
        return state

    def _loop(self, dataset: Any, val_plan: Plan | None, restorer: Restorer, state: _State,
              tracker: Any, out: Path) -> tuple[str, float]:
        """The iterations from ``state.start`` on: step, log, validate, checkpoint. Returns the
        last checkpoint's sha256 (empty if none was written) and the training seconds."""
        config, recipe = self.config, self.config.recipe
        begin = time.perf_counter()
        sha = ""
        pending: list[tuple[int, dict[str, float]]] = []
        with _progress(config.show_progress, self.console) as progress:
            bar = progress.add_task(f"train {self.spec.label}", total=recipe.iters, completed=state.start)
            step = state.start
            for lq, gt in _Batches(dataset, recipe, config.seed, state.start):
                if step >= recipe.iters:
                    break
                pending.append((step + 1, self._step(restorer, state, lq, gt, step)))
                step += 1
                progress.advance(bar)
                last = step == recipe.iters
                if step % config.log_every == 0 or last:
                    self._print_line(step, pending[-1][1], time.perf_counter() - begin, state.start)
                    tracker.log_steps(pending)
                    pending = []
                if val_plan is not None and (step % config.val_every == 0 or last):
                    state.validation = self.validate(restorer, val_plan, state.ema)
                    self._print_line(step, {f"val_{k}": v for k, v in state.validation.items()})
                    tracker.log_steps([(step, {f"val_{k}": v for k, v in state.validation.items()})])
                if step % config.checkpoint_every == 0 or last:
                    seconds = state.elapsed_before + time.perf_counter() - begin
                    sha = self._save(out, restorer, state.optimizer, state.scheduler, state.scaler,
                                     state.ema, step, state.validation, seconds)
        return sha, state.elapsed_before + time.perf_counter() - begin

    def _print_line(self, step: int, values: dict[str, float], seconds: float | None = None,
                    start: int = 0) -> None:
        """With the bars off (``--no-progress``, logs, CI), one line every ``log_every``
        iterations and after each validation, so a long training is not silent until it ends."""
        if self.config.show_progress:
            return
        text = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
        rate = f"  {seconds / max(1, step - start):.2f} s/it" if seconds is not None else ""
        line = f"iter {step}/{self.config.recipe.iters}  {text}{rate}"
        if self.console is not None:
            self.console.print(line, markup=False, highlight=False)
        else:
            print(line, flush=True)

    def _step(self, restorer: Restorer, state: _State, lq: torch.Tensor, gt: torch.Tensor,
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
        val_plan = self._val_plan()
        restorer = build_restorer(self.spec.name, **self.spec.options)
        if not restorer.trainable:
            raise ValueError(f"restorer {self.spec.name!r} is not trainable (no training hooks)")
        return dataset, val_plan, restorer

    def check(self) -> dict[str, Any]:
        """Everything :meth:`run` checks before its first step, without training: the restorer
        spec and that it trains, the training set (built, so its data must be present), the
        batches and progressive stages against it, and the validation task's data. Returns a
        summary; raises what ``run`` would raise."""
        dataset, val_plan, _ = self._prepare()
        _Batches(dataset, self.config.recipe, self.config.seed, 0)
        return {"restorer": self.spec.label, "train_set": self.train_spec, "items": len(dataset),
                "val_task": self.val_spec,
                "val_samples": sum(len(u.sample_ids) for u in val_plan.units) if val_plan else 0,
                "stages": self.config.recipe.stages(), "out": str(self.config.out)}

    def _val_plan(self) -> Plan | None:
        """Validation as ``bench run -r RESTORER -t VAL_TASK --seed SEED --limit VAL_LIMIT
        --metrics VAL_METRICS`` would plan it: same task id, so the same per-image seeds."""
        config = self.config
        if config.val_task is None:
            return None
        return make_plan([config.restorer], [config.val_task], seed=config.seed,
                         limit=config.val_limit, metrics=config.val_metrics, check_assets=False,
                         device=str(self.device))

    def _ema(self, modules: dict[str, torch.nn.Module]) -> dict[str, Any] | None:
        decay = self.config.recipe.ema_decay
        if not decay:
            return None
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        return {name: AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
                for name, module in modules.items()}

    # Validation -----------------------------------------------------------------------------------
    def validate(self, restorer: Restorer, plan: Plan, ema: dict[str, Any] | None) -> dict[str, float]:
        """Mean metrics of the training restorer on the validation plan, evaluated by ``bench
        run``'s own executor (warm-up, per-image seeds from the task id, output checks, metric
        suite), so ``bench run`` on the saved weights gives the same numbers. With EMA the
        average is evaluated. The RNG is forked around it: validating changes nothing in the
        training trajectory. A failed image fails the training (its error is the message)."""
        from harness.run.executor import Loaded, LocalExecutor

        modules = restorer.train_modules()
        saved = None
        if ema is not None:  # evaluate the average: swap its weights in, then back
            saved = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in modules.items()}
            for name, module in modules.items():
                module.load_state_dict(ema[name].module.state_dict())
        for module in modules.values():
            module.eval()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            loaded = Loaded(plan.restorers[0], restorer, warmed=restorer.warmup == "none")
            records = list(LocalExecutor(plan).stream(loaded, plan.units))  # on plan.device
        for module in modules.values():
            module.train()
        if saved is not None:
            for name, module in modules.items():
                module.load_state_dict(saved[name])
        failed = [r for r in records if r.status != "ok"]
        if failed:
            raise ValidationFailed(f"validation on {failed[0].task} failed on "
                                   f"{failed[0].sample_id}: {failed[0].error}")
        totals: dict[str, list[float]] = {}
        for record in records:
            for key, value in record.metrics.items():
                totals.setdefault(key, []).append(value)
        return {k: float(np.mean(v)) for k, v in totals.items()}

    # Checkpoints ----------------------------------------------------------------------------------
    def _save(self, out: Path, restorer: Restorer, optimizer: Any, scheduler: Any, scaler: Any,
              ema: dict[str, Any] | None, step: int, validation: dict[str, float],
              seconds: float) -> str:
        training = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "rng": _rng_state(), "iteration": step,
                    "total_iters": self.config.recipe.iters, "seconds": seconds,
                    "ema_full": {n: a.state_dict() for n, a in ema.items()} if ema else None,
                    "identity": json.dumps(self._identity(), sort_keys=True, default=str)}
        return write_checkpoint(out, restorer=self.spec.name, config=self.spec.config,
                                model=restorer.state_dict(),
                                ema={n: a.module.state_dict() for n, a in ema.items()} if ema else None,
                                training=training, provenance=self._provenance(validation, seconds))

    def _restore(self, out: Path, restorer: Restorer, optimizer: Any, scheduler: Any, scaler: Any,
                 ema: dict[str, Any] | None) -> tuple[int, float, dict[str, float]]:
        checkpoint = read_checkpoint(out)
        training = checkpoint.training
        if training is None:
            raise ValueError(f"{out} holds no training state (an exported checkpoint); it cannot "
                             f"be resumed. Start a new training with --init or another --out")
        identity = json.dumps(self._identity(), sort_keys=True, default=str)
        if training["identity"] != identity:
            raise ValueError(f"--resume: {out} was trained with another recipe:\n  checkpoint: "
                             f"{training['identity']}\n  this command: {identity}\nuse the same "
                             f"options or another --out")
        restorer.load_state_dict(checkpoint.model)
        optimizer.load_state_dict(training["optimizer"])
        scheduler.load_state_dict(training["scheduler"])
        scaler.load_state_dict(training["scaler"])
        if ema is not None and training.get("ema_full"):
            for name, average in ema.items():
                average.load_state_dict(training["ema_full"][name])
        _set_rng_state(training["rng"])
        return (int(training["iteration"]), float(training.get("seconds", 0.0)),
                dict(checkpoint.provenance.get("last_validation", {})))

    def _tracker(self, start: int) -> Any:
        """The training's MLflow run, logged by the tracking child process."""
        from harness.tracking.store import check_reachable, default_tracking_uri, training_run_name
        from harness.tracking.worker import open_tracking

        config = self.config
        uri = config.tracking_uri or default_tracking_uri(config.output_dir)
        if config.tracking:
            check_reachable(uri)
        tracker = open_tracking(config.tracking, uri, config.experiment,
                                Path(config.output_dir) / "mlartifacts")
        params = {"restorer": self.spec.name, "restorer.label": self.spec.label,
                  "restorer.config": self.spec.config, "train_set": self.train_spec,
                  "val_task": self.val_spec, "seed": config.seed, "device": str(self.device),
                  "out": str(config.out), "resumed_at": start,
                  **{f"measurement.{k}": v for k, v in self.environment.params().items()},
                  **{f"recipe.{k}": v for k, v in asdict(config.recipe).items()}}
        tracker.start_parent(training_run_name(self.spec.label, self.train_spec), params=params,
                             tags={"kind": "train", "git_hash": git_hash(), "argv": " ".join(config.argv)})
        return tracker


def _progress(show: bool, console: Any):
    from harness.run.runner import _progress as progress

    return progress(show, console, unit="it")


def train(config: TrainConfig, console: Any = None) -> TrainSummary:
    return Trainer(config, console).run()


def checkpoint_lock(out: Path) -> FileLock:
    """The lock of a training's checkpoint, ``.<name>.lock`` beside it (as ``bench run`` locks
    its run folder): released by the kernel when the holder dies, so never stale."""
    return FileLock(out.with_name(f".{out.name}.lock"),
                    f"{out} is being trained by another bench train ({{holder}}); wait for it to "
                    "finish (then --resume to continue it) or choose another --out")
