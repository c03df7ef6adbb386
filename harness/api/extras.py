"""Optional stacks: which pip extra installs a missing module, read from the installed metadata.

The core install leaves out diffusers (``ldrps``), ultralytics (``detect``), ray (``ray``) and
mamba-ssm (``cuda``); ``pyproject.toml`` says which extra brings each. A command that needs one
calls :func:`require` first, so a missing stack answers with the extra to install (one line,
exit 2 at the CLI) instead of a traceback or "No such command". The mapping is read from the
distribution's ``Requires-Dist`` lines (``ultralytics>=8.4; extra == "detect"``), so it cannot
drift from ``pyproject.toml``; a plugin passes its own distribution name.
"""

from __future__ import annotations

import importlib.util
import re
from importlib.metadata import PackageNotFoundError, distribution

#: ``Requires-Dist`` line: the requirement's name, then (after ``;``) ``extra == "NAME"``
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;.*extra\s*==\s*['\"]([^'\"]+)['\"]")


def _normalise(name: str) -> str:
    """PEP 503 name: ``mamba_ssm`` and ``Mamba-SSM`` are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_for(module: str, dist: str = "restorebench") -> str | None:
    """The extra of ``dist`` whose requirements include ``module``'s distribution (the top-level
    module name normalised, which holds for every optional stack here), or ``None``."""
    try:
        requires = distribution(dist).requires or []
    except PackageNotFoundError:
        return None
    wanted = _normalise(module.split(".")[0])
    extras = [m.group(2) for line in requires if (m := _REQUIREMENT.match(line))
              and _normalise(m.group(1)) == wanted]
    return extras[0] if extras else None


def install_hint(module: str, dist: str = "restorebench") -> str:
    """``needs the detect extra: pip install -e '.[detect]'`` (or ``pip install MODULE`` when no
    extra declares it)."""
    extra = extra_for(module, dist)
    if extra is None:
        return f"needs the package {module!r}: pip install {module.split('.')[0]}"
    return f"needs the {extra} extra: pip install -e '.[{extra}]'  (or pip install '{dist}[{extra}]')"


def require(module: str, what: str, dist: str = "restorebench") -> None:
    """Raise :class:`ImportError` naming the extra when ``module`` is not installed, before
    anything loads (``find_spec`` imports nothing but the parent package)."""
    try:
        present = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        present = False
    if not present:
        raise ImportError(f"{what} {install_hint(module, dist)}", name=module)


def extras_of(dist: str = "restorebench") -> dict[str, list[str]]:
    """``{extra: [distribution names]}`` of ``dist``'s own optional stacks (extras that only
    gather other extras, like ``all``, are left out), for ``bench doctor``."""
    try:
        requires = distribution(dist).requires or []
    except PackageNotFoundError:
        return {}
    own = _normalise(dist)
    extras: dict[str, list[str]] = {}
    for line in requires:
        match = _REQUIREMENT.match(line)
        if match and _normalise(match.group(1)) != own:
            extras.setdefault(match.group(2), []).append(match.group(1))
    return extras
