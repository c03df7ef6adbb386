"""LD-RPS precision and speed check for a GPU session (≤ 8 min), which also runs on the CPU.

Writes a random SD-like pipeline with SD2.1's real VAE widths (128, 256, 512, 512) — the decoder
dominates a guided step, so its cost is realistic — and a small UNet, then restores one image with
``recurrences=0`` in fp32, bf16 and (CUDA only) fp16, plus fp32 with decoder gradient
checkpointing, and the reference-order loop of ``benchmarks/ldrps_step.py`` in fp32 from the same
initial state. Prints, per row: seconds per image, median ms per step, the component breakdown,
peak memory, and the largest output difference from fp32 (half precision changes the numbers;
it must stay small and finite). Rows are skipped once ``--budget-s`` is spent.

    PYTHONPATH=$PWD python benchmarks/ldrps_gpu.py --device cuda          # ~2-4 min on one GPU
    PYTHONPATH=$PWD python benchmarks/ldrps_gpu.py --device cpu           # small defaults
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from restorers.ldrps.restorer import LDRPS
from restorers.ldrps.tiny_pipeline import write_tiny_pipeline


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=None, help="default 512 on CUDA, 64 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="default 30 on CUDA, 6 on CPU")
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--model", default=None, help="a real SD folder instead of the random one")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    size = args.size or (512 if cuda else 64)
    steps = args.steps or (30 if cuda else 6)
    started = time.perf_counter()
    tmp = tempfile.TemporaryDirectory()
    vae = (128, 256, 512, 512) if cuda else (32, 64, 128, 128)
    model = args.model or str(write_tiny_pipeline(Path(tmp.name) / "gpu", unet_channels=(64, 128),
                                                  vae_channels=vae))
    base = dict(model=model, size=size, steps=steps, recurrences=0, preset="lowlight",
                prompt="the low light", record=str(Path(tmp.name) / "rec"))
    image = torch.rand(3, size // 2, size // 2, generator=torch.Generator().manual_seed(0)) * 0.5
    meta = {"seed": 0, "sample_id": "gpu"}
    rows = [("fp32", {}), ("bf16", {"dtype": "bf16"})]
    if cuda:
        rows.append(("fp16", {"dtype": "fp16"}))
    rows.append(("fp32 + grad checkpointing", {"gradient_checkpointing": True}))
    print(f"device {device}  size {size}  steps {steps}  VAE widths {vae}  model {model}")
    reference = None
    init = None
    for label, extra in rows:
        if time.perf_counter() - started > args.budget_s:
            print(f"{label:<28} skipped: budget of {args.budget_s:.0f} s spent")
            continue
        r = LDRPS(**{**base, **extra, "record": base["record"] if init is None else None})
        r.load(device)
        r.warm_up(image[None].to(device), meta)
        r.inject_state = init
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        out = r.restore(image[None].to(device), dict(meta)).cpu()
        if init is None:
            init = torch.load(Path(base["record"]) / "gpu.pt", weights_only=False)["init"]
        stats = r.last_stats
        diff = "" if reference is None else f"  max|out-fp32|={(out - reference).abs().max().item():.2e}"
        reference = out if reference is None else reference
        parts = " ".join(f"{k}={1000 * v / stats['steps']:.1f}"
                         for k, v in sorted(stats["breakdown_s"].items()))
        step_ms = 1000 * statistics.median(stats["step_s"])
        print(f"{label:<28} {stats['image_s']:7.2f} s/image  {step_ms:7.1f} "
              f"ms/step (median)  [{parts}]  peak {peak_mb(device):.0f} MB  "
              f"finite={bool(torch.isfinite(out).all())}{diff}")
        if label == "fp32" and time.perf_counter() - started < args.budget_s:
            from benchmarks.ldrps_step import reference_order

            start = time.perf_counter()
            ref_out, parts_ref, ref_steps = reference_order(r, image.to(device), init_to(init, device),
                                                            base["prompt"])
            if cuda:
                torch.cuda.synchronize(device)
            t_ref = time.perf_counter() - start
            gap = (ref_out.cpu() - out[0]).abs().max().item()
            print(f"{'reference order fp32':<28} {t_ref:7.2f} s/image  "
                  f"ratio {t_ref / stats['image_s']:.2f}x  max|ref-ours|={gap:.2e}")
        del r
        if cuda:
            torch.cuda.empty_cache()
    print(f"total {time.perf_counter() - started:.0f} s")


def init_to(init: dict, device: torch.device) -> dict:
    out = {}
    for key, value in init.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device)
        elif isinstance(value, list):
            out[key] = [v.to(device) for v in value]
        else:
            out[key] = value
    return out


if __name__ == "__main__":
    main()
