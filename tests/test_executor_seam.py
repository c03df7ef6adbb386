"""The executor seam and the reducer's cost: typed records serialised as before, hooks instead of
attributes, one restorer build per configuration, no re-read of ``samples.jsonl`` during a run,
and no Ray module in a local run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import harness.io.results as results_io
from harness.api.registries import RESTORERS, TASKS
from harness.api.restorer import Restorer, register_restorer
from harness.api.task import Sample, Task, register_task
from harness.io.results import SampleLog, read_results, read_samples
from harness.run.executor import ExecutorHooks, LocalExecutor
from harness.run.plan import RestorerItem, make_plan
from harness.run.record import Record
from harness.run.reducer import Reducer
from harness.run.runner import RunConfig, run_benchmark

REPO = Path(__file__).resolve().parents[1]


class Built(Restorer):
    """Counts constructions: the plan's asset check and the executor share one object."""

    description = "test-only: identity that counts its constructions"
    warmup = "none"
    builds = 0

    def __init__(self, k: int = 0):
        super().__init__()
        Built.builds += 1

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return lq


class Ramp(Task):
    name = "test-seam-ramp"
    description = "test-only: four tiny ramps with GT"
    seed = 3

    def sample_ids(self) -> list[str]:
        return [f"r{i}" for i in range(4)]

    def load(self, sample_id: str) -> Sample:
        gt = torch.linspace(0, 1, 16 * 16).view(1, 16, 16).repeat(3, 1, 1)
        lq = (gt * (0.5 + int(sample_id[1:]) / 10)).clamp(0, 1)
        return Sample(sample_id, lq, gt, {"degradation": {"scale": sample_id}})


@pytest.fixture(autouse=True)
def registered():
    if "test-seam-built" not in RESTORERS:
        register_restorer("test-seam-built")(Built)
    if "test-seam-ramp" not in TASKS:
        register_task("test-seam-ramp")(Ramp)


def _config(tmp_path: Path, **kw: Any) -> RunConfig:
    return RunConfig(restorers=[("test-seam-built", {}), ("test-seam-built", {"k": 1})],
                     tasks=[("test-seam-ramp", {})], metrics=["psnr"], device="cpu",
                     output_dir=tmp_path, run_name="r", tracking=False, show_progress=False, **kw)


def test_a_record_serialises_to_the_schema_2_line_and_back():
    record = Record("s0", "nlm", "nlm#1", "demo", "demo#2", "cpu", "host", 11, 12)
    assert record.to_json() == {"sample_id": "s0", "restorer": "nlm", "restorer_id": "nlm#1",
                                "task": "demo", "task_id": "demo#2", "device": "cpu", "host": "host",
                                "seed": 11, "degradation_seed": 12, "status": "failed",
                                "metrics": {}, "latency_ms": None, "peak_mem_mb": None}
    record.succeed({"psnr": 30.0}, 1.5, 2.0, "cpu", 16, 16)
    record.comparison = (torch.zeros(3, 2, 2), None, None)  # travels in memory, never written
    line = record.to_json()
    assert "comparison" not in line and line["status"] == "ok" and line["height"] == 16
    assert Record.from_json(line) == record


def test_the_sample_log_returns_what_a_resumed_run_reads(tmp_path):
    log = SampleLog(tmp_path / "samples.jsonl")
    written = log.write({"sample_id": "a", "restorer": "r", "task": "t",
                         "metrics": {"psnr": float("inf")}, "shape": (1, 2)})
    log.close()
    assert written == read_samples(tmp_path / "samples.jsonl")[0]
    assert written["metrics"]["psnr"] == float("inf") and written["shape"] == [1, 2]


def test_each_restorer_is_built_once_and_announced_through_the_hooks(tmp_path):
    Built.builds = 0
    plan = make_plan([RestorerItem("test-seam-built")], [("test-seam-ramp", {})], metrics=["psnr"])
    assert Built.builds == 1  # the asset check
    announced, missing = [], []
    hooks = ExecutorHooks(keep_outputs=lambda unit, sample_id: sample_id == "r1",
                          on_restorer=lambda spec, info: announced.append((spec.id, info)),
                          on_metrics_missing=lambda task_id, m: missing.append(task_id))
    records = list(LocalExecutor(plan, hooks).run(plan.units))
    assert Built.builds == 1  # the executor loaded the plan's object
    assert [spec_id for spec_id, _ in announced] == [plan.restorers[0].id]
    assert "config_hash" in announced[0][1] and missing == [plan.tasks[0].id]
    assert [r.comparison is not None for r in records] == [False, True, False, False]
    assert records[1].comparison[1].shape[0] == 3 and records[0].degradation == {"scale": "r0"}


def test_the_reducer_never_rereads_samples_during_a_run(tmp_path, monkeypatch):
    first = run_benchmark(_config(tmp_path, limit=2))
    reads: list[str] = []
    real = results_io._parse_lines
    monkeypatch.setattr(results_io, "_parse_lines", lambda raw: reads.append(raw) or real(raw))
    resumed = run_benchmark(_config(tmp_path, resume=True))
    assert len(reads) == 1  # the earlier attempt's records, once, when the log opens
    assert resumed.n_skipped == 4 and first.n_skipped == 0
    records = read_samples(resumed.run_dir / "samples.jsonl")
    assert len(records) == 8 and len({(r["restorer_id"], r["sample_id"]) for r in records}) == 8
    payload = read_results(resumed.run_dir / "results.json")
    assert {u["n_recorded"] for u in payload["units"]} == {4}
    assert len(payload["restorers"]) == 2  # the earlier attempt's infos are kept


def test_each_pair_is_aggregated_once(tmp_path, monkeypatch):
    import harness.run.reducer as reducer_module

    calls: list[int] = []
    real = reducer_module.aggregate_records
    monkeypatch.setattr(reducer_module, "aggregate_records",
                        lambda records: calls.append(len(records)) or real(records))
    summary = run_benchmark(_config(tmp_path))
    assert calls == [4, 4]  # once per pair: MLflow and results.json share it
    assert summary.results["test-seam-built"]["test-seam-ramp"]["n_ok"] == 4


def test_a_pair_completed_by_records_alone_reduces_like_the_file(tmp_path):
    plan = make_plan([RestorerItem("test-seam-built")], [("test-seam-ramp", {})], metrics=["psnr"])
    records = list(LocalExecutor(plan).run(plan.units))

    class Tracker:
        logged: list[dict[str, Any]] = []

        def log_pair(self, **kwargs: Any) -> None:
            self.logged.append(kwargs)

        def finish(self, *args: Any) -> None:
            pass

    info = {"device": "cpu", "git_hash": None, "argv": [], "versions": {}, "limit": None}
    reducer = Reducer(plan, tmp_path, Tracker(), info)
    reducer.start()
    for record in reversed(records):
        reducer.add(record)
    payload = reducer.finish("FINISHED")
    assert len(Tracker.logged) == 1
    assert [row["sample_id"] for row in Tracker.logged[0]["rows"]] == ["r0", "r1", "r2", "r3"]
    from harness.run.aggregate import aggregate_records

    assert json.dumps(payload["results"]["test-seam-built"]["test-seam-ramp"]) == json.dumps(
        aggregate_records(sorted(read_samples(tmp_path / "samples.jsonl"), key=lambda r: r["sample_id"])))


def test_a_local_run_never_imports_the_ray_module(tmp_path):
    code = ("import sys; from harness.cli.executor_options import make_executor; "
            "from harness.run.runner import run_benchmark; make_executor('local'); "
            "assert 'harness.run.ray_executor' not in sys.modules, 'ray module imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                   env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
