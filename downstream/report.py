"""What ``bench detect`` writes after a run: a table, a bar chart, images with boxes, curves.

Everything reads the run's ``results.json`` (aggregates; dataset-level metrics such as
``det_map50`` with their ``name.sub`` companions) and ``samples.jsonl`` (per image), so it can be
re-made from a finished run without recomputation. Only the few images shown are detected again
(the detections behind mAP are not stored as boxes, only as matched states).

Rows: **clean** (the clean images against the real labels: ``det_map50.clean*``, reported by
every restorer's unit and identical across them; taken from the first unit that has it),
**degraded** (the ``identity`` restorer: the degraded input scored as is), then each restorer.
Quality metrics (PSNR, SSIM, ...: the ``quality`` group of :mod:`harness.metrics.directions`)
sit beside mAP in the same row.

A value in ``results.json`` may be a number or an aggregate ``{"mean": ..}`` (per-image metrics);
both are read.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.io.tables import csv_cell, markdown_cell
from harness.metrics.directions import metric_group
from harness.report.leaderboard import order_metrics

DEGRADED = "identity"


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("mean")
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def detection_rows(results: dict[str, Any], metric: str, task: str | None = None) -> list[dict[str, Any]]:
    """One row per clean / degraded / restorer for ``task`` (default: the first task found).

    Columns: ``row``, ``restorer``, quality metrics present, ``<metric>``, ``<metric>.map50_95``,
    ``<metric>.precision``, ``<metric>.recall``.
    """
    by_restorer = results["results"]
    declared = results.get("metrics") if isinstance(results.get("metrics"), dict) else {}
    tasks = [t for units in by_restorer.values() for t in units]
    if not tasks:
        return []
    task = task or tasks[0]
    subs = ("", ".map50_95", ".precision", ".recall")
    rows: list[dict[str, Any]] = []
    clean_row: dict[str, Any] | None = None
    ordered = sorted(by_restorer, key=lambda r: (r != DEGRADED, list(by_restorer).index(r)))
    for restorer in ordered:
        unit = by_restorer[restorer].get(task)
        if not unit:
            continue
        if clean_row is None and _number(unit.get(f"{metric}.clean")) is not None:
            clean_row = {"row": "clean", "restorer": "-"}
            clean_row.update({f"{metric}{s}": _number(unit.get(f"{metric}.clean{s}")) for s in subs})
        row = {"row": "degraded" if restorer == DEGRADED else restorer, "restorer": restorer}
        row.update({q: _number(unit[q]) for q in unit
                    if "." not in q and metric_group(q, declared) == "quality"})
        row.update({f"{metric}{s}": _number(unit.get(f"{metric}{s}")) for s in subs})
        rows.append(row)
    return ([clean_row] if clean_row else []) + rows


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``row``, ``restorer``, the quality metrics (in the leaderboard's order), then the detection
    columns (each headline ``m`` with ``m.map50_95`` and its other companions) as first seen."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    heads = [c for c in columns if f"{c}.map50_95" in columns]
    detection = [c for c in columns if any(c == h or c.startswith(f"{h}.") for h in heads)]
    quality = [c for c in columns if c not in ("row", "restorer") and c not in detection]
    return ["row", "restorer", *order_metrics(quality), *detection]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], stand_in: str | None = None) -> str:
    """The table; ``stand_in`` (the detector's note) heads it so the numbers are not taken for
    a real detector's mAP."""
    columns = [c for c in _columns(rows) if c != "restorer"]
    lines = [f"**STAND-IN DETECTOR, not a real mAP**: {markdown_cell(stand_in)}", ""] if stand_in else []
    lines += ["| " + " | ".join(markdown_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(markdown_cell(_fmt(r.get(c))) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[dict[str, Any]], out_dir: Path, stem: str = "detection",
                stand_in: str | None = None) -> list[Path]:
    """``<stem>.md`` and ``<stem>.csv`` in ``out_dir``; a stand-in detector's rows carry
    ``detector = stand-in`` in the CSV and a heading line in the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv_path = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    md.write_text(markdown_table(rows, stand_in))
    rows = [{**r, "detector": "stand-in"} for r in rows] if stand_in else list(rows)
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=_columns(rows) + (["detector"] if stand_in else []))
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    return [md, csv_path]


def bar_chart(rows: Sequence[dict[str, Any]], metric: str, path: Path, title: str = "",
              stand_in: bool = False) -> Path:
    """Grouped bars: mAP50 and mAP50-95 per row (clean, degraded, restorers); a stand-in
    detector's chart says so in its title and axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["row"] for r in rows]
    series = [(metric, "mAP50"), (f"{metric}.map50_95", "mAP50-95")]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 1), 3.4))
    width = 0.38
    for offset, (key, label) in zip((-width / 2, width / 2), series, strict=True):
        values = [r.get(key) if r.get(key) is not None else 0.0 for r in rows]
        bars = ax.bar(x + offset, values, width, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ylabel = "consistency mAP" if metric.startswith("consistency") else "mAP (real labels)"
    ax.set_ylabel(ylabel + (" — STAND-IN detector" if stand_in else ""))
    ax.set_title((title or metric) + ("\nSTAND-IN detector (untrained): not a real mAP" if stand_in else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw_panel(ax: Any, image: torch.Tensor, boxes: np.ndarray, classes: np.ndarray,
               conf: np.ndarray | None, names: dict[int, str], title: str, color: str) -> None:
    """One image with its boxes (matplotlib only: no ultralytics plotting, so no font download)."""
    from matplotlib.patches import Rectangle

    array = image.detach().float().clamp(0, 1).cpu()
    array = array[0] if array.dim() == 4 else array
    ax.imshow(array.permute(1, 2, 0).numpy())
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.2, ec=color))
        label = names.get(int(classes[i]), str(int(classes[i])))
        if conf is not None:
            label += f" {conf[i]:.2f}"
        ax.text(x1, y1, label, fontsize=6, color="white", va="bottom",
                bbox={"facecolor": color, "alpha": 0.7, "pad": 1, "lw": 0})
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def boxes_figure(panels: Sequence[tuple[str, torch.Tensor]], detector: Any, path: Path,
                 conf: float = 0.25, labels: Any | None = None, max_boxes: int = 15) -> Path:
    """A strip of panels (``clean | degraded | restored ...``), each detected again and drawn with
    its boxes of ``conf ≥ conf`` (the ``max_boxes`` most confident, for legibility); ``labels``
    (real boxes, detector class ids), when given, are drawn on an extra first panel over the
    clean image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = len(panels) + (labels is not None)
    fig, axes = plt.subplots(1, columns, figsize=(3.2 * columns, 3.0), squeeze=False)
    axes = list(axes[0])
    if labels is not None:
        draw_panel(axes.pop(0), panels[0][1], labels.boxes, labels.cls, None, detector.names,
                   "labels", "tab:green")
    for ax, (title, image) in zip(axes, panels, strict=True):
        found = detector(image)
        n_above = int((found.conf >= conf).sum())
        keep = np.flatnonzero(found.conf >= conf)[:max_boxes]  # sorted by confidence
        shown = f"{len(keep)} of {n_above}" if n_above > len(keep) else str(n_above)
        draw_panel(ax, image, found.boxes[keep], found.cls[keep], found.conf[keep], detector.names,
                   f"{title} ({shown} boxes ≥ {conf:g})", "tab:red")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def severity_curves(points: dict[str, dict[int, float]], path: Path, ylabel: str = "mAP50",
                    title: str = "") -> Path:
    """For ``bench study``: ``{row: {severity: value}}`` → one line per row over severities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for row, by_level in points.items():
        levels = sorted(by_level)
        ax.plot(levels, [by_level[level] for level in levels], marker="o", label=row)
    ax.set_xticks(sorted({level for by_level in points.values() for level in by_level}))
    ax.set_xlabel("severity")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
