"""Underwater colour correction: red-channel compensation + Gray-World white balance, the first
("white balancing") stage of Ancuti, Ancuti, De Vleeschouwer, Bekaert, "Color balance and fusion
for underwater image enhancement", IEEE TIP 27(1), 2018 (extending their CVPR 2012 fusion method).
The paper's second stage — gamma/sharpened inputs fused with Laplacian pyramids — is *not*
included; this is the colour-balance baseline only.

Red is attenuated first under water, so before Gray-World (which would otherwise blow up the
noise of a nearly empty red channel) red is compensated from the green channel (Eq. 4):

    I_rc(x) = I_r(x) + α · (Ī_g − Ī_r) · (1 − I_r(x)) · I_g(x),   α = 1,

with Ī the channel means over the image. ``compensate_blue`` adds the paper's analogous blue
compensation for turbid/plankton-rich water (off by default, as in the paper's default case).
Gray-World then scales each channel so its mean equals the mean of the three channel means
(a choice: it keeps the overall brightness rather than mapping the mean to 0.5). Input clipped
to [0,1].
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch

from harness.api.options import Range
from harness.api.restorer import Restorer, register_restorer
from restorers.baselines._numpy import map_images


def compensate(image: np.ndarray, channel: int, alpha: float) -> np.ndarray:
    """Eq. 4 of Ancuti et al. 2018: lift ``channel`` from green where it is weak."""
    out = image.copy()
    weak, green = image[..., channel], image[..., 1]
    out[..., channel] = weak + alpha * (green.mean() - weak.mean()) * (1.0 - weak) * green
    return out


def gray_world(image: np.ndarray) -> np.ndarray:
    """Scale each channel so that its mean equals the mean grey level."""
    means = image.reshape(-1, 3).mean(axis=0)
    return image * (means.mean() / np.maximum(means, 1e-6))


@register_restorer("underwater-cb", "ancuti-wb")
class UnderwaterColorBalance(Restorer):
    description = "Underwater colour balance: red compensation from green + Gray-World (Ancuti 2018)"
    degradations = ("underwater",)
    paper = ("Ancuti, Ancuti, De Vleeschouwer, Bekaert. Color balance and fusion for underwater image "
             "enhancement. IEEE TIP 27(1), 2018 (white-balancing stage only)")
    licence = "Apache-2.0 (this re-implementation); no weights"
    input_range = "RGB float [0,1] (clipped inside)"

    def __init__(self, alpha: Annotated[float, Range(0, None)] = 1.0, compensate_blue: bool = False):
        """
        Args:
            alpha: strength of the compensation (the paper uses 1).
            compensate_blue: also compensate blue from green (turbid water).
        """
        super().__init__()
        if alpha < 0:
            raise ValueError(f"underwater-cb: alpha must be >= 0, got {alpha}")
        self.alpha, self.compensate_blue = alpha, compensate_blue

    def _balance(self, image: np.ndarray) -> np.ndarray:
        out = compensate(np.clip(image, 0.0, 1.0), 0, self.alpha)
        if self.compensate_blue:
            out = compensate(out, 2, self.alpha)
        return gray_world(out)

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return map_images(lq, self._balance)
