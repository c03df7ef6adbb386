"""Declared metadata of the built-in restorers, generated from the classes themselves.

``bench list restorers`` and alias lookups must not import every method module (torch, bm3d,
diffusers...). The classes stay the single source of truth: this module imports them once, reads
name, aliases, description, degradations, paper, trainability and the options declared by their
constructors (:mod:`harness.api.options`), and writes ``restorers/manifest.json``, which
``restorers/__init__.py`` hands to the registry. ``tests/test_manifest.py`` fails when the file is
stale, so a new restorer or option cannot be forgotten::

    python -m restorers.manifest          # regenerate after adding or changing a restorer
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MANIFEST = Path(__file__).resolve().parents[1] / "restorers" / "manifest.json"


def restorer_entry(name: str, target: str) -> dict[str, Any]:
    from harness.api.options import declared_options
    from harness.api.registries import RESTORERS

    cls = RESTORERS.get(name)
    entry: dict[str, Any] = {
        "target": target, "aliases": RESTORERS.aliases_of(name), "description": cls.description,
        "degradations": list(cls.degradations), "paper": cls.paper, "trainable": cls.trainable,
        "warmup": cls.warmup, "needs_grad": cls.needs_grad, "weights": cls.weights_summary(),
        "options": {k: v.describe() for k, v in declared_options(cls).items()}}
    extra = getattr(cls, "manifest_extra", None)
    if callable(extra):
        entry["extra"] = extra()
    return json.loads(json.dumps(entry, default=str))


def build() -> dict[str, Any]:
    from restorers import BUILTIN_RESTORERS

    return {name: restorer_entry(name, target) for name, target in sorted(BUILTIN_RESTORERS.items())}


def render(entries: dict[str, Any]) -> str:
    return json.dumps(entries, indent=1, sort_keys=True) + "\n"


def main() -> int:
    text = render(build())
    if "--check" in sys.argv:
        current = MANIFEST.read_text(encoding="utf-8") if MANIFEST.exists() else ""
        if current != text:
            print(f"{MANIFEST} is stale; run python -m restorers.manifest", file=sys.stderr)
            return 1
        return 0
    MANIFEST.write_text(text, encoding="utf-8")
    print(f"wrote {MANIFEST} ({len(json.loads(text))} restorers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
