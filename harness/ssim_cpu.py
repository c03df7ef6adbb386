"""pyiqa's SSIM, computed with separable float64 filtering for the CPU.

pyiqa's ``ssim`` (Wang et al.: 11×11 Gaussian σ=1.5, 'valid' filtering, ``relu`` on the contrast
term, mean over channels, inputs rounded to 8-bit levels) runs a full 2-D ``conv2d`` in float64,
which PyTorch's CPU backend has no fast kernel for: about 3 s for one 768×512 image on two cores.
The Gaussian window is separable, so the same sums are two 1-D correlations; done with
``scipy.ndimage`` in float64 they take ~0.1 s and agree with pyiqa to ~1e-9
(``tests/test_metrics.py`` pins the agreement). On CUDA the runner uses pyiqa's own module.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import torch
from pyiqa.archs.func_util import preprocess_rgb

_RADIUS = 5  # 11-tap window
_SIGMA = 1.5


def _gaussian_1d() -> np.ndarray:
    x = np.arange(-_RADIUS, _RADIUS + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * _SIGMA**2))
    return g / g.sum()


_WINDOW = _gaussian_1d()


def _valid_filter(a: np.ndarray) -> np.ndarray:
    a = ndi.correlate1d(a, _WINDOW, axis=-2, mode="constant")
    a = ndi.correlate1d(a, _WINDOW, axis=-1, mode="constant")
    return a[..., _RADIUS:-_RADIUS, _RADIUS:-_RADIUS]


def ssim_cpu(out: torch.Tensor, gt: torch.Tensor, test_y_channel: bool,
             color_space: str = "yiq") -> torch.Tensor:
    """SSIM of (B,3,H,W) tensors in [0,1]; the same value as pyiqa's ``SSIM`` module."""
    data_range = 255.0
    x = preprocess_rgb(out.double().cpu(), test_y_channel, data_range, color_space).numpy()
    y = preprocess_rgb(gt.double().cpu(), test_y_channel, data_range, color_space).numpy()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu1, mu2 = _valid_filter(x), _valid_filter(y)
    sigma1 = _valid_filter(x * x) - mu1**2
    sigma2 = _valid_filter(y * y) - mu2**2
    sigma12 = _valid_filter(x * y) - mu1 * mu2
    contrast = np.maximum((2 * sigma12 + c2) / (sigma1 + sigma2 + c2), 0.0)
    ssim_map = ((2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1)) * contrast
    return torch.from_numpy(ssim_map.mean(axis=(1, 2, 3)))
