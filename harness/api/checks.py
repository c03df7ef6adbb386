"""Environment checks that packages contribute to ``bench doctor``.

The harness knows nothing about a concrete restorer (``tests/test_layers.py``), so what lives
outside its asset cache (Stable Diffusion in the Hugging Face cache, YOLO weights in
ultralytics' folder) is checked by the package that needs it: a function returning a list of
:class:`Check`, registered in :data:`CHECKS`. The built-in packages are named as modules below
(imported by name, as the restorer table is); plugins use the entry-point group
``restorebench.doctor`` (value ``"module:function"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.api.registry import Registry


@dataclass(frozen=True)
class Check:
    """One line of ``bench doctor``.

    Attributes:
        group: the section it is shown in (``weights``, ``stacks``, ...).
        name: what was checked (``Stable Diffusion 2.1 (ldrps)``).
        ok: present / usable.
        detail: where it was found, or what is missing.
        fix: the command (or step) that makes it present; empty when ``ok``.
    """

    group: str
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


CHECKS: Registry = Registry("doctor check", entry_point_group="restorebench.doctor",
                            modules=("restorers.doctor", "downstream.doctor"))


def register_check(name: str) -> Callable[[Callable[[], list[Check]]], Callable[[], list[Check]]]:
    """Decorator: ``fn() -> list[Check]`` runs in ``bench doctor``; it must be cheap (no model
    loads, no downloads) and never raise for a missing thing (that is a failed :class:`Check`)."""
    return CHECKS.register(name)
