"""Process-level speed: glibc allocator settings at start-up, and an exit without teardown.

**Allocator** (:func:`configure_malloc`). glibc serves allocations above ``M_MMAP_THRESHOLD``
(128 KiB, raised dynamically up to 32 MiB after frees) with fresh ``mmap`` pages and gives the
top of the heap back to the kernel whenever more than ``M_TRIM_THRESHOLD`` is free there. Metric
code and CNN forwards allocate and free the same multi-MB temporaries for every image, so every
image pays for page faults on memory it just returned: about half of NIQE's time, and of DnCNN's
forward, in the issue's measurements. Raising both thresholds keeps those pages mapped and
re-used. Setting them with ``mallopt`` at start-up has the effect of the environment variables
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` without re-executing the process; it
applies to every allocation made after the call (what torch allocated while being imported
stays where it is).

glibc refuses an mmap threshold above ``HEAP_MAX/2`` (32 MiB on 64-bit), so blocks larger than
that (a 64-channel float32 activation of a 768×512 image is 100 MB) would still be mapped afresh
each time; ``nommap`` additionally sets ``M_MMAP_MAX=0`` so that they too come from the heap
(when the heap cannot grow, glibc still falls back to ``mmap``). The cost is memory: freed pages
stay resident (up to 1 GiB kept at the heap top) until exit.

Measured (``benchmarks/metrics_vs_pyiqa.py --sections malloc``: per process, 4 Kodak images,
each a DnCNN-sized 17-layer 64-channel grey forward on the full 768×512 image then NIQE; 1
thread; 2 shared cores, medians of 3 processes):

=========  ==============  ==================  ===========================
mode       NIQE ms/image   forward ms/image    peak RSS (start → end)
=========  ==============  ==================  ===========================
default    138             14,555              538 → 865 MB
tuned      80              14,319              537 → 912 MB (+47 MB)
nommap     60              4,317               537 → 1,132 MB (+267 MB)
=========  ==============  ==================  ===========================

``BENCH_MALLOC``: ``nommap`` (the default here), ``tuned`` (thresholds only: NIQE-sized
temporaries re-used, CNN activations still re-mapped), ``default`` (leave glibc alone: the
opt-out). Not glibc (macOS, musl): nothing is done.

**Exit** (:func:`fast_exit`). At interpreter shutdown CPython tears down every module and
garbage-collects the whole heap — with torch, pyiqa and MLflow loaded that is 1–2 s of every
``bench`` command, for nothing. :func:`fast_exit` does what a normal exit does that matters —
joins non-daemon threads and runs ``concurrent.futures``' exit hooks (``threading._shutdown``),
runs ``atexit`` handlers (MLflow's async-logging flush, tempfile cleanup), flushes ``sys.stdout``
/ ``sys.stderr`` and the logging handlers — and then ``os._exit``\\ s, skipping the teardown.
It must be the very last thing the CLI does, after every result file is written and closed.
``BENCH_FAST_EXIT=0`` turns it into a plain ``sys.exit``.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
from dataclasses import dataclass

# glibc <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

#: The largest mmap threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
#: Free memory at the heap top that is kept instead of returned to the kernel.
TRIM_THRESHOLD = 1024 * 1024 * 1024

_MODES = ("default", "tuned", "nommap")


@dataclass(frozen=True)
class MallocSetting:
    """What :func:`configure_malloc` did (logged by the CLI as a run parameter)."""

    mode: str
    applied: bool
    detail: str


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


def configure_malloc(mode: str | None = None) -> MallocSetting:
    """Apply the allocator setting named by ``mode`` or ``$BENCH_MALLOC`` (default ``nommap``).

    Call it as early as possible (before torch allocates), once per process. Idempotent.
    """
    mode = (mode or os.environ.get("BENCH_MALLOC") or "nommap").strip().lower()
    if mode not in _MODES:
        raise ValueError(f"BENCH_MALLOC must be one of {_MODES}, got {mode!r}")
    if mode == "default":
        return MallocSetting(mode, False, "glibc defaults")
    libc = _libc()
    if libc is None:
        return MallocSetting(mode, False, "not glibc: unchanged")
    ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
    ok &= libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    detail = f"mmap_threshold={MMAP_THRESHOLD_MAX} trim_threshold={TRIM_THRESHOLD}"
    if mode == "nommap":
        ok &= libc.mallopt(M_MMAP_MAX, 0) == 1
        detail += " mmap_max=0"
    version = libc.gnu_get_libc_version().decode()
    return MallocSetting(mode, bool(ok), f"glibc {version}: {detail}" + ("" if ok else " (refused)"))


def peak_rss_mb() -> float:
    """Peak resident memory of this process (``VmHWM``), in MB; NaN where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def fast_exit_enabled() -> bool:
    return os.environ.get("BENCH_FAST_EXIT", "1").strip().lower() not in ("0", "false", "no", "off")


def fast_exit(code: int = 0) -> None:
    """End the process now, skipping interpreter teardown (see the module docstring).

    Never returns. With ``BENCH_FAST_EXIT=0`` it raises ``SystemExit(code)`` instead.
    """
    if not fast_exit_enabled():
        raise SystemExit(code)
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        shutdown()  # join non-daemon threads, run threading._register_atexit hooks
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
