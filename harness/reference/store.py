"""The reference folder on disk.

``results/reference/``:

* ``scope.json``: hand-edited (:mod:`harness.reference.scope`);
* ``cells/<restorer>/<task>.json``: one generated file per cell, written atomically, so a crash
  loses at most the cell in flight and two processes never write one file half each;
* ``reference.jsonl``: every cell's rows (one per restorer × task × metric), merged from the cell
  files in sorted order: the same cells always give the same bytes, whichever process merged;
* ``drift.jsonl``: the drift subset's rows (same row format);
* ``published.csv``: published numbers (hand-curated, :mod:`harness.reference.published`);
* ``leaderboards/<family>.md``: rendered (:mod:`harness.reference.render`);
* ``.runs/``: scratch run folders of cells being measured (git-ignored).

Merging and rendering hold ``.lock`` (:class:`harness.io.results.FileLock`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.io.names import safe_name
from harness.io.results import FileLock
from harness.io.safefiles import write_atomic

CELLS = "cells"
ROWS_FILE = "reference.jsonl"
DRIFT_FILE = "drift.jsonl"
WORK = ".runs"
#: row fields copied from the cell's provenance into every row
PROVENANCE = ("device", "command", "run_command", "git_hash", "versions", "created",
              "restorer_id", "task_id")


def cell_path(folder: Path, restorer: str, task: str) -> Path:
    return Path(folder) / CELLS / safe_name(restorer) / f"{safe_name(task)}.json"


def read_cell(folder: Path, restorer: str, task: str) -> dict[str, Any] | None:
    path = cell_path(folder, restorer, task)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not a cell file ({exc}); delete it to measure the cell "
                         "again") from None


def write_cell(folder: Path, cell: dict[str, Any]) -> Path:
    path = cell_path(folder, cell["restorer"], cell["task"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(cell, indent=1, sort_keys=True) + "\n")
    return path


def all_cells(folder: Path) -> list[dict[str, Any]]:
    """Every cell file, sorted by (restorer, task)."""
    cells = [json.loads(p.read_text(encoding="utf-8"))
             for p in sorted((Path(folder) / CELLS).glob("*/*.json"))]
    return sorted(cells, key=lambda c: (c["restorer"], c["task"]))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _metric_row(base: dict[str, Any], metric: str, entry: dict[str, Any]) -> dict[str, Any]:
    ci = entry.get("ci95") or [None, None]
    row = {**base, "metric": metric, "status": "measured", "mean": _number(entry.get("mean")),
           "std": _number(entry.get("std")), "ci95_lo": _number(ci[0]), "ci95_hi": _number(ci[1]),
           "n": entry.get("n")}
    if entry.get("max") is not None:
        row["max"] = entry["max"]
    if entry.get("not_computed"):
        row["not_computed"] = entry["not_computed"]
    return row


def rows_of_cell(cell: dict[str, Any], family: str) -> list[dict[str, Any]]:
    """The cell as rows: measured metrics, missing ones (with their reason), latency, memory."""
    measurement = cell.get("measurement", {})
    base = {"restorer": cell["restorer"], "task": cell["task"], "family": family,
            "n_images": cell.get("n"), "n_failed": cell.get("n_failed"),
            "n_expected": cell.get("n_expected"), "data": cell.get("data", ""),
            "limit": cell["settings"].get("limit"), "threads": measurement.get("threads"),
            "flush_denormal": measurement.get("flush_denormal"),
            **{k: cell.get(k) for k in PROVENANCE}}
    rows = [_metric_row(base, m, e) for m, e in sorted(cell.get("metrics", {}).items())]
    rows += [{**base, "metric": m, "status": "missing", "reason": reason}
             for m, reason in sorted(cell.get("missing", {}).items())
             if m not in cell.get("metrics", {})]
    for metric, entry in sorted(cell.get("timing", {}).items()):
        row = _metric_row(base, metric, entry)
        row["method"] = measurement.get("peak_mem_method" if metric == "peak_mem_mb" else "latency")
        rows.append(row)
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    ordered = sorted(rows, key=lambda r: (r["family"], r["task"], r["restorer"], r["metric"]))
    write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered))


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def merge(folder: Path, family_of: Any) -> list[dict[str, Any]]:
    """Rebuild ``reference.jsonl`` from the cell files (under the folder's lock); the rows.

    ``family_of(task) -> slug`` groups rows (the scope decides)."""
    with FileLock(Path(folder) / ".lock", f"{folder} is being merged by another process "
                                           "({holder}); try again when it is done"):
        rows = [row for cell in all_cells(folder) for row in rows_of_cell(cell, family_of(cell))]
        write_rows(Path(folder) / ROWS_FILE, rows)
    return rows
