"""The per-image record: one typed object, made in one place for every executor.

A :class:`Record` is what an executor yields for one sample and what the reducer writes as one
``samples.jsonl`` line (:meth:`Record.to_json`; the schema is ``harness.io.results``'s). The local
executor and the Ray executor both start from :func:`new_record` (identities and seeds) and end
with :meth:`Record.succeed` or :meth:`Record.fail`, so the two cannot drift apart.

``comparison`` is not part of the line: it carries the LQ | output | GT thumbnails of the few
images the run shows in MLflow from the executor to the reducer, in memory only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from harness.run.units import Unit

#: (LQ, output, GT or None) thumbnails of one image, for the MLflow comparison panels
Comparison = tuple[torch.Tensor | None, ...]

#: written even when None (a failed image has no latency); every other optional field is left
#: out of the line while it is None, as the records of schema 2 always did
_ALWAYS = ("sample_id", "restorer", "restorer_id", "task", "task_id", "device", "host", "seed",
           "degradation_seed", "metrics", "latency_ms", "peak_mem_mb", "status")


def restorer_seed(run_seed: int, task_id: str, sample_id: str) -> int:
    """Seed of a restorer's randomness on one image: a hash of the run seed, the task identity
    and the sample id (63 bits), the same on every machine and in every order."""
    digest = hashlib.sha256(f"restorer|{run_seed}|{task_id}|{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class Record:
    """One image of one unit: identities, seeds, status, metrics, timing (see the module doc)."""

    sample_id: str
    restorer: str
    restorer_id: str
    task: str
    task_id: str
    device: str
    host: str
    seed: int
    degradation_seed: int
    status: str = "failed"
    metrics: dict[str, float] = field(default_factory=dict)
    latency_ms: float | None = None
    #: how many back-to-back calls ``latency_ms`` is the median of (1; more for calls under
    #: ``harness.run.timing.SHORT_CALL_MS``)
    latency_calls: int | None = None
    peak_mem_mb: float | None = None
    peak_mem_kind: str | None = None
    #: torch's intra-op thread count and whether subnormals were flushed during ``restore``
    threads: int | None = None
    flush_denormal: bool | None = None
    height: int | None = None
    width: int | None = None
    degradation: Any = None
    input_conversion: Any = None
    metric_states: dict[str, Any] | None = None
    metric_errors: dict[str, str] | None = None
    restorer_record: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    comparison: Comparison | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        """The (restorer_id, task_id) pair the record belongs to."""
        return (self.restorer_id, self.task_id)

    def succeed(self, metrics: dict[str, float], latency_ms: float, peak_mem_mb: float | None,
                peak_mem_kind: str, height: int, width: int) -> None:
        self.status, self.metrics, self.latency_ms = "ok", metrics, latency_ms
        self.peak_mem_mb, self.peak_mem_kind, self.height, self.width = (
            peak_mem_mb, peak_mem_kind, height, width)

    def fail(self, error: str, traceback: str | None = None) -> None:
        self.status, self.error, self.traceback = "failed", error, traceback

    def to_json(self) -> dict[str, Any]:
        """The ``samples.jsonl`` line as a dict (no ``comparison``; unset optional fields left out)."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "comparison" or (value is None and item.name not in _ALWAYS):
                continue
            out[item.name] = value
        return out

    @classmethod
    def from_json(cls, line: dict[str, Any]) -> Record:
        """The record of a ``samples.jsonl`` line (schema 2)."""
        return cls(**line)


def new_record(unit: Unit, sample_id: str, *, run_seed: int, degradation_seed: int, device: str,
               host: str) -> Record:
    """A record of ``sample_id`` in ``unit`` with its identities and seeds, status ``failed``
    until the executor says otherwise."""
    return Record(sample_id=sample_id, restorer=unit.restorer.label, restorer_id=unit.restorer.id,
                  task=unit.task.label, task_id=unit.task.id, device=device, host=host,
                  seed=restorer_seed(run_seed, unit.task.id, sample_id),
                  degradation_seed=degradation_seed)
