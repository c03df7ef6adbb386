"""Helpers shared by the UnfoldLDM benchmarks (timing, peak memory); not a benchmark itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil
import torch


class PeakMemory:
    """Peak memory above the level at entry, in MB: CUDA allocator, or process RSS polled every 2 ms."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mb = device, 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        process = psutil.Process()
        self._base = self._peak = process.memory_info().rss
        self._stop = threading.Event()

        def poll() -> None:
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, process.memory_info().rss)

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, psutil.Process().memory_info().rss)
            self.peak_mb = (self._peak - self._base) / 2**20


def timed(fn: Callable[[], object], device: torch.device, repeats: int = 1) -> tuple[float, object]:
    """Best-of-``repeats`` wall time in seconds (CUDA-synchronised) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, out
