"""FFDNet (colour): fast and flexible denoising with a noise-level map input, KAIR weights.

Zhang, Zuo, Zhang. "FFDNet: Toward a Fast and Flexible Solution for CNN-based Image Denoising".
IEEE TIP 2018.

The image is split into four half-resolution sub-images (pixel unshuffle, paper §III-A), a
uniform noise-level map σ is concatenated as one more channel, 12 conv layers (96 channels)
denoise the sub-images and pixel shuffle puts them back. Odd sizes are replicate-padded to even
and cropped back, as KAIR's ``network_ffdnet.py`` does. Written from the paper and KAIR's
definition per the weights' SOURCE.txt; ``model`` keeps KAIR's Sequential layout so the published
keys load unchanged.

FFDNet is non-blind: it needs σ. Where it comes from is the ``sigma`` option, recorded in the
config:

* ``"task"`` (default): the σ the task knows (``meta["sigma"]``, 8-bit units; the AWGN tasks set
  it); for a task that does not know it, the ``estimator``;
* ``"estimate"``: always the estimator, even when the task knows σ;
* a number: that σ in 8-bit units for every image (e.g. ``25``).

The only estimator, ``wavelet_mad``, is scikit-image's ``estimate_sigma`` (Donoho & Johnstone's
robust median of the finest diagonal wavelet coefficients, σ = median|HH| / 0.6745), per image,
averaged over the three channels; it assumes white Gaussian noise.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from skimage.restoration import estimate_sigma
from torch import nn

from harness.api.options import Range
from harness.api.restorer import register_restorer
from harness.assets import Asset, AssetFile, register_asset
from restorers.baselines._pretrained import PretrainedNetwork

# A KAIR release asset; bytes taken from a third-party copy whose size matches the release file
# (zhengdihan/Unsupervised_denoising@dadd26a, model_zoo/ffdnet_color.pth), see SOURCE.txt.
FFDNET_WEIGHTS = register_asset(Asset(
    name="ffdnet",
    files=(AssetFile(
        "ffdnet_color.pth", "286f04f7e3a20254c067ba95efb5d3339f4fc8a09a365a93cd469184d4cdb279",
        "https://github.com/cszn/KAIR/releases/download/v1.0/ffdnet_color.pth",
        size=3411551),),
    description="KAIR FFDNet colour model (σ ∈ [0,75], noise-level map input)",
    licence="MIT (KAIR, Copyright 2019 Kai Zhang)",
    homepage="https://github.com/cszn/KAIR"))

SCALE = 2
ESTIMATORS = ("wavelet_mad",)


class FFDNet(nn.Module):
    """FFDNet (paper Fig. 1): unshuffle ×2 + σ map → conv+ReLU ×(depth−1) → conv → shuffle ×2."""

    def __init__(self, channels: int = 3, features: int = 96, depth: int = 12):
        super().__init__()
        inputs = channels * SCALE * SCALE + 1
        layers: list[nn.Module] = [nn.Conv2d(inputs, features, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, 1, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, channels * SCALE * SCALE, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x (B,C,H,W) in [0,1]; sigma (B,1,1,1) in the same units (σ/255 for 8-bit σ)."""
        height, width = x.shape[-2:]
        x = F.pad(x, (0, width % SCALE, 0, height % SCALE), mode="replicate")
        sub_images = F.pixel_unshuffle(x, SCALE)  # (B, 4C, H/2, W/2)
        noise_map = sigma.expand(-1, 1, *sub_images.shape[-2:])
        out = self.model(torch.cat([sub_images, noise_map], dim=1))
        return F.pixel_shuffle(out, SCALE)[..., :height, :width]


def estimate_noise_sigma(image: torch.Tensor) -> float:
    """σ of one (3,H,W) image in its own units, by the wavelet MAD estimator (module doc)."""
    array = image.detach().to("cpu", torch.float64).numpy().transpose(1, 2, 0)
    return float(estimate_sigma(array, channel_axis=-1, average_sigmas=True))


@register_restorer("ffdnet", "ffdnet-color", "cffdnet")
class FFDNetRestorer(PretrainedNetwork):
    description = "FFDNet colour (TIP 2018), KAIR weights; σ from the task, else estimated"
    degradations = ("noise",)
    paper = ("Zhang, Zuo, Zhang. FFDNet: Toward a Fast and Flexible Solution for CNN-based "
             "Image Denoising. IEEE TIP 2018")
    licence = "MIT (KAIR code and weights)"
    asset = FFDNET_WEIGHTS
    input_range = ("RGB float [0,1], NCHW, unclipped noisy input, plus σ/255 as a (B,1,1,1) "
                   "noise level")

    def __init__(self, sigma: Literal["task", "estimate"] | Annotated[float, Range(0, 255)] = "task",
                 estimator: Literal["wavelet_mad"] = "wavelet_mad"):
        """
        Args:
            sigma: ``"task"`` (the task's σ when known, else estimated), ``"estimate"``, or a
                number in 8-bit units (25 = σ 25/255).
            estimator: how σ is estimated when it is; only ``wavelet_mad`` (skimage
                ``estimate_sigma``) exists.
        """
        super().__init__()
        numeric = isinstance(sigma, (int, float)) and not isinstance(sigma, bool)
        if not numeric and sigma not in ("task", "estimate"):
            raise ValueError(f"ffdnet: sigma must be 'task', 'estimate' or a number in 8-bit "
                             f"units, got {sigma!r}")
        if numeric and not 0 <= float(sigma) <= 255:
            raise ValueError(f"ffdnet: sigma={sigma} is outside [0, 255] (8-bit units)")
        if estimator not in ESTIMATORS:
            raise ValueError(f"ffdnet: estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.sigma, self.estimator = sigma, estimator
        self._init_network()

    def build_network(self) -> nn.Module:
        return FFDNet()

    def noise_levels(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        """Per-image σ in [0,1] units, shape (B,1,1,1), following the ``sigma`` option."""
        if isinstance(self.sigma, (int, float)):
            values = [float(self.sigma) / 255.0] * lq.shape[0]
        elif self.sigma == "task" and meta.get("sigma") is not None:
            values = [float(meta["sigma"]) / 255.0] * lq.shape[0]
        else:
            values = [estimate_noise_sigma(image) for image in lq]
        return torch.tensor(values, dtype=lq.dtype, device=lq.device).view(-1, 1, 1, 1)

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return self.net(lq, self.noise_levels(lq, meta))
