"""AOD-Net: all-in-one dehazing network (unofficial PyTorch weights).

Li, Peng, Wang, Xu, Feng. "AOD-Net: All-in-One Dehazing Network". ICCV 2017.

The atmospheric scattering model I = J·t + A(1 − t) is rewritten with a single per-pixel
variable K(x) so that J = K·I − K + b, b = 1 (paper Eq. 4–5); a 5-conv K-estimation module with
multi-scale concatenations predicts K. Written from the paper and ``net.py`` (``dehaze_net``) of
TheFairBear/PyTorch-Image-Dehazing per the weights' SOURCE.txt; module names equal the
checkpoint keys.

Weights: **not the authors' Caffe model** but an unofficial PyTorch re-training (MIT), the only
PyTorch AOD-Net weights with a stable source; no published numbers belong to them, and they have
not been evaluated on SOTS/HSTS here. Fully convolutional: any size.

**Subnormal weights.** The shipped weights hold 801 of its 1,761 parameters as subnormal floats
(below 1.2e-38). On x86 CPUs each operation on one takes a slow microcode path, so ``bench run``
flushes denormals (``torch.set_flush_denormal``, recorded as ``flush_denormal``) while it times;
see ``docs/latency.md``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.api.restorer import register_restorer
from harness.assets import Asset, AssetFile, register_asset
from restorers.baselines._pretrained import PretrainedNetwork

AOD_NET_WEIGHTS = register_asset(Asset(
    name="aod_net",
    files=(AssetFile(
        "dehazer.pth", "79409b63bf019d6c7ca6903883a8635d5723c25406f74903751bd7459462a53b",
        "https://raw.githubusercontent.com/TheFairBear/PyTorch-Image-Dehazing/"
        "dc26717cde24748e27ffc9d050564e295654b90d/snapshots/dehazer.pth",
        size=8613),),
    description="AOD-Net K-estimation module, unofficial PyTorch training (TheFairBear)",
    licence="MIT (Copyright 2018 SMonk)",
    homepage="https://github.com/TheFairBear/PyTorch-Image-Dehazing"))


class AODNet(nn.Module):
    """K-estimation module (paper Fig. 3) and clean-image generation J = ReLU(K·I − K + b), b = 1.

    The K-estimation convs (1, 3, 5, 7, 3 px with concatenations) keep the checkpoint's names.
    """

    def __init__(self) -> None:
        super().__init__()
        self.e_conv1 = nn.Conv2d(3, 3, 1, 1, 0)
        self.e_conv2 = nn.Conv2d(3, 3, 3, 1, 1)
        self.e_conv3 = nn.Conv2d(6, 3, 5, 1, 2)
        self.e_conv4 = nn.Conv2d(6, 3, 7, 1, 3)
        self.e_conv5 = nn.Conv2d(12, 3, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def k_estimation(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.relu(self.e_conv1(x))
        x2 = self.relu(self.e_conv2(x1))
        x3 = self.relu(self.e_conv3(torch.cat([x1, x2], 1)))
        x4 = self.relu(self.e_conv4(torch.cat([x2, x3], 1)))
        return self.relu(self.e_conv5(torch.cat([x1, x2, x3, x4], 1)))

    def forward(self, hazy: torch.Tensor) -> torch.Tensor:
        k = self.k_estimation(hazy)
        return torch.relu(k * hazy - k + 1.0)


@register_restorer("aod-net", "aodnet", "aod_net")
class AODNetRestorer(PretrainedNetwork):
    description = "AOD-Net (ICCV 2017) dehazing; unofficial PyTorch weights (TheFairBear)"
    degradations = ("haze",)
    paper = "Li et al. AOD-Net: All-in-One Dehazing Network. ICCV 2017"
    licence = "MIT (weights and code of the PyTorch re-implementation)"
    asset = AOD_NET_WEIGHTS
    input_range = "RGB float [0,1] (/255), NCHW, no normalisation, any size"

    def __init__(self) -> None:
        super().__init__()
        self._init_network()

    def build_network(self) -> nn.Module:
        return AODNet()

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return self.net(lq)
