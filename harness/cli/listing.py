"""``bench list restorers|tasks|metrics``.

Restorers are listed from their declared metadata (``restorers/manifest.json``, generated from the
classes by ``python -m restorers.manifest``): name, aliases, degradations, options and description,
without importing a single method module or torch. Plugins without a manifest entry are
imported to be described. Tasks are built to report whether their data are present.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli.common import console, err_console

app = typer.Typer(
    rich_markup_mode=None, help="List restorers, tasks or metrics.", no_args_is_help=True)


# bench list --------------------------------------------------------------------------------------
def _options_text(options: dict[str, Any]) -> str:
    parts = []
    for name, option in options.items():
        default = "" if option.get("required") else f"={option.get('default')!r}"
        parts.append(f"{name}{default} ({option.get('allowed')})")
    return "; ".join(parts)


def restorer_rows() -> list[dict[str, Any]]:
    """One dict per restorer: from the manifest, else (plugins) from the imported class."""
    from harness.api.options import declared_options
    from harness.api.registries import RESTORERS

    rows = []
    for name in RESTORERS.names():
        entry = RESTORERS.metadata(name)
        if entry is None:
            try:
                cls = RESTORERS.get(name)
            except ImportError as exc:
                rows.append({"name": name, "error": str(exc)})
                continue
            entry = {"aliases": RESTORERS.aliases_of(name), "degradations": list(cls.degradations),
                     "description": cls.description, "weights": cls.weights_summary(),
                     "options": {k: v.describe() for k, v in declared_options(cls).items()}}
        rows.append({"name": name, **entry})
    return rows


@app.command("restorers")
def list_restorers(
    options: bool = typer.Option(True, help="Show each restorer's options (name=default (allowed))."),
) -> None:
    """Restorers with what they are for, which weights they ship (or need: ``checkpoint=PATH``)
    and their options (read from declared metadata)."""
    from harness.api.registries import RESTORERS

    table = Table(title="restorers")
    for column in ("name", "aliases", "degradations", "description", "weights",
                   *(("options",) if options else ())):
        table.add_column(column)
    for row in restorer_rows():
        if "error" in row:
            table.add_row(row["name"], "", "", f"[red]unavailable:[/] {escape(row['error'])}")
            continue
        extra = row.get("extra") or {}
        description = row["description"] + (f" ({extra['summary']})" if extra.get("summary") else "")
        cells = [row["name"], ", ".join(row.get("aliases", ())), ", ".join(row.get("degradations", ())),
                 escape(description), escape(row.get("weights", ""))]
        if options:
            cells.append(escape(_options_text(row.get("options", {}))))
        table.add_row(*cells)
    console.print(table)
    for module, error in RESTORERS.import_errors.items():
        err_console.print(f"[red]could not import {escape(module)}:[/] {escape(error)}")


@app.command("tasks")
def list_tasks() -> None:
    """Tasks with descriptions, whether their data are present, and their options (from the
    factory's typed signature; the metric conventions every task takes are listed once below)."""
    from harness.api.task import CONVENTION_OPTIONS, TASKS, DataMissingError, build_task, task_options

    table = Table(title="tasks")
    for column in ("name", "degradation", "GT", "data", "description", "options"):
        table.add_column(column)
    for name in TASKS.names():
        specs, _ = task_options(name)
        own = {k: v.describe() for k, v in specs.items() if k not in CONVENTION_OPTIONS}
        try:
            task = build_task(name)
        except Exception as exc:
            table.add_row(name, "", "", "[red]error[/]", escape(f"{type(exc).__name__}: {exc}"),
                          escape(_options_text(own)))
            continue
        try:
            status = data_status(task)
        except DataMissingError:
            status = "[red]missing[/]"
        table.add_row(name, task.degradation, "yes" if task.has_gt else "no", status,
                      escape(task.description), escape(_options_text(own)))
    console.print(table)
    conventions = {k: v.describe() for k, v in CONVENTION_OPTIONS.items()}
    console.print(escape("every task also takes the metric conventions: " + _options_text(conventions)
                         + "  (e.g. -t 'lolv1[gt_mean=true]')"))
    for module, error in TASKS.import_errors.items():
        err_console.print(f"[red]could not import {escape(module)}:[/] {escape(error)}")


def data_status(task: Any) -> str:
    """'present', 'partial (10 of 100)', the task's own ``data_note`` (the folder task: data
    given per run, never "missing"), or raises DataMissingError."""
    if getattr(task, "data_note", ""):
        return task.data_note
    n = len(task.sample_ids())
    expected = task.expected_count
    if expected and n < expected:
        return f"[yellow]partial ({n} of {expected})[/]"
    return f"[green]present ({n})[/]"


@app.command("metrics")
def list_metrics() -> None:
    """Built-in metrics (any pyiqa metric name also works)."""
    from harness.metrics.suite import METRICS

    table = Table(title="metrics (plus any `pyiqa.list_models()` name)")
    for column in ("name", "mode", "lower is better", "description"):
        table.add_column(column)
    for name in METRICS.names():
        spec = METRICS.get(name)
        table.add_row(name, spec.mode, "yes" if spec.lower_better else "no", escape(spec.description))
    table.add_row("latency_ms", "-", "yes", "wall time of restore() alone, warm-up excluded")
    table.add_row("peak_mem_mb", "-", "yes",
                  "CUDA max allocated; CPU: peak heap in use during the call (glibc)")
    console.print(table)


