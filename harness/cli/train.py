"""``bench train``: train restorers with the generic loop of :mod:`harness.train.trainer`.

Examples::

    bench train -r 'unfoldldm[config=small]' \\
        --train-set 'degraded[clean=cbsd68,degradation=noise+blur+lowlight,severity=1-5]' \\
        --val-task kodak24-mixed-s3 --iters 20000 --out checkpoints/unfoldldm-small.pt
    bench train ... --resume            # continue from --out after a kill
    bench train --recipe restorers/unfoldldm/recipes/small-cpu.yaml   # everything from a file
    bench train --recipe ... --check    # validate recipe, data and restorer; do not train

A recipe file (YAML or JSON) holds the same keys as the options (``restorer``, ``train_set``,
``val_task``, ``iters``, ``batch_size``, ``lr``, ..., and ``output_dir``, ``experiment``,
``tracking_uri``: where MLflow logs); options given on the command line win. Recipe-only keys:
``progressive`` (``[[iters, crop, batch], ...]``, see :mod:`harness.train.data`), ``min_lr_ratio``
(the cosine's floor as a fraction of ``lr``, default 0.01), ``val_tasks`` (more validation tasks,
each logged as ``val_<task>_<metric>``) and ``early_stop`` (``{metric: psnr, patience: 4,
min_delta: 0.02, task: ...}``, see :mod:`harness.train.early_stop`). See :mod:`harness.train.options`.
With several ``-r``, ``--out`` is a folder and each restorer gets ``<folder>/<label>.pt``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.common import Threads

# the recipe's parsing lives in the train layer; these names stay importable from here
from harness.train.options import OPTION_KEYS, RECIPE_ONLY, recipe_options, train_configs

__all__ = ["OPTION_KEYS", "RECIPE_ONLY", "recipe_options", "train_command", "train_configs"]


def train_command(
    restorer: Annotated[list[str] | None, typer.Option(
        "--restorer", "-r", help="Trainable restorer 'name[key=value,...]'; repeatable.")] = None,
    train_set: Annotated[str | None, typer.Option(
        help="Training set spec, e.g. 'degraded[clean=cbsd68,degradation=noise,severity=1-5]' "
             "or lolv1-train.")] = None,
    val_task: Annotated[str | None, typer.Option(help="Task to validate on (any bench run task).")] = None,
    iters: Annotated[int | None, typer.Option(help="Training iterations.")] = None,
    out: Annotated[Path | None, typer.Option(help="Checkpoint file (a folder with several -r).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the training saved in --out.")] = False,
    recipe: Annotated[Path | None, typer.Option(help="YAML/JSON file with any of these options.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default 8).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default 2e-4).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay (default 1e-4).")] = None,
    warmup_iters: Annotated[int | None, typer.Option(help="Linear warm-up iterations.")] = None,
    grad_clip: Annotated[float | None, typer.Option(help="Gradient-norm clip, 0 = off (default 1).")] = None,
    ema: Annotated[float | None, typer.Option(help="EMA decay, e.g. 0.999 (default off).")] = None,
    amp: Annotated[str | None, typer.Option(help="auto | off | bf16 | fp16 (CUDA only).")] = None,
    num_workers: Annotated[int | None, typer.Option(help="DataLoader workers (default 0).")] = None,
    val_every: Annotated[int | None, typer.Option(help="Validate every N iterations.")] = None,
    val_limit: Annotated[int | None, typer.Option(help="Validation samples (default 4).")] = None,
    val_metrics: Annotated[str | None, typer.Option(help="Comma-separated (default psnr,ssim).")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every N iterations.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of data order, crops and init.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    threads: Threads = None,
    output_dir: Annotated[Path | None, typer.Option(
        help="Where mlflow.db and mlartifacts go (default results).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI (default sqlite:///OUTPUT_DIR/mlflow.db).")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment (default restorebench-train).")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Skip MLflow.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    data_root: Annotated[Path | None, typer.Option(help="Sets BENCH_DATA_ROOT.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate the recipe, the restorer, the "
                                        "training set and the validation data, then exit.")] = False,
) -> None:
    """Train restorers; write resumable checkpoints that `bench run -r 'NAME[checkpoint=...]'` loads."""
    import os

    from harness.cli.common import fail

    if data_root is not None:
        os.environ["BENCH_DATA_ROOT"] = str(data_root)
    given = {"restorer": restorer, "train_set": train_set, "val_task": val_task, "iters": iters,
             "out": out, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
             "warmup_iters": warmup_iters, "grad_clip": grad_clip, "ema_decay": ema, "amp": amp,
             "num_workers": num_workers, "val_every": val_every, "val_limit": val_limit,
             "val_metrics": val_metrics, "checkpoint_every": checkpoint_every, "seed": seed,
             "output_dir": output_dir, "tracking_uri": tracking_uri, "experiment": experiment}
    try:
        options = recipe_options(recipe, given)
    except ValueError as exc:
        fail(f"--recipe {recipe}: {exc}" if recipe else str(exc))
    _train_all(options, check, device=device, resume=resume, tracking=not no_tracking,
               show_progress=progress, argv=list(sys.argv), threads=threads)


def _train_all(options: dict[str, Any], check: bool, **common: Any) -> None:
    """Train (or ``--check``) each restorer of ``options`` in turn; a user error ends the command
    with its message."""
    from harness.cli.common import console, fail, user_errors
    from harness.train.trainer import Trainer, ValidationFailed, train

    try:
        for config in train_configs(options, **common):
            if check:
                report = Trainer(config).check()
                console.print("recipe ok: " + json.dumps(report, default=str), markup=False)
                continue
            summary = train(config, console=console)
            validation = ", ".join(f"{k} {v:.4f}" for k, v in summary.last_validation.items())
            resumed = f" (resumed at {summary.resumed_from})" if summary.resumed_from else ""
            console.print(f"checkpoint: {summary.checkpoint}  sha256 {summary.sha256[:16]}  "
                          f"iteration {summary.iteration}{resumed}  {summary.seconds:.0f} s"
                          + (f"  validation: {validation}" if validation else ""), markup=False)
            if summary.stopped_early:
                console.print(f"stopped early: {summary.stopped_early}; best weights: {summary.best}",
                              markup=False)
    except user_errors(FloatingPointError, ValidationFailed) as exc:
        fail(str(exc))
