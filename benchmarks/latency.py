"""UnfoldLDM forward latency and peak memory (``small`` and ``full``) at 256² and 600×400.

Untrained weights (``random_init=true``): latency does not depend on the values. Each case is
warmed up on a 64² crop (as the runner does), then ``restore`` is timed ``--repeats`` times (best
reported); peak memory is the process RSS rise during the call on CPU, the allocator peak on
CUDA. Inference path: MGDA → E_cond + 3 diffusion steps → OCFormer, K = 3, whole image
(``--tile`` for the tiled path).

Usage::

    PYTHONPATH=. python benchmarks/latency.py [--device cpu] [--threads 2] [--configs small,full] [--tile 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _unfoldldm_common import PeakMemory, timed  # noqa: E402

from restorers.unfoldldm.restorer import UnfoldLDM, model_complexity  # noqa: E402

SIZES = {"256²": (256, 256), "600×400": (400, 600)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", default="small,full")
    parser.add_argument("--sizes", default="256²,600×400")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tile", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, threads {args.threads}, tile {args.tile}\n")
    print("| config | params | GMACs @256² | size (W×H) | latency s | peak MB |\n|---|---|---|---|---|---|")
    for config in args.configs.split(","):
        restorer = UnfoldLDM(config=config, random_init=True, tile=args.tile)
        restorer.load(device)
        complexity = model_complexity(config)
        meta = {"generator": torch.Generator().manual_seed(0)}
        restorer.restore(torch.rand(1, 3, 64, 64, device=device), meta)
        for label in args.sizes.split(","):
            height, width = SIZES[label]
            lq = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
            with PeakMemory(device) as memory:
                seconds, _ = timed(lambda r=restorer, x=lq, m=meta: r.restore(x, m), device, args.repeats)
            print(
                f"| {config} | {complexity['params'] / 1e6:.2f} M | {complexity['macs_256'] / 1e9:.1f} "
                f"| {label} | {seconds:.2f} | {memory.peak_mb:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
