"""``python tests/full_disk_cli.py run ...``: ``tests/slow_cli.py`` (the real ``bench`` CLI plus
the ``t-sleepy`` restorer) on a simulated full disk: after ``$FULL_AFTER`` writes of the run's own
files (``samples.jsonl`` lines, ``results.json``), every write stores half its bytes and fails with
ENOSPC, as a write that fills a disk does. The patch point is
:func:`harness.io.safefiles.write_and_sync`, the one place a run's own bytes reach the disk."""

from __future__ import annotations

import errno
import os
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.io import safefiles  # noqa: E402

_real = safefiles.write_and_sync
_count = [0]


def _full_disk(fh, text: str) -> None:
    _count[0] += 1
    if _count[0] <= int(os.environ["FULL_AFTER"]):
        return _real(fh, text)
    fh.write(text[:len(text) // 2])
    fh.flush()
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


safefiles.write_and_sync = _full_disk

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("slow_cli.py")), run_name="__main__")
