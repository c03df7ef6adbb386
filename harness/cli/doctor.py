"""``bench doctor``: one screen saying what this machine has and lacks, each missing thing with
the command that fixes it.

Sections: versions; device (GPU / CUDA); threads and load (what makes timings trustworthy);
optional stacks (the pip extras of ``pyproject.toml``, read from the installed metadata); tools
(Chromium for the report's browser test); import roots (a folder named ``harness``, ``restorers``,
``tasks`` or ``downstream`` in the working directory shadows the installed package: the names are
the user's, kept un-namespaced, so this is checked here); data per task; weights of every declared
asset (restorers and metrics); and the checks that packages contribute (:mod:`harness.api.checks`:
Stable Diffusion, the MLLM captioner, YOLO). Nothing is downloaded and no model is loaded.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from harness.api.checks import CHECKS, Check
from harness.cli.common import console

#: packages whose versions decide numbers (metrics, kernels) or behaviour (tracking, CLI)
VERSIONED = ("torch", "torchvision", "pyiqa", "numpy", "scipy", "scikit-image", "mlflow", "typer",
             "diffusers", "transformers", "ultralytics", "ray", "mamba-ssm")
#: top-level packages of restorebench: a same-named folder on sys.path before them shadows them
OWN_PACKAGES = ("harness", "restorers", "tasks", "downstream")
APT_CHROMIUM = "apt-get install -y chromium chromium-driver  (as root; Debian/Ubuntu)"


def doctor() -> None:
    """What is present and missing on this machine (data, weights, GPU, stacks, tools), each
    missing thing with the command that fixes it."""
    checks = collect()
    table = Table(title="bench doctor", show_lines=False, pad_edge=False, expand=True)
    table.add_column("", no_wrap=True)
    table.add_column("what", overflow="fold", ratio=3)
    table.add_column("state", overflow="fold", ratio=5)
    table.add_column("fix", overflow="fold", ratio=4)
    group = None
    for check in checks:
        if check.group != group:
            group = check.group
            table.add_row("", f"[bold]{escape(group)}[/]", "", "")
        mark = "[green]ok[/]" if check.ok else "[red]missing[/]"
        table.add_row(mark, escape(check.name), escape(check.detail), escape(check.fix))
    console.print(table)
    missing = sum(not c.ok for c in checks)
    console.print(f"{len(checks) - missing} present, {missing} missing" +
                  (" (each with its fix above)" if missing else ""))


def collect() -> list[Check]:
    """Every check, in the order shown (the tests read these, not the table)."""
    return [*_versions(), *_device(), *_threads(), *_stacks(), *_tools(), *_import_roots(),
            *_data(), *_assets(), *_contributed()]


def _versions() -> list[Check]:
    parts = [f"python {platform.python_version()}"]
    for name in VERSIONED:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    try:
        where = Path(distribution("restorebench").locate_file("")).resolve()
        own = f"restorebench {version('restorebench')} ({where})"
    except PackageNotFoundError:
        own = "restorebench not installed (run from a source folder)"
    return [Check("versions", own, True, ", ".join(parts))]


def _device() -> list[Check]:
    import torch

    build = f"torch {torch.__version__} (CUDA build {torch.version.cuda})" if torch.version.cuda \
        else f"torch {torch.__version__} (CPU build)"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return [Check("device", "GPU / CUDA", True, f"{names}; {build}")]
    fix = ("nvidia-smi: is a driver loaded? (torch has CUDA; no device is visible)" if torch.version.cuda
           else "on a GPU machine: pip install torch from the CUDA index (pytorch.org/get-started)")
    return [Check("device", "GPU / CUDA", False, f"none: every restorer runs on the CPU, slowly; {build}",
                  fix)]


def _threads() -> list[Check]:
    import torch

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    pinned = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    detail = (f"{cores} cores, torch uses {torch.get_num_threads()} threads"
              + (f" ({', '.join(f'{k}={v}' for k, v in pinned.items())})" if pinned else "")
              + f", load {load:.1f} (1 min)")
    busy = load > 0.75 * cores
    return [Check("threads", "CPU threads and load", not busy, detail,
                  "other processes compete for the cores: latency numbers are inflated; rerun "
                  "timings when the load is below the core count" if busy else "")]


def _stacks() -> list[Check]:
    """Each pip extra of restorebench and whether its packages import."""
    from harness.api.extras import extras_of

    checks = []
    for extra, packages in extras_of().items():
        absent = [p for p in packages if importlib.util.find_spec(p.replace("-", "_")) is None]
        checks.append(Check("stacks", f"[{extra}] {' '.join(packages)}", not absent,
                            "installed" if not absent else f"not installed: {' '.join(absent)}",
                            f"pip install -e '.[{extra}]'" if absent else ""))
    return checks


def _tools() -> list[Check]:
    found = {tool: shutil.which(tool) for tool in ("chromium", "chromedriver")}
    absent = [t for t, path in found.items() if path is None]
    return [Check("tools", "Chromium + ChromeDriver (report browser test)", not absent,
                  ", ".join(f"{t}: {p or 'absent'}" for t, p in found.items()),
                  APT_CHROMIUM if absent else "")]


def _import_roots() -> list[Check]:
    """Every restorebench package must come from one folder; a user's ``tasks/`` in the working
    directory would otherwise hide the built-in tasks without an error."""
    roots = {}
    for name in OWN_PACKAGES:
        spec = importlib.util.find_spec(name)
        roots[name] = Path(spec.origin).resolve().parent.parent if spec and spec.origin else None
    expected = roots["harness"]
    stray = {n: r for n, r in roots.items() if r != expected}
    detail = f"all from {expected}" if not stray else "; ".join(f"{n} from {r}" for n, r in stray.items())
    return [Check("imports", "harness, restorers, tasks, downstream", not stray, detail,
                  "rename or move the folder(s) that shadow them (or run bench from another "
                  "directory); docs/plugins.md 'Package names'" if stray else "")]


def _data() -> list[Check]:
    """Data per task, folded to three lines (present, partial, missing) so the doctor fits one
    screen; each task's own fix is ``bench data fetch TASK`` / ``bench data validate TASK``."""
    from harness.api.task import TASKS, DataMissingError, build_task
    from harness.cli.listing import data_status

    root = os.environ.get("BENCH_DATA_ROOT")
    checks = [Check("data", "BENCH_DATA_ROOT", bool(root), root or "unset: only embedded and "
                    "synthetic-from-skimage tasks have data", "" if root else
                    "export BENCH_DATA_ROOT=/path/to/datasets  (or --data-root)")]
    present, partial, missing = [], [], []
    for name in TASKS.names():
        try:
            status = data_status(build_task(name))
        except DataMissingError:
            missing.append(name)
            continue
        except Exception as exc:  # a broken task is reported, never fatal for the doctor
            checks.append(Check("data", name, False, f"{type(exc).__name__}: {exc}", "bench list tasks"))
            continue
        plain = re.sub(r"\[/?[a-z ]*\]", "", status)  # rich markup of `bench list tasks`
        if plain.startswith("partial"):
            partial.append(f"{name} {plain.removeprefix('partial ')}")
        else:
            present.append(name)
    checks.append(Check("data", f"{len(present)} tasks present", True, ", ".join(present)))
    if partial:
        checks.append(Check("data", f"{len(partial)} tasks partial", False, ", ".join(partial),
                            "bench data validate TASK  (what is there; where the rest comes from)"))
    if missing:
        checks.append(Check("data", f"{len(missing)} tasks missing", False, ", ".join(missing),
                            "bench data fetch TASK  (downloads, or prints where to get it and "
                            "the layout)"))
    return checks


def _assets() -> list[Check]:
    """Every declared weight file (restorers' and metrics'): the complete assets on one line,
    each incomplete one on its own with its sources."""
    from harness.assets.cache import bench_home, status
    from harness.assets.declarations import load_all_declarations

    declared = load_all_declarations()
    by_asset: dict[str, list] = {}
    for item in status(declared):
        by_asset.setdefault(item.asset, []).append(item)
    complete = [a for a, items in by_asset.items() if all(i.status == "ok" for i in items)]
    checks = [Check("weights", f"{len(complete)} assets cached", True,
                    f"{', '.join(complete)} (in {bench_home()})")]
    for asset, items in by_asset.items():
        if asset in complete:
            continue
        bad = [i for i in items if i.status != "ok"]
        checks.append(Check(
            "weights", f"{asset}: {declared[asset].description}", False,
            ", ".join(f"{i.file} {i.status}" for i in bad),
            "downloaded on first use when online; offline: bench assets import DIR (sources: "
            "bench assets list)"))
    return checks


def _contributed() -> list[Check]:
    checks = []
    for name in CHECKS.names():
        try:
            checks.extend(CHECKS.get(name)())
        except Exception as exc:  # a broken plugin check is a line, not a crash
            checks.append(Check("weights", f"check {name}", False, f"{type(exc).__name__}: {exc}"))
    for module, error in CHECKS.import_errors.items():
        checks.append(Check("weights", f"check {module}", False, error))
    return checks
