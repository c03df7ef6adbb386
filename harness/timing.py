"""Timing and memory of one ``restore`` call: CUDA-synchronised wall time and peak memory.

Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA and the process RSS peak (sampled every
2 ms by a thread) on the CPU.
"""

from __future__ import annotations

import threading

import psutil
import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of one ``restore`` call, in MB (CUDA allocator or process RSS)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            process = psutil.Process()
            self._peak = process.memory_info().rss

            def poll() -> None:
                while not self._stop.wait(0.002):
                    self._peak = max(self._peak, process.memory_info().rss)

            self._thread = threading.Thread(target=poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self._peak = max(self._peak, psutil.Process().memory_info().rss)
            self.peak_mb = self._peak / 2**20
