"""The reference as a ``results.json``-shaped payload, for ``bench report results/reference``.

The report's reader (:mod:`harness.report.load`) builds its leaderboard and HTML from one run's
``results.json``; the reference is many runs' aggregates merged into ``reference.jsonl``. This
module turns the rows back into that shape (``results[restorer][task][metric] = {mean, std, ci95,
n}``, ``missing_metrics``, the provenance the report shows), so the viewer needs no second
reader. There are no per-image records or previews in the reference: the report shows the
leaderboard, the quality-versus-latency figure and the metadata, and says that previews are
absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.reference.store import ROWS_FILE, read_rows

SCHEMA_VERSION = 2


def is_reference_folder(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / ROWS_FILE).is_file()


def _aggregate(row: dict[str, Any]) -> dict[str, Any]:
    return {"mean": row.get("mean"), "std": row.get("std"),
            "ci95": [row.get("ci95_lo"), row.get("ci95_hi")], "n": row.get("n")}


def report_payload(folder: Path) -> dict[str, Any]:
    """``reference.jsonl`` as one results.json-shaped dict (module docstring)."""
    rows = read_rows(Path(folder) / ROWS_FILE)
    if not rows:
        raise ValueError(f"{Path(folder) / ROWS_FILE} holds no rows yet; measure some with "
                         "`bench reproduce --all` (or --restorers/--tasks)")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    missing: dict[str, str] = {}
    tasks: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = results.setdefault(row["restorer"], {}).setdefault(row["task"], {
            "n_ok": row.get("n_images") or 0, "n_failed": row.get("n_failed") or 0})
        if row.get("status") == "measured":
            entry[row["metric"]] = _aggregate(row)
        else:
            missing.setdefault(row["metric"], str(row.get("reason", "")))
        tasks.setdefault(row["task"], {"family": row.get("family"), "data": row.get("data"),
                                       "threads": row.get("threads"), "device": row.get("device")})
    first = rows[0]
    hashes = sorted({str(r.get("git_hash")) for r in rows if r.get("git_hash")})
    return {"schema_version": SCHEMA_VERSION, "run_id": "reference", "results": results,
            "missing_metrics": missing, "tasks": tasks, "git_hash": ", ".join(hashes),
            "device": ", ".join(sorted({str(r.get("device")) for r in rows})),
            "versions": first.get("versions") or {}, "created": max(str(r.get("created")) for r in rows),
            "argv": ["bench", "reproduce", "--all"], "limit": None}
