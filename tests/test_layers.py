"""The harness is layered: each sub-package imports only from its own layer or below.

An AST walk over every module of ``harness/`` (imports inside functions included, since a lazy
import is still a dependency) checks three rules:

1. nothing imports upward (a module of layer k imports only modules of layers ≤ k, and within
   one rank only its own package: ``metrics`` and ``tracking`` share rank 3 but not each other);
2. the module graph has no cycle;
3. ``harness`` imports none of ``restorers``, ``tasks``, ``downstream`` (they plug in through
   registries and entry points).

A fourth test keeps every function of ``harness/`` at most 60 lines long.

The order is documented in ``docs/architecture.md``; change both together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "harness"

#: package → rank; modules directly in ``harness/`` are the package and its compatibility shims
LAYERS = {"io": 0, "api": 1, "assets": 2, "metrics": 3, "tracking": 3, "run": 4, "train": 5,
          "study": 5, "report": 5, "reference": 5, "cli": 6}
SHIMS = {"restorer", "task", "options", "registries", "metric_api"}
FORBIDDEN = ("restorers", "tasks", "downstream")


def _module_name(path: Path) -> str:
    parts = path.relative_to(HARNESS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names), at any depth of the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            # ``from harness.x import y`` may import the sub-module harness.x.y
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in HARNESS.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # a module's own ancestor packages are loaded before it anyway: not an edge
        ancestors = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
        graph[name] = {m for m in _imports(path) if m in modules and m != name and m not in ancestors}
        graph[name] |= {m for m in _imports(path) if m.split(".")[0] in FORBIDDEN}
    return graph


def _layer(module: str) -> tuple[str, int] | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in SHIMS or module == "harness":
        return None  # the package itself and its shims sit above every layer
    return parts[1], LAYERS[parts[1]]


def test_every_sub_package_has_a_layer():
    packages = {p.name for p in HARNESS.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS), "add the new package to LAYERS and docs/architecture.md"
    loose = {p.stem for p in HARNESS.glob("*.py")} - {"__init__"}
    assert loose == SHIMS, f"modules directly in harness/ must be compatibility shims: {loose - SHIMS}"


def test_no_upward_or_sideways_import():
    problems = []
    for module, deps in _graph().items():
        here = _layer(module)
        if here is None:
            continue
        for dep in deps:
            there = _layer(dep) if dep.startswith("harness") else None
            if there is None:
                continue
            if there[1] > here[1] or (there[1] == here[1] and there[0] != here[0]):
                problems.append(f"{module} (layer {here[0]}:{here[1]}) imports {dep} "
                                f"(layer {there[0]}:{there[1]})")
    assert not problems, "\n".join(sorted(problems))


def test_harness_names_no_concrete_restorer_task_or_downstream_package():
    problems = [f"{module} imports {dep}" for module, deps in _graph().items() for dep in deps
                if dep.split(".")[0] in FORBIDDEN]
    assert not problems, "\n".join(sorted(problems))


def test_no_import_cycle():
    graph = {m: {d for d in deps if d.startswith("harness")} for m, deps in _graph().items()}
    # a package's __init__ is imported by its sub-modules implicitly; edges into it count too
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("old, new", [("restorer", "Restorer"), ("task", "Task"),
                                      ("options", "OptionError"), ("registries", "RESTORERS"),
                                      ("metric_api", "MetricSpec")])
def test_old_plugin_import_paths_work_and_warn(old, new):
    import importlib
    import subprocess
    import sys

    code = (f"import warnings; warnings.simplefilter('error', FutureWarning)\n"
            f"try:\n    from harness.{old} import {new}\nexcept FutureWarning as w:\n"
            f"    print('warned:', w)\n"
            f"import warnings; warnings.simplefilter('ignore')\n"
            f"from harness.{old} import {new} as old\nimport harness.api as api\n"
            f"print(old is getattr(api, '{new}'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=HARNESS.parent).stdout
    assert "warned: harness." in out and "harness.api" in out
    assert out.strip().endswith("True")
    assert importlib.import_module("harness.api") is not None


#: the longest a function of ``harness/`` may be, in lines from ``def`` to its last line
MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_sixty_lines():
    """Small functions with one job: a longer one is split where its parts have names."""
    offenders = []
    for path in sorted(HARNESS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    offenders.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno} "
                                     f"{node.name} ({length} lines)")
    assert not offenders, (f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders))
