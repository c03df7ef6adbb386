"""Studies: a grid of restorers × tasks run by the :class:`~harness.run.runner.Runner`, then tabled and drawn.

Two studies share one engine (:func:`run_study`):

* **OOD** — rows are restorers (a trained restorer may appear several times, once per checkpoint,
  each tagged with what it was trained on), columns are test tasks; the grid becomes
  train-on × test-on. Output: long and pivoted tables (CSV + markdown) and a heatmap.
* **severity** — the same degradation at several levels; one curve per restorer and metric.

Both figures show what each restorer gains over a **baseline** row (``--baseline LABEL``; by
default the entry whose restorer class declares ``is_input_passthrough``, i.e. the degraded
input's own scores), with n on every figure; the gains also go to ``<kind>_<metric>_gain.csv``.

Restorer entries are ``NAME[key=value,...]@TAG``: the bracket is the restorer's options (as in
``bench run``), the optional ``@TAG`` says what that checkpoint was trained on and the row is
labelled ``NAME (trained on TAG)``.

Studies live under an output root: ``<root>/studies/<name>/``, logged to the root's MLflow store
(``<root>/mlflow.db``, the same store as ``bench run`` and ``bench train``).

The whole grid is one runner call (``<study>/run/``: one ``results.json``/``samples.jsonl``):
run units are keyed by restorer configuration, so two checkpoints of one restorer are two rows
of one run, labelled by their entries. With tracking, the study opens one MLflow parent run
holding the tables and figures as artifacts; the runner's parent run is attached beneath it
(tag ``mlflow.parentRunId``), with the per-cell child runs beneath that.

Nothing here names a concrete restorer or task; how task names are built for a severity sweep
is a template the caller passes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.api.items import parse_labelled_restorer
from harness.io.names import check_folder_name
from harness.io.results import (
    LOCK_FILE,
    RESULTS_FILE,
    SAMPLES_FILE,
    STUDY_MARKER,
    git_hash,
    new_run_name,
    read_results,
)
from harness.io.safefiles import check_not_link
from harness.io.tables import markdown_cell, write_csv
from harness.metrics.directions import direction_arrow, metric_direction
from harness.run.plan import RestorerItem
from harness.run.runner import RunConfig, run_benchmark
from harness.study.figures import (
    curves_title,
    gain_meaning,
    gain_over,
    heatmap_data,
    plot_curves,
    plot_heatmap,
)
from harness.tracking.factory import open_tracker
from harness.tracking.store import check_reachable, default_tracking_uri, describe_run

# Restorer entries -------------------------------------------------------------------------------

class StudyFailed(RuntimeError):
    """Every run of a study failed to score: nothing to table or draw (the runs are kept)."""

@dataclass
class StudyEntry:
    """One row of a study: a restorer, its options, and optionally what it was trained on."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    train_tag: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name + (f" (trained on {self.train_tag})" if self.train_tag else "")


def parse_entry(spec: str) -> StudyEntry:
    """``'unet[checkpoint=a.pt]@noise'`` → StudyEntry('unet', {'checkpoint': 'a.pt'}, 'noise');
    ``'LABEL=unet[...]'`` names the row."""
    label, name, options, tag = parse_labelled_restorer(spec)
    return StudyEntry(name, options, tag, label or "")


def label_entries(entries: list[StudyEntry]) -> list[StudyEntry]:
    """Make row labels unique: entries that would share one get their options appended."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.label] = counts.get(entry.label, 0) + 1
    for entry in entries:
        if counts[entry.label] > 1 and entry.options:
            opts = ",".join(f"{k}={v}" for k, v in entry.options.items())
            entry.label = f"{entry.label} [{opts}]"
    labels = [e.label for e in entries]
    duplicates = sorted({lab for lab in labels if labels.count(lab) > 1})
    if duplicates:
        raise ValueError(f"restorer entries {duplicates} are given twice with the same options")
    return entries


def parse_levels(text: str) -> list[int]:
    """``"1-5"`` → [1,2,3,4,5]; ``"1,3,5"`` → [1,3,5]."""
    levels: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                levels.extend(range(lo, hi + 1))
            elif part:
                levels.append(int(part))
    except ValueError as exc:
        raise ValueError(f"--levels {text!r}: write a range '1-5' or a list '1,3,5'") from exc
    if not levels:
        raise ValueError(f"--levels {text!r} selects no level")
    return levels


# The engine -------------------------------------------------------------------------------------
@dataclass
class StudyConfig:
    kind: str  # "ood" or "severity" (names the outputs)
    entries: list[StudyEntry]
    tasks: list[tuple[str, dict[str, Any]]]
    #: severity studies: the level of each task, in the order of ``tasks``.
    levels: list[int] | None = None
    metrics: list[str] | None = None
    primary_metric: str = "psnr"
    device: str = "auto"
    limit: int | None = None
    seed: int | None = None  # None: each task keeps its own seed (as bench run)
    #: the output root: the study goes to ``<root>/studies/<name>/`` and logs to the root's
    #: MLflow store (``<root>/mlflow.db``), the one ``bench run`` and ``bench train`` use
    output_dir: Path = Path("results")
    name: str | None = None
    tracking: bool = True
    tracking_uri: str | None = None
    experiment: str = "restorebench"
    show_progress: bool = True
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    #: configured metric objects computed in the same pass (e.g. a detection metric)
    metric_specs: list[Any] = field(default_factory=list)
    #: metrics that get a table and a figure panel (default: every metric present); the long
    #: table ``study.csv`` always holds all of them (a detection metric has dozens of companions)
    report_metrics: list[str] | None = None
    #: ``RunConfig.executor`` (None = local; ``harness.cli.executor_options.make_executor`` for Ray)
    executor: Any = None
    shard_size: int | None = None
    #: ``RunConfig.threads`` (None = the CPUs this process may use)
    threads: int | None = None
    #: the row label gains are drawn over; None = the entry that passes its input through
    #: (see :func:`baseline_label`), or absolute values when there is none
    baseline: str | None = None
    #: severity studies: the clean set and the degradation, for the figure's title
    clean: str | None = None
    degradation: str | None = None


@dataclass
class StudySummary:
    study_dir: Path
    table: pd.DataFrame  # long form: one row per (entry, task, metric)
    files: dict[str, Path]
    parent_run_id: str
    missing_metrics: dict[str, str]
    n_failed: int


def _study_dir(output_dir: Path, name: str) -> Path:
    """``<root>/studies/NAME``, refused if it holds a study already, or a ``bench run`` (a study
    and a run never share a folder: runs cannot be named ``studies``, and the study marks its own
    with :data:`STUDY_MARKER`)."""
    study_dir = output_dir / name
    check_not_link(study_dir, "study folder")
    if (study_dir / "study.csv").exists():
        raise FileExistsError(f"{study_dir} already holds a study; choose another --name")
    if (study_dir / SAMPLES_FILE).exists() or (study_dir / LOCK_FILE).exists():
        raise FileExistsError(f"{study_dir} holds a bench run (--run-name {name}); choose another "
                              "--name")
    return study_dir


def run_study(config: StudyConfig, console: Any = None) -> StudySummary:
    """Run every entry on every task, then write tables, figures and the MLflow parent run."""
    if not config.entries or not config.tasks:
        raise ValueError("a study needs at least one --restorer and one task")
    entries = label_entries(list(config.entries))
    baseline = baseline_label(entries, config.baseline)
    name = check_folder_name(config.name or f"{config.kind}-{new_run_name()}", "--name")
    study_dir = _study_dir(Path(config.output_dir) / "studies", name)
    uri = config.tracking_uri or default_tracking_uri(Path(config.output_dir))
    if config.tracking:
        check_reachable(uri)
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / STUDY_MARKER).touch()
    tracker = (open_tracker(uri, config.experiment, Path(config.output_dir) / "mlartifacts")
               if config.tracking else None)
    parent = _start_parent(tracker, config, name, entries, study_dir) if tracker is not None else ""
    status = "FAILED"
    try:
        run = RunConfig(restorers=[RestorerItem(e.name, dict(e.options), label=e.label,
                                                train_tag=e.train_tag) for e in entries],
                        tasks=list(config.tasks), device=config.device, limit=config.limit,
                        metrics=config.metrics, metric_specs=list(config.metric_specs),
                        output_dir=study_dir, run_name="run",
                        seed=config.seed, tracking=config.tracking, tracking_uri=uri,
                        experiment=config.experiment, argv=config.argv,
                        show_progress=config.show_progress, parent_run_id=parent or None,
                        executor=config.executor, shard_size=config.shard_size,
                        threads=config.threads)
        summary = run_benchmark(run, console)
        missing = dict(summary.missing_metrics)
        table = pd.DataFrame(_rows(entries, summary.run_dir, config.levels))
        files = write_outputs(config, table, study_dir, missing, baseline)
        if tracker is not None:
            for path in files.values():
                tracker.log_artifact(parent, path)
            tracker.log_metrics(parent, _headline_metrics(table, config.primary_metric))
            tracker.log_tags(parent, {f"missing.{k}": v for k, v in missing.items()})
        status = "FINISHED"
    finally:
        if tracker is not None:
            tracker.end(parent, status)
    return StudySummary(study_dir, table, files, parent, missing, summary.n_failed)


def baseline_label(entries: list[StudyEntry], requested: str | None) -> str | None:
    """The row gains are measured against: ``requested`` (a row label, checked before anything
    runs), else the first entry whose restorer class declares ``is_input_passthrough`` (the
    scores of the degraded input itself), else None (the figures then show absolute values)."""
    labels = [e.label for e in entries]
    if requested is not None:
        if requested not in labels:
            raise ValueError(f"--baseline {requested!r} is not a row of this study; the rows are "
                             f"{labels}: pass one of them (quoted if it has spaces)")
        return requested
    from harness.api.registries import RESTORERS

    for entry in entries:
        try:
            cls = RESTORERS.get(entry.name)
        except (KeyError, ImportError):  # the runner reports an unknown restorer itself
            continue
        if getattr(cls, "is_input_passthrough", False) is True:
            return entry.label
    return None


def _start_parent(tracker: Any, config: StudyConfig, name: str, entries: list[StudyEntry],
                  study_dir: Path) -> str:
    """The study's MLflow parent run, named by what it runs (``ood study: a, b @ t1, t2``); the
    study's folder name is the tag ``study_name``."""
    what = describe_run([e.label for e in entries], [t for t, _ in config.tasks])
    tags = {"study": config.kind, "study_name": name, "git_hash": git_hash(),
            "argv": " ".join(config.argv), "study_dir": str(study_dir.resolve())}
    params = {"study": config.kind, "restorers": " | ".join(e.label for e in entries),
              "tasks": ",".join(t for t, _ in config.tasks), "metric": config.primary_metric,
              "limit": config.limit, "seed": config.seed}
    return tracker.start_parent(f"{config.kind} study: {what}", tags=tags, params=params)


def _rows(entries: list[StudyEntry], run_dir: Path, levels: list[int] | None) -> list[dict[str, Any]]:
    """Long-form rows from the study run's ``results.json`` (entry order, task order as run)."""
    results = read_results(run_dir / RESULTS_FILE)
    rows = []
    for entry in entries:
        by_task = entry_results(entry.label, results["results"])
        for task_index, task_name in enumerate(results["tasks"]):
            ran_as, aggregates = by_task.get(task_name, (entry.label, {}))
            for metric, agg in aggregates.items():
                if not isinstance(agg, dict) or metric in ("latency_ms", "peak_mem_mb"):
                    continue
                lo, hi = agg.get("ci95") or (None, None)
                rows.append({"restorer": entry.label, "restorer_name": entry.name,
                             "train_tag": entry.train_tag, "ran_as": ran_as, "task": task_name,
                             **({"level": levels[task_index]} if levels else {}),
                             "metric": metric, "mean": agg.get("mean"), "std": agg.get("std"),
                             "ci95_lo": lo, "ci95_hi": hi, "n": agg.get("n"),
                             "n_failed": aggregates.get("n_failed", 0), "run_dir": str(run_dir)})
    return rows


def entry_results(label: str, results: dict[str, dict[str, Any]]
                  ) -> dict[str, tuple[str, dict[str, Any]]]:
    """Task → (the run's row label, its aggregates) of the study entry labelled ``label``.

    An entry whose restorer chooses its options per task (``Restorer.options_for_task``:
    ``unfoldldm[checkpoint=auto]``) runs as one spec per choice, labelled ``LABEL[choice]`` by the
    plan; the study keeps it one row, and ``ran_as`` in the table says what ran on each task."""
    out = {task: (label, aggregates) for task, aggregates in results.get(label, {}).items()}
    for ran_as, by_task in results.items():
        if ran_as.startswith(label + "["):
            for task, aggregates in by_task.items():
                out.setdefault(task, (ran_as, aggregates))
    return out


def _headline_metrics(table: pd.DataFrame, metric: str) -> dict[str, float]:
    if table.empty:
        return {}
    sub = table[table["metric"] == metric]
    return {f"{metric}.{r.restorer}.{r.task}": r.mean for r in sub.itertuples() if r.mean is not None}


# Tables -----------------------------------------------------------------------------------------
def to_markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub pipe table (pandas' ``to_markdown`` needs ``tabulate``, which we do not require)."""
    header = [str(frame.index.name or "")] + [str(c) for c in frame.columns]

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "–"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(markdown_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for index, row in frame.iterrows():
        cells = [markdown_cell(index)] + [markdown_cell(cell(v)) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pivot(table: pd.DataFrame, metric: str, columns: str, values: str = "mean") -> pd.DataFrame:
    """Rows = restorer labels (study order), columns = tasks or levels (run order), ``values``
    (the means, or ``"n"``: the images behind each)."""
    sub = table[table["metric"] == metric]
    frame = sub.pivot_table(index="restorer", columns=columns, values=values, aggfunc="first",
                            sort=False)
    frame = frame.reindex(index=list(dict.fromkeys(sub["restorer"])),
                          columns=list(dict.fromkeys(sub[columns])))
    frame.index.name, frame.columns.name = "restorer", None
    return frame


def _with_ci(table: pd.DataFrame, metric: str, columns: str) -> pd.DataFrame:
    """The pivot as text cells ``mean ±half-CI (n=k)``: the markdown carries what the CSV has."""
    sub = table[table["metric"] == metric].copy()

    def cell(row: Any) -> str:
        if row["mean"] is None or row["mean"] != row["mean"]:
            return "–"
        digits = 2 if abs(row["mean"]) >= 10 else 3
        half = ((row["ci95_hi"] - row["ci95_lo"]) / 2 if row["ci95_lo"] is not None
                and row["ci95_hi"] is not None and row["ci95_lo"] == row["ci95_lo"] else None)
        ci = f" ±{half:.{digits}f}" if half is not None else ""
        return f"{row['mean']:.{digits}f}{ci} (n={row['n']})"

    sub["mean"] = sub.apply(cell, axis=1)
    return pivot(sub, metric, columns)


def _gains(table: pd.DataFrame, metric: str, columns: str,
           baseline: str | None) -> pd.DataFrame | None:
    """The gain of every row over ``baseline`` on ``metric`` (better > 0), or None when there is
    no baseline or it has no score here (e.g. every image of it failed)."""
    frame = pivot(table, metric, columns)
    if baseline is None or baseline not in frame.index or frame.loc[baseline].isna().all():
        return None
    return gain_over(frame, baseline, metric_direction(metric))


def write_outputs(config: StudyConfig, table: pd.DataFrame, study_dir: Path,
                  missing: dict[str, str], baseline: str | None = None) -> dict[str, Path]:
    """``study.csv``, a pivot CSV (and a gain CSV) per metric, the markdown and the figure."""
    files: dict[str, Path] = {}
    files["csv"] = study_dir / "study.csv"
    write_csv(table, files["csv"], index=False)
    if table.empty:
        raise StudyFailed(f"the study produced no scores (every image failed?); see the runs in "
                           f"{study_dir / 'runs'}")
    present = list(dict.fromkeys(table["metric"]))
    if config.report_metrics:
        present = [m for m in present if m in config.report_metrics]
    requested = [m for m in (config.metrics or []) if m in present]
    metrics = requested + [m for m in present if m not in requested]  # the order asked for
    columns = "level" if config.kind == "severity" else "task"
    sections = [f"# {config.kind} study `{study_dir.name}`", ""]
    if config.kind == "severity":
        sections += [f"Tasks: {', '.join(t for t, _ in config.tasks)}", ""]
    sections += [f"Baseline: `{baseline}` (gains are over its row; > 0 is better)" if baseline
                 else "Baseline: none (no row passes its input through; --baseline LABEL names one)", ""]
    for metric in metrics:
        frame = pivot(table, metric, columns)
        write_csv(frame, study_dir / f"{config.kind}_{metric}.csv")
        files[f"csv_{metric}"] = study_dir / f"{config.kind}_{metric}.csv"
        sections += [f"## {metric} {direction_arrow(metric)} (mean ±95% CI half-width, n images)", "",
                     to_markdown(_with_ci(table, metric, columns)), ""]
        gain = _gains(table, metric, columns, baseline)
        if gain is not None:
            files[f"gain_{metric}"] = study_dir / f"{config.kind}_{metric}_gain.csv"
            write_csv(gain, files[f"gain_{metric}"])
            meaning = gain_meaning(metric, str(baseline), metric_direction(metric))
            sections += [f"Gain over `{baseline}`: {meaning}", "", to_markdown(gain), ""]
    for metric, reason in missing.items():
        sections += [f"- `{metric}` missing: {reason}"]
    files["markdown"] = study_dir / f"{config.kind}.md"
    files["markdown"].write_text("\n".join(sections) + "\n", encoding="utf-8")
    files["figure"] = _figure(config, table, study_dir, metrics, baseline)
    return files


def _figure(config: StudyConfig, table: pd.DataFrame, study_dir: Path, metrics: list[str],
            baseline: str | None) -> Path:
    """The severity curves (with gain panels) or the OOD heatmap of the primary metric."""
    study = f"{config.kind} study '{study_dir.name}'"
    if config.kind == "severity":
        gains = {m: _gains(table, m, "level", baseline) for m in metrics}
        usable = None if any(g is None for g in gains.values()) else gains
        title = curves_title(study, config.clean, config.degradation,
                             table[table["metric"].isin(metrics)]["n"])
        return plot_curves(table, study_dir / "severity_curves.png", metrics, title,
                           usable, baseline if usable else None)
    metric = config.primary_metric if config.primary_metric in metrics else metrics[0]
    frame = pivot(table, metric, "task")
    drawn = baseline if _gains(table, metric, "task", baseline) is not None else None
    data = heatmap_data(frame, pivot(table, metric, "task", "n"), metric, metric_direction(metric),
                        drawn, study)
    return plot_heatmap(data, study_dir / f"ood_{metric}.png")
