"""The harness seams: run units with identities, plan → execute → reduce, per-image seeds,
warm-up policy, dataset-level metrics and metric direction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from harness.api.metric import DatasetMetric, MetricSpec
from harness.api.registries import METRICS, RESTORERS, TASKS
from harness.api.restorer import Restorer, register_restorer
from harness.api.task import Sample, Task, register_task
from harness.cli.main import app
from harness.io.results import read_samples
from harness.metrics.suite import get_metric
from harness.run.runner import RunConfig, run_benchmark
from tests.probes import in_memory_probe

TIMING = ("latency_ms", "latency_calls", "peak_mem_mb")


class NoisyOutput(Restorer):
    """Adds noise drawn from the per-image generator: order-dependent if seeding were wrong."""

    description = "test-only: input + N(0, 0.05) from meta['generator']"
    warmup = "none"

    def __init__(self, amount: float = 0.05):
        super().__init__()
        self.amount = amount

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        noise = torch.randn(lq.shape, generator=meta["generator"]).to(lq.device)
        return lq + self.amount * noise


class CountingWarmup(Restorer):
    description = "test-only: counts restore calls"
    calls: list[tuple[int, ...]] = []
    warmup = "none"

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        if not in_memory_probe():  # the CPU memory probe's calls are not warm-ups
            CountingWarmup.calls.append(tuple(lq.shape))
        return lq


class SeededTask(Task):
    """Five tiny images degraded with the task seed (so a seed override is visible)."""

    name = "test-seeded"
    description = "test-only"
    seed = 7

    def sample_ids(self) -> list[str]:
        return [f"s{i}" for i in range(5)]

    def load(self, sample_id: str) -> Sample:
        generator = torch.Generator().manual_seed(self.image_seed(sample_id))
        gt = torch.linspace(0, 1, 24 * 24).view(1, 24, 24).repeat(3, 1, 1) * (int(sample_id[1:]) + 1) / 5
        lq = (gt + 0.1 * torch.randn(gt.shape, generator=generator)).clamp(0, 1)
        return Sample(sample_id, lq, gt, {"index": int(sample_id[1:])})


class BrightCount(DatasetMetric):
    """Counts images whose output mean exceeds a threshold: a metric no per-image mean gives."""

    def update(self, out: torch.Tensor, gt: torch.Tensor | None, meta: dict[str, Any]) -> Any:
        return {"bright": bool(out.mean() > 0.3), "index": meta["index"]}

    def compute(self, states: list[Any]) -> dict[str, float]:
        count = sum(s["bright"] for s in states)
        return {"test-bright": float(count), "test-bright.fraction": count / len(states)}


def _register() -> None:
    if "test-noisy" not in RESTORERS:
        register_restorer("test-noisy")(NoisyOutput)
        register_restorer("test-counting")(CountingWarmup)
    if "test-seeded" not in TASKS:
        register_task("test-seeded")(SeededTask)
    if "test-bright" not in METRICS:
        METRICS.register("test-bright", target=MetricSpec(
            "test-bright", "NR", False, "test-only count", lambda c, d: BrightCount(),
            lambda c: {"impl": "test"}, kind="dataset"))


@pytest.fixture(autouse=True)
def registered():
    _register()


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in TIMING}


def _records(run_dir: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["restorer_id"], r["task_id"], r["sample_id"]): _strip(r)
            for r in read_samples(run_dir / "samples.jsonl")}


def _aggregates(run_dir: Path) -> dict[str, Any]:
    results = json.loads((run_dir / "results.json").read_text())["results"]
    return {r: {t: {m: v for m, v in agg.items() if m not in TIMING} for t, agg in by.items()}
            for r, by in results.items()}


def _mlflow_structure(uri: str, parent_name: str) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("restorebench").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("run_folder") == parent_name)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return {c.info.run_name: ({k: round(v, 9) for k, v in c.data.metrics.items()
                               if not k.startswith(TIMING)},
                              {k: v for k, v in c.data.params.items()},
                              sorted(a.path for a in client.list_artifacts(c.info.run_id)))
            for c in children}


class TestRunUnits:
    def test_two_configs_of_one_restorer_are_two_rows_and_resume_skips_exactly_what_was_done(
            self, tmp_path):
        from mlflow import MlflowClient

        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        base = ["run", "-r", "nlm", "-r", "nlm[sigma=estimate]", "-t", "demo", "--limit", "3",
                "--metrics", "psnr", "--output-dir", str(tmp_path), "--run-name", "r",
                "--tracking-uri", uri, "--no-progress"]
        result = CliRunner().invoke(app, base)
        assert result.exit_code == 0, result.output
        assert "nlm[sigma=estimate]" in result.output and "resumed" not in result.output
        payload = json.loads((tmp_path / "r" / "results.json").read_text())
        rows = payload["results"]
        assert set(rows) == {"nlm", "nlm[sigma=estimate]"}
        assert rows["nlm"]["demo"]["psnr"]["mean"] != pytest.approx(
            rows["nlm[sigma=estimate]"]["demo"]["psnr"]["mean"], abs=1e-4)
        configs = {k: v["config"]["sigma"] for k, v in payload["restorers"].items()}
        assert configs == {"nlm": "task", "nlm[sigma=estimate]": "estimate"}
        assert len({u["restorer_id"] for u in payload["units"]}) == 2
        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs([client.get_experiment_by_name("restorebench").experiment_id])
        children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
        assert set(children) == {"nlm@demo", "nlm[sigma=estimate]@demo"}
        assert children["nlm[sigma=estimate]@demo"].data.params["restorer.config.sigma"] == "estimate"
        assert children["nlm@demo"].data.params["restorer.config.sigma"] == "task"

        # drop the last two records (one of each config's... whatever was last) and resume
        lines = (tmp_path / "r" / "samples.jsonl").read_text().splitlines()
        kept = lines[:4]
        (tmp_path / "r" / "samples.jsonl").write_text("\n".join(kept) + "\n")
        before = _records(tmp_path / "r")
        result = CliRunner().invoke(app, [*base, "--resume"])
        assert result.exit_code == 0, result.output
        assert "resumed: 4 image(s)" in result.output
        after = read_samples(tmp_path / "r" / "samples.jsonl")
        keys = [(r["restorer_id"], r["sample_id"]) for r in after]
        assert len(after) == 6 and len(set(keys)) == 6  # nothing twice, nothing missing
        assert all(_records(tmp_path / "r")[k] == v for k, v in before.items())

    def test_whole_units_and_out_of_order_shards_give_identical_results(self, tmp_path):
        def run(name: str, **kw: Any):
            uri = f"sqlite:///{tmp_path / name / 'mlflow.db'}"
            summary = run_benchmark(RunConfig(
                restorers=[("identity", {}), ("test-noisy", {}), ("test-noisy", {"amount": 0.1})],
                tasks=[("test-seeded", {}), ("demo", {})], limit=3, metrics=["psnr", "test-bright"],
                output_dir=tmp_path / name, run_name="run", tracking_uri=uri, show_progress=False,
                device="cpu", **kw))
            return summary.run_dir, uri

        whole, uri_a = run("whole")
        sharded, uri_b = run("sharded", shard_size=1, order=lambda units: list(reversed(units)))
        order_a = [r["sample_id"] for r in read_samples(whole / "samples.jsonl")]
        order_b = [r["sample_id"] for r in read_samples(sharded / "samples.jsonl")]
        assert order_a != order_b  # really executed in another order
        assert _records(whole) == _records(sharded)
        assert _aggregates(whole) == _aggregates(sharded)
        assert _mlflow_structure(uri_a, "run") == _mlflow_structure(uri_b, "run")
        noisy = _aggregates(whole)
        psnr = {k: noisy[k]["demo"]["psnr"]["mean"] for k in ("test-noisy", "test-noisy[amount=0.1]")}
        assert psnr["test-noisy"] > psnr["test-noisy[amount=0.1]"]


class TestSeeds:
    def test_seed_zero_overrides_the_task_seed_and_every_record_carries_its_seeds(self, tmp_path):
        kwargs = dict(restorers=[("test-noisy", {})], tasks=[("test-seeded", {})], metrics=["psnr"],
                      tracking=False, show_progress=False, device="cpu")
        default = run_benchmark(RunConfig(output_dir=tmp_path / "a", **kwargs))
        zero = run_benchmark(RunConfig(output_dir=tmp_path / "b", seed=0, **kwargs))
        task_seed = lambda run: json.loads((run.run_dir / "results.json").read_text())["tasks"][  # noqa: E731
            "test-seeded"]["seed"]
        assert task_seed(default) == 7 and task_seed(zero) == 0
        a, b = (read_samples(r.run_dir / "samples.jsonl") for r in (default, zero))
        assert all(x["degradation_seed"] != y["degradation_seed"] for x, y in zip(a, b, strict=True))
        task = SeededTask()
        task.seed = 0
        assert [r["degradation_seed"] for r in b] == [task.image_seed(r["sample_id"]) for r in b]
        assert len({r["seed"] for r in b}) == 5  # one restorer seed per image

    def test_the_same_seed_gives_the_same_stochastic_output(self, tmp_path):
        kwargs = dict(restorers=[("test-noisy", {})], tasks=[("test-seeded", {})], metrics=["psnr"],
                      tracking=False, show_progress=False, device="cpu", seed=3)
        first = run_benchmark(RunConfig(output_dir=tmp_path / "a", **kwargs))
        second = run_benchmark(RunConfig(output_dir=tmp_path / "b", **kwargs))
        other = run_benchmark(RunConfig(output_dir=tmp_path / "c", **{**kwargs, "seed": 4}))
        psnr = lambda run: [r["metrics"]["psnr"] for r in read_samples(run.run_dir / "samples.jsonl")]  # noqa: E731
        assert psnr(first) == psnr(second) and psnr(first) != psnr(other)


class TestWarmup:
    def test_a_restorer_that_declares_no_warmup_gets_none(self, tmp_path, one_call_per_image):
        CountingWarmup.calls.clear()
        run_benchmark(RunConfig(restorers=[("test-counting", {})], tasks=[("test-seeded", {})],
                                limit=2, metrics=["psnr"], output_dir=tmp_path, tracking=False,
                                show_progress=False, device="cpu"))
        assert CountingWarmup.calls == [(1, 3, 24, 24)] * 2  # two images, no 64x64 crop call

    def test_default_warmup_is_one_untimed_call_on_a_crop(self, tmp_path, monkeypatch,
                                                          one_call_per_image):
        monkeypatch.setattr(CountingWarmup, "warmup", "crop")
        CountingWarmup.calls.clear()
        run_benchmark(RunConfig(restorers=[("test-counting", {})], tasks=[("test-seeded", {})],
                                limit=2, metrics=["psnr"], output_dir=tmp_path, tracking=False,
                                show_progress=False, device="cpu"))
        assert len(CountingWarmup.calls) == 3


class TestMetrics:
    def test_a_dataset_level_metric_flows_into_results_and_mlflow(self, tmp_path):
        from mlflow import MlflowClient

        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        summary = run_benchmark(RunConfig(restorers=[("identity", {})], tasks=[("test-seeded", {})],
                                          metrics=["psnr", "test-bright"], output_dir=tmp_path,
                                          tracking_uri=uri, show_progress=False, device="cpu"))
        records = read_samples(summary.run_dir / "samples.jsonl")
        task = SeededTask()
        expected = sum(bool(task.load(r["sample_id"]).lq.mean() > 0.3) for r in records)
        assert 0 < expected < 5  # the threshold splits the set, so the count is informative
        assert all("test-bright" in r["metric_states"] for r in records)
        payload = json.loads((summary.run_dir / "results.json").read_text())
        agg = payload["results"]["identity"]["test-seeded"]
        assert agg["test-bright"]["mean"] == expected and agg["test-bright"]["kind"] == "dataset"
        assert agg["test-bright.fraction"]["mean"] == pytest.approx(expected / 5)
        assert payload["metrics"]["test-bright"]["kind"] == "dataset"
        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs([client.get_experiment_by_name("restorebench").experiment_id])
        child = next(r for r in runs if r.info.run_name == "identity@test-seeded")
        assert child.data.metrics["test-bright"] == expected

    @pytest.mark.parametrize("name,lower", [("ilniqe", True), ("gmsd", True), ("lpips-vgg", True),
                                            ("piqe", True), ("psnr", False), ("ssim", False),
                                            ("musiq", False), ("niqe", True)])
    def test_direction_comes_from_pyiqa_configs(self, name, lower):
        assert get_metric(name).lower_better is lower

    def test_results_declare_each_metric_direction(self, tmp_path):
        summary = run_benchmark(RunConfig(restorers=[("identity", {})], tasks=[("test-seeded", {})],
                                          limit=1, metrics=["psnr", "gmsd"], output_dir=tmp_path,
                                          tracking=False, show_progress=False, device="cpu"))
        declared = json.loads((summary.run_dir / "results.json").read_text())["metrics"]
        assert declared["gmsd"]["lower_better"] is True and declared["psnr"]["lower_better"] is False


def test_results_of_schema_1_are_read(tmp_path):
    from harness.io.results import read_results

    old = {"schema_version": 1, "results": {"nlm": {"demo": {"psnr": {"mean": 1.0}, "n_ok": 2,
                                                             "n_failed": 1}}}}
    (tmp_path / "results.json").write_text(json.dumps(old))
    payload = read_results(tmp_path / "results.json")
    assert payload["units"][0]["restorer"] == "nlm" and payload["units"][0]["n_recorded"] == 3
    assert payload["metrics"] == {}
