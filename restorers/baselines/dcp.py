"""Single-image dehazing with the dark channel prior (He, Sun, Tang, CVPR 2009 / TPAMI 2011),
transmission refined with the guided filter (He, Sun, Tang, ECCV 2010) instead of the original
soft matting, as the authors themselves do in the guided-filter paper.

Haze model I = J·t + A(1 − t). Steps:

1. dark channel: min over R,G,B then a ``patch``×``patch`` minimum filter (15, the paper's);
2. atmospheric light A: among the brightest 0.1 % pixels of the dark channel, the input pixel of
   highest intensity (R+G+B) — the paper's rule (no averaging);
3. coarse transmission t̃ = 1 − ω · dark_channel(I / A), ω = 0.95 keeps a little haze for depth;
4. refinement: guided filter of t̃ with the grey input as guide, radius ``gf_radius`` (60 in the
   guided-filter paper for ~600×400 images) and ε = 1e-4 (also the paper's), here capped at a
   quarter of the shorter image side so small inputs are not filtered with one window;
5. recovery J = (I − A) / max(t, t0) + A, t0 = 0.1.

The input is clipped to [0,1] (A and the dark channel are order statistics of intensities);
the output is clipped by the base class.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from scipy.ndimage import minimum_filter

from harness.api.options import Range
from harness.api.restorer import Restorer, register_restorer
from restorers.baselines._guided_filter import guided_filter
from restorers.baselines._numpy import luminance, map_images


def dark_channel(image: np.ndarray, patch: int) -> np.ndarray:
    """min over channels, then a patch×patch minimum filter (border: nearest pixel)."""
    return minimum_filter(image.min(axis=-1), size=patch, mode="nearest")


def atmospheric_light(image: np.ndarray, dark: np.ndarray, top_fraction: float = 1e-3) -> np.ndarray:
    """A (3,): the brightest input pixel among the top ``top_fraction`` of the dark channel."""
    count = max(1, int(round(dark.size * top_fraction)))
    candidates = np.argpartition(dark.ravel(), -count)[-count:]
    pixels = image.reshape(-1, 3)[candidates]
    return pixels[np.argmax(pixels.sum(axis=1))]


@register_restorer("dcp", "dark-channel-prior")
class DarkChannelPrior(Restorer):
    description = "Dark channel prior dehazing, guided-filter-refined transmission"
    degradations = ("haze",)
    paper = ("He, Sun, Tang. Single image haze removal using dark channel prior. CVPR 2009 / TPAMI 2011; "
             "refinement: He, Sun, Tang. Guided image filtering. ECCV 2010")
    licence = "Apache-2.0 (this re-implementation); no weights"
    input_range = "RGB float [0,1] (clipped inside)"

    def __init__(self, patch: Annotated[int, Range(1, 255)] = 15,
                 omega: Annotated[float, Range(0, 1, open_low=True)] = 0.95,
                 t0: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.1,
                 gf_radius: Annotated[int, Range(1, None)] = 60,
                 gf_eps: Annotated[float, Range(0, open_low=True)] = 1e-4):
        """
        Args:
            patch: side of the dark-channel minimum filter, pixels.
            omega: fraction of haze removed (1 = all).
            t0: lower bound of the transmission in the recovery.
            gf_radius: guided-filter radius (capped at min(H,W)//4).
            gf_eps: guided-filter regularisation ε.
        """
        super().__init__()
        if patch < 1 or not 0 < omega <= 1 or not 0 < t0 < 1 or gf_radius < 1 or gf_eps <= 0:
            raise ValueError("dcp: need patch >= 1, 0 < omega <= 1, 0 < t0 < 1, gf_radius >= 1, gf_eps > 0")
        self.patch, self.omega, self.t0 = patch, omega, t0
        self.gf_radius, self.gf_eps = gf_radius, gf_eps

    def transmission(self, image: np.ndarray, light: np.ndarray) -> np.ndarray:
        """Refined transmission t (H,W)."""
        coarse = 1.0 - self.omega * dark_channel(image / np.maximum(light, 1e-6), self.patch)
        radius = max(1, min(self.gf_radius, min(image.shape[:2]) // 4))
        return guided_filter(luminance(image), coarse, radius, self.gf_eps)

    def _dehaze(self, image: np.ndarray) -> np.ndarray:
        image = np.clip(image, 0.0, 1.0)
        light = atmospheric_light(image, dark_channel(image, self.patch))
        t = np.maximum(self.transmission(image, light), self.t0)[..., None]
        return (image - light) / t + light

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return map_images(lq, self._dehaze)
