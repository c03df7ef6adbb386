"""Comparing a fresh measurement with the reference, and the drift subset the tests re-run.

The drift subset (``scope.json`` → ``drift``: a few fast restorers × a few tasks, ``limit`` images
each) lives in its own file, ``drift.jsonl``, because the full reference is measured on all images
and would take hours to re-check. ``bench reproduce --drift`` re-measures it and compares at the
declared tolerances (:mod:`harness.reference.tolerance`); ``--drift --update`` rewrites the file,
which should happen on purpose only, with the reason in the commit message.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.reference.cells import CellSettings, run_cell
from harness.reference.scope import Scope
from harness.reference.store import DRIFT_FILE, read_rows, rows_of_cell, write_rows
from harness.reference.tolerance import NOT_COMPARED, Comparison, compare_value


def compare_rows(ours: list[dict[str, Any]], reference: list[dict[str, Any]]) -> list[Comparison]:
    """Per metric of the reference rows (one restorer × task): ours against it.

    A metric the reference measured and ours lacks is "missing" (a failure: the environment lost
    something); one the reference lacks is not compared (``lpips`` where its weights were absent
    when the reference was made)."""
    mine = {(r["restorer"], r["task"], r["metric"]): r for r in ours}
    found = []
    for row in reference:
        key = (row["restorer"], row["task"], row["metric"])
        other = mine.get(key, {})
        measured = row.get("status") == "measured"
        if not measured and key[2] not in NOT_COMPARED:
            found.append(Comparison(*key, other.get("mean"), None, "not compared"))
            continue
        found.append(compare_value(*key, other.get("mean"), row.get("mean")))
    return found


def drift_settings(scope: Scope) -> list[CellSettings]:
    spec = scope.drift
    if not spec.get("restorers") or not spec.get("tasks"):
        raise ValueError("scope.json has no drift subset (drift: {restorers, tasks, limit})")
    return [CellSettings(r, t, int(spec.get("limit", 2)), 1, "cpu")
            for r in spec["restorers"] for t in spec["tasks"]]


def measure_drift(scope: Scope, family_of: Callable[[dict[str, Any]], str],
                  argv: list[str], log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The drift subset measured now (scratch runs in a temporary folder), as rows."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as work:
        for settings in drift_settings(scope):
            log(f"{settings.restorer} @ {settings.task} (--limit {settings.limit})")
            cell = run_cell(settings, Path(work), argv)
            rows += rows_of_cell(cell, family_of(cell))
    return rows


def check_drift(folder: Path, scope: Scope, family_of: Callable[[dict[str, Any]], str],
                argv: list[str], log: Callable[[str], None] = print) -> list[Comparison]:
    """Re-measure the drift subset and compare it with ``drift.jsonl``."""
    reference = read_rows(Path(folder) / DRIFT_FILE)
    if not reference:
        raise FileNotFoundError(f"{Path(folder) / DRIFT_FILE} is missing or empty; make it with "
                                "`bench reproduce --drift --update`")
    wanted = {(s.restorer, s.task) for s in drift_settings(scope)}
    held = {(r["restorer"], r["task"]) for r in reference}
    if wanted != held:
        raise ValueError(f"{DRIFT_FILE} holds other cells than scope.json's drift subset "
                         f"(missing: {sorted(wanted - held)}, extra: {sorted(held - wanted)}); "
                         "regenerate it with `bench reproduce --drift --update`")
    return compare_rows(measure_drift(scope, family_of, argv, log), reference)


def update_drift(folder: Path, scope: Scope, family_of: Callable[[dict[str, Any]], str],
                 argv: list[str], log: Callable[[str], None] = print) -> Path:
    path = Path(folder) / DRIFT_FILE
    write_rows(path, measure_drift(scope, family_of, argv, log))
    return path
