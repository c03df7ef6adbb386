"""How far a re-measured value may sit from the reference: declared once, per metric.

Why these numbers (results/README.md says the same):

* PSNR 0.01 dB absolute: the CPU PSNR is float64 (the same value on any thread count or CPU),
  so the only legitimate movement is a restorer's own float32 arithmetic (BLAS kernel choice,
  thread split); 0.01 dB is the resolution papers print, so a larger move is a real change.
* SSIM 1e-4 absolute: the fourth decimal, the resolution SSIM is printed at.
* NIQE 1 % relative: NIQE's MATLAB-faithful port agrees with the official values to 0.6 %, and
  its block statistics are sensitive to a single grey level of the output; a relative bound fits
  a no-reference score whose scale varies with the image set.
* LPIPS 1e-4 absolute: a network distance in [0, 1], printed to three or four decimals.
* Latency and peak memory are **not compared**: they depend on the machine and its load; the
  reference keeps them (with thread count and device) to read, not to test.

A metric without a declared tolerance is reported as "not compared".
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    value: float
    relative: bool = False

    def limit(self, reference: float) -> float:
        return self.value * abs(reference) if self.relative else self.value

    def describe(self) -> str:
        return f"{self.value:g} relative" if self.relative else f"{self.value:g}"


TOLERANCES: dict[str, Tolerance] = {
    "psnr": Tolerance(0.01),
    "ssim": Tolerance(1e-4),
    "niqe": Tolerance(0.01, relative=True),
    "lpips": Tolerance(1e-4),
}
#: kept in the reference, never compared
NOT_COMPARED = ("latency_ms", "peak_mem_mb")


@dataclass(frozen=True)
class Comparison:
    """One metric of one cell: ours against the reference."""

    restorer: str
    task: str
    metric: str
    ours: float | None
    reference: float | None
    #: "within", "outside", "not compared", "missing" (one side has no value)
    verdict: str

    @property
    def difference(self) -> float | None:
        if self.ours is None or self.reference is None:
            return None
        return self.ours - self.reference

    @property
    def failed(self) -> bool:
        return self.verdict in ("outside", "missing")


def compare_value(restorer: str, task: str, metric: str, ours: float | None,
                  reference: float | None) -> Comparison:
    """The verdict for one metric (module docstring: the tolerances and why)."""
    if metric in NOT_COMPARED or metric not in TOLERANCES:
        return Comparison(restorer, task, metric, ours, reference, "not compared")
    if ours is None or reference is None or not (math.isfinite(ours) and math.isfinite(reference)):
        same = ours is None and reference is None
        return Comparison(restorer, task, metric, ours, reference,
                          "not compared" if same else "missing")
    inside = abs(ours - reference) <= TOLERANCES[metric].limit(reference) + 1e-12
    return Comparison(restorer, task, metric, ours, reference, "within" if inside else "outside")
