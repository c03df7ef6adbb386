"""The evaluation loop: every (restorer, task) pair, image by image, recorded as it goes.

Order of work, and why:

1. Every task is built and its data checked *before* any model is loaded, so a missing dataset
   fails in a second, not after a large model has been loaded.
2. Each restorer is loaded once, then warmed up on a small crop (CUDA kernels, cuDNN autotune,
   lazy allocations); the warm-up is excluded from timing.
3. Samples are loaded (and, for synthetic tasks, degraded) in a background thread while the
   model works on the previous one.
4. ``restore`` alone is timed (``perf_counter``, CUDA-synchronised on CUDA). Peak memory is
   ``torch.cuda.max_memory_allocated`` on CUDA, the process RSS peak (sampled every 2 ms) on CPU.
5. One record per image is written and flushed immediately; a failing image is recorded with its
   error and the loop goes on. ``--resume`` skips every (restorer, task, sample) already recorded.
6. Aggregates (mean, std, bootstrap CI, n) come from *all* records of the run, including those of
   an interrupted earlier attempt.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch

from harness.aggregate import aggregate_records
from harness.images import montage, save_image, thumbnail
from harness.metrics import MetricSuite
from harness.restorer import RESTORERS, Restorer, build_restorer
from harness.results import (
    RESULTS_FILE,
    SAMPLES_FILE,
    SampleLog,
    git_hash,
    latest_run,
    new_run_name,
    now_iso,
    records_for,
    versions,
    write_results,
)
from harness.task import Sample, Task, build_task
from harness.tracking import NullTracker, Tracker, default_tracking_uri

WARMUP_SIDE = 64


@dataclass
class RunConfig:
    """Everything a ``bench run`` call decides; stored in ``results.json`` and MLflow."""

    restorers: list[tuple[str, dict[str, Any]]]
    tasks: list[tuple[str, dict[str, Any]]]
    device: str = "auto"
    limit: int | None = None
    metrics: list[str] | None = None
    output_dir: Path = Path("results")
    run_name: str | None = None
    resume: bool = False
    seed: int = 0
    save_images: bool = False
    tracking: bool = True
    tracking_uri: str | None = None
    experiment: str = "restorebench"
    n_comparisons: int = 3
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    show_progress: bool = True


@dataclass
class RunSummary:
    run_dir: Path
    results: dict[str, dict[str, dict[str, Any]]]
    missing_metrics: dict[str, str]
    parent_run_id: str
    n_failed: int
    n_skipped: int


def resolve_device(spec: str) -> torch.device:
    """``auto`` → CUDA when available; ``cuda[:N]`` fails clearly when it is not."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available on this machine; use "
                         "--device cpu or auto")
    return device


class PeakMemory:
    """Peak memory of one ``restore`` call, in MB (CUDA allocator or process RSS)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            process = psutil.Process()
            self._peak = process.memory_info().rss

            def poll() -> None:
                while not self._stop.wait(0.002):
                    self._peak = max(self._peak, process.memory_info().rss)

            self._thread = threading.Thread(target=poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self._peak = max(self._peak, psutil.Process().memory_info().rss)
            self.peak_mb = self._peak / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seed_for(task: Task, sample_id: str, seed: int) -> int:
    """Seed for a stochastic restorer on one image: independent of order and of resume."""
    return (task.image_seed(sample_id) ^ (seed * 0x9E3779B1)) & ((1 << 63) - 1)


class Runner:
    def __init__(self, config: RunConfig, console: Any = None):
        self.config = config
        self.console = console
        self.device = resolve_device(config.device)
        self._metric_params: dict[str, dict[str, Any]] = {}

    # Setup ------------------------------------------------------------------------------------
    def _build_tasks(self) -> list[Task]:
        tasks = []
        for name, options in self.config.tasks:
            task = build_task(name, **dict(options))
            if self.config.seed:
                task.seed = self.config.seed
            task.check_available()
            tasks.append(task)
        return tasks

    def _run_dir(self) -> Path:
        output = Path(self.config.output_dir)
        if self.config.resume and not self.config.run_name:
            found = latest_run(output)
            if found is None:
                raise FileNotFoundError(f"--resume: no earlier run with {SAMPLES_FILE} in {output}")
            return found
        name = self.config.run_name or new_run_name()
        run_dir = output / name
        if run_dir.exists() and (run_dir / SAMPLES_FILE).exists() and not self.config.resume:
            raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it "
                                  "or choose another --run-name")
        return run_dir

    def _tracker(self) -> Tracker:
        if not self.config.tracking:
            return NullTracker()
        uri = self.config.tracking_uri or default_tracking_uri(self.config.output_dir)
        return Tracker(uri, self.config.experiment, Path(self.config.output_dir) / "mlartifacts")

    # Main loop --------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        for name, _ in self.config.restorers:  # unknown names fail before anything else
            RESTORERS.canonical(name)
        tasks = self._build_tasks()
        for name, args in self.config.restorers:  # so do bad options and missing weights
            build_restorer(name, **dict(args)).check_assets()
        run_dir = self._run_dir()
        run_dir.mkdir(parents=True, exist_ok=True)
        tracker = self._tracker()
        run_info = {"device": str(self.device), "git_hash": git_hash(), "argv": self.config.argv,
                    "versions": versions()}
        parent = tracker.start_parent(
            run_dir.name,
            tags={"git_hash": run_info["git_hash"], "argv": " ".join(self.config.argv),
                  "device": str(self.device), "gpu": _gpu_name(self.device),
                  "torch": torch.__version__, "run_dir": str(run_dir.resolve())},
            params={"restorers": ",".join(n for n, _ in self.config.restorers),
                    "tasks": ",".join(t.name for t in tasks), "seed": self.config.seed,
                    "limit": self.config.limit, "device": str(self.device),
                    "versions": run_info["versions"]})
        log = SampleLog(run_dir / SAMPLES_FILE)
        done = {(r["restorer"], r["task"], r["sample_id"]) for r in log.records()}
        restorer_infos: dict[str, Any] = {}
        missing: dict[str, str] = {}
        n_skipped = 0
        status = "FAILED"
        child = ""
        try:
            progress = _progress(self.config.show_progress, self.console)
            with progress:
                for restorer_name, restorer_args in self.config.restorers:
                    restorer = build_restorer(restorer_name, **dict(restorer_args))
                    restorer.load(self.device)
                    restorer_infos[restorer.name] = {**restorer.info().to_dict(),
                                                     "config_hash": restorer.config_hash()}
                    warmed = False
                    for task in tasks:
                        ids = task.sample_ids()[: self.config.limit]
                        todo = [i for i in ids if (restorer.name, task.name, i) not in done]
                        n_skipped += len(ids) - len(todo)
                        suite = MetricSuite(self.config.metrics or task.default_metrics(),
                                            task.conventions, self.device, task.has_gt)
                        missing.update(suite.missing)
                        self._metric_params[task.name] = suite.params()
                        bar = progress.add_task(f"{restorer.name} @ {task.name}", total=len(ids),
                                                completed=len(ids) - len(todo))
                        child = tracker.start_child(f"{restorer.name}@{task.name}",
                                                    tags={"restorer": restorer.name,
                                                          "task": task.name})
                        comparisons: list[tuple[str, Any]] = []
                        for sample_id, sample, error in _prefetch(task, todo):
                            if not warmed and sample is not None:
                                self._warm_up(restorer, sample)
                                warmed = True
                            record = self._evaluate(restorer, task, suite, sample_id, sample,
                                                    error, run_dir, comparisons)
                            log.write(record)
                            done.add((restorer.name, task.name, sample_id))
                            progress.advance(bar)
                        self._log_child(tracker, child, restorer, task, suite, log, comparisons)
                        child = ""
                    del restorer
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
            status = "FINISHED"
        finally:
            log.close()
            if child:  # interrupted inside a (restorer, task): close its MLflow run too
                tracker.end(child, "KILLED")
            all_records = SampleLog(run_dir / SAMPLES_FILE).records()
            payload = self._results_payload(run_dir, run_info, restorer_infos, tasks, all_records,
                                            missing)
            write_results(run_dir / RESULTS_FILE, payload)
            if parent:
                tracker.log_artifact(parent, run_dir / RESULTS_FILE)
                tracker.log_tags(parent, {f"missing.{k}": v for k, v in missing.items()})
                tracker.end(parent, status)
        n_failed = sum(1 for r in all_records if r.get("status") == "failed")
        return RunSummary(run_dir, payload["results"], missing, parent, n_failed, n_skipped)

    def _warm_up(self, restorer: Restorer, sample: Sample) -> None:
        crop = sample.lq[:, :WARMUP_SIDE, :WARMUP_SIDE].unsqueeze(0).to(self.device)
        try:
            restorer.restore(crop, dict(sample.meta))
            _sync(self.device)
        except Exception:  # warm-up problems surface on the real image, recorded there
            pass

    def _evaluate(self, restorer: Restorer, task: Task, suite: MetricSuite, sample_id: str,
                  sample: Sample | None, error: BaseException | None, run_dir: Path,
                  comparisons: list[tuple[str, Any]]) -> dict[str, Any]:
        record: dict[str, Any] = {"sample_id": sample_id, "restorer": restorer.name,
                                  "task": task.name, "device": str(self.device),
                                  "seed": task.image_seed(sample_id), "metrics": {},
                                  "latency_ms": None, "peak_mem_mb": None}
        try:
            if error is not None:
                raise error
            assert sample is not None
            if "degradation" in sample.meta:
                record["degradation"] = sample.meta["degradation"]
            lq = sample.lq.unsqueeze(0).to(self.device)
            gt = sample.gt.unsqueeze(0).to(self.device) if sample.gt is not None else None
            torch.manual_seed(_seed_for(task, sample_id, self.config.seed))
            _sync(self.device)
            with PeakMemory(self.device) as memory:
                start = time.perf_counter()
                out = restorer.restore(lq, dict(sample.meta))
                _sync(self.device)
                elapsed = time.perf_counter() - start
            if out.shape != lq.shape:
                raise ValueError(f"{restorer.name} returned shape {tuple(out.shape)} for input "
                                 f"{tuple(lq.shape)}")
            if not torch.isfinite(out).all():
                raise ValueError(f"{restorer.name} produced NaN/inf values")
            values, metric_errors = suite.score(out, gt)
            record.update(status="ok", metrics=values, latency_ms=elapsed * 1000.0,
                          peak_mem_mb=memory.peak_mb, height=lq.shape[-2], width=lq.shape[-1])
            if metric_errors:
                record["metric_errors"] = metric_errors
            if self.config.save_images:
                save_image(out, run_dir / "images" / restorer.name / task.name / f"{sample_id}.png")
            if len(comparisons) < self.config.n_comparisons:
                comparisons.append((sample_id, (thumbnail(lq), thumbnail(out),
                                                None if gt is None else thumbnail(gt))))
        except Exception as exc:  # one bad image never kills a run
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                          traceback="".join(traceback.format_exception(exc))[-2000:])
        return record

    def _log_child(self, tracker: Tracker, child: str, restorer: Restorer, task: Task,
                   suite: MetricSuite, log: SampleLog, comparisons: list[tuple[str, Any]]) -> None:
        if not child:
            return
        records = records_for(log.records(), restorer.name, task.name)
        info = restorer.info()
        params = {"restorer": restorer.name, "restorer.config": restorer.config,
                  "restorer.config_hash": restorer.config_hash(),
                  "restorer.weights_sha256": ",".join(w.get("sha256", "") for w in info.weights),
                  "task": task.name, "task.version": task.version, "task.options": task.options,
                  "task.seed": task.seed, "seed": self.config.seed, "device": str(self.device),
                  **suite.params()}
        tracker.log_params(child, params)
        tracker.log_tags(child, {f"missing.{k}": v for k, v in suite.missing.items()})
        aggregates = aggregate_records(records)
        tracker.log_aggregates(child, aggregates)
        rows = [{"sample_id": r["sample_id"], "status": r["status"], "error": r.get("error", ""),
                 **r.get("metrics", {}), "latency_ms": r.get("latency_ms"),
                 "peak_mem_mb": r.get("peak_mem_mb")} for r in records]
        # MLflow forbids ":" in artifact names; spec-string tasks (synth:...) contain it
        artifact = f"{restorer.name}@{task.name}".replace(":", "_")
        tracker.log_table(child, rows, f"per_image/{artifact}.json")
        for sample_id, panels in comparisons:
            tracker.log_image(child, montage(list(panels)),
                              f"comparisons/{_safe(sample_id)}_lq-out-gt.png")
        tracker.end(child)

    def _results_payload(self, run_dir: Path, run_info: dict[str, Any],
                         restorer_infos: dict[str, Any], tasks: list[Task],
                         records: list[dict[str, Any]], missing: dict[str, str]) -> dict[str, Any]:
        results: dict[str, dict[str, Any]] = {}
        for record in records:
            results.setdefault(record["restorer"], {}).setdefault(record["task"], None)
        for restorer, by_task in results.items():
            for task in by_task:
                by_task[task] = aggregate_records(records_for(records, restorer, task))
        return {"run_id": run_dir.name, "created": now_iso(), "git_hash": run_info["git_hash"],
                "argv": run_info["argv"], "device": run_info["device"],
                "versions": run_info["versions"], "seed": self.config.seed,
                "limit": self.config.limit,
                "restorers": restorer_infos,
                "tasks": {t.name: {**t.describe(), "n": len(t.sample_ids()[: self.config.limit]),
                                   "metrics": self._metric_params.get(t.name, {})}
                          for t in tasks},
                "results": results, "missing_metrics": missing}


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "none"


def _prefetch(task: Task, ids: list[str]):
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

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def run_benchmark(config: RunConfig, console: Any = None) -> RunSummary:
    return Runner(config, console).run()

