"""Run inside ``unshare -rm`` (root of a private user+mount namespace) by
``tests/test_fault_injection.py``: real tmpfs disks, real ENOSPC. Prints one JSON line of facts.

* a 600 KB disk: too small even for the MLflow store; no ``.mlflow.db.*.tmp`` may stay behind;
* a 3 MB disk filled to ~150 KB free around the run: the run ends with a one-line error, no
  temporary file, no RUNNING MLflow run; the filler is deleted (space freed) and ``--resume``
  completes the run.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))

from test_fault_injection import _args, _check_complete, _start  # noqa: E402


def _mount(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)


def _temps(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.tmp"))


def main(root: Path) -> dict:
    import os

    from harness.tracking.store import ensure_sqlite_store

    facts: dict = {}
    tiny = root / "tiny"
    _mount(tiny, "600k")
    process = _start(_args(tiny / "results"), dict(os.environ))
    facts["tiny_output"] = process.communicate(timeout=300)[0][-2000:]
    facts["tiny_rc"], facts["tiny_temps"] = process.returncode, _temps(tiny)

    disk = root / "disk"
    _mount(disk, "3m")
    out = disk / "results"
    ensure_sqlite_store(out / "mlflow.db")
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, free - 150_000))
    process = _start([*_args(out), "--previews"], dict(os.environ))
    facts["first_output"] = process.communicate(timeout=300)[0][-3000:]
    facts["first_rc"], facts["temps"] = process.returncode, _temps(disk)
    with sqlite3.connect(out / "mlflow.db") as con:
        facts["running"] = con.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0]
    filler.unlink()
    process = _start(_args(out, "--resume"), dict(os.environ))
    facts["resume_output"] = process.communicate(timeout=300)[0][-3000:]
    facts["resume_rc"] = process.returncode
    with sqlite3.connect(out / "mlflow.db") as con:
        facts["running_after_resume"] = con.execute(
            "select count(*) from runs where status = 'RUNNING'").fetchone()[0]
    try:
        _check_complete(out)
        facts["complete"] = "ok"
    except AssertionError as exc:
        facts["complete"] = f"incomplete: {exc}"
    return facts


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
