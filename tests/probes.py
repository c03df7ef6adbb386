"""Telling the executor's untimed CPU memory probe calls from the timed ones, in test restorers
that count their calls (see harness.run.timing: the probe runs under a sampler thread)."""

from __future__ import annotations

import threading


def in_memory_probe() -> bool:
    """True inside a probe call: the heap sampler thread (``peak-memory``) is running."""
    return any(thread.name == "peak-memory" for thread in threading.enumerate())
