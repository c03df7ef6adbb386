"""``bench train`` early stopping, several validation tasks and the recipe keys that say where a
training logs: the count and its resume, the best weights, the stop reason, clear errors."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_training_resume import VAL_TASK, _config, _interrupted, store_template  # noqa: F401
from typer.testing import CliRunner

from harness.api.checkpoints import read_checkpoint
from harness.api.items import parse_item
from harness.cli.train import recipe_options, train_configs
from harness.train.early_stop import EarlyStopper, best_path
from harness.train.recipe import EarlyStopRule
from harness.train.trainer import Trainer, train

OTHER_TASK = "synth:skimage:gaussian_noise@1[crop=48]"
runner = CliRunner()


def test_the_count_of_validations_without_improvement():
    rule = EarlyStopRule("psnr", patience=2, min_delta=0.5)
    stopper = EarlyStopper(rule, "val_psnr", lower_better=False)
    improved = [stopper.update(value, step) for step, value in
                ((1, 10.0), (2, 10.4), (3, 11.0), (4, 11.2), (5, math.nan))]
    # 10.4 is not 0.5 above 10.0; 11.0 is (the count restarts); 11.2 and NaN are not
    assert improved == [True, False, True, False, False] and stopper.stopped
    assert (stopper.best, stopper.best_step, stopper.since_best) == (11.0, 3, 2)
    assert "val_psnr did not improve by more than 0.5" in stopper.reason()

    lower = EarlyStopper(EarlyStopRule("lpips", patience=1), "val_lpips", lower_better=True)
    assert [lower.update(v, s) for s, v in ((1, 0.3), (2, 0.2), (3, 0.25))] == [True, True, False]
    assert lower.best == 0.2 and lower.stopped

    # the checkpoint's count continues; a larger patience un-stops it; another metric restarts it
    again = EarlyStopper(rule, "val_psnr", lower_better=False)
    assert again.restore(stopper.state()) and again.stopped and again.best_step == 3
    patient = EarlyStopper(replace(rule, patience=3), "val_psnr", lower_better=False)
    assert patient.restore(stopper.state()) and not patient.stopped
    other = EarlyStopper(rule, "val_ssim", lower_better=False)
    assert not other.restore(stopper.state()) and other.best is None


def _stopping(tmp_path: Path, **changes):
    """Validation every 2 iterations, and an improvement of more than 100 dB asked for: the first
    validation (iteration 2) is the best, the second (iteration 4) stops the training."""
    return _config(tmp_path, early_stop=EarlyStopRule("psnr", patience=1, min_delta=100.0),
                   val_every=2, checkpoint_every=3, **changes)


@pytest.mark.usefixtures("store_template")
def test_early_stop_writes_the_checkpoint_at_the_stop_and_keeps_the_best_weights(tmp_path, monkeypatch):
    config = _stopping(tmp_path, tracking=True, output_dir=tmp_path / "store")
    summary = train(config)
    assert summary.iteration == 4 and "val_psnr did not improve" in summary.stopped_early
    checkpoint = read_checkpoint(config.out)  # written at the stop, off the checkpoint_every grid
    assert checkpoint.training["iteration"] == 4
    state = checkpoint.training["early_stop"]
    assert (state["best_step"], state["since_best"], state["key"]) == (2, 1, "val_psnr")

    best = read_checkpoint(summary.best)
    assert summary.best == best_path(config.out) == tmp_path / "tiny.best.pt"
    assert best.training is None and best.provenance["best"]["iteration"] == 2
    assert best.provenance["best"]["value"] == state["best"]
    sidecar = json.loads(summary.best.with_name(summary.best.name + ".json").read_text())
    assert sidecar["provenance"]["best"]["iteration"] == 2
    # they are the EMA weights of iteration 2: an uninterrupted run's checkpoint there has them
    _interrupted(_config(tmp_path, "at2.pt"), 2, monkeypatch)
    for key, tensor in read_checkpoint(tmp_path / "at2.pt").ema["net"].items():
        assert torch.equal(tensor, best.model["net"][key]), key

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("resume-test").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["stop_reason"] == summary.stopped_early
    assert run.data.params["early_stop.patience"] == "1"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "l1")] == [1, 2, 3, 4]


@pytest.mark.usefixtures("store_template")
def test_a_stopped_training_resumed_from_its_recipe_says_so_and_exits_0(tmp_path):
    """The recipe alone (``output_dir``, ``experiment`` in it) reproduces the training; resumed
    after its early stop, ``bench train --recipe R --resume`` trains nothing."""
    from harness.cli.main import app

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "restorer: test-tiny-trainable\n"
        "train_set: 'degraded[clean=skimage,degradation=gaussian_noise,severity=2,crop=32,length=8]'\n"
        f"val_task: '{VAL_TASK}'\nval_limit: 1\nval_every: 2\nlr: 0.003\nbatch_size: 4\n"
        f"iters: 12\ncheckpoint_every: 3\nema_decay: 0.9\nout: {tmp_path / 'r.pt'}\n"
        f"output_dir: {tmp_path / 'logs'}\nexperiment: from-recipe\n"
        "early_stop: {metric: val_psnr, patience: 1, min_delta: 100}\n", encoding="utf-8")
    [config] = train_configs(recipe_options(recipe, {}), device="cpu", show_progress=False)
    assert (config.output_dir, config.experiment) == (tmp_path / "logs", "from-recipe")
    assert train(config).iteration == 4
    sha = read_checkpoint(tmp_path / "r.pt").sha256
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--resume", "--no-progress",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "stopped early at iteration 4; nothing to train" in result.output
    assert read_checkpoint(tmp_path / "r.pt").sha256 == sha
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'logs' / 'mlflow.db'}")
    assert len(client.search_runs([client.get_experiment_by_name("from-recipe").experiment_id])) == 1
    # a command-line flag wins over the recipe
    [flagged] = train_configs(recipe_options(recipe, {"experiment": "flag"}), device="cpu")
    assert flagged.experiment == "flag" and flagged.output_dir == tmp_path / "logs"


def test_several_validation_tasks_are_logged_per_task_and_one_drives_early_stopping(tmp_path):
    single = train(_config(tmp_path, "single.pt", recipe=replace(_config(tmp_path).recipe, iters=4)))
    config = _config(tmp_path, "both.pt", recipe=replace(_config(tmp_path).recipe, iters=4),
                     val_tasks=[parse_item(OTHER_TASK)],
                     early_stop=EarlyStopRule("psnr", patience=3, task=OTHER_TASK))
    both = train(config)
    first, second = "synth:skimage:gaussian_noise_2", "synth:skimage:gaussian_noise_1"
    assert set(both.last_validation) == {f"{t}_{m}" for t in (first, second) for m in ("psnr", "ssim")}
    # validation changes nothing in training: the first task's numbers are the single-task run's
    assert both.last_validation[f"{first}_psnr"] == single.last_validation["psnr"]
    assert read_checkpoint(config.out).training["early_stop"]["key"] == f"val_{second}_psnr"


def test_bad_early_stop_and_location_keys_are_one_line_errors(tmp_path):
    from harness.cli.main import app

    config = _config(tmp_path)
    for rule, message in ((EarlyStopRule("niqe", patience=2), "not validated; add it to val_metrics"),
                          (EarlyStopRule("psnr", patience=2, task="hsts"), "not a validation task")):
        with pytest.raises(ValueError, match=message):
            Trainer(replace(config, early_stop=rule))
    with pytest.raises(ValueError, match="needs a validation task"):
        Trainer(replace(config, val_task=None, early_stop=EarlyStopRule("psnr", patience=2)))
    for value, message in (({"metric": "psnr"}, "patience required"),
                           ({"metric": "psnr", "patience": 0}, "integer >= 1"),
                           ({"metric": "psnr", "patience": 2, "min_delta": -1}, "finite number >= 0"),
                           ("psnr", "is a mapping")):
        with pytest.raises(ValueError, match=message):
            EarlyStopRule.parse(value)
    base = {"restorer": "test-tiny-trainable", "train_set": "degraded", "out": str(tmp_path / "x.pt"),
            "val_task": VAL_TASK}
    for extra, message in (({"experiment": 5}, "experiment 5: give a non-empty string"),
                           ({"output_dir": ""}, "output_dir '': give a non-empty string"),
                           ({"val_tasks": [VAL_TASK]}, "given twice"),
                           ({"val_tasks": [3]}, "list of task specs")):
        with pytest.raises(ValueError, match=message):
            train_configs({**base, **extra}, device="cpu")
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("\n".join(f"{k}: '{v}'" for k, v in base.items()) + "\nexperiment: 5\n")
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--device", "cpu"])
    assert result.exit_code == 2 and "experiment 5" in result.output
    assert "Traceback" not in result.output
