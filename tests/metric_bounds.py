"""Float32 rounding-error bounds for the PSNR comparisons with pyiqa.

pyiqa's PSNR and ``harness.metrics.psnr_cpu`` both compute in float32, and on a given CPU they need not
round the same way: the luma goes through an MKL SGEMM, and MKL picks its kernel from CPUID
(``ATEN_CPU_CAPABILITY`` does not reach it) and from the matrix shape (pyiqa multiplies by the
whole 3×3 colour matrix, ``psnr_cpu`` by its Y column). So the tests compare each side with a
float64 evaluation of the same formula (the float32 inputs and float32 weights, computed
exactly enough) and require it to lie within a bound derived from float32 rounding alone.

Notation: u = 2⁻²⁴ ≈ 5.96e-8 is float32's unit roundoff (half of
``torch.finfo(torch.float32).eps``); γₙ = n·u/(1 − n·u) bounds the relative error of n
roundings in a row (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1), and of a
sum or dot product of n non-negative terms in any order, with or without FMA.
"""

from __future__ import annotations

import math

import numpy as np
import torch

U32 = 2.0**-24

#: Float32 weights of pyiqa's luma (``rgb2yiq`` / ``rgb2ycbcr``, first column).
LUMA_WEIGHTS = {"yiq": (0.299, 0.587, 0.114), "ycbcr": (65.481, 128.553, 24.966)}

#: Roundings between the float32 RGB inputs and the float32 luma: the 3-term dot product (any
#: order, FMA or not: γ₃), then for YCbCr ``+ 16`` and ``/ 255`` (two more). All terms are ≥ 0,
#: so the bound is relative to the luma itself.
LUMA_ROUNDINGS = {"rgb": 0, "yiq": 3, "ycbcr": 5}


def gamma(n: int, u: float = U32) -> float:
    return n * u / (1 - n * u)


def luma64(x: torch.Tensor, space: str) -> np.ndarray:
    """The luma of a (1,3,H,W) float32 tensor in float64: float32 weights, exact products."""
    rgb = x[0].double().numpy()
    if space == "rgb":
        return rgb
    w = np.array(LUMA_WEIGHTS[space], dtype=np.float32).astype(np.float64)
    y = np.tensordot(w, rgb, axes=1)[None]
    return (y + 16.0) / 255.0 if space == "ycbcr" else y


def sum_roundings(n_terms: int) -> int:
    """Roundings on any one term's path through ATen's float32 sum (``SumKernel.cpp``).

    ``cascade_sum`` splits the terms into 4 ILP rows of vectors (≥ 8 lanes, so ≤ N/32 rows)
    and adds the rows in ``multi_row_sum``: 4 levels of running sums, each level flushing into
    the next after ``2**level_power`` additions, ``level_power = max(4, ceil(log2 rows) // 4)``
    = 4 up to 2¹⁹ rows; the top level gets one partial per 16³ rows. Then 3 additions fold the
    levels, ≤ 6 the ILP rows and their tail, ≤ 15 the scalar tail, 16 the lanes, and one per
    further thread partial.
    """
    rows = math.ceil(n_terms / 32)
    if rows > 2**19:
        raise ValueError("derived for at most 2**24 terms")
    return 16 * 3 + math.ceil(rows / 16**3) + 3 + 6 + 15 + 16 + (torch.get_num_threads() - 1)


def psnr64_and_bound(out: torch.Tensor, gt: torch.Tensor, space: str) -> tuple[float, float]:
    """pyiqa's PSNR of float32 (1,3,H,W) tensors evaluated in float64, and a bound (dB) on
    how far any float32 evaluation of ``10·log10(1 / (mean((y_out − y_gt)²) + 1e-8))`` may be.

    Per pixel, each float32 luma is within e_y = γₖ·y (k = :data:`LUMA_ROUNDINGS`), so the float32
    difference d̂ = fl(ŷ_out − ŷ_gt) is within e = e_y,out + e_y,gt + u·(|d| + e_y,out + e_y,gt) of
    d, and fl(d̂²) within 2|d|e + e² + u·(|d| + e)² of d². The sum of these N non-negative
    terms adds γ_D (D = :func:`sum_roundings`) of the sum, ``/N`` one more rounding; so the
    float32 mse has relative error ≤ R. Then ``+1e-8`` and ``1/x`` (2u), log10 (≤ 2 ulp, the
    glibc bound for ``log10f``; SLEEF's is 1 ulp: ≤ 4u·|log10|) and ``×10`` (½ ulp ≤ u·|P|):
    |P̂ − P| ≤ 10/ln10·(R + 2u) + 4u·|P| + u·|P| to first order in u (×1.001 for the rest).
    The float64 reference itself is good to ~1e-13 dB.
    """
    y_out, y_gt = luma64(out, space), luma64(gt, space)
    d = y_out - y_gt
    e_y = gamma(LUMA_ROUNDINGS[space]) * (y_out + y_gt)
    e = e_y + U32 * (np.abs(d) + e_y)
    sq = d * d
    err_sq = 2 * np.abs(d) * e + e * e + U32 * (np.abs(d) + e) ** 2
    total, err_total = float(sq.sum()), float(err_sq.sum())
    rel = (err_total + gamma(sum_roundings(d.size)) * (total + err_total)) / total + U32
    mse = total / d.size
    psnr = 10 * math.log10(1.0 / (mse + 1e-8))
    bound = 10 / math.log(10) * (rel + 2 * U32) + 5 * U32 * abs(psnr)
    return psnr, 1.001 * bound
