"""``bench train``: the generic loop, its checkpoints, kill-and-resume, and loading in ``bench run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.api.checkpoints import export_weights, read_checkpoint
from harness.api.items import parse_item
from harness.run.plan import RestorerItem
from harness.run.runner import RunConfig, run_benchmark
from harness.train.trainer import Recipe, TrainConfig, _batch_order, train

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TRAIN_SET = "degraded[clean=skimage,degradation=gaussian_noise,severity=2,crop=32,length=24]"
VAL_TASK = "synth:skimage:gaussian_noise@2[crop=48]"
LAUNCH = ("import sys; sys.path.insert(0, {tests!r}); import tiny_trainable; "
          "from harness.cli.main import main; sys.argv = ['bench'] + sys.argv[1:]; main()")


def bench_train(out: Path, *extra: str, delay: float = 0.0) -> subprocess.Popen:
    """``bench train`` in a real process, with the test suite's tiny restorer registered."""
    args = [sys.executable, "-c", LAUNCH.format(tests=str(TESTS)), "train",
            "-r", f"test-tiny-trainable[step_delay={delay}]", "--train-set", TRAIN_SET,
            "--val-task", VAL_TASK, "--val-limit", "1", "--val-every", "6", "--iters", "24",
            "--batch-size", "4", "--lr", "0.003", "--checkpoint-every", "3", "--ema", "0.9",
            "--out", str(out), "--no-tracking", "--no-progress", "--device", "cpu", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_batches_are_a_pure_function_of_seed_and_epoch():
    assert _batch_order(10, 3, seed=1, epoch=2) == _batch_order(10, 3, seed=1, epoch=2)
    assert _batch_order(10, 3, seed=1, epoch=2) != _batch_order(10, 3, seed=1, epoch=3)
    batches = _batch_order(10, 3, seed=0, epoch=0)
    assert len(batches) == 3 and all(len(b) == 3 for b in batches)  # drop-last
    assert len({i for b in batches for i in b}) == 9


def test_killed_and_resumed_training_ends_with_the_uninterrupted_weights(tmp_path):
    reference = bench_train(tmp_path / "reference.pt")
    output, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, output
    assert "iteration 24" in output

    killed_path = tmp_path / "killed.pt"
    victim = bench_train(killed_path, delay=0.15)
    deadline = time.time() + 240
    iteration = 0
    while time.time() < deadline and victim.poll() is None:  # wait for a mid-run checkpoint
        if killed_path.exists():
            try:
                iteration = read_checkpoint(killed_path).training["iteration"]
            except Exception:  # being replaced right now
                iteration = 0
            if 6 <= iteration < 21:
                break
        time.sleep(0.05)
    assert victim.poll() is None, "the run ended before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert 6 <= read_checkpoint(killed_path).training["iteration"] < 24

    resumed = bench_train(killed_path, "--resume", delay=0.15)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert "resumed at" in output and "iteration 24" in output

    a, b = read_checkpoint(tmp_path / "reference.pt"), read_checkpoint(killed_path)
    for weights_a, weights_b in ((a.model, b.model), (a.ema, b.ema)):
        for key, tensor in weights_a["net"].items():
            assert torch.equal(tensor, weights_b["net"][key]), key
    assert a.weights_sha256 == b.weights_sha256
    assert b.provenance["train_set"] == TRAIN_SET and b.provenance["val_task"] == VAL_TASK
    assert "test-tiny-trainable" in b.provenance["command"]
    assert set(b.provenance["last_validation"]) == {"psnr", "ssim"}


def test_resume_refuses_another_recipe(tmp_path):
    first = bench_train(tmp_path / "a.pt")
    assert first.wait(timeout=300) == 0
    other = bench_train(tmp_path / "a.pt", "--resume", "--lr", "0.01")
    output, _ = other.communicate(timeout=300)
    assert other.returncode == 2 and "another recipe" in output


def test_checkpoint_loads_in_bench_run_with_provenance_in_params(tmp_path):
    import tiny_trainable  # noqa: F401  (registers the restorer in this process)
    from mlflow import MlflowClient

    ckpt = tmp_path / "tiny.pt"
    summary = train(TrainConfig(
        restorer=RestorerItem("test-tiny-trainable"), train_set=("degraded", {
            "clean": "skimage", "degradation": "gaussian_noise", "severity": 2, "crop": 32,
            "length": 16}), out=ckpt, recipe=Recipe(iters=8, batch_size=4, lr=3e-3),
        val_task=None, checkpoint_every=4, tracking=False, show_progress=False, device="cpu",
        argv=["bench", "train", "test"]))
    assert summary.iteration == 8 and ckpt.exists()
    sidecar = json.loads(ckpt.with_name(ckpt.name + ".json").read_text())
    assert sidecar["sha256"] == summary.sha256 and sidecar["iteration"] == 8

    shipped = tmp_path / "shipped.pt"
    export_weights(ckpt, shipped)
    assert read_checkpoint(shipped).training is None
    assert shipped.stat().st_size < ckpt.stat().st_size  # no optimiser state

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = run_benchmark(RunConfig(
        restorers=[("test-tiny-trainable", {"checkpoint": str(shipped)}), ("identity", {})],
        tasks=[parse_item(VAL_TASK)], limit=1, metrics=["psnr"], output_dir=tmp_path / "out",
        tracking_uri=uri, show_progress=False, device="cpu"))
    results = json.loads((run.run_dir / "results.json").read_text())
    label = f"test-tiny-trainable[checkpoint={shipped}]"
    weights = results["restorers"][label]["weights"][0]
    assert weights["sha256"] == read_checkpoint(shipped).sha256
    task = parse_item(VAL_TASK)[0]
    trained, identity = (results["results"][k][task]["psnr"]["mean"] for k in (label, "identity"))
    assert trained != pytest.approx(identity, abs=1e-6)  # the trained weights were really used
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("restorebench").experiment_id])
    child = next(r for r in runs if r.info.run_name.startswith("test-tiny-trainable"))
    provenance = json.loads(child.data.params["restorer.checkpoint.provenance"])
    assert provenance["train_set"].startswith("degraded[") and provenance["command"] == "bench train test"
    assert child.data.params["restorer.checkpoint.weights_sha256"] == read_checkpoint(shipped).weights_sha256


def test_a_damaged_checkpoint_is_refused(tmp_path):
    import tiny_trainable  # noqa: F401

    ckpt = tmp_path / "tiny.pt"
    train(TrainConfig(restorer=RestorerItem("test-tiny-trainable"), train_set=("degraded", {
        "clean": "skimage", "degradation": "gaussian_noise", "severity": 1, "crop": 16, "length": 8}),
        out=ckpt, recipe=Recipe(iters=2, batch_size=4), tracking=False, show_progress=False,
        device="cpu"))
    payload = torch.load(ckpt, weights_only=True)
    payload["model"]["net"]["body.0.bias"] += 1.0
    torch.save(payload, ckpt)
    with pytest.raises(ValueError, match="damaged"):
        read_checkpoint(ckpt)
    with pytest.raises(FileNotFoundError, match="bench train"):
        read_checkpoint(tmp_path / "absent.pt")


def test_untrainable_restorer_and_unknown_training_set_are_clear_errors(tmp_path):
    from harness.api.registry import UnknownNameError

    with pytest.raises(ValueError, match="not trainable"):
        train(TrainConfig(restorer=RestorerItem("identity"), train_set=("degraded", {
            "clean": "skimage", "crop": 16, "length": 8}), out=tmp_path / "x.pt",
            tracking=False, show_progress=False, device="cpu"))
    with pytest.raises(UnknownNameError, match="did you mean|Did you mean"):
        train(TrainConfig(restorer=RestorerItem("identity"), train_set=("degradd", {}),
                          out=tmp_path / "y.pt", tracking=False, show_progress=False, device="cpu"))


def test_bad_recipe_values_are_clear_errors():
    for kwargs, message in (({"amp": "half"}, "choose auto"), ({"iters": 0}, "--iters"),
                            ({"batch_size": 0}, "--batch-size"), ({"lr": -1.0}, "--lr")):
        with pytest.raises(ValueError, match=message):
            Recipe(**kwargs)


def _tiny_training(tmp_path: Path, restorer: str, **config) -> TrainConfig:
    return TrainConfig(
        restorer=RestorerItem(restorer, {"restore_noise": 0.05}), train_set=("degraded", {
            "clean": "skimage", "degradation": "gaussian_noise", "severity": 2, "crop": 32,
            "length": 8}), out=tmp_path / "tiny.pt", recipe=Recipe(iters=4, batch_size=4, lr=3e-3),
        val_task=parse_item(VAL_TASK), val_every=4, val_limit=2, checkpoint_every=4,
        show_progress=False, device="cpu", seed=5, argv=["bench", "train", "test"], **config)


def test_validation_of_a_stochastic_restorer_is_what_bench_run_gives(tmp_path):
    """The trainer validates through ``bench run``'s executor: same per-image seeds (task id),
    so ``bench run --seed SEED --limit VAL_LIMIT`` on the checkpoint reproduces its numbers."""
    import numpy as np
    import tiny_trainable  # noqa: F401

    summary = train(_tiny_training(tmp_path, "test-tiny-trainable", tracking=False))
    run = run_benchmark(RunConfig(
        restorers=[("test-tiny-trainable", {"checkpoint": str(summary.checkpoint), "restore_noise": 0.05})],
        tasks=[parse_item(VAL_TASK)], limit=2, seed=5, metrics=["psnr", "ssim"],
        output_dir=tmp_path / "out", tracking=False, show_progress=False, device="cpu"))
    records = [json.loads(line) for line in (run.run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    for metric in ("psnr", "ssim"):
        assert summary.last_validation[metric] == float(np.mean([r["metrics"][metric] for r in records]))
    # the noise is really drawn per image: another seed gives other numbers
    other = train(replace(_tiny_training(tmp_path, "test-tiny-trainable", tracking=False),
                          out=tmp_path / "other.pt", seed=6))
    assert other.last_validation["psnr"] != summary.last_validation["psnr"]


def test_training_logs_its_mlflow_run_through_the_tracking_process(tmp_path):
    import tiny_trainable  # noqa: F401
    from mlflow import MlflowClient

    summary = train(_tiny_training(tmp_path, "test-tiny-trainable", output_dir=tmp_path,
                                   experiment="train-test"))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("train-test").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("train:test-tiny-trainable")
    # named by restorer config and training set: two trainings on different sets differ
    assert run.info.run_name.endswith(" on " + run.data.params["train_set"])
    assert "degradation=gaussian_noise" in run.info.run_name
    assert run.data.tags["kind"] == "train" and run.data.params["recipe.iters"] == "4"
    assert run.data.metrics["val_psnr"] == pytest.approx(summary.last_validation["psnr"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "l1")] == [1, 2, 3, 4]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["tiny.pt.json"]


def test_a_failed_training_ends_its_mlflow_run_failed(tmp_path):
    import tiny_trainable  # noqa: F401
    from mlflow import MlflowClient

    config = _tiny_training(tmp_path, "test-tiny-trainable", output_dir=tmp_path, experiment="e")
    config.recipe.lr = float("inf")  # the first step's weights become inf: the loss is not finite
    with pytest.raises(FloatingPointError):
        train(config)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    assert run.info.status == "FAILED"


def test_training_without_bars_prints_loss_and_validation_lines(tmp_path, capsys):
    """Finding 5: ``bench train --no-progress`` used to print nothing until it ended."""
    import tiny_trainable  # noqa: F401

    config = replace(_tiny_training(tmp_path, "test-tiny-trainable", tracking=False), log_every=2)
    train(config)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("iter ")]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4", "4/4"]  # losses, losses, validation
    assert "loss " in lines[0] and lines[0].endswith("s/it") and "val_psnr " in lines[2]
