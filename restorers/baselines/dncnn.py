"""DnCNN: residual-learning denoising CNN, with KAIR's published PyTorch weights.

Zhang, Zuo, Chen, Meng, Zhang. "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for
Image Denoising". IEEE TIP 2017.

The network predicts the noise and the output is x − DnCNN(x) (residual learning, paper §III).
Written from the paper and KAIR's ``models/network_dncnn.py`` per the weights' SOURCE.txt:
``model`` is a Sequential of conv(3×3)+ReLU, depth−2 × conv+ReLU, conv, so the published keys
``model.{0,2,4,...}.{weight,bias}`` load unchanged. The paper's middle layers have batch
normalisation; KAIR's released files have it folded into the conv biases, hence no BN layer.

Variants (``variant=``), all from KAIR:

* ``color_blind`` (default): CDnCNN-B, 20 layers, RGB in/out, trained for σ ∈ [0, 55]
  (``dncnn_color_blind.pth``, KAIR release v1.0).
* ``gray25``: DnCNN-S for σ = 25, 17 layers, grey (``model_zoo/dncnn_25.pth``).
* ``gray_blind``: DnCNN-B, 20 layers, grey, σ ∈ [0, 55] (``dncnn_gray_blind.pth``, release v1.0).

Grey models on colour input are applied **per RGB channel** (each channel as a grey image), not
on luma: the AWGN tasks add independent noise of the same σ to every channel, so each channel is
exactly the grey σ-AWGN problem the model was trained on, whereas a luma channel would carry
noise of ≈0.67σ (a σ mismatch for ``gray25``) and leave the chroma noise untouched.

Blind models: nothing is read from ``meta`` (the task's σ is ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from harness.api.restorer import register_restorer
from harness.assets import Asset, AssetFile, register_asset
from restorers.baselines._pretrained import PretrainedNetwork

_KAIR_COMMIT = "fc1732f4a4514e42ce15e5b3a1e18c828af47a1e"
_KAIR_RELEASE = "https://github.com/cszn/KAIR/releases/download/v1.0/"

# dncnn_25.pth is in KAIR's git tree. The two blind files are KAIR release assets; their bytes
# were taken from a third-party copy (zhengdihan/Unsupervised_denoising@dadd26a,
# model_zoo/*.pth) whose sizes match the release files; the release itself could not be fetched
# to compare hashes, so a download from the release URL is accepted only if it has these hashes.
DNCNN_WEIGHTS = register_asset(Asset(
    name="dncnn",
    files=(
        AssetFile("dncnn_25.pth",
                  "0451a70de9b672ae037270498fbb1c17a1c1c4403785df586ff65df5b858e5b0",
                  f"https://raw.githubusercontent.com/cszn/KAIR/{_KAIR_COMMIT}/"
                  f"model_zoo/dncnn_25.pth", size=2224903),
        AssetFile("dncnn_color_blind.pth",
                  "dfe11a6b703304df82cdf236f431fc6492766c7b9119d97e943edeb392c710a3",
                  _KAIR_RELEASE + "dncnn_color_blind.pth", size=2678121),
        AssetFile("dncnn_gray_blind.pth",
                  "cc2ac7fa2f248a7f7a3da414a848326634511ec8b5adb7799e857ed788067bfe",
                  _KAIR_RELEASE + "dncnn_gray_blind.pth", size=2668897),
    ),
    description="KAIR DnCNN weights (BN merged): grey σ=25, grey blind, colour blind (CDnCNN-B)",
    licence="MIT (KAIR, Copyright 2019 Kai Zhang)",
    homepage="https://github.com/cszn/KAIR"))


@dataclass(frozen=True)
class DnCNNVariant:
    file: str
    channels: int
    depth: int
    note: str


VARIANTS: dict[str, DnCNNVariant] = {
    "color_blind": DnCNNVariant("dncnn_color_blind.pth", 3, 20, "CDnCNN-B, colour, σ ∈ [0,55]"),
    "gray25": DnCNNVariant("dncnn_25.pth", 1, 17, "DnCNN-S, grey, σ = 25, per RGB channel"),
    "gray_blind": DnCNNVariant("dncnn_gray_blind.pth", 1, 20,
                               "DnCNN-B, grey, σ ∈ [0,55], per RGB channel"),
}


class DnCNN(nn.Module):
    """DnCNN (paper Fig. 1) with BN folded into the convs: returns x − residual(x)."""

    def __init__(self, channels: int = 3, depth: int = 20, features: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, 1, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, channels, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.model(x)


@register_restorer("dncnn", "cdncnn-b", "dncnn-b")
class DnCNNRestorer(PretrainedNetwork):
    description = "DnCNN (TIP 2017), KAIR weights: colour blind CDnCNN-B, grey σ=25, grey blind"
    degradations = ("noise",)
    paper = ("Zhang et al. Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image "
             "Denoising. IEEE TIP 2017")
    licence = "MIT (KAIR code and weights)"
    asset = DNCNN_WEIGHTS
    input_range = ("RGB float [0,1] (KAIR uint2single), NCHW, unclipped noisy input; grey "
                   "variants run per channel")

    def __init__(self, variant: Literal["color_blind", "gray25", "gray_blind"] = "color_blind"):
        """
        Args:
            variant: ``color_blind`` (CDnCNN-B, default), ``gray25`` (DnCNN-S σ=25) or
                ``gray_blind`` (DnCNN-B); grey variants are applied per RGB channel.
        """
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"dncnn: variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self._init_network()

    def build_network(self) -> nn.Module:
        spec = VARIANTS[self.variant]
        return DnCNN(spec.channels, spec.depth)

    def weights_file(self) -> str:
        return VARIANTS[self.variant].file

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        if VARIANTS[self.variant].channels == 3:
            return self.net(lq)
        batch, channels, height, width = lq.shape
        planes = lq.reshape(batch * channels, 1, height, width)  # every RGB channel as grey
        return self.net(planes).reshape(batch, channels, height, width)
