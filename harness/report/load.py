"""The one reader of run folders for reports: ``results.json`` + ``samples.jsonl`` → :class:`RunData`.

It tolerates both result schemas in use:

* **schema_version 1** (and files without the field): ``results[restorer][task][metric] =
  {mean, std, ci95, n}`` plus ``n_ok``/``n_failed``; ``missing_metrics`` at the top level; no
  metric declarations.
* **schema_version 2**: the same ``results`` shape, plus per-unit identity fields and a top-level
  ``metrics: {name: {lower_better, mode, kind, group}}`` declaring each metric.

Each metric's direction and group are resolved once per run, by
:mod:`harness.metrics.directions` (the file's declaration first, then the runner's measurements,
the registry and pyiqa's configuration); an unknown direction stays ``None``.

A newer schema than this reader knows is refused with a message rather than half-read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.io.results import RESULTS_FILE, SAMPLES_FILE, read_results, read_samples
from harness.metrics.directions import metric_direction, metric_group

KNOWN_SCHEMAS = (1, 2)


class RunReadError(ValueError):
    """A run folder cannot be read as a report input; the message says why and what to give."""


def as_float(value: Any) -> float | None:
    """Numbers as written by ``results._json_safe`` (``"inf"`` strings, ``None`` for NaN)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


@dataclass
class Aggregate:
    """One metric of one (restorer, task): mean, 95% CI and n (``None`` where not given)."""

    mean: float | None
    lo: float | None = None
    hi: float | None = None
    std: float | None = None
    n: int | None = None
    n_nonfinite: int = 0

    @classmethod
    def parse(cls, value: Any, n_ok: int | None = None) -> Aggregate:
        """``{mean, std, ci95, n}`` or a bare number (a dataset-level metric's companion)."""
        if isinstance(value, dict):
            ci = value.get("ci95") or (None, None)
            lo, hi = (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
            n = value.get("n")
            return cls(as_float(value.get("mean")), as_float(lo), as_float(hi),
                       as_float(value.get("std")), int(n) if isinstance(n, (int, float)) else None,
                       int(value.get("n_nonfinite", 0) or 0))
        return cls(as_float(value), n=n_ok)


@dataclass
class Unit:
    """One (restorer, task) of a run, with its aggregates and its per-image records."""

    run_id: str
    restorer: str
    task: str
    aggregates: dict[str, Aggregate]
    n_ok: int
    n_failed: int
    records: list[dict[str, Any]]
    #: metric → reason, for metrics listed as missing for this unit (or the whole run).
    missing: dict[str, str]
    identity: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunData:
    """Everything a report needs from one run folder."""

    run_dir: Path
    run_id: str
    schema_version: int
    payload: dict[str, Any]
    records: list[dict[str, Any]]
    units: list[Unit]
    missing: dict[str, str]
    directions: dict[str, bool | None]
    #: metric → ``quality`` / ``detection`` / ``timing`` (``None``: undeclared, unknown).
    groups: dict[str, str | None]
    #: the study folder this run belongs to (``<study>/runs/<run>``), if any.
    study_dir: Path | None
    #: restorer name → the study's row label (``unet (trained on noise)``), for study runs.
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, restorer: str) -> str:
        return self.labels.get(restorer, restorer)

    def task_info(self, task: str) -> dict[str, Any]:
        info = self.payload.get("tasks", {}).get(task, {})
        return info if isinstance(info, dict) else {}

    def is_detection(self, name: str) -> bool:
        """Shown in the detection tables (its group, as declared or known)."""
        return self.groups.get(name) == "detection"

    def metric_mode(self, name: str) -> str | None:
        entry = self.payload.get("metrics", {}).get(name)
        if isinstance(entry, dict) and entry.get("mode"):
            return str(entry["mode"])
        try:
            from harness.metrics.suite import METRICS

            return METRICS.get(name).mode if name in METRICS else None
        except (ImportError, KeyError):
            return None


_UNIT_FIELDS = ("n_ok", "n_failed", "missing_metrics")


def _is_metric(key: str, value: Any, declared: dict[str, Any]) -> bool:
    """An aggregate ``{mean, ...}``, or a bare number only for a declared metric (schema 2: a
    dataset-level metric and its ``name.sub`` companions); other numbers are identity fields."""
    if isinstance(value, dict):
        return "mean" in value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    return key in declared or key.split(".", 1)[0] in declared


def read_run(path: Path) -> RunData:
    """Read a run folder (or its ``results.json``): aggregates, records, directions, study.

    Raises :class:`RunReadError` when there is no ``results.json`` or its schema is newer than
    :data:`KNOWN_SCHEMAS`.
    """
    path = Path(path)
    results_file = path if path.is_file() else path / RESULTS_FILE
    run_dir = results_file.parent
    if not results_file.is_file():
        hint = (" (it has samples.jsonl: the run was interrupted before it finished; "
                "`bench run --resume` completes it)" if (run_dir / SAMPLES_FILE).exists() else "")
        raise RunReadError(f"{results_file} does not exist{hint}; give a run folder (results/<run>) "
                           "or its results.json")
    payload = read_results(results_file)
    return run_from_payload(payload, run_dir, read_samples(run_dir / SAMPLES_FILE), results_file)


def run_from_payload(payload: dict[str, Any], run_dir: Path, records: list[dict[str, Any]],
                     source: Path | None = None) -> RunData:
    """A :class:`RunData` from a ``results.json``-shaped dict and its records (possibly none:
    ``bench report results/reference`` hands the reference's aggregates this way)."""
    schema = int(payload.get("schema_version", 1) or 1)
    if schema not in KNOWN_SCHEMAS:
        raise RunReadError(f"{source or run_dir} has schema_version {schema}; this reader knows "
                           f"{list(KNOWN_SCHEMAS)} (update restorebench)")
    run_id = str(payload.get("run_id") or run_dir.name)
    missing = {str(k): str(v) for k, v in (payload.get("missing_metrics") or {}).items()}
    declared = payload.get("metrics") if isinstance(payload.get("metrics"), dict) else {}
    by_unit: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        by_unit.setdefault((str(record.get("restorer")), str(record.get("task"))), []).append(record)
    units: list[Unit] = []
    names: list[str] = list(declared)
    for restorer, by_task in (payload.get("results") or {}).items():
        for task, entry in (by_task or {}).items():
            entry = entry or {}
            n_ok = int(entry.get("n_ok", 0) or 0)
            aggregates = {k: Aggregate.parse(v, n_ok) for k, v in entry.items()
                          if k not in _UNIT_FIELDS and _is_metric(k, v, declared)}
            unit_missing = dict(missing)
            if isinstance(entry.get("missing_metrics"), dict):
                unit_missing.update({str(k): str(v) for k, v in entry["missing_metrics"].items()})
            identity = {k: v for k, v in entry.items()
                        if k not in _UNIT_FIELDS and k not in aggregates}
            units.append(Unit(run_id, restorer, task, aggregates, n_ok,
                              int(entry.get("n_failed", 0) or 0), by_unit.get((restorer, task), []),
                              unit_missing, identity))
            names += [k for k in aggregates if k not in names]
    names += [k for k in missing if k not in names]
    directions = {name: metric_direction(name, declared) for name in names}
    groups = {name: metric_group(name, declared) for name in names}
    study_dir = _study_of(run_dir)
    labels = _study_labels(study_dir, run_dir) if study_dir is not None else {}
    return RunData(run_dir, run_id, schema, payload, records, units, missing, directions, groups,
                   study_dir, labels)


def _study_of(run_dir: Path) -> Path | None:
    """The study folder a run belongs to: ``<study>/run`` (one run per study), or the older
    ``<study>/runs/<run>``; ``None`` for a run of ``bench run``."""
    for candidate in (run_dir.parent, run_dir.parent.parent):
        if (candidate / "study.csv").exists() and candidate != run_dir:
            return candidate
    return None


def _study_labels(study_dir: Path, run_dir: Path) -> dict[str, str]:
    """The row labels ``harness.study.grid`` gave this run's restorers (``study.csv``: restorer =
    label, restorer_name = registry name, run_dir); two checkpoints of one restorer differ only
    there."""
    import csv

    labels: dict[str, str] = {}
    with open(study_dir / "study.csv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if Path(row.get("run_dir") or "").name == run_dir.name and row.get("restorer_name"):
                labels.setdefault(row["restorer_name"], row.get("restorer") or row["restorer_name"])
    return labels


def find_runs(root: Path) -> list[Path]:
    """Every finished run folder under ``root``, at any depth (runs of ``bench run``, of studies
    under ``studies/``, of ``bench detect``), oldest first. A run folder holds ``results.json``
    and its ``samples.jsonl``: MLflow's artifact copies of ``results.json`` (under
    ``mlartifacts/``) are not runs, and would otherwise pass for the latest one."""
    found = [p.parent for p in Path(root).rglob(RESULTS_FILE)
             if p.is_file() and (p.parent / SAMPLES_FILE).is_file()]
    return sorted(found, key=lambda p: ((p / RESULTS_FILE).stat().st_mtime, str(p)))


def expand_paths(paths: list[Path]) -> list[Path]:
    """Run folders from the arguments: a run folder or its ``results.json`` is itself; any other
    folder (a study, an output root) means every run under it."""
    expanded: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir() and not (path / RESULTS_FILE).exists() and not (path / SAMPLES_FILE).exists():
            runs = find_runs(path)
            if not runs:
                raise RunReadError(f"{path} holds no run (no {RESULTS_FILE} in it or below it); "
                                   f"give a run folder, a study folder or an output root")
            expanded += runs
        else:
            expanded.append(path)
    return expanded


def read_runs(paths: list[Path]) -> list[RunData]:
    """:func:`read_run` on each argument (studies expanded); the same folder is read once."""
    runs: list[RunData] = []
    seen: set[Path] = set()
    for path in expand_paths(paths):
        key = (path.parent if path.is_file() else path).resolve()
        if key in seen:
            continue
        seen.add(key)
        runs.append(read_run(path))
    return runs
