"""Timing and memory of ``restore``: CUDA-synchronised wall time and peak memory.

Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA (what the device had to hold: weights
plus activations, as papers report it), read around the timed call itself: the CUDA allocator
counts it at no cost.

On the CPU it is the peak of the **heap in use** during a call minus its value just before:
glibc's ``mallinfo2`` (bytes handed out by ``malloc`` and not yet freed, heap and mmap'd blocks
together: torch's CPU tensors, numpy, OpenCV), read by a thread every 0.2 ms, by the calling
thread's profile hook each time a Python or C function returns (so what is alive between two
torch or numpy operations is seen even when the OS wakes the thread late: a loaded machine), and
once more after the call (so the returned image always counts). Nothing in the allocator or in torch
records a CPU peak, so it has to be sampled — and sampling costs the call it measures: a Python
thread waking every millisecond takes the GIL from the restorer and contends for the arena locks
(measured: +5 % on CLAHE and AOD-Net, +7 % FFDNet, +15 % identity, +18 % Richardson–Lucy at
256², one thread). So the CPU figure is taken on a separate, **untimed probe call**: the first
image of each input size of a (restorer, task) runs again before its timed call, under the
sampler; the timed calls run with no sampler at all, and every record of that size carries the
probe's figure. A sampled figure can only miss a peak, never invent one, as long as the
process's other threads neither allocate nor free meanwhile (the executor settles the previews
and the MLflow writer first, :class:`~harness.tracking.worker.TrackingProcess`, and loads the
next image only after the timed call): a temporary that lives inside one C call shorter than
the sampling period is seen by chance. Identity's peak was such a case: ``torch.isfinite`` in the
output check allocated ``abs(x)`` and three masks for ~0.1 ms (the check now sums instead), so
one probe call read 1.50, 1.88 or 2.06 MB at 256² at random, and two calls agreeing on a low
figure made one of three reruns of ``bench run -r identity -t lolv1-tao256`` 25 % off. So the
probe calls ``restore`` at least :data:`PROBE_MIN_CALLS` times, and on while the probe has
spent under :data:`PROBE_BUDGET_S` (at most :data:`PROBE_MAX_CALLS` calls), and keeps the
**largest** figure: a call of a few ms is probed 50 times (each at a different phase of the
sampler), a call of 125 ms or more twice. The budget counts the wall time of whole probe calls,
sampler start and profile hook included: these slow a call, most of all the first (measured on
the loaded VM: a 0.2-ms call took 47 ms and then 15 ms under the hook), which is why it is a
generous budget, not a target duration (50 ms of calls ended a tiny call's probe after two).
At most
:data:`MAX_PROBES` sizes are probed per (restorer, task) (a folder of photos of every size would
double its cost otherwise); records of further sizes carry None and say why. The probe's output
is thrown away and it runs before the image's seeds are set, so it changes no result.

**Short calls are repeated.** A single call of a few milliseconds measures the core's wake-up
as much as the method: between two images the process writes its record (an fsync) and waits for
the next image, the core idles, and the next call starts on a cold core (on the 2-core VM this
project is developed on: identity at 256² 0.61 ms back to back, 0.90–0.98 ms after a 3-ms sleep or
an fsync; SCI and gamma, ~5 ms, +5–20 %). So a call shorter than :data:`SHORT_CALL_MS` is run
again back to back, with the same seeds (the same output), up to :data:`SHORT_CALL_REPEATS`
calls, and the record's ``latency_ms`` is their median (``latency_calls`` says how many), as
``timeit`` does; longer calls are timed once (the wake-up is then under 1 %).

Why not the process RSS, as before: the allocator keeps freed pages mapped
(:mod:`harness.io.fastproc` asks it to), so an RSS increment measures what the allocator had to
fetch from the kernel *this time*, which depends on what earlier images left behind: the same
Zero-DCE image gave 0.06 MB once and 51–85 MB on reruns. Bytes in use do not depend on that.
Being sampled, one call can still miss a temporary that lives less than 0.2 ms: three processes
probing identity, NLM, Zero-DCE, gamma, CLAHE and Richardson–Lucy at 256² agreed to 0.1 % on 50
of 54 single calls, the misses being 1.5–5 MB low; the largest of several calls removes them
(``benchmarks/latency_truth.py`` prints the rerun spread). Peak RSS after ``malloc_trim`` with
the kernel's high-water mark reset (exact, no sampling) was tried and rejected: 105–130 MB for
the same Zero-DCE image, the page layout after trimming differing from call to call.

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
from typing import Any

import torch

#: a call shorter than this is timed again back to back, and the median recorded (see below)
SHORT_CALL_MS = 10.0
#: calls timed in all for a short one
SHORT_CALL_REPEATS = 9
LATENCY_METHOD = (f"wall time of restore() alone, CUDA-synchronised, warm-up excluded; a call under "
                  f"{SHORT_CALL_MS:g} ms: the median of {SHORT_CALL_REPEATS} back-to-back calls "
                  "(records: latency_calls)")
#: how often the sampling thread reads the heap (probe calls are untimed: fine sampling is free)
SAMPLE_S = 0.0002
#: input sizes probed per (restorer, task) at most
MAX_PROBES = 8
#: probe calls per size: at least PROBE_MIN_CALLS, and more while the probe has spent under
#: PROBE_BUDGET_S seconds (at most PROBE_MAX_CALLS); the largest figure is kept (module docstring)
PROBE_MIN_CALLS = 2
PROBE_BUDGET_S = 0.25
PROBE_MAX_CALLS = 50
CUDA_METHOD = "cuda max_memory_allocated"
HEAP_METHOD = ("cpu heap in use (glibc mallinfo2 uordblks+hblkhd): peak during untimed probe "
               "calls on the first image of each input size minus before them, sampled every 0.2 ms "
               "and after every function return; the largest of >= 2 calls, up to 50 within 0.25 s")
NOT_PROBED = (f"not measured: more than {MAX_PROBES} input sizes in this task (the CPU figure "
              "comes from one untimed probe call per size)")
UNAVAILABLE = "unavailable: this C library has no mallinfo2 (glibc >= 2.33)"


def seed_global_rng(seed: int, device: torch.device) -> None:
    """Seed the global generator that a call on ``device`` draws from, cheaply.

    ``torch.manual_seed`` also queues a seed for CUDA, and where CUDA is not initialised (every
    CPU run of a CUDA build of torch) it records the queueing call's stack with
    ``traceback.format_stack()``, which reads source lines through ``linecache`` (a ``stat`` per
    frame). Done right before the timed call, that took 0.12–0.2 ms and left the caches cold:
    identity at 256² timed 0.85–0.98 ms after it against 0.59 ms after seeding the CPU generator
    alone (``benchmarks/latency_truth.py``: ``bench run`` 1.30–1.38× the bare loop for identity).
    A CPU run draws from the CPU generator only, so only that one is seeded there; on CUDA,
    where the device is initialised and nothing is queued, ``torch.manual_seed`` seeds both."""
    if device.type == "cpu":
        torch.random.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


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
        self._previous_profile: Any = None

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
            ready.wait()  # the sampler is asleep before the call starts, not starting up
            self._previous_profile = sys.getprofile()
            sys.setprofile(self._at_return)
        return self

    def _at_return(self, frame: Any, event: str, arg: Any) -> None:
        """This thread's profile hook: the heap after every call returns, Python or C (what is
        alive between two torch/numpy operations is seen whatever the OS does with the sampler)."""
        if event in ("return", "c_return"):
            self._peak = max(self._peak, heap_in_use() or 0)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._thread is not None:
            sys.setprofile(self._previous_profile)
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, heap_in_use() or 0)
            self.peak_mb = max(0, self._peak - self._baseline) / 2**20
