"""The reducer: the only writer of ``samples.jsonl``, ``results.json`` and MLflow.

Records from any executor arrive in any order. The reducer writes each one at once (a flushed,
fsynced JSONL line), and when the last sample of a (restorer, task) pair is recorded (this run's
or an earlier attempt's) it aggregates that pair and logs its MLflow child run: params, the
aggregates, the per-image table and a few LQ | output | GT images, in one batch. At the end
it writes ``results.json`` from *all* records of the run folder.

MLflow work is done by a child process (:class:`harness.tracking.worker.TrackingProcess`): the
import, the store set-up and every batch overlap the evaluation instead of adding to it. Per image, MLflow
sees nothing; per pair, one child run is created and filled in a few batched calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.io.results import RESULTS_FILE, SAMPLES_FILE, SampleLog, now_iso, write_results
from harness.metrics.suite import MetricSuite
from harness.run.aggregate import aggregate_records
from harness.run.plan import Plan
from harness.run.units import PairState, RestorerSpec, TaskSpec, record_key

SuiteProvider = Callable[[str], MetricSuite]


class Reducer:
    def __init__(self, plan: Plan, run_dir: Path, tracker: Any, suite: SuiteProvider,
                 run_info: dict[str, Any], *, n_comparisons: int = 3,
                 comparisons: Callable[[str, str, str], Any] | None = None,
                 progress: Any = None):
        self.plan = plan
        self.run_dir = Path(run_dir)
        self.tracker = tracker
        self.suite = suite
        self.run_info = run_info
        self.n_comparisons = n_comparisons
        self.comparisons = comparisons
        self.progress = progress
        self.log = SampleLog(self.run_dir / SAMPLES_FILE)
        self.restorer_infos: dict[str, Any] = {}
        self.pairs: dict[tuple[str, str], PairState] = {}
        self.missing: dict[str, str] = {}
        self.reduce_errors: dict[str, str] = {}
        done = {record_key(r) for r in self.log.records()}
        self._bars: dict[tuple[str, str], Any] = {}
        for key, ids in plan.pair_ids().items():
            restorer, task = plan.restorer(key[0]), plan.task(key[1])
            state = PairState(restorer, task, ids)
            state.done = {i for i in ids if (key[0], key[1], i) in done}
            self.pairs[key] = state
        self.n_skipped = sum(len(p.done) for p in self.pairs.values())
        self._logged: set[tuple[str, str]] = set()

    # What is left to do ------------------------------------------------------------------------
    def todo(self) -> list:
        """The plan's units with already-recorded samples removed (empty units dropped)."""
        from dataclasses import replace

        units = []
        for unit in self.plan.units:
            done = self.pairs[unit.key].done
            ids = tuple(i for i in unit.sample_ids if i not in done)
            if ids:
                units.append(replace(unit, sample_ids=ids))
        return units

    def start(self) -> None:
        if self.progress is not None:
            for key, pair in self.pairs.items():
                self._bars[key] = self.progress.add_task(
                    f"{pair.restorer.label} @ {pair.task.label}", total=len(pair.sample_ids),
                    completed=len(pair.done))
        # pairs an earlier attempt finished were logged by it when their last record came in
        self._logged.update(key for key, pair in self.pairs.items() if pair.complete)

    def note_restorer(self, spec: RestorerSpec, info: dict[str, Any]) -> None:
        self.restorer_infos[spec.label] = {**info, "restorer_id": spec.id, "name": spec.name,
                                           "options": spec.options, "config": spec.config,
                                           "train_tag": spec.train_tag}

    # Records ------------------------------------------------------------------------------------
    def add(self, record: dict[str, Any]) -> None:
        self.log.write(record)
        key = (record["restorer_id"], record["task_id"])
        pair = self.pairs[key]
        pair.done.add(record["sample_id"])
        if self.progress is not None and key in self._bars:
            self.progress.advance(self._bars[key])
        if pair.complete:
            self._finish_pair(key)

    def _finish_pair(self, key: tuple[str, str]) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        pair = self.pairs[key]
        records = self.pair_records(key)
        suite = self.suite(pair.task.id)
        self.missing.update(suite.missing)
        aggregates = self.aggregate(key, records, suite)
        params = self._pair_params(pair.restorer, pair.task, suite)
        rows = [{"sample_id": r["sample_id"], "status": r["status"], "error": r.get("error", ""),
                 **r.get("metrics", {}), "latency_ms": r.get("latency_ms"),
                 "peak_mem_mb": r.get("peak_mem_mb"), "seed": r.get("seed")} for r in records]
        images = []
        if self.comparisons is not None:
            for record in records:
                if len(images) >= self.n_comparisons:
                    break
                panels = self.comparisons(key[0], key[1], record["sample_id"])
                if panels is not None:
                    images.append((record["sample_id"], panels))
        self.tracker.log_pair(name=f"{pair.restorer.label}@{pair.task.label}",
                              tags={"restorer": pair.restorer.label, "task": pair.task.label,
                                    "restorer_id": pair.restorer.id, "task_id": pair.task.id,
                                    **{f"missing.{k}": v for k, v in suite.missing.items()}},
                              params=params, aggregates=aggregates, rows=rows, images=images)

    def pair_records(self, key: tuple[str, str]) -> list[dict[str, Any]]:
        """The records of a pair, one per sample id (the last one written wins), in task order."""
        by_id: dict[str, dict[str, Any]] = {}
        for record in self.log.records():
            if (record.get("restorer_id"), record.get("task_id")) == key:
                by_id[record["sample_id"]] = record
        order = self.pairs[key].sample_ids
        return [by_id[i] for i in order if i in by_id]

    def aggregate(self, key: tuple[str, str], records: list[dict[str, Any]],
                  suite: MetricSuite) -> dict[str, Any]:
        aggregates = aggregate_records(records)
        dataset, errors = suite.reduce(records)
        aggregates.update(dataset)
        for name, error in errors.items():
            self.reduce_errors[f"{name}@{self.pairs[key].task.label}"] = error
        return aggregates

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
        for index, weight in enumerate(weights):
            if weight.get("provenance"):
                params[f"restorer.checkpoint{index or ''}.provenance"] = weight["provenance"]
                params[f"restorer.checkpoint{index or ''}.weights_sha256"] = weight.get("weights_sha256")
        return params

    # The end ------------------------------------------------------------------------------------
    def finish(self, status: str) -> dict[str, Any]:
        """Write ``results.json`` from every record of the run; end the MLflow parent."""
        self.log.close()
        all_records = SampleLog.read(self.run_dir / SAMPLES_FILE)
        payload = self.results_payload(all_records)
        write_results(self.run_dir / RESULTS_FILE, payload)
        self.tracker.finish(self.run_dir / RESULTS_FILE, self.missing, status)
        return payload

    def results_payload(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        results: dict[str, dict[str, Any]] = {}
        units = []
        metrics_declared: dict[str, Any] = {}
        for key, pair in self.pairs.items():
            pair_records = [r for r in records if (r.get("restorer_id"), r.get("task_id")) == key]
            if not pair_records:
                continue
            by_id = {r["sample_id"]: r for r in pair_records}
            # task order, not file order: sums (std, dataset metrics) then do not depend on which
            # executor, shard order or resume wrote the records
            rank = {sample_id: index for index, sample_id in enumerate(pair.sample_ids)}
            by_id = dict(sorted(by_id.items(), key=lambda item: rank.get(item[0], len(rank))))
            suite = self.suite(pair.task.id)
            metrics_declared.update(suite.directions())
            self.missing.update(suite.missing)
            results.setdefault(pair.restorer.label, {})[pair.task.label] = self.aggregate(
                key, list(by_id.values()), suite)
            failed = [{"sample_id": r["sample_id"], "error": r.get("error", "")}
                      for r in by_id.values() if r.get("status") == "failed"]
            units.append({"restorer": pair.restorer.label, "restorer_id": pair.restorer.id,
                          "task": pair.task.label, "task_id": pair.task.id,
                          "n_planned": len(pair.sample_ids), "n_recorded": len(by_id),
                          "failed": failed})
        tasks = {}
        for tspec in self.plan.tasks:
            task = self.plan.task_objects[tspec.id]
            n = len(next((p.sample_ids for p in self.pairs.values() if p.task.id == tspec.id), []))
            tasks[tspec.label] = {**task.describe(), "name": tspec.name, "task_id": tspec.id,
                                  "options": tspec.options, "n": n,
                                  "metrics": self.suite(tspec.id).params()}
        return {"run_id": self.run_dir.name, "created": now_iso(),
                "git_hash": self.run_info["git_hash"], "argv": self.run_info["argv"],
                "device": self.run_info["device"], "versions": self.run_info["versions"],
                "seed": self.plan.seed, "limit": self.run_info.get("limit"),
                "restorers": self.restorer_infos, "tasks": tasks, "units": units,
                "metrics": metrics_declared, "results": results, "missing_metrics": self.missing,
                "asset_checks": _asset_checks(),
                **({"reduce_errors": self.reduce_errors} if self.reduce_errors else {})}


def _asset_checks() -> dict[str, str]:
    """How every weight / metric-parameter file this run used was checked: ``re-hashed
    (sha256)`` or ``stamp trusted`` (``bench run --verify-assets`` forces the first)."""
    from harness.assets.cache import VERIFICATIONS

    return dict(sorted(VERIFICATIONS.items()))
