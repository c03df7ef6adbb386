"""Zero-DCE++: the fast, light Zero-DCE with depthwise-separable convs and a down-scaled input.

Li, Guo, Loy. "Learning to Enhance Low-Light Image via Zero-Reference Deep Curve Estimation".
IEEE TPAMI 2021.

Differences from Zero-DCE (paper §3.4): every conv is depthwise 3×3 + pointwise 1×1 (the
authors' ``CSDN_Tem``), one curve map (3 channels) is shared by all eight iterations, and the
curve map is estimated on a bilinearly down-scaled input then bilinearly up-sampled
(``UpsamplingBilinear2d``, i.e. ``align_corners=True``). Written from the paper and the authors'
``Zero-DCE++/model.py`` per the weights' SOURCE.txt; module names equal the checkpoint keys.

``scale_factor`` (default 12, the value of the authors' ``lowlight_test.py``) is the down-scaling
factor; 1 estimates the curves at full resolution. The official script *crops* H and W down to
multiples of ``scale_factor``, which drops up to ``scale_factor − 1`` rows and columns; a
benchmark must score every pixel, so here the input is instead reflect-padded up to the next
multiple and the output cropped back (replicate padding if the image is smaller than the pad).
On images whose sides are already multiples of the factor both give the same result.

**Subnormal weights.** The shipped weights hold 685 of its 10,561 parameters as subnormal floats
(below 1.2e-38). On x86 CPUs each operation on one takes a slow microcode path, so ``bench run``
flushes denormals (``torch.set_flush_denormal``, recorded as ``flush_denormal``) while it times;
see ``docs/latency.md``.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.api.options import Range
from harness.api.restorer import register_restorer
from harness.assets import Asset, AssetFile, register_asset
from restorers.baselines._pretrained import PretrainedNetwork

ZERO_DCE_PP_WEIGHTS = register_asset(Asset(
    name="zero_dce_pp",
    files=(AssetFile(
        "Epoch99.pth", "ca8855b90df9a80fa4195a831f33d3476b1964f787eb70602797c773067f3b84",
        "https://raw.githubusercontent.com/Li-Chongyi/Zero-DCE_extension/"
        "09f202b690f82da939b8e6ec8535960ae97ad8bd/Zero-DCE++/snapshots_Zero_DCE++/Epoch99.pth",
        size=52395),),
    description="Zero-DCE++ DCE-Net (depthwise separable), authors' snapshot, epoch 99",
    licence="CC BY-NC 4.0, academic research only (Zero-DCE_extension README)",
    homepage="https://github.com/Li-Chongyi/Zero-DCE_extension"))

N_ITERATIONS = 8


class DepthwiseSeparableConv(nn.Module):
    """3×3 depthwise conv then 1×1 pointwise conv (the authors' ``CSDN_Tem``), both with bias."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.depth_conv = nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels)
        self.point_conv = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class DCENetPP(nn.Module):
    """Zero-DCE++ DCE-Net: Zero-DCE's topology with separable convs and one shared curve map."""

    def __init__(self, scale_factor: int = 12, channels: int = 32):
        super().__init__()
        self.scale_factor = scale_factor
        self.e_conv1 = DepthwiseSeparableConv(3, channels)
        self.e_conv2 = DepthwiseSeparableConv(channels, channels)
        self.e_conv3 = DepthwiseSeparableConv(channels, channels)
        self.e_conv4 = DepthwiseSeparableConv(channels, channels)
        self.e_conv5 = DepthwiseSeparableConv(2 * channels, channels)
        self.e_conv6 = DepthwiseSeparableConv(2 * channels, channels)
        self.e_conv7 = DepthwiseSeparableConv(2 * channels, 3)
        self.relu = nn.ReLU(inplace=True)

    def curve_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W), H and W multiples of ``scale_factor`` → α map (B,3,H,W) in [−1,1]."""
        s = self.scale_factor
        small = x if s == 1 else F.interpolate(x, scale_factor=1 / s, mode="bilinear",
                                               align_corners=False)
        x1 = self.relu(self.e_conv1(small))
        x2 = self.relu(self.e_conv2(x1))
        x3 = self.relu(self.e_conv3(x2))
        x4 = self.relu(self.e_conv4(x3))
        x5 = self.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = self.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        alpha = torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))
        if s == 1:
            return alpha
        return F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.curve_map(x)
        for _ in range(N_ITERATIONS):  # the same α at every iteration (paper §3.4)
            x = x + alpha * (x * x - x)
        return x


@register_restorer("zero-dce-pp", "zero-dce++", "zerodce++", "zero_dce_pp")
class ZeroDCEPP(PretrainedNetwork):
    description = "Zero-DCE++ (TPAMI 2021) fast curve estimation on a down-scaled input"
    degradations = ("lowlight",)
    paper = ("Li, Guo, Loy. Learning to Enhance Low-Light Image via Zero-Reference Deep Curve "
             "Estimation. TPAMI 2021")
    licence = "code and weights: CC BY-NC 4.0, academic research only"
    asset = ZERO_DCE_PP_WEIGHTS
    input_range = ("RGB float [0,1] (PIL /255), NCHW, no normalisation; H, W reflect-padded to "
                   "multiples of scale_factor")

    def __init__(self, scale_factor: Annotated[int, Range(1, 64)] = 12):
        """
        Args:
            scale_factor: down-scaling of the curve-estimation branch (authors' test: 12;
                1 = full resolution). A positive integer.
        """
        super().__init__()
        if not isinstance(scale_factor, int) or isinstance(scale_factor, bool) or scale_factor < 1:
            raise ValueError(f"zero-dce-pp: scale_factor must be a positive integer, got "
                             f"{scale_factor!r}")
        self.scale_factor = scale_factor
        self.pad_multiple = scale_factor  # the down/up-scaling needs H, W divisible by it
        self._init_network()

    def build_network(self) -> nn.Module:
        return DCENetPP(self.scale_factor)

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return self.net(lq)  # padded to a multiple of scale_factor by Restorer.restore
