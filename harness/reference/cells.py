"""One reference cell: a restorer's default configuration on one task, measured in-process.

A cell is one :func:`harness.run.runner.run_benchmark` call (tracking and previews off, one
thread unless asked otherwise, CPU unless asked otherwise) into a scratch run folder named by the
cell's settings; the run's ``results.json`` is then turned into a *cell file* that holds the
per-metric aggregates and everything needed to say how they were made (command, git hash,
package versions, thread count, denormal mode, memory method, weights). A killed cell resumes
image by image from its scratch run folder; a finished one's scratch folder is removed.

:func:`timing_fields` is the **one** place that reads latency and peak memory (and how they were
measured) from ``results.json``, by field name: the measurement is being reworked elsewhere, and
a renamed field must be followed here only.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.io.names import safe_name

#: ``results.json`` → ``results[restorer][task]`` keys that are timing, not quality, aggregates
TIMING_METRICS = ("latency_ms", "peak_mem_mb")
#: ``results.json`` → ``measurement`` fields a cell keeps (the method of each timing figure)
MEASUREMENT_FIELDS = ("threads", "threads_source", "flush_denormal", "peak_mem_method", "latency")
CELL_FORMAT = 1


@dataclass(frozen=True)
class CellSettings:
    """What makes two measurements of one (restorer, task) the same cell."""

    restorer: str
    task: str
    limit: int | None = None
    threads: int = 1
    device: str = "cpu"

    def key(self) -> str:
        """A short stable hash of the settings (scratch folder names, resume checks)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def same(self, cell: dict[str, Any]) -> bool:
        """Whether a stored cell was made with these settings."""
        return cell.get("settings") == asdict(self)

    def run_command(self) -> str:
        """The ``bench run`` command that measures this cell on its own."""
        parts = ["bench", "run", "-r", self.restorer, "-t", self.task, "--device", self.device,
                 "--threads", str(self.threads), "--no-tracking", "--no-previews"]
        if self.limit is not None:
            parts += ["--limit", str(self.limit)]
        return shlex.join(parts)


def scratch_dir(work: Path, settings: CellSettings) -> Path:
    name = f"{safe_name(settings.restorer)}--{safe_name(settings.task)}--{settings.key()}"
    return Path(work) / name


def run_cell(settings: CellSettings, work: Path, argv: list[str]) -> dict[str, Any]:
    """Measure one cell (resuming its scratch run if a killed attempt left one); the cell dict.

    Raises :class:`harness.io.results.RunLockedError` when another process is measuring it.
    """
    from harness.io.results import RESULTS_FILE, read_results
    from harness.run.runner import RunConfig, run_benchmark

    run_dir = scratch_dir(work, settings)
    config = RunConfig(restorers=[(settings.restorer, {})], tasks=[(settings.task, {})],
                       device=settings.device, limit=settings.limit, output_dir=run_dir.parent,
                       run_name=run_dir.name, resume=True, save_previews=False, tracking=False,
                       threads=settings.threads, argv=list(argv), show_progress=False)
    summary = run_benchmark(config)
    payload = read_results(summary.run_dir / RESULTS_FILE)
    return cell_from_results(payload, settings, argv)


def discard_scratch(work: Path, settings: CellSettings) -> None:
    shutil.rmtree(scratch_dir(work, settings), ignore_errors=True)


def timing_fields(payload: dict[str, Any], restorer: str, task: str) -> dict[str, Any]:
    """Latency and peak memory of one pair, with how they were measured (module docstring)."""
    entry = payload.get("results", {}).get(restorer, {}).get(task, {})
    measurement = payload.get("measurement") or {}
    return {"aggregates": {name: entry[name] for name in TIMING_METRICS if name in entry},
            "measurement": {k: measurement[k] for k in MEASUREMENT_FIELDS if k in measurement},
            "device": payload.get("device")}


def cell_from_results(payload: dict[str, Any], settings: CellSettings,
                      argv: list[str]) -> dict[str, Any]:
    """The cell file's content from one run's ``results.json`` (one restorer, one task)."""
    (restorer, by_task), = payload["results"].items()
    (task, entry), = by_task.items()
    timing = timing_fields(payload, restorer, task)
    quality = {k: v for k, v in entry.items()
               if isinstance(v, dict) and "mean" in v and k not in TIMING_METRICS}
    task_info = payload.get("tasks", {}).get(task, {})
    restorer_info = payload.get("restorers", {}).get(restorer, {})
    unit = next(iter(payload.get("units", [])), {})
    return {
        "format": CELL_FORMAT, "restorer": restorer, "task": task, "settings": asdict(settings),
        "restorer_id": unit.get("restorer_id"), "task_id": unit.get("task_id"),
        "n": entry.get("n_ok", 0), "n_failed": entry.get("n_failed", 0),
        "n_expected": task_info.get("expected_count"), "degradation": task_info.get("degradation"),
        "metrics": quality, "missing": dict(payload.get("missing_metrics") or {}),
        "timing": timing["aggregates"], "measurement": timing["measurement"],
        "device": timing["device"], "weights": restorer_info.get("weights", []),
        "command": shlex.join(["bench", *argv[1:]]) if argv else "",
        "run_command": settings.run_command(), "git_hash": payload.get("git_hash"),
        "versions": payload.get("versions", {}), "created": payload.get("created"),
    }
