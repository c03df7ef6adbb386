"""The reducer's cost per record as a run grows: it must stay flat in the number of pairs.

A synthetic run of up to 200 (restorer, task) pairs × 50 images: a zero-cost restorer registered
here (200 configurations of it, ``k=0..199``) on a tiny in-memory task, planned with
:func:`~harness.run.plan.make_plan` (no asset check), and pre-made ``ok`` records (PSNR and SSIM
values, latency, memory) fed straight into :class:`~harness.run.reducer.Reducer` in plan order,
so that every pair completes and is aggregated and "logged" (to a tracker that does nothing)
while the run goes on. The whole ``add`` loop plus ``finish`` (``results.json``) is timed and
divided by the number of records.

A reducer that re-reads ``samples.jsonl`` whenever a pair completes is quadratic in the records
(its time per record grows with the pairs); one that keeps each pair's records in memory is flat.
The run folder is on ``/dev/shm`` where it exists, so that the per-record ``fsync`` (a disk
property, the same for every run size) does not hide the reducer's own cost.

The script drives whichever Reducer API it finds (the ``suite`` callback of commit 7a9d401 and
before, or the reducer that builds its own suites), so the same file measures before and after::

    python benchmarks/reducer_scaling.py [--pairs 10,50,100,200] [--images 50]

Prints a markdown table; numbers go in the closing notes, never into tests.
"""

from __future__ import annotations

import argparse
import inspect
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from harness.api.registries import RESTORERS, TASKS
from harness.api.restorer import Restorer, register_restorer
from harness.api.task import Sample, Task, register_task
from harness.run.plan import RestorerItem, make_plan
from harness.run.reducer import Reducer


class ZeroCost(Restorer):
    """Returns its input; ``k`` only makes configurations distinct."""

    description = "benchmark-only: identity with a dummy option"
    warmup = "none"

    def __init__(self, k: int = 0):
        super().__init__()
        self.k = k

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return lq


class Tiny(Task):
    """``--images`` ids; never loaded (the records are made here)."""

    name = "bench-reducer-tiny"
    description = "benchmark-only"
    n = 50

    def sample_ids(self) -> list[str]:
        return [f"i{index:04d}" for index in range(self.n)]

    def load(self, sample_id: str) -> Sample:
        image = torch.zeros(3, 8, 8)
        return Sample(sample_id, image, image, {})


class NullTracker:
    """Takes the reducer's MLflow calls and does nothing (the reducer's own cost is measured)."""

    def log_pair(self, **kwargs: Any) -> None:
        pass

    def finish(self, *args: Any) -> None:
        pass


def _register() -> None:
    if "bench-reducer-zero" not in RESTORERS:
        register_restorer("bench-reducer-zero")(ZeroCost)
    if "bench-reducer-tiny" not in TASKS:
        register_task("bench-reducer-tiny")(Tiny)


def _records(plan: Any, rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for unit in plan.units:
        for sample_id in unit.sample_ids:
            records.append({
                "sample_id": sample_id, "restorer": unit.restorer.label, "restorer_id": unit.restorer.id,
                "task": unit.task.label, "task_id": unit.task.id, "device": "cpu",
                "host": platform.node(), "seed": 0, "degradation_seed": 0, "status": "ok",
                "metrics": {"psnr": rng.uniform(20, 40), "ssim": rng.uniform(0.5, 1.0)},
                "latency_ms": rng.uniform(1, 2), "peak_mem_mb": 0.0, "peak_mem_kind": "cpu",
                "height": 8, "width": 8})
    return records


def _reducer(plan: Any, run_dir: Path) -> Any:
    """A Reducer of whichever API this checkout has."""
    run_info = {"device": "cpu", "git_hash": None, "argv": [], "versions": {}, "limit": None}
    if "suite" in inspect.signature(Reducer).parameters:  # 7a9d401 and before
        from harness.run.executor import LocalExecutor

        suite_of = LocalExecutor(plan, torch.device("cpu")).suite
        return Reducer(plan, run_dir, NullTracker(), suite_of, run_info)
    return Reducer(plan, run_dir, NullTracker(), run_info)


def _as_record(record: dict[str, Any]) -> Any:
    try:
        from harness.run.record import Record
    except ImportError:  # 7a9d401 and before: plain dicts
        return record
    return Record.from_json(record)


def measure(n_pairs: int, n_images: int, root: Path) -> dict[str, Any]:
    Tiny.n = n_images
    plan = make_plan([RestorerItem("bench-reducer-zero", {"k": k}) for k in range(n_pairs)],
                     [("bench-reducer-tiny", {})], metrics=["psnr", "ssim"], check_assets=False)
    records = [_as_record(r) for r in _records(plan, random.Random(0))]
    run_dir = root / f"pairs-{n_pairs}"
    start = time.perf_counter()
    reducer = _reducer(plan, run_dir)
    reducer.start()
    for record in records:
        reducer.add(record)
    payload = reducer.finish("FINISHED")
    elapsed = time.perf_counter() - start
    assert len(payload["units"]) == n_pairs
    shutil.rmtree(run_dir)
    return {"pairs": n_pairs, "records": len(records), "total_s": elapsed,
            "us_per_record": elapsed / len(records) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default="10,50,100,200")
    parser.add_argument("--images", type=int, default=50)
    args = parser.parse_args()
    _register()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        rows = [measure(int(n), args.images, Path(tmp)) for n in args.pairs.split(",")]
    print(f"reducer cost, {args.images} images per pair ({Reducer.__module__})\n")
    print("| pairs | records | total s | µs per record |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['pairs']} | {row['records']} | {row['total_s']:.2f} | {row['us_per_record']:.0f} |")


if __name__ == "__main__":
    main()
