"""The ``bench`` command line (typer).

``bench run`` with no arguments evaluates the defaults that the built-in packages declare
(``RESTORERS.set_defaults`` in ``restorers/__init__.py``, ``TASKS.set_defaults`` in
``tasks/__init__.py``): an embedded task that needs nothing beyond what pip installs. Command
groups for datasets and studies live in their own modules and are attached here.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.api.items import check_device_syntax, parse_item, parse_labelled_restorer
from harness.api.registry import UnknownNameError
from harness.cli.common import console, err_console, fail  # noqa: F401  (re-exported)
from harness.cli.executor_options import (
    ExecutorName,
    GpusPerWorker,
    RayAddress,
    ShardSize,
    Workers,
    make_executor,
)

app = typer.Typer(
    rich_markup_mode=None, help="restorebench: benchmark blind image restoration.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)




# bench run ---------------------------------------------------------------------------------------
@app.command()
def run(
    restorer: Annotated[list[str] | None, typer.Option(
        "--restorer", "-r", help="Restorer name or 'name[key=value,...]', optionally "
        "'LABEL=name[...]' (the row's display name); repeatable.")] = None,
    task: Annotated[list[str] | None, typer.Option(
        "--task", "-t", help="Task name, spec string, or 'name[key=value,...]'; repeatable.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N samples.")] = None,
    metrics: Annotated[str | None, typer.Option(
        help="Comma-separated metrics (default: the task's: psnr,ssim,lpips,niqe with GT; "
             "niqe without). Any pyiqa metric name works.")] = None,
    output_dir: Annotated[Path, typer.Option(help="Where runs and mlflow.db go.")] = Path("results"),
    run_name: Annotated[str | None, typer.Option(help="Run folder name (default: timestamp).")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the named run (or the latest in --output-dir), skipping recorded images.")] = False,
    seed: Annotated[int | None, typer.Option(
        help="Base seed: overrides each task's degradation seed (0 included) and seeds every "
             "restorer's per-image generator (default: the tasks' own seeds, restorer base 0).")] = None,
    shard_size: ShardSize = None,
    executor: ExecutorName = "local",
    ray_address: RayAddress = None,
    gpus_per_worker: GpusPerWorker = None,
    workers: Workers = None,
    save_images: Annotated[bool, typer.Option(help="Write restored images as PNG.")] = False,
    previews: Annotated[bool, typer.Option(
        help="Write small previews (long side <= 512) for bench report's image viewer.")] = True,
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI (default sqlite:///<output-dir>/mlflow.db).")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "restorebench",
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Skip MLflow.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    verify_assets: Annotated[bool, typer.Option(
        "--verify-assets", help="Re-hash every weight file (sha256) instead of trusting its "
                                "size+mtime stamp from the last check.")] = False,
    data_root: Annotated[Path | None, typer.Option(
        help="Folder of datasets in their canonical layouts (sets BENCH_DATA_ROOT).")] = None,
) -> None:
    """Evaluate restorers on tasks; write results/<run>/ and log to MLflow."""
    if data_root is not None:
        os.environ["BENCH_DATA_ROOT"] = str(data_root)
    from harness.api.registries import RESTORERS, TASKS
    from harness.assets.cache import AssetCorruptError, AssetMissingError

    try:
        check_device_syntax(device)
        if limit is not None and limit < 0:
            raise ValueError(f"--limit {limit}: give a positive number of samples (or leave "
                             "--limit out to run them all)")
    except ValueError as exc:
        fail(str(exc))
    if limit == 0:  # asked for explicitly: not an error, and no empty run folder either
        console.print("nothing to do: --limit 0 selects no sample (no run folder was created)")
        raise typer.Exit(0)
    try:
        parsed = [parse_labelled_restorer(item) for item in restorer or RESTORERS.defaults()]
        for _, name, _, _ in parsed:  # a mistyped name answers from the manifest, before torch loads
            RESTORERS.canonical(name)
    except UnknownNameError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))
    from harness.api.task import DataMissingError
    from harness.run.executor import ExecutorError
    from harness.run.plan import RestorerItem
    from harness.run.runner import RunConfig, run_benchmark

    try:
        restorers = [RestorerItem(name, options, label=label, train_tag=tag)
                     for label, name, options, tag in parsed]
        tasks = [parse_item(t) for t in (task or TASKS.defaults())]
        if not restorers or not tasks:
            raise ValueError("no default restorer or task is declared; name them with -r and -t")
        executor_factory = make_executor(executor, ray_address, gpus_per_worker, workers, shard_size)
    except ValueError as exc:
        fail(str(exc))
    config = RunConfig(restorers=restorers, tasks=tasks, device=device, limit=limit,
                       metrics=[m.strip() for m in metrics.split(",")] if metrics else None,
                       output_dir=output_dir, run_name=run_name, resume=resume, seed=seed,
                       shard_size=shard_size, executor=executor_factory,
                       save_images=save_images, save_previews=previews, tracking=not no_tracking,
                       tracking_uri=tracking_uri, experiment=experiment, argv=list(sys.argv),
                       show_progress=progress, verify_assets=verify_assets)
    try:
        summary = run_benchmark(config, console=console)
    except UnknownNameError as exc:
        fail(str(exc))
    except (DataMissingError, AssetMissingError, AssetCorruptError, FileExistsError,
            FileNotFoundError, ValueError, ImportError, ExecutorError) as exc:
        fail(str(exc))
    print_summary(summary.results, summary.missing_metrics)
    console.print(f"results: {summary.run_dir / 'results.json'}  "
                  f"(samples: {summary.run_dir / 'samples.jsonl'})", markup=False, highlight=False)
    checks = summary.payload.get("asset_checks", {})
    if checks:
        hashed = sum(1 for how in checks.values() if how.startswith("re-hashed"))
        console.print(f"assets: {hashed} file(s) re-hashed, {len(checks) - hashed} trusted by their "
                      "size+mtime stamp" + ("" if verify_assets else
                                            " (--verify-assets re-hashes every file)"))
    if summary.n_skipped:
        console.print(f"resumed: {summary.n_skipped} image(s) already recorded were skipped")
    for warning in summary.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    for error in summary.tracking_errors:
        err_console.print(f"[red]MLflow:[/] {escape(error)} (results files are complete)")
    if summary.n_failed:
        print_failures(summary.payload.get("units", []), summary.n_failed)
    if config.tracking:
        uri = config.tracking_uri or f"sqlite:///{(output_dir / 'mlflow.db')}"
        console.print(f"MLflow: mlflow ui --backend-store-uri {uri}", markup=False, highlight=False)


def _fmt(agg: Any, n_ok: int | None = None, ci: bool = True) -> str:
    """``mean ±half-CI``; ``(n=k)`` when the metric has fewer values than the row has images
    (images it could not score); no CI where one means nothing (peak memory)."""
    if not isinstance(agg, dict) or agg.get("n", 0) == 0 or agg["mean"] is None:
        return "-" + (" (n=0)" if isinstance(agg, dict) and agg.get("n_not_computed") else "")
    mean = agg["mean"]
    if isinstance(mean, float) and not math.isfinite(mean):
        return str(mean)
    digits = 2 if abs(mean) >= 10 else 4
    text = f"{mean:.{digits}f}"
    if ci:
        lo, hi = agg["ci95"]
        half = (hi - lo) / 2 if lo is not None and hi is not None else 0.0
        text += f" ±{half:.{digits}f}"
    if n_ok is not None and agg["n"] < n_ok:
        text += f" (n={agg['n']})"
    return text


#: columns shown without a CI: peak memory is a property of the method and input size, not a
#: sample of a quality distribution
NO_CI_COLUMNS = frozenset({"peak_mem_mb"})


def summary_columns(results: dict[str, dict[str, dict[str, Any]]],
                    missing: dict[str, str]) -> list[str]:
    """Quality metrics first (psnr, ssim, lpips, niqe, others), then latency and memory."""
    columns: list[str] = []
    for by_task in results.values():
        for agg in by_task.values():
            columns += [k for k, v in agg.items() if isinstance(v, dict) and k not in columns]
    ordered = [c for c in ("psnr", "ssim", "lpips", "niqe") if c in columns or c in missing]
    ordered += [c for c in columns if c not in ordered and c not in ("latency_ms", "peak_mem_mb")]
    return ordered + [c for c in ("latency_ms", "peak_mem_mb") if c in columns]


def print_summary(results: dict[str, dict[str, dict[str, Any]]], missing: dict[str, str]) -> None:
    """One row per (restorer, task): metric means with 95% CI half-widths, n, failures."""
    ordered = summary_columns(results, missing)
    table = Table(title="restorebench results (mean ±95% CI half-width; (n=k): images scored "
                        "when fewer than n)")
    table.add_column("restorer")
    table.add_column("task")
    for column in ordered:
        table.add_column(column, justify="right")
    table.add_column("n", justify="right")
    table.add_column("failed", justify="right")
    notes: list[str] = []
    for restorer, by_task in results.items():
        for task, agg in by_task.items():
            n_ok = agg.get("n_ok", 0)
            cells = ["missing*" if c in missing and c not in agg else
                     _fmt(agg.get(c), n_ok, ci=c not in NO_CI_COLUMNS) for c in ordered]
            table.add_row(escape(restorer), escape(task), *cells, str(n_ok),
                          str(agg.get("n_failed", 0)))
            for column in ordered:
                entry = agg.get(column)
                if isinstance(entry, dict) and entry.get("n_not_computed"):
                    notes.append(f"{column} not computed on {entry['n_not_computed']} of {n_ok} "
                                 f"image(s) of {restorer} @ {task}: {entry.get('not_computed', '')}")
    console.print(table)
    for name, reason in missing.items():
        console.print(f"[yellow]* {escape(name)} missing:[/] {escape(reason)}")
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    if "peak_mem_mb" in ordered:
        console.print("peak_mem_mb: the restorer's own peak (CPU: RSS increment over the pre-call "
                      "baseline; CUDA: max allocated), mean over images, no CI")


FAILURES_SHOWN = 3


def print_failures(units: list[dict[str, Any]], n_failed: int) -> None:
    """Name the first few failed images with their one-line errors (all of them are in
    ``results.json`` under ``units[].failed`` and in ``samples.jsonl``)."""
    failed = [(u["restorer"], u["task"], f) for u in units for f in u.get("failed", [])]
    err_console.print(f"[yellow]{n_failed} image(s) failed[/]; the first "
                      f"{min(len(failed), FAILURES_SHOWN)}:")
    for restorer, task, failure in failed[:FAILURES_SHOWN]:
        line = (failure.get("error") or "").splitlines()[0] if failure.get("error") else "(no message)"
        err_console.print(f"  {escape(restorer)} @ {escape(task)} / {escape(str(failure['sample_id']))}: "
                          f"{escape(line[:300])}")
    err_console.print("  (every failure: units[].failed in results.json; tracebacks in samples.jsonl)")


# Command groups and commands -------------------------------------------------------------------
#: ``bench NAME``: the harness's own commands, ``(module, attribute, kind)``; "group" is a typer app
_BUILTIN = (("report", "harness.cli.report", "report", "command"),
            ("compare", "harness.cli.report", "compare", "command"),
            ("train", "harness.cli.train", "train_command", "command"),
            ("list", "harness.cli.listing", "app", "group"),
            ("assets", "harness.cli.assets", "app", "group"),
            ("data", "harness.cli.data", "app", "group"),
            ("study", "harness.cli.study", "app", "group"))

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
        except ModuleNotFoundError:  # its optional stack (ultralytics for detect) is not installed
            continue
        app.command(entry.name)(command)


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
