"""Additive white Gaussian noise denoising on clean colour sets (Kodak24, CBSD68, McMaster), and
the LD-RPS/TAO σ=30 protocol on 256×256 Kodak24.

``<set>-awgn{15,25,50}`` follow the DnCNN/FFDNet/KAIR/Restormer test scripts: noise is added to
the float [0,1] image and the noisy input is *not* clipped; outputs are clamped and quantised to
8 bit before PSNR (``quantize=True``), RGB, no border crop. McMaster is read from its TIFFs.

Noise draw:

* default: a ``torch.Generator`` seeded per image from the task seed and the image id — the same
  noise for an image in every run, on every device, regardless of order or ``--limit``;
* ``reference_noise=true``: exactly those scripts' draw, numpy's legacy ``np.random.seed(0)``
  before each image then ``np.random.normal(0, σ/255, (H,W,3))`` (float64 noise added to the
  float32 image), so numbers can be compared with theirs to the last digit.

``kodak24-tao256-awgn30`` is LD-RPS's denoising benchmark (``ldrps.md`` §5, TAO README): Kodak24
centre-cropped along the shorter edge and bicubic-resized to 256×256 (:func:`tasks._common.tao_square`,
built here from the full 768×512 set), σ=30. TAO distributes its noisy inputs as 8-bit PNGs drawn
with an unpublished RNG, so the preset re-draws the noise (seeded per image as above) and, like
those files, **clips and quantises the noisy input** to 8 bit (option ``clip_input``, default on
for this preset only). Scoring is LD-RPS's: RGB PSNR, Y (yiq) SSIM, 8-bit outputs. Numbers are
therefore close to, not identical with, LD-RPS/TAO tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api.task import MetricConventions, Sample, Task, register_task
from harness.assets.datasets import DatasetSpec
from harness.io.images import read_image
from tasks._common import CLEAN_SETS, CleanSet, tao_square
from tasks._dataset import image_size


class AWGNTask(Task):
    degradation = "noise"
    conventions = MetricConventions(color_space="rgb", crop_border=0, quantize=True)

    def __init__(self, clean: CleanSet, sigma: float, reference_noise: bool = False,
                 clip_input: bool = False):
        super().__init__()
        self.clean, self.sigma, self.reference_noise = clean, float(sigma), bool(reference_noise)
        self.clip_input = bool(clip_input)
        self.name = f"{clean.name}-awgn{int(sigma)}"
        self.description = (f"{clean.name} + AWGN sigma={sigma:g} (unclipped noisy input, "
                            f"8-bit output, RGB PSNR)")
        self.citation = clean.citation
        self.expected_count = clean.expected_count
        self.expected_sizes = clean.sizes
        self.options = {"sigma": self.sigma, "reference_noise": self.reference_noise,
                        "clip_input": self.clip_input}
        self._paths: dict[str, Path] | None = None

    def _images(self) -> dict[str, Path]:
        if self._paths is None:
            self._paths = {p.stem: p for p in self.clean.images()}
        return self._paths

    def sample_ids(self) -> list[str]:
        return list(self._images())

    def data_spec(self) -> DatasetSpec:
        return self.clean.spec()

    def data_location(self) -> dict[str, Any]:
        return self.clean.match().describe()

    def probe(self, sample_id: str) -> dict[str, Any]:
        size = image_size(self._images()[sample_id])
        return {"lq_size": size, "gt_size": size}

    def clean_image(self, sample_id: str) -> torch.Tensor:
        return read_image(self._images()[sample_id])

    def noise(self, sample_id: str, shape: tuple[int, int, int]) -> tuple[torch.Tensor, dict]:
        """Noise (3,H,W) and the recorded draw parameters."""
        channels, height, width = shape
        if self.reference_noise:
            np.random.seed(seed=0)
            draw = np.random.normal(0, self.sigma / 255.0, (height, width, channels))
            noise = torch.from_numpy(draw.transpose(2, 0, 1).copy())
            return noise, {"type": "awgn", "sigma": self.sigma, "rng": "numpy.legacy",
                           "seed": 0, "clip": self.clip_input}
        seed = self.image_seed(sample_id)
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32) * (self.sigma / 255.0)
        return noise, {"type": "awgn", "sigma": self.sigma, "rng": "torch.Generator",
                       "seed": seed, "clip": self.clip_input}

    def load(self, sample_id: str) -> Sample:
        clean = self.clean_image(sample_id)
        noise, params = self.noise(sample_id, tuple(clean.shape))
        if self.reference_noise:  # float32 image += float64 noise, as the scripts do
            noisy = (clean.numpy() + noise.numpy()).astype(np.float32)
            lq = torch.from_numpy(noisy)
        else:
            lq = clean + noise
        if self.clip_input:  # the noisy image as an 8-bit file would hold it
            lq = torch.round(lq.clamp(0.0, 1.0) * 255.0) / 255.0
        return Sample(sample_id, lq, clean, {"sigma": self.sigma, "degradation": params,
                                             "gt_path": str(self._images()[sample_id])})


class TaoAWGNTask(AWGNTask):
    """AWGN on the TAO 256×256 version of a clean set (LD-RPS denoising protocol)."""

    conventions = MetricConventions(color_space="rgb", ssim_color_space="yiq", crop_border=0,
                                    quantize=True)

    def __init__(self, clean: CleanSet, sigma: float, size: int = 256,
                 reference_noise: bool = False, clip_input: bool = True):
        super().__init__(clean, sigma, reference_noise=reference_noise, clip_input=clip_input)
        self.size = int(size)
        self.name = f"{clean.name}-tao{self.size}-awgn{int(sigma)}"
        self.description = (f"{clean.name} TAO {self.size}x{self.size} (centre crop + bicubic) + "
                            f"AWGN sigma={sigma:g}, 8-bit noisy input; LD-RPS scoring (RGB PSNR, "
                            f"Y(yiq) SSIM)")
        self.citation = (f"{clean.citation}; Gou et al. ICML 2024 (TAO protocol); LD-RPS "
                         f"(AMAP-ML/LD-RPS) denoising benchmark")
        self.expected_sizes = frozenset({(self.size, self.size)})
        self.options["size"] = self.size
        self.options["preprocess"] = "tao: centre crop shorter edge, PIL bicubic"

    def probe(self, sample_id: str) -> dict[str, Any]:
        image_size(self._images()[sample_id])  # readable header
        return {"lq_size": (self.size, self.size), "gt_size": (self.size, self.size)}

    def clean_image(self, sample_id: str) -> torch.Tensor:
        return tao_square(self._images()[sample_id], self.size)


def _awgn_factory(clean_name: str, sigma: int):
    def factory(reference_noise: bool = False, clip_input: bool = False) -> Task:
        return AWGNTask(CLEAN_SETS[clean_name], sigma, reference_noise=reference_noise,
                        clip_input=clip_input)

    factory.__doc__ = f"{clean_name} with AWGN sigma={sigma}"
    return factory


for _clean in ("kodak24", "kodak24c500", "cbsd68", "mcmaster"):
    for _sigma in (15, 25, 50):
        register_task(f"{_clean}-awgn{_sigma}")(_awgn_factory(_clean, _sigma))


@register_task("kodak24-tao256-awgn30", "ldrps-denoise")
def kodak24_tao256_awgn30(reference_noise: bool = False, clip_input: bool = True) -> Task:
    """LD-RPS denoising: Kodak24 TAO 256×256, σ=30."""
    return TaoAWGNTask(CLEAN_SETS["kodak24"], 30, 256, reference_noise=reference_noise,
                       clip_input=clip_input)
