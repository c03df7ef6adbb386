"""Colorization: grey input, colour ground truth (LD-RPS's fourth benchmark, ``ldrps.md`` §5).

``cbsd68-colorize`` follows the 256 protocol the LD-RPS/TAO data use: each CBSD68 image is
centre-cropped along its shorter edge and bicubic-resized to 256×256 on the 8-bit image
(:func:`tasks._common.tao_square`, as for ``kodak24-tao256-awgn30``); that is the colour GT.
The input is its grey version, PIL ``convert("L")`` (ITU-R 601-2 luma,
L = (299·R + 587·G + 114·B)/1000, rounded, 8 bit) replicated to three channels, since every
restorer takes RGB. LD-RPS's own grey files (``CBSD68_256/``) are not published; the reference's
``get_prompts.py@093e5f5`` only names the folder, so the exact grey conversion is **ours** and
numbers are close to, not identical with, the paper's. Scoring as the other LD-RPS tasks: RGB
PSNR, Y (yiq) SSIM, 8-bit outputs — note that Y-SSIM mostly measures the luma the input already
has; PSNR and LPIPS carry the colour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch

from harness.api.options import Range
from harness.api.task import MetricConventions, Sample, Task, register_task
from harness.assets.datasets import DatasetSpec
from tasks._common import CLEAN_SETS, CleanSet, tao_square
from tasks._dataset import image_size


def grey_rgb(image: torch.Tensor) -> torch.Tensor:
    """(3,H,W) [0,1] → its 8-bit PIL ``L`` luma replicated to (3,H,W)."""
    from PIL import Image

    u8 = np.round(image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    luma = np.asarray(Image.fromarray(u8).convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(luma)[None].expand(3, -1, -1).contiguous()


class ColorizeTask(Task):
    """Grey → colour on the TAO ``size``×``size`` version of a clean set."""

    degradation = "colorization"
    conventions = MetricConventions(color_space="rgb", ssim_color_space="yiq", crop_border=0,
                                    quantize=True)

    def __init__(self, clean: CleanSet, size: int = 256):
        super().__init__()
        self.clean, self.size = clean, int(size)
        self.name = f"{clean.name}-colorize"
        self.description = (f"{clean.name} TAO {self.size}x{self.size} (centre crop + bicubic), grey "
                            f"input (PIL L, 3 channels), colour GT; RGB PSNR, Y(yiq) SSIM, 8-bit")
        self.citation = f"{clean.citation}; LD-RPS (AMAP-ML/LD-RPS) colorization benchmark"
        self.expected_count = clean.expected_count
        self.options = {"size": self.size, "grey": "PIL L (ITU-R 601-2), replicated to RGB",
                        "preprocess": "tao: centre crop shorter edge, PIL bicubic"}
        self._paths: dict[str, Path] | None = None

    def _images(self) -> dict[str, Path]:
        if self._paths is None:
            self._paths = {p.stem: p for p in self.clean.images()}
        return self._paths

    def sample_ids(self) -> list[str]:
        return list(self._images())

    def data_spec(self) -> DatasetSpec:
        return self.clean.spec()

    def data_location(self) -> dict[str, Any]:
        return self.clean.match().describe()

    def probe(self, sample_id: str) -> dict[str, Any]:
        image_size(self._images()[sample_id])  # readable header
        return {"lq_size": (self.size, self.size), "gt_size": (self.size, self.size)}

    def load(self, sample_id: str) -> Sample:
        gt = tao_square(self._images()[sample_id], self.size)
        return Sample(sample_id, grey_rgb(gt), gt, {"gt_path": str(self._images()[sample_id]),
                                                    "degradation": {"type": "grey", "luma": "PIL L"}})


@register_task("cbsd68-colorize", "ldrps-colorize")
def cbsd68_colorize(size: Annotated[int, Range(16, 4096)] = 256) -> Task:
    """LD-RPS colorization: CBSD68 TAO 256×256, grey input, colour GT."""
    return ColorizeTask(CLEAN_SETS["cbsd68"], size)
