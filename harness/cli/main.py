"""The ``bench`` command line (typer).

``bench run`` with no arguments evaluates the defaults that the built-in packages declare
(``RESTORERS.set_defaults`` in ``restorers/__init__.py``, ``TASKS.set_defaults`` in
``tasks/__init__.py``): an embedded task that needs nothing beyond what pip installs. Command
groups for datasets and studies live in their own modules and are attached here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from harness.api.items import check_device_syntax, parse_item, parse_labelled_restorer
from harness.cli.common import Limit, Threads, console, err_console, fail, user_errors
from harness.cli.executor_options import (
    ExecutorName,
    GpusPerWorker,
    RayAddress,
    ShardSize,
    Workers,
    make_executor,
)
from harness.cli.summary import print_failures, print_summary
from harness.io.safefiles import RunWriteError

if TYPE_CHECKING:
    from harness.run.plan import RestorerItem
    from harness.run.runner import RunConfig, RunSummary

app = typer.Typer(
    rich_markup_mode=None, help="restorebench: benchmark blind image restoration.", no_args_is_help=True,
    add_completion=False, pretty_exceptions_enable=False)


# bench run ---------------------------------------------------------------------------------------
# Its options, declared apart so that the command reads as what it does.
Restorers = Annotated[list[str] | None, typer.Option(
    "--restorer", "-r", help="Restorer name or 'name[key=value,...]', optionally "
    "'LABEL=name[...]' (the row's display name); repeatable.")]
Tasks = Annotated[list[str] | None, typer.Option(
    "--task", "-t", help="Task name, spec string, or 'name[key=value,...]'; repeatable.")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")]
Metrics = Annotated[str | None, typer.Option(
    help="Comma-separated metrics (default: the task's: psnr,ssim,lpips,niqe with GT; "
         "niqe without). Any pyiqa metric name works.")]
OutputDir = Annotated[Path, typer.Option(help="Where runs and mlflow.db go.")]
def _check_run_name(name: str | None) -> str | None:
    """``--run-name`` is one folder under ``--output-dir``: checked before anything is created."""
    from harness.io.names import check_folder_name

    if name is not None:
        try:
            check_folder_name(name)
        except ValueError as exc:
            fail(str(exc))
    return name


RunName = Annotated[str | None, typer.Option(
    callback=_check_run_name, help="Run folder name under --output-dir (default: timestamp): "
                                   "letters, digits, '_', '-', '.'.")]
Resume = Annotated[bool, typer.Option(
    help="Continue the named run (or the latest in --output-dir), skipping recorded images.")]
Seed = Annotated[int | None, typer.Option(
    help="Base seed: overrides each task's degradation seed (0 included) and seeds every "
         "restorer's per-image generator (default: the tasks' own seeds, restorer base 0).")]
SaveImages = Annotated[bool, typer.Option(help="Write restored images as PNG.")]
Previews = Annotated[bool, typer.Option(
    help="Write small previews (long side <= 512) for bench report's image viewer.")]
TrackingUri = Annotated[str | None, typer.Option(
    help="MLflow tracking URI (default sqlite:///<output-dir>/mlflow.db).")]
Experiment = Annotated[str, typer.Option(help="MLflow experiment name.")]
NoTracking = Annotated[bool, typer.Option("--no-tracking", help="Skip MLflow.")]
Progress = Annotated[bool, typer.Option(help="Show progress bars.")]
VerifyAssets = Annotated[bool, typer.Option(
    "--verify-assets", help="Re-hash every weight file (sha256) instead of trusting its "
                            "size+mtime stamp from the last check.")]
DataRoot = Annotated[Path | None, typer.Option(
    help="Folder of datasets in their canonical layouts (sets BENCH_DATA_ROOT).")]


@app.command()
def run(restorer: Restorers = None, task: Tasks = None, device: Device = "auto", limit: Limit = None,
        metrics: Metrics = None, output_dir: OutputDir = Path("results"), run_name: RunName = None,
        resume: Resume = False, seed: Seed = None, shard_size: ShardSize = None,
        executor: ExecutorName = "local", ray_address: RayAddress = None,
        gpus_per_worker: GpusPerWorker = None, workers: Workers = None,
        save_images: SaveImages = False, previews: Previews = True,
        tracking_uri: TrackingUri = None, experiment: Experiment = "restorebench",
        no_tracking: NoTracking = False, progress: Progress = True,
        verify_assets: VerifyAssets = False, data_root: DataRoot = None,
        threads: Threads = None) -> None:
    """Evaluate restorers on tasks; write results/<run>/ and log to MLflow.

    A bare `bench run` (no -r, no -t) evaluates the declared defaults (built-in: identity and
    nlm on the embedded `demo` task: 5 scikit-image photos + noise; no data, no weights, about
    10 s on a CPU). `bench list restorers|tasks` shows what else there is; `bench doctor` what is missing.
    """
    if data_root is not None:
        os.environ["BENCH_DATA_ROOT"] = str(data_root)
    try:
        check_device_syntax(device)
        restorers = _restorer_items(restorer)  # names answer from the manifest: no torch yet
        from harness.run.runner import RunConfig, run_benchmark

        config = RunConfig(
            restorers=restorers, tasks=_task_items(task), device=device, limit=limit,
            metrics=[m.strip() for m in metrics.split(",")] if metrics else None,
            output_dir=output_dir, run_name=run_name, resume=resume, seed=seed,
            shard_size=shard_size, save_images=save_images, save_previews=previews,
            executor=make_executor(executor, ray_address, gpus_per_worker, workers, shard_size),
            tracking=not no_tracking, tracking_uri=tracking_uri, experiment=experiment,
            argv=list(sys.argv), show_progress=progress, verify_assets=verify_assets,
            threads=threads)
        summary = run_benchmark(config, console=console)
    except user_errors(RunWriteError) as exc:
        fail(str(exc))
    _print_run(summary, config)
    if summary.tracking_errors:  # asked for MLflow and did not get it: a script must notice
        fail(f"MLflow logging failed ({len(summary.tracking_errors)} error(s) above); the results "
             f"files are complete: {summary.run_dir / 'results.json'}")


def _restorer_items(items: list[str] | None) -> list[RestorerItem]:
    """``-r`` items (or the declared defaults) as plan items; a mistyped name raises
    :class:`~harness.api.registry.UnknownNameError` from the manifest, before torch loads."""
    from harness.api.registries import RESTORERS

    parsed = [parse_labelled_restorer(item) for item in items or RESTORERS.defaults()]
    for _, name, _, _ in parsed:
        RESTORERS.canonical(name)
    if not parsed:
        raise ValueError("no default restorer is declared; name one with -r")
    from harness.run.plan import RestorerItem

    return [RestorerItem(name, options, label=label, train_tag=tag)
            for label, name, options, tag in parsed]


def _task_items(items: list[str] | None) -> list[tuple[str, dict]]:
    """``-t`` items (or the declared defaults) as ``(name, options)``."""
    from harness.api.registries import TASKS

    tasks = [parse_item(item) for item in items or TASKS.defaults()]
    if not tasks:
        raise ValueError("no default task is declared; name one with -t")
    return tasks


def _print_run(summary: RunSummary, config: RunConfig) -> None:
    """The results table, where the files are, and what the run noticed on the way."""
    print_summary(summary.results, summary.missing_metrics)
    console.print(f"results: {summary.run_dir / 'results.json'}  "
                  f"(samples: {summary.run_dir / 'samples.jsonl'})", markup=False, highlight=False)
    checks = summary.payload.get("asset_checks", {})
    if checks:
        hashed = sum(1 for how in checks.values() if how.startswith("re-hashed"))
        console.print(f"assets: {hashed} file(s) re-hashed, {len(checks) - hashed} trusted by their "
                      "size+mtime stamp" + ("" if config.verify_assets else
                                            " (--verify-assets re-hashes every file)"))
    if summary.n_skipped:
        console.print(f"resumed: {summary.n_skipped} image(s) already recorded were skipped")
    for warning in summary.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    for error in summary.tracking_errors:
        err_console.print(f"[red]MLflow:[/] {escape(error)} (results files are complete)")
    if summary.n_failed:
        print_failures(summary.payload.get("units", []), summary.n_failed)
    if config.tracking and not summary.tracking_errors:
        uri = config.tracking_uri or f"sqlite:///{(Path(config.output_dir) / 'mlflow.db')}"
        console.print(f"MLflow: mlflow ui --backend-store-uri {uri}", markup=False, highlight=False)


# Command groups and commands -------------------------------------------------------------------
#: ``bench NAME``: the harness's own commands, ``(module, attribute, kind)``; "group" is a typer app
_BUILTIN = (("report", "harness.cli.report", "report", "command"),
            ("compare", "harness.cli.report", "compare", "command"),
            ("train", "harness.cli.train", "train_command", "command"),
            ("list", "harness.cli.listing", "app", "group"),
            ("assets", "harness.cli.assets", "app", "group"),
            ("data", "harness.cli.data", "app", "group"),
            ("study", "harness.cli.study", "app", "group"),
            ("doctor", "harness.cli.doctor", "doctor", "command"),
            ("reproduce", "harness.cli.reproduce", "reproduce", "command"))

#: commands contributed by packages above the harness (``bench detect`` from ``downstream``) or by
#: plugins: ``[project.entry-points."restorebench.commands"] NAME = "module:function"``
COMMANDS_GROUP = "restorebench.commands"


def _attach_commands() -> None:
    import importlib
    from importlib.metadata import entry_points

    for name, module, attribute, kind in _BUILTIN:
        target = getattr(importlib.import_module(module), attribute)
        if kind == "group":
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    for entry in entry_points(group=COMMANDS_GROUP):
        try:
            command = entry.load()
        except ModuleNotFoundError as exc:  # its optional stack is not installed: say which extra
            command = _needs_extra(entry.name, exc.name or entry.value, entry.dist.name if entry.dist else "")
            app.command(entry.name, context_settings={"allow_extra_args": True,
                                                      "ignore_unknown_options": True})(command)
            continue
        app.command(entry.name)(command)


def _needs_extra(name: str, module: str, dist: str) -> Callable[[], None]:
    """A stand-in for a contributed command whose module needs a stack that is not installed:
    ``bench NAME`` then names the extra instead of answering "No such command"."""
    from harness.api.extras import install_hint

    hint = install_hint(module, dist or "restorebench")

    def command() -> None:
        fail(f"bench {name} {hint}")

    command.__doc__ = f"(not installed: {hint})"
    return command


_attach_commands()


def main() -> None:
    """The ``bench`` entry point: allocator tuned at start-up, fast exit at the end (both in
    :mod:`harness.io.fastproc`, with their measured costs and opt-outs ``BENCH_MALLOC=default``,
    ``BENCH_FAST_EXIT=0``). The exit comes after every result file is closed: ``fast_exit``
    joins non-daemon threads and runs the ``atexit`` handlers first."""
    from harness.io.fastproc import configure_malloc, fast_exit

    configure_malloc()
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    fast_exit(code)


if __name__ == "__main__":
    main()
