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


LOCK_FILE = ".lock"


class RunLockedError(FileExistsError):
    """Another process holds the run folder (two ``bench run`` with one ``--run-name``)."""


class RunLock:
    """An exclusive ``fcntl.flock`` on ``<run>/.lock``, held for the whole run.

    Two processes writing into one run folder would interleave their records and count every
    image twice; the lock makes the second one refuse, naming the holder. ``flock`` is released
    by the kernel when the holder dies, so a killed run never leaves a stale lock (the file's
    pid/time line is only for the message). Where ``fcntl`` is absent (Windows) no lock is
    taken.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fh: Any = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunLockedError(f"{self.path.parent} is being written by another bench run "
                                 f"({holder}); wait for it to finish (then --resume to add to "
                                 f"it) or choose another --run-name") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()} since {now_iso()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


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
