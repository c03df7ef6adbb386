"""``bench data validate``: presence, pairing, counts and sizes of a task's data on disk.

A partial set (fewer samples than ``expected_count``, or LQ images whose GT folder is absent) is
reported as ``partial (n of N)``, never as ``ok``; a broken one (unreadable files, LQ/GT size
mismatch, LQ without its GT partner while the GT folder exists, wrong image size) is ``invalid``.
A task that wants richer validation implements :class:`ValidatableTask`; any other task is
validated by loading its samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from harness.api.task import DataMissingError, Task


@runtime_checkable
class ValidatableTask(Protocol):
    """Optional task hooks that make validation cheap and precise."""

    def data_location(self) -> dict[str, Any]:
        """Which layout was found and where its parts are (raises DataMissingError)."""

    def probe(self, sample_id: str) -> dict[str, Any]:
        """Check one sample without decoding pixels if possible.

        Returns ``{"lq_size": (H, W), "gt_size": (H, W) | None}``; raises for an unreadable or
        unpaired file. A missing GT whose whole GT part is absent returns ``gt_size`` None.
        """


@dataclass
class ValidationReport:
    task: str
    status: str  # ok | partial | invalid | missing
    found: int = 0
    expected: int | None = None
    paired: int | None = None
    location: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    message: str = ""

    def summary(self) -> str:
        if self.status == "missing":
            return "missing"
        count = f"{self.found} of {self.expected}" if self.expected else f"{self.found}"
        text = f"{self.status} ({count} samples"
        if self.paired is not None:
            text += f", {self.paired} with GT"
        return text + ")"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "status": self.status, "found": self.found,
                "expected": self.expected, "paired": self.paired, "location": self.location,
                "problems": self.problems, "notes": self.notes, "message": self.message}


def validate_task(task: Task, *, max_problems: int = 20,
                  progress: Callable[[int, int], None] | None = None) -> ValidationReport:
    """Check presence, pairing, counts and image sizes of a task's data.

    Sizes are checked against ``task.expected_sizes`` (a set of ``(H, W)``) when the task declares
    it, and LQ against GT always.
    """
    report = ValidationReport(task.name, "missing", expected=task.expected_count)
    try:
        if isinstance(task, ValidatableTask):
            report.location = task.data_location()
        ids = task.sample_ids()
    except DataMissingError as exc:
        report.message = str(exc)
        return report
    except ValueError as exc:  # the data is there but cannot be indexed (ambiguous pairing)
        report.status, report.message = "invalid", str(exc)
        report.problems.append(str(exc))
        return report
    report.found = len(ids)
    allowed: set[tuple[int, int]] | None = getattr(task, "expected_sizes", None)
    paired = 0
    for index, sample_id in enumerate(ids):
        try:
            sizes = _probe(task, sample_id)
        except Exception as exc:
            _add(report.problems, f"{sample_id}: {type(exc).__name__}: {exc}", max_problems)
            continue
        lq_size, gt_size = sizes["lq_size"], sizes.get("gt_size")
        if gt_size is not None:
            paired += 1
            if tuple(gt_size) != tuple(lq_size):
                _add(report.problems, f"{sample_id}: LQ {tuple(lq_size)} and GT {tuple(gt_size)} "
                                      f"differ in size", max_problems)
        if allowed and tuple(lq_size) not in allowed:
            _add(report.problems, f"{sample_id}: size {tuple(lq_size)} is not one of the "
                                  f"benchmark's {sorted(allowed)}", max_problems)
        if progress is not None:
            progress(index + 1, len(ids))
    if task.has_gt:
        report.paired = paired
        if paired < report.found and not report.problems:
            report.notes.append(f"GT absent for {report.found - paired} of {report.found} samples "
                                f"(GT folder missing from this copy): full-reference metrics "
                                f"cannot run")
    partial = bool(report.expected and report.found < report.expected)
    if task.has_gt and report.paired is not None and report.paired < report.found:
        partial = True
    if partial and report.expected and report.found < report.expected:
        report.notes.append(f"only {report.found} of the benchmark's {report.expected} samples "
                            f"are present: numbers are not comparable with published tables")
    if report.problems:
        report.status = "invalid"
    elif report.found == 0:
        report.status = "missing"
    else:
        report.status = "partial" if partial else "ok"
    return report


def _probe(task: Task, sample_id: str) -> dict[str, Any]:
    if isinstance(task, ValidatableTask):
        return task.probe(sample_id)
    sample = task.load(sample_id)
    gt = None if sample.gt is None else tuple(sample.gt.shape[-2:])
    return {"lq_size": tuple(sample.lq.shape[-2:]), "gt_size": gt}


def _add(problems: list[str], problem: str, limit: int) -> None:
    if len(problems) < limit:
        problems.append(problem)
    elif len(problems) == limit:
        problems.append("... (further problems not listed)")


