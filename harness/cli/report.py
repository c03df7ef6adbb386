"""``bench report`` and ``bench compare``: typer commands that ``harness/cli/main.py`` registers.

Module-level imports stay light (typer only): ``bench --help`` must not pay for pandas,
matplotlib or MLflow.

``bench report [RUN_DIRS... | --experiment NAME]`` reads the given run folders (a study folder
means all of its runs), the runs an MLflow experiment points at (tag ``run_dir`` of each runner
parent run, found with ``MlflowClient.search_runs``), or by default the latest run in
``--output-dir``. It prints the leaderboard and writes, into ``--out`` (default
``RUN_DIR/report/`` for one run, ``OUTPUT_DIR/reports/<timestamp>/`` for several):
``leaderboard.{md,csv,tex}``, ``detection.{md,csv,tex}`` when detection metrics exist,
``quality_vs_latency.png`` and ``report.html``. With tracking on (the default, like
``bench run``) those files become artifacts of one MLflow parent run named ``report-<time>``.

``bench compare A B --task T [RUN_DIRS...]`` prints the paired per-image comparison
(:mod:`harness.report.paired`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape


def _check_max_samples(n: int | None) -> int | None:
    """``--max-samples N`` counts samples: N >= 1, checked while the options are parsed."""
    from harness.cli.common import fail

    if n is not None and n < 1:
        fail(f"--max-samples {n}: give a number of samples >= 1, or leave it out")
    return n


RunDirs = Annotated[list[Path] | None, typer.Argument(
    help="Run folders, their results.json, study folders or output roots (every run below them).",
    show_default=False)]
OutputDir = Annotated[Path, typer.Option(help="Where runs (and mlflow.db) are.")]


@dataclass
class ReportFiles:
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    parent_run_id: str = ""


def runs_from_experiment(experiment: str, tracking_uri: str) -> list[Path]:
    """Run folders of an MLflow experiment: every run carrying a ``run_dir`` tag (oldest first).

    Runner parent runs carry the tag; child runs (one per restorer × task) and study parents do
    not, so each folder appears once. Folders that no longer exist are reported, not skipped.
    """
    import logging

    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = [e.name for e in client.search_experiments()]
        raise ValueError(f"no MLflow experiment {experiment!r} at {tracking_uri} (there are: "
                         f"{', '.join(names) or 'none'})")
    runs = client.search_runs([found.experiment_id], filter_string="", run_view_type=ViewType.ACTIVE_ONLY,
                              max_results=5000, order_by=["attributes.start_time ASC"])
    folders: list[Path] = []
    absent: list[str] = []
    for run in runs:
        tag = run.data.tags.get("run_dir")
        if not tag:
            continue
        path = Path(tag)
        if path in folders:
            continue
        (folders if (path / "results.json").exists() else absent).append(path)  # type: ignore[arg-type]
    if absent:
        raise FileNotFoundError(f"experiment {experiment!r} points at run folders that are gone: "
                                + ", ".join(str(p) for p in absent) + " (copy them back or give RUN_DIRS)")
    if not folders:
        raise ValueError(f"experiment {experiment!r} has no runs with a run_dir tag (made by bench run)")
    return folders


def resolve_paths(paths: list[Path] | None, experiment: str | None, output_dir: Path,
                  tracking_uri: str | None, every: bool = False) -> list[Path]:
    """The run folders a command reads: RUN_DIRS, an experiment's, every run under output_dir
    (``every``: studies included), or the latest in output_dir."""
    from harness.io.results import latest_run
    from harness.report.load import find_runs
    from harness.tracking.store import default_tracking_uri

    if paths and experiment:
        raise ValueError("give RUN_DIRS or --experiment, not both")
    if experiment:
        return runs_from_experiment(experiment, tracking_uri or default_tracking_uri(output_dir))
    if paths:
        return list(paths)
    if every:
        found = find_runs(output_dir) if Path(output_dir).is_dir() else []
        if not found:
            raise FileNotFoundError(f"no finished run under {output_dir} (a folder with results.json); "
                                    "run `bench run` first, or give RUN_DIRS or --output-dir ROOT")
        return found
    latest = latest_run(output_dir)
    if latest is None:
        raise FileNotFoundError(f"no run in {output_dir} (a folder with samples.jsonl); run `bench run` "
                                "first or give RUN_DIRS")
    return [latest]


def make_report(paths: list[Path], out_dir: Path | None = None, *, output_dir: Path = Path("results"),
                html: bool = True, embed: bool | None = None, max_samples: int | None = None,
                tracking: bool = False, tracking_uri: str | None = None,
                experiment: str = "restorebench", console: Any = None) -> ReportFiles:
    """Read the runs, write every table format, the figures and the HTML; log them to MLflow."""
    from harness.report.figures import plot_quality_vs_latency
    from harness.report.html import build_html
    from harness.report.leaderboard import build_leaderboard, rich_table, write_tables

    runs = _read_inputs(paths)
    if not runs:
        raise ValueError("no run to report on")
    if out_dir is None:
        out_dir = (runs[0].run_dir / "report" if len(runs) == 1 else
                   Path(output_dir) / "reports" / datetime.now().strftime("report-%Y%m%d-%H%M%S"))
    out_dir = Path(out_dir)
    def is_detection(name: str) -> bool:  # as any run declares it
        return any(run.is_detection(name) for run in runs)

    board = build_leaderboard(runs, include=lambda m: not is_detection(m))
    detection = build_leaderboard(runs, include=is_detection)
    result = ReportFiles(out_dir)
    result.files.update(write_tables(board, out_dir, "leaderboard"))
    if detection.metrics:
        tables = write_tables(detection, out_dir, "detection")
        result.files.update({f"detection_{k}": v for k, v in tables.items()})
    scatter = plot_quality_vs_latency(board, out_dir / "quality_vs_latency.png")
    if scatter is not None:
        result.files["scatter"] = scatter
    if html:
        result.files["html"] = build_html(runs, board, detection if detection.metrics else None,
                                          out_dir / "report.html", scatter=scatter, embed=embed,
                                          max_samples=max_samples)
    if console is not None:
        console.print(rich_table(board))
        if detection.metrics:
            console.print(rich_table(detection, title="detection"))
        for index, note in enumerate(board.notes, 1):
            console.print(f"[yellow]\\[{index}][/] {escape(note)}", markup=True, highlight=False)
    if tracking:
        result.parent_run_id = _log_report(result, runs, output_dir, tracking_uri, experiment)
    return result


def _read_inputs(paths: list[Path]) -> list[Any]:
    """Run folders through the report's reader; a reference folder (``results/reference``, see
    :mod:`harness.reference.viewer`) as one run holding its aggregates."""
    from harness.reference.viewer import is_reference_folder, report_payload
    from harness.report.load import read_runs, run_from_payload

    runs = []
    for path in paths:
        if is_reference_folder(path):
            runs.append(run_from_payload(report_payload(path), Path(path), []))
        else:
            runs += read_runs([path])
    return runs


def _log_report(result: ReportFiles, runs: list[Any], output_dir: Path, tracking_uri: str | None,
                experiment: str) -> str:
    """One MLflow parent run holding the report files (HTML, tables, PNGs) as artifacts."""
    from harness.io.results import git_hash
    from harness.tracking.factory import open_tracker
    from harness.tracking.store import default_tracking_uri

    uri = tracking_uri or default_tracking_uri(Path(output_dir))
    tracker = open_tracker(uri, experiment, Path(output_dir) / "mlartifacts")
    parent = tracker.start_parent(
        f"report-{datetime.now().strftime('%Y%m%d-%H%M%S')}",
        tags={"report": "leaderboard", "git_hash": git_hash(), "argv": " ".join(sys.argv),
              "report_dir": str(result.out_dir.resolve())},
        params={"runs": ",".join(r.run_id for r in runs),
                "run_dirs": ",".join(str(r.run_dir.resolve()) for r in runs)})
    status = "FAILED"
    try:
        for path in result.files.values():
            tracker.log_artifact(parent, path, "report")
        html = result.files.get("html")
        files_dir = html.with_name(html.stem + "_files") if html else None
        if files_dir is not None and files_dir.is_dir():
            for path in sorted(files_dir.iterdir()):
                tracker.log_artifact(parent, path, f"report/{files_dir.name}")
        status = "FINISHED"
    finally:
        tracker.end(parent, status)
    return parent


# Commands -----------------------------------------------------------------------------------------
def report(
    paths: RunDirs = None,
    experiment: Annotated[str | None, typer.Option(
        "--experiment", help="Report on the runs of this MLflow experiment (their run_dir tags).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Folder for the report files (default RUN_DIR/report, or OUTPUT_DIR/reports/<time>).")] = None,
    output_dir: OutputDir = Path("results"),
    markdown: Annotated[bool, typer.Option(help="Print the markdown table instead of the rich one.")] = False,
    html: Annotated[bool, typer.Option(help="Write report.html.")] = True,
    embed: Annotated[str, typer.Option(
        help="Images in the HTML: auto (embed unless previews exceed 48 MB), yes, no (link copies).")
    ] = "auto",
    max_samples: Annotated[int | None, typer.Option(
        callback=lambda n: _check_max_samples(n),
        help="Show at most N samples per task in the viewer.")] = None,
    no_tracking: Annotated[bool, typer.Option(
        "--no-tracking", help="Do not log the report to MLflow.")] = False,
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow URI (default sqlite:///OUTPUT_DIR/mlflow.db).")] = None,
    log_experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment the report run goes to (default: --experiment, else restorebench).")] = None,
    every: Annotated[bool, typer.Option(
        "--all", help="Every run under --output-dir (studies included), one row per run.")] = False,
) -> None:
    """Leaderboard across runs (rich, markdown, CSV, LaTeX) and a self-contained HTML report."""
    from harness.cli.common import console, fail, user_errors

    if embed not in ("auto", "yes", "no"):
        fail(f"--embed must be auto, yes or no, not {embed!r}")
    try:
        if every and (paths or experiment):
            raise ValueError("--all reads every run under --output-dir; give it without RUN_DIRS "
                             "or --experiment")
        run_paths = resolve_paths(paths, experiment, output_dir, tracking_uri, every=every)
        files = make_report(run_paths, out, output_dir=output_dir, html=html,
                            embed=None if embed == "auto" else embed == "yes", max_samples=max_samples,
                            tracking=not no_tracking, tracking_uri=tracking_uri,
                            experiment=log_experiment or experiment or "restorebench",
                            console=None if markdown else console)
    except user_errors() as exc:  # RunReadError is a ValueError
        fail(str(exc))
    if markdown:
        console.print(files.files["markdown"].read_text(encoding="utf-8"), markup=False, highlight=False)
    for kind, path in files.files.items():
        console.print(f"{kind}: {path}", markup=False, highlight=False)
    if files.parent_run_id:
        console.print(f"MLflow parent run: {files.parent_run_id}")


def _where(run: Any) -> str:
    """A run as a reader finds it: its folder, and its id when that differs from the name."""
    return str(run.run_dir) + ("" if run.run_id == run.run_dir.name else f" (run {run.run_id})")


def _candidates(runs: list[Any], name: str, task: str) -> list[tuple[Any, Any]]:
    """(run, unit) of restorer ``name`` on ``task``; ``NAME@RUN`` picks the run by id or folder."""
    pairs = [(r, u) for r in runs for u in r.units if u.task == task]
    exact = [(r, u) for r, u in pairs if name in (u.restorer, r.label(u.restorer))]
    if not exact and "@" in name:
        restorer, _, run_id = name.rpartition("@")
        exact = [(r, u) for r, u in pairs if restorer in (u.restorer, r.label(u.restorer))
                 and run_id in (r.run_id, r.run_dir.name, str(r.run_dir))]
    return exact


def find_pair(runs: list[Any], a: str, b: str, task: str, where: str) -> tuple[Any, Any, Any, Any]:
    """(run A, unit A, run B, unit B) on ``task`` among ``runs`` (oldest first): the latest run
    that holds both (a paired comparison wants the same images), else the latest of each. Errors
    list the choices and say that run folders can be given."""
    if not any(u.task == task for r in runs for u in r.units):
        tasks = sorted({u.task for r in runs for u in r.units})
        raise ValueError(f"no results for task {task!r} in {where} (tasks there: "
                         f"{', '.join(tasks) or 'none'}); give the run folders that hold it: "
                         f"bench compare A B RUN_DIR [RUN_DIR ...] --task {task}, or --output-dir ROOT")
    found = {name: _candidates(runs, name, task) for name in (a, b)}
    for name, candidates in found.items():
        if not candidates:
            choices = sorted({u.restorer for r in runs for u in r.units if u.task == task})
            raise ValueError(f"no restorer {name!r} on {task} in {where}; choose from: "
                             f"{', '.join(choices)} (NAME@RUN picks one run)")
    shared = [r for r, _ in found[a] if any(rb is r for rb, _ in found[b])]
    if shared:
        run = shared[-1]
        unit_a = next(u for r, u in found[a] if r is run)
        unit_b = next(u for r, u in found[b] if r is run)
        return run, unit_a, run, unit_b
    (run_a, unit_a), (run_b, unit_b) = found[a][-1], found[b][-1]
    return run_a, unit_a, run_b, unit_b


def _directions(runs: list[Any], names: list[str]) -> dict[str, bool | None]:
    """Each metric's direction as the runs declare it, else as :mod:`harness.metrics.directions`
    knows it (a metric the runs do not list)."""
    from harness.metrics.directions import metric_direction

    directions: dict[str, bool | None] = {}
    for run in runs:
        directions.update({k: v for k, v in run.directions.items() if directions.get(k) is None})
    return {**{name: metric_direction(name) for name in names if name not in directions}, **directions}


def _paired_table(results: list[Any], title: str) -> Any:
    """The rich table of a paired comparison (one row per metric)."""
    from rich.table import Table

    from harness.report.paired import result_frame

    frame = result_frame(results, "A", "B")
    table = Table(title=escape(title))
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column == "metric" else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*[escape(str(v)) for v in row])
    return table


def compare(
    a: Annotated[str, typer.Argument(help="Restorer A (name, or NAME@RUN when in several runs).")],
    b: Annotated[str, typer.Argument(help="Restorer B.")],
    paths: RunDirs = None,
    task: Annotated[str | None, typer.Option(
        "--task", "-t", help="Task (may be omitted when the runs hold one).")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m",
        help="Metric(s) to compare (default: all per-image metrics, latency, memory).")] = None,
    experiment: Annotated[str | None, typer.Option(help="Read the runs of this MLflow experiment.")] = None,
    output_dir: OutputDir = Path("results"),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow URI for --experiment.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the comparison as CSV to this file.")] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap / permutation resamples.")] = 9999,
    seed: Annotated[int, typer.Option(help="Seed of the resampling.")] = 0,
) -> None:
    """Paired per-image comparison of A and B on one task: Δ with bootstrap CI, p-values, win rate."""
    from harness.cli.common import console, fail, user_errors
    from harness.io.tables import write_csv
    from harness.report.load import read_runs
    from harness.report.paired import compare_records, metrics_of, result_records

    try:
        where = (", ".join(str(p) for p in paths) if paths else f"experiment {experiment!r}"
                 if experiment else f"the runs under {output_dir}")
        runs = read_runs(list(paths) if paths else resolve_paths(None, experiment, output_dir,
                                                                 tracking_uri, every=True))
        if task is None:
            tasks = sorted({u.task for r in runs for u in r.units})
            if len(tasks) != 1:
                raise ValueError(f"--task is needed; {where} hold {', '.join(tasks)}")
            task = tasks[0]
        run_a, unit_a, run_b, unit_b = find_pair(runs, a, b, task, where)
    except user_errors() as exc:  # RunReadError is a ValueError
        fail(str(exc))
    names = metric or [m for m in metrics_of(unit_a.records) if m in metrics_of(unit_b.records)]
    directions = _directions(runs, names)
    results = compare_records(unit_a.records, unit_b.records, names, directions,
                              resamples=resamples, seed=seed)
    if not results or all(r.n == 0 for r in results):
        fail(f"{a} and {b} share no scored image on {task} for {', '.join(names) or 'any metric'}")
    console.print(_paired_table(results, f"A = {run_a.label(unit_a.restorer)}, B = "
                                         f"{run_b.label(unit_b.restorer)} on {task}: paired per image"))
    console.print(f"A from {_where(run_a)}\nB from {_where(run_b)}" + (
        "" if run_a is run_b else "\n(different runs: only the images both scored are paired)"),
        markup=False, highlight=False)
    console.print("Δ = A − B in the metric's units; CI: percentile bootstrap of the mean difference; "
                  "p: paired permutation (sign flips) and Wilcoxon signed-rank, two-sided.",
                  highlight=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_csv(result_records(results, unit_a.restorer, unit_b.restorer, task), out, index=False)
        console.print(f"csv: {out}", markup=False)
