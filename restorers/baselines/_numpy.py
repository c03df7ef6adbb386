"""Glue between the restorer interface (torch batches) and classical methods (numpy images).

Classical baselines are written for one ``(H, W, 3)`` float64 image; :func:`map_images` runs such
a function over a ``(B, 3, H, W)`` batch on the CPU and puts the result back on the batch's device
and dtype. float64 because scikit-image and the ``bm3d`` package compute in it anyway and the
round trip then adds no rounding of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Image = np.ndarray  # (H, W, 3) float64


def map_images(lq: torch.Tensor, fn: Callable[[Image], Image]) -> torch.Tensor:
    """Apply ``fn`` to every image of ``lq`` (B,3,H,W); returns (B,3,H,W) like ``lq``."""
    outputs = []
    for image in lq.detach().cpu().double().numpy().transpose(0, 2, 3, 1):
        out = np.asarray(fn(np.ascontiguousarray(image)), dtype=np.float64)
        if out.shape != image.shape:
            raise RuntimeError(f"{getattr(fn, '__qualname__', fn)} returned shape {out.shape}, "
                               f"expected {image.shape}")
        outputs.append(out)
    out = torch.from_numpy(np.stack(outputs).transpose(0, 3, 1, 2).copy())
    return out.to(lq.device, lq.dtype)


def luminance(image: Image) -> np.ndarray:
    """BT.601 luma (0.299 R + 0.587 G + 0.114 B), the grey image estimators work on."""
    return image @ np.array([0.299, 0.587, 0.114])
