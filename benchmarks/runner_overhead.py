"""What the harness costs around ``restore``: metric time per image and loop overhead.

Measures, on the CPU (or ``--device``), for a few image sizes:

* the time of each metric (PSNR, SSIM, NIQE; LPIPS when its weights are cached) per image;
* the wall time of a whole ``identity`` run over the ``demo`` task versus the sum of the timed
  ``restore`` calls, i.e. what loading, metrics, JSONL writing and MLflow add per image;
* the share of wall time MLflow costs in ``bench run -r identity -t kodak24-awgn25 --metrics
  psnr`` (whole processes, medians; target ≤ 10 %), and its share of CPU time (the run and its
  MLflow child process; unlike wall time, not inflated by other load on the machine).

Usage::

    python benchmarks/runner_overhead.py [--device cpu] [--repeats 3]

Prints a markdown table; numbers go in the closing notes, never into tests.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from harness.api.task import MetricConventions
from harness.io.results import read_samples
from harness.metrics.suite import MetricSuite
from harness.run.runner import RunConfig, resolve_device, run_benchmark


def time_metrics(device: torch.device, sizes: list[tuple[int, int]], repeats: int) -> list[dict]:
    rows = []
    generator = torch.Generator().manual_seed(0)
    for height, width in sizes:
        gt = torch.rand(1, 3, height, width, generator=generator).to(device)
        out = (gt + 0.05 * torch.randn(gt.shape, generator=generator).to(device)).clamp(0, 1)
        for name in ("psnr", "ssim", "niqe", "lpips"):
            suite = MetricSuite([name], MetricConventions(), device, has_gt=True)
            if name in suite.missing:
                rows.append({"metric": name, "size": f"{width}x{height}", "ms": "missing"})
                continue
            suite.score(out, gt)  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                suite.score(out, gt)
            elapsed = (time.perf_counter() - start) / repeats * 1000
            rows.append({"metric": name, "size": f"{width}x{height}", "ms": f"{elapsed:.1f}"})
    return rows


def loop_overhead(device: str, tracking: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(restorers=[("identity", {})], tasks=[("demo", {})], device=device,
                           metrics=["psnr", "ssim"], output_dir=Path(tmp), tracking=tracking,
                           show_progress=False, argv=["benchmarks/runner_overhead.py"])
        start = time.perf_counter()
        summary = run_benchmark(config)
        wall = time.perf_counter() - start
        records = read_samples(summary.run_dir / "samples.jsonl")
    restore = sum(r["latency_ms"] for r in records) / 1000
    per_image_ms = (wall - restore) / len(records) * 1000
    return {"tracking": tracking, "images": len(records), "wall_s": f"{wall:.2f}",
            "restore_s": f"{restore:.3f}", "overhead_per_image_ms": f"{per_image_ms:.0f}"}


def tracking_share(repeats: int) -> list[dict]:
    """Whole ``bench run -r identity -t kodak24-awgn25 --metrics psnr`` processes with and without
    MLflow (fresh output folder, so the sqlite store is created each time): median wall times and
    the share of the tracked run's wall time that tracking costs. Target: ≤ 10 %."""
    import os
    import resource
    import shutil
    import statistics
    import subprocess
    import sys

    bench = shutil.which("bench") or sys.executable
    prefix = [bench] if bench.endswith("bench") else [bench, "-m", "harness.cli.main"]
    walls: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for tracking in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                args = [*prefix, "run", "-r", "identity", "-t", "kodak24-awgn25", "--metrics", "psnr",
                        "--output-dir", tmp, "--no-progress", *([] if tracking else ["--no-tracking"])]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                done = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ))
                walls[tracking].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the run and its MLflow child
                cpus[tracking].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                if done.returncode != 0:
                    raise SystemExit(f"bench run failed (BENCH_DATA_ROOT set?):\n{done.stderr[-2000:]}")
    off, on = statistics.median(walls[False]), statistics.median(walls[True])
    cpu_off, cpu_on = statistics.median(cpus[False]), statistics.median(cpus[True])
    # the CPU-time difference does not depend on what else the machine is doing; wall time does
    return [{"command": "bench run -r identity -t kodak24-awgn25 --metrics psnr", "runs": repeats,
             "no_tracking_s": f"{off:.2f}", "tracking_s": f"{on:.2f}",
             "tracking_share": f"{max(0.0, on - off) / on:.1%}",
             "cpu_no_tracking_s": f"{cpu_off:.2f}", "cpu_tracking_s": f"{cpu_on:.2f}",
             "tracking_cpu_share": f"{max(0.0, cpu_on - cpu_off) / cpu_on:.1%}"}]


def markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tracking-repeats", type=int, default=5,
                        help="whole-process runs per setting for the tracking share (0 = skip; "
                             "needs BENCH_DATA_ROOT with denoise/kodak24)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}\n")
    print(markdown(time_metrics(device, [(256, 256), (512, 768)], args.repeats)))
    print()
    print(markdown([loop_overhead(args.device, tracking=False),
                    loop_overhead(args.device, tracking=True)]))
    if args.tracking_repeats:
        print()
        print(markdown(tracking_share(args.tracking_repeats)))


if __name__ == "__main__":
    main()
