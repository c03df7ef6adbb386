"""Start-up cost of the CLI: ``bench --help`` and ``bench list restorers`` as whole processes.

Targets (issue 8): ``bench --help`` ≤ 0.5 s, ``bench list restorers`` ≤ 1.5 s. Each command is run
``--repeats`` times; the median wall time and the peak RSS (``ru_maxrss`` of the child) are printed,
with whether torch was imported (it must not be).

Usage::

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "bench --help": ["--help"],
    "bench list restorers": ["list", "restorers"],
    "bench list metrics": ["list", "metrics"],
    "bench run -r nlmm (typo)": ["run", "-r", "nlmm", "--no-tracking"],
}
TARGETS = {"bench --help": 0.5, "bench list restorers": 1.5}


def bench_executable() -> list[str]:
    found = shutil.which("bench")
    return [found] if found else [sys.executable, "-m", "harness.cli.main"]


def measure(args: list[str], repeats: int) -> tuple[float, float]:
    times, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        child = subprocess.Popen(bench_executable() + args, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
        times.append(time.perf_counter() - start)
        peaks.append(usage.ru_maxrss)
    return statistics.median(times), max(peaks) / 1024


def torch_free(args: list[str]) -> bool:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom harness.cli.main import app\n"
            f"CliRunner().invoke(app, {args!r})\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.strip().endswith("False")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print("| command | median wall (s) | peak RSS (MB) | torch imported | target |")
    print("|---|---|---|---|---|")
    for name, argv in COMMANDS.items():
        wall, rss = measure(argv, args.repeats)
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"≤ {target} s " + ("ok" if wall <= target else "MISSED"))
        print(f"| `{name}` | {wall:.3f} | {rss:.0f} | {'no' if torch_free(argv) else 'yes'} | {verdict} |")


if __name__ == "__main__":
    main()
