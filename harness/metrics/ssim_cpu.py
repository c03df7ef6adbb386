"""pyiqa's SSIM, computed with separable float64 filtering for the CPU.

pyiqa's ``ssim`` (Wang et al.: 11×11 Gaussian σ=1.5, 'valid' filtering, ``relu`` on the contrast
term, mean over channels, inputs rounded to 8-bit levels) runs a full 2-D ``conv2d`` in float64,
which PyTorch's CPU backend has no fast kernel for: about 3 s for one 768×512 image on two cores.
The Gaussian window is separable, so the same sums are two 1-D correlations; done with
``scipy.ndimage`` in float64 they take a few tens of ms and agree with pyiqa to ~1e-9
(``tests/test_metrics.py`` and ``tests/test_metrics_fast.py`` pin the agreement, the latter on
real 8-bit images). On CUDA the runner uses pyiqa's own module.

Two details matter for exactness and speed:

* The 8-bit rounding of the luma happens, as in pyiqa, on the **input dtype** (float32 from the
  runner) and only then is the image cast to float64. Rounding a float64 luma instead moves the
  ≈0.1 % of pixels whose 0.299R+0.587G+0.114B lies on a .5 (float32 puts them on either side)
  and shifts SSIM-Y by up to ~3e-6 on Kodak24 — more than the pin allows.
* pyiqa's window is float32-rounded (its sum is 1 − 6.2e-9); the 1-D factor is scaled to the
  same sum (see :func:`_gaussian_1d`).
* The SSIM formula only needs σx² + σy², so ``x² + y²`` is filtered as one map: four filtered
  maps instead of five, stacked into a single array so each axis is one ``correlate1d`` call.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import torch

from harness.metrics.pyiqa_lean import install_lazy_pyiqa

install_lazy_pyiqa()  # importing pyiqa.archs.func_util must not pull in all of pyiqa
from pyiqa.archs.func_util import preprocess_rgb  # noqa: E402

_RADIUS = 5  # 11-tap window
_SIGMA = 1.5


def _gaussian_1d() -> np.ndarray:
    """The 1-D factor, scaled so that the 2-D window sums to what pyiqa's does.

    pyiqa builds ``fspecial(11, 1.5)`` in float64 and casts it to float32 before ``.to(X)``:
    its taps sum to 1 − 6.2e-9, not 1. That scalar is what moves SSIM (by ~5e-7 on Kodak24,
    through σ² = E[x²]·s − (μ·s)²); the zero-sum rest of the float32 rounding (≤ 2e-9 per tap)
    does not show at 1e-8.
    """
    x = np.arange(-_RADIUS, _RADIUS + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * _SIGMA**2))
    g = g / g.sum()
    h = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * _SIGMA**2))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    pyiqa_sum = (h / h.sum()).astype(np.float32).astype(np.float64).sum()
    return g * np.sqrt(pyiqa_sum)


_WINDOW = _gaussian_1d()


def _valid_filter(a: np.ndarray) -> np.ndarray:
    """Separable Gaussian over the last two axes, 'valid' part only."""
    a = ndi.correlate1d(a, _WINDOW, axis=-2, mode="constant")[..., _RADIUS:-_RADIUS, :]
    a = ndi.correlate1d(a, _WINDOW, axis=-1, mode="constant")
    return a[..., _RADIUS:-_RADIUS]


def _prepare(img: torch.Tensor, test_y_channel: bool, color_space: str) -> np.ndarray:
    """pyiqa's ``preprocess_rgb(x, test_y, 255, cs)`` on the input dtype, then float64."""
    x = img.detach().cpu()
    if not x.is_floating_point():
        x = x.float()
    return preprocess_rgb(x, test_y_channel, 255.0, color_space).to(torch.float64).numpy()


def ssim_cpu(out: torch.Tensor, gt: torch.Tensor, test_y_channel: bool,
             color_space: str = "yiq") -> torch.Tensor:
    """SSIM of (B,3,H,W) tensors in [0,1]; the same value as pyiqa's ``SSIM`` module."""
    data_range = 255.0
    x = _prepare(out, test_y_channel, color_space)
    y = _prepare(gt, test_y_channel, color_space)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu1, mu2, sq, xy = _valid_filter(np.stack([x, y, x * x + y * y, x * y]))
    mu1_mu2 = mu1 * mu2
    mu_sq = mu1 * mu1 + mu2 * mu2
    contrast = np.maximum((2 * (xy - mu1_mu2) + c2) / (sq - mu_sq + c2), 0.0)
    ssim_map = ((2 * mu1_mu2 + c1) / (mu_sq + c1)) * contrast
    return torch.from_numpy(ssim_map.mean(axis=(1, 2, 3)))
