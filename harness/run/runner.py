"""A run: plan → execute → reduce.

1. :func:`harness.run.plan.make_plan` lists the units and checks everything before any model loads
   (names, options, data, metrics, weights).
2. An executor turns units into records (:class:`harness.run.executor.LocalExecutor` in-process;
   another executor — a cluster — plugs in through ``RunConfig.executor``).
3. :class:`harness.run.reducer.Reducer` alone writes ``samples.jsonl`` (one fsynced line per image),
   ``results.json`` and MLflow; ``--resume`` hands the executor only what is not recorded yet.

Aggregates always come from *all* records of the run folder, including an interrupted earlier
attempt's, and are keyed by the units' identities (restorer config, task options), so two configs
of one restorer are two rows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.api.items import check_device_syntax
from harness.api.metric import MetricSpec
from harness.io.images import save_image, thumbnail
from harness.io.results import (
    LOCK_FILE,
    RESULTS_FILE,
    SAMPLES_FILE,
    RunLock,
    RunLockedError,
    git_hash,
    latest_run,
    new_run_name,
    read_results,
    versions,
)
from harness.run.plan import Plan, RestorerItem, make_plan
from harness.tracking.store import default_tracking_uri
from harness.tracking.worker import NoTracking, TrackingProcess, open_tracking


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
    #: ``(plan, device, config) -> executor`` with ``run(units) -> Iterator[record]``; None = local.
    executor: Callable[..., Any] | None = None
    #: a Unit list order for the executor (tests shuffle shards); None = plan order.
    order: Callable[[list[Any]], list[Any]] | None = None
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    show_progress: bool = True
    parent_run_id: str | None = None
    #: re-hash every weight file on use instead of trusting its size+mtime stamp
    verify_assets: bool = False


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


def resolve_device(spec: str) -> torch.device:
    """``auto`` → CUDA when available; ``cuda[:N]`` fails clearly when it is not."""
    check_device_syntax(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available on this machine; use "
                         "--device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device


def _items(restorers: list[Any]) -> list[RestorerItem]:
    return [r if isinstance(r, RestorerItem) else RestorerItem(r[0], dict(r[1])) for r in restorers]


class Runner:
    def __init__(self, config: RunConfig, console: Any = None):
        self.config = config
        self.console = console
        self.device = resolve_device(config.device)

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
            return found, RunLock(found).acquire()
        if self.config.run_name:
            run_dir = output / self.config.run_name
            lock = RunLock(run_dir).acquire()
            if (run_dir / SAMPLES_FILE).exists() and not self.config.resume:
                lock.release()
                raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue "
                                      "it or choose another --run-name")
            return run_dir, lock
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

    def _tracker(self) -> TrackingProcess | NoTracking:
        """MLflow in a child process (its import and store set-up overlap the run)."""
        uri = self.config.tracking_uri or default_tracking_uri(self.config.output_dir)
        return open_tracking(self.config.tracking, uri, self.config.experiment,
                             Path(self.config.output_dir) / "mlartifacts")

    def plan(self) -> Plan:
        config = self.config
        return make_plan(_items(config.restorers), config.tasks, seed=config.seed,
                         limit=config.limit, metrics=config.metrics,
                         metric_specs=config.metric_specs, shard_size=config.shard_size)

    def run(self) -> RunSummary:
        from harness.assets import cache as assets

        assets.set_rehash(self.config.verify_assets)
        assets.VERIFICATIONS.clear()  # results.json lists how this run's files were checked
        tracker = self._tracker()  # starts MLflow's set-up now; no run is created unless planned
        try:
            plan = self.plan()
            run_dir, lock = self._run_dir()
        except BaseException:
            tracker.close()
            raise
        try:
            return self._run(plan, run_dir, tracker)
        finally:
            lock.release()

    def _run(self, plan: Plan, run_dir: Path, tracker: Any) -> RunSummary:
        from harness.run.executor import LocalExecutor
        from harness.run.reducer import Reducer

        run_dir.mkdir(parents=True, exist_ok=True)
        run_info = {"device": str(self.device), "git_hash": git_hash(), "argv": self.config.argv,
                    "versions": versions(), "limit": self.config.limit}
        tracker.start_parent(
            run_dir.name,
            tags={"git_hash": run_info["git_hash"], "argv": " ".join(self.config.argv),
                  "device": str(self.device), "gpu": _gpu_name(self.device),
                  "torch": torch.__version__, "run_dir": str(run_dir.resolve()),
                  **({"mlflow.parentRunId": self.config.parent_run_id}
                     if self.config.parent_run_id else {})},
            params={"restorers": ",".join(r.label for r in plan.restorers),
                    "tasks": ",".join(t.label for t in plan.tasks), "seed": plan.seed,
                    "limit": self.config.limit, "device": str(self.device),
                    "versions": run_info["versions"]},
            run_dir=run_dir)
        warnings: list[str] = []
        kept: dict[tuple[str, str], int] = {}

        def keep(unit: Any, sample_id: str, record: dict[str, Any]) -> bool:
            count = kept.get(unit.key, 0)
            if count < self.config.n_comparisons and self.config.tracking:
                kept[unit.key] = count + 1
                return True
            return False

        def save(unit: Any, sample_id: str, out: torch.Tensor) -> None:
            safe = "".join(c if c.isalnum() or c in "-_.[]=,@" else "_" for c in unit.restorer.label)
            task = "".join(c if c.isalnum() or c in "-_.[]=,@" else "_" for c in unit.task.label)
            save_image(out, run_dir / "images" / safe / task / f"{sample_id}.png")

        # previews are resized and encoded on a thread (PIL releases the GIL there): written
        # inline they cost ~0.1 s per 768x512 image, as much as the metrics
        preview_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="previews")
        preview_jobs: list[Any] = []

        def previews(unit: Any, sample_id: str, lq: torch.Tensor, out: torch.Tensor,
                     gt: torch.Tensor | None) -> None:
            from harness.io.previews import save_previews

            cpu = [None if t is None else t.detach().cpu() for t in (lq, out, gt)]
            preview_jobs.append(preview_pool.submit(save_previews, run_dir, unit.restorer.label,
                                                    unit.task.label, sample_id, *cpu))

        def wait_for_previews() -> None:
            preview_pool.shutdown(wait=True)
            for job in preview_jobs:
                if job.exception() is not None:
                    warnings.append(f"a preview could not be written: {job.exception()}")
                    break

        executor_factory = self.config.executor or (
            lambda plan, device, config, **kw: LocalExecutor(plan, device, **kw))
        executor = executor_factory(plan, self.device, self.config,
                                    save_images=save if self.config.save_images else None,
                                    save_previews=previews if self.config.save_previews else None,
                                    on_warning=warnings.append, keep_outputs=keep)
        suite_of = getattr(executor, "suite", None) or LocalExecutor(plan, self.device).suite

        def comparisons(restorer_id: str, task_id: str, sample_id: str) -> Any:
            tensors = getattr(executor, "outputs", {}).pop((restorer_id, task_id, sample_id), None)
            if tensors is None:
                return None
            return tuple(None if t is None else thumbnail(t) for t in tensors)

        progress = _progress(self.config.show_progress, self.console)
        status = "FAILED"
        with progress:
            reducer = Reducer(plan, run_dir, tracker, suite_of, run_info,
                              n_comparisons=self.config.n_comparisons, comparisons=comparisons,
                              progress=progress if self.config.show_progress else None)
            previous = run_dir / RESULTS_FILE
            if previous.exists():  # restorers finished by an earlier attempt keep their info
                reducer.restorer_infos.update(read_results(previous).get("restorers", {}))

            def on_restorer(spec: Any, restorer: Any) -> None:
                reducer.note_restorer(spec, {**restorer.info().to_dict(),
                                             "config_hash": restorer.config_hash()})

            if hasattr(executor, "on_restorer"):
                executor.on_restorer = on_restorer
            try:
                reducer.start()
                units = reducer.todo()
                if self.config.order is not None:
                    units = self.config.order(units)
                for record in executor.run(units):
                    reducer.add(record)
                status = "FINISHED"
            finally:
                wait_for_previews()
                payload = reducer.finish(status if status == "FINISHED" else "KILLED")
        n_failed = sum(len(u["failed"]) for u in payload["units"])
        return RunSummary(run_dir, payload["results"], payload["missing_metrics"],
                          tracker.parent_id, n_failed, reducer.n_skipped, tracker.errors,
                          warnings, payload)


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


def _progress(show: bool, console: Any):
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

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def run_benchmark(config: RunConfig, console: Any = None) -> RunSummary:
    return Runner(config, console).run()
