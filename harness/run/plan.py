"""Plan: the list of units of a run, with everything checked before any model loads.

:func:`make_plan` turns the user's restorer and task items into :class:`~harness.run.units.Unit`
objects. On the way it validates, in this order and without loading a single weight: restorer
names (did-you-mean), restorer options (type, range, choices, from the constructor's signature),
task names and options, every task's data (a missing dataset says where to get it), metric
names, each restorer's assets (``check_assets``: weights present and verified) and the device
(:func:`resolve_device`). A run that would fail for any of these reasons fails here, in seconds.
The restorers built for the asset check are kept (:meth:`Plan.take_restorer`), so that the local
executor loads those very objects instead of building each one a second time.

Options per task: a restorer may choose some options by the task (``Restorer.options_for_task``,
e.g. UnfoldLDM's ``checkpoint=auto`` picks a checkpoint by the task's declared degradation); each
(restorer item, task) pair then runs under the spec of the options chosen for it
(:func:`pair_specs`), so that everything downstream (records, results, MLflow, resume, reports,
other executors) sees ordinary specs whose labels and configs say what ran.

Sharding: ``shard_size`` splits each (restorer, task) pair's sample ids into consecutive shards;
shards are independent units (any order, any executor) whose records reduce to the same results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from harness.api.checkpoints import checkpoint_options
from harness.api.items import check_device_syntax
from harness.api.metric import MetricSpec
from harness.api.options import accepts_extra, declared_options, validate_options
from harness.api.registries import RESTORERS
from harness.api.restorer import Restorer, build_restorer
from harness.api.task import Task, build_task
from harness.io.names import check_labels
from harness.run.units import RestorerSpec, TaskSpec, Unit


@dataclass
class RestorerItem:
    """What the user asked for: ``name``, ``options`` and an optional label or training tag."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    train_tag: str | None = None


@dataclass
class Plan:
    restorers: list[RestorerSpec]
    tasks: list[TaskSpec]
    task_objects: dict[str, Task]  # task id → built task (data checked)
    units: list[Unit]
    seed: int
    metrics: list[str] | None
    metric_specs: list[MetricSpec] = field(default_factory=list)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: restorer id → the restorer built (not loaded) by the asset check; taken once
    built: dict[str, Restorer] = field(default_factory=dict, repr=False)

    def take_restorer(self, spec: RestorerSpec) -> Restorer:
        """The restorer of ``spec``, unloaded: the plan's own (once), else a new one."""
        return self.built.pop(spec.id, None) or build_restorer(spec.name, **spec.options)

    def pair_ids(self) -> dict[tuple[str, str], list[str]]:
        """(restorer id, task id) → every sample id of the pair, in task order."""
        out: dict[tuple[str, str], list[str]] = {}
        for unit in self.units:
            out.setdefault(unit.key, []).extend(unit.sample_ids)
        return out

    def restorer(self, restorer_id: str) -> RestorerSpec:
        return next(r for r in self.restorers if r.id == restorer_id)

    def task(self, task_id: str) -> TaskSpec:
        return next(t for t in self.tasks if t.id == task_id)


def resolve_device(spec: str) -> torch.device:
    """``auto`` → CUDA when available; ``cuda[:N]`` fails clearly when it is not."""
    check_device_syntax(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available on this machine; use "
                         "--device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device


def restorer_spec(item: RestorerItem) -> RestorerSpec:
    """Resolve and validate one restorer item (imports its class, builds nothing)."""
    name = RESTORERS.canonical(item.name)
    cls = RESTORERS.get(name)
    declared = declared_options(cls)
    validate_options("restorer", name, declared, item.options, extra_ok=accepts_extra(cls))
    defaults = {k: s.default for k, s in declared.items() if not s.required}
    options = dict(item.options)
    path = cls.resolve_checkpoint(str(options["checkpoint"])) if options.get("checkpoint") else None
    if cls.checkpoint_options and path is not None:  # the file says how it was built
        options = {**checkpoint_options(path, name, cls.checkpoint_options, options), **options}
    config = {**defaults, **options}
    if item.label:
        label = item.label
    elif item.train_tag:
        label = f"{RestorerSpec.display(name, item.options, defaults)} (trained on {item.train_tag})"
    else:
        label = RestorerSpec.display(name, item.options, defaults)
    return RestorerSpec(name, options, config, label, item.train_tag)


def pair_specs(items: list[RestorerItem], specs: list[RestorerSpec], task_specs: list[TaskSpec],
               task_objects: dict[str, Task]) -> list[tuple[RestorerSpec, list[TaskSpec]]]:
    """Each item's spec per task (:meth:`Restorer.options_for_task`), with the tasks it runs.

    A pair whose options the restorer resolves to something else (``checkpoint=auto`` →
    ``auto:lowlight``) gets the spec of the resolved options: its own id, and its label names the
    choice (a user label gets it as a suffix, ``LABEL[checkpoint=auto:lowlight]``, so that it stays
    unique per spec). Pairs of one item that resolve alike share one spec. Order: items as given,
    then each item's specs in the order their first task comes, then tasks in task order, so
    that one spec's units are contiguous (the executor loads it once)."""
    groups: list[tuple[RestorerSpec, list[TaskSpec]]] = []
    for item, spec in zip(items, specs, strict=True):
        cls = RESTORERS.get(spec.name)
        resolved: dict[str, RestorerSpec] = {}  # options (as JSON) → spec
        mine: dict[str, tuple[RestorerSpec, list[TaskSpec]]] = {}
        for tspec in task_specs:
            options = cls.options_for_task(dict(item.options), task_objects[tspec.id])
            key = json.dumps(options, sort_keys=True, default=str)
            if key not in resolved:
                resolved[key] = spec if options == item.options else _chosen(item, options)
            mine.setdefault(resolved[key].id, (resolved[key], []))[1].append(tspec)
        groups += list(mine.values()) or [(spec, [])]
    return _merged(groups, task_specs)


def _merged(groups: list[tuple[RestorerSpec, list[TaskSpec]]],
            task_specs: list[TaskSpec]) -> list[tuple[RestorerSpec, list[TaskSpec]]]:
    """One group per spec: a pair two items resolve to alike (``-r 'unfoldldm[checkpoint=auto]'
    -r 'unfoldldm[checkpoint=auto:mixed]'`` on a task without a specialist) is one row and runs
    once. One configuration under two labels (``-r identity -r x=identity``) is refused: its
    records would count twice in one row."""
    merged: dict[str, tuple[RestorerSpec, list[TaskSpec]]] = {}
    for spec, tasks in groups:
        if spec.id not in merged:
            merged[spec.id] = (spec, list(tasks))
            continue
        first, planned = merged[spec.id]
        if first.label != spec.label:
            raise ValueError(f"restorer {spec.label!r} is {first.label!r} again (the same "
                             f"configuration); one configuration is one row: drop one of them")
        planned += [t for t in tasks if t not in planned]
    order = {t.id: i for i, t in enumerate(task_specs)}
    return [(spec, sorted(tasks, key=lambda t: order[t.id])) for spec, tasks in merged.values()]


def _chosen(item: RestorerItem, options: dict[str, Any]) -> RestorerSpec:
    """The spec of ``item`` under the options its restorer chose for a task."""
    spec = restorer_spec(RestorerItem(item.name, options, train_tag=item.train_tag))
    if not item.label:
        return spec
    chosen = {k: v for k, v in options.items() if k not in item.options or item.options[k] != v}
    return replace(spec, label=f"{item.label}[{_fmt(chosen)}]" if chosen else item.label)


def task_spec(name: str, options: dict[str, Any], seed: int | None,
              label: str | None = None) -> tuple[TaskSpec, Task]:
    task = build_task(name, **dict(options))
    if seed is not None:
        task.seed = seed
    return TaskSpec(task.name, dict(options), task.seed, label or task.name), task


def task_labels(tasks: list[tuple[str, dict[str, Any]]]) -> list[str | None]:
    """A task's label is its name, unless the run holds that name twice with different
    options: then ``name[key=value,...]`` (options that differ between them only)."""
    names = [name for name, _ in tasks]
    labels: list[str | None] = []
    for name, options in tasks:
        if names.count(name) == 1:
            labels.append(None)
            continue
        others = [o for n, o in tasks if n == name]
        differing = {k: v for k, v in options.items() if any(o.get(k) != v for o in others)}
        labels.append(f"{name}[{_fmt(differing or options)}]" if (differing or options) else None)
    return labels


def _fmt(options: dict[str, Any]) -> str:
    from harness.run.units import format_options

    return format_options(options)


def check_shard_size(shard_size: int | None) -> None:
    """``--shard-size N`` counts samples per unit, so N >= 1 (a negative one used to select
    nothing and exit 0)."""
    if shard_size is not None and (isinstance(shard_size, bool) or shard_size < 1):
        raise ValueError(f"--shard-size {shard_size}: give a number of samples per unit >= 1, or "
                         "leave --shard-size out (one unit per restorer and task)")


def shard(ids: list[str], shard_size: int | None) -> list[tuple[str, ...]]:
    if not shard_size or shard_size >= len(ids):
        return [tuple(ids)]
    return [tuple(ids[i:i + shard_size]) for i in range(0, len(ids), shard_size)]


def make_plan(restorers: list[RestorerItem], tasks: list[tuple[str, dict[str, Any]]], *,
              seed: int | None = None, limit: int | None = None, metrics: list[str] | None = None,
              metric_specs: list[MetricSpec] | None = None, shard_size: int | None = None,
              check_assets: bool = True, device: str = "cpu") -> Plan:
    """Validate everything and list the units (restorer-major order, as they will run)."""
    from harness.metrics.suite import get_metric

    resolved = resolve_device(device)
    if limit is not None and limit < 0:
        raise ValueError(f"--limit {limit}: give a positive number of samples (or leave it out)")
    if limit == 0:
        raise ValueError("--limit 0: nothing to do (no sample selected); leave --limit out to "
                         "evaluate every sample")
    check_shard_size(shard_size)
    given = [restorer_spec(item) for item in restorers]
    _unique("restorer", [s.label for s in given], [s.id for s in given])
    task_specs: list[TaskSpec] = []
    task_objects: dict[str, Task] = {}
    for (name, options), label in zip(tasks, task_labels(tasks), strict=True):
        spec, task = task_spec(name, options, seed, label)
        task.check_available()
        task_specs.append(spec)
        task_objects[spec.id] = task
    _unique("task", [t.label for t in task_specs], [t.id for t in task_specs])
    check_labels("task", [t.label for t in task_specs])
    groups = pair_specs(restorers, given, task_specs, task_objects)
    specs = [spec for spec, _ in groups]
    _unique("restorer", [s.label for s in specs], [s.id for s in specs])
    check_labels("restorer", [s.label for s in specs])
    for metric in metrics or []:
        get_metric(metric)  # unknown names fail now
    built: dict[str, Restorer] = {}
    if check_assets:
        for spec in specs:  # bad weights fail before the first model loads
            built[spec.id] = build_restorer(spec.name, **spec.options)
            built[spec.id].check_assets()
    units: list[Unit] = []
    for spec, spec_tasks in groups:
        for tspec in spec_tasks:
            ids = task_objects[tspec.id].sample_ids()[:limit]
            shards = shard(list(ids), shard_size)
            units += [Unit(spec, tspec, s, i, len(shards)) for i, s in enumerate(shards)]
    return Plan(specs, task_specs, task_objects, units, seed if seed is not None else 0, metrics,
                list(metric_specs or []), resolved, built)


def _unique(kind: str, labels: list[str], ids: list[str]) -> None:
    seen: dict[str, str] = {}
    for label, ident in zip(labels, ids, strict=True):
        if label in seen:
            same = seen[label] == ident
            raise ValueError(f"{kind} {label!r} is given twice" + (
                " with the same options" if same else
                " with different options under one label; give each its own label") + ".")
        seen[label] = ident
