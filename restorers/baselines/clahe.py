"""Contrast-limited adaptive histogram equalisation (Zuiderveld 1994) through scikit-image.

``skimage.exposure.equalize_adapthist`` equalises the V channel of HSV for a colour image (hue
and saturation are kept), with contextual regions of ``kernel_size`` (default 1/8 of the height
by 1/8 of the width) and a clip limit normalised to [0,1] (default 0.01, skimage's). The input is
clipped to [0,1] first: the histogram is taken over that range.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from skimage.exposure import equalize_adapthist

from harness.api.options import Range
from harness.api.restorer import Restorer, register_restorer
from restorers.baselines._numpy import map_images


@register_restorer("clahe")
class CLAHE(Restorer):
    description = "CLAHE on the HSV value channel (scikit-image)"
    degradations = ("lowlight", "underwater", "haze")
    paper = ("Zuiderveld. Contrast limited adaptive histogram equalization. Graphics Gems IV, 1994 "
             "(after Pizer et al. 1987)")
    licence = "BSD-3-Clause (scikit-image); no weights"
    input_range = "RGB float [0,1] (clipped inside)"

    def __init__(self, clip_limit: Annotated[float, Range(0, 1, open_low=True)] = 0.01,
                 kernel_size: Annotated[int, Range(2, 4096)] | None = None,
                 nbins: Annotated[int, Range(2, 65536)] = 256):
        """
        Args:
            clip_limit: histogram clip limit in [0,1]; higher = more contrast.
            kernel_size: contextual region side in pixels, at most 4096 (skimage pads the image
                to a multiple of it: a huge value exhausts memory); ``None`` = 1/8 of each side.
            nbins: histogram bins.
        """
        super().__init__()
        if not 0 < clip_limit <= 1:
            raise ValueError(f"clahe: clip_limit must be in (0,1], got {clip_limit}")
        self.clip_limit, self.kernel_size, self.nbins = clip_limit, kernel_size, nbins

    def _enhance(self, image: np.ndarray) -> np.ndarray:
        return equalize_adapthist(np.clip(image, 0.0, 1.0), kernel_size=self.kernel_size,
                                  clip_limit=self.clip_limit, nbins=self.nbins)

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return map_images(lq, self._enhance)
