"""Gamma correction, the simplest low-light baseline: out = in^(1/γ) per RGB channel.

``gamma="auto"`` (default) picks γ per image so that the mean luma of the output is
``target_mean`` (0.5, mid-grey): γ = log(mean) / log(target) — the usual "adaptive gamma" baseline
of low-light papers; without it a fixed γ over- or under-brightens most of LOL. A number fixes γ
(2.2 = the display gamma). The power is applied to each RGB channel (hue is kept, saturation
drops a little as values rise), on the input clipped to [0,1] because a power of a negative value
is undefined. Choices the literature leaves open; written here so the numbers can be reproduced.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
import torch

from harness.api.options import Range
from harness.api.restorer import Restorer, register_restorer
from restorers.baselines._numpy import luminance, map_images

#: γ is kept in this range by ``auto`` (a black or saturated image would otherwise ask for ∞ / 0).
GAMMA_RANGE = (0.2, 10.0)


@register_restorer("gamma", "gamma-correction")
class GammaCorrection(Restorer):
    description = "Gamma correction in^(1/γ); γ fixed or chosen per image for mean luma 0.5"
    degradations = ("lowlight",)
    paper = "Classical power-law (gamma) intensity transform, e.g. Gonzalez & Woods, Digital Image Processing"
    licence = "Apache-2.0 (this repository); no weights"
    input_range = "RGB float [0,1] (clipped inside)"

    def __init__(self, gamma: Literal["auto"] | Annotated[float, Range(0, open_low=True)] = "auto",
                 target_mean: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 0.5):
        """
        Args:
            gamma: ``"auto"`` or a fixed γ > 0 (the output is ``in ** (1/γ)``).
            target_mean: the output mean luma ``auto`` aims at, in (0,1).
        """
        super().__init__()
        if not (gamma == "auto" or (isinstance(gamma, (int, float)) and gamma > 0)):
            raise ValueError(f"gamma: gamma must be 'auto' or a positive number, got {gamma!r}")
        if not 0 < target_mean < 1:
            raise ValueError(f"gamma: target_mean must be in (0,1), got {target_mean}")
        self.gamma, self.target_mean = gamma, target_mean

    def choose_gamma(self, image: np.ndarray) -> float:
        """γ for this image: fixed, or log(mean luma)/log(target) clamped to ``GAMMA_RANGE``."""
        if self.gamma != "auto":
            return float(self.gamma)
        mean = float(np.clip(luminance(image).mean(), 1e-4, 1 - 1e-4))
        return float(np.clip(math.log(mean) / math.log(self.target_mean), *GAMMA_RANGE))

    def _enhance(self, image: np.ndarray) -> np.ndarray:
        image = np.clip(image, 0.0, 1.0)
        return image ** (1.0 / self.choose_gamma(image))

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return map_images(lq, self._enhance)
