"""The one slugifier: how a label (restorer, task, sample id, study name) becomes a file name.

Every file and folder the harness names after a label (``images/``, ``previews/``, MLflow
artifacts, study outputs, checkpoints) goes through :func:`safe_name`, so one label has one name
everywhere. A plain name stays as it is; anything else becomes ``slug-<sha1[:8]>``, so two labels
never share a file name (``a b`` and ``a_b`` differ in their hash) and no name can leave its
folder (``..``, ``/``, a leading ``.``).
"""

from __future__ import annotations

import hashlib
import re

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str) -> str:
    """A file name for ``name``: unchanged when already plain, else ``slug-<sha1[:8]>``."""
    if _PLAIN.match(name) and name not in (".", "..") and not name.endswith("."):
        return name
    slug = _BAD.sub("_", name).strip("_.")[:60] or "x"
    return f"{slug}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"
