"""Executors: run units and yield one record per image. The local one works in-process.

An executor owns models and devices; it never writes result files or talks to MLflow (the
reducer alone does). That is the seam a cluster executor plugs into: anything that turns units
into the same records (``Executor.run``) can replace :class:`LocalExecutor` without touching the
plan or the reducer.

The local executor, per restorer configuration (units arrive grouped by restorer):

1. builds and loads the restorer once, then warms it up as the restorer declares
   (``Restorer.warmup``: a 64×64 crop, nothing, or its own cheap ``warm_up``), untimed;
2. streams each unit's samples with a one-ahead prefetch thread (decode and synthetic
   degradation overlap the model);
3. times ``restore`` alone (CUDA-synchronised) and measures its peak memory;
4. scores the output with the task's :class:`~harness.metrics.suite.MetricSuite` and yields the record.

Randomness: every image gets its own CPU ``torch.Generator`` (``meta["generator"]``) seeded from
(run seed, task id, sample id), and the global torch RNG is seeded with the same number, so a
record depends on nothing but its identity: not on order, shard, worker or resume.
"""

from __future__ import annotations

import hashlib
import platform
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import torch

import harness.api.restorer as restorer_api
from harness.api.restorer import Restorer
from harness.api.task import Sample, Task
from harness.metrics.suite import MetricSuite
from harness.run.plan import Plan
from harness.run.timing import PeakMemory, sync
from harness.run.units import RestorerSpec, Unit

WARMUP_SIDE = 64


def restorer_seed(run_seed: int, task_id: str, sample_id: str) -> int:
    """Seed of a restorer's randomness on one image: a hash of the run seed, the task identity
    and the sample id (63 bits), the same on every machine and in every order."""
    digest = hashlib.sha256(f"restorer|{run_seed}|{task_id}|{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class Executor(Protocol):
    def run(self, units: list[Unit]) -> Iterator[dict[str, Any]]:
        """Yield one record per sample of ``units`` (any order)."""


@dataclass
class Loaded:
    """A restorer loaded on an executor's device, and whether it has been warmed up yet."""

    spec: RestorerSpec
    restorer: Restorer
    warmed: bool = False


class LocalExecutor:
    """Runs units in this process on one device (see the module docstring)."""

    def __init__(self, plan: Plan, device: torch.device, *, save_images: Callable | None = None,
                 save_previews: Callable | None = None,
                 on_restorer: Callable[[RestorerSpec, Restorer], None] | None = None,
                 on_warning: Callable[[str], None] | None = None,
                 keep_outputs: Callable[[Unit, str, dict[str, Any]], bool] | None = None):
        self.plan = plan
        self.device = device
        self.save_images = save_images
        self.save_previews = save_previews
        self.on_restorer = on_restorer
        self.on_warning = on_warning or (lambda message: None)
        self.keep_outputs = keep_outputs
        self._suites: dict[str, MetricSuite] = {}
        self.outputs: dict[tuple[str, str, str], tuple[torch.Tensor, ...]] = {}

    def suite(self, task_id: str) -> MetricSuite:
        """The metric suite of a task on this executor's device, built once."""
        if task_id not in self._suites:
            task = self.plan.task_objects[task_id]
            self._suites[task_id] = MetricSuite(self.plan.metrics or task.default_metrics(),
                                                task.conventions, self.device, task.has_gt,
                                                extra=self.plan.metric_specs)
        return self._suites[task_id]

    def run(self, units: list[Unit]) -> Iterator[dict[str, Any]]:
        groups: dict[str, list[Unit]] = {}
        for unit in units:
            groups.setdefault(unit.restorer.id, []).append(unit)
        for restorer_units in groups.values():
            loaded = self.load(restorer_units[0].restorer)
            yield from self.stream(loaded, restorer_units)
            del loaded
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def load(self, spec: RestorerSpec) -> Loaded:
        """Build and load one restorer configuration on this device and announce it
        (``on_restorer``). Separate from :meth:`stream` so that a cluster worker can keep one
        restorer loaded across many shards instead of reloading it per shard."""
        restorer = restorer_api.build_restorer(spec.name, **spec.options)
        restorer.load(self.device)
        if self.on_restorer is not None:
            self.on_restorer(spec, restorer)
        return Loaded(spec, restorer, warmed=restorer.warmup == "none")

    def stream(self, loaded: Loaded, units: list[Unit]) -> Iterator[dict[str, Any]]:
        """One record per sample of ``units`` (all of ``loaded``'s configuration); the first real
        sample warms the restorer up once per load (``loaded.warmed`` remembers it)."""
        for unit in units:
            task = self.plan.task_objects[unit.task.id]
            suite = self.suite(unit.task.id)
            for sample_id, sample, error in prefetch(task, list(unit.sample_ids)):
                if not loaded.warmed and sample is not None:
                    self._warm_up(loaded.restorer, sample)
                    loaded.warmed = True
                yield self.evaluate(loaded.restorer, unit, task, suite, sample_id, sample, error)

    def _warm_up(self, restorer: Restorer, sample: Sample) -> None:
        crop = sample.lq[:, :WARMUP_SIDE, :WARMUP_SIDE].unsqueeze(0).to(self.device)
        meta = {**sample.meta, "generator": torch.Generator().manual_seed(0), "seed": 0,
                "warmup": True}
        try:
            restorer.warm_up(crop, meta)
            sync(self.device)
        except Exception as exc:  # the real image will fail and be recorded if this was real
            self.on_warning(f"{restorer.name}: warm-up failed ({type(exc).__name__}: {exc}); "
                            "the first image is timed cold")

    def evaluate(self, restorer: Restorer, unit: Unit, task: Task, suite: MetricSuite,
                 sample_id: str, sample: Sample | None, error: BaseException | None) -> dict[str, Any]:
        seed = restorer_seed(self.plan.seed, unit.task.id, sample_id)
        record: dict[str, Any] = {
            "sample_id": sample_id, "restorer": unit.restorer.label, "restorer_id": unit.restorer.id,
            "task": unit.task.label, "task_id": unit.task.id, "device": str(self.device),
            "host": platform.node(), "seed": seed, "degradation_seed": task.image_seed(sample_id),
            "metrics": {}, "latency_ms": None, "peak_mem_mb": None}
        try:
            if error is not None:
                raise error
            assert sample is not None
            if "degradation" in sample.meta:
                record["degradation"] = sample.meta["degradation"]
            if sample.meta.get("input_conversion"):  # grey / RGBA files made RGB: say how
                record["input_conversion"] = sample.meta["input_conversion"]
            lq = sample.lq.unsqueeze(0).to(self.device)
            gt = sample.gt.unsqueeze(0).to(self.device) if sample.gt is not None else None
            meta = {**sample.meta, "generator": torch.Generator().manual_seed(seed), "seed": seed}
            torch.manual_seed(seed)
            sync(self.device)
            with PeakMemory(self.device) as memory:
                start = time.perf_counter()
                out = restorer.restore(lq, meta)
                sync(self.device)
                elapsed = time.perf_counter() - start
            if out.shape != lq.shape:
                raise ValueError(f"{restorer.name} returned shape {tuple(out.shape)} for input "
                                 f"{tuple(lq.shape)}")
            if not torch.isfinite(out).all():
                raise ValueError(f"{restorer.name} produced NaN/inf values")
            values, metric_errors, states = suite.score(out, gt, {**sample.meta, "sample_id": sample_id})
            record.update(status="ok", metrics=values, latency_ms=elapsed * 1000.0,
                          peak_mem_mb=memory.peak_mb, peak_mem_kind=memory.kind,
                          height=lq.shape[-2], width=lq.shape[-1])
            if states:
                record["metric_states"] = states
            if metric_errors:
                record["metric_errors"] = metric_errors
            # what a restorer reports about this image (LD-RPS: per-step latency and breakdown)
            extra = getattr(restorer, "last_stats", None) or meta.get("record")
            if isinstance(extra, dict) and extra:
                record["restorer_record"] = extra
            if self.save_images is not None:
                self.save_images(unit, sample_id, out)
            if self.save_previews is not None:
                self.save_previews(unit, sample_id, lq, out, gt)
            if self.keep_outputs is not None and self.keep_outputs(unit, sample_id, record):
                self.outputs[(unit.restorer.id, unit.task.id, sample_id)] = (
                    lq.detach().cpu(), out.detach().cpu(), None if gt is None else gt.detach().cpu())
        except Exception as exc:  # one bad image never kills a run
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                          traceback="".join(traceback.format_exception(exc))[-2000:])
        return record


def prefetch(task: Task, ids: list[str]) -> Iterator[tuple[str, Sample | None, BaseException | None]]:
    """Yield ``(id, sample or None, error or None)`` while the next sample loads in a thread."""
    if not ids:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending: Future = pool.submit(task.load, ids[0])
        for index, sample_id in enumerate(ids):
            current = pending
            if index + 1 < len(ids):
                pending = pool.submit(task.load, ids[index + 1])
            try:
                yield sample_id, current.result(), None
            except Exception as exc:
                yield sample_id, None, exc
