"""Sensor noise: additive white Gaussian, and signal-dependent Poisson-Gaussian.

Both clip to [0,1] afterwards (a real sensor saturates). Noise levels are in 8-bit units
(σ = 25 means 25/255), as denoising papers quote them.

Poisson-Gaussian (Foi et al., TIP 2008): ``y = a·P(x/a) + N(0, b²)`` — ``1/a`` photons at full
scale (shot noise, variance ``a·x``), ``b`` the signal-independent read noise. It is the default
``noise`` of mixtures because it is what a sensor produces; inside the low-light operator it runs
in linear RGB, where it belongs.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch

from harness.api.options import Range as OptionRange
from tasks.degradations.base import Degradation, Range, level_range, uniform


class GaussianNoise(Degradation):
    """AWGN with σ drawn from the severity range, or fixed by ``sigma`` (8-bit units)."""

    name = "gaussian_noise"
    family = "noise"
    stage = 50
    table: tuple[Range, ...] = ((5.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 45.0), (45.0, 60.0))
    table_unit = "σ (8-bit units)"

    def __init__(self, severity: int = 3,
                 sigma: Annotated[float, OptionRange(0, 255)] | None = None):
        super().__init__(severity)
        self.sigma = None if sigma is None else float(sigma)

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        # A fixed sigma draws nothing but the noise, so the field equals a plain seeded randn.
        sigma = self.sigma if self.sigma is not None else uniform(generator, *level_range(self.table,
                                                                                          self.severity))
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.dtype)
        return x + noise * (sigma / 255.0), {"sigma": sigma, "fixed": self.sigma is not None}


class PoissonGaussianNoise(Degradation):
    """Shot noise with gain ``a`` (table) plus Gaussian read noise ``b`` (second table)."""

    name = "poisson_gaussian_noise"
    family = "noise"
    stage = 50
    table: tuple[Range, ...] = ((0.0005, 0.001), (0.001, 0.002), (0.002, 0.004), (0.004, 0.008),
                                (0.008, 0.016))
    table_unit = "gain a (1/a photons at full scale)"
    read_table: tuple[Range, ...] = ((0.5, 1.0), (1.0, 1.5), (1.5, 2.5), (2.5, 4.0), (4.0, 6.0))

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        gain = uniform(generator, *level_range(self.table, self.severity))
        read = uniform(generator, *level_range(self.read_table, self.severity))
        photons = torch.poisson(x.clamp(0.0, 1.0) / gain, generator=generator)
        read_noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.dtype)
        return photons * gain + read_noise * (read / 255.0), {"gain": gain, "read_sigma": read}
