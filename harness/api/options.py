"""Typed, validated options of restorers and tasks, declared once: in the constructor's signature.

A restorer's (or task factory's) keyword arguments *are* its options. Their type hints say what
is allowed, ``Annotated`` adds a range, and ``Literal`` lists choices::

    def __init__(self,
                 sigma: Annotated[float, Range(0, 255)] | Literal["task", "estimate"] = "task",
                 config: Literal["tiny", "small", "full", "large"] = "small",
                 checkpoint: str | None = None): ...

From that one declaration, :func:`declared_options` derives what ``bench list`` shows and
:func:`validate_options` checks user values *before anything is built or loaded*: a wrong type,
an out-of-range number or an unknown choice gets an error that names the item, the option, the
value and what is allowed. Values arrive already parsed from ``name[key=value]`` (JSON literals,
so ``12`` is an int and ``true`` a bool); an int is accepted where a float is declared, nothing
else is coerced silently.

Unannotated parameters take their type from the default value (``patch_size=5`` → int); a
parameter with neither hint nor default accepts anything and says so.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin


@dataclass(frozen=True)
class Range:
    """Numeric bounds, inclusive unless ``open_low`` / ``open_high`` (``Range(0, open_low=True)``
    is "> 0": a strength, a width, a regularisation weight); ``None`` = unbounded on that side.
    NaN is never in range."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def check(self, value: float) -> bool:
        if value != value:  # NaN compares false with everything; refuse it explicitly
            return False
        low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return low_ok and high_ok

    def __str__(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.open_low or self.low is None else "["
        right = ")" if self.open_high or self.high is None else "]"
        return f"{left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Alternative:
    """One allowed form: a python type (int, float, bool, str, list, dict, None) with an
    optional range, or a fixed set of choices."""

    type: type | None = None
    range: Range | None = None
    choices: tuple[Any, ...] = ()

    def accepts(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices and not (isinstance(value, bool)
                                                  and not any(isinstance(c, bool) for c in self.choices))
        if self.type is type(None):
            return value is None
        if self.type is None:  # Any
            return True
        if self.type is bool:
            return isinstance(value, bool)
        if self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.type is float:  # NaN and inf (JSON's NaN, Infinity) are never an option value
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value))
        elif self.type in (str, Path):
            ok = isinstance(value, (str, Path))
        else:
            ok = isinstance(value, self.type)
        return ok and (self.range is None or self.range.check(float(value)))

    def __str__(self) -> str:
        if self.choices:
            return " | ".join(repr(c) for c in self.choices)
        if self.type is type(None):
            return "null"
        if self.type is bool:
            return "true | false"
        name = "any" if self.type is None else ("path" if self.type is Path else self.type.__name__)
        return f"{name} in {self.range}" if self.range else name


@dataclass(frozen=True)
class DeclaredOption:
    """An option a constructor declares: what it accepts, its default and its help line (from
    the docstring's Args)."""

    name: str
    alternatives: tuple[Alternative, ...]
    default: Any = inspect.Parameter.empty
    help: str = ""
    required: bool = field(default=False)

    def accepts(self, value: Any) -> bool:
        return any(a.accepts(value) for a in self.alternatives)

    @property
    def allowed(self) -> str:
        return " or ".join(str(a) for a in self.alternatives)

    def describe(self) -> dict[str, Any]:
        default = None if self.default is inspect.Parameter.empty else self.default
        return {"name": self.name, "allowed": self.allowed, "default": default,
                "required": self.required, "help": self.help}


#: The old name, for plugins that import it (the names called "spec" are listed in
#: ``docs/architecture.md``).
OptionSpec = DeclaredOption


class OptionError(ValueError):
    """A user-given option value is not allowed; the message says what is."""


def _alternatives(hint: Any) -> list[Alternative]:
    origin = get_origin(hint)
    if origin is Annotated:
        base, *extras = get_args(hint)
        ranges = [e for e in extras if isinstance(e, Range)]
        alts = _alternatives(base)
        if ranges:
            alts = [Alternative(a.type, ranges[0], a.choices) if a.type in (int, float) else a
                    for a in alts]
        return alts
    if origin in (Union, types.UnionType):
        return [alt for arg in get_args(hint) for alt in _alternatives(arg)]
    if origin is Literal:
        return [Alternative(choices=tuple(get_args(hint)))]
    if hint is None or hint is type(None):
        return [Alternative(type(None))]
    if hint is Any:
        return [Alternative(None)]
    if origin in (list, tuple):
        return [Alternative(list)]
    if origin is dict:
        return [Alternative(dict)]
    if isinstance(hint, type):
        return [Alternative(list if hint is tuple else hint)]
    return [Alternative(None)]


def _arg_help(doc: str | None) -> dict[str, str]:
    """``name: text`` lines of a Google-style ``Args:`` section (continuations joined)."""
    helps: dict[str, str] = {}
    if not doc:
        return helps
    lines = inspect.cleandoc(doc).splitlines()
    inside, current, indent = False, None, None
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Options:"):
            inside, indent = True, None
            continue
        if inside:
            if not stripped:
                continue
            lead = len(line) - len(line.lstrip())
            if indent is None:
                indent = lead
            if lead < indent or (stripped.endswith(":") and " " not in stripped):
                inside = stripped in ("Args:", "Arguments:", "Options:")
                continue
            if lead == indent and ":" in stripped:
                current, _, text = stripped.partition(":")
                current = current.split("(")[0].strip()
                helps[current] = text.strip()
            elif current:
                helps[current] += " " + stripped
    return helps


def declared_options(target: Any, skip: tuple[str, ...] = ()) -> dict[str, DeclaredOption]:
    """The options of a class (its ``__init__``) or factory function, in declaration order."""
    function = target.__init__ if isinstance(target, type) else target
    function = inspect.unwrap(function)
    signature = getattr(function, "__signature__", None) or inspect.signature(function)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to defaults' types
        hints = {}
    helps = _arg_help(function.__doc__)
    out: dict[str, DeclaredOption] = {}
    for name, param in signature.parameters.items():
        if name in ("self", *skip) or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in hints:
            alts = _alternatives(hints[name])
        elif param.default is not inspect.Parameter.empty:
            alts = _alternatives(type(param.default)) if param.default is not None else [Alternative(None)]
        else:
            alts = [Alternative(None)]
        out[name] = DeclaredOption(name, tuple(alts), param.default, helps.get(name, ""),
                               required=param.default is inspect.Parameter.empty)
    return out


def accepts_extra(target: Any) -> bool:
    function = target.__init__ if isinstance(target, type) else target
    signature = getattr(function, "__signature__", None) or inspect.signature(inspect.unwrap(function))
    return any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())


def validate_options(kind: str, item: str, specs: dict[str, DeclaredOption], values: dict[str, Any],
                     extra_ok: bool = False) -> None:
    """Raise :class:`OptionError` for the first unknown option or disallowed value."""
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None:
            if extra_ok:
                continue
            valid = ", ".join(specs) or "none"
            raise OptionError(f"{kind} {item!r} has no option {key!r}; its options are: {valid}")
        if not spec.accepts(value):
            raise OptionError(f"{kind} {item!r}: option {key}={value!r} is not allowed; "
                              f"{key} must be {spec.allowed}")
    missing = [name for name, spec in specs.items() if spec.required and name not in values]
    if missing:
        raise OptionError(f"{kind} {item!r} needs option(s) {missing}: write "
                          f"'{item}[{missing[0]}=...]'")
