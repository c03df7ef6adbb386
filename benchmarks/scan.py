"""Our CPU selective scans (compiled kernel, chunked PyTorch) against the plain sequential loop.

One row per implementation (``--impls compiled,chunked``): ``compiled`` is the C kernel (the CPU
default), ``chunked`` the pure-PyTorch fallback; the loop is mamba-ssm's reference algorithm.

Shapes are those of one SS2D call in MGDA: batch 1, 4 directions × ``d_in`` channels, state ``N``:
``small`` d_in = 24, N = 4; ``full`` d_in = 64, N = 16; L = 64², 128², 256²; float32.

* The loop (``selective_scan_reference``) costs the same per time step at any L, so it is timed on
  the first ``--loop-steps`` steps (default 4096) and extrapolated linearly to L; its outputs on
  that prefix are exact (the scan is causal) and give the max abs error of ours. Forward+backward
  of the loop is autograd through the loop, timed the same way.
* Bandwidth bound: the bytes that must move at least once (inputs and outputs; for
  forward+backward also dy and the input gradients) divided by the measured copy bandwidth
  (``clone`` of a 256 MB tensor). The scan also has a compute floor the bound ignores: one
  ``exp`` per state element (``D·L·N``), printed as the measured time of ``D·L·N`` exps.

Usage::

    PYTHONPATH=. python benchmarks/scan.py [--threads 2] [--loop-steps 4096] [--sizes 64,128,256]
        [--impls compiled,chunked] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from restorers.unfoldldm.selective_scan import (
    compiled_available,
    selective_scan_chunked,
    selective_scan_compiled,
    selective_scan_reference,
)

CONFIGS = {"small": (24, 4), "full": (64, 16)}


def inputs(d_in: int, n: int, length: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    dim = 4 * d_in
    return dict(
        u=torch.randn(1, dim, length, generator=g),
        delta=torch.randn(1, dim, length, generator=g) - 3,
        A=-torch.exp(torch.log(torch.arange(1, n + 1.0)).repeat(dim, 1)),
        B=torch.randn(1, 4, n, length, generator=g),
        C=torch.randn(1, 4, n, length, generator=g),
        D=torch.ones(dim),
        delta_bias=torch.full((dim,), -2.0),
        delta_softplus=True,
    )


def prefix(args: dict, steps: int) -> dict:
    return {
        k: (v[..., :steps].contiguous() if torch.is_tensor(v) and v.dim() >= 3 else v)
        for k, v in args.items()
    }


def clock(fn, repeats: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def fwd_bwd(fn, args: dict) -> float:
    leaves = {
        k: (v.clone().requires_grad_() if torch.is_tensor(v) and v.is_floating_point() else v)
        for k, v in args.items()
    }
    start = time.perf_counter()
    out = fn(**leaves)
    out.backward(torch.ones_like(out))
    return time.perf_counter() - start


def bandwidth() -> float:
    x = torch.empty(64 * 2**20)
    x.fill_(1.0)
    seconds, _ = clock(lambda: x.clone(), repeats=3)
    return 2 * x.numel() * 4 / seconds  # read + write, bytes/s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loop-steps", type=int, default=4096)
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--configs", default="small,full")
    parser.add_argument("--impls", default="compiled,chunked")
    parser.add_argument("--repeats", type=int, default=3, help="ours: best of this many runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    impls = {"compiled": selective_scan_compiled, "chunked": selective_scan_chunked}
    impls = {k: impls[k] for k in args.impls.split(",")}
    if "compiled" in impls and not compiled_available():
        print("compiled kernel unavailable: row skipped")
        impls.pop("compiled")
    bw = bandwidth()
    print(
        f"threads {args.threads}; copy bandwidth {bw / 1e9:.1f} GB/s; loop timed on {args.loop_steps} steps "
        f"and extrapolated\n"
    )
    print(
        "| config | L | ours | ours fwd s | loop fwd s | speed-up | ours f+b s | loop f+b s | speed-up "
        "| max abs err | bw bound fwd / f+b ms | ours ÷ bound fwd / f+b | exp floor s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        d_in, n = CONFIGS[name]
        dim = 4 * d_in
        for side in map(int, args.sizes.split(",")):
            length = side * side
            full = inputs(d_in, n, length)
            steps = min(length, args.loop_steps)
            short = prefix(full, steps)
            with torch.no_grad():
                loop_f, y_ref = clock(lambda a=short: selective_scan_reference(**a))
            loop_f *= length / steps
            loop_fb = fwd_bwd(selective_scan_reference, short) * length / steps
            io_fwd = 4 * (3 * dim * length + 2 * 4 * n * length)  # u, delta, y; B, C
            io_fb = io_fwd + 4 * (3 * dim * length + 2 * 4 * n * length)  # + dy, du, ddelta; dB, dC
            bound_f, bound_fb = io_fwd / bw, io_fb / bw
            x = torch.randn(min(dim * length * n, 1 << 26))
            exp_floor = clock(lambda t=x: torch.exp(t))[0] * dim * length * n / x.numel()
            for impl, fn in impls.items():
                with torch.no_grad():
                    ours_f, y = clock(lambda a=full, f=fn: f(**a), repeats=args.repeats)
                err = (y[..., :steps] - y_ref).abs().max().item()
                ours_fb = min(fwd_bwd(fn, full) for _ in range(args.repeats))
                print(
                    f"| {name} | {side}² | {impl} | {ours_f:.3f} | {loop_f:.2f} | {loop_f / ours_f:.1f}× "
                    f"| {ours_fb:.3f} | "
                    f"{loop_fb:.2f} | {loop_fb / ours_fb:.1f}× | {err:.1e} "
                    f"| {bound_f * 1e3:.1f} / {bound_fb * 1e3:.1f} "
                    f"| {ours_f / bound_f:.1f}× / {ours_fb / bound_fb:.1f}× | {exp_floor:.3f} |",
                    flush=True,
                )

if __name__ == "__main__":
    main()
