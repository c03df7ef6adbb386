"""Haze by the atmospheric scattering model ``I = J·t + A·(1 − t)``, ``t = exp(−β·d)``.

There is no depth map for an arbitrary clean image, so ``d`` is a *depth proxy* in [0.1, 1]:

    d = 0.1 + 0.9 · normalise(0.5 · (1 − row/(H−1)) + 0.5 · normalise(G_σ * Y))

— the image row (the top of a photograph is usually farther away than the bottom) plus the
luminance ``Y`` blurred by a wide Gaussian (σ = max(H,W)/20; bright, flat regions such as sky
are usually far). It is smooth, so haze has no texture of its own, and it is deterministic (no
draw). ``β`` (scattering coefficient, table) and the airlight ``A`` (a grey level in [0.8, 0.95]
with a per-channel tint of ±0.03) are drawn. Applied in the sRGB domain, as RESIDE synthesises.
"""

from __future__ import annotations

from typing import Any

import torch

from tasks.degradations.base import (
    Degradation,
    Range,
    filter2d,
    gaussian_kernel,
    level_range,
    luminance,
    uniform,
)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def depth_proxy(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) → (B,1,H,W) pseudo-depth in [0.1, 1] (see module docstring)."""
    height, width = x.shape[-2:]
    sigma = max(height, width) / 20.0
    radius = min(int(3 * sigma), max(height, width) - 1)
    smooth = _normalise(filter2d(luminance(x), gaussian_kernel(sigma, radius=max(1, radius))))
    rows = torch.linspace(1.0, 0.0, height, dtype=x.dtype).view(1, 1, height, 1)
    return 0.1 + 0.9 * _normalise(0.5 * rows + 0.5 * smooth)


class Haze(Degradation):
    name = "haze"
    family = "haze"
    stage = 10
    table: tuple[Range, ...] = ((0.4, 0.7), (0.7, 1.0), (1.0, 1.4), (1.4, 1.9), (1.9, 2.5))
    table_unit = "scattering coefficient β (per unit proxy depth)"

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        beta = uniform(generator, *level_range(self.table, self.severity))
        grey = uniform(generator, 0.8, 0.95)
        airlight = [min(1.0, grey + uniform(generator, -0.03, 0.03)) for _ in range(3)]
        depth = depth_proxy(x)
        transmission = torch.exp(-beta * depth)
        a = torch.tensor(airlight, dtype=x.dtype).view(1, 3, 1, 1)
        out = x * transmission + a * (1.0 - transmission)
        return out, {"beta": beta, "airlight": airlight, "depth_proxy": "row+blurred-luminance",
                     "transmission_mean": float(transmission.mean())}
