"""Guidance and F-PAM losses of LD-RPS (``ldrps.md`` §2.4, §2.6).

* :class:`VGGPerceptual` — MSE between torchvision-VGG16 ``features[:9]`` (relu2_2, 128 channels
  at H/2) of ImageNet-normalised inputs; frozen, eval mode. One copy serves F-PAM and the
  guidance (the reference holds two identical frozen copies). Its weights are torchvision's
  ``vgg16-397923af.pth`` from the declared asset ``torchvision-imagenet-backbones``; a missing file is an
  :class:`~harness.assets.cache.AssetMissingError`, never a random network.
* :func:`exposure_loss` — Zero-DCE L_exp: mean over RGB, p×p average pooling, mean((A − 0.5)²).
* :func:`colour_loss` — Zero-DCE L_col: √[(m_r−m_g)⁴ + (m_r−m_b)⁴ + (m_b−m_g)⁴] on channel means.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.assets import Asset, fetch, sha256_of
from harness.io.safe_load import load_torch_file

VGG16_FILE = "vgg16-397923af.pth"


def vgg16_asset() -> Asset:
    """The declared asset holding torchvision's ``vgg16-397923af.pth`` (IMAGENET1K_V1): the
    harness's ``torchvision-imagenet-backbones`` (LPIPS needs the same file), so the 528 MB file
    is cached once."""
    from harness.assets.metric_weights import LPIPS_BACKBONES

    LPIPS_BACKBONES.file(VGG16_FILE)  # KeyError if the harness stops declaring it
    return LPIPS_BACKBONES

#: torchvision ``vgg16().features`` indices 0..8 (conv1_1 … relu2_2) that hold parameters.
_VGG_CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128)}


def vgg16_relu2_2() -> nn.Sequential:
    """torchvision's ``vgg16().features[:9]`` with the same indices (so its state-dict keys
    ``features.{0,2,5,7}.*`` load unchanged), built without the 138 M-parameter classifier."""
    layers: list[nn.Module] = []
    for index in range(9):
        if index in _VGG_CONVS:
            layers.append(nn.Conv2d(*_VGG_CONVS[index], 3, 1, 1))
        elif index == 4:
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VGGPerceptual(nn.Module):
    """MSE of relu2_2 features (inputs in [0,1], ImageNet mean/std), frozen."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def features_of(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x.float() - self.mean) / self.std)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor,
                target_features: torch.Tensor | None = None) -> torch.Tensor:
        """MSE of features; ``target_features`` (of a fixed target, e.g. the observation y) saves
        recomputing them every step."""
        if target_features is not None:
            return F.mse_loss(self.features_of(prediction), target_features)
        a, b = self.features_of(torch.cat([prediction, target])).chunk(2)
        return F.mse_loss(a, b)


def load_vgg_features(path: str | Path | None = None) -> tuple[nn.Sequential, dict[str, str]]:
    """relu2_2 features from ``path`` (a full torchvision VGG16 state dict or just the
    ``features.{0,2,5,7}`` tensors) or, when ``path`` is None, from the declared asset.

    Returns the network and its weights record ``{file, sha256, uri}``.
    Raises AssetMissingError (asset absent offline) or FileNotFoundError (``path`` absent)."""
    if path is None:
        asset = vgg16_asset()
        file = fetch(asset.name, VGG16_FILE)
        spec = asset.file(VGG16_FILE)
        record = {"file": file.name, "sha256": spec.sha256, "uri": spec.url}
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"LD-RPS: VGG16 weights file {file} does not exist "
                                    f"(vgg_weights option); pass torchvision's vgg16-397923af.pth "
                                    f"or set perceptual=false")
        record = {"file": str(file), "sha256": sha256_of(file), "uri": str(file)}
    state = load_torch_file(file, what="LD-RPS VGG16 weights (vgg_weights=)")
    features = vgg16_relu2_2()
    wanted = {f"{i}.{p}": state[f"features.{i}.{p}"] for i in _VGG_CONVS for p in ("weight", "bias")
              if f"features.{i}.{p}" in state}
    if len(wanted) != 2 * len(_VGG_CONVS):
        raise ValueError(f"{file}: not a torchvision VGG16 state dict (needs features.0/2/5/7 "
                         f"weight and bias)")
    features.load_state_dict(wanted, strict=True)
    return features, record


def exposure_loss(x: torch.Tensor, patch: int, level: float = 0.5) -> torch.Tensor:
    """L_exp: grey = mean over RGB; A = avgpool_{p, stride p}(grey); mean((A − level)²)."""
    pooled = F.avg_pool2d(x.mean(1, keepdim=True), patch)
    return ((pooled - level) ** 2).mean()


def colour_loss(x: torch.Tensor) -> torch.Tensor:
    """L_col (colour constancy), averaged over the batch (the reference squeezes batch 1)."""
    m = x.mean(dim=(2, 3))
    mr, mg, mb = m[:, 0], m[:, 1], m[:, 2]
    return torch.sqrt((mr - mg) ** 4 + (mr - mb) ** 4 + (mb - mg) ** 4).mean()
