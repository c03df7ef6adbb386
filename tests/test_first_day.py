"""The README's train-on-one / test-on-others workflow, end to end, as a new user runs it:
two ``bench train`` runs of a tiny UnfoldLDM on different training sets, an OOD study that names
the checkpoints only by path, and a ``bench run`` of one of them, all under one output root and
so in one MLflow store (Done-when 2 of "A researcher's first day"; findings 1 and 2).

Kept small (config=tiny, stages=1, prior=false, 2 iterations, one 48×48 image per task): it
checks that the pieces fit, not what training achieves."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from harness.cli.main import app

TRAIN = "degraded[clean=skimage,degradation={d},severity=2,crop=32,length=4]"
TASKS = ("synth:skimage:gaussian_noise@2[crop=48]", "synth:skimage:gaussian_blur@2[crop=48]")


def bench(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _runs(store: Path) -> list[tuple[str, str, str | None, str | None]]:
    """(name, status, parent id, own id) of every run in the sqlite store, oldest first."""
    with sqlite3.connect(store) as db:
        return list(db.execute(
            "select r.name, r.status, (select value from tags t where t.run_uuid = r.run_uuid "
            "and t.key = 'mlflow.parentRunId'), r.run_uuid from runs r order by r.start_time"))


def test_train_on_one_test_on_others_with_checkpoints_named_by_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "results"
    for degradation in ("gaussian_noise", "gaussian_blur"):
        bench("train", "-r", "unfoldldm[config=tiny,prior=false,stages=1]", "--train-set",
              TRAIN.format(d=degradation), "--iters", "2", "--batch-size", "2",
              "--out", f"{degradation}.pt", "--output-dir", str(root), "--device", "cpu",
              "--no-progress")
    # finding 1: the paths alone; the checkpoints say config=tiny, prior=false, stages=1
    bench("study", "ood", "-r", "identity", "-r", "unfoldldm[checkpoint=gaussian_noise.pt]@noise",
          "-r", "unfoldldm[checkpoint=gaussian_blur.pt]@blur", *[a for t in TASKS for a in ("-t", t)],
          "--limit", "1", "--metrics", "psnr", "--output-dir", str(root), "--name", "ood",
          "--device", "cpu", "--no-progress")
    bench("run", "-r", "unfoldldm[checkpoint=gaussian_noise.pt]", "-t", TASKS[0], "--limit", "1",
          "--metrics", "psnr", "--output-dir", str(root), "--device", "cpu", "--no-progress")

    table = pd.read_csv(root / "studies" / "ood" / "ood_psnr.csv", index_col="restorer")
    assert list(table.index) == ["identity", "unfoldldm (trained on noise)",
                                 "unfoldldm (trained on blur)"]
    assert table.iloc[1, 0] != table.iloc[2, 0]  # two different checkpoints were evaluated

    # finding 2: one store for training, the study and the run; names say what ran
    assert sorted(p.name for p in root.glob("**/mlflow.db")) == ["mlflow.db"]
    runs = _runs(root / "mlflow.db")
    assert all(status == "FINISHED" for _, status, _, _ in runs)
    names = [name for name, _, _, _ in runs]
    trainings = [n for n in names if n.startswith("train:")]
    assert len(set(trainings)) == 2 and all(
        n.startswith("train:unfoldldm[config=tiny,prior=false,stages=1] on degraded[") for n in trainings)
    study = next(r for r in runs if r[0].startswith("ood study: identity, unfoldldm (trained on noise)"))
    study_run = next(r for r in runs if r[2] == study[3])  # the study's run, under the study
    assert study_run[0] == ("identity, unfoldldm (trained on noise), unfoldldm (trained on blur) @ "
                            "synth:skimage:gaussian_noise@2, synth:skimage:gaussian_blur@2")
    assert sum(r[2] == study_run[3] for r in runs) == 6  # 3 restorers × 2 tasks
    assert "unfoldldm[checkpoint=gaussian_noise.pt] @ synth:skimage:gaussian_noise@2" in names


def test_each_progress_bar_has_its_own_clock_and_rate():
    """Finding 5: a bar's time was the run's (a 9-s pair looked like 1:32). A pair's clock now
    starts with its first image; sleeps give the rates (bounds wide for a loaded machine)."""
    import io
    import time

    from rich.console import Console

    from harness.run.runner import _progress

    with _progress(True, Console(file=io.StringIO(), width=150)) as progress:
        slow, fast = progress.add_task("slow @ t", total=3), progress.add_task("fast @ t", total=3)
        for _ in range(3):
            time.sleep(0.3)
            progress.advance(slow)
        for _ in range(3):  # queued behind slow for ~0.9 s, then quick
            time.sleep(0.02)
            progress.advance(fast)
        tasks = {name: progress._tasks[task_id] for name, task_id in (("slow", slow), ("fast", fast))}
    assert tasks["fast"].elapsed < 0.4 < 0.55 < tasks["slow"].elapsed
    assert tasks["fast"].fields["rate"].endswith(" img/s")
    assert float(tasks["fast"].fields["rate"].split()[0]) > float(tasks["slow"].fields["rate"].split()[0])
