"""Parsing of ``name[key=value,...]`` item specs used by ``--restorer`` and ``--task``.

Options ride on the item they configure, so two restorers or tasks in one call can have
different options: ``-r 'sci[variant=difficult]' -t 'lolv1[gt_mean=true]'``. Values are read as
JSON literals when they parse (``true``, ``12``, ``0.5``, ``[1,2]``) and as strings otherwise.
Brackets must be quoted in the shell.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SPEC = re.compile(r"^(?P<name>[^\[\]]+?)(?:\[(?P<opts>.*)\])?$")


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        lowered = text.lower()
        if lowered in ("true", "yes", "on"):
            return True
        if lowered in ("false", "no", "off"):
            return False
        return text


def parse_item(spec: str) -> tuple[str, dict[str, Any]]:
    """``'lolv1[gt_mean=true,crop_border=4]'`` → ``('lolv1', {'gt_mean': True, 'crop_border': 4})``."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise ValueError(f"cannot parse {spec!r}; expected NAME or NAME[key=value,...]")
    options: dict[str, Any] = {}
    raw = match.group("opts")
    if raw:
        for part in _split_top_level(raw):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"option {part!r} in {spec!r} is not key=value")
            if key.strip() in options:
                raise ValueError(f"option {key.strip()!r} is given twice in {spec!r}; give it once")
            options[key.strip()] = parse_value(value.strip())
    return match.group("name").strip(), options


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside [...] (so list values survive)."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if current:
        parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]


def parse_restorer(spec: str) -> tuple[str, dict[str, Any], str | None]:
    """``'unet[checkpoint=a.pt]@noise'`` → ``('unet', {'checkpoint': 'a.pt'}, 'noise')``.

    The optional ``@TAG`` says what a checkpoint was trained on; the row is then labelled
    ``NAME (trained on TAG)`` (``bench run`` and ``bench study`` alike)."""
    text = spec.strip()
    tag = None
    at = text.rfind("@")
    if at > text.rfind("]"):
        text, tag = text[:at], text[at + 1:].strip()
        if not tag:
            raise ValueError(f"{spec!r}: empty training tag after '@' (write NAME[...]@TAG)")
    name, options = parse_item(text)
    return name, options, tag


def parse_labelled_restorer(spec: str) -> tuple[str | None, str, dict[str, Any], str | None]:
    """``'no-prior=unfoldldm[prior=false,checkpoint=a.pt]'`` → ``('no-prior', 'unfoldldm',
    {...}, None)``: an optional ``LABEL=`` before the name is the row's display name (ablation
    rows would otherwise be labelled by all their options, checkpoint paths included). Names
    never contain ``=``, so an ``=`` before the first ``[`` can only be a label."""
    text = spec.strip()
    label = None
    if "=" in text.split("[", 1)[0]:
        label, _, text = text.partition("=")
        label = label.strip()
        if not label:
            raise ValueError(f"{spec!r}: empty label before '=' (write LABEL=NAME[...])")
    name, options, tag = parse_restorer(text)
    return label, name, options, tag


DEVICE_SYNTAX = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_syntax(spec: str) -> None:
    """Refuse what is not ``auto|cpu|cuda[:N]`` without importing torch (the CLI calls this
    first, so ``--device gpu`` answers in a fraction of a second). ``gpu`` and ``cuda0`` are
    common slips and get a suggestion."""
    if DEVICE_SYNTAX.fullmatch(spec):
        return
    hint = ""
    if spec.lower() in ("gpu", "nvidia") or spec.lower().startswith(("gpu", "cuda")):
        index = "".join(c for c in spec if c.isdigit())
        hint = f" (did you mean --device cuda{':' + index if index else ''}?)"
    raise ValueError(f"--device {spec!r} is not a device{hint}; use auto, cpu, cuda or cuda:N")
