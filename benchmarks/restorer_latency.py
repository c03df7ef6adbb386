"""Latency and peak memory of every registered restorer on one image size.

Each restorer is built with its defaults, loaded (weights from the asset cache), warmed up once,
then timed over ``--repeats`` calls of ``restore`` exactly as the runner times it
(``perf_counter``, CUDA-synchronised; peak memory = CUDA max allocated or process RSS peak).
The input is scikit-image's astronaut photo, darkened and noised a little, so that estimators
inside classical methods see a natural image.

Usage::

    BENCH_HOME=... python benchmarks/restorer_latency.py [--size 512] [--device cpu] [--skip cbm3d]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from harness.api.restorer import RESTORERS, build_restorer
from harness.assets.cache import AssetCorruptError, AssetMissingError
from harness.run.runner import resolve_device
from harness.run.timing import PeakMemory, sync


def test_image(size: int) -> torch.Tensor:
    from skimage import data

    image = torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1)[None].float() / 255.0
    image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(0)) * (10 / 255)
    return (0.6 * image + noise).clamp(0, 1)


def measure(name: str, lq: torch.Tensor, device: torch.device, repeats: int) -> dict:
    restorer = build_restorer(name)
    try:
        restorer.load(device)
    except (AssetMissingError, AssetCorruptError) as exc:
        return {"restorer": name, "median_ms": "missing weights", "peak_mb": "", "note": str(exc)[:60]}
    lq = lq.to(device)
    meta = {"sigma": 10.0}
    restorer.restore(lq, meta)  # warm-up
    sync(device)
    times, peaks = [], []
    for _ in range(repeats):
        with PeakMemory(device) as memory:
            start = time.perf_counter()
            restorer.restore(lq, meta)
            sync(device)
            times.append((time.perf_counter() - start) * 1000)
        peaks.append(memory.peak_mb)
    return {"restorer": name, "median_ms": f"{statistics.median(times):.1f}",
            "peak_mb": f"{max(peaks):.0f}", "note": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", action="append", default=[], help="restorer to leave out")
    args = parser.parse_args()
    device = resolve_device(args.device)
    lq = test_image(args.size)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"input 1x3x{args.size}x{args.size}\n")
    print("| restorer | median ms | peak MB | note |\n|---|---|---|---|")
    for name in RESTORERS.names():
        if name in args.skip:
            continue
        row = measure(name, lq, device, args.repeats)
        print(f"| {row['restorer']} | {row['median_ms']} | {row['peak_mb']} | {row['note']} |",
              flush=True)


if __name__ == "__main__":
    main()
