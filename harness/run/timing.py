"""Timing and memory of one ``restore`` call: CUDA-synchronised wall time and peak memory.

Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA (what the device had to hold: weights
plus activations, as papers report it). On the CPU it is the *increment* of the process RSS over
its value just before the call (sampled every 2 ms by a thread): the process RSS itself (torch,
pyiqa, MLflow, decoded images: about 1 GB) would bury the restorer's own use, so that ``identity``
showed 1 GB. :attr:`PeakMemory.kind` names which of the two a number is; records carry it as
``peak_mem_kind``.
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
        self.kind = ("cuda max_memory_allocated" if device.type == "cuda"
                     else "cpu RSS increment over the pre-call baseline")
        self._baseline = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            process = psutil.Process()
            self._baseline = process.memory_info().rss
            self._peak = self._baseline

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
            self.peak_mb = max(0, self._peak - self._baseline) / 2**20
