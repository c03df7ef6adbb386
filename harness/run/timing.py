"""Timing and memory of one ``restore`` call: CUDA-synchronised wall time and peak memory.

Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA (what the device had to hold: weights
plus activations, as papers report it). On the CPU it is the peak of the **heap in use** during
the call minus its value just before: glibc's ``mallinfo2`` (bytes handed out by ``malloc`` and
not yet freed, heap and mmap'd blocks together: torch's CPU tensors, numpy, OpenCV), sampled every
millisecond by a thread and once more after the call (so the returned image always counts).

Why not the process RSS, as before: the allocator keeps freed pages mapped
(:mod:`harness.io.fastproc` asks it to), so an RSS increment measures what the allocator had to
fetch from the kernel *this time*, which depends on what earlier images left behind: the same
Zero-DCE image gave 0.06 MB once and 51–85 MB on reruns. Bytes in use do not depend on that.
What it still cannot separate is another thread allocating during the call, so the executor
keeps its own threads quiet while it times (no prefetch or preview writing in flight). Being
sampled, it can miss a temporary that lives less than a millisecond (a few-MB buffer of a
pointwise op): reruns of Zero-DCE, identity and NLM at 256² agree to 0.1 %, a 15-ms ``gamma``
call showed 0.75–4.5 MB over five calls.

Where ``mallinfo2`` is missing (not glibc, or glibc < 2.33) the CPU figure is unavailable
(``None``) rather than a number that does not mean what it says. :attr:`PeakMemory.kind` names
the method; records carry it as ``peak_mem_kind`` and ``results.json`` as
``measurement.peak_mem_method``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from functools import cache

import torch

#: how often the sampling thread reads the heap
SAMPLE_S = 0.001
CUDA_METHOD = "cuda max_memory_allocated"
HEAP_METHOD = ("cpu heap in use (glibc mallinfo2 uordblks+hblkhd): peak during the call minus "
               "before it, sampled every 1 ms")
UNAVAILABLE = "unavailable: this C library has no mallinfo2 (glibc >= 2.33)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


@cache
def _mallinfo2() -> ctypes._CFuncPtr | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        function = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return function


def heap_in_use() -> int | None:
    """Bytes currently allocated through ``malloc`` by this process; None where unknown."""
    function = _mallinfo2()
    if function is None:
        return None
    info = function()
    return int(info.uordblks) + int(info.hblkhd)


def cpu_method() -> str:
    """How CPU peak memory is measured on this machine (:data:`HEAP_METHOD` or unavailable)."""
    return HEAP_METHOD if _mallinfo2() is not None else UNAVAILABLE


class PeakMemory:
    """Peak memory of one ``restore`` call, in MB (CUDA allocator, or heap in use on the CPU);
    ``peak_mb`` is None when the CPU method is unavailable."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb: float | None = None
        self.kind = CUDA_METHOD if device.type == "cuda" else cpu_method()
        self._baseline = 0
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind == HEAP_METHOD:
            self._baseline = self._peak = heap_in_use() or 0
            ready = threading.Event()

            def poll() -> None:
                ready.set()
                while not self._stop.wait(SAMPLE_S):
                    self._peak = max(self._peak, heap_in_use() or 0)

            self._thread = threading.Thread(target=poll, daemon=True, name="peak-memory")
            self._thread.start()
            ready.wait()  # the sampler is asleep before the timed call starts, not starting up
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, heap_in_use() or 0)
            self.peak_mb = max(0, self._peak - self._baseline) / 2**20
