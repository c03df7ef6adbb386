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


#: names a run or study folder may not take: what ``bench`` itself keeps in ``--output-dir``
RESERVED_FOLDERS = ("mlartifacts", "mlflow.db", "studies")


def check_folder_name(name: str, option: str = "--run-name") -> str:
    """``name`` if it can name a folder directly under ``--output-dir``, else ValueError.

    A run or study name becomes one folder, so it must be one plain path component: no ``/``,
    not ``.``/``..``, not absolute, not hidden, not one of :data:`RESERVED_FOLDERS`. Plain means
    what :func:`safe_name` leaves unchanged (letters, digits, ``_ - .``, starting with a letter
    or digit, at most 80 characters), so the folder is named exactly as the user typed it.
    """
    if not name or safe_name(name) != name or name in RESERVED_FOLDERS:
        shown = name if name else "(empty)"
        raise ValueError(f"{option} {shown!r}: a run or study name is one folder name under "
                         "--output-dir: letters, digits, '_', '-' and '.', starting with a letter or "
                         f"digit, at most 80 characters, not {' or '.join(RESERVED_FOLDERS)} "
                         "(e.g. --run-name nlm-kodak)")
    return name


def check_labels(kind: str, labels: list[str]) -> None:
    """Labels that become file names (``previews/<label>/``, ``images/<label>/``): none may start
    with ``_`` (reserved: ``previews/_lq``, ``previews/_gt``), and no two may map to one file name
    (:func:`safe_name`, compared case-insensitively for case-insensitive file systems)."""
    seen: dict[str, str] = {}
    for label in labels:
        if label.startswith("_"):
            raise ValueError(f"{kind} label {label!r}: labels starting with '_' are reserved "
                             "(the report's _lq and _gt previews); choose another label")
        name = safe_name(label).casefold()
        if name in seen and seen[name] != label:
            raise ValueError(f"{kind} labels {seen[name]!r} and {label!r} map to one file name "
                             f"({safe_name(label)!r}); give one of them another label")
        seen[name] = label
