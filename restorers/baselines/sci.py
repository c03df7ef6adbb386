"""SCI: self-calibrated illumination learning for low-light enhancement (test-time network).

Ma, Ma, Liu, Fan, Luo. "Toward Fast, Flexible, and Robust Low-Light Image Enhancement".
CVPR 2022.

At test time SCI keeps only its weight-shared illumination-estimation stage (paper §3.1, the
authors' ``Finetunemodel``): a tiny CNN predicts an illumination residual, u = clamp(f(x) + x,
1e-4, 1), and the enhanced image is the Retinex quotient z = clamp(x / u, 0, 1) (paper Eq. 1–2).
The self-calibration module is a training-time aid and is discarded.

Written from the paper and the authors' ``model.py`` per the weights' SOURCE.txt. The published
``.pt`` state dicts also hold the training-only ``calibrate.*`` network and ``enhance.blocks.0.*``,
a second name of ``enhance.conv.*`` (``blocks`` is a ModuleList holding that same module);
:meth:`SCI.filter_checkpoint` drops both after checking that the duplicate is identical, and the
rest loads strictly. BatchNorm uses its running statistics (``model.eval()`` in the authors'
``test.py``).

Variants (the three published files): ``medium`` (default; trained on LOL/LSRW-like data),
``easy`` (MIT-Adobe FiveK-like), ``difficult`` (DarkFace-like).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from harness.api.restorer import register_restorer
from harness.assets import Asset, AssetFile, register_asset
from restorers.baselines._pretrained import PretrainedNetwork

_COMMIT = "9d28a3f1237df248bb765e7fee16f7c4ac7dbeee"
_URL = f"https://raw.githubusercontent.com/vis-opt-group/SCI/{_COMMIT}/weights/"

SCI_WEIGHTS = register_asset(Asset(
    name="sci",
    files=(
        AssetFile("easy.pt", "b17326a26a93bf187ecbab217f9d3c57467a8b56020d4d9ff600ba257bbffb36",
                  _URL + "easy.pt", size=43967),
        AssetFile("medium.pt", "4ff1e7e66e8f18114f790e5085ca4c936f0858e329e7ad1cb65b8aa09a9c6916",
                  _URL + "medium.pt", size=43967),
        AssetFile("difficult.pt",
                  "657fa1f280cae1035df0d5cbe628e91f2d0f28660df608a3fa3f7e9a71da5a13",
                  _URL + "difficult.pt", size=43967),
    ),
    description="SCI test-time weights: easy (FiveK-like), medium (LOL-like), difficult (DarkFace)",
    licence="MIT (Copyright 2022 Tengyu Ma)",
    homepage="https://github.com/vis-opt-group/SCI"))

VARIANTS = ("easy", "medium", "difficult")


class IlluminationNet(nn.Module):
    """SCI's illumination estimator (``EnhanceNetwork(layers=1, channels=3)``).

    in_conv (3×3 + ReLU) → one residual block (3×3 conv + BN + ReLU) → out_conv (3×3 + sigmoid);
    the sigmoid output is a residual added to the input to give the illumination.
    """

    def __init__(self, channels: int = 3):
        super().__init__()
        self.in_conv = nn.Sequential(nn.Conv2d(3, channels, 3, 1, 1), nn.ReLU())
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.out_conv = nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.in_conv(x)
        features = features + self.conv(features)
        return torch.clamp(self.out_conv(features) + x, 1e-4, 1.0)


class SCINet(nn.Module):
    """Illumination then Retinex quotient: z = clamp(x / u, 0, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.enhance = IlluminationNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        illumination = self.enhance(x)
        return torch.clamp(x / illumination, 0.0, 1.0)


def checkpoint_filter_fn(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep ``enhance.*`` minus its ``blocks.0`` alias; drop the training-only ``calibrate.*``.

    Raises ValueError if an alias tensor differs from the ``enhance.conv`` tensor it should
    duplicate (then the file is not what SOURCE.txt describes).
    """
    kept: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith("enhance."):
            continue
        if key.startswith("enhance.blocks.0."):
            twin = "enhance.conv." + key[len("enhance.blocks.0."):]
            if twin in state and not torch.equal(state[twin], value):
                raise ValueError(f"SCI checkpoint: {key} differs from {twin}; expected the same "
                                 f"tensor under two names")
            continue
        kept[key] = value
    return kept


@register_restorer("sci")
class SCI(PretrainedNetwork):
    description = "SCI (CVPR 2022) self-calibrated illumination, easy/medium/difficult weights"
    degradations = ("lowlight",)
    paper = ("Ma et al. Toward Fast, Flexible, and Robust Low-Light Image Enhancement. "
             "CVPR 2022")
    licence = "MIT"
    asset = SCI_WEIGHTS
    input_range = "RGB float [0,1] (transforms.ToTensor), NCHW, no normalisation, any size"

    def __init__(self, variant: Literal["easy", "medium", "difficult"] = "medium"):
        """
        Args:
            variant: which published weights: ``medium`` (LOL-like, the default), ``easy``
                (MIT-Adobe FiveK-like) or ``difficult`` (DarkFace-like).
        """
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"sci: variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self._init_network()

    def build_network(self) -> nn.Module:
        return SCINet()

    def weights_file(self) -> str:
        return f"{self.variant}.pt"

    def filter_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return checkpoint_filter_fn(state)

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return self.net(lq)
