"""The CPU environment a timing runs in: how many threads, whether denormals are flushed, how loaded.

**Threads are chosen, not inherited.** PyTorch starts as many threads as the host has cores, even
where a container's CPU quota or the process's CPU affinity allows fewer; on a 2-core machine with
other load a tiny ``bench train`` took 8 m 55 s with the default threads and 2 m 03 s with one.
:func:`choose_threads` takes, in order: an explicit request (``--threads N``), an explicit
``OMP_NUM_THREADS``, else the CPUs this process may actually use (:func:`cpu_budget`: its
affinity mask, capped by the cgroup CPU quota). The choice and where it came from are recorded
with every run, because latency without the thread count is not comparable between machines.
The same count bounds the native BLAS/OpenMP pools outside torch (:func:`limit_native_pools`,
through ``threadpoolctl``): numpy's OpenBLAS starts one thread per host core too. It acts on the
libraries loaded when it is called, so the executor calls it again after loading each restorer
(which may load its own). The environment is left alone (a library caller's later runs would
read their thread count from it). Libraries with a pool of their own that threadpoolctl does not
know (the ``bm3d`` library) take it as an option of their restorer.

**Denormals are flushed while timing.** Restorers whose trained weights hold subnormal floats
(Zero-DCE's authors' weights: 19,266 of 79,200) run 10–30× slower on x86 CPUs without
flush-to-zero: the CPU takes a microcode assist on every subnormal operand. That measures the
weights' file, not the method (with FTZ/DAZ the same network runs at random-weight speed), so the
harness turns ``torch.set_flush_denormal(True)`` on for the timing processes and records it.
The flag lives in each thread's MXCSR register and a new thread copies it from its creator, so it
must be set **before torch's OpenMP pool starts** (the first parallel op of the process): set
later, only the calling thread flushes (Zero-DCE at 256², 2 threads: 0.5–1.0 s set early,
7.4–9.3 s set late, 13–18 s off). :func:`configure_timing` is therefore called first thing by
every timing process (``bench run`` / ``study`` / ``detect`` / ``train``, each Ray worker,
``benchmarks/latency_truth.py``).

**Load.** :func:`load_warning` says when the 1-minute load average leaves fewer idle cores than
the threads a run uses: then other processes share the cores and latencies are inflated.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: where cgroups are mounted (a parameter of the readers so that tests can point at a fake tree)
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _v2_quota(text: str | None) -> float | None:
    """``cpu.max`` (cgroup v2): ``"max 100000"`` (no quota) or ``"QUOTA PERIOD"``."""
    parts = (text or "").split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(folder: Path) -> float | None:
    """``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (cgroup v1); -1 is no quota."""
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _own_cgroup_dirs(root: Path, proc_cgroup: str | None) -> list[Path]:
    """The folders of this process's cgroup and of its ancestors (v2), innermost first."""
    folders = []
    for line in (proc_cgroup or "").splitlines():
        hierarchy, _, path = line.partition("::")
        if hierarchy == "0" and path.startswith("/"):
            here = root / path.lstrip("/")
            while True:
                folders.append(here)
                if here == root or root not in here.parents:
                    break
                here = here.parent
    return folders or [root]


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The CPU quota (in CPUs, e.g. 1.5) of this process's cgroup, the tightest along its path
    (v2) or of the ``cpu`` controller (v1); None when there is none or it cannot be read."""
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    quotas = [_v2_quota(_read(folder / "cpu.max")) for folder in _own_cgroup_dirs(root, proc_cgroup)]
    for v1 in (root / "cpu", root / "cpu,cpuacct"):
        quotas.append(_v1_quota(v1))
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``taskset``, a batch scheduler's binding)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def cpu_budget(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> tuple[int, str]:
    """``(CPUs this process may use, how that was found)``: the affinity mask, capped by the
    cgroup quota rounded down (at least 1) — never the host's core count as such."""
    affinity = affinity_cpus()
    quota = cgroup_cpu_quota(root, proc_cgroup)
    if quota is not None and math.floor(quota) < affinity:
        return max(1, math.floor(quota)), f"cgroup CPU quota {quota:g} (affinity {affinity})"
    return affinity, f"CPU affinity {affinity}" + (f" (cgroup quota {quota:g})" if quota else "")


@dataclass(frozen=True)
class ThreadChoice:
    """How many intra-op threads a run uses, and why."""

    threads: int
    source: str


def choose_threads(requested: int | None = None, environ: dict[str, str] | None = None
                   ) -> ThreadChoice:
    """``--threads N`` if given, else an explicit ``OMP_NUM_THREADS``, else :func:`cpu_budget`.
    ValueError for a request below 1."""
    environ = os.environ if environ is None else environ
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads {requested}: give 1 or more (or leave it out to use the "
                             "CPUs this process may use)")
        return ThreadChoice(int(requested), "--threads")
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) >= 1:
        return ThreadChoice(int(omp), "OMP_NUM_THREADS")
    budget, how = cpu_budget()
    return ThreadChoice(budget, how)


def set_flush_denormal(on: bool) -> bool:
    """Flush subnormal floats to zero (FTZ+DAZ) in the calling thread (and the threads it starts
    later); False when the CPU cannot (no SSE3)."""
    import torch

    return bool(torch.set_flush_denormal(on))


def denormals_flushed() -> bool:
    """Whether the calling thread flushes subnormals now: 1e-40 × 1 is 0 only with FTZ/DAZ."""
    import torch

    return float(torch.tensor([1e-40], dtype=torch.float32).mul(1.0).item()) == 0.0


def load_average() -> float | None:
    """The 1-minute load average of the host, None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def load_warning(threads: int, load: float | None = None, cores: int | None = None) -> str | None:
    """A warning when the host's load leaves fewer idle cores than ``threads``: its latencies
    would include waiting for the CPU. The calling process counts itself as 1 of the load, and
    half a core of other load is tolerated (a shell, a tracking process)."""
    load = load_average() if load is None else load
    cores = (os.cpu_count() or 1) if cores is None else cores
    if load is None or load - 1 <= cores - threads + 0.5:
        return None
    return (f"the host's load average is {load:.1f} on {cores} core(s) and this run uses "
            f"{threads} thread(s): other processes compete for the CPU, so latencies are "
            "inflated and vary between runs (rerun on a quieter machine, or with fewer --threads)")


def limit_native_pools(threads: int) -> None:
    """Size the BLAS/OpenMP pools loaded in this process to ``threads`` (threadpoolctl, the
    scikit-learn maintainers' library for exactly this)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


@dataclass(frozen=True)
class TimingEnvironment:
    """What a timing process runs under; ``results.json`` → ``measurement`` and MLflow params."""

    threads: int
    threads_source: str
    flush_denormal: bool
    load_average: float | None

    def params(self) -> dict[str, Any]:
        return asdict(self)


def configure_timing(threads: int | None = None, flush_denormal: bool = True) -> TimingEnvironment:
    """Set torch's thread count (:func:`choose_threads`) and the denormal mode for this process.

    Call it before torch's first parallel op (see the module docstring). Returns what is in
    effect: ``flush_denormal`` is what the calling thread actually does afterwards."""
    import torch

    choice = choose_threads(threads)
    if flush_denormal:
        set_flush_denormal(True)
    torch.set_num_threads(choice.threads)
    limit_native_pools(choice.threads)
    return TimingEnvironment(torch.get_num_threads(), choice.source, denormals_flushed(),
                             load_average())


@contextlib.contextmanager
def kept_threads() -> Iterator[None]:
    """Restore torch's thread count after the block: for libraries that change it and never
    restore it (ultralytics' ``select_device`` sets ``min(8, cpus − 1)`` on every predictor)."""
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
