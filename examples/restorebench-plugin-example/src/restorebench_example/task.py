"""``saltpepper``: synthetic smooth images with seeded salt-and-pepper noise; needs no data.

A task subclasses :class:`harness.api.Task`: ``sample_ids()`` in a fixed order and
``load(id) -> Sample(id, lq, gt, meta)`` with ``(3, H, W)`` float tensors in [0, 1]. Its typed
constructor arguments are its options (``-t 'saltpepper[amount=0.2]'``). The noise is drawn from
``self.image_seed(id)``, a hash of (task name, seed, id), so every run, shard and resume sees
the same noisy pixels.

The clean images are 8-bit values (so the 8-bit quantisation of the metric conventions changes
nothing) of 128×128 (NIQE's 96-px blocks fit). Each value is replaced by 0 or 1 with probability
``amount / 2`` each; for any clean image the expected mean absolute error of the noisy input is
therefore ``amount / 2`` (|0 - x| + |1 - x| = 1), which the example's test checks.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch

from harness.api import MetricConventions, Range, Sample, Task

SIZE = 128


class SaltPepperTask(Task):
    description = "smooth synthetic 128x128 images + seeded salt-and-pepper noise (no data needed)"
    degradation = "impulse-noise"
    conventions = MetricConventions()  # RGB, no border crop, 8-bit quantised output
    seed = 7

    def __init__(self, amount: Annotated[float, Range(0, 1)] = 0.1,
                 n: Annotated[int, Range(1, 64)] = 4):
        super().__init__()
        self.amount, self.n = amount, n
        self.options = {"amount": amount, "n": n}

    def sample_ids(self) -> list[str]:
        return [f"synthetic-{i:02d}" for i in range(self.n)]

    def load(self, sample_id: str) -> Sample:
        rng = np.random.default_rng(self.image_seed(sample_id))
        gt = _clean_image(rng)
        u = rng.random(gt.shape)
        lq = np.where(u < self.amount / 2, 0.0, np.where(u < self.amount, 1.0, gt))
        as_tensor = lambda a: torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1).contiguous()
        return Sample(sample_id, as_tensor(lq), as_tensor(gt), {"amount": self.amount})


def _clean_image(rng: np.random.Generator) -> np.ndarray:
    """A smooth colour gradient with two discs, rounded to 8-bit levels: (H, W, 3) in [0, 1]."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    image = np.stack([x, y, 1 - (x + y) / 2], axis=-1) * rng.uniform(0.5, 1.0, size=3)
    for _ in range(2):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.2)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 1, size=3)
    return np.round(image * 255) / 255
