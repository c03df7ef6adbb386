"""Rain streaks: a seeded streak layer blended over the image.

The layer is the usual synthetic-rain recipe (Photoshop-style, as in Rain100L/Rain12 data):

1. seeds: pixels where a uniform field falls below the density ``ρ`` (table), each with a
   brightness in [0.5, 1];
2. streaks: the seeds are smeared along a line of length ``L`` (second table) at an angle
   ``θ`` from vertical drawn in [−20°, 20°] (the same for all streaks: wind); a Gaussian of
   σ 0.5 px gives them width;
3. blend: screen ``I = 1 − (1 − J)(1 − α·R)`` with opacity ``α`` drawn in [0.6, 0.85], which
   brightens like real streaks and cannot overflow.

The uniform seed field is drawn once and compared with ``ρ``, so at a fixed seed a higher level
keeps every streak of a lower one and adds more (longer) ones.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tasks.degradations.base import (
    Degradation,
    Range,
    filter2d,
    gaussian_kernel,
    level_range,
    uniform,
)


def line_kernel(length: float, angle: float) -> torch.Tensor:
    """Anti-aliased line of ``length`` px at ``angle`` rad from vertical, peak value 1."""
    half = int(math.ceil(length / 2)) + 1
    size = 2 * half + 1
    n = max(2, int(length * 4))
    t = torch.linspace(-length / 2, length / 2, n, dtype=torch.float64)
    xs, ys = t * math.sin(angle) + half, t * math.cos(angle) + half
    kernel = torch.zeros(size, size, dtype=torch.float64)
    x0, y0 = xs.floor().long(), ys.floor().long()
    fx, fy = xs - x0, ys - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                      (1, 1, fx * fy)):
        kernel.index_put_(((y0 + dy).clamp(0, size - 1), (x0 + dx).clamp(0, size - 1)), w,
                          accumulate=True)
    return kernel / kernel.max()


class Rain(Degradation):
    name = "rain"
    family = "rain"
    stage = 20
    table: tuple[Range, ...] = ((0.002, 0.004), (0.004, 0.007), (0.007, 0.011), (0.011, 0.016),
                                (0.016, 0.022))
    table_unit = "streak seed density ρ (fraction of pixels)"
    length_table: tuple[Range, ...] = ((8.0, 12.0), (12.0, 16.0), (16.0, 22.0), (22.0, 28.0),
                                       (28.0, 36.0))

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        density = uniform(generator, *level_range(self.table, self.severity))
        length = uniform(generator, *level_range(self.length_table, self.severity))
        angle = math.radians(uniform(generator, -20.0, 20.0))
        alpha = uniform(generator, 0.6, 0.85)
        shape = (x.shape[0], 1, *x.shape[-2:])
        field = torch.rand(shape, generator=generator, dtype=torch.float64)
        brightness = 0.5 + 0.5 * torch.rand(shape, generator=generator, dtype=torch.float64)
        seeds = (field < density).double() * brightness
        streaks = filter2d(filter2d(seeds, line_kernel(length, angle)), gaussian_kernel(0.5, 1))
        layer = (alpha * streaks.clamp(0.0, 1.0)).expand_as(x)
        out = 1.0 - (1.0 - x) * (1.0 - layer)
        return out, {"density": density, "length": length, "angle_deg": math.degrees(angle),
                     "opacity": alpha, "n_streaks": int((field < density).sum())}
