"""Layer 6 — the ``bench`` command line: one module per command group.

``bench`` is ``harness.cli.main:main``. Commands of packages above the harness (``bench detect``
from ``downstream``) are found through the entry-point group ``restorebench.commands``, never
imported by name."""

from __future__ import annotations

from typing import Any


def main() -> Any:
    from harness.cli.main import main as _main

    return _main()
