"""``bench reproduce --all``: measure every missing cell, cheapest first, and merge.

Resumable at two grains: a cell whose file exists with the same settings is skipped, and a cell
killed mid-way resumes image by image from its scratch run (:mod:`harness.reference.cells`).
Two processes can share the folder: each cell's scratch run is locked (the second process skips
that cell and moves on), cell files are written atomically, and the merged ``reference.jsonl``
is rebuilt from the cell files under a lock, in sorted order.

**Cheap first.** A cell's cost is estimated as images × pixels of the task's first image × the
restorer's time per pixel, learnt from its cells already measured (the median over them;
restorers not measured yet get the median of all known rates, so each one's first cell is on a
small task). The order is recomputed after every cell, so the estimates sharpen as the run goes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.reference.cells import CellSettings, discard_scratch, run_cell
from harness.reference.scope import Presence, Scope
from harness.reference.store import WORK, all_cells, merge, read_cell, write_cell


@dataclass
class Outcome:
    done: list[CellSettings] = field(default_factory=list)
    skipped: list[CellSettings] = field(default_factory=list)
    busy: list[CellSettings] = field(default_factory=list)
    failed: list[tuple[CellSettings, str]] = field(default_factory=list)


def task_pixels(name: str) -> int:
    """Pixels of the task's first image (a cheap probe for datasets, one load for synthetic)."""
    from harness.api.task import build_task
    from harness.assets.data_validation import ValidatableTask

    task = build_task(name)
    first = task.sample_ids()[0]
    if isinstance(task, ValidatableTask):
        height, width = task.probe(first)["lq_size"]
    else:
        height, width = task.load(first).lq.shape[-2:]
    return int(height) * int(width)


def _rates(folder: Path, pixels: dict[str, int]) -> dict[str, float]:
    """Milliseconds per pixel of each restorer, from its measured cells."""
    per: dict[str, list[float]] = {}
    for cell in all_cells(folder):
        latency = cell.get("timing", {}).get("latency_ms", {}).get("mean")
        if isinstance(latency, (int, float)) and pixels.get(cell["task"]):
            per.setdefault(cell["restorer"], []).append(latency / pixels[cell["task"]])
    return {name: statistics.median(values) for name, values in per.items()}


def order_cheap_first(cells: list[CellSettings], counts: dict[str, int], pixels: dict[str, int],
                      rates: dict[str, float]) -> list[CellSettings]:
    """Cells sorted by estimated cost (module docstring), ties by name."""
    default = statistics.median(rates.values()) if rates else 1.0

    def cost(cell: CellSettings) -> tuple[float, str, str]:
        volume = counts.get(cell.task, 1) * pixels.get(cell.task, 1)
        return (volume * rates.get(cell.restorer, default), cell.restorer, cell.task)

    return sorted(cells, key=cost)


def plan_cells(folder: Path, restorers: list[str], tasks: dict[str, Presence], *,
               limit: int | None, threads: int, device: str) -> tuple[list[CellSettings], list[CellSettings]]:
    """(to measure, already present with the same settings)."""
    todo, present = [], []
    for restorer in restorers:
        for task in tasks:
            settings = CellSettings(restorer, task, limit, threads, device)
            cell = read_cell(folder, restorer, task)
            (present if cell is not None and settings.same(cell) else todo).append(settings)
    return todo, present


def regenerate(folder: Path, scope: Scope, restorers: list[str], tasks: dict[str, Presence], *,
               limit: int | None = None, threads: int = 1, device: str = "cpu",
               argv: list[str] | None = None, log: Callable[[str], None] = print) -> Outcome:
    """Measure every cell not yet present, cheapest first; merge after each one."""
    folder = Path(folder)
    todo, present = plan_cells(folder, restorers, tasks, limit=limit, threads=threads, device=device)
    outcome = Outcome(skipped=present)
    log(f"{len(present)} cell(s) already measured with these settings, {len(todo)} to measure")
    pixels = {name: task_pixels(name) for name in sorted({c.task for c in todo})}
    counts = {name: (limit or p.found) for name, p in tasks.items()}
    total = len(todo)
    while todo:
        todo = order_cheap_first(todo, counts, pixels, _rates(folder, pixels))
        settings = todo.pop(0)
        index = total - len(todo)
        log(f"[{index}/{total}] {settings.restorer} @ {settings.task} ...")
        _measure(folder, scope, settings, tasks[settings.task], argv or [], outcome, log)
    return outcome


def _measure(folder: Path, scope: Scope, settings: CellSettings, presence: Presence,
             argv: list[str], outcome: Outcome, log: Callable[[str], None]) -> None:
    """One cell: run, write, merge; a failure is logged and the loop goes on."""
    from harness.io.results import RunLockedError

    started = time.monotonic()
    done = read_cell(folder, settings.restorer, settings.task)
    if done is not None and settings.same(done):  # another process finished it meanwhile
        outcome.skipped.append(settings)
        log("    skipped: measured meanwhile by another process")
        return
    try:
        cell = run_cell(settings, folder / WORK, argv)
    except RunLockedError:
        outcome.busy.append(settings)
        log("    skipped: another process is measuring this cell")
        return
    except Exception as exc:  # one broken cell must not stop hours of others
        outcome.failed.append((settings, f"{type(exc).__name__}: {exc}"))
        log(f"    failed: {type(exc).__name__}: {exc}")
        return
    cell["data"] = presence.describe()
    write_cell(folder, cell)
    discard_scratch(folder / WORK, settings)
    merge(folder, family_function(scope))
    outcome.done.append(settings)
    log(f"    done in {time.monotonic() - started:.1f} s: {_headline(cell)}")


def family_function(scope: Scope) -> Callable[[dict[str, Any]], str]:
    """``cell -> family slug`` for :func:`harness.reference.store.merge`."""
    return lambda cell: scope.family_of(cell["task"], str(cell.get("degradation") or "")).slug


def _headline(cell: dict[str, Any]) -> str:
    parts = [f"{name} {entry['mean']:.4g}" for name, entry in sorted(cell["metrics"].items())
             if isinstance(entry.get("mean"), (int, float))]
    return ", ".join(parts) + f" (n={cell['n']})"


def missing_cells(folder: Path, restorers: list[str], tasks: list[str]) -> list[tuple[str, str]]:
    """(restorer, task) pairs with no cell measured with the reference settings (full set, one
    thread, CPU): what ``bench reproduce --all`` would still measure."""
    todo, _ = plan_cells(folder, restorers, dict.fromkeys(tasks), limit=None, threads=1,  # type: ignore[arg-type]
                         device="cpu")
    return [(c.restorer, c.task) for c in todo]
