"""Blur: isotropic Gaussian, defocus (disk) and camera-shake motion (random trajectories).

All kernels are normalised to sum 1 and applied per channel by :func:`~.base.filter2d`
(correlation, reflect padding, FFT), in the sRGB domain as blur datasets are synthesised.
Each operator records its kernel size and drawn parameters; motion blur records the
trajectory's generating parameters, from which the kernel is reproduced exactly.
"""

from __future__ import annotations

import cmath
import math
from typing import Any

import torch

from tasks.degradations.base import Degradation, Range, filter2d, gaussian_kernel, level_range, uniform


class GaussianBlur(Degradation):
    name = "gaussian_blur"
    family = "blur"
    stage = 30
    table: tuple[Range, ...] = ((0.5, 0.9), (0.9, 1.4), (1.4, 2.0), (2.0, 2.8), (2.8, 3.8))
    table_unit = "σ (pixels)"

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        sigma = uniform(generator, *level_range(self.table, self.severity))
        kernel = gaussian_kernel(sigma)
        return filter2d(x, kernel), {"sigma": sigma, "kernel_size": kernel.shape[0]}


def disk_kernel(radius: float, supersample: int = 8) -> torch.Tensor:
    """Pill-box (defocus) kernel of ``radius`` px; edge pixels weighted by covered area."""
    half = int(math.ceil(radius))
    n = (2 * half + 1) * supersample
    coords = (torch.arange(n, dtype=torch.float64) + 0.5) / supersample - (half + 0.5)
    inside = (coords[:, None] ** 2 + coords[None, :] ** 2 <= radius**2).double()
    kernel = inside.view(2 * half + 1, supersample, 2 * half + 1, supersample).mean(dim=(1, 3))
    return kernel / kernel.sum()


class DefocusBlur(Degradation):
    name = "defocus_blur"
    family = "blur"
    stage = 30
    table: tuple[Range, ...] = ((1.0, 1.75), (1.75, 2.5), (2.5, 3.5), (3.5, 5.0), (5.0, 7.0))
    table_unit = "disk radius (pixels)"

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        radius = uniform(generator, *level_range(self.table, self.severity))
        kernel = disk_kernel(radius)
        return filter2d(x, kernel), {"radius": radius, "kernel_size": kernel.shape[0]}


def random_trajectory(generator: torch.Generator, steps: int = 512) -> tuple[list[complex], dict]:
    """A camera-shake trajectory after Boracchi & Foi (TIP 2012), of unit step length.

    A particle moves with constant speed; its velocity changes by a Gaussian perturbation, a
    centripetal pull back to the origin, and, rarely, an abrupt turn ("big shake"). The
    parameters (anxiety, centripetal, Gaussian term, shake frequency, initial angle) are drawn
    from the generator in Boracchi & Foi's ranges; so are all per-step random numbers, drawn up
    front so that the number of draws is fixed.
    """
    head = torch.rand(5, generator=generator, dtype=torch.float64).tolist()
    anxiety, centripetal = 0.1 * head[0], 0.7 * head[1]
    gaussian_term, shake_freq, angle = 10.0 * head[2], 0.2 * head[3], 2.0 * math.pi * head[4]
    shake_u = torch.rand(steps, generator=generator, dtype=torch.float64).tolist()
    shake_a = torch.rand(steps, generator=generator, dtype=torch.float64).tolist()
    gauss = torch.randn(steps, 2, generator=generator, dtype=torch.float64).tolist()
    step = 1.0 / (steps - 1)
    velocity = cmath.exp(1j * angle) * step
    points = [0j]
    for t in range(steps - 1):
        turn = 0j
        if shake_u[t] < shake_freq * anxiety:
            turn = 2.0 * velocity * cmath.exp(1j * (math.pi + (shake_a[t] - 0.5)))
        dv = turn + anxiety * (gaussian_term * complex(*gauss[t]) - centripetal * points[-1]) * step
        velocity += dv
        velocity = velocity / (abs(velocity) or 1.0) * step
        points.append(points[-1] + velocity)
    return points, {"anxiety": anxiety, "centripetal": centripetal, "gaussian_term": gaussian_term,
                    "shake_freq": shake_freq, "angle": angle, "steps": steps}


def rasterize(points: list[complex], extent: float) -> torch.Tensor:
    """Scale the trajectory so its longest bounding-box side is ``extent`` px; bilinear splat."""
    xs = torch.tensor([p.real for p in points], dtype=torch.float64)
    ys = torch.tensor([p.imag for p in points], dtype=torch.float64)
    span = max(float(xs.max() - xs.min()), float(ys.max() - ys.min()), 1e-12)
    xs = (xs - (xs.max() + xs.min()) / 2) * (extent / span)
    ys = (ys - (ys.max() + ys.min()) / 2) * (extent / span)
    half = int(math.ceil(extent / 2)) + 1
    size = 2 * half + 1
    kernel = torch.zeros(size * size, dtype=torch.float64)
    cx, cy = xs + half, ys + half
    x0, y0 = cx.floor(), cy.floor()
    fx, fy = cx - x0, cy - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                      (1, 1, fx * fy)):
        idx = ((y0 + dy).long().clamp(0, size - 1) * size + (x0 + dx).long().clamp(0, size - 1))
        kernel.index_add_(0, idx, w)
    kernel = kernel.view(size, size)
    return kernel / kernel.sum()


class MotionBlur(Degradation):
    """Camera-shake blur; the severity sets the trajectory's extent, the seed its shape."""

    name = "motion_blur"
    family = "blur"
    stage = 30
    table: tuple[Range, ...] = ((3.0, 5.0), (5.0, 8.0), (8.0, 12.0), (12.0, 17.0), (17.0, 24.0))
    table_unit = "trajectory extent (pixels)"

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        extent = uniform(generator, *level_range(self.table, self.severity))
        points, trajectory = random_trajectory(generator)
        kernel = rasterize(points, extent)
        return filter2d(x, kernel), {"extent": extent, "kernel_size": kernel.shape[0],
                                     "trajectory": trajectory}

    @staticmethod
    def kernel_for(generator: torch.Generator, extent: float) -> torch.Tensor:
        """The kernel a given generator state would produce (for figures and tests)."""
        points, _ = random_trajectory(generator)
        return rasterize(points, extent)
