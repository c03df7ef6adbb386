"""Figures of the report (matplotlib, headless) and the study outputs it picks up.

* :func:`plot_quality_vs_latency`: one point per (restorer, task) with its 95% CI on both axes,
  latency on a log axis (restorers span 0.1 ms to minutes), one colour per task — the trade-off
  a user choosing a method actually faces.
* :func:`study_outputs`: a run made by ``bench study`` lives at ``<study>/runs/<run>``; the study
  folder already holds its heatmap / severity curves and pivot tables (``harness.study.grid``), so the
  report shows those files rather than redrawing them differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.report.leaderboard import Leaderboard


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters and CI
    import matplotlib.pyplot as plt

    return plt


def plot_quality_vs_latency(board: Leaderboard, path: Path, metric: str = "psnr",
                            latency: str = "latency_ms") -> Path | None:
    """Scatter of ``metric`` against latency; ``None`` when no row has both."""
    points = []
    for row in board.rows:
        q, t = row.cells.get(metric), row.cells.get(latency)
        if q is None or t is None or q.agg is None or t.agg is None:
            continue
        if q.agg.mean is None or t.agg.mean is None or t.agg.mean <= 0:
            continue
        label = row.restorer + (f" ({row.run_id})" if board.multi_run else "")
        points.append((row.task, label, t.agg, q.agg))
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    tasks = list(dict.fromkeys(p[0] for p in points))
    colours = plt.get_cmap("tab10")
    for index, task in enumerate(tasks):
        sub = [p for p in points if p[0] == task]
        xs = [p[2].mean for p in sub]
        ys = [p[3].mean for p in sub]

        def err(values: list, center: list[float]) -> list[list[float]]:
            pairs = list(zip(values, center, strict=True))
            lows = [max(0.0, c - (a.lo if a.lo is not None else c)) for a, c in pairs]
            highs = [max(0.0, (a.hi if a.hi is not None else c) - c) for a, c in pairs]
            return [lows, highs]

        ax.errorbar(xs, ys, xerr=err([p[2] for p in sub], xs), yerr=err([p[3] for p in sub], ys),
                    fmt="o", color=colours(index % 10), label=task, capsize=3, alpha=0.9)
        for (_, label, t, q) in sub:
            ax.annotate(label, (t.mean, q.mean), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xscale("log")
    lower = board.directions.get(metric)
    arrow = "" if lower is None else " (lower is better)" if lower else " (higher is better)"
    ax.set_xlabel(f"{latency} (log scale, lower is better)")
    ax.set_ylabel(f"{metric}{arrow}")
    ax.set_title(f"{metric} against latency (mean, 95% CI)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, title="task", title_fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class StudyOutputs:
    """What a study folder holds for the report: figures and pivot tables, by kind."""

    study_dir: Path
    kind: str
    figures: list[Path] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def study_outputs(study_dir: Path) -> StudyOutputs:
    """Figures (``ood_*.png``, ``severity_curves.png``) and pivots (``<kind>_<metric>.csv``)."""
    kind = "severity" if (study_dir / "severity.md").exists() else "ood"
    outputs = StudyOutputs(study_dir, kind)
    outputs.figures = sorted(p for p in study_dir.glob("*.png")
                             if p.name.startswith(("ood_", "severity_")))
    for csv in sorted(study_dir.glob(f"{kind}_*.csv")):
        metric = csv.stem[len(kind) + 1:]
        frame = pd.read_csv(csv, index_col=0)
        outputs.tables[metric] = frame.map(lambda v: v if not (isinstance(v, float) and math.isnan(v))
                                           else None)
    return outputs
