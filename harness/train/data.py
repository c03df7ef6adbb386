"""Deterministic data order: batch ``b`` of epoch ``e`` is a slice of a permutation seeded by
``(seed, e)``, and a training set's items depend only on ``(seed, e, index)``; so a resumed run
draws exactly the batches an uninterrupted one would, without replaying the skipped ones."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from harness.train.recipe import Recipe


def batch_order(n_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch (drop-last), from a permutation seeded by (seed, epoch)."""
    key = hashlib.sha256(f"batches|{seed}|{epoch}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(key[:8], "little") & ((1 << 63) - 1))
    perm = torch.randperm(n_items, generator=generator).tolist()
    return [perm[i:i + batch_size] for i in range(0, n_items - batch_size + 1, batch_size)]


class Batches:
    """Batches from step ``start`` on, crossing epochs and progressive stages; workers load items
    when asked to.

    Stage ``s`` (iterations ``[a, b)``, batch ``n``) owns the epochs from the sum of the earlier
    stages' epoch counts on, so iteration ``i`` maps to ``(epoch, offset, crop, batch)`` by the recipe
    alone. Without ``progressive`` that is ``divmod(i, len // batch)``, as it always was."""

    def __init__(self, dataset: Any, recipe: Recipe, seed: int, start: int):
        self.stages = recipe.stages()
        largest = max(batch for *_, batch in self.stages)
        if len(dataset) < largest:
            raise ValueError(f"the training set has {len(dataset)} items, fewer than one batch of "
                             f"{largest}; lower --batch-size or enlarge the set")
        if any(crop is not None for _, _, crop, _ in self.stages) and not hasattr(dataset, "set_crop"):
            raise ValueError(f"progressive patches need a training set with set_crop(size); "
                             f"{type(dataset).__name__} has none")
        self.dataset, self.recipe, self.seed = dataset, recipe, seed
        self.step = start

    def position(self, step: int) -> tuple[int, int, int | None, int | None, int]:
        """``(epoch, offset, stage end, crop, batch)`` of iteration ``step``; the last stage has no
        end (it runs on until the loop stops at ``iters``)."""
        first_epoch = 0
        for index, (begin, end, crop, batch) in enumerate(self.stages):
            per_epoch = len(self.dataset) // batch
            last = index == len(self.stages) - 1
            if step < end or last:
                epoch, offset = divmod(step - begin, per_epoch)
                return first_epoch + epoch, offset, None if last else end, crop, batch
            first_epoch += math.ceil((end - begin) / per_epoch)
        raise AssertionError("unreachable")

    def __iter__(self):
        while True:
            epoch, offset, end, crop, batch = self.position(self.step)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            if crop is not None:
                self.dataset.set_crop(crop)
            batches = batch_order(len(self.dataset), batch, self.seed, epoch)[offset:]
            if end is not None:  # a stage ends mid-epoch: the next one starts a fresh epoch
                batches = batches[:end - self.step]
            # a private generator: creating a loader must not draw from the global RNG (a resumed
            # run creates one mid-epoch, where an uninterrupted run does not)
            loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=batches,
                                                 num_workers=self.recipe.num_workers,
                                                 generator=torch.Generator().manual_seed(epoch))
            for batch_items in loader:
                self.step += 1
                yield batch_items[0], batch_items[1]
