"""``bench study``: out-of-distribution grids and severity sweeps (see :mod:`harness.study.grid`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from harness.cli.common import Limit, Threads
from harness.cli.executor_options import (
    ExecutorName,
    GpusPerWorker,
    RayAddress,
    ShardSize,
    Workers,
    make_executor,
)

app = typer.Typer(
    rich_markup_mode=None, help="Studies: restorer × task grids (OOD) and severity sweeps.",
                  no_args_is_help=True)

RESTORER_HELP = ("Restorer as NAME, NAME[key=value,...] or NAME[checkpoint=PATH,...]@TAG, where TAG "
                 "says what that checkpoint was trained on (the row becomes 'NAME (trained on TAG)'); "
                 "repeatable, e.g. -r identity -r 'unet[checkpoint=n.pt]@noise' "
                 "-r 'unet[checkpoint=b.pt]@blur'. LABEL=NAME[...] names the row "
                 "(e.g. -r 'no prior=unfoldldm[prior=false,checkpoint=np.pt]').")
#: How a severity sweep names its tasks; ``{clean}``, ``{degradation}`` and ``{level}`` are filled.
SEVERITY_TEMPLATE = "synth:{clean}:{degradation}@{level}"


def _common(output_dir: Path, data_root: Path | None) -> None:
    if data_root is not None:
        os.environ["BENCH_DATA_ROOT"] = str(data_root)
    if output_dir.exists() and not output_dir.is_dir():
        from harness.cli.common import fail

        fail(f"--output-dir {output_dir} is a file; give a folder")


def _check_name(name: str | None) -> str | None:
    """``--name`` is one folder under ``--output-dir``: checked before anything is created."""
    from harness.cli.common import fail
    from harness.io.names import check_folder_name

    if name is not None:
        try:
            check_folder_name(name, "--name")
        except ValueError as exc:
            fail(str(exc))
    return name


def _run(config) -> None:
    from harness.cli.common import console, fail, user_errors
    from harness.io.safefiles import RunWriteError
    from harness.study.grid import StudyFailed, run_study

    try:
        summary = run_study(config, console=console)
    except user_errors(StudyFailed, RunWriteError) as exc:
        fail(str(exc))
    # labels such as nlm[sigma=estimate] are literal text, not rich markup
    console.print(summary.files["markdown"].read_text(encoding="utf-8"), markup=False, highlight=False)
    for kind, path in summary.files.items():
        console.print(f"{kind}: {path}", markup=False, highlight=False)
    if summary.n_failed:
        console.print(f"[yellow]{summary.n_failed} image(s) failed; see samples.jsonl under "
                      f"{escape(str(summary.study_dir / 'runs'))}[/]")
    if summary.parent_run_id:
        console.print(f"MLflow parent run: {summary.parent_run_id}")


OutputDir = Annotated[Path, typer.Option(help="Output root: the study goes to OUTPUT_DIR/studies/NAME/ and "
                                              "logs to OUTPUT_DIR/mlflow.db (the store of bench run).")]
Metrics = Annotated[str | None, typer.Option(help="Comma-separated metrics (default: the tasks').")]
Name = Annotated[str | None, typer.Option(
    callback=_check_name, help="Study folder / MLflow run name (default: timestamp): letters, "
                               "digits, '_', '-', '.'.")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")]
Seed = Annotated[int | None, typer.Option(
    help="Base seed: overrides each task's degradation seed (0 included), as bench run --seed "
         "does (default: the tasks' own seeds, so a study's rows equal bench run's).")]
NoTracking = Annotated[bool, typer.Option("--no-tracking", help="Skip MLflow.")]
TrackingUri = Annotated[str | None, typer.Option(help="MLflow URI (default sqlite:///OUTPUT_DIR/mlflow.db).")]
Experiment = Annotated[str, typer.Option(help="MLflow experiment name.")]
Progress = Annotated[bool, typer.Option(help="Show progress bars.")]
Baseline = Annotated[str | None, typer.Option(
    help="Row label the figures and gain tables measure gains over (default: the entry whose "
         "restorer passes its input through, e.g. -r identity; none: absolute values only).")]
DataRoot = Annotated[Path | None, typer.Option(help="Datasets folder (sets BENCH_DATA_ROOT).")]


@app.command()
def ood(
    restorer: Annotated[list[str], typer.Option("--restorer", "-r", help=RESTORER_HELP)],
    task: Annotated[list[str], typer.Option("--task", "-t", help="Test task (name, spec string or "
                                                                 "'name[key=value]'); repeatable.")],
    metric: Annotated[str, typer.Option(help="Metric drawn in the heatmap.")] = "psnr",
    metrics: Metrics = None, limit: Limit = None, name: Name = None, device: Device = "auto",
    seed: Seed = None, output_dir: OutputDir = Path("results"), no_tracking: NoTracking = False,
    tracking_uri: TrackingUri = None, experiment: Experiment = "restorebench", progress: Progress = True,
    data_root: DataRoot = None, executor: ExecutorName = "local", ray_address: RayAddress = None,
    gpus_per_worker: GpusPerWorker = None, workers: Workers = None, shard_size: ShardSize = None,
    threads: Threads = None, baseline: Baseline = None,
) -> None:
    """Run every restorer on every task; write a table (CSV + markdown), a heatmap and an MLflow run."""
    from harness.api.items import parse_item
    from harness.cli.common import fail
    from harness.study.grid import StudyConfig, parse_entry

    _common(output_dir, data_root)
    try:
        entries = [parse_entry(r) for r in restorer]
        tasks = [parse_item(t) for t in task]
        run_executor = make_executor(executor, ray_address, gpus_per_worker, workers, shard_size)
    except ValueError as exc:
        fail(str(exc))
    metric_list = [m.strip() for m in metrics.split(",")] if metrics else None
    if metric_list and metric not in metric_list:
        metric_list.append(metric)
    _run(StudyConfig(kind="ood", entries=entries, tasks=tasks, metrics=metric_list,
                     primary_metric=metric, device=device, limit=limit, seed=seed,
                     output_dir=output_dir, name=name, tracking=not no_tracking,
                     tracking_uri=tracking_uri, experiment=experiment, show_progress=progress,
                     argv=list(sys.argv), executor=run_executor, shard_size=shard_size,
                     threads=threads, baseline=baseline))


@app.command()
def severity(
    restorer: Annotated[list[str], typer.Option("--restorer", "-r", help=RESTORER_HELP)],
    degradation: Annotated[str, typer.Option(help="Degradation spec, e.g. noise+blur+lowlight.")],
    clean: Annotated[str, typer.Option(help="Clean image set, e.g. kodak24 (or skimage).")],
    levels: Annotated[str, typer.Option(help="Levels: a range '1-5' or a list '1,3,5'.")] = "1-5",
    task_option: Annotated[list[str] | None, typer.Option(
        "--task-option", help="key=value added to every task (e.g. crop=256); repeatable.")] = None,
    template: Annotated[str, typer.Option(help="How a level's task is named.")] = SEVERITY_TEMPLATE,
    metrics: Annotated[str, typer.Option(help="Comma-separated metrics.")] = "psnr,ssim,niqe",
    limit: Limit = None, name: Name = None, device: Device = "auto", seed: Seed = None,
    output_dir: OutputDir = Path("results"), no_tracking: NoTracking = False,
    tracking_uri: TrackingUri = None, experiment: Experiment = "restorebench", progress: Progress = True,
    data_root: DataRoot = None, executor: ExecutorName = "local", ray_address: RayAddress = None,
    gpus_per_worker: GpusPerWorker = None, workers: Workers = None, shard_size: ShardSize = None,
    threads: Threads = None, baseline: Baseline = None,
) -> None:
    """Metrics against severity, one curve per restorer; PNG + table + MLflow run."""
    from harness.api.items import parse_value
    from harness.cli.common import fail
    from harness.study.grid import StudyConfig, parse_entry, parse_levels

    _common(output_dir, data_root)
    try:
        entries = [parse_entry(r) for r in restorer]
        level_list = parse_levels(levels)
        options = {}
        for item in task_option or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--task-option {item!r} is not key=value")
            options[key.strip()] = parse_value(value.strip())
        run_executor = make_executor(executor, ray_address, gpus_per_worker, workers, shard_size)
        tasks = [(template.format(clean=clean, degradation=degradation, level=level), dict(options))
                 for level in level_list]
    except (ValueError, KeyError) as exc:
        fail(str(exc))
    _run(StudyConfig(kind="severity", entries=entries, tasks=tasks, levels=level_list,
                     metrics=[m.strip() for m in metrics.split(",")],
                     primary_metric=metrics.split(",")[0].strip(), device=device, limit=limit,
                     seed=seed, output_dir=output_dir, name=name, tracking=not no_tracking,
                     tracking_uri=tracking_uri, experiment=experiment, show_progress=progress,
                     argv=list(sys.argv), executor=run_executor, shard_size=shard_size,
                     threads=threads,
                     baseline=baseline, clean=clean, degradation=degradation))
