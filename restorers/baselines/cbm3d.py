"""BM3D / CBM3D denoising (Dabov et al.) through the reference ``bm3d`` package (Mäkinen et al.).

Colour images go through ``bm3d.bm3d_rgb`` (CBM3D: block matching on the luminance of the
opponent colour transform, collaborative filtering on all three channels); an image whose three
channels are equal is denoised once with grey ``bm3d.bm3d`` (the same algorithm without the colour
transform) and copied back to three channels.

Noise level (``sigma``, recorded in the config together with ``sigma_source``):

* ``"task"`` (default): the task's known σ (``meta["sigma"]``, 8-bit units, AWGN tasks) — the
  non-blind setting of every published CBM3D table; when the task gives none, σ is estimated;
* ``"estimate"``: always estimated per image with scikit-image's ``estimate_sigma`` (wavelet
  median-absolute-deviation, Donoho & Johnstone 1994), averaged over the three channels;
* a number: σ in 8-bit units.

The input is *not* clipped: AWGN tasks hand over the unclipped noisy image and clipping would
bias the noise that BM3D models as zero-mean Gaussian. The base class clamps the output.

Threads: the ``bm3d`` library runs its own thread pool (not torch's, so ``--threads`` does not
reach it) and by default uses every core of the host, and its authors note that more than one
thread "may yield slightly different results each application". A benchmark number must not
depend on the machine's core count, so ``num_threads`` defaults to 1 (deterministic; the figures
in docs/baselines.md); a larger value is faster and is recorded in the config.

Speed: on the 2-core CPU this project runs on, one 768×512 Kodak image takes about 50 s with the
default ``'np'`` profile (the package's "normal profile"); a 128×128 crop about 2 s.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Literal

import bm3d
import numpy as np
import torch
from skimage.restoration import estimate_sigma

from harness.api.options import Range
from harness.api.restorer import Restorer, register_restorer
from restorers.baselines._numpy import map_images

#: the package's profile names and classes (as its own ``profile=`` strings select them)
PROFILES = {"np": bm3d.BM3DProfile, "refilter": bm3d.BM3DProfileRefilter, "vn": bm3d.BM3DProfileVN,
            "vn_old": bm3d.BM3DProfileVNOld, "high": bm3d.BM3DProfileHigh, "deb": bm3d.BM3DProfileDeb}


@register_restorer("cbm3d", "bm3d")
class CBM3D(Restorer):
    description = "BM3D/CBM3D (bm3d package); sigma from the task (AWGN) or estimated"
    degradations = ("noise",)
    paper = ("Dabov, Foi, Katkovnik, Egiazarian. Image denoising by sparse 3-D transform-domain "
             "collaborative filtering. IEEE TIP 2007; colour: Color image denoising via sparse 3D "
             "collaborative filtering with grouping constraint in luminance-chrominance space. "
             "ICIP 2007; implementation: Mäkinen, Azzari, Foi. TIP 2020 (bm3d 4.x)")
    licence = "bm3d package: free for non-commercial use only (Tampere University licence); no weights"
    input_range = "RGB float, nominally [0,1]; unclipped noisy values accepted (not clipped)"

    def __init__(self, sigma: Literal["task", "estimate"] | Annotated[float, Range(0, 255)] = "task",
                 profile: Literal["np", "refilter", "vn", "vn_old", "high", "deb"] = "np",
                 colorspace: Literal["opp", "YCbCr"] = "opp",
                 num_threads: Annotated[int, Range(1, 1024)] = 1):
        """
        Args:
            sigma: ``"task"``, ``"estimate"`` or a number in 8-bit units (25 = σ 25/255).
            profile: a ``bm3d.BM3DProfile`` name; ``'np'`` is the package's default.
            colorspace: CBM3D colour transform, ``'opp'`` (opponent, the paper's) or ``'YCbCr'``.
            num_threads: threads of the bm3d library (1: deterministic; see the module docstring).
        """
        super().__init__()
        if not (isinstance(sigma, (int, float)) or sigma in ("task", "estimate")):
            raise ValueError(f"cbm3d: sigma must be 'task', 'estimate' or a number, got {sigma!r}")
        if profile not in PROFILES:
            raise ValueError(f"cbm3d: profile must be one of {tuple(PROFILES)}, got {profile!r}")
        if colorspace not in ("opp", "YCbCr"):
            raise ValueError(f"cbm3d: colorspace must be 'opp' or 'YCbCr', got {colorspace!r}")
        self.sigma, self.profile, self.colorspace = sigma, profile, colorspace
        self.num_threads = int(num_threads)
        self._config["sigma_source"] = "task, else estimated" if sigma == "task" else str(sigma)

    def noise_sigma(self, image: np.ndarray, meta: dict[str, Any]) -> tuple[float, str]:
        """σ in [0,1] units and where it came from ("fixed", "task" or "estimated")."""
        if isinstance(self.sigma, (int, float)):
            return float(self.sigma) / 255.0, "fixed"
        if self.sigma == "task" and meta.get("sigma") is not None:
            return float(meta["sigma"]) / 255.0, "task"
        with warnings.catch_warnings():  # numpy warns "mean of empty slice" on a flat image
            warnings.simplefilter("ignore", RuntimeWarning)
            estimate = float(np.mean(estimate_sigma(image, channel_axis=-1)))
        # a flat image gives NaN (MAD of no wavelet detail): nothing to denoise, σ = 0
        return (estimate if np.isfinite(estimate) else 0.0), "estimated"

    def _denoise(self, image: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        sigma, _ = self.noise_sigma(image, meta)
        if sigma <= 0:
            return image
        profile = self.bm3d_profile()
        if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]):
            grey = np.asarray(bm3d.bm3d(image[..., 0], sigma, profile=profile))
            return np.repeat(grey.reshape(image.shape[:2])[..., None], 3, axis=-1)
        return bm3d.bm3d_rgb(image, sigma, profile=profile, colorspace=self.colorspace)

    def bm3d_profile(self) -> bm3d.BM3DProfile:
        """The named profile with this restorer's thread count (the package's own selection)."""
        profile = PROFILES[self.profile]()
        profile.num_threads = self.num_threads
        return profile

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return map_images(lq, lambda image: self._denoise(image, meta))
