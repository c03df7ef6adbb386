"""The registry of training sets, so that neither the harness nor a restorer imports ``tasks``.

A training set is a factory ``(**options) -> torch.utils.data.Dataset`` whose items are
``(lq, gt)`` pairs of (3,H,W) float tensors in [0,1] (equal H, W within a set, so the default
collate batches them). Items must be a pure function of ``(seed, epoch, index)``; a set that
draws randomly exposes ``set_epoch(epoch)`` so the loop gives fresh pairs each epoch and a
resumed run sees exactly the pairs an uninterrupted one would.

Specs are written like tasks: ``degraded[clean=cbsd68,degradation=noise+blur+lowlight,
severity=1-5,crop=128]`` (seeded degraded crops over a clean folder) or ``lolv1-train`` (a paired
benchmark's training split). ``tasks/training.py`` registers the built-ins; plugins use the
entry-point group ``restorebench.training_sets``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.api.registry import Registry

TrainingSetFactory = Callable[..., Any]

TRAINING_SETS: Registry[TrainingSetFactory] = Registry(
    "training set", entry_point_group="restorebench.training_sets", modules=("tasks.training",))


def register_training_set(name: str, *aliases: str):
    """Register a training-set factory (a Dataset class or a function returning one)."""
    return TRAINING_SETS.register(name, *aliases)


def build_training_set(name: str, seed: int = 0, **options: Any) -> Any:
    """Build a registered training set with its options and the run's seed."""
    from harness.api.options import accepts_extra, declared_options, validate_options

    factory = TRAINING_SETS.get(name)
    options = {**options, "seed": seed}
    validate_options("training set", name, declared_options(factory), options,
                     extra_ok=accepts_extra(factory))
    return factory(**options)
