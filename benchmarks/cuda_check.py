"""UnfoldLDM checks for a GPU machine, in one prepared run (≤ 8 min on one GPU).

1. Selective scan: mamba-ssm's CUDA kernel against our chunked scan (on CPU and on CUDA) on the
   same inputs (MGDA's small and full SS2D shapes, L = 64² and 256²): max abs difference of the
   outputs and of every input gradient, and times. Skipped, with a message, when mamba-ssm does
   not import or there is no CUDA.
2. ``full`` training step (Phase II, joint part) at 256², batch 1: forward + backward time, peak memory.
3. Inference latency of ``small`` and ``full`` at 600×400 (W×H).

It also runs on CPU (part 1 skipped; parts 2–3 at ``--cpu-size``, default 128², unless
``--full-size``), so it can be checked before a GPU is spent on it.

Usage::

    PYTHONPATH=. python benchmarks/cuda_check.py [--device cuda] [--budget 480]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _unfoldldm_common import PeakMemory, timed  # noqa: E402

from restorers.unfoldldm import selective_scan as ss  # noqa: E402
from restorers.unfoldldm.restorer import UnfoldLDM  # noqa: E402

START = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - START


def scan_inputs(d_in: int, n: int, length: int) -> dict:
    g = torch.Generator().manual_seed(0)
    dim = 4 * d_in
    return dict(
        u=torch.randn(1, dim, length, generator=g),
        delta=torch.randn(1, dim, length, generator=g) - 3,
        A=-torch.exp(torch.log(torch.arange(1, n + 1.0)).repeat(dim, 1)),
        B=torch.randn(1, 4, n, length, generator=g),
        C=torch.randn(1, 4, n, length, generator=g),
        D=torch.ones(dim),
        delta_bias=torch.full((dim,), -2.0),
    )


def run_scan(args: dict, device: str, backend: str) -> tuple[float, torch.Tensor, list[torch.Tensor]]:
    leaves = {k: v.to(device).requires_grad_() for k, v in args.items()}
    dev = torch.device(device)
    out_grad = torch.linspace(-1, 1, args["u"].numel()).reshape(args["u"].shape).to(device)

    def go():
        y = ss.selective_scan(**leaves, delta_softplus=True, backend=backend)
        y.backward(out_grad)
        return y

    seconds, y = timed(go, dev)
    return seconds, y.detach().cpu(), [leaves[k].grad.cpu() for k in args]


def part_scan(device: torch.device) -> None:
    print("## 1. selective scan: mamba-ssm kernel vs our chunked scan")
    if device.type != "cuda" or not ss.mamba_available():
        print(
            f"SKIPPED: mamba-ssm {'imports' if ss.mamba_available() else 'does not import'}, "
            f"device {device}; "
            f"this part needs both (pip install mamba-ssm on a CUDA machine).\n"
        )
        return
    print("| shape | L | mamba f+b ms | ours CUDA f+b ms | ours CPU f+b ms | max|Δy| | max|Δgrad| |")
    print("|---|---|---|---|---|---|---|")
    for name, (d_in, n) in {"small": (24, 4), "full": (64, 16)}.items():
        for side in (64, 256):
            args = scan_inputs(d_in, n, side * side)
            run_scan(args, "cuda", "mamba")  # warm-up / compile
            t_m, y_m, g_m = run_scan(args, "cuda", "mamba")
            t_g, y_g, g_g = run_scan(args, "cuda", "chunked")
            t_c, y_c, g_c = (
                run_scan(args, "cpu", "chunked")
                if side == 64 or name == "small"
                else (float("nan"), y_g, g_g)
            )
            dy = max((y_m - y_c).abs().max().item(), (y_m - y_g).abs().max().item())
            dg = max((a - b).abs().max().item() for g in (g_c, g_g) for a, b in zip(g_m, g, strict=True))
            print(
                f"| {name} | {side}² | {t_m * 1e3:.1f} | {t_g * 1e3:.1f} | {t_c * 1e3:.1f} "
                f"| {dy:.1e} | {dg:.1e} |",
                flush=True,
            )
    print()


def part_train(device: torch.device, size: int) -> None:
    print(f"## 2. full: Phase-II training step (joint part) at {size}², batch 1")
    restorer = UnfoldLDM(config="full", phase=2)
    restorer.setup_training(device)
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(1, 3, size, size, generator=g).to(device)
    lq = (0.5 * gt).clamp(0, 1)
    restorer.training_step(lq[..., :64, :64], gt[..., :64, :64], 90, 100)["loss"].backward()  # warm-up
    for p in restorer.net.parameters():
        p.grad = None

    def step():
        losses = restorer.training_step(lq, gt, 90, 100)
        losses["loss"].backward()
        return losses

    with PeakMemory(device) as memory:
        seconds, losses = timed(step, device)
    finite = all(torch.isfinite(p.grad).all() for p in restorer.net.parameters() if p.grad is not None)
    print(
        f"forward+backward {seconds:.2f} s, peak {memory.peak_mb:.0f} MB, loss {losses['loss'].item():.4f}, "
        f"all gradients finite: {finite}\n"
    )


def part_latency(device: torch.device, height: int, width: int) -> None:
    print(f"## 3. inference latency at {width}×{height} (W×H)")
    print("| config | latency s | peak MB |\n|---|---|---|")
    for config in ("small", "full"):
        restorer = UnfoldLDM(config=config, random_init=True)
        restorer.load(device)
        meta = {"generator": torch.Generator().manual_seed(0)}
        restorer.restore(torch.rand(1, 3, 64, 64, device=device), meta)
        lq = torch.rand(1, 3, height, width).to(device)
        with PeakMemory(device) as memory:
            seconds, _ = timed(
                lambda r=restorer, x=lq, m=meta: r.restore(x, m),
                device,
                repeats=3 if device.type == "cuda" else 1,
            )
        print(f"| {config} | {seconds:.3f} | {memory.peak_mb:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cpu-size", type=int, default=128, help="training-step size on CPU")
    parser.add_argument("--full-size", action="store_true", help="256² and 600×400 on CPU too")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + f", torch {torch.__version__}, mamba-ssm available: {ss.mamba_available()}\n"
    )
    big = device.type == "cuda" or args.full_size
    part_scan(device)
    print(f"[{elapsed():.0f} s]")
    part_train(device, 256 if big else args.cpu_size)
    print(f"[{elapsed():.0f} s]")
    part_latency(device, *((400, 600) if big else (args.cpu_size, args.cpu_size * 3 // 2)))
    print(f"[{elapsed():.0f} s] done")


if __name__ == "__main__":
    main()
