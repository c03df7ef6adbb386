"""Figures of the studies: the OOD heatmap and the severity curves (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.metrics.directions import direction_arrow


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe in threads and on headless clusters
    import matplotlib.pyplot as plt

    return plt


def plot_heatmap(frame: pd.DataFrame, metric: str, lower_better: bool, path: Path) -> Path:
    """Annotated heatmap; the colour map runs so that better is always brighter (a metric of
    unknown direction is drawn as higher-is-better)."""
    plt = _pyplot()
    n_rows, n_cols = frame.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 1.5 + 1.4 * n_cols), max(2.5, 1.0 + 0.55 * n_rows)))
    values = frame.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="viridis_r" if lower_better else "viridis", aspect="auto")
    ax.set_xticks(range(n_cols), [str(c) for c in frame.columns], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), [str(i) for i in frame.index], fontsize=8)
    finite = values[values == values]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for r in range(n_rows):
        for c in range(n_cols):
            v = values[r, c]
            text = "–" if v != v else f"{v:.2f}" if abs(v) >= 10 else f"{v:.3f}"
            bright = (v < mid) if lower_better else (v > mid)
            ax.text(c, r, text, ha="center", va="center", fontsize=8,
                    color="black" if bright and v == v else "white")
    ax.set_xlabel("test task")
    ax.set_ylabel("restorer")
    arrow = "lower is better" if lower_better else "higher is better"
    ax.set_title(f"{metric} ({arrow})", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(table: pd.DataFrame, path: Path, metrics: list[str] | None = None) -> Path:
    """One panel per metric, metric mean vs severity level, one line (with 95% CI band) per restorer."""
    plt = _pyplot()
    metrics = metrics or list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = table[table["metric"] == metric]
        for label in dict.fromkeys(sub["restorer"]):
            line = sub[sub["restorer"] == label].sort_values("level")
            ax.plot(line["level"], line["mean"], marker="o", label=label)
            lo, hi = line["ci95_lo"].astype(float), line["ci95_hi"].astype(float)
            ax.fill_between(line["level"], lo, hi, alpha=0.15)
        ax.set_title(f"{metric} {direction_arrow(metric)}", fontsize=10)
        ax.set_xlabel("severity")
        ax.set_xticks(sorted(dict.fromkeys(sub["level"])))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
