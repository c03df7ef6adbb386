"""What the reference covers: offline restorers × benchmark presets present on this machine.

The choices that name methods or presets are data, in ``results/reference/scope.json`` (the
harness names no concrete restorer or task): restorers excluded with their reason (a restorer
that needs a model no offline machine has, or ships no weights), tasks that are not benchmarks
(the demo, the user's own folder), the task families the leaderboards are grouped by, and the
drift subset.

A task is *present* when its data are found and every sample can be scored as the benchmark
scores it: :func:`harness.assets.data_validation.validate_task` for tasks that describe their
data (real datasets: presence, pairing, counts, sizes), and the clean set's sample list for
synthetic presets (their inputs are made from the clean images at run time; loading every one
here would degrade them all, ~0.4 s each). A partial set (``rain100l``: 10 of 100) is present and
its rows say ``partial``; a set whose ground truth is absent while the task has ground truth
(a low-only LOL copy) is not: its full-reference metrics cannot run, and ``bench run`` refuses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

SCOPE_FILE = "scope.json"


@dataclass(frozen=True)
class Family:
    """A leaderboard group: tasks matched by name pattern or by their ``degradation``."""

    slug: str
    title: str
    tasks: tuple[str, ...] = ()
    degradations: tuple[str, ...] = ()

    def matches(self, task: str, degradation: str) -> bool:
        return any(fnmatch(task, p) for p in self.tasks) or degradation in self.degradations


OTHER = Family("other", "Other tasks")


@dataclass
class Scope:
    excluded_restorers: dict[str, str]
    non_benchmark_tasks: dict[str, str]
    families: list[Family]
    readme_families: list[str]
    drift: dict[str, Any] = field(default_factory=dict)
    #: the packages whose restorers and tasks are "built-in" (plugins and test registrations are
    #: not part of the reference); empty: every registered name
    builtin_packages: tuple[str, ...] = ()

    def builtin(self, origin: str | None) -> bool:
        """Whether a registration from module ``origin`` belongs to the reference."""
        if not self.builtin_packages:
            return True
        return origin is not None and origin.split(".", 1)[0] in self.builtin_packages

    def family_of(self, task: str, degradation: str) -> Family:
        """The first family that matches (``scope.json`` order), else "other"."""
        return next((f for f in self.families if f.matches(task, degradation)), OTHER)

    def family(self, slug: str) -> Family:
        return next((f for f in [*self.families, OTHER] if f.slug == slug), OTHER)


def read_scope(folder: Path) -> Scope:
    """``scope.json`` of a reference folder; a missing or malformed file is a one-line error."""
    path = Path(folder) / SCOPE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        families = [Family(f["slug"], f["title"], tuple(f.get("tasks", ())),
                           tuple(f.get("degradations", ()))) for f in data.get("families", [])]
        return Scope(dict(data["excluded_restorers"]), dict(data["non_benchmark_tasks"]), families,
                     list(data.get("readme_families", [])), dict(data.get("drift", {})),
                     tuple(data.get("builtin_packages", ())))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: the reference folder needs its scope file "
                                "(see results/README.md)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a valid scope file ({type(exc).__name__}: {exc})") from None


def offline_restorers(scope: Scope) -> list[str]:
    """Every built-in restorer (``scope.builtin_packages``) but the reasoned exclusions, sorted."""
    from harness.api.registries import RESTORERS

    return sorted(name for name in RESTORERS.names()
                  if name not in scope.excluded_restorers and scope.builtin(RESTORERS.origin(name)))


@dataclass(frozen=True)
class Presence:
    """A task's data on this machine: ``ok``, ``partial``, ``no-gt``, ``missing`` or ``invalid``."""

    task: str
    status: str
    found: int = 0
    expected: int | None = None
    degradation: str = ""
    note: str = ""

    @property
    def runnable(self) -> bool:
        return self.status in ("ok", "partial")

    def describe(self) -> str:
        count = f"{self.found} of {self.expected}" if self.expected else str(self.found)
        return f"{self.status} ({count})"


def task_presence(name: str) -> Presence:
    """Whether ``name``'s data are here (module docstring: how each kind of task is checked)."""
    from harness.api.task import DataMissingError, build_task
    from harness.assets.data_validation import ValidatableTask, validate_task

    try:
        task = build_task(name)
    except Exception as exc:  # a preset that cannot be built is not runnable: say why
        return Presence(name, "invalid", note=f"{type(exc).__name__}: {exc}")
    degradation = str(getattr(task, "degradation", ""))
    if isinstance(task, ValidatableTask) or getattr(task, "data_spec", None) is not None:
        report = validate_task(task)
        status = report.status
        if status in ("ok", "partial") and task.has_gt and (report.paired or 0) < report.found:
            status = "no-gt"
        return Presence(name, status, report.found, report.expected, degradation,
                        "; ".join(report.notes + report.problems) or report.message)
    try:
        found = len(task.sample_ids())
    except DataMissingError as exc:
        return Presence(name, "missing", 0, task.expected_count, degradation, str(exc))
    expected = task.expected_count
    status = "missing" if not found else "partial" if expected and found < expected else "ok"
    return Presence(name, status, found, expected, degradation)


def benchmark_tasks(scope: Scope) -> list[str]:
    """Every built-in task preset (``scope.builtin_packages``) but the non-benchmarks, sorted."""
    from harness.api.task import TASKS

    return sorted(name for name in TASKS.names()
                  if name not in scope.non_benchmark_tasks and scope.builtin(TASKS.origin(name)))


def present_tasks(scope: Scope) -> dict[str, Presence]:
    """Every benchmark task with its presence (runnable or not), by name."""
    return {name: task_presence(name) for name in benchmark_tasks(scope)}
