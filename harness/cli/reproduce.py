"""``bench reproduce``: the reference results in ``results/reference/`` (:mod:`harness.reference`).

* ``bench reproduce RESTORER TASK``: re-measure one cell with the reference's settings and print
  ours / reference / difference / verdict per metric; exit 1 when a metric is outside tolerance.
* ``bench reproduce --all`` (or ``--restorers a,b --tasks x,y``): measure every cell not yet in
  the reference, cheapest first, one thread, resumable; then ``--render``.
* ``bench reproduce --drift [--update]``: the drift subset, compared (or rewritten).
* ``bench reproduce --render``: rebuild ``reference.jsonl``, the leaderboards and the README.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from harness.cli.common import Limit, check_threads, console, fail, user_errors

ReferenceDir = Annotated[Path, typer.Option(help="The reference folder.")]


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def reproduce(
    restorer: Annotated[str | None, typer.Argument(help="Re-run one cell: the restorer ...")] = None,
    task: Annotated[str | None, typer.Argument(help="... and the task.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Measure every missing cell.")] = False,
    restorers: Annotated[str | None, typer.Option(help="Only these restorers (comma-separated).")] = None,
    tasks: Annotated[str | None, typer.Option(help="Only these tasks (comma-separated).")] = None,
    drift: Annotated[bool, typer.Option("--drift", help="Re-measure the drift subset and compare.")] = False,
    update: Annotated[bool, typer.Option("--update", help="With --drift: rewrite drift.jsonl.")] = False,
    render: Annotated[bool, typer.Option("--render", help="Rebuild reference.jsonl, the "
                                         "leaderboards and the README section.")] = False,
    threads: Annotated[int, typer.Option(callback=check_threads,
                                         help="torch threads per cell (the reference uses 1).")] = 1,
    device: Annotated[str, typer.Option(help="cpu | cuda[:N] (the reference is CPU).")] = "cpu",
    limit: Limit = None,
    reference_dir: ReferenceDir = Path("results/reference"),
    readme: Annotated[Path | None, typer.Option(
        help="README whose leaderboard section --render rewrites (default: the repository's, "
             "two folders above the reference folder).")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Sets BENCH_DATA_ROOT.")] = None,
) -> None:
    """The project's reference results: regenerate, re-check one cell, drift, render."""
    if data_root is not None:
        os.environ["BENCH_DATA_ROOT"] = str(data_root)
    modes = [bool(restorer or task), every or bool(restorers or tasks), drift, render]
    if sum(modes) != 1 and not (render and modes[1] and sum(modes) == 2):
        fail("give one of: RESTORER TASK, --all (or --restorers/--tasks), --drift, --render")
    if update and not drift:
        fail("--update rewrites the drift file: give it with --drift")
    readme = readme or reference_dir.resolve().parent.parent / "README.md"
    try:
        code = _dispatch(restorer, task, modes, update, render, threads, device, limit,
                         reference_dir, readme, _names(restorers), _names(tasks))
    except user_errors() as exc:
        fail(str(exc))
    raise typer.Exit(code)


def _dispatch(restorer: str | None, task: str | None, modes: list[bool], update: bool,
              render: bool, threads: int, device: str, limit: int | None, folder: Path,
              readme: Path, restorers: list[str] | None, tasks: list[str] | None) -> int:
    from harness.reference.regenerate import family_function
    from harness.reference.scope import read_scope

    scope = read_scope(folder)
    if modes[0]:
        if not (restorer and task):
            raise ValueError("re-running one cell needs both RESTORER and TASK")
        return _one_cell(folder, restorer, task)
    if modes[2]:
        return _drift(folder, scope, family_function(scope), update)
    code = 0
    if modes[1]:
        code = _regenerate(folder, scope, restorers, tasks, threads, device, limit)
    _render(folder, scope, readme)
    return code


def _one_cell(folder: Path, restorer: str, task: str) -> int:
    """Re-measure one cell with the reference cell's own settings and compare."""
    import tempfile

    from harness.api.registries import RESTORERS, TASKS
    from harness.reference.cells import CellSettings, run_cell
    from harness.reference.drift import compare_rows
    from harness.reference.store import read_cell, rows_of_cell

    restorer, task = RESTORERS.canonical(restorer), TASKS.canonical(task)
    reference = read_cell(folder, restorer, task)
    if reference is None:
        raise FileNotFoundError(f"{folder} holds no reference cell for {restorer} on {task}; "
                                f"measure it with `bench reproduce --restorers {restorer} "
                                f"--tasks {task}`")
    settings = CellSettings(**reference["settings"])
    console.print(f"re-measuring {restorer} on {task} as the reference did: "
                  f"{settings.run_command()}", markup=False, highlight=False)
    with tempfile.TemporaryDirectory(prefix="bench-reproduce-") as work:
        ours = run_cell(settings, Path(work), list(sys.argv))
    results = compare_rows(rows_of_cell(ours, ""), rows_of_cell(reference, ""))
    _print_comparisons(results, f"{restorer} on {task}: ours vs reference "
                                f"(git {str(reference.get('git_hash'))[:10]})")
    return 1 if any(r.failed for r in results) else 0


def _print_comparisons(results: list, title: str) -> None:
    from rich.table import Table

    from harness.reference.tolerance import TOLERANCES

    table = Table(title=escape(title))
    for column in ("restorer", "task", "metric", "ours", "reference", "difference", "tolerance",
                   "verdict"):
        table.add_column(column)
    for r in results:
        colour = {"within": "green", "outside": "red", "missing": "red"}.get(r.verdict, "dim")
        tol = TOLERANCES.get(r.metric)
        table.add_row(r.restorer, r.task, r.metric, _fmt(r.ours), _fmt(r.reference),
                      _fmt(r.difference, signed=True), tol.describe() if tol else "-",
                      f"[{colour}]{r.verdict}[/]")
    console.print(table)
    bad = [r for r in results if r.failed]
    console.print(f"{len(bad)} of {len(results)} value(s) outside tolerance or missing" if bad
                  else "every compared value is within tolerance")


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.6g}" if signed else f"{value:.6g}"


def _drift(folder: Path, scope, family_of, update: bool) -> int:
    from harness.reference.drift import check_drift, update_drift

    log = _log
    if update:
        path = update_drift(folder, scope, family_of, list(sys.argv), log)
        console.print(f"wrote {path}; commit it with the reason the numbers moved", markup=False)
        return 0
    results = check_drift(folder, scope, family_of, list(sys.argv), log)
    _print_comparisons(results, "drift subset: ours vs drift.jsonl")
    return 1 if any(r.failed for r in results) else 0


def _log(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _chosen(scope, restorers: list[str] | None, tasks: list[str] | None):
    """The offline restorers and runnable tasks, narrowed by the filters (checked by name)."""
    from harness.api.registries import RESTORERS, TASKS
    from harness.reference.scope import offline_restorers, present_tasks, task_presence

    offline = offline_restorers(scope)
    names = [RESTORERS.canonical(n) for n in restorers] if restorers else offline
    for name in names:
        if name in scope.excluded_restorers:
            raise ValueError(f"{name} is excluded from the reference: {scope.excluded_restorers[name]}")
    if tasks:
        presence = {TASKS.canonical(n): task_presence(TASKS.canonical(n)) for n in tasks}
    else:
        presence = present_tasks(scope)
    for name, found in presence.items():
        if tasks and not found.runnable:
            raise FileNotFoundError(f"task {name}: data {found.describe()} on this machine: "
                                    f"{found.note or 'not runnable'} (bench data validate {name})")
    return names, {n: p for n, p in presence.items() if p.runnable}


def _regenerate(folder: Path, scope, restorers: list[str] | None, tasks: list[str] | None,
                threads: int, device: str, limit: int | None) -> int:
    from harness.reference.regenerate import regenerate

    names, presence = _chosen(scope, restorers, tasks)
    skipped = sorted(set(_all_tasks(scope)) - set(presence)) if not tasks else []
    if skipped:
        _log(f"tasks without runnable data here (not measured): {', '.join(skipped)}")
    outcome = regenerate(folder, scope, names, presence, limit=limit, threads=threads,
                         device=device, argv=list(sys.argv), log=_log)
    _log(f"measured {len(outcome.done)}, already present {len(outcome.skipped)}, "
         f"busy elsewhere {len(outcome.busy)}, failed {len(outcome.failed)}")
    for settings, error in outcome.failed:
        _log(f"  failed: {settings.restorer} @ {settings.task}: {error}")
    return 1 if outcome.failed else 0


def _all_tasks(scope) -> list[str]:
    from harness.reference.scope import benchmark_tasks

    return benchmark_tasks(scope)


def _render(folder: Path, scope, readme: Path) -> None:
    from harness.reference.regenerate import family_function
    from harness.reference.render import rendered_files, write_if_changed
    from harness.reference.store import merge

    merge(folder, family_function(scope))
    for path, text in rendered_files(folder, scope, readme if readme.is_file() else None).items():
        changed = write_if_changed(path, text)
        _log(f"{'wrote' if changed else 'unchanged'}: {path}")
