"""Temporary bridge: dataset-level metrics through today's runner, until ``RunConfig.metric_specs``.

The lead's runner rewrite adds ``RunConfig.metric_specs`` and feeds ``MetricSpec(kind="dataset")``
itself (``harness/metric_api.py``). Until then :func:`run_with_metric_specs` does the same with a
:class:`~harness.runner.Runner` subclass, so ``bench detect`` works end to end today:

* per image, after the runner scored the output, each metric's ``update(out, gt, meta)`` runs on
  the restorer's output (``meta`` gets ``sample_id``), and its state goes into the record under
  ``metric_states[name]`` (so it is in ``samples.jsonl``, and ``--resume`` keeps it);
* when ``results.json`` is written, ``compute`` reduces the states of every (restorer, task) and
  its keys join that unit's results; ``spec.describe`` joins the task's metric params.

What it does not do (the rewrite will): log these values to MLflow, and apply the task's
conventions (crop border, GT-mean) to ``out`` first (synthetic tasks have none; detection rounds
to 8 bit itself, which is what ``quantize`` does). Delete this module once the rewrite lands:
:func:`downstream.cli.run_detection` uses ``metric_specs`` as soon as ``RunConfig`` has it.
"""

from __future__ import annotations

from typing import Any

from harness.metric_api import MetricSpec
from harness.results import records_for
from harness.runner import Runner, RunSummary


class DatasetMetricRunner(Runner):
    def __init__(self, config: Any, specs: list[MetricSpec], console: Any = None):
        super().__init__(config, console)
        self.specs = [s for s in specs if s.kind == "dataset"]
        self._metrics: dict[str, dict[str, Any]] = {}

    def _dataset_metrics(self, task: Any) -> dict[str, Any]:
        if task.name not in self._metrics:
            self._metrics[task.name] = {s.name: s.build(task.conventions, self.device)
                                        for s in self.specs}
        return self._metrics[task.name]

    def _evaluate(self, restorer, task, suite, sample_id, sample, error, run_dir, comparisons):
        captured: dict[str, Any] = {}
        original = restorer.restore

        def capture(lq, meta=None):
            captured["out"] = original(lq, meta)
            return captured["out"]

        restorer.restore = capture
        try:
            record = super()._evaluate(restorer, task, suite, sample_id, sample, error, run_dir,
                                       comparisons)
        finally:
            del restorer.restore
        if record.get("status") != "ok" or sample is None or "out" not in captured:
            return record
        gt = sample.gt.unsqueeze(0).to(self.device) if sample.gt is not None else None
        states, errors = {}, {}
        for name, metric in self._dataset_metrics(task).items():
            try:
                states[name] = metric.update(captured["out"], gt, {**sample.meta, "sample_id": sample_id})
            except Exception as exc:  # one bad image never kills a run
                errors[name] = f"{type(exc).__name__}: {exc}"
        record["metric_states"] = states
        if errors:
            record.setdefault("metric_errors", {}).update(errors)
        return record

    def _results_payload(self, run_dir, run_info, restorer_infos, tasks, records, missing):
        payload = super()._results_payload(run_dir, run_info, restorer_infos, tasks, records, missing)
        for task in tasks:
            metrics = None
            for restorer, by_task in payload["results"].items():
                if task.name not in by_task:
                    continue
                ok = [r for r in records_for(records, restorer, task.name) if r.get("status") == "ok"]
                for spec in self.specs:
                    states = [r["metric_states"][spec.name] for r in ok
                              if spec.name in r.get("metric_states", {})]
                    if states:
                        metrics = metrics or self._dataset_metrics(task)
                        by_task[task.name].update(metrics[spec.name].compute(states))
            params = payload["tasks"].get(task.name, {}).setdefault("metrics", {})
            params.update({spec.name: spec.describe(task.conventions) for spec in self.specs})
        return payload


def run_with_metric_specs(config: Any, specs: list[MetricSpec], console: Any = None) -> RunSummary:
    return DatasetMetricRunner(config, specs, console).run()
