"""Additive white Gaussian noise denoising on clean colour sets (Kodak24, CBSD68, McMaster).

Protocol of the DnCNN/FFDNet/KAIR/Restormer test scripts: noise is added to the float [0,1]
image and the noisy input is *not* clipped; outputs are clamped and quantised to 8 bit before
PSNR (``quantize=True``), RGB, no border crop.

Noise draw:

* default: a ``torch.Generator`` seeded per image from the task seed and the image id — the same
  noise for an image in every run, on every device, regardless of order or ``--limit``;
* ``reference_noise=true``: exactly those scripts' draw, numpy's legacy ``np.random.seed(0)``
  before each image then ``np.random.normal(0, σ/255, (H,W,3))`` (float64 noise added to the
  float32 image), so numbers can be compared with theirs to the last digit.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.images import read_image
from harness.task import MetricConventions, Sample, Task, register_task
from tasks._common import CLEAN_SETS, CleanSet


class AWGNTask(Task):
    degradation = "noise"
    conventions = MetricConventions(color_space="rgb", crop_border=0, quantize=True)

    def __init__(self, clean: CleanSet, sigma: float, reference_noise: bool = False):
        super().__init__()
        self.clean, self.sigma, self.reference_noise = clean, float(sigma), bool(reference_noise)
        self.name = f"{clean.name}-awgn{int(sigma)}"
        self.description = (f"{clean.name} + AWGN sigma={sigma:g} (unclipped noisy input, "
                            f"8-bit output, RGB PSNR)")
        self.citation = clean.citation
        self.expected_count = clean.expected_count
        self.options = {"sigma": self.sigma, "reference_noise": self.reference_noise}
        self._paths = None

    def _images(self):
        if self._paths is None:
            self._paths = {p.stem: p for p in self.clean.images()}
        return self._paths

    def sample_ids(self) -> list[str]:
        return list(self._images())

    def noise(self, sample_id: str, shape: tuple[int, int, int]) -> tuple[torch.Tensor, dict]:
        """Noise (3,H,W) float32 and the recorded draw parameters."""
        channels, height, width = shape
        if self.reference_noise:
            np.random.seed(seed=0)
            draw = np.random.normal(0, self.sigma / 255.0, (height, width, channels))
            noise = torch.from_numpy(draw.transpose(2, 0, 1).copy())
            return noise, {"type": "awgn", "sigma": self.sigma, "rng": "numpy.legacy",
                           "seed": 0, "clip": False}
        seed = self.image_seed(sample_id)
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32) * (self.sigma / 255.0)
        return noise, {"type": "awgn", "sigma": self.sigma, "rng": "torch.Generator",
                       "seed": seed, "clip": False}

    def load(self, sample_id: str) -> Sample:
        path = self._images()[sample_id]
        clean = read_image(path)
        noise, params = self.noise(sample_id, tuple(clean.shape))
        if self.reference_noise:  # float32 image += float64 noise, as the scripts do
            noisy = (clean.numpy() + noise.numpy()).astype(np.float32)
            lq = torch.from_numpy(noisy)
        else:
            lq = clean + noise
        return Sample(sample_id, lq, clean, {"sigma": self.sigma, "degradation": params,
                                             "gt_path": str(path)})


def _awgn_factory(clean_name: str, sigma: int):
    def factory(reference_noise: bool = False) -> Task:
        return AWGNTask(CLEAN_SETS[clean_name], sigma, reference_noise=reference_noise)

    factory.__doc__ = f"{clean_name} with AWGN sigma={sigma}"
    return factory


for _clean in ("kodak24", "cbsd68", "mcmaster"):
    for _sigma in (15, 25, 50):
        register_task(f"{_clean}-awgn{_sigma}")(_awgn_factory(_clean, _sigma))
