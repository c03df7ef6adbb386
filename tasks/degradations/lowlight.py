"""Low light: under-exposure with sensor noise, simulated in linear RGB.

Pipeline (per image):

1. sRGB → linear RGB (IEC 61966-2-1 decoding);
2. exposure scale ``k`` (table) — fewer photons reach the sensor;
3. optional colour cast: per-channel gains in ``[1-c, 1+c]`` (white balance of a dim scene);
4. sensor noise in linear space: Poisson shot noise + Gaussian read noise
   (:class:`~.noise.PoissonGaussianNoise` at the same severity), or, in a mixture that lists a
   noise operator, that operator instead (``sensor_noise``);
5. clip and linear → sRGB.

No gain/auto-exposure is applied after step 2: the input is as dark as the capture, which is what
low-light enhancement methods receive. The cast gains are always drawn (and recorded), so turning
the cast on or off leaves every other draw unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from tasks.degradations.base import (
    Degradation,
    Range,
    level_range,
    linear_to_srgb,
    srgb_to_linear,
    uniform,
)
from tasks.degradations.noise import PoissonGaussianNoise


class LowLight(Degradation):
    name = "lowlight"
    family = "lowlight"
    stage = 40
    table: tuple[Range, ...] = ((0.35, 0.5), (0.2, 0.35), (0.12, 0.2), (0.06, 0.12), (0.03, 0.06))
    table_unit = "exposure scale k (linear)"
    cast_table: tuple[float, ...] = (0.04, 0.08, 0.12, 0.16, 0.2)

    def __init__(self, severity: int = 3, color_cast: bool = False,
                 sensor_noise: Degradation | None = None):
        super().__init__(severity)
        self.color_cast = bool(color_cast)
        self.sensor_noise = sensor_noise if sensor_noise is not None else PoissonGaussianNoise(severity)

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        # Ranges descend with severity; the same uniform maps to a strictly smaller k.
        exposure = uniform(generator, *level_range(self.table, self.severity))
        c = self.cast_table[self.severity - 1]
        gains = [uniform(generator, 1.0 - c, 1.0 + c) for _ in range(3)]
        linear = srgb_to_linear(x) * exposure
        if self.color_cast:
            linear = linear * torch.tensor(gains, dtype=x.dtype).view(1, 3, 1, 1)
        noisy, noise_params = self.sensor_noise(linear, generator)
        return linear_to_srgb(noisy), {
            "exposure": exposure, "color_cast": self.color_cast,
            "cast_gains": gains if self.color_cast else None, "sensor_noise": noise_params}
