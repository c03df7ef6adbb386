"""pyiqa's PSNR (RGB and luma) on the CPU, the same on every worker, thread count and CPU.

pyiqa's ``psnr`` is ``10·log10(1 / (mean((x − y)²) + 1e-8))`` on [0,1] tensors; for the luma it
first converts both images with a full 3×3 colour matrix (``rgb2yiq``/``rgb2ycbcr``) and keeps one
channel. pyiqa evaluates all of it in float32, and float32 is where its result stops being a
property of the images: ATen splits the float32 sum per thread (a local run with 2 threads and a
Ray worker with 1 gave 13.559062958 vs 13.559063911 dB on the same image), and the luma goes
through an MKL SGEMM whose kernel, and so rounding, depends on the CPU.

Here the same formula is evaluated in float64 from the float32 inputs: the luma as the weighted
sum of the channels with pyiqa's float32 weights (exact products; for YCbCr also its ``+16`` and
``/255``), the squared differences summed by numpy's pairwise summation, which is single-threaded
and has a fixed order. The result depends only on the two images. It differs from pyiqa's float32
value by no more than float32 rounding allows (about 5e-5 dB at most on Kodak24, typically 1e-6;
``tests/test_metrics_fast.py`` holds both to a bound derived from float32 rounding,
``tests/metric_bounds.py``), so the two are not bit-identical — pyiqa's is the one with the error.
It is also fast: ~5 ms for a 768×512 image, against 15–40 ms for pyiqa's ``InferenceModel`` path.
"""

from __future__ import annotations

import numpy as np
import torch

#: Y rows of pyiqa's colour matrices (``color_util.rgb2yiq`` / ``rgb2ycbcr``), float32 → float64.
_Y_WEIGHTS = {
    "yiq": np.array([0.299, 0.587, 0.114], dtype=np.float32).astype(np.float64),
    "ycbcr": np.array([65.481, 128.553, 24.966], dtype=np.float32).astype(np.float64),
}
_EPS = 1e-8


def _as_float64(x: torch.Tensor, test_y_channel: bool, color_space: str) -> np.ndarray:
    """(B,C,H,W) → float64 array; the luma (B,1,H,W) when asked for and C is 3."""
    a = x.detach().cpu().numpy().astype(np.float64)
    if test_y_channel and a.shape[1] == 3:
        w = _Y_WEIGHTS[color_space]
        y = a[:, 0:1] * w[0] + a[:, 1:2] * w[1] + a[:, 2:3] * w[2]
        a = (y + 16.0) / 255.0 if color_space == "ycbcr" else y
    return a


def psnr_cpu(out: torch.Tensor, gt: torch.Tensor, test_y_channel: bool = False,
             color_space: str = "yiq") -> torch.Tensor:
    """PSNR (dB, data range 1) of (B,C,H,W) tensors in [0,1], pyiqa's formula in float64."""
    if out.shape != gt.shape:
        raise ValueError(f"shapes differ: {tuple(out.shape)} vs {tuple(gt.shape)}")
    space = color_space.lower()
    diff = _as_float64(out, test_y_channel, space) - _as_float64(gt, test_y_channel, space)
    flat = (diff * diff).reshape(diff.shape[0], -1)
    mse = np.array([np.sum(row) / row.size for row in flat])  # pairwise, one thread, fixed order
    return torch.from_numpy(10 * np.log10(1.0 / (mse + _EPS)))
