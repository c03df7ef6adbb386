"""The evaluation loop: determinism, failures, resume, timing, devices."""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.api.restorer import Restorer, register_restorer
from harness.io.results import read_results, read_samples
from harness.run.runner import RunConfig, resolve_device, run_benchmark
from tests.probes import in_memory_probe


def _config(tmp_path: Path, restorers, tasks, **kw) -> RunConfig:
    return RunConfig(restorers=[(r, {}) if isinstance(r, str) else r for r in restorers],
                     tasks=[(t, {}) if isinstance(t, str) else t for t in tasks],
                     device="cpu", output_dir=tmp_path / "results", tracking=False,
                     show_progress=False, argv=["test"], **kw)


@register_restorer("t-slow-first-call")
class SlowFirstCall(Restorer):
    """Sleeps on its very first call only, like CUDA/cuDNN initialisation."""

    description = "test: slow warm-up"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def _restore(self, lq, meta):
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.5)
        return lq


INTERRUPT_AFTER = {"n": 10**9}


@register_restorer("t-interrupted")
class InterruptedRestorer(Restorer):
    """Raises KeyboardInterrupt (Ctrl-C) once it has restored INTERRUPT_AFTER images."""

    description = "test: interrupted run"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def _restore(self, lq, meta):
        if lq.shape[-1] > 64 and not in_memory_probe():  # skip the warm-up crop and the probes
            self.calls += 1
            if self.calls > INTERRUPT_AFTER["n"]:
                raise KeyboardInterrupt
        return lq


@register_restorer("t-wrong-shape")
class WrongShape(Restorer):
    description = "test: returns a smaller image"

    def restore(self, lq, meta=None):
        return lq[..., :-1, :]

    def _restore(self, lq, meta):
        raise AssertionError("unused")


def _independent_identity_psnr(data_root: Path, image_id: str, sigma: float = 25.0) -> float:
    """Kodak image + the task's documented noise draw, scored as the task's conventions say."""
    clean = np.asarray(Image.open(data_root / "denoise" / "kodak24" / f"{image_id}.png")
                       .convert("RGB"), dtype=np.float32) / 255.0
    digest = hashlib.sha256(f"kodak24-awgn25|0|{image_id}".encode()).digest()
    seed = int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
    noise = torch.randn((3,) + clean.shape[:2], generator=torch.Generator().manual_seed(seed))
    noisy = clean + (noise * (sigma / 255.0)).permute(1, 2, 0).numpy()
    output = np.round(np.clip(noisy, 0, 1) * 255.0) / 255.0
    mse = np.mean((output.astype(np.float64) - clean.astype(np.float64)) ** 2)
    return 10 * math.log10(1.0 / mse)


def test_kodak_identity_is_deterministic_and_matches_independent_psnr(tmp_path, with_data):
    runs = []
    for name in ("first", "second"):
        summary = run_benchmark(_config(tmp_path, ["identity"], ["kodak24-awgn25"], limit=3,
                                        metrics=["psnr", "ssim"], run_name=name))
        runs.append(read_samples(summary.run_dir / "samples.jsonl"))
    values = [[(r["sample_id"], r["metrics"]) for r in records] for records in runs]
    assert values[0] == values[1]
    assert [r["sample_id"] for r in runs[0]] == ["kodim01", "kodim02", "kodim03"]
    for record in runs[0]:
        expected = _independent_identity_psnr(with_data, record["sample_id"])
        assert record["metrics"]["psnr"] == pytest.approx(expected, abs=1e-3)
        assert 20.0 < record["metrics"]["psnr"] < 21.5
        assert record["degradation"]["sigma"] == 25.0 and record["degradation"]["clip"] is False


def test_reference_noise_reproduces_numpy_legacy_draw(with_data):
    from harness.api.task import build_task

    task = build_task("kodak24-awgn25", reference_noise=True)
    sample = task.load("kodim01")
    clean = sample.gt.permute(1, 2, 0).numpy().copy()
    np.random.seed(seed=0)
    clean += np.random.normal(0, 25 / 255.0, clean.shape)
    assert np.array_equal(sample.lq.permute(1, 2, 0).numpy(), clean.astype(np.float32))


def test_corrupt_image_is_recorded_as_failed_and_the_rest_evaluated(tmp_path):
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    lq.mkdir()
    gt.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        image = (rng.random((32, 40, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(lq / f"{name}.png")
        Image.fromarray(image).save(gt / f"{name}.png")
    (lq / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    summary = run_benchmark(_config(tmp_path, ["identity"],
                                    [("folder", {"lq": str(lq), "gt": str(gt)})],
                                    metrics=["psnr"]))
    records = {r["sample_id"]: r for r in read_samples(summary.run_dir / "samples.jsonl")}
    assert records["b"]["status"] == "failed"
    assert "cannot decode image" in records["b"]["error"] and "b.png" in records["b"]["error"]
    assert records["a"]["status"] == records["c"]["status"] == "ok"
    assert summary.n_failed == 1
    results = read_results(summary.run_dir / "results.json")
    assert results["results"]["identity"]["folder"]["n_failed"] == 1
    assert results["results"]["identity"]["folder"]["psnr"]["n"] == 2


def test_interrupted_run_resumes_with_each_image_once(tmp_path, one_call_per_image):
    INTERRUPT_AFTER["n"] = 2
    config = _config(tmp_path, ["t-interrupted"], ["demo"], metrics=["psnr"], run_name="r")
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(config)
    samples = tmp_path / "results" / "r" / "samples.jsonl"
    assert len(read_samples(samples)) == 2
    with open(samples, "a") as fh:  # a crash in the middle of a write
        fh.write('{"sample_id": "half-writ')
    INTERRUPT_AFTER["n"] = 10**9
    config.resume = True
    config.run_name = None  # resume picks the latest run
    summary = run_benchmark(config)
    ids = [r["sample_id"] for r in read_samples(samples)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 5
    assert summary.n_skipped == 2
    assert all(json.loads(line) for line in samples.read_text().splitlines())
    results = read_results(summary.run_dir / "results.json")
    assert results["results"]["t-interrupted"]["demo"]["psnr"]["n"] == 5


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    config = _config(tmp_path, ["identity"], ["demo"], limit=1, metrics=["psnr"], run_name="x")
    run_benchmark(config)
    with pytest.raises(FileExistsError, match="--resume"):
        run_benchmark(config)


def test_warm_up_is_excluded_from_latency(tmp_path):
    summary = run_benchmark(_config(tmp_path, ["t-slow-first-call"], ["demo"], limit=2,
                                    metrics=["psnr"]))
    records = read_samples(summary.run_dir / "samples.jsonl")
    assert all(r["latency_ms"] < 400 for r in records)
    assert all(r["peak_mem_mb"] >= 0 and r["peak_mem_kind"].startswith("cpu heap in use")
               for r in records)


def test_wrong_output_shape_fails_the_image_not_the_run(tmp_path):
    summary = run_benchmark(_config(tmp_path, ["t-wrong-shape"], ["demo"], limit=2,
                                    metrics=["psnr"]))
    records = read_samples(summary.run_dir / "samples.jsonl")
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert "returned shape" in records[0]["error"]


def test_missing_data_fails_before_any_model_is_loaded(tmp_path, monkeypatch):
    from harness.api.task import DataMissingError

    monkeypatch.setenv("BENCH_DATA_ROOT", str(tmp_path / "nothing"))
    loaded = []
    monkeypatch.setattr(Restorer, "load", lambda self, device: loaded.append(self))
    with pytest.raises(DataMissingError, match="kodak24"):
        run_benchmark(_config(tmp_path, ["identity"], ["demo", "kodak24-awgn25"]))
    assert loaded == []


def test_cuda_request_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@register_restorer("t-needs-grad")
class NeedsGrad(Restorer):
    """A test-time optimiser: one gradient step on a total-variation loss."""

    description = "test: differentiates at restore time"
    needs_grad = True

    def _restore(self, lq, meta):
        x = lq.detach().clone().requires_grad_(True)
        loss = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
        loss.backward()
        return (x - 0.1 * x.grad.sign()).detach()


def test_restorers_that_need_gradients_get_them(tmp_path):
    summary = run_benchmark(_config(tmp_path, ["t-needs-grad", "identity"], ["demo"], limit=1,
                                    metrics=["psnr"]))
    records = read_samples(summary.run_dir / "samples.jsonl")
    assert [r["status"] for r in records] == ["ok", "ok"], records
    assert records[0]["metrics"]["psnr"] != records[1]["metrics"]["psnr"]


def test_missing_weights_stop_the_run_before_any_restorer_runs(tmp_path, monkeypatch):
    """A weights file absent for the second restorer must not cost the first one's run."""
    from harness.assets.cache import AssetMissingError

    restored = []
    monkeypatch.setattr(Restorer, "load", lambda self, device: restored.append(self.name))
    with pytest.raises(AssetMissingError, match="bench assets import"):
        run_benchmark(_config(tmp_path, ["identity", "zero-dce"], ["demo"], metrics=["psnr"]))
    assert restored == []
    assert not list((tmp_path / "results").glob("*/samples.jsonl"))
