"""``bench train --resume`` across code versions and MLflow: a checkpoint in the format the code
before early stopping and run records wrote still resumes (to the uninterrupted weights), and one
training logs into one MLflow run however often it is interrupted."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.api.checkpoints import read_checkpoint, write_checkpoint
from harness.api.items import parse_item
from harness.run.plan import RestorerItem
from harness.train.mlflow_run import record_path
from harness.train.trainer import Recipe, TrainConfig, Trainer, train

VAL_TASK = "synth:skimage:gaussian_noise@2[crop=48]"
#: the ``training`` entry as the trainer wrote it before ``mlflow`` and ``early_stop`` existed
#: (restorebench 1426462): such checkpoints are resumed by the running all-in-one training
MAIN_TRAINING_KEYS = {"optimizer", "scheduler", "scaler", "rng", "iteration", "total_iters", "seconds",
                      "ema_full", "identity"}
#: the recipe identity that code wrote for :func:`_config` (computed with it): unchanged, or every
#: existing checkpoint would be refused as "trained with another recipe"
MAIN_IDENTITY = (
    '{"config": {"checkpoint": null, "dropout_noise": 0.01, "restore_noise": 0.0, "step_delay": 0.0, '
    '"width": 8}, "recipe": {"amp": "auto", "batch_size": 4, "betas": [0.9, 0.999], "ema_decay": 0.9, '
    '"grad_clip": 1.0, "iters": 8, "lr": 0.003, "min_lr_ratio": 0.01, "num_workers": 0, '
    '"warmup_iters": 0, "weight_decay": 0.0001}, "restorer": "test-tiny-trainable", "seed": 0, '
    '"train_set": "degraded[clean=skimage,degradation=gaussian_noise,severity=2,crop=32,length=8]"}')


_TEMPLATE: list[Path] = []


@pytest.fixture
def store_template(tmp_path_factory) -> None:
    """This test's BENCH_HOME holds an empty MLflow store built once per session (its migrations
    take seconds, and each test has its own BENCH_HOME, where
    :func:`~harness.tracking.store.ensure_sqlite_store` looks for it), so its stores are copies."""
    import os
    import shutil

    from harness.tracking.store import ensure_sqlite_store

    own = os.environ["BENCH_HOME"]
    if not _TEMPLATE:
        home = tmp_path_factory.mktemp("store_home")
        os.environ["BENCH_HOME"] = str(home)
        try:
            ensure_sqlite_store(home / "seed.db")
        finally:
            os.environ["BENCH_HOME"] = own
        _TEMPLATE.extend((home / "mlflow-store-template").glob("*.db"))
    target = Path(own) / "mlflow-store-template" / _TEMPLATE[0].name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE[0], target)


def _config(tmp_path: Path, name: str = "tiny.pt", **changes) -> TrainConfig:
    import tiny_trainable  # noqa: F401  (registers the restorer)

    config = TrainConfig(
        restorer=RestorerItem("test-tiny-trainable"), train_set=("degraded", {
            "clean": "skimage", "degradation": "gaussian_noise", "severity": 2, "crop": 32,
            "length": 8}), out=tmp_path / name, recipe=Recipe(iters=8, batch_size=4, lr=3e-3, ema_decay=0.9),
        val_task=parse_item(VAL_TASK), val_every=4, val_limit=1, checkpoint_every=2, log_every=1,
        show_progress=False, device="cpu", argv=["bench", "train", "test"], tracking=False,
        output_dir=tmp_path, experiment="resume-test")
    return replace(config, **changes)


def _interrupted(config: TrainConfig, at: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train until iteration ``at`` is done (a checkpoint is written there), then Ctrl-C."""
    step = Trainer._step

    def stepping(self, restorer, state, lq, gt, index):
        if index == at:
            raise KeyboardInterrupt
        return step(self, restorer, state, lq, gt, index)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_step", stepping)
        with pytest.raises(KeyboardInterrupt):
            train(config)
    assert read_checkpoint(config.out).training["iteration"] == at


def _as_main_wrote_it(path: Path) -> None:
    """Rewrite a checkpoint in the format of the code before this change: its ``training``
    entry holds exactly :data:`MAIN_TRAINING_KEYS`, its identity is :data:`MAIN_IDENTITY`."""
    payload = torch.load(path, weights_only=True)
    training = {k: v for k, v in payload["training"].items() if k in MAIN_TRAINING_KEYS}
    assert set(training) == MAIN_TRAINING_KEYS and training["identity"] == MAIN_IDENTITY
    write_checkpoint(path, restorer=payload["restorer"], config=payload["config"], model=payload["model"],
                     ema=payload["ema"], training=training, provenance=payload["provenance"])
    record_path(path).unlink(missing_ok=True)  # that code wrote no run record


def test_a_checkpoint_of_the_previous_format_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    from harness.train.recipe import EarlyStopRule

    reference = train(_config(tmp_path, "reference.pt"))
    config = _config(tmp_path)
    _interrupted(config, 4, monkeypatch)
    _as_main_wrote_it(config.out)
    # resumed by today's code, with early stopping newly switched on (it is no part of the identity)
    rule = EarlyStopRule("psnr", patience=5)
    summary = train(replace(config, resume=True, early_stop=rule))
    assert summary.resumed_from == 4 and summary.iteration == 8 and summary.stopped_early is None
    a, b = read_checkpoint(reference.checkpoint), read_checkpoint(config.out)
    for key, tensor in a.ema["net"].items():
        assert torch.equal(tensor, b.ema["net"][key]), key
    # the count starts at the resume: one validation (iteration 8) since, and it is the best
    assert b.training["early_stop"]["best_step"] == 8 and b.training["early_stop"]["since_best"] == 0
    assert b.training["early_stop"]["best"] == pytest.approx(summary.last_validation["psnr"])


def _runs(tmp_path: Path, store: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / store / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("resume-test").experiment_id])


@pytest.mark.usefixtures("store_template")
def test_one_training_logs_one_mlflow_run_across_resumes(tmp_path, monkeypatch):
    """Interrupted in store ``first``; resumed with another store, where that run is not: a new
    run there, tagged with the old id; interrupted and resumed again: that same run, finished,
    every iteration logged once at its own step. The checkpoint alone names the run."""
    config = _config(tmp_path, tracking=True, output_dir=tmp_path / "first",
                     recipe=Recipe(iters=6, batch_size=4, lr=3e-3), val_every=3)
    _interrupted(config, 2, monkeypatch)
    _, (first,) = _runs(tmp_path, "first")
    assert first.info.status == "KILLED"
    assert read_checkpoint(config.out).training["mlflow"]["run_id"] == first.info.run_id

    moved = replace(config, resume=True, output_dir=tmp_path / "second")
    _interrupted(moved, 4, monkeypatch)
    _, (second,) = _runs(tmp_path, "second")
    assert second.info.run_id != first.info.run_id and second.data.tags["resumed_from"] == first.info.run_id
    assert read_checkpoint(config.out).training["mlflow"]["run_id"] == second.info.run_id
    record_path(config.out).unlink()  # the checkpoint alone is enough to find the run
    train(moved)
    client, (run,) = _runs(tmp_path, "second")
    assert run.info.run_id == second.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "1"
    assert run.data.params["resumed_at"] == "2"  # the first attempt's params are kept
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "l1")) == [3, 4, 5, 6]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_psnr")] == [3, 6]
    stored = json.loads(record_path(config.out).read_text())
    assert stored["run_id"] == run.info.run_id == read_checkpoint(config.out).training["mlflow"]["run_id"]
