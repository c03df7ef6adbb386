"""Figures of the studies: the OOD heatmap and the severity curves (matplotlib, Agg backend).

A study asks what each restorer *gains* over the degraded input, so both figures are drawn
against a baseline row (by default the restorer that passes its input through, see
:func:`harness.study.grid.baseline_label`): the heatmap colours the gain and prints the absolute
value above it; the severity figure adds a row of gain panels. Gains are signed so that better
is always positive (``baseline − value`` for a lower-is-better metric). Without a baseline row
the figures fall back to absolute values and their titles say so. Every figure states n, the
number of images behind each mean.

The numbers a figure draws are computed by pure functions (:func:`gain_over`,
:func:`heatmap_data`, :func:`curves_title`) that the tests check, rather than the pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.metrics.directions import direction_arrow


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe in threads and on headless clusters
    import matplotlib.pyplot as plt

    return plt


def gain_over(frame: pd.DataFrame, baseline: str, lower_better: bool | None) -> pd.DataFrame:
    """Each row minus the baseline row, per column, signed so that better is positive
    (``baseline − row`` when lower is better; a metric of unknown direction keeps ``row − baseline``)."""
    diff = frame - frame.loc[baseline]
    return -diff if lower_better else diff


def gain_meaning(metric: str, baseline: str, lower_better: bool | None) -> str:
    """How the gain of ``metric`` over ``baseline`` is computed, in words (axis and title text)."""
    if lower_better is None:
        return f"{metric} − {baseline} (direction of {metric} unknown)"
    if lower_better:
        return f"{baseline} − {metric} ({metric} lower is better: > 0 is better)"
    return f"{metric} − {baseline} (> 0 is better)"


def n_text(values: object) -> str:
    """``24`` or ``22–24``: the images behind a column's (or a figure's) means."""
    numbers = [int(v) for v in np.ravel(np.asarray(values, dtype=float)) if v == v]
    if not numbers:
        return "?"
    lo, hi = min(numbers), max(numbers)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _wrap(name: str, width: int = 22) -> str:
    """A long task name broken after its ``:`` / ``@`` / ``-`` separators so tick labels do not overlap."""
    lines, line = [], ""
    for part in re.split(r"(?<=[:@\-])", name):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line])


def _value_text(value: float) -> str:
    return "–" if value != value else f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def _cell_text(value: float, gain: float, is_baseline: bool) -> str:
    """``24.31`` over ``+3.12`` (the baseline's own cell says ``(baseline)``)."""
    if value != value:
        return "–"
    below = ("(baseline)" if is_baseline else "(no baseline score)" if gain != gain
             else f"{gain:+.2f}" if abs(value) >= 10 else f"{gain:+.3f}")
    return f"{_value_text(value)}\n{below}"


@dataclass
class HeatmapData:
    """Everything the OOD heatmap draws: ``colour`` is the matrix coloured, ``cells`` the text."""

    colour: np.ndarray  # gain over the baseline (better > 0), or the absolute values
    values: np.ndarray  # absolute means, rows × tasks
    rows: list[str]
    columns: list[str]  # task names with n, e.g. "kodak24-noise-s3\n(n=24)"
    cells: list[list[str]]
    title: str
    colour_label: str
    baseline: str | None
    lower_better: bool | None


def heatmap_data(frame: pd.DataFrame, n: pd.DataFrame, metric: str, lower_better: bool | None,
                 baseline: str | None, study: str) -> HeatmapData:
    """The heatmap of ``frame`` (rows = restorers, columns = tasks, means) with ``n`` (the same
    shape: images per mean). With a ``baseline`` row the colour is the gain over it and each
    cell reads ``value`` over ``gain``; the baseline row stays in the figure (gain 0)."""
    values = frame.to_numpy(dtype=float)
    columns = [f"{_wrap(str(task))}\n(n={n_text(n[task])})" for task in frame.columns]
    arrow = direction_arrow(metric)
    if baseline is None:
        cells = [[_value_text(v) for v in row] for row in values]
        title = (f"{study}: {metric} {arrow}, absolute values per task\n"
                 f"no baseline row, so no gains (--baseline LABEL names one)")
        return HeatmapData(values, values, [str(i) for i in frame.index], columns, cells, title,
                           f"{metric} {arrow}", None, lower_better)
    gain = gain_over(frame, baseline, lower_better).to_numpy(dtype=float)
    cells = [[_cell_text(v, g, label == baseline) for v, g in zip(row, grow, strict=True)]
             for label, row, grow in zip(frame.index, values, gain, strict=True)]
    title = (f"{study}: {metric} {arrow}, gain over '{baseline}' per task\n"
             f"cell: {metric} over its gain; colour: gain = {gain_meaning(metric, baseline, lower_better)}")
    return HeatmapData(gain, values, [str(i) for i in frame.index], columns, cells, title,
                       f"{metric} gain over '{baseline}' (> 0 is better)", baseline, lower_better)


def plot_heatmap(data: HeatmapData, path: Path) -> Path:
    """Draw :class:`HeatmapData`: a diverging map centred at 0 for gains (blue = better), a
    sequential one (brighter = better) for absolute values."""
    plt = _pyplot()
    n_rows, n_cols = data.colour.shape
    fig, ax = plt.subplots(figsize=(max(6.0, 2.5 + 1.8 * n_cols), max(3.2, 1.6 + 0.6 * n_rows)))
    finite = data.colour[np.isfinite(data.colour)]
    if data.baseline is not None:
        limit = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
        image = ax.imshow(data.colour, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        dark = np.abs(data.colour) > 0.55 * limit
    else:
        image = ax.imshow(data.colour, cmap="viridis_r" if data.lower_better else "viridis",
                          aspect="auto")
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        dark = (data.colour > mid) if data.lower_better else (data.colour < mid)
    ax.set_xticks(range(n_cols), data.columns, fontsize=8)
    ax.set_yticks(range(n_rows), data.rows, fontsize=8)
    for r in range(n_rows):
        for c in range(n_cols):
            ax.text(c, r, data.cells[r][c], ha="center", va="center", fontsize=8,
                    color="white" if dark[r, c] else "black")
    ax.set_xlabel("test task (n = images per mean)")
    ax.set_ylabel("restorer")
    ax.set_title(data.title, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label=data.colour_label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves_title(study: str, clean: str | None, degradation: str | None, n: object) -> str:
    """``severity study 'x': noise+blur on kodak24, n = 24 images per point``."""
    data = f"{degradation or 'degradation ?'} on {clean or 'clean set ?'}"
    return f"{study}: {data}, n = {n_text(n)} images per point (mean, 95% CI band)"


def plot_curves(table: pd.DataFrame, path: Path, metrics: list[str], title: str,
                gains: dict[str, pd.DataFrame] | None = None, baseline: str | None = None) -> Path:
    """One column per metric: the mean against severity, one line (with 95% CI band) per
    restorer; with ``gains`` (metric → restorers × levels, better > 0) a second row of panels
    draws the gain over ``baseline`` (means only: the CI of a difference needs paired images)."""
    plt = _pyplot()
    n_rows = 2 if gains else 1
    fig, axes = plt.subplots(n_rows, len(metrics), figsize=(4.4 * len(metrics), 3.3 * n_rows + 0.6),
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = table[table["metric"] == metric]
        for label in dict.fromkeys(sub["restorer"]):
            line = sub[sub["restorer"] == label].sort_values("level")
            ax.plot(line["level"], line["mean"], marker="o", label=label)
            lo, hi = line["ci95_lo"].astype(float), line["ci95_hi"].astype(float)
            ax.fill_between(line["level"], lo, hi, alpha=0.15)
        ax.set_title(f"{metric} {direction_arrow(metric)}", fontsize=10)
        ax.set_xlabel("severity level")
        ax.set_xticks(sorted(dict.fromkeys(sub["level"])))
        ax.grid(alpha=0.3)
    for ax, metric in zip(axes[1] if gains else [], metrics, strict=False):
        frame = gains[metric]  # type: ignore[index]
        for label, row in frame.iterrows():
            ax.plot([int(c) for c in frame.columns], row.to_numpy(dtype=float), marker="o",
                    label=label, linestyle="--" if label == baseline else "-")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(f"{metric}: gain over '{baseline}' (> 0 is better)", fontsize=9)
        ax.set_ylabel("difference of the means (no CI)", fontsize=8)
        ax.set_xlabel("severity level")
        ax.set_xticks([int(c) for c in frame.columns])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title + ("" if gains else "\nno baseline row: absolute values only"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
