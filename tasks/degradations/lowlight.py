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


class CalibratedLowLight(LowLight):
    """Low light with parameter ranges taken from published camera statistics (not from any
    evaluation image): a training-oriented alternative to :class:`LowLight`, whose table (and so
    every ``lowlight`` preset) is left as it was.

    Same pipeline as :class:`LowLight` (sRGB → linear, ×k, cast, sensor noise, → sRGB); what
    differs is where the numbers come from:

    * **exposure** ``k = 1/r`` with the exposure ratio ``r`` log-uniform over 2-100, split into five
      geometric bands (``table``). ×100 is the smallest ratio between the short- and the
      long-exposure shots of SID (Chen, Chen, Xu, Koltun, "Learning to See in the Dark", CVPR 2018:
      ×100, ×250, ×300; short exposures 1/30-1/10 s). Larger ratios are left out: without the
      raw pipeline's amplification their sRGB image is black after 8-bit quantisation.
    * **sensor noise**: Brooks et al., "Unprocessing Images for Learned Raw Denoising", CVPR 2019
      (google-research/unprocessing ``random_noise_levels``, fitted to real cameras): shot-noise
      factor ``a`` log-uniform in [1e-4, 1.2e-2] (variance ``a·x``), read-noise variance
      ``exp(2.18·ln a + 1.20 + ε)``, ``ε ~ N(0, 0.26²)``; ``a`` is split into five geometric
      bands, rising with severity (darker scenes are shot at higher ISO). Applied as
      ``a·Poisson(x/a) + N(0, read variance)`` in linear RGB, after the exposure. In a mixture
      that lists a noise operator, that operator replaces it (as for ``lowlight``).
    * **colour**: the residual cast of a white balance estimated wrongly in the dark: red and blue
      gains are ratios of two independent draws of Brooks et al.'s white-balance gains (red
      U(1.9, 2.4), blue U(1.5, 1.9)), i.e. red and blue in about [0.79, 1.26], green 1. On by
      default (``color_cast=false`` turns it off; the gains are drawn either way).
    """

    name = "lowlight_calibrated"
    family = "lowlight"
    stage = 40
    #: exposure k = 1/r, r in [2, 100] cut into five geometric bands (edges 2·50^(i/5))
    table: tuple[Range, ...] = tuple(
        (1.0 / (2.0 * 50.0 ** (i / 5)), 1.0 / (2.0 * 50.0 ** ((i + 1) / 5))) for i in range(5))
    table_unit = "exposure scale k = 1/ratio (linear); ratio log-uniform 2-100"
    #: shot-noise factor a: Brooks et al.'s [1e-4, 1.2e-2], five geometric bands
    shot_table: tuple[Range, ...] = tuple(
        (1e-4 * 120.0 ** (i / 5), 1e-4 * 120.0 ** ((i + 1) / 5)) for i in range(5))
    red_gain: Range = (1.9, 2.4)
    blue_gain: Range = (1.5, 1.9)

    def __init__(self, severity: int = 3, color_cast: bool = True,
                 sensor_noise: Degradation | None = None):
        Degradation.__init__(self, severity)
        self.color_cast = bool(color_cast)
        self.sensor_noise = sensor_noise  # None: the calibrated Brooks et al. noise below

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        import math

        # log-uniform inside the band; the same uniform lands at the same place of every band
        low, high = level_range(self.table, self.severity)
        exposure = math.exp(uniform(generator, math.log(low), math.log(high)))
        reds = [uniform(generator, *self.red_gain) for _ in range(2)]
        blues = [uniform(generator, *self.blue_gain) for _ in range(2)]
        gains = [reds[0] / reds[1], 1.0, blues[0] / blues[1]]
        linear = srgb_to_linear(x) * exposure
        if self.color_cast:
            linear = linear * torch.tensor(gains, dtype=x.dtype).view(1, 3, 1, 1)
        if self.sensor_noise is not None:
            noisy, noise_params = self.sensor_noise(linear, generator)
        else:
            low, high = level_range(self.shot_table, self.severity)
            shot = math.exp(uniform(generator, math.log(low), math.log(high)))
            eps = float(torch.randn((), generator=generator, dtype=torch.float64)) * 0.26
            read_var = math.exp(2.18 * math.log(shot) + 1.20 + eps)
            photons = torch.poisson(linear.clamp(0.0, 1.0) / shot, generator=generator)
            read = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.dtype)
            noisy = (photons * shot + read * math.sqrt(read_var)).clamp(0.0, 1.0)
            noise_params = {"op": "brooks2019", "shot": shot, "read_variance": read_var}
        return linear_to_srgb(noisy), {
            "exposure": exposure, "ratio": 1.0 / exposure, "color_cast": self.color_cast,
            "cast_gains": gains if self.color_cast else None, "sensor_noise": noise_params}
