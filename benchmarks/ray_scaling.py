"""Ray scaling: the same grid on a local Ray instance with 1 and 2 workers, and the local executor.

    PYTHONPATH=$PWD python benchmarks/ray_scaling.py --images 8 --tasks 4 --delay 1.0

The grid is two configurations of a restorer that sleeps (``--delay`` and half of it, seconds
per image: a stand-in for a GPU restorer; on a CPU box a sleeping restorer scales like a GPU one,
where a CPU-bound one would only measure the cores the workers share) × two tasks, ``--images``
per task, so the work is ``2 × 2 × images`` images with known compute time. It prints, per configuration: wall
time of the run (planning to ``results.json``), the worker start-up, the speed-up over one Ray
worker, the overhead per image (the run's time beyond start-up and the restorers' own time,
``latency_ms`` in the records, divided by workers: planning, worker warm-up, scoring, writing)
and the driver's busy time per image (receiving records, writing files, the reducer: what bounds
how many workers one driver can feed). The local executor's row is the reference without Ray.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from harness.api.registries import RESTORERS
from harness.api.restorer import Restorer, register_restorer
from harness.io.results import read_samples
from harness.run.runner import RunConfig, run_benchmark


class Sleeper(Restorer):
    """Returns its input after sleeping: a restorer whose cost is known and does not use a core."""

    description = "benchmark-only: identity after a sleep"
    warmup = "none"

    def __init__(self, delay: float = 0.5):
        super().__init__()
        self.delay = delay

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        time.sleep(self.delay)
        return lq


if __name__ != "__main__" and "bench-sleeper" not in RESTORERS:  # see the end of the file
    register_restorer("bench-sleeper")(Sleeper)


def one(root: Path, name: str, args: argparse.Namespace, workers: int | None) -> dict[str, Any]:
    from harness.run.ray_executor import RayExecutor, RayOptions

    captured: list[RayExecutor] = []

    def factory(plan, config, hooks):
        options = RayOptions(workers=workers, cpus_per_worker=1, shard_size=args.shard_size)
        captured.append(RayExecutor(plan, config, options, hooks))
        return captured[-1]

    tasks = [(f"synth:skimage:gaussian_noise@{level}", {"crop": args.crop})
             for level in range(1, args.tasks + 1)]
    restorers = [("bench-sleeper", {"delay": args.delay}), ("bench-sleeper", {"delay": args.delay / 2})]
    config = RunConfig(restorers=restorers, tasks=tasks, limit=args.images, metrics=["psnr"],
                       output_dir=root / name, run_name="run", tracking=args.tracking,
                       show_progress=False, device="cpu", executor=factory if workers else None)
    start = time.perf_counter()
    summary = run_benchmark(config)
    wall = time.perf_counter() - start
    records = read_samples(summary.run_dir / "samples.jsonl")
    compute = sum(r["latency_ms"] or 0.0 for r in records) / 1000.0
    startup = captured[0].timings.get("startup_s", 0.0) if captured else 0.0
    n_workers = len(captured[0].workers) if captured else 1
    busy = captured[0].timings.get("driver_busy_s") if captured else None
    return {"name": name, "workers": n_workers, "images": len(records), "wall_s": wall,
            "startup_s": startup, "compute_s": compute,
            "overhead_ms": 1000.0 * (wall - startup - compute / n_workers) / len(records),
            "driver_ms": None if busy is None else 1000.0 * busy / len(records),
            "loads": captured[0].stats["restorer_loads"] if captured else 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8, help="images per task")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds per image of the slow restorer")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=2, help="tasks (noise levels 1..N)")
    parser.add_argument("--shard-size", type=int, default=None)
    parser.add_argument("--tracking", action="store_true", help="log to MLflow too")
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 ** 2, log_to_driver=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows.append(one(root, "local", args, None))
        for workers in (1, 2):
            rows.append(one(root, f"ray-{workers}", args, workers))
    ray.shutdown()
    base = next(r for r in rows if r["name"] == "ray-1")
    print(f"grid: 2 restorers (sleep {args.delay}s and {args.delay / 2}s) x {args.tasks} tasks x "
          f"up to {args.images} images; shard size {args.shard_size or 'auto'}")
    print("| executor | workers | images | wall s | worker start-up s | restore s | run s (no start-up) "
          "| speed-up vs 1 worker | overhead ms/img | driver busy ms/img | restorer loads |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        run_s = row["wall_s"] - row["startup_s"]
        speedup = (base["wall_s"] - base["startup_s"]) / run_s
        driver = "-" if row["driver_ms"] is None else f"{row['driver_ms']:.1f}"
        print(f"| {row['name']} | {row['workers']} | {row['images']} | {row['wall_s']:.2f} | "
              f"{row['startup_s']:.2f} | {row['compute_s']:.2f} | {run_s:.2f} | {speedup:.2f} | "
              f"{row['overhead_ms']:.1f} | {driver} | {row['loads']} |")


if __name__ == "__main__":
    # run as the importable module ``ray_scaling`` so that Ray workers can import the Sleeper
    # restorer (a class of ``__main__`` exists only in this process)
    import ray_scaling

    ray_scaling.main()
