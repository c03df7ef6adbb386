"""Richardson–Lucy deconvolution (scikit-image) with a Gaussian PSF whose σ is estimated.

The PSF is Gaussian with σ estimated once per image from the luma by the re-blur gradient-ratio
estimator (Zhuo & Sim 2011; ``restorers/baselines/_psf.py``), unless ``psf_sigma`` fixes it.

``skimage.restoration.richardson_lucy`` convolves with zero padding ("same" mode), which darkens
and rings at the border; each channel is therefore reflect-padded by ``3·(kernel radius)`` first
and cropped back. RL needs a non-negative image, so the input is clipped to [0,1]. RL has no
regularisation: its iteration count is the regulariser (more iterations = sharper and noisier);
``num_iter`` = 30 is our default: on 256×256 crops of kodim01/05/19/23 blurred with σ 1.5 and 2.5
plus N(0, 0.005), 10 / 20 / 40 iterations gave +0.6…1.6 / +0.8…2.4 / +1.0…3.0 dB over the input;
more iterations amplify noise on noisier inputs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import torch
from skimage.restoration import richardson_lucy

from harness.api.options import Range
from harness.api.restorer import Restorer, register_restorer
from restorers.baselines._numpy import map_images
from restorers.baselines._psf import PSF_ESTIMATOR, check_psf_sigma, psf_for


@register_restorer("richardson-lucy", "rl")
class RichardsonLucy(Restorer):
    description = "Richardson-Lucy deconvolution (scikit-image), Gaussian PSF with estimated sigma"
    degradations = ("blur",)
    paper = ("Richardson, JOSA 1972; Lucy, Astronomical Journal 1974; PSF width: Zhuo & Sim, "
             "Pattern Recognition 2011")
    licence = "BSD-3-Clause (scikit-image); no weights"
    input_range = "RGB float [0,1] (clipped inside; RL needs non-negative data)"

    def __init__(self,
                 psf_sigma: Literal["estimate"] | Annotated[float, Range(0, 50, open_low=True)] = "estimate",
                 num_iter: Annotated[int, Range(1, 10000)] = 30):
        """
        Args:
            psf_sigma: ``"estimate"`` (per image) or a fixed Gaussian PSF σ in pixels.
            num_iter: RL iterations.
        """
        super().__init__()
        check_psf_sigma("richardson-lucy", psf_sigma)
        if num_iter < 1:
            raise ValueError(f"richardson-lucy: num_iter must be >= 1, got {num_iter}")
        self.psf_sigma, self.num_iter = psf_sigma, num_iter
        self._config["psf_estimator"] = PSF_ESTIMATOR

    def _deblur(self, image: np.ndarray) -> np.ndarray:
        image = np.clip(image, 0.0, 1.0)
        height, width = image.shape[:2]
        psf = psf_for(image, self.psf_sigma)
        pad = 3 * (psf.shape[0] // 2)
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
        channels = [richardson_lucy(padded[..., c], psf, num_iter=self.num_iter, clip=False)
                    for c in range(3)]
        return np.stack(channels, axis=-1)[pad:pad + height, pad:pad + width]

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return map_images(lq, self._deblur)
