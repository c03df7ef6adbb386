"""Motion deblurring: the GoPro test set (``gopro``).

Official layout ``GOPRO_Large/test/<scene>/{blur,blur_gamma,sharp}/*.png``: 11 scenes, 1111
pairs at 1280×720. The benchmark input is ``blur`` (**not** ``blur_gamma``, the gamma-corrected
synthesis); sample ids are ``<scene>/<stem>``. Flat re-layouts (Restormer
``Datasets/test/GoPro/{input,target}``, MMagic ``gopro/test/{blur,sharp}``) pair by file stem.

Conventions: RGB PSNR/SSIM on 8-bit outputs, no crop (Restormer ``evaluate_gopro_hide.m`` reads
saved PNGs). The papers' SSIM is MATLAB's 3-D ``ssim``; ours is Wang/pyiqa per channel, which
reads lower (MMagic re-measures Restormer at 0.9496 vs ≈0.961) — logged as ``metric.ssim``.
"""

from __future__ import annotations

from pathlib import Path

from harness.api.task import MetricConventions, register_task
from harness.assets.datasets import DatasetSpec, DataSource
from tasks._common import list_images
from tasks._dataset import DatasetTask, layouts_for

GOPRO_SPEC = DatasetSpec(
    "GoPro test",
    layouts=layouts_for(
        ("official", {"scenes": "deblur/GOPRO_Large/test"}, "<scene>/{blur,sharp}/*.png"),
        ("official-root", {"scenes": "GOPRO_Large/test"}),
        ("official-lower", {"scenes": "deblur/gopro/test"}),
        ("restormer", {"lq": "deblur/GoPro/input", "gt": "deblur/GoPro/target"},
         "Restormer Datasets/test/GoPro/{input,target}"),
        ("restormer-root", {"lq": "Datasets/test/GoPro/input", "gt": "Datasets/test/GoPro/target"}),
        ("mmagic", {"lq": "gopro/test/blur", "gt": "gopro/test/sharp"}, "MMagic data/gopro/test"),
    ),
    sources=(DataSource("manual", "https://seungjunnah.github.io/Datasets/gopro (GOPRO_Large.zip)",
                        note="CC BY 4.0"),),
    homepage="https://seungjunnah.github.io/Datasets/gopro",
)


class GoPro(DatasetTask):
    name = "gopro"
    description = "GoPro test (11 scenes, 1111 pairs, 1280x720), blur -> sharp, RGB PSNR/SSIM, 8-bit"
    citation = ("Nah, Kim, Lee. Deep Multi-scale Convolutional Neural Network for Dynamic Scene "
                "Deblurring. CVPR 2017")
    degradation = "blur"
    dataset = GOPRO_SPEC
    expected_count = 1111
    expected_sizes = frozenset({(720, 1280)})
    conventions = MetricConventions(color_space="rgb", crop_border=0, quantize=True)

    def build_index(self) -> dict[str, tuple[Path, Path | None]]:
        scenes = self.match().paths.get("scenes")
        if scenes is None:
            return super().build_index()
        index: dict[str, tuple[Path, Path | None]] = {}
        for scene in sorted(p for p in scenes.iterdir() if p.is_dir()):
            blur = scene / "blur"
            if not blur.is_dir():  # blur_gamma alone is not the benchmark input
                continue
            sharp = {p.stem: p for p in list_images(scene / "sharp")} if (scene / "sharp").is_dir() else {}
            for path in list_images(blur):
                index[f"{scene.name}/{path.stem}"] = (path, sharp.get(path.stem))
        return index

    def gt_dir(self) -> Path | None:
        paths = self.match().paths
        return paths.get("scenes") or paths.get("gt")


register_task("gopro")(GoPro)
