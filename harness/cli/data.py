"""``bench data validate|fetch``: check a task's data on disk, or get them.

Attached to ``bench`` as the ``data`` group by :mod:`harness.cli.main`. Tasks describe their data with
a :class:`~harness.assets.datasets.DatasetSpec` returned by an optional ``data_spec()`` method; tasks
without one (synthetic or demo tasks) can still be validated by name, by loading their samples.

Exit codes of ``validate``: 0 = every checked set is complete and consistent; 3 = some set is
partial (and none broken) — 0 with ``--allow-partial``; 1 = a named set is missing or invalid.
Without task names, every task that has a ``data_spec`` is checked and absent ones are listed but
do not fail the command (nothing to validate).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    rich_markup_mode=None, help="Benchmark datasets: validate what is on disk, fetch what is missing.",
                  no_args_is_help=True)

EXIT_PARTIAL = 3
_COLOURS = {"ok": "green", "partial": "yellow", "invalid": "red", "missing": "red"}


def _set_root(data_root: Path | None) -> Path:
    if data_root is not None:
        os.environ["BENCH_DATA_ROOT"] = str(data_root)
    return Path(os.environ.get("BENCH_DATA_ROOT", "data")).expanduser()


def _build(name: str) -> Any:
    from harness.api.items import parse_item
    from harness.api.task import build_task
    from harness.cli.common import fail, user_errors

    try:
        task_name, options = parse_item(name)
        return build_task(task_name, **dict(options))
    except user_errors() as exc:
        fail(str(exc))


def _spec_of(task: Any) -> Any:
    getter = getattr(task, "data_spec", None)
    return getter() if callable(getter) else None


def _dataset_tasks() -> list[Any]:
    from harness.api.task import TASKS, build_task

    tasks = []
    for name in TASKS.names():
        try:
            task = build_task(name)
        except Exception:  # a broken preset is reported by `bench list tasks`
            continue
        if _spec_of(task) is not None:
            tasks.append(task)
    return tasks


@app.command()
def validate(
    tasks: Annotated[list[str] | None, typer.Argument(
        help="Task names (default: every task backed by a real dataset).")] = None,
    data_root: Annotated[Path | None, typer.Option(
        help="Folder of datasets (sets BENCH_DATA_ROOT).")] = None,
    allow_partial: Annotated[bool, typer.Option(
        help="Exit 0 when a set is partial (it is still reported as partial).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Check presence, pairing, counts and image sizes of each task's data."""
    from harness.assets.data_validation import validate_task
    from harness.cli.common import console

    root = _set_root(data_root)
    named = bool(tasks)
    chosen = [_build(name) for name in tasks] if tasks else _dataset_tasks()
    reports = [validate_task(task) for task in chosen]
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in reports]))
    else:
        _print_reports(reports, root, verbose=named)
    statuses = {r.status for r in reports}
    if named and statuses & {"missing", "invalid"}:
        raise typer.Exit(1)
    if not named and "invalid" in statuses:
        raise typer.Exit(1)
    if "partial" in statuses and not allow_partial:
        raise typer.Exit(EXIT_PARTIAL)


def _print_reports(reports: list[Any], root: Path, verbose: bool) -> None:
    from harness.cli.common import console

    table = Table(title=escape(f"data under {root}"))
    for column in ("task", "status", "samples", "with GT", "layout", "location"):
        table.add_column(column)
    for report in reports:
        colour = _COLOURS[report.status]
        samples = (f"{report.found} of {report.expected}" if report.expected else str(report.found))
        location = report.location or {}
        where = ", ".join(f"{k}={v}" for k, v in location.items() if k != "layout" and v)
        table.add_row(escape(report.task), f"[{colour}]{report.status}[/]",
                      samples if report.status != "missing" else "-",
                      "-" if report.paired is None else str(report.paired),
                      str(location.get("layout", "-")), escape(where))
    console.print(table)
    for report in reports:
        for note in report.notes:
            console.print(f"[yellow]{report.task}:[/] {escape(note)}")
        for problem in report.problems:
            console.print(f"[red]{report.task}:[/] {escape(problem)}")
        if report.status == "missing" and verbose:
            console.print(f"[red]{report.task}:[/] {escape(report.message)}")


@app.command()
def fetch(
    task: Annotated[str, typer.Argument(help="Task whose data to fetch.")],
    data_root: Annotated[Path | None, typer.Option(
        help="Folder of datasets (sets BENCH_DATA_ROOT).")] = None,
) -> None:
    """Download a task's data into its canonical layout (when online and a source allows it);
    otherwise print where to get them and how to lay them out."""
    from harness.assets.data_fetch import DataFetchError, fetch_dataset
    from harness.cli.common import console, fail

    root = _set_root(data_root)
    built = _build(task)
    spec = _spec_of(built)
    if spec is None:
        fail(f"task {task!r} has no dataset to fetch (synthetic or user-supplied data)")
    try:
        match = fetch_dataset(spec, root, log=lambda text: console.print(escape(text)))
    except DataFetchError as exc:
        fail(str(exc), code=1)
    console.print(f"[green]{spec.name}[/] is at {escape(str(match.describe()))}; "
                  f"run `bench data validate {task}` to check it")
