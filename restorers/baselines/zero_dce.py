"""Zero-DCE: zero-reference deep curve estimation for low-light enhancement.

Guo, Li, Guo, Loy, Hou, Kwong, Cong. "Zero-Reference Deep Curve Estimation for Low-Light Image
Enhancement". CVPR 2020.

A 7-layer plain CNN (DCE-Net) predicts, per pixel and per RGB channel, the parameters of eight
quadratic light-enhancement curves LE(x) = x + α·x·(1 − x) (paper Eq. 1–4), applied one after the
other. Written here from the paper and the authors' ``Zero-DCE_code/model.py``
(``enhance_net_nopool``) as described in the weights' SOURCE.txt; module names equal the
checkpoint's keys (``e_conv1`` … ``e_conv7``), so the published file loads unchanged.

Test protocol of the authors' ``lowlight_test.py``: RGB /255, full image, no resizing; the
enhanced image after all eight iterations is the output (the 4-iteration intermediate is not).
Fully convolutional: any size, no padding needed.

**Subnormal weights.** The shipped weights hold 19,266 of its 79,416 parameters as subnormal floats
(below 1.2e-38). On x86 CPUs each operation on one takes a slow microcode path, so ``bench run``
flushes denormals (``torch.set_flush_denormal``, recorded as ``flush_denormal``) while it times;
see ``docs/latency.md``. Measured effect: 13.6 s → under 1 s per 256² image on one CPU thread.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.api.restorer import register_restorer
from harness.assets import Asset, AssetFile, register_asset
from restorers.baselines._pretrained import PretrainedNetwork

ZERO_DCE_WEIGHTS = register_asset(Asset(
    name="zero_dce",
    files=(AssetFile(
        "Epoch99.pth", "a4395acb874f320375d9704997cef874eaaaaa26a1777ceb29a92b70f74c3612",
        "https://raw.githubusercontent.com/Li-Chongyi/Zero-DCE/"
        "e0f4adc54d0f23348c4a9b84acc08fe8778d5bfd/Zero-DCE_code/snapshots/Epoch99.pth",
        size=320017),),
    description="Zero-DCE DCE-Net trained on SICE part 1 (authors' snapshot, epoch 99)",
    licence="CC BY-NC 4.0, academic research only (Zero-DCE README)",
    homepage="https://github.com/Li-Chongyi/Zero-DCE"))

N_CURVES = 8


class DCENet(nn.Module):
    """DCE-Net (paper Fig. 2): 7 convs, 32 channels, symmetric skip concatenations, tanh."""

    def __init__(self, channels: int = 32, n_curves: int = N_CURVES):
        super().__init__()
        self.n_curves = n_curves
        self.e_conv1 = nn.Conv2d(3, channels, 3, 1, 1)
        self.e_conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.e_conv3 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.e_conv4 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.e_conv5 = nn.Conv2d(2 * channels, channels, 3, 1, 1)
        self.e_conv6 = nn.Conv2d(2 * channels, channels, 3, 1, 1)
        self.e_conv7 = nn.Conv2d(2 * channels, 3 * n_curves, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def curve_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) → α maps (B,3·n,H,W) in [−1,1]."""
        x1 = self.relu(self.e_conv1(x))
        x2 = self.relu(self.e_conv2(x1))
        x3 = self.relu(self.e_conv3(x2))
        x4 = self.relu(self.e_conv4(x3))
        x5 = self.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = self.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alphas = self.curve_maps(x)
        for alpha in torch.split(alphas, 3, dim=1):  # LE_n(x) = LE_{n-1} + α_n·LE_{n-1}(1 − LE_{n-1})
            x = x + alpha * (x * x - x)
        return x


@register_restorer("zero-dce", "zerodce", "zero_dce")
class ZeroDCE(PretrainedNetwork):
    description = "Zero-DCE (CVPR 2020) curve estimation, authors' SICE weights"
    degradations = ("lowlight",)
    paper = ("Guo et al. Zero-Reference Deep Curve Estimation for Low-Light Image Enhancement. "
             "CVPR 2020")
    licence = "code and weights: CC BY-NC 4.0, academic research only"
    asset = ZERO_DCE_WEIGHTS
    input_range = "RGB float [0,1] (PIL /255), NCHW, no normalisation, any size"

    def __init__(self) -> None:
        super().__init__()
        self._init_network()

    def build_network(self) -> nn.Module:
        return DCENet()

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return self.net(lq)
