"""The compiled CPU selective scan: build/load of ``_scan_kernel.c`` and its autograd Function.

``_scan_kernel.c`` is plain C (no torch headers). On first use it is compiled with the system C
compiler (``$CC``, else ``cc``/``gcc``/``clang``) and cached as
``$BENCH_HOME/kernels/selective_scan-<key>.so``; the key hashes the source, the flags, the
compiler's version and the CPU (``-march=native`` code must not be reused on another CPU). The
compile goes to a temporary file that is renamed into place (atomic), under a file lock, so
concurrent processes never load a half-written library. Compiling and linking are two steps:
linking with ``-ffast-math`` would add ``crtfastmath.o``, whose constructor turns on
flush-to-zero for the whole process when the library loads (GCC < 13); the kernel instead flushes
subnormals itself, per thread, and restores the flag.

The kernel is called through ctypes (which releases the GIL) on ``data_ptr()`` of contiguous
tensors; work is split into independent (batch, group, channel block) tasks run on
``torch.get_num_threads()`` Python threads, so no second OpenMP runtime is loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

_SOURCE = Path(__file__).with_name("_scan_kernel.c")
_ABI = 2
#: Steps between saved states: the backward recomputes one chunk's states (``CHUNK·N·W`` values).
CHUNK = 32
#: Widest channel block of one task (its tile buffers stay in L1/L2).
_MAX_BLOCK = 128
#: Flag sets tried in order (the first that compiles wins).
#: -ffast-math lets the channel reductions vectorise. (-fno-finite-math-only made the kernel 3-5×
#: slower; NaN inputs still come out NaN through the Δ·u·B term, see the tests.)
_FLAG_SETS = (
    ["-O3", "-ffast-math", "-march=native", "-fPIC"],
    ["-O3", "-ffast-math", "-fPIC"],
    ["-O2", "-fPIC"],
)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_error: str | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _kernel_dir() -> Path:
    try:
        from harness.assets import bench_home

        home = bench_home()
    except Exception:  # restorers used without the harness
        home = Path(os.environ.get("BENCH_HOME", Path.home() / ".cache" / "restorebench")).expanduser()
    return home / "kernels"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_id() -> str:
    text = platform.machine() + platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                text += line
    return text


def _compiler_id(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


@contextlib.contextmanager
def _file_lock(path: Path):
    with open(path, "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no fcntl (Windows): the atomic rename still protects
            pass
        yield


def _build() -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set $CC or install cc/gcc)")
    source = _SOURCE.read_bytes()
    cc_id = _compiler_id(cc)
    directory = _kernel_dir()
    directory.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in _FLAG_SETS:
        key = hashlib.sha256(
            b"\0".join([source, " ".join(flags).encode(), cc_id.encode(), _cpu_id().encode()])
        ).hexdigest()[:20]
        target = directory / f"selective_scan-{key}.so"
        if not target.exists():
            with _file_lock(directory / f"selective_scan-{key}.lock"):
                if not target.exists():
                    error = _compile(cc, flags, directory, target)
                    if error:
                        errors.append(f"{' '.join(flags)}: {error}")
                        continue
        try:
            lib = ctypes.CDLL(str(target))
            if lib.scan_abi_version() != _ABI:
                raise OSError("ABI version mismatch")
        except (OSError, AttributeError) as exc:
            errors.append(f"{target}: {exc}")
            continue
        _declare(lib)
        return lib
    raise RuntimeError("compiling the selective-scan kernel failed: " + " | ".join(errors))


def _compile(cc: str, flags: list[str], directory: Path, target: Path) -> str | None:
    """Compile (flags) and link (no -ffast-math: see module docstring) into a temp file, then rename."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        obj, lib = Path(tmp) / "k.o", Path(tmp) / "k.so"
        for cmd in (
            [cc, *flags, "-c", str(_SOURCE), "-o", str(obj)],
            [cc, "-shared", "-fPIC", str(obj), "-o", str(lib), "-lm"],
        ):
            try:
                run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as exc:
                return str(exc)
            if run.returncode:
                return (run.stderr or run.stdout).strip()[-500:]
        os.replace(lib, target)  # atomic: other processes see no file or the whole file
    return None


def _declare(lib: ctypes.CDLL) -> None:
    p, i = ctypes.c_void_p, ctypes.c_int64
    for suffix in ("f32", "f64"):
        fwd = getattr(lib, f"scan_fwd_{suffix}")
        fwd.argtypes = [p] * 7 + [i] * 9
        fwd.restype = ctypes.c_int
        bwd = getattr(lib, f"scan_bwd_{suffix}")
        bwd.argtypes = [p] * 12 + [i] * 9
        bwd.restype = ctypes.c_int


def load() -> ctypes.CDLL | None:
    """The compiled library, built on first call; ``None`` (reason in :func:`load_error`) if that failed."""
    global _lib, _error
    if _lib is None and _error is None:
        with _lock:
            if _lib is None and _error is None:
                try:
                    _lib = _build()
                except Exception as exc:  # never crash inference over the fast path
                    _error = f"{type(exc).__name__}: {exc}"
    return _lib


def load_error() -> str | None:
    return _error


# ------------------------------------------------------------------------------------------------
# Calls
# ------------------------------------------------------------------------------------------------
def _forget_pool() -> None:
    """After fork the pool's threads are gone in the child: start a new pool there."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _blocks(batch: int, groups: int, per: int, threads: int) -> int:
    """Channel blocks per group: enough tasks for the threads, blocks no wider than _MAX_BLOCK."""
    nblk = max(-(-per // _MAX_BLOCK), -(-threads // (batch * groups)))
    return max(1, min(nblk, per))


def _run(fn, n_tasks: int, args: tuple) -> None:
    """Run ``fn(*args, task0, task1)`` over all tasks on ``torch.get_num_threads()`` threads."""
    global _pool, _pool_size
    threads = max(1, min(torch.get_num_threads(), n_tasks))
    if threads == 1:
        results = [fn(*args, 0, n_tasks)]
    else:
        if _pool is None or _pool_size < threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(threads, thread_name_prefix="scan"), threads
        bounds = [n_tasks * k // threads for k in range(threads + 1)]
        futures = [_pool.submit(fn, *args, a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
        results = [f.result() for f in futures]
    if any(results):
        raise MemoryError("selective-scan kernel: out of memory for its tile buffers")


def _suffix(dtype: torch.dtype) -> str:
    if dtype == torch.float32:
        return "f32"
    if dtype == torch.float64:
        return "f64"
    raise TypeError(f"compiled selective scan supports float32/float64, not {dtype}")


def scan_forward(u, dt, A, B, C, keep_states: bool):
    """y (B, D, L) and, if ``keep_states``, the chunk-entry states (B, n_chunks, N, D)."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"compiled selective scan unavailable: {_error}")
    batch, dim, length = u.shape
    groups, n_state = B.shape[1], A.shape[1]
    per = dim // groups
    nblk = _blocks(batch, groups, per, torch.get_num_threads())
    n_chunks = -(-length // CHUNK)
    y = torch.empty_like(u)
    hs = u.new_empty(batch, n_chunks, n_state, dim) if keep_states else None
    if u.numel() == 0:
        return y, hs
    ptrs = [t.data_ptr() for t in (u, dt, A, B, C, y)] + [hs.data_ptr() if hs is not None else None]
    fn = getattr(lib, f"scan_fwd_{_suffix(u.dtype)}")
    _run(fn, batch * groups * nblk, (*ptrs, batch, dim, length, groups, n_state, nblk, CHUNK))
    return y, hs


def scan_backward(u, dt, A, B, C, hs, dy):
    """Gradients of (u, dt, A, B, C) given the saved chunk-entry states."""
    lib = load()
    batch, dim, length = u.shape
    if u.numel() == 0:
        return tuple(torch.zeros_like(t) for t in (u, u, A, B, C))
    groups, n_state = B.shape[1], A.shape[1]
    per = dim // groups
    nblk = _blocks(batch, groups, per, torch.get_num_threads())
    du, ddt = torch.empty_like(u), torch.empty_like(u)
    dA_p = u.new_empty(batch, dim, n_state)
    dB_p = u.new_empty(nblk, *B.shape)
    dC_p = u.new_empty(nblk, *C.shape)
    ptrs = [t.data_ptr() for t in (u, dt, A, B, C, dy, hs, du, ddt, dA_p, dB_p, dC_p)]
    fn = getattr(lib, f"scan_bwd_{_suffix(u.dtype)}")
    _run(fn, batch * groups * nblk, (*ptrs, batch, dim, length, groups, n_state, nblk, CHUNK))
    dB = dB_p[0] if nblk == 1 else dB_p.sum(0)
    dC = dC_p[0] if nblk == 1 else dC_p.sum(0)
    return du, ddt, dA_p.sum(0), dB, dC


class CompiledSelectiveScan(torch.autograd.Function):
    """``y = scan(u, Δ, A, B, C)`` (Δ after bias/softplus, no skip) with the compiled kernel.

    Saves the inputs and the states entering every ``CHUNK``-step chunk (``B·D·N·L/CHUNK`` values);
    backward recomputes the states inside each chunk. Inputs must be contiguous CPU float32/float64
    tensors of one dtype.
    """

    @staticmethod
    def forward(ctx, u, dt, A, B, C):  # noqa: D401
        y, hs = scan_forward(u, dt, A, B, C, keep_states=True)
        ctx.save_for_backward(u, dt, A, B, C, hs)
        return y

    @staticmethod
    def backward(ctx, dy):
        u, dt, A, B, C, hs = ctx.saved_tensors
        return scan_backward(u, dt, A, B, C, hs, dy.contiguous())
