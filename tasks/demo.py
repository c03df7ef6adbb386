"""The embedded ``demo`` task: scikit-image's bundled photographs with a fixed seeded degradation.

It needs no download and no data root, so ``bench run`` works right after ``pip install``. The
images are centre-cropped to 256×256 to keep a CPU run to seconds. The degradation is AWGN
σ=25 (seeded per image, clipped to [0,1] like a real sensor); synthetic-degradation presets
build on the same seeding rule.
"""

from __future__ import annotations

import torch

from harness.task import MetricConventions, Sample, Task, register_task

DEMO_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")
CROP = 256
SIGMA = 25.0


def _skimage_image(name: str) -> torch.Tensor:
    from skimage import data

    array = getattr(data, name)()
    if isinstance(array, tuple):  # stereo pairs: take the left view
        array = array[0]
    image = torch.from_numpy(array[..., :3].copy()).permute(2, 0, 1).float() / 255.0
    height, width = image.shape[-2:]
    top, left = (height - CROP) // 2, (width - CROP) // 2
    return image[:, top:top + CROP, left:left + CROP].contiguous()


@register_task("demo")
class DemoTask(Task):
    name = "demo"
    description = (f"{len(DEMO_IMAGES)} scikit-image photos, 256x256, AWGN sigma=25 (seeded); "
                   "works offline with zero set-up")
    citation = "scikit-image data module (public-domain / CC0 images)"
    degradation = "noise"
    conventions = MetricConventions(color_space="rgb", quantize=True)
    expected_count = len(DEMO_IMAGES)

    def sample_ids(self) -> list[str]:
        return list(DEMO_IMAGES)

    def load(self, sample_id: str) -> Sample:
        clean = _skimage_image(sample_id)
        seed = self.image_seed(sample_id)
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(clean.shape, generator=generator) * (SIGMA / 255.0)
        lq = (clean + noise).clamp(0.0, 1.0)
        return Sample(sample_id, lq, clean, {
            "sigma": SIGMA,
            "degradation": {"type": "awgn", "sigma": SIGMA, "seed": seed, "clip": True}})
