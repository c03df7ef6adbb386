"""``median``: a k×k median filter, the classical remedy for impulse (salt-and-pepper) noise.

A restorer subclasses :class:`harness.api.Restorer` and implements ``_restore(lq, meta)`` on
``(B, 3, H, W)`` float tensors in [0, 1]; the base class pads to ``pad_multiple``, clamps the
output and times nothing itself (the runner times ``restore`` alone). The constructor's typed
keyword arguments are the restorer's options (``-r 'median[size=5]'``): restorebench validates
them before anything loads, logs them and hashes them into the run's ``restorer_id``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from harness.api import Restorer


class MedianFilter(Restorer):
    description = "k x k median filter per channel (impulse / salt-and-pepper noise)"
    degradations = ("impulse-noise",)
    paper = "Tukey, Exploratory Data Analysis (1977)"
    licence = "Apache-2.0"

    def __init__(self, size: Literal[3, 5, 7] = 3):
        super().__init__()
        self.size = size

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        # reflect-pad so border pixels see a full window, then take the median of each window
        radius = self.size // 2
        padded = F.pad(lq, (radius, radius, radius, radius), mode="reflect")
        windows = padded.unfold(2, self.size, 1).unfold(3, self.size, 1)  # (B, C, H, W, k, k)
        return windows.reshape(*windows.shape[:4], -1).median(dim=-1).values
