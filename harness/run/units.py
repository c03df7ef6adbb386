"""Run units: what one piece of work is, and the identities every record carries.

A **unit** is (restorer config, task config) × a shard of sample ids. Its two identities are

* ``restorer_id`` = ``name#hash`` of the registered name and the *full* option set (declared
  defaults merged with what the user gave), so ``nlm`` and ``nlm[sigma=task]`` (the default) are
  one restorer while ``nlm[sigma=estimate]`` is another;
* ``task_id`` = ``name#hash`` of the task name, its options and its seed.

Records, resume, aggregation, MLflow child runs and ``results.json`` key on these ids. People
read **display names**: the registered name for the default config, ``name[key=value,...]`` (only
the options that differ from the defaults) otherwise, or a user label (``NAME@TAG``: "NAME (trained
on TAG)", or ``label=`` in code). Display names must be unique within a run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


def _digest(payload: Any, n: int = 10) -> str:
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def format_options(options: dict[str, Any]) -> str:
    """``{'sigma': 'estimate', 'k': 3}`` → ``sigma=estimate,k=3`` (the bracket syntax)."""
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "null"
        if isinstance(value, (list, dict)):
            return json.dumps(value)
        return str(value)

    return ",".join(f"{k}={text(v)}" for k, v in options.items())


@dataclass(frozen=True)
class RestorerSpec:
    """One restorer configuration of a run."""

    name: str  # canonical registered name
    options: dict[str, Any]  # as given by the user (what it is built with)
    config: dict[str, Any]  # declared defaults merged with ``options`` (what it is)
    label: str  # display name
    train_tag: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}#{_digest({'name': self.name, 'config': self.config})}"

    @staticmethod
    def display(name: str, options: dict[str, Any], defaults: dict[str, Any]) -> str:
        changed = {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}
        return f"{name}[{format_options(changed)}]" if changed else name


@dataclass(frozen=True)
class TaskSpec:
    """One task configuration of a run (``options`` include metric conventions)."""

    name: str
    options: dict[str, Any]
    seed: int
    label: str

    @property
    def id(self) -> str:
        return f"{self.name}#{_digest({'name': self.name, 'options': self.options, 'seed': self.seed})}"


@dataclass(frozen=True)
class Unit:
    """One piece of work: a restorer config on a shard of one task's sample ids."""

    restorer: RestorerSpec
    task: TaskSpec
    sample_ids: tuple[str, ...]
    shard: int = 0
    n_shards: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return (self.restorer.id, self.task.id)

    @property
    def id(self) -> str:
        return f"{self.restorer.id}|{self.task.id}|{self.shard}/{self.n_shards}"


@dataclass
class PairState:
    """What the reducer knows about one (restorer, task) pair while the run goes on."""

    restorer: RestorerSpec
    task: TaskSpec
    sample_ids: list[str]
    done: set[str] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return self.done.issuperset(self.sample_ids)


def record_key(record: dict[str, Any]) -> tuple[str, str, str]:
    """The identity of a record: (restorer_id, task_id, sample_id). Records of schema 1 carry
    no ids; their display names stand in (they were unique per name then)."""
    return (record.get("restorer_id") or record["restorer"], record.get("task_id") or record["task"],
            record["sample_id"])
