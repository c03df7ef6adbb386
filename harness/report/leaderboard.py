"""One leaderboard across runs: restorer × task rows, mean ± 95% CI per metric, best marked.

Rows are (run, restorer, task) units; when several runs are given a ``run`` column tells them
apart. Columns are the quality metrics (psnr, ssim, lpips, niqe, then the others in order of
appearance), then latency and peak memory, so speed sits beside quality.

Choices a reader of the table should know:

* **Best is per task and per column**, using each metric's direction
  (:func:`harness.metrics.directions.metric_direction`);
  a column whose direction is unknown gets no mark rather than a guessed one. Ties on the mean
  are all marked. Latency and peak memory are marked only when the best is clearly apart
  (:func:`_clearly_best`): their spread across reruns is often larger than their differences.
* **A missing metric keeps its column** and its cell says ``missing`` with a numbered note
  holding the reason (weights absent, FR metric on a task without GT, no finite value); the note
  survives into every format. The old ``--markdown`` dropped such columns silently.
* **Conventions per task** (colour space, crop border, GT-mean, quantisation, each metric's
  implementation) are footnotes: two PSNR columns are only comparable under the same conventions.
* The CSV is numeric and wide (``psnr_mean``, ``psnr_ci95_lo``, ``psnr_ci95_hi``, ``psnr_n``,
  ``psnr_best``, ``psnr_missing``) for outside tools; markdown and LaTeX are for papers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.io.tables import markdown_cell, write_csv
from harness.metrics.directions import RUNTIME_METRICS
from harness.report.load import Aggregate, RunData, Unit

QUALITY_FIRST = ("psnr", "ssim", "lpips", "niqe")


@dataclass
class Cell:
    """A leaderboard cell: the aggregate, or the reason it is absent."""

    agg: Aggregate | None
    missing: str | None = None
    best: bool = False
    #: decimals, one per column (:func:`column_digits`), so a column reads as one scale
    digits: int | None = None


@dataclass
class Row:
    run_id: str
    restorer: str
    task: str
    n_ok: int
    n_failed: int
    cells: dict[str, Cell]


@dataclass
class Leaderboard:
    """Rows, ordered columns, each column's direction, and the notes every format prints."""

    rows: list[Row]
    metrics: list[str]
    directions: dict[str, bool | None]
    multi_run: bool
    #: task → its conventions line (one per distinct convention set when runs disagree).
    conventions: dict[str, list[str]]
    #: missing reasons in order of first use; cells refer to them by 1-based index.
    notes: list[str] = field(default_factory=list)
    #: metrics measured with a stand-in (e.g. an untrained detector): headed "(stand-in)"
    stand_in: set[str] = field(default_factory=set)

    def note_index(self, reason: str) -> int:
        if reason not in self.notes:
            self.notes.append(reason)
        return self.notes.index(reason) + 1


def order_metrics(names: list[str]) -> list[str]:
    """Quality metrics first (psnr, ssim, lpips, niqe, others as found), then latency, memory."""
    ordered = [m for m in QUALITY_FIRST if m in names]
    ordered += [m for m in names if m not in ordered and m not in RUNTIME_METRICS]
    return ordered + [m for m in RUNTIME_METRICS if m in names]


def _missing_reason(unit: Unit, run: RunData, metric: str) -> str:
    if metric in unit.missing:
        return f"{metric}: {unit.missing[metric]}"
    agg = unit.aggregates.get(metric)
    if agg is not None and agg.n_nonfinite:
        return f"{metric}: no finite value ({agg.n_nonfinite} image(s) scored inf, e.g. identical to GT)"
    if agg is not None:
        return f"{metric}: no image was scored"
    info = run.task_info(unit.task)
    if info.get("has_gt") is False and run.metric_mode(metric) == "FR":
        return f"{metric}: full-reference metric; task {unit.task} has no ground truth"
    return f"{metric}: not computed for {unit.task} in run {run.run_id}"


def conventions_line(run: RunData, task: str) -> str:
    """``demo: color_space=rgb, crop_border=0, ...; psnr=pyiqa psnr (rgb), ...`` for a footnote."""
    info = run.task_info(task)
    parts = [f"{k}={_short(v)}" for k, v in (info.get("conventions") or {}).items() if v is not None]
    impls = []
    for key, value in (info.get("metrics") or {}).items():
        name, _, attr = key.partition(".")
        if attr == "impl":
            space = (info.get("metrics") or {}).get(f"{name}.color_space")
            impls.append(f"{name}: {value}" + (f" ({space})" if space else ""))
    text = f"{task}: " + (", ".join(parts) if parts else "conventions not recorded")
    if impls:
        text += "; " + "; ".join(impls)
    if info.get("n") is not None:
        text += f"; n={info['n']}"
    return text


def _short(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def build_leaderboard(runs: list[RunData], include: Callable[[str], bool] = lambda name: True
                      ) -> Leaderboard:
    """Rows for every unit of every run; only metrics ``include`` accepts become columns."""
    names: list[str] = []
    directions: dict[str, bool | None] = {}
    for run in runs:
        for unit in run.units:
            names += [m for m in unit.aggregates if m not in names and include(m)]
        names += [m for m in run.missing if m not in names and include(m)]
        for name, direction in run.directions.items():
            if directions.get(name) is None:
                directions[name] = direction
    metrics = order_metrics(names)
    board = Leaderboard([], metrics, {m: directions.get(m) for m in metrics}, len(runs) > 1, {})
    for run in runs:
        for unit in run.units:
            cells: dict[str, Cell] = {}
            for metric in metrics:
                agg = unit.aggregates.get(metric)
                if agg is not None and agg.mean is not None and math.isfinite(agg.mean):
                    cells[metric] = Cell(agg)
                else:
                    cells[metric] = Cell(None, _missing_reason(unit, run, metric))
            board.rows.append(Row(run.run_id, run.label(unit.restorer), unit.task, unit.n_ok,
                                  unit.n_failed, cells))
            line = conventions_line(run, unit.task)
            lines = board.conventions.setdefault(unit.task, [])
            if line not in lines:
                lines.append(line)
    _mark_best(board)
    board.stand_in = {m for m in metrics if any(_stand_in(run, m) for run in runs)}
    for metric in metrics:
        digits = column_digits([r.cells[metric].agg.mean for r in board.rows if r.cells[metric].agg])
        for row in board.rows:
            row.cells[metric].digits = digits
    for row in board.rows:  # number the notes in reading order
        for metric in metrics:
            if row.cells[metric].missing:
                board.note_index(row.cells[metric].missing)
    return board


def _stand_in(run: RunData, metric: str) -> bool:
    """Whether a run says ``metric`` came from a stand-in (its metric parameter ``stand_in``, as
    ``downstream.toy_detector``'s detector declares itself)."""
    tasks = run.payload.get("tasks") or {}
    return any(isinstance(info, dict) and (info.get("metrics") or {}).get(f"{metric}.stand_in")
               for info in tasks.values())


def _mark_best(board: Leaderboard) -> None:
    """Per task and metric: the best mean (ties included), when the direction is known."""
    tasks = list(dict.fromkeys(r.task for r in board.rows))
    for metric in board.metrics:
        lower = board.directions.get(metric)
        if lower is None:
            continue
        for task in tasks:
            cells = [r.cells[metric] for r in board.rows if r.task == task and r.cells[metric].agg]
            if len(cells) < 2:
                continue
            values = [c.agg.mean for c in cells if c.agg and c.agg.mean is not None]
            target = min(values) if lower else max(values)
            best = [c for c in cells if c.agg is not None and c.agg.mean == target]
            if metric in RUNTIME_METRICS and not _clearly_best(best, cells, metric):
                continue
            for cell in best:
                cell.best = True


#: peak memory agrees to this fraction between reruns (docs/latency.md); smaller gaps are noise
MEMORY_RERUN_SPREAD = 0.10


def _clearly_best(best: list[Cell], cells: list[Cell], metric: str) -> bool:
    """A runtime figure is ranked only when its spread is smaller than the differences: the best
    latency's 95% CI below every other's, the best peak memory 10% below every other's (both
    lower-is-better). Latency and CPU memory move between reruns far more than quality does."""
    others = [c.agg for c in cells if c not in best and c.agg is not None]
    top = best[0].agg
    if len(best) > 1 or top is None or top.mean is None or not others:
        return False
    if metric == "peak_mem_mb":
        return all(o.mean is not None and top.mean * (1 + MEMORY_RERUN_SPREAD) < o.mean for o in others)
    return top.hi is not None and all(o.lo is not None and top.hi < o.lo for o in others)


# Formatting -------------------------------------------------------------------------------------
def column_digits(means: list[float | None]) -> int:
    """Decimals for a whole column: about four significant digits of its largest |mean|, at
    least one and at most four (PSNR 28.64, SSIM 0.8123, latency 13599.6 and 5.7 in one column,
    not 13599.60 next to 5.7207)."""
    finite = [abs(m) for m in means if m is not None and math.isfinite(m) and m != 0]
    if not finite:
        return 4
    return min(4, max(1, 3 - math.floor(math.log10(max(finite)))))


def format_value(agg: Aggregate, digits: int | None = None) -> str:
    """``28.64 ±1.67``: mean and 95% CI half-width; ``digits`` is the column's (see
    :func:`column_digits`), else the value's own magnitude decides."""
    mean = agg.mean if agg.mean is not None else math.nan
    if digits is None:
        digits = column_digits([mean])
    if agg.lo is None or agg.hi is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ±{(agg.hi - agg.lo) / 2:.{digits}f}"


def value_text(row: Row, cell: Cell) -> str:
    assert cell.agg is not None
    text = format_value(cell.agg, cell.digits)
    if cell.agg.n is not None and cell.agg.n != row.n_ok:
        text += f" (n={cell.agg.n})"
    return text


def header(board: Leaderboard, metric: str, up: str = "↑", down: str = "↓", unknown: str = "?") -> str:
    direction = board.directions.get(metric)
    marker = " (stand-in)" if metric in board.stand_in else ""
    return f"{metric}{marker} {unknown if direction is None else down if direction else up}"


def display_frame(board: Leaderboard, bold: Callable[[str], str] = lambda s: s,
                  escape: Callable[[str], str] = lambda s: s, arrows: tuple[str, str, str] = ("↑", "↓", "?"),
                  note_ref: Callable[[int], str] = lambda i: f"missing [{i}]") -> pd.DataFrame:
    """String table for printing: best cells wrapped by ``bold``; every text passed to ``escape``."""
    columns = (["run"] if board.multi_run else []) + ["restorer", "task"]
    columns += [header(board, m, *arrows) for m in board.metrics] + ["n", "failed"]
    data = []
    for row in board.rows:
        cells = ([escape(row.run_id)] if board.multi_run else []) + [escape(row.restorer), escape(row.task)]
        for metric in board.metrics:
            cell = row.cells[metric]
            text = (escape(value_text(row, cell)) if cell.agg is not None
                    else note_ref(board.note_index(cell.missing or metric)))
            cells.append(bold(text) if row.cells[metric].best else text)
        data.append(cells + [str(row.n_ok), str(row.n_failed)])
    return pd.DataFrame(data, columns=[escape(c) for c in columns])


def numeric_frame(board: Leaderboard) -> pd.DataFrame:
    """Wide numeric table for CSV: per metric mean, CI, n, best flag and missing reason."""
    data = []
    for row in board.rows:
        item: dict[str, Any] = {"run": row.run_id, "restorer": row.restorer, "task": row.task}
        for metric in board.metrics:
            cell = row.cells[metric]
            agg = cell.agg
            item[f"{metric}_mean"] = agg.mean if agg else None
            item[f"{metric}_std"] = agg.std if agg else None
            item[f"{metric}_ci95_lo"] = agg.lo if agg else None
            item[f"{metric}_ci95_hi"] = agg.hi if agg else None
            item[f"{metric}_n"] = agg.n if agg else 0
            item[f"{metric}_best"] = cell.best
            item[f"{metric}_missing"] = cell.missing or ""
        item["n_ok"], item["n_failed"] = row.n_ok, row.n_failed
        data.append(item)
    return pd.DataFrame(data)


def _pipe_table(frame: pd.DataFrame) -> str:
    """GitHub pipe table (pandas' ``to_markdown`` needs ``tabulate``, which is not a dependency)."""
    def clean(text: Any) -> str:  # cells arrive escaped (markdown_cell); keep each on one line
        return str(text).replace("\n", " ")

    lines = ["| " + " | ".join(clean(c) for c in frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(clean(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def direction_legend(board: Leaderboard) -> str:
    unknown = [m for m in board.metrics if board.directions.get(m) is None]
    text = ("↑ higher is better, ↓ lower is better; best per task in bold; "
            "± is the 95% bootstrap CI half-width.")
    if unknown:
        text += f" Direction unknown (no best marked): {', '.join(unknown)}."
    return text


def to_markdown(board: Leaderboard, title: str | None = None) -> str:
    """Pipe table, then the legend, missing-metric notes and per-task conventions."""
    parts = [f"## {markdown_cell(title)}", ""] if title else []
    parts += [_pipe_table(display_frame(board, bold=lambda s: f"**{s}**", escape=markdown_cell)), ""]
    parts += [markdown_cell(direction_legend(board)), ""]
    parts += [f"[{i}] {markdown_cell(note)}" + "  " for i, note in enumerate(board.notes, 1)]
    if board.notes:
        parts.append("")
    parts += ["Conventions:", ""] + [f"- {markdown_cell(line)}" for lines in board.conventions.values()
                                     for line in lines]
    return "\n".join(parts) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "±": r"$\pm$", "↑": r"$\uparrow$",
                  "↓": r"$\downarrow$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(board: Leaderboard, caption: str = "restorebench leaderboard") -> str:
    """A ``table`` with a booktabs tabular (pandas ``to_latex``) and the notes beneath it."""
    frame = display_frame(board, bold=lambda s: rf"\textbf{{{s}}}", escape=latex_escape,
                          note_ref=lambda i: rf"missing\textsuperscript{{{i}}}")
    tabular = frame.to_latex(index=False, escape=False, column_format="l" * (3 if board.multi_run else 2)
                             + "r" * (len(frame.columns) - (3 if board.multi_run else 2)))
    notes = [latex_escape(direction_legend(board))]
    notes += [rf"\textsuperscript{{{i}}}{latex_escape(note)}" for i, note in enumerate(board.notes, 1)]
    notes += [latex_escape(line) for lines in board.conventions.values() for line in lines]
    return ("% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n\\small\n"
            f"\\caption{{{latex_escape(caption)}}}\n{tabular}"
            "\\par\\vspace{2pt}\\footnotesize\n" + "\\\\\n".join(notes) + "\n\\end{table}\n")


def write_tables(board: Leaderboard, out_dir: Path, stem: str = "leaderboard") -> dict[str, Path]:
    """``<stem>.md``, ``<stem>.csv`` and ``<stem>.tex`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out_dir / f"{stem}.md", "csv": out_dir / f"{stem}.csv",
             "latex": out_dir / f"{stem}.tex"}
    files["markdown"].write_text(to_markdown(board), encoding="utf-8")
    write_csv(numeric_frame(board), files["csv"], index=False)
    files["latex"].write_text(to_latex(board), encoding="utf-8")
    return files


def rich_table(board: Leaderboard, title: str = "leaderboard (mean ±95% CI half-width)") -> Any:
    """The leaderboard as a ``rich`` table, best cells bold green."""
    from rich.markup import escape
    from rich.table import Table

    frame = display_frame(board)
    table = Table(title=title)
    n_text = (3 if board.multi_run else 2)
    for index, column in enumerate(frame.columns):
        table.add_column(escape(column), justify="left" if index < n_text else "right")
    for row, values in zip(board.rows, frame.itertuples(index=False), strict=True):
        cells = [escape(v) for v in values]
        for offset, metric in enumerate(board.metrics):
            if row.cells[metric].best:
                cells[n_text + offset] = f"[bold green]{cells[n_text + offset]}[/]"
        table.add_row(*cells)
    return table
