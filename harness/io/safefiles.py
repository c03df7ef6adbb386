"""How a run writes its own files so that nothing planted in its folder can redirect them.

A run folder may come from anywhere (a shared disk, a colleague's tarball), so a run's own
files — the lock, ``samples.jsonl``, ``results.json``, ``mlflow_run.json`` and their temporary
files — are never opened through a symbolic link: :func:`open_own` opens with ``O_NOFOLLOW`` and
refuses anything but a regular file with one link (a hard link to another file would be
truncated with it), and :func:`write_atomic` writes a fresh ``mkstemp`` file (``O_EXCL``: never an
existing path) and renames it over the target (``rename`` replaces a link, never its target).

A write that fails (disk full, quota, read-only) removes its temporary file and raises
:class:`RunWriteError`, a one-line error naming the file. This module imports nothing heavy, so the
CLI can name the error class without importing torch.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import IO


class RunFileError(ValueError):
    """A run's own file is a symbolic link, a hard link or not a regular file."""


class RunWriteError(OSError):
    """A run's file could not be written (disk full, quota, read-only folder)."""


def write_error(path: Path, exc: OSError) -> RunWriteError:
    """The one-line error for a failed write of ``path``, saying how to carry on."""
    why = exc.strerror or str(exc)
    hint = (" (the disk is full: free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else " (fix the cause")
    error = RunWriteError(f"cannot write {path}: {why}{hint}, then rerun with --resume to "
                          "complete the run; the records written so far are kept)")
    error.errno = exc.errno
    return error


def open_own(path: Path, mode: str = "a") -> IO[str]:
    """Open a run's own text file for appending (``"a"``) or read/append (``"a+"``), created if
    absent, never through a symbolic link; refuses a hard-linked or non-regular file."""
    flags = os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    flags |= os.O_RDWR if "+" in mode else os.O_WRONLY
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunFileError(f"{path} is a symbolic link; a run's own files must be regular "
                               "files (remove the link, or choose another --run-name)") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise RunFileError(f"{path} is not a regular file with one link (a hard link or a device); "
                           "remove it, or choose another --run-name")
    return os.fdopen(fd, mode, encoding="utf-8")


def check_not_link(path: Path, what: str = "run folder") -> None:
    """Refuse ``path`` if it is a symbolic link (a run folder that points elsewhere)."""
    if Path(path).is_symlink():
        raise RunFileError(f"{path} is a symbolic link; a {what} must be a real folder (remove "
                           "the link, or choose another name)")


def write_and_sync(fh: IO[str], text: str) -> None:
    """Write, flush and fsync: the one place a run's own file bytes reach the disk (a test
    simulates a full disk here, ``tests/test_fault_injection.py``)."""
    fh.write(text)
    fh.flush()
    os.fsync(fh.fileno())


def remove_stale_temps(folder: Path, names: tuple[str, ...]) -> list[str]:
    """Remove the temporary files :func:`write_atomic` left for ``names`` in ``folder`` when its
    process was killed mid-write (``.<name>.XXXX.tmp``); call only while holding the folder's
    lock. Links are removed as links. Returns what was removed."""
    removed = []
    for entry in os.scandir(folder):
        if entry.name.endswith(".tmp") and any(entry.name.startswith(f".{n}.") for n in names):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a fresh temporary file in its folder, fsynced and
    renamed over it; on any failure the temporary file is removed and, for an ``OSError``,
    :class:`RunWriteError` names ``path``."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are for reading by others too
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            write_and_sync(fh, text)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, RunWriteError):
            raise write_error(path, exc) from exc
        raise
