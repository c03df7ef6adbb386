"""pyiqa's PSNR (RGB and luma), without pyiqa's per-call overhead.

pyiqa's ``psnr`` is ``10·log10(1 / (mean((x − y)²) + 1e-8))`` on [0,1] tensors. For the luma it
first converts *both* images with a full 3×3 colour matrix (``rgb2yiq``/``rgb2ycbcr`` over a
permuted copy) and keeps one channel; with the ``InferenceModel`` wrapper that is ~15–40 ms for a
768×512 image, against ~1–3 ms for the arithmetic itself.

* RGB: the very expression pyiqa evaluates, on the input dtype — bit-identical.
* Luma: only the Y column of pyiqa's matrix is applied — the same float32 products and sums
  (``x.permute(0,2,3,1) @ W[:, :1]``; for YCbCr also its ``+16`` and ``/255``), so the luma and
  the float32 mean are those pyiqa computes (bit-identical on Kodak24; a BLAS that ordered the
  3-term dot product differently would move the result by ~1e-9 dB). A float64 formulation was
  tried and rejected: it is *more* accurate than pyiqa's float32 mean by up to 2e-6 dB, which is
  more than the 1e-6 pin.
"""

from __future__ import annotations

import torch

#: Y columns of pyiqa's colour matrices (``color_util.rgb2yiq`` / ``rgb2ycbcr``), float32.
_Y_COLUMN = {
    "yiq": torch.tensor([[0.299], [0.587], [0.114]]),
    "ycbcr": torch.tensor([[65.481], [128.553], [24.966]]),
}
_EPS = 1e-8


def _luma(x: torch.Tensor, color_space: str) -> torch.Tensor:
    y = x.permute(0, 2, 3, 1) @ _Y_COLUMN[color_space].to(x)
    if color_space == "ycbcr":
        y = (y + 16) / 255.0
    return y.permute(0, 3, 1, 2)


def psnr_cpu(out: torch.Tensor, gt: torch.Tensor, test_y_channel: bool = False,
             color_space: str = "yiq") -> torch.Tensor:
    """PSNR (dB, data range 1) of (B,C,H,W) tensors in [0,1], as pyiqa's ``psnr`` computes it."""
    if out.shape != gt.shape:
        raise ValueError(f"shapes differ: {tuple(out.shape)} vs {tuple(gt.shape)}")
    if test_y_channel and out.shape[1] == 3:
        out, gt = _luma(out, color_space.lower()), _luma(gt, color_space.lower())
    mse = torch.mean((out - gt) ** 2, dim=[1, 2, 3])
    return 10 * torch.log10(1.0 / (mse + _EPS))
