"""Result files: ``results/<run>/samples.jsonl`` (one line per image) and ``results.json``.

These files are a contract read by reports, studies and outside tools; ``SCHEMA_VERSION`` changes
whenever their shape does. ``samples.jsonl`` lines are written and flushed (and fsynced) one at a
time, so a crash loses at most the image in flight, and a half-written last line is dropped when
the run resumes. Every file a run writes for itself goes through :mod:`harness.io.safefiles` (no
symbolic link followed, temporary files removed on failure); damaged files are read with a
warning naming the file and its lines, never with a crash.
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

from harness.io import safefiles
from harness.io.safefiles import open_own, write_atomic, write_error

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
#: a study folder holds this file: ``bench run --run-name`` refuses it and ``bench study`` refuses a
#: run folder, so a study and a run never share one folder
STUDY_MARKER = ".study"


class RunLockedError(FileExistsError):
    """Another process holds the run folder (two ``bench run`` with one ``--run-name``)."""


class FileLock:
    """An exclusive ``fcntl.flock`` on a lock file, held until :meth:`release`.

    ``flock`` is released by the kernel when the holder dies, so a killed process never leaves a
    stale lock (the file's pid/time line is only for the message). The lock file is opened
    without following a symbolic link (:func:`~harness.io.safefiles.open_own`): a planted
    ``.lock`` link cannot make the run overwrite its target. Where ``fcntl`` is absent (Windows)
    no lock is taken.
    """

    def __init__(self, path: Path, busy: str):
        self.path = Path(path)
        self.busy = busy  # the refusal, with "{holder}" for the holder's pid line
        self._fh: Any = None

    def acquire(self) -> FileLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open_own(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunLockedError(self.busy.replace("{holder}", holder)) from None
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

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunLock(FileLock):
    """The lock on ``<run>/.lock``, held for the whole run: two processes writing into one run
    folder would interleave their records and count every image twice; the second refuses."""

    def __init__(self, run_dir: Path):
        super().__init__(Path(run_dir) / LOCK_FILE,
                         f"{run_dir} is being written by another bench run ({{holder}}); wait for "
                         "it to finish (then --resume to add to it) or choose another --run-name")


def latest_run(output_dir: Path) -> Path | None:
    runs = sorted((p for p in Path(output_dir).iterdir() if (p / SAMPLES_FILE).exists()),
                  key=lambda p: (p / SAMPLES_FILE).stat().st_mtime) if Path(output_dir).exists() else []
    return runs[-1] if runs else None


class SampleLog:
    """Append-only JSONL of per-image records with crash-safe writes and resume support.

    Opening it reads the file once: :attr:`existing` holds the records of earlier attempts (the
    run being resumed), parsed. A half-written last line (a crash mid-write) is cut off; any other
    line that is not a record is left in place, skipped, and named in :attr:`warnings` (file and
    line numbers), so damage is reported, never silently rewritten. The file is opened without
    following a symbolic link, and a failed write raises :class:`RunWriteError` naming it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.warnings: list[str] = []
        self._fh = open_own(self.path, "a+")
        self.existing: list[dict[str, Any]] = self._repair()

    def _repair(self) -> list[dict[str, Any]]:
        """The file's records; an unterminated last line is completed if it is a whole record,
        else cut off (a crash mid-write), with a warning either way."""
        data = os.pread(self._fh.fileno(), os.fstat(self._fh.fileno()).st_size, 0)
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            line_no = data.count(b"\n") + 1
            try:
                whole = _record_problem(json.loads(data[cut:])) is None
            except ValueError:
                whole = False
            if whole:
                self._append("\n")
                data += b"\n"
                self.warnings.append(f"{self.path}: line {line_no} had no line end (an "
                                     "interrupted write); it was completed")
            else:
                os.ftruncate(self._fh.fileno(), cut)
                data = data[:cut]
                self.warnings.append(f"{self.path}: line {line_no} was cut off by an interrupted "
                                     "write; it was removed and its image will be evaluated again")
        records, bad = _parse_lines(data.decode("utf-8", errors="replace"))
        if bad:
            self.warnings.append(_bad_lines_message(self.path, bad))
        return records

    def _append(self, text: str) -> None:
        try:
            safefiles.write_and_sync(self._fh, text)
        except OSError as exc:
            raise write_error(self.path, exc) from exc

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one record (flushed and fsynced); returns it as :func:`read_samples` would
        read it back, so that a reducer holding it sees what a resumed run will see."""
        safe = _json_safe(record)
        self._append(json.dumps(safe, sort_keys=True) + "\n")
        return _restored(safe)

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:  # a failed flush was already reported by write()
            pass

    def __enter__(self) -> SampleLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _restored(record: dict[str, Any]) -> dict[str, Any]:
    """A parsed record with its non-finite metric values back as floats (``"inf"`` → inf)."""
    record["metrics"] = {k: _restore_float(v) for k, v in record.get("metrics", {}).items()}
    return record


def _record_problem(value: Any) -> str | None:
    """Why a parsed JSON value is not a record, or ``None`` if it is one: an object with a
    string ``sample_id``, a restorer and a task (ids or names), and a ``metrics`` object if any."""
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    if not isinstance(value.get("sample_id"), str):
        return "no sample_id"
    if not (value.get("restorer_id") or value.get("restorer")) or not (
            value.get("task_id") or value.get("task")):
        return "no restorer or task"
    if not isinstance(value.get("metrics", {}), dict):
        return "metrics is not an object"
    return None


def _parse_lines(raw: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The records of a JSONL text (each line parsed once) and the 1-based numbers of the
    non-blank lines that are not records."""
    records, bad = [], []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        if _record_problem(record) is None:
            records.append(_restored(record))
        else:
            bad.append(number)
    return records, bad


def _bad_lines_message(path: Path, bad: list[int]) -> str:
    shown = ", ".join(str(n) for n in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    return (f"{path}: line{'s' if len(bad) > 1 else ''} {shown} "
            f"{'are' if len(bad) > 1 else 'is'} not a record (not JSON, or not an object with "
            "sample_id, restorer and task); skipped")


class RunFileWarning(UserWarning):
    """A run file is damaged in a way the reader works around (lines skipped)."""


def read_samples(path: Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Every record of a ``samples.jsonl``. Lines that are not records are skipped and named
    (file and line numbers): appended to ``warnings`` if given, else a :class:`RunFileWarning`."""
    if not Path(path).exists():
        return []
    records, bad = _parse_lines(Path(path).read_text(encoding="utf-8", errors="replace"))
    if bad:
        message = _bad_lines_message(Path(path), bad)
        if warnings is not None:
            warnings.append(message)
        else:
            import warnings as python_warnings

            python_warnings.warn(message, RunFileWarning, stacklevel=2)
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
    """``results.json``, written atomically (a fresh temporary file renamed over it)."""
    payload = {"schema_version": SCHEMA_VERSION, **payload}
    write_atomic(Path(path), json.dumps(_json_safe(payload), indent=2, sort_keys=False))


class ResultsReadError(ValueError):
    """A ``results.json`` that is not a JSON object (truncated, edited, another file)."""


def read_results(path: Path) -> dict[str, Any]:
    """A ``results.json`` of any schema version, upgraded to the current shape: version 1 lacks
    ``units`` and ``metrics`` (directions); they are filled from what the file holds. An
    unreadable file raises :class:`ResultsReadError` naming it and how to rebuild it."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultsReadError(f"{path} is not valid JSON ({exc}); `bench run --resume "
                               f"--run-name {Path(path).parent.name} --output-dir "
                               f"{Path(path).parent.parent}` rebuilds it from samples.jsonl") from None
    if not isinstance(payload, dict):
        raise ResultsReadError(f"{path} holds a JSON {type(payload).__name__}, not an object")
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
