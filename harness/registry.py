"""Name → object registries for restorers, tasks and metrics.

One generic :class:`Registry` (after lm-eval's ``api/registry.py``): a decorator that registers a
class or factory under a canonical name plus aliases, lazy ``"module:attr"`` placeholders so that
listing names never imports heavy optional dependencies, plugin discovery through Python entry
points, and a ``KeyError`` that answers "did you mean ...?" for a mistyped name.

Spec-string tasks (``synth:kodak24:noise@3``) are served by *resolvers*: a prefix handler that
builds the object from the rest of the string.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is in no registry; its message carries the suggestions."""

    def __init__(self, kind: str, name: str, suggestions: list[str], available: list[str]):
        self.kind, self.name, self.suggestions, self.available = kind, name, suggestions, available
        hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        listing = ", ".join(available[:40]) + (" ..." if len(available) > 40 else "")
        super().__init__(f"Unknown {kind} {name!r}.{hint} Available: {listing}. "
                         f"See `bench list {kind}s`.")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def _import_target(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


class Registry(Generic[T]):
    """A thread-safe name → object mapping with aliases, placeholders and entry points.

    Args:
        kind: what is registered ("restorer", "task", "metric"); used in messages.
        base_cls: if given, registered classes must subclass it (checked at registration and
            again when a placeholder is imported).
        entry_point_group: Python entry-point group scanned once for external plugins; each
            entry point's value is a ``"module:attr"`` placeholder under the entry point's name.
        modules: modules imported on first use so that their decorators run (the explicit list
            of built-ins; no folder scanning).
    """

    def __init__(self, kind: str, base_cls: type | None = None,
                 entry_point_group: str | None = None, modules: Iterable[str] = ()):
        self.kind = kind
        self.base_cls = base_cls
        self.entry_point_group = entry_point_group
        self._modules = list(modules)
        self._objects: dict[str, Any] = {}
        self._placeholders: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._resolvers: dict[str, Callable[[str], T]] = {}
        self._import_errors: dict[str, str] = {}
        self._loaded = False
        self._lock = threading.RLock()

    # Registration (decorator, direct call, placeholder) ---------------------------------------
    def register(self, name: str, *aliases: str, target: Any = None) -> Any:
        """Register ``target`` under ``name`` and ``aliases``; used bare as a decorator."""

        def add(obj: Any) -> Any:
            with self._lock:
                self._check_type(name, obj)
                current = self._objects.get(name)
                if current is not None and current is not obj:
                    raise ValueError(f"{self.kind} name {name!r} is already taken by {current!r}")
                self._objects[name] = obj
                self._placeholders.pop(name, None)
                for alias in aliases:
                    owner = self._aliases.get(alias)
                    if owner is not None and owner != name:
                        raise ValueError(f"{self.kind} alias {alias!r} already points to {owner!r}")
                    self._aliases[alias] = name
            return obj

        return add(target) if target is not None else add

    def register_lazy(self, name: str, spec: str, *aliases: str) -> None:
        """Register a ``"module:attr"`` placeholder imported on first :meth:`get`."""
        with self._lock:
            if name not in self._objects:
                self._placeholders[name] = spec
            for alias in aliases:
                self._aliases[alias] = name

    def add_resolver(self, prefix: str, resolver: Callable[[str], T]) -> None:
        """Serve every name that starts with ``prefix`` (e.g. ``"synth:"``) by ``resolver``."""
        self._resolvers[prefix] = resolver

    # Lookup -------------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        self._ensure_loaded()
        for prefix, resolver in self._resolvers.items():
            if name.startswith(prefix):
                return resolver(name)
        canonical = self.canonical(name)
        with self._lock:
            if canonical in self._placeholders:
                spec = self._placeholders[canonical]
                try:
                    obj = _import_target(spec)
                except ImportError as exc:
                    raise ImportError(f"{self.kind} {canonical!r} needs a package that is not "
                                      f"installed: {exc}. Install the matching extra, "
                                      f"e.g. `pip install -e .[cuda]`.") from exc
                self._check_type(canonical, obj)
                self._objects[canonical] = obj
                self._placeholders.pop(canonical, None)
            return self._objects[canonical]

    def canonical(self, name: str) -> str:
        """Map an alias to its canonical name, or raise :class:`UnknownNameError`."""
        self._ensure_loaded()
        if name in self._objects or name in self._placeholders:
            return name
        if name in self._aliases:
            return self._aliases[name]
        if self._placeholders and name not in self._aliases:
            self._import_placeholders()  # aliases are declared by decorators on import
            if name in self._aliases:
                return self._aliases[name]
        lowered = name.lower()
        for candidate in [*self._objects, *self._placeholders, *self._aliases]:
            if candidate.lower() == lowered:
                return self._aliases.get(candidate, candidate)
        known = sorted({*self._objects, *self._placeholders, *self._aliases})
        suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        raise UnknownNameError(self.kind, name, suggestions, self.names())

    def __contains__(self, name: str) -> bool:
        try:
            self.canonical(name)
        except UnknownNameError:
            return any(name.startswith(p) for p in self._resolvers)
        return True

    def set_defaults(self, *names: str) -> None:
        """What a command uses when the user names nothing (declared by the plugin packages,
        so the harness never names a concrete restorer or task)."""
        self._defaults = list(names)

    def defaults(self) -> list[str]:
        self._ensure_loaded()
        return list(getattr(self, "_defaults", []))

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted({*self._objects, *self._placeholders})

    def aliases_of(self, name: str) -> list[str]:
        return sorted(a for a, n in self._aliases.items() if n == name)

    @property
    def import_errors(self) -> dict[str, str]:
        """Built-in or plugin modules that failed to import, with the reason (shown by list)."""
        self._ensure_loaded()
        return dict(self._import_errors)

    def _import_placeholders(self) -> None:
        for placeholder in list(self._placeholders):
            try:
                self.get(placeholder)
            except Exception as exc:  # reported by `bench list`, never fatal for a lookup
                self._import_errors[self._placeholders.get(placeholder, placeholder)] = (
                    f"{type(exc).__name__}: {exc}")

    # Internals ----------------------------------------------------------------------------------
    def _check_type(self, name: str, obj: Any) -> None:
        if self.base_cls is not None and isinstance(obj, type) and not issubclass(obj, self.base_cls):
            raise TypeError(f"{self.kind} {name!r}: {obj!r} is not a subclass of "
                            f"{self.base_cls.__name__}")

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for module in self._modules:
                try:
                    importlib.import_module(module)
                except Exception as exc:  # one broken module must not hide the others
                    self._import_errors[module] = f"{type(exc).__name__}: {exc}"
            if self.entry_point_group:
                for ep in entry_points(group=self.entry_point_group):
                    if ep.name not in self._objects:
                        self._placeholders.setdefault(ep.name, ep.value)
