"""Result files: ``results/<run>/samples.jsonl`` (one line per image) and ``results.json``.

These files are a contract read by reports, studies and outside tools; ``SCHEMA_VERSION`` changes
whenever their shape does. ``samples.jsonl`` lines are written and flushed (and fsynced) one at a
time, so a crash loses at most the image in flight, and a half-written last line is dropped when
the run resumes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

#: 2: records carry ``restorer_id`` / ``task_id`` (config identities), ``degradation_seed``,
#: ``host`` and optional ``metric_states``; ``results.json`` gains ``units`` (per pair: ids,
#: planned/recorded counts, failed samples with their errors) and ``metrics`` (direction, mode,
#: kind per metric). Version-1 files are read by :func:`read_results` / :func:`read_samples`.
SCHEMA_VERSION = 2
SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"
KEY_PACKAGES = ("restorebench", "torch", "torchvision", "pyiqa", "mlflow", "diffusers",
                "transformers", "numpy", "scikit-image", "pandas")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (torch.Tensor,)):
        return _json_safe(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _restore_float(value: Any) -> Any:
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    return value


def new_run_name() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def latest_run(output_dir: Path) -> Path | None:
    runs = sorted((p for p in Path(output_dir).iterdir() if (p / SAMPLES_FILE).exists()),
                  key=lambda p: (p / SAMPLES_FILE).stat().st_mtime) if Path(output_dir).exists() else []
    return runs[-1] if runs else None


class SampleLog:
    """Append-only JSONL of per-image records with crash-safe writes and resume support."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair(self) -> None:
        """Drop a truncated last line left by a crash, so every line parses."""
        if not self.path.exists():
            return
        raw = self.path.read_text(encoding="utf-8")
        good = [line for line in raw.splitlines() if _parses(line)]
        fixed = "".join(line + "\n" for line in good)
        if fixed != raw:
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text(fixed, encoding="utf-8")
            tmp.replace(self.path)

    def records(self) -> list[dict[str, Any]]:
        return read_samples(self.path)

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        return read_samples(path)

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(_json_safe(record), sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> SampleLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


def read_samples(path: Path) -> list[dict[str, Any]]:
    records = []
    if not Path(path).exists():
        return records
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or not _parses(line):
            continue
        record = json.loads(line)
        record["metrics"] = {k: _restore_float(v) for k, v in record.get("metrics", {}).items()}
        records.append(record)
    return records


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                             "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    for package in KEY_PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def write_results(path: Path, payload: dict[str, Any]) -> None:
    payload = {"schema_version": SCHEMA_VERSION, **payload}
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_json_safe(payload), indent=2, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def read_results(path: Path) -> dict[str, Any]:
    """A ``results.json`` of any schema version, upgraded to the current shape: version 1 lacks
    ``units`` and ``metrics`` (directions); they are filled from what the file holds."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    if payload.get("schema_version", 1) < 2:
        payload.setdefault("units", [
            {"restorer": r, "restorer_id": r, "task": t, "task_id": t,
             "n_planned": None, "n_recorded": agg.get("n_ok", 0) + agg.get("n_failed", 0),
             "failed": []}
            for r, by_task in payload.get("results", {}).items() for t, agg in by_task.items()])
        payload.setdefault("metrics", {})
    return payload


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def records_for(records: Iterable[dict[str, Any]], restorer: str, task: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("restorer") == restorer and r.get("task") == task]
