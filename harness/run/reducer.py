"""The reducer: the only writer of ``samples.jsonl``, ``results.json`` and MLflow.

Records from any executor arrive in any order. The reducer writes each one at once (a flushed,
fsynced JSONL line) and keeps it in memory under its (restorer, task) pair; when the last sample
of a pair is recorded (this run's or an earlier attempt's) it aggregates that pair once and logs
its MLflow child run: params, the aggregates, the per-image table and a few LQ | output | GT
images (the thumbnails that came inside the records), in one batch. At the end it writes
``results.json`` from *all* records of the run folder, reusing each pair's aggregate.

``samples.jsonl`` is read once, when the reducer opens it (the records of an earlier attempt, for
``--resume``), and never again: the cost per record does not grow with the run
(``benchmarks/reducer_scaling.py``).

The reducer builds its own metric suites (:class:`ReductionSuite`, on the CPU, dataset-level
metrics only): it needs a task's metrics for ``params()``, ``directions()``, ``missing`` and
``reduce()``, never to score an image. What an executor could not build is reported with
:meth:`Reducer.note_missing` and merged into ``missing``.

MLflow work is done by a child process (:class:`harness.tracking.worker.TrackingProcess`): the
import, the store set-up and every batch overlap the evaluation instead of adding to it. Per image,
MLflow sees nothing; per pair, one child run is created and filled in a few batched calls.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from harness.api.metric import MetricSpec
from harness.io.results import (
    RESULTS_FILE,
    SAMPLES_FILE,
    ResultsReadError,
    SampleLog,
    now_iso,
    read_results,
    write_results,
)
from harness.metrics.suite import MetricSuite
from harness.run.aggregate import aggregate_records
from harness.run.plan import Plan
from harness.run.record import Comparison, Record
from harness.run.units import PairState, RestorerSpec, TaskSpec, Unit, record_key

PairKey = tuple[str, str]


class ReductionSuite(MetricSuite):
    """A task's metrics as the reducer needs them: declared (params, directions), dataset-level
    ones built on the CPU (for ``reduce``), per-image ones never built (executors score them).
    ``missing`` is the union of what the reducer and every executor could not build."""

    def __init__(self, names: list[str], conventions: Any, has_gt: bool,
                 extra: list[MetricSpec] | None = None):
        super().__init__(names, conventions, torch.device("cpu"), has_gt, extra,
                         build_kinds=("dataset",))


class PairRecords:
    """One pair's records, one per sample id (the last written wins), and its thumbnails."""

    def __init__(self, state: PairState):
        self.state = state
        self.by_id: dict[str, dict[str, Any]] = {}
        self.comparisons: dict[str, Comparison] = {}
        self.aggregate: dict[str, Any] | None = None  # computed once, when first needed

    def add(self, record: dict[str, Any]) -> None:
        self.by_id[record["sample_id"]] = record
        self.state.done.add(record["sample_id"])
        self.aggregate = None

    def ordered(self) -> list[dict[str, Any]]:
        """Task order, then ids the plan does not hold (an earlier attempt's larger ``--limit``)
        in file order: sums (std, dataset metrics) then do not depend on which executor, shard
        order or resume wrote the records."""
        planned = [self.by_id[i] for i in self.state.sample_ids if i in self.by_id]
        if len(planned) == len(self.by_id):
            return planned
        known = set(self.state.sample_ids)
        return planned + [r for i, r in self.by_id.items() if i not in known]


class Reducer:
    def __init__(self, plan: Plan, run_dir: Path, tracker: Any, run_info: dict[str, Any], *,
                 n_comparisons: int = 3, progress: Any = None):
        self.plan = plan
        self.run_dir = Path(run_dir)
        self.tracker = tracker
        self.run_info = run_info
        self.n_comparisons = n_comparisons
        self.progress = progress
        self.log = SampleLog(self.run_dir / SAMPLES_FILE)
        #: damaged files worked around (lines skipped, results.json rebuilt), each naming its file
        self.warnings: list[str] = list(self.log.warnings)
        self.restorer_infos: dict[str, Any] = self._earlier_restorer_infos()
        self.missing: dict[str, str] = {}
        self.reduce_errors: dict[str, str] = {}
        self._suites: dict[str, ReductionSuite] = {}
        self.pairs: dict[PairKey, PairRecords] = {
            key: PairRecords(PairState(plan.restorer(key[0]), plan.task(key[1]), ids))
            for key, ids in plan.pair_ids().items()}
        for record in self.log.existing:  # an earlier attempt's, read once
            pair = self.pairs.get(record_key(record)[:2])
            if pair is not None:
                pair.add(record)
        self.n_skipped = sum(len(p.state.done) for p in self.pairs.values())
        self._bars: dict[PairKey, Any] = {}
        self._logged: set[PairKey] = set()

    def _earlier_restorer_infos(self) -> dict[str, Any]:
        """Restorers an earlier attempt finished keep their info (they will not load again). An
        unreadable ``results.json`` is only warned about: it is rebuilt from the records."""
        previous = self.run_dir / RESULTS_FILE
        if not previous.exists():
            return {}
        try:
            infos = read_results(previous).get("restorers", {})
        except ResultsReadError as exc:
            self.warnings.append(f"{exc}; it is rebuilt from {SAMPLES_FILE} now (restorer details "
                                 "of pairs finished earlier are lost)")
            return {}
        return dict(infos) if isinstance(infos, dict) else {}

    def suite(self, task_id: str) -> ReductionSuite:
        """The task's metrics for reduction and params, built on the CPU once."""
        if task_id not in self._suites:
            task = self.plan.task_objects[task_id]
            self._suites[task_id] = ReductionSuite(self.plan.metrics or task.default_metrics(),
                                                   task.conventions, task.has_gt,
                                                   extra=self.plan.metric_specs)
        return self._suites[task_id]

    # What is left to do ------------------------------------------------------------------------
    def todo(self) -> list[Unit]:
        """The plan's units with already-recorded samples removed (empty units dropped)."""
        units = []
        for unit in self.plan.units:
            done = self.pairs[unit.key].state.done
            ids = tuple(i for i in unit.sample_ids if i not in done)
            if ids:
                units.append(replace(unit, sample_ids=ids))
        return units

    def start(self) -> None:
        if self.progress is not None:
            for key, pair in self.pairs.items():
                self._bars[key] = self.progress.add_task(
                    f"{pair.state.restorer.label} @ {pair.state.task.label}",
                    total=len(pair.state.sample_ids), completed=len(pair.state.done))
        # pairs an earlier attempt completed: logged now unless their FINISHED child run exists
        # (the attempt may have died between a pair's last record and its child run)
        for key, pair in self.pairs.items():
            if pair.state.complete:
                self._logged.add(key)
                self._log_pair(pair, if_missing=True)

    # What executors report ------------------------------------------------------------------------
    def note_restorer(self, spec: RestorerSpec, info: dict[str, Any]) -> None:
        self.restorer_infos[spec.label] = {**info, "restorer_id": spec.id, "name": spec.name,
                                           "options": spec.options, "config": spec.config,
                                           "train_tag": spec.train_tag}

    def note_missing(self, task_id: str, missing: dict[str, str]) -> None:
        """Metrics an executor could not build for a task (the first reason given is kept)."""
        for name, reason in missing.items():
            self.suite(task_id).missing.setdefault(name, reason)

    # Records ------------------------------------------------------------------------------------
    def add(self, record: Record) -> None:
        """Write one record, keep it, and finish its pair when it was the pair's last."""
        key = record.key
        pair = self.pairs[key]
        pair.add(self.log.write(record.to_json()))
        if record.comparison is not None:
            pair.comparisons[record.sample_id] = record.comparison
        if self.progress is not None and key in self._bars:
            self.progress.advance(self._bars[key])
        if pair.state.complete and key not in self._logged:
            self._logged.add(key)
            self._log_pair(pair)

    def aggregate(self, pair: PairRecords) -> dict[str, Any]:
        """The pair's aggregates (per-image summaries and dataset-level metrics), computed once."""
        if pair.aggregate is None:
            records = pair.ordered()
            suite = self.suite(pair.state.task.id)
            aggregates = aggregate_records(records)
            dataset, errors = suite.reduce(records)
            aggregates.update(dataset)
            for name, error in errors.items():
                self.reduce_errors[f"{name}@{pair.state.task.label}"] = error
            pair.aggregate = aggregates
        return pair.aggregate

    def _log_pair(self, pair: PairRecords, if_missing: bool = False) -> None:
        """The pair's MLflow child run: params, aggregates, per-image rows, a few comparisons
        (``if_missing``: only if the parent has no FINISHED child for this pair yet)."""
        restorer, task = pair.state.restorer, pair.state.task
        suite = self.suite(task.id)
        self.missing.update(suite.missing)
        records = pair.ordered()
        rows = [{"sample_id": r["sample_id"], "status": r["status"], "error": r.get("error", ""),
                 **r.get("metrics", {}), "latency_ms": r.get("latency_ms"),
                 "peak_mem_mb": r.get("peak_mem_mb"), "seed": r.get("seed")} for r in records]
        images = [(r["sample_id"], pair.comparisons[r["sample_id"]]) for r in records
                  if r["sample_id"] in pair.comparisons][:self.n_comparisons]
        self.tracker.log_pair(name=f"{restorer.label}@{task.label}",
                              tags={"restorer": restorer.label, "task": task.label,
                                    "restorer_id": restorer.id, "task_id": task.id,
                                    **{f"missing.{k}": v for k, v in suite.missing.items()}},
                              params=self._pair_params(restorer, task, suite),
                              aggregates=self.aggregate(pair), rows=rows, images=images,
                              **({"identity": {"restorer_id": restorer.id, "task_id": task.id}}
                                 if if_missing else {}))
        pair.comparisons.clear()

    def _pair_params(self, restorer: RestorerSpec, task: TaskSpec, suite: MetricSuite) -> dict[str, Any]:
        info = self.restorer_infos.get(restorer.label, {})
        weights = info.get("weights", [])
        task_obj = self.plan.task_objects[task.id]
        params = {"restorer": restorer.name, "restorer.label": restorer.label,
                  "restorer.id": restorer.id, "restorer.config": restorer.config,
                  "restorer.weights_sha256": ",".join(w.get("sha256", "") for w in weights),
                  "task": task.name, "task.label": task.label, "task.id": task.id,
                  "task.version": task_obj.version, "task.options": task.options,
                  "task.seed": task.seed, "seed": self.plan.seed,
                  "device": self.run_info["device"], **suite.params()}
        measurement = self.run_info.get("measurement") or {}
        params.update({k: measurement[k] for k in ("threads", "flush_denormal") if k in measurement})
        for index, weight in enumerate(weights):
            if weight.get("provenance"):
                params[f"restorer.checkpoint{index or ''}.provenance"] = weight["provenance"]
                params[f"restorer.checkpoint{index or ''}.weights_sha256"] = weight.get("weights_sha256")
        return params

    # The end ------------------------------------------------------------------------------------
    def finish(self, status: str, reason: str | None = None) -> dict[str, Any]:
        """Write ``results.json`` from every record of the run; end the MLflow parent with
        ``status`` (and ``reason`` when it failed). If ``results.json`` cannot be written (a full
        disk), the MLflow runs still end, FAILED with that reason, before the error is raised;
        when the run was failing already (``reason``), that first error is the one raised."""
        self.log.close()
        path = self.run_dir / RESULTS_FILE
        payload: dict[str, Any] = {}
        try:
            payload = self.results_payload()
            write_results(path, payload)
        except Exception as exc:
            self.tracker.finish(None, self.missing, "KILLED" if status == "KILLED" else "FAILED",
                                reason or f"{type(exc).__name__}: {exc}")
            if reason is None:
                raise
            return payload
        self.tracker.finish(path, self.missing, status, reason)
        return payload

    def results_payload(self) -> dict[str, Any]:
        results: dict[str, dict[str, Any]] = {}
        units = []
        metrics_declared: dict[str, Any] = {}
        for pair in self.pairs.values():
            if not pair.by_id:
                continue
            restorer, task = pair.state.restorer, pair.state.task
            suite = self.suite(task.id)
            metrics_declared.update(suite.directions())
            self.missing.update(suite.missing)
            results.setdefault(restorer.label, {})[task.label] = self.aggregate(pair)
            failed = [{"sample_id": r["sample_id"], "error": r.get("error", "")}
                      for r in pair.ordered() if r.get("status") == "failed"]
            units.append({"restorer": restorer.label, "restorer_id": restorer.id,
                          "task": task.label, "task_id": task.id,
                          "n_planned": len(pair.state.sample_ids), "n_recorded": len(pair.by_id),
                          "failed": failed})
        return {"run_id": self.run_dir.name, "created": now_iso(),
                "git_hash": self.run_info["git_hash"], "argv": self.run_info["argv"],
                "device": self.run_info["device"], "versions": self.run_info["versions"],
                "seed": self.plan.seed, "limit": self.run_info.get("limit"),
                "restorers": self.restorer_infos, "tasks": self._tasks_payload(), "units": units,
                "metrics": metrics_declared, "results": results, "missing_metrics": self.missing,
                "asset_checks": self._asset_checks(),
                # threads, denormal mode, load, how latency and peak memory were measured
                **({"measurement": self.run_info["measurement"]}
                   if "measurement" in self.run_info else {}),
                **({"reduce_errors": self.reduce_errors} if self.reduce_errors else {})}

    def _asset_checks(self) -> dict[str, str]:
        """How each weight / metric-parameter file the run used was checked (re-hashed or its
        stamp trusted), from the run's ``verification_log`` scope; empty without one."""
        checks = self.run_info.get("asset_checks")
        return checks.as_dict() if checks is not None else {}

    def _tasks_payload(self) -> dict[str, Any]:
        tasks = {}
        for tspec in self.plan.tasks:
            task = self.plan.task_objects[tspec.id]
            n = len(next((p.state.sample_ids for p in self.pairs.values()
                          if p.state.task.id == tspec.id), []))
            tasks[tspec.label] = {**task.describe(), "name": tspec.name, "task_id": tspec.id,
                                  "options": tspec.options, "n": n,
                                  "metrics": self.suite(tspec.id).params()}
        return tasks

