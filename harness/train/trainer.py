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
from harness.io.results import git_hash, now_iso
from harness.run.plan import RestorerItem, restorer_spec


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
        if self.lr <= 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")

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
        config, recipe = self.config, self.config.recipe
        out = Path(config.out)
        if out.exists() and not config.resume:
            raise FileExistsError(f"{out} exists; pass --resume to continue that training or "
                                  f"choose another --out")
        dataset, val_task, restorer = self._prepare()
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)
        restorer.setup_training(self.device)
        modules = restorer.train_modules()
        optimizer = torch.optim.AdamW(restorer.parameter_groups(), lr=recipe.lr,
                                      betas=recipe.betas, weight_decay=recipe.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, recipe.lr_factor)
        dtype = _autocast_dtype(recipe, self.device)
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        ema = self._ema(modules)
        start, elapsed_before, validation = 0, 0.0, {}
        if config.resume and out.exists():
            start, elapsed_before, validation = self._restore(out, restorer, optimizer, scheduler,
                                                              scaler, ema)
        tracker = self._tracker(start)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        begin = time.perf_counter()
        progress = _progress(config.show_progress, self.console)
        sha = ""
        pending: list[tuple[int, dict[str, float]]] = []
        with progress:
            bar = progress.add_task(f"train {self.spec.label}", total=recipe.iters, completed=start)
            step = start
            for lq, gt in _Batches(dataset, recipe, config.seed, start):
                if step >= recipe.iters:
                    break
                lq, gt = lq.to(self.device), gt.to(self.device)
                with torch.autocast(self.device.type, dtype=dtype or torch.float32,
                                    enabled=dtype is not None):
                    losses = restorer.training_step(lq, gt, step, recipe.iters)
                loss = losses["loss"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{self.spec.label}: loss is {float(loss)} at iteration "
                                             f"{step}; lower --lr or enable --grad-clip")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if recipe.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if ema is not None:
                    for name, average in ema.items():
                        average.update_parameters(modules[name])
                step += 1
                progress.advance(bar)
                pending.append((step, {k: float(v.detach()) for k, v in losses.items()}
                                | {"lr": scheduler.get_last_lr()[0]}))
                if step % config.log_every == 0 or step == recipe.iters:
                    tracker.log_steps(pending)
                    pending = []
                last = step == recipe.iters
                if val_task is not None and (step % config.val_every == 0 or last):
                    validation = self.validate(restorer, val_task, ema)
                    tracker.log_steps([(step, {f"val_{k}": v for k, v in validation.items()})])
                if step % config.checkpoint_every == 0 or last:
                    seconds = elapsed_before + time.perf_counter() - begin
                    sha = self._save(out, restorer, optimizer, scheduler, scaler, ema, step,
                                     validation, seconds)
        seconds = elapsed_before + time.perf_counter() - begin
        if not sha:  # nothing left to do (a finished run resumed): keep the existing file
            sha = read_checkpoint(out).sha256
        tracker.finish(out, validation)
        return TrainSummary(out, sha, max(start, recipe.iters), validation, seconds,
                            start if config.resume and start else None)

    def _prepare(self) -> tuple[Any, Any, Restorer]:
        """The training set, the validation task (data checked) and the untrained restorer."""
        config = self.config
        dataset = build_training_set(config.train_set[0], seed=config.seed, **config.train_set[1])
        val_task = self._val_task()
        restorer = build_restorer(self.spec.name, **self.spec.options)
        if not restorer.trainable:
            raise ValueError(f"restorer {self.spec.name!r} is not trainable (no training hooks)")
        return dataset, val_task, restorer

    def check(self) -> dict[str, Any]:
        """Everything :meth:`run` checks before its first step, without training: the restorer
        spec and that it trains, the training set (built, so its data must be present), the
        batches and progressive stages against it, and the validation task's data. Returns a
        summary; raises what ``run`` would raise."""
        dataset, val_task, _ = self._prepare()
        _Batches(dataset, self.config.recipe, self.config.seed, 0)
        return {"restorer": self.spec.label, "train_set": self.train_spec, "items": len(dataset),
                "val_task": self.val_spec, "val_samples": len(val_task.sample_ids()) if val_task else 0,
                "stages": self.config.recipe.stages(), "out": str(self.config.out)}

    def _val_task(self) -> Any:
        if self.config.val_task is None:
            return None
        from harness.api.task import build_task

        task = build_task(self.config.val_task[0], **dict(self.config.val_task[1]))
        task.check_available()
        return task

    def _ema(self, modules: dict[str, torch.nn.Module]) -> dict[str, Any] | None:
        decay = self.config.recipe.ema_decay
        if not decay:
            return None
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        return {name: AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
                for name, module in modules.items()}

    # Validation -----------------------------------------------------------------------------------
    def validate(self, restorer: Restorer, task: Any, ema: dict[str, Any] | None) -> dict[str, float]:
        """Mean metrics over the first ``val_limit`` samples, with the run's metric code."""
        from harness.metrics.suite import MetricSuite
        from harness.run.executor import restorer_seed

        suite = MetricSuite(self.config.val_metrics, task.conventions, self.device, task.has_gt)
        modules = restorer.train_modules()
        saved = None
        if ema is not None:  # evaluate the average: swap its weights in, then back
            saved = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in modules.items()}
            for name, module in modules.items():
                module.load_state_dict(ema[name].module.state_dict())
        for module in modules.values():
            module.eval()
        totals: dict[str, list[float]] = {}
        with torch.random.fork_rng(devices=[]):
            for sample_id in task.sample_ids()[: self.config.val_limit]:
                sample = task.load(sample_id)
                seed = restorer_seed(self.config.seed, task.name, sample_id)
                meta = {**sample.meta, "generator": torch.Generator().manual_seed(seed), "seed": seed}
                out = restorer.restore(sample.lq.unsqueeze(0).to(self.device), meta)
                gt = sample.gt.unsqueeze(0).to(self.device) if sample.gt is not None else None
                values, _, _ = suite.score(out, gt, sample.meta)
                for key, value in values.items():
                    totals.setdefault(key, []).append(value)
        for module in modules.values():
            module.train()
        if saved is not None:
            for name, module in modules.items():
                module.load_state_dict(saved[name])
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

    def _tracker(self, start: int) -> _TrainTracker:
        if not self.config.tracking:
            return _TrainTracker(None, {})
        from harness.tracking.factory import open_tracker
        from harness.tracking.store import default_tracking_uri

        uri = self.config.tracking_uri or default_tracking_uri(self.config.output_dir)
        root = Path(self.config.output_dir) / "mlartifacts"
        params = {"restorer": self.spec.name, "restorer.label": self.spec.label,
                  "restorer.config": self.spec.config, "train_set": self.train_spec,
                  "val_task": self.val_spec, "seed": self.config.seed, "device": str(self.device),
                  "out": str(self.config.out), "resumed_at": start,
                  **{f"recipe.{k}": v for k, v in asdict(self.config.recipe).items()}}
        return _TrainTracker(lambda: open_tracker(uri, self.config.experiment, root), params,
                             name=f"train:{self.spec.label}", argv=self.config.argv)


class _TrainTracker:
    """Step-indexed metrics of a training run on the MLflow worker thread."""

    def __init__(self, factory: Any, params: dict[str, Any], name: str = "", argv: Any = ()):
        from harness.tracking.worker import TrackingWorker

        self.worker = TrackingWorker(factory)
        self.run_id = ""
        if self.worker.enabled:
            def start(tracker: Any) -> None:
                self.run_id = tracker.start_parent(name, tags={"kind": "train", "git_hash": git_hash(),
                                                               "argv": " ".join(argv)}, params=params)

            self.worker.submit(start)

    def log_steps(self, rows: list[tuple[int, dict[str, float]]]) -> None:
        def job(tracker: Any) -> None:
            tracker.log_metric_steps(self.run_id, rows)

        if rows:
            self.worker.submit(job)

    def finish(self, checkpoint: Path, validation: dict[str, float]) -> None:
        def job(tracker: Any) -> None:
            sidecar = checkpoint.with_name(checkpoint.name + ".json")
            if sidecar.exists():
                tracker.log_artifact(self.run_id, sidecar)
            tracker.end(self.run_id)

        self.worker.submit(job)
        self.worker.close()


def _progress(show: bool, console: Any):
    from harness.run.runner import _progress as progress

    return progress(show, console)


def train(config: TrainConfig, console: Any = None) -> TrainSummary:
    return Trainer(config, console).run()
