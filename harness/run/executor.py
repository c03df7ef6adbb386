"""The executor contract, and the local executor: run units, yield one record per image.

An executor owns models and devices; it never writes result files or talks to MLflow (the
reducer alone does). That is the seam a cluster executor plugs into: anything that turns units
into the same :class:`~harness.run.record.Record` objects (:class:`Executor`) and talks back only
through the :class:`ExecutorHooks` it is given can replace :class:`LocalExecutor` without touching
the plan or the reducer.

The local executor, per restorer configuration (units arrive grouped by restorer):

1. takes the restorer the plan built (``Plan.take_restorer``), loads it once, then warms it up as
   the restorer declares (``Restorer.warmup``: a 64×64 crop, nothing, or its own cheap
   ``warm_up``), untimed;
2. streams each unit's samples with a one-ahead prefetch thread (:class:`Prefetcher`: the next
   image's decode and synthetic degradation overlap the scoring of this one);
3. times ``restore`` alone (CUDA-synchronised), with its own other threads quiet: on the CPU the
   next image starts loading only after the call, and the run's previews written so far are
   waited for (``ExecutorHooks.settle``), so neither competes with the timed call for cores nor
   shows up in its heap. Peak memory: the CUDA allocator's peak of the timed call; on the CPU an
   untimed probe call per input size (:mod:`harness.run.timing` says why: sampling the heap
   during the timed call slowed it by up to 18 %);
4. scores the output with the task's :class:`~harness.metrics.suite.MetricSuite` and yields the record.

Every record carries the thread count and the denormal mode its ``restore`` ran under
(``threads``, ``flush_denormal``; see :mod:`harness.io.threads`).

Randomness: every image gets its own CPU ``torch.Generator`` (``meta["generator"]``) seeded from
(run seed, task id, sample id), and the global torch RNG is seeded with the same number, so a
record depends on nothing but its identity: not on order, shard, worker or resume.
"""

from __future__ import annotations

import platform
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from harness.api.restorer import Restorer, check_output
from harness.api.task import Sample, Task
from harness.io.images import thumbnail
from harness.io.threads import denormals_flushed, limit_native_pools
from harness.metrics.suite import MetricSuite
from harness.run.plan import Plan
from harness.run.record import Record, new_record
from harness.run.timing import (
    MAX_PROBES,
    NOT_PROBED,
    PROBE_BUDGET_S,
    PROBE_MAX_CALLS,
    PROBE_MIN_CALLS,
    SHORT_CALL_MS,
    SHORT_CALL_REPEATS,
    PeakMemory,
    seed_global_rng,
    sync,
)
from harness.run.units import RestorerSpec, Unit

WARMUP_SIDE = 64


class ExecutorError(RuntimeError):
    """The cluster, not an image, failed: a worker could not start, or too many died."""


class Executor(Protocol):
    def run(self, units: list[Unit]) -> Iterator[Record]:
        """Yield one record per sample of ``units`` (any order)."""


def _ignore(*args: Any) -> None:
    pass


@dataclass
class ExecutorHooks:
    """What an executor may call back into the run with (each optional).

    Attributes:
        save_image: ``(unit, sample_id, output)`` writes the restored image (``--save-images``).
        save_previews: ``(unit, sample_id, lq, output, gt)`` writes the report's previews.
        keep_outputs: ``(unit, sample_id) -> bool``: attach comparison thumbnails to this
            record (``Record.comparison``; MLflow shows a few per pair); None = never.
        on_restorer: ``(spec, info)`` once per restorer configuration loaded; ``info`` is
            :func:`restorer_info`.
        on_metrics_missing: ``(task_id, {metric: reason})`` for the metrics an executor could
            not build for a task (weights missing, no ground truth).
        on_warning: a line for the run's summary (a warm-up that failed, a worker that died).
        settle: called on the CPU before each timed ``restore``; returns when the run's own
            background work (preview writing) is done, so that it is not timed or measured.
    """

    save_image: Callable[[Unit, str, torch.Tensor], None] | None = None
    save_previews: Callable[..., None] | None = None
    keep_outputs: Callable[[Unit, str], bool] | None = None
    on_restorer: Callable[[RestorerSpec, dict[str, Any]], None] = field(default=_ignore)
    on_metrics_missing: Callable[[str, dict[str, str]], None] = field(default=_ignore)
    on_warning: Callable[[str], None] = field(default=_ignore)
    settle: Callable[[], None] = field(default=_ignore)


def restorer_info(restorer: Restorer) -> dict[str, Any]:
    """What ``on_restorer`` reports of a loaded restorer (``results.json`` → ``restorers``)."""
    return {**restorer.info().to_dict(), "config_hash": restorer.config_hash()}


def comparison(lq: torch.Tensor, out: torch.Tensor, gt: torch.Tensor | None) -> tuple[Any, ...]:
    """The LQ | output | GT thumbnails of one image (``Record.comparison``)."""
    return tuple(None if t is None else thumbnail(t.detach().cpu()) for t in (lq, out, gt))


@dataclass
class Loaded:
    """A restorer loaded on an executor's device, and whether it has been warmed up yet."""

    spec: RestorerSpec
    restorer: Restorer
    warmed: bool = False


class LocalExecutor:
    """Runs units in this process on the plan's device (see the module docstring)."""

    def __init__(self, plan: Plan, hooks: ExecutorHooks | None = None):
        self.plan = plan
        self.device = plan.device
        self.hooks = hooks or ExecutorHooks()
        self._suites: dict[str, MetricSuite] = {}
        #: CPU peak memory per (restorer, task, input size), from the probe calls
        self._probed: dict[tuple[str, str, tuple[int, ...]], tuple[float | None, str]] = {}

    def suite(self, task_id: str) -> MetricSuite:
        """The metric suite of a task on this executor's device, built once (what it could not
        build is announced with ``on_metrics_missing``)."""
        if task_id not in self._suites:
            task = self.plan.task_objects[task_id]
            suite = MetricSuite(self.plan.metrics or task.default_metrics(), task.conventions,
                                self.device, task.has_gt, extra=self.plan.metric_specs)
            self._suites[task_id] = suite
            self.hooks.on_metrics_missing(task_id, dict(suite.missing))
        return self._suites[task_id]

    def run(self, units: list[Unit]) -> Iterator[Record]:
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
        """Load one restorer configuration on this device and announce it (``on_restorer``).
        Separate from :meth:`stream` so that a cluster worker can keep one restorer loaded
        across many shards instead of reloading it per shard."""
        restorer = self.plan.take_restorer(spec)
        restorer.load(self.device)
        if self.device.type == "cpu":  # what the restorer loaded runs the run's threads too
            limit_native_pools(torch.get_num_threads())
        self.hooks.on_restorer(spec, restorer_info(restorer))
        return Loaded(spec, restorer, warmed=restorer.warmup == "none")

    def stream(self, loaded: Loaded, units: list[Unit]) -> Iterator[Record]:
        """One record per sample of ``units`` (all of ``loaded``'s configuration); the first real
        sample warms the restorer up once per load (``loaded.warmed`` remembers it)."""
        for unit in units:
            task = self.plan.task_objects[unit.task.id]
            suite = self.suite(unit.task.id)
            fetcher = Prefetcher(task, list(unit.sample_ids))
            for sample_id, sample, error in fetcher:
                if not loaded.warmed and sample is not None:
                    self._warm_up(loaded.restorer, sample)
                    loaded.warmed = True
                yield self.evaluate(loaded.restorer, unit, task, suite, sample_id, sample, error,
                                    after_restore=fetcher.start_next)

    def _warm_up(self, restorer: Restorer, sample: Sample) -> None:
        crop = sample.lq[:, :WARMUP_SIDE, :WARMUP_SIDE].unsqueeze(0).to(self.device)
        meta = {**sample.meta, "generator": torch.Generator().manual_seed(0), "seed": 0,
                "warmup": True}
        try:
            restorer.warm_up(crop, meta)
            sync(self.device)
        except Exception as exc:  # the real image will fail and be recorded if this was real
            self.hooks.on_warning(f"{restorer.name}: warm-up failed ({type(exc).__name__}: "
                                  f"{exc}); the first image is timed cold")

    def evaluate(self, restorer: Restorer, unit: Unit, task: Task, suite: MetricSuite,
                 sample_id: str, sample: Sample | None, error: BaseException | None,
                 after_restore: Callable[[], None] = _ignore) -> Record:
        """The record of one sample: restored, timed, checked, scored; failed on any error
        (one bad image never ends a run). ``after_restore`` runs right after the timed call
        (the prefetcher starts the next image there)."""
        record = new_record(unit, sample_id, run_seed=self.plan.seed,
                            degradation_seed=task.image_seed(sample_id), device=str(self.device),
                            host=platform.node())
        try:
            if error is not None:
                raise error
            assert sample is not None
            self._restore_and_score(restorer, unit, suite, sample, record, after_restore)
        except Exception as exc:
            record.fail(f"{type(exc).__name__}: {exc}",
                        "".join(traceback.format_exception(exc))[-2000:])
        return record

    def _restore_and_score(self, restorer: Restorer, unit: Unit, suite: MetricSuite,
                           sample: Sample, record: Record, after_restore: Callable[[], None]) -> None:
        record.degradation = sample.meta.get("degradation")
        record.input_conversion = sample.meta.get("input_conversion") or None
        lq = sample.lq.unsqueeze(0).to(self.device)
        gt = sample.gt.unsqueeze(0).to(self.device) if sample.gt is not None else None
        if self.device.type == "cpu":
            self.hooks.settle()
            peak_mb, peak_kind = self._cpu_peak(restorer, unit, lq, sample.meta)
        else:  # the GPU's time is not shared with the decoding thread: let it overlap
            after_restore()
            after_restore = _ignore
        record.threads, record.flush_denormal = torch.get_num_threads(), denormals_flushed()
        try:
            # on the CPU no sampler runs during the timed call (the figure comes from the probe)
            with PeakMemory(self.device) if self.device.type == "cuda" else nullcontext() as memory:
                out, meta, elapsed = self._timed_call(restorer, lq, sample.meta, record.seed)
            record.latency_calls, elapsed = self._repeat_if_short(restorer, lq, sample.meta,
                                                                  record.seed, elapsed)
        finally:
            after_restore()
        if memory is not None:
            peak_mb, peak_kind = memory.peak_mb, memory.kind
        check_output(restorer.name, out, tuple(lq.shape))
        values, metric_errors, states = suite.score(out, gt, {**sample.meta, "sample_id": record.sample_id})
        record.succeed(values, elapsed, peak_mb, peak_kind, lq.shape[-2], lq.shape[-1])
        record.metric_states, record.metric_errors = states or None, metric_errors or None
        # what a restorer reports about this image (LD-RPS: per-step latency and breakdown)
        extra = getattr(restorer, "last_stats", None) or meta.get("record")
        record.restorer_record = extra if isinstance(extra, dict) and extra else None
        self._write_beside(unit, record, lq, out, gt)

    def _timed_call(self, restorer: Restorer, lq: torch.Tensor, sample_meta: dict[str, Any],
                    seed: int) -> tuple[torch.Tensor, dict[str, Any], float]:
        """(output, the meta it was given, milliseconds) of one seeded, synchronised call."""
        meta = {**sample_meta, "generator": torch.Generator().manual_seed(seed), "seed": seed}
        seed_global_rng(seed, self.device)
        sync(self.device)
        start = time.perf_counter()
        out = restorer.restore(lq, meta)
        sync(self.device)
        return out, meta, (time.perf_counter() - start) * 1000.0

    def _repeat_if_short(self, restorer: Restorer, lq: torch.Tensor, sample_meta: dict[str, Any],
                         seed: int, first_ms: float) -> tuple[int, float]:
        """(calls, median ms): a call under ``SHORT_CALL_MS`` is timed again back to back with
        the same seeds (:mod:`harness.run.timing` says why); a longer one is kept as it is."""
        times = [first_ms]
        if first_ms < SHORT_CALL_MS:
            while len(times) < SHORT_CALL_REPEATS:
                times.append(self._timed_call(restorer, lq, sample_meta, seed)[2])
        return len(times), statistics.median(times)

    def _cpu_peak(self, restorer: Restorer, unit: Unit, lq: torch.Tensor, sample_meta: dict[str, Any]
                  ) -> tuple[float | None, str]:
        """CPU peak memory of ``restore`` on inputs of ``lq``'s size: an untimed probe call on the
        first image of each size (seeded apart from the timed call; its output is dropped)."""
        key = (unit.restorer.id, unit.task.id, tuple(lq.shape))
        if key not in self._probed:
            sizes = sum(1 for k in self._probed if k[:2] == key[:2])
            if sizes >= MAX_PROBES:
                return None, NOT_PROBED
            self._probed[key] = self._probe(restorer, lq, sample_meta)
        return self._probed[key]

    def _probe(self, restorer: Restorer, lq: torch.Tensor, sample_meta: dict[str, Any]
               ) -> tuple[float | None, str]:
        """The largest figure of the probe calls (:mod:`harness.run.timing`: a sampled peak can
        only be missed, so more calls, each at another phase of the sampler, and the maximum)."""
        peaks: list[float] = []
        started = time.perf_counter()
        while len(peaks) < PROBE_MAX_CALLS and (
                len(peaks) < PROBE_MIN_CALLS or time.perf_counter() - started < PROBE_BUDGET_S):
            meta = {**sample_meta, "generator": torch.Generator().manual_seed(0), "seed": 0}
            with PeakMemory(self.device) as memory:
                out = restorer.restore(lq, meta)
            del out
            if memory.peak_mb is None:
                return None, memory.kind
            peaks.append(memory.peak_mb)
        return max(peaks), memory.kind

    def _write_beside(self, unit: Unit, record: Record, lq: torch.Tensor, out: torch.Tensor,
                      gt: torch.Tensor | None) -> None:
        """Images and previews through the hooks; comparison thumbnails into the record."""
        hooks, sample_id = self.hooks, record.sample_id
        if hooks.save_image is not None:
            hooks.save_image(unit, sample_id, out)
        if hooks.save_previews is not None:
            hooks.save_previews(unit, sample_id, lq, out, gt)
        if hooks.keep_outputs is not None and hooks.keep_outputs(unit, sample_id):
            record.comparison = comparison(lq, out, gt)


class Prefetcher:
    """Yields ``(id, sample or None, error or None)`` for ``ids``, loading one image ahead on a
    thread. The next image starts loading when :meth:`start_next` is called (the executor calls it
    right after the timed ``restore``, so decoding overlaps scoring, not the timing), or at the
    latest when it is asked for."""

    def __init__(self, task: Task, ids: list[str]):
        self.task, self.ids = task, ids
        self._submitted = 0
        self._pending: Future | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start_next(self) -> None:
        if self._pending is None and self._submitted < len(self.ids):
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
            self._pending = self._pool.submit(self.task.load, self.ids[self._submitted])
            self._submitted += 1

    def __iter__(self) -> Iterator[tuple[str, Sample | None, BaseException | None]]:
        try:
            for sample_id in self.ids:
                self.start_next()
                assert self._pending is not None
                current, self._pending = self._pending, None
                try:
                    sample, error = current.result(), None
                except Exception as exc:
                    sample, error = None, exc
                yield sample_id, sample, error
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)

