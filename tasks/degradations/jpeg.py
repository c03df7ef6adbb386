"""JPEG compression through Pillow (libjpeg), quality drawn from the severity range.

The image is rounded to 8 bit first (JPEG codes 8-bit samples), encoded with Pillow's defaults
(4:2:0 chroma subsampling, standard tables, no optimisation) and decoded. libjpeg is
deterministic, so the result depends only on the image and the drawn quality.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from tasks.degradations.base import Degradation, level_range, uniform


def jpeg_roundtrip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """(3,H,W) float in [0,1] → JPEG-compressed (3,H,W) float64."""
    array = (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality), subsampling="4:2:0")
    buffer.seek(0)
    with Image.open(buffer) as img:
        decoded = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1)


class JPEG(Degradation):
    name = "jpeg"
    family = "jpeg"
    stage = 60
    table = ((60.0, 75.0), (40.0, 50.0), (25.0, 35.0), (15.0, 20.0), (6.0, 10.0))
    table_unit = "JPEG quality (Pillow/libjpeg)"

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        quality = int(round(uniform(generator, *level_range(self.table, self.severity))))
        out = torch.stack([jpeg_roundtrip(image, quality) for image in x])
        return out, {"quality": quality, "subsampling": "4:2:0"}
