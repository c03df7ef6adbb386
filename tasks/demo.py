"""The embedded ``demo`` task: scikit-image's bundled photographs with a fixed seeded degradation.

It needs no download and no data root, so ``bench run`` works right after ``pip install``. The
five images are centre-cropped to 256×256 to keep a CPU run to seconds. The degradation is the
library's Gaussian noise (:class:`tasks.degradations.noise.GaussianNoise`) at the fixed level
σ=25 (8-bit units), seeded per image and clipped to [0,1] like a real sensor. It is
:class:`tasks.synthetic.SyntheticTask` over the ``skimage`` clean set, with two differences kept
from the first demo: the known σ is passed to restorers (``meta["sigma"]``, so the default
``nlm`` baseline is non-blind here and its score is meaningful), and the per-image seed is the
generic ``Task.image_seed`` of the name ``demo`` (the same draws as before the rebuild).
"""

from __future__ import annotations

from harness.api.task import Sample, Task, register_task
from tasks.synthetic import SKIMAGE_PHOTOS, SyntheticTask

DEMO_IMAGES = SKIMAGE_PHOTOS
CROP = 256
SIGMA = 25.0


@register_task("demo")
class DemoTask(SyntheticTask):
    def __init__(self) -> None:
        super().__init__("skimage", "gaussian_noise", 3, sigma=SIGMA, name="demo", description=(
            f"{len(DEMO_IMAGES)} scikit-image photos, {CROP}x{CROP}, Gaussian noise sigma=25 "
            "(seeded); works offline with zero set-up"))
        self.degradation = "noise"

    def image_seed(self, sample_id: str) -> int:
        return Task.image_seed(self, sample_id)

    def load(self, sample_id: str) -> Sample:
        sample = super().load(sample_id)
        sample.meta["sigma"] = SIGMA
        return sample
