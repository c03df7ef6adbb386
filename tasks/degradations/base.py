"""The degradation-operator interface, severity tables, and the shared numerical helpers.

An operator is a callable ``op(image, generator) -> (degraded, params)``:

* ``image`` is ``(3,H,W)`` or ``(B,3,H,W)`` float in [0,1] on any device; the result has the same
  shape, dtype and device.
* ``generator`` is a CPU ``torch.Generator``; it is the *only* source of randomness. Every draw
  happens on the CPU and every operation runs on the CPU in float64 (moved back at the end), so
  the same image with the same seed is degraded bit-identically in every run, on every device,
  with any number of CPU threads (convolutions are FFT-based: pocketfft's result does not depend
  on the thread count, unlike some direct conv2d paths).
* ``params`` is a JSON-serialisable dict of everything that was drawn, recorded per image.

Severity is an integer 1-5. Each operator has a table that maps a level to a *range* of its main
parameter; the parameter is drawn uniformly inside the range from the generator. The ranges of
successive levels do not overlap, and the draws happen in the same order at every level, so with a
fixed seed the same uniform number lands at the same relative place of each range (common random
numbers): the input quality falls strictly with severity, image by image.

A batch is degraded with one parameter draw for the whole batch (one "camera"), while the noise
fields themselves are drawn per element; training code that wants independent parameters per
crop calls the operator once per crop (``tasks.training`` does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

SEVERITIES = (1, 2, 3, 4, 5)
Range = tuple[float, float]


def check_severity(severity: int) -> int:
    if isinstance(severity, bool) or int(severity) != severity or int(severity) not in SEVERITIES:
        raise ValueError(f"severity must be an integer 1-5, got {severity!r}")
    return int(severity)


def uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One uniform draw in [low, high] from ``generator`` (always consumes exactly one number)."""
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return low + u * (high - low)


def level_range(table: Sequence[Range], severity: int) -> Range:
    return table[check_severity(severity) - 1]


class Degradation(ABC):
    """Base class of every operator.

    Subclasses set ``name`` (operator id used in spec strings), ``family`` (noise, blur, lowlight,
    haze, jpeg, rain) and ``stage`` (rank in the physical order of :mod:`.compose`), and
    implement :meth:`apply` on a ``(B,3,H,W)`` float64 CPU tensor.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    stage: ClassVar[int] = 0
    #: severity → range of the main parameter; documented in docs/degradations.md.
    table: ClassVar[tuple[Range, ...]] = ()
    #: what the table's numbers are (for docs and error messages).
    table_unit: ClassVar[str] = ""

    def __init__(self, severity: int = 3):
        self.severity = check_severity(severity)

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        if image.ndim not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f"{self.name}: expected a (3,H,W) or (B,3,H,W) image, got "
                             f"{tuple(image.shape)}")
        if generator.device.type != "cpu":
            raise ValueError(f"{self.name}: the generator must be a CPU torch.Generator so that "
                             "draws are identical on every device")
        batch = image if image.ndim == 4 else image.unsqueeze(0)
        x = batch.detach().to("cpu", torch.float64)
        out, params = self.apply(x, generator)
        out = out.clamp(0.0, 1.0).to(image.device, image.dtype)
        return (out if image.ndim == 4 else out[0]), {"op": self.name, "severity": self.severity,
                                                      **params}

    @abstractmethod
    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        """Degrade ``x`` (B,3,H,W) float64 CPU; return the result (clamped by the caller) and params."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(severity={self.severity})"


# Shared numerics ----------------------------------------------------------------------------------
def filter2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``x`` (B,C,H,W) with ``kernel`` (kh,kw), reflect-padded, via FFT.

    Same result as ``conv2d`` with reflect padding (to ~1e-12), but O(HW log HW) for the large
    motion/defocus kernels and bit-identical across thread counts. Padding is reflect (replicate
    when the kernel is larger than the image).
    """
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    xp = F.pad(x, (pw, kw - 1 - pw, ph, kh - 1 - ph), mode=mode)
    size = xp.shape[-2:]
    spectrum = torch.fft.rfft2(xp) * torch.fft.rfft2(kernel.flip(-1, -2).to(xp), s=size)
    return torch.fft.irfft2(spectrum, s=size)[..., kh - 1:, kw - 1:]


def gaussian_kernel(sigma: float, radius: int | None = None) -> torch.Tensor:
    """Normalised isotropic Gaussian kernel, support ±ceil(3σ)."""
    radius = max(1, int(torch.tensor(3.0 * sigma).ceil())) if radius is None else radius
    r = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(r**2) / (2.0 * sigma**2))
    k = g[:, None] * g[None, :]
    return k / k.sum()


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """IEC 61966-2-1 sRGB decoding (linear segment below 0.04045)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """IEC 61966-2-1 sRGB encoding (linear segment below 0.0031308)."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """BT.709 luma of (B,3,H,W) → (B,1,H,W)."""
    w = torch.tensor([0.2126, 0.7152, 0.0722], dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)

