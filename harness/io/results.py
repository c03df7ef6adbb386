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
    """Append-only JSONL of per-image records with crash-safe writes and resume support.

    Opening it reads the file once: :attr:`existing` holds the records of earlier attempts (the
    run being resumed), parsed, and a half-written last line is dropped from the file.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.existing: list[dict[str, Any]] = self._repair()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair(self) -> list[dict[str, Any]]:
        """The file's records; a truncated last line left by a crash is dropped from it."""
        if not self.path.exists():
            return []
        raw = self.path.read_text(encoding="utf-8")
        good, records = _parse_lines(raw)
        fixed = "".join(line + "\n" for line in good)
        if fixed != raw:
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text(fixed, encoding="utf-8")
            tmp.replace(self.path)
        return records

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one record (flushed and fsynced); returns it as :func:`read_samples` would
        read it back, so that a reducer holding it sees what a resumed run will see."""
        safe = _json_safe(record)
        self._fh.write(json.dumps(safe, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return _restored(safe)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> SampleLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _restored(record: dict[str, Any]) -> dict[str, Any]:
    """A parsed record with its non-finite metric values back as floats (``"inf"`` → inf)."""
    record["metrics"] = {k: _restore_float(v) for k, v in record.get("metrics", {}).items()}
    return record


def _parse_lines(raw: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The lines of a JSONL text that parse, and their records (each line parsed once)."""
    good, records = [], []
    for line in raw.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        good.append(line)
        if isinstance(record, dict):
            records.append(_restored(record))
    return good, records


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Every record of a ``samples.jsonl`` (lines that do not parse are skipped)."""
    if not Path(path).exists():
        return []
    return _parse_lines(Path(path).read_text(encoding="utf-8"))[1]


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
