"""Non-local means denoising (Buades et al., CVPR 2005) through scikit-image.

The noise level is the task's known sigma when it provides one (``meta['sigma']``, AWGN tasks)
and ``sigma='task'``; otherwise it is estimated per image with skimage's wavelet
``estimate_sigma`` (Donoho's MAD estimator). Which one was used is part of the config.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import torch
from skimage.restoration import denoise_nl_means, estimate_sigma

from harness.api.options import Range
from harness.api.restorer import Restorer, register_restorer


@register_restorer("nlm", "non-local-means")
class NonLocalMeans(Restorer):
    description = "Non-local means (scikit-image), sigma from the task or estimated"
    degradations = ("noise",)
    paper = "Buades, Coll, Morel. A non-local algorithm for image denoising. CVPR 2005"
    licence = "BSD-3-Clause (scikit-image)"
    input_range = "RGB float, nominally [0,1]; unclipped noisy values accepted (not clipped)"

    def __init__(self, sigma: Literal["task", "estimate"] | Annotated[float, Range(0, 255)] = "task",
                 h_factor: Annotated[float, Range(0, open_low=True)] = 0.8,
                 patch_size: Annotated[int, Range(1, 64)] = 5,
                 patch_distance: Annotated[int, Range(1, 64)] = 6):
        """
        Args:
            sigma: ``"task"`` (the task's known sigma, else estimated), ``"estimate"``, or a
                number in 8-bit units (25 = σ 25/255).
            h_factor: filter strength h = h_factor · σ (skimage's advice for ``fast_mode``).
            patch_size: side of the compared patches, pixels.
            patch_distance: search radius around each pixel, pixels.
        """
        super().__init__()
        self.sigma, self.h_factor = sigma, h_factor
        self.patch_size, self.patch_distance = patch_size, patch_distance

    def _sigma(self, image: np.ndarray, meta: dict[str, Any]) -> float:
        if isinstance(self.sigma, (int, float)):
            return float(self.sigma) / 255.0
        if self.sigma == "task" and meta.get("sigma") is not None:
            return float(meta["sigma"]) / 255.0
        return float(np.mean(estimate_sigma(image, channel_axis=-1)))

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        outputs = []
        for image in lq.detach().cpu().double().numpy().transpose(0, 2, 3, 1):
            sigma = self._sigma(image, meta)
            outputs.append(denoise_nl_means(image, h=self.h_factor * sigma, sigma=sigma,
                                            patch_size=self.patch_size,
                                            patch_distance=self.patch_distance,
                                            fast_mode=True, channel_axis=-1))
        out = torch.from_numpy(np.stack(outputs).transpose(0, 3, 1, 2).copy())
        return out.to(lq.device, lq.dtype)
