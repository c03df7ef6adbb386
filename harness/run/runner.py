"""A run: plan → execute → reduce.

1. :func:`harness.run.plan.make_plan` lists the units and checks everything before any model loads
   (names, options, data, metrics, weights).
2. An executor turns units into :class:`~harness.run.record.Record` objects
   (:class:`harness.run.executor.LocalExecutor` in-process; another executor — a cluster —
   plugs in through ``RunConfig.executor``, a :data:`~harness.run.executors.ExecutorFactory`).
   It talks back only through :class:`~harness.run.executor.ExecutorHooks`: the run's images
   and previews (:class:`RunFiles`), restorer infos, missing metrics and warnings.
3. :class:`harness.run.reducer.Reducer` alone writes ``samples.jsonl`` (one fsynced line per image),
   ``results.json`` and MLflow; ``--resume`` hands the executor only what is not recorded yet.

Aggregates always come from *all* records of the run folder, including an interrupted earlier
attempt's, and are keyed by the units' identities (restorer config, task options), so two configs
of one restorer are two rows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from harness.api.metric import MetricSpec
from harness.io.images import save_image
from harness.io.names import check_folder_name, safe_name
from harness.io.results import (
    LOCK_FILE,
    RESULTS_FILE,
    SAMPLES_FILE,
    STUDY_MARKER,
    RunLock,
    RunLockedError,
    git_hash,
    latest_run,
    new_run_name,
    versions,
)
from harness.io.safefiles import check_not_link, remove_stale_temps
from harness.io.threads import (
    TimingEnvironment,
    configure_timing,
    denormals_flushed,
    load_warning,
    set_flush_denormal,
)
from harness.run.executor import ExecutorHooks
from harness.run.executors import ExecutorFactory, local_executor
from harness.run.plan import Plan, RestorerItem, check_shard_size, make_plan, resolve_device
from harness.run.reducer import Reducer
from harness.run.units import Unit
from harness.tracking.store import check_reachable, default_tracking_uri, describe_run
from harness.tracking.worker import MLFLOW_RUN_FILE, NoTracking, TrackingProcess, open_tracking

__all__ = ["RunConfig", "RunSummary", "Runner", "resolve_device", "run_benchmark"]


@dataclass
class RunConfig:
    """Everything a ``bench run`` call decides; stored in ``results.json`` and MLflow.

    ``restorers`` are :class:`RestorerItem` or ``(name, options)`` tuples. ``seed=None`` keeps
    each task's own degradation seed; a number (0 included) overrides it, and is also the base
    of every restorer's per-image seed.
    """

    restorers: list[Any]
    tasks: list[tuple[str, dict[str, Any]]]
    device: str = "auto"
    limit: int | None = None
    metrics: list[str] | None = None
    metric_specs: list[MetricSpec] = field(default_factory=list)
    output_dir: Path = Path("results")
    run_name: str | None = None
    resume: bool = False
    seed: int | None = None
    save_images: bool = False
    #: small PNG previews (long side ≤ 512) under ``<run>/previews/`` for ``bench report``'s viewer
    save_previews: bool = True
    tracking: bool = True
    tracking_uri: str | None = None
    experiment: str = "restorebench"
    n_comparisons: int = 3
    shard_size: int | None = None
    #: ``(plan, config, hooks) -> executor`` with ``run(units) -> Iterator[Record]``; None = local.
    executor: ExecutorFactory | None = None
    #: a Unit list order for the executor (tests shuffle shards); None = plan order.
    order: Callable[[list[Any]], list[Any]] | None = None
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    show_progress: bool = True
    parent_run_id: str | None = None
    #: re-hash every weight file on use instead of trusting its size+mtime stamp
    verify_assets: bool = False
    #: torch intra-op threads; None = ``OMP_NUM_THREADS`` if set, else the CPUs this process may
    #: use (affinity and cgroup quota: :func:`harness.io.threads.choose_threads`)
    threads: int | None = None
    #: flush subnormal floats to zero while running (FTZ/DAZ; see :mod:`harness.io.threads`)
    flush_denormal: bool = True


@dataclass
class RunSummary:
    run_dir: Path
    results: dict[str, dict[str, dict[str, Any]]]
    missing_metrics: dict[str, str]
    parent_run_id: str
    n_failed: int
    n_skipped: int
    tracking_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)


def _items(restorers: list[Any]) -> list[RestorerItem]:
    return [r if isinstance(r, RestorerItem) else RestorerItem(r[0], dict(r[1])) for r in restorers]


class RunFiles:
    """What a run writes beside its records, for the executor's hooks: restored images
    (``--save-images``), the report's previews, and which outputs MLflow shows (the first
    ``n_comparisons`` images of each pair)."""

    def __init__(self, run_dir: Path, config: RunConfig, warnings: list[str],
                 tracker: TrackingProcess | NoTracking):
        self.run_dir = run_dir
        self.tracker = tracker
        self.config = config
        self.warnings = warnings
        self._kept: dict[tuple[str, str], int] = {}
        # previews are resized and encoded on a thread (PIL releases the GIL there): written
        # inline they cost ~0.1 s per 768x512 image, as much as the metrics
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="previews")
        self._jobs: list[Future] = []

    def hooks(self, reducer: Reducer) -> ExecutorHooks:
        config = self.config
        return ExecutorHooks(save_image=self.save_image if config.save_images else None,
                             save_previews=self.save_previews if config.save_previews else None,
                             keep_outputs=self.keep if config.tracking else None,
                             on_restorer=reducer.note_restorer,
                             on_metrics_missing=reducer.note_missing,
                             on_warning=self.warnings.append, settle=self.settle)

    def settle(self) -> None:
        """Wait for the previews submitted so far and free MLflow's written jobs: the executor
        probes and times the next image after, with no other thread allocating."""
        for job in self._jobs:
            job.exception()
        self.tracker.settle()

    def keep(self, unit: Unit, sample_id: str) -> bool:
        count = self._kept.get(unit.key, 0)
        if count < self.config.n_comparisons:
            self._kept[unit.key] = count + 1
            return True
        return False

    def save_image(self, unit: Unit, sample_id: str, out: torch.Tensor) -> None:
        folder = self.run_dir / "images" / safe_name(unit.restorer.label) / safe_name(unit.task.label)
        save_image(out, folder / f"{safe_name(sample_id)}.png")

    def save_previews(self, unit: Unit, sample_id: str, lq: torch.Tensor, out: torch.Tensor,
                      gt: torch.Tensor | None) -> None:
        from harness.io.previews import save_previews

        # the images travel in a box the job empties: they are freed before the job reports done,
        # not later by the pool thread, when they would show up in the next timed call's heap
        box = [[None if t is None else t.detach().cpu() for t in (lq, out, gt)]]
        self._jobs.append(self._pool.submit(_write_previews, save_previews, self.run_dir,
                                            unit.restorer.label, unit.task.label, sample_id, box))

    def close(self) -> None:
        """Wait for the previews; the first one that failed becomes a warning."""
        self._pool.shutdown(wait=True)
        failed = next((job.exception() for job in self._jobs if job.exception() is not None), None)
        if failed is not None:
            self.warnings.append(f"a preview could not be written: {failed}")


class Runner:
    def __init__(self, config: RunConfig, console: Any = None):
        self.config = config
        self.console = console

    def _run_dir(self) -> tuple[Path, RunLock]:
        """The run folder, locked (:class:`~harness.io.results.RunLock`) for the whole run.

        A named run (or ``--resume``) that another process holds is refused. A timestamped
        name is only a default: two runs started in the same second take ``NAME``,
        ``NAME-2``, ... instead of sharing one folder."""
        output = Path(self.config.output_dir)
        if self.config.resume and not self.config.run_name:
            found = latest_run(output)
            if found is None:
                raise FileNotFoundError(f"--resume: no earlier run with {SAMPLES_FILE} in {output}")
            check_not_link(found)
            return found, RunLock(found).acquire()
        if self.config.run_name:
            run_dir = output / self.config.run_name
            check_not_link(run_dir)
            if (run_dir / STUDY_MARKER).exists():
                raise FileExistsError(f"{run_dir} is a study folder (bench study --name "
                                      f"{run_dir.name}); choose another --run-name")
            lock = RunLock(run_dir).acquire()
            if (run_dir / SAMPLES_FILE).exists() and not self.config.resume:
                lock.release()
                raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue "
                                      "it or choose another --run-name")
            return run_dir, lock
        return _free_run_dir(output)

    def _tracker(self) -> TrackingProcess | NoTracking:
        """MLflow in a child process (its import and store set-up overlap the run); a tracking
        server that does not answer fails here, in seconds, before any work."""
        uri = self.config.tracking_uri or default_tracking_uri(self.config.output_dir)
        if self.config.tracking:
            check_reachable(uri)
        return open_tracking(self.config.tracking, uri, self.config.experiment,
                             Path(self.config.output_dir) / "mlartifacts")

    def plan(self) -> Plan:
        """The run's plan: every check (names, options, data, metrics, weights, device) once."""
        config = self.config
        return make_plan(_items(config.restorers), config.tasks, seed=config.seed,
                         limit=config.limit, metrics=config.metrics,
                         metric_specs=config.metric_specs, shard_size=config.shard_size,
                         device=config.device)

    def check(self) -> None:
        """The options that name files: checked before anything is created or loaded."""
        config = self.config
        if config.run_name is not None:
            check_folder_name(config.run_name)
        check_shard_size(config.shard_size)
        output = Path(config.output_dir)
        if output.exists() and not output.is_dir():
            raise FileExistsError(f"--output-dir {output} is a file; give a folder")

    def run(self) -> RunSummary:
        from harness.assets.cache import verification_log

        self.check()
        # threads and denormal mode first: before torch's thread pool starts (harness.io.threads)
        with timing_environment(self.config) as self.environment:
            # results.json lists how this run's files were checked, and nothing of an earlier run's
            with verification_log(rehash=self.config.verify_assets) as checks:
                return self._locked_run(checks)

    def _locked_run(self, checks: Any) -> RunSummary:
        tracker = self._tracker()  # starts MLflow's set-up now; no run is created unless planned
        try:
            plan = self.plan()
            run_dir, lock = self._run_dir()
        except BaseException:
            tracker.close()
            raise
        try:
            remove_stale_temps(run_dir, (RESULTS_FILE, MLFLOW_RUN_FILE))  # a killed run's
            return self._run(plan, run_dir, tracker, checks)
        finally:
            lock.release()

    def _start_parent(self, plan: Plan, run_dir: Path, tracker: Any) -> dict[str, Any]:
        """The MLflow parent run; returns the run info ``results.json`` repeats."""
        config, device = self.config, plan.device
        measurement = self.measurement(device)
        run_info = {"device": str(device), "git_hash": git_hash(), "argv": config.argv,
                    "versions": versions(), "limit": config.limit, "measurement": measurement}
        tracker.start_parent(
            describe_run([r.label for r in plan.restorers], [t.label for t in plan.tasks]),
            tags={"git_hash": run_info["git_hash"], "argv": " ".join(config.argv),
                  "run_folder": run_dir.name,
                  "device": str(device), "gpu": _gpu_name(device),
                  "torch": torch.__version__, "run_dir": str(run_dir.resolve()),
                  **({"mlflow.parentRunId": config.parent_run_id} if config.parent_run_id else {})},
            params={"restorers": ",".join(r.label for r in plan.restorers),
                    "tasks": ",".join(t.label for t in plan.tasks), "seed": plan.seed,
                    "limit": config.limit, "device": str(device), "versions": run_info["versions"],
                    "threads": measurement["threads"],
                    "flush_denormal": measurement["flush_denormal"]},
            run_dir=run_dir)
        return run_info

    def measurement(self, device: torch.device) -> dict[str, Any]:
        """How latency and memory were measured (``results.json`` → ``measurement``)."""
        from harness.run.timing import CUDA_METHOD, LATENCY_METHOD, cpu_method

        return {**self.environment.params(),
                "peak_mem_method": CUDA_METHOD if device.type == "cuda" else cpu_method(),
                "latency": LATENCY_METHOD}

    def _run(self, plan: Plan, run_dir: Path, tracker: Any, checks: Any) -> RunSummary:
        config = self.config
        run_dir.mkdir(parents=True, exist_ok=True)
        run_info = {**self._start_parent(plan, run_dir, tracker), "asset_checks": checks}
        warnings: list[str] = []
        if plan.device.type == "cpu":
            busy = load_warning(self.environment.threads, self.environment.load_average)
            warnings += [busy] if busy else []
        files = RunFiles(run_dir, config, warnings, tracker)
        status, reason = "KILLED", None  # KILLED unless it ends or fails (Ctrl-C)
        with _progress(config.show_progress, self.console) as progress:
            try:
                reducer = Reducer(plan, run_dir, tracker, run_info,
                                  n_comparisons=config.n_comparisons,
                                  progress=progress if config.show_progress else None)
            except BaseException:
                tracker.finish(None, {}, "FAILED", "the run folder could not be opened")
                raise
            warnings.extend(reducer.warnings)
            try:
                executor = (config.executor or local_executor)(
                    plan, replace(config, threads=self.environment.threads), files.hooks(reducer))
                reducer.start()
                units = reducer.todo()
                for record in executor.run(config.order(units) if config.order else units):
                    reducer.add(record)
                status = "FINISHED"
            except Exception as exc:
                status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                files.close()
                payload = reducer.finish(status, reason)
        n_failed = sum(len(u["failed"]) for u in payload["units"])
        return RunSummary(run_dir, payload["results"], payload["missing_metrics"],
                          tracker.parent_id, n_failed, reducer.n_skipped, tracker.errors,
                          warnings, payload)


def _write_previews(write: Callable[..., None], run_dir: Path, restorer: str, task: str,
                    sample_id: str, box: list[list[Any]]) -> None:
    write(run_dir, restorer, task, sample_id, *box.pop())


@contextmanager
def timing_environment(config: RunConfig) -> Iterator[TimingEnvironment]:
    """The run's threads and denormal mode (:func:`harness.io.threads.configure_timing`), and
    the caller's restored afterwards (a library user's process goes on as it was)."""
    threads, flushed = torch.get_num_threads(), denormals_flushed()
    try:
        yield configure_timing(config.threads, config.flush_denormal)
    finally:
        torch.set_num_threads(threads)
        set_flush_denormal(flushed)


def _free_run_dir(output: Path) -> tuple[Path, RunLock]:
    """A new timestamped run folder, locked: ``NAME``, else ``NAME-2``, ``NAME-3``, ..."""
    base = new_run_name()
    for index in range(1, 1000):
        run_dir = output / (base if index == 1 else f"{base}-{index}")
        if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
            continue
        try:
            lock = RunLock(run_dir).acquire()
        except RunLockedError:
            continue
        if (run_dir / SAMPLES_FILE).exists():
            lock.release()
            continue
        return run_dir, lock
    raise FileExistsError(f"{output}: no free run folder name for {base}; pass --run-name")


def _gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "none"


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass


def _progress(show: bool, console: Any, unit: str = "img"):
    """One bar per (restorer, task) pair with its own clock: a bar starts when its pair's first
    image comes in (not when the run started, which made a 9-s pair look like 1:32), and shows
    ``unit``/s over its recent steps (images; ``bench train`` passes iterations)."""
    if not show:
        return _NoProgress()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class PairProgress(Progress):
        def add_task(self, *args: Any, **kwargs: Any) -> Any:
            return super().add_task(*args, **{"rate": "", **kwargs, "start": False})

        def advance(self, task_id: Any, advance: float = 1) -> None:
            task = self._tasks[task_id]
            if task.start_time is None:
                self.start_task(task_id)
            super().advance(task_id, advance)
            task.fields["rate"] = f"{task.speed:.2f} {unit}/s" if task.speed else ""

    return PairProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[rate]}"),
                        TimeRemainingColumn(), console=console)


def run_benchmark(config: RunConfig, console: Any = None) -> RunSummary:
    return Runner(config, console).run()
