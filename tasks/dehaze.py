"""Dehazing presets: RESIDE SOTS indoor / outdoor and HSTS (TAO/LD-RPS 256×256).

* ``sots-indoor``: ``SOTS/indoor/{hazy,gt}``, 500 hazy images from 50 GTs × 10
  (``1400_1.png`` → ``1400.png``). Some downloads pair 620×460 hazy images with 640×480 GTs
  (GCANet#2); the **GT centre-crop rule** (option ``gt_crop``, on by default, logged) crops the GT
  to the hazy image's size around its centre — 10 px per side in that case. A GT smaller than its
  hazy image is an error, never padded.
* ``sots-outdoor``: ``SOTS/outdoor/{hazy,gt}``, 500 pairs (``0001_0.8_0.2.jpg`` → ``0001.png``);
  no crop rule (the sizes agree).
* SOTS conventions follow DehazeFormer ``test.py``: RGB PSNR on the **float** output
  (``quantize=False``). DehazeFormer's SSIM downsamples by ``round(min(H,W)/256)`` first; ours is
  Wang without downsampling (``metric.ssim=wang``), so SSIM reads differently — documented, logged.
* ``hsts``: the 10 synthetic HSTS pairs as TAO/LD-RPS distribute them (centre crop + 256×256,
  re-encoded JPEG); LD-RPS scoring (``ldrps.md`` §5): RGB PSNR, Y (yiq) SSIM, 8-bit outputs.
  Not comparable with full-size HSTS tables.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.api.task import MetricConventions, register_task
from harness.assets.datasets import DatasetSpec, DataSource
from tasks._dataset import DatasetTask, layouts_for

RESIDE = "https://sites.google.com/view/reside-dehaze-datasets/reside-standard"
RESIDE_CITATION = ("Li, Ren, Fu, Tao, Feng, Zeng, Wang. Benchmarking Single-Image Dehazing and "
                   "Beyond. TIP 2019 (RESIDE)")


def first_field(stem: str) -> str:
    """RESIDE pairing: the GT stem is the hazy stem up to its first underscore."""
    return stem.split("_")[0]


def center_crop_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top, left = (image.shape[-2] - height) // 2, (image.shape[-1] - width) // 2
    return image[..., top:top + height, left:left + width].contiguous()


def _sots_spec(part: str, official: str) -> DatasetSpec:
    upper = "IN" if part == "indoor" else "OUT"
    return DatasetSpec(
        f"RESIDE SOTS {part}",
        layouts=layouts_for(
            ("official", {"lq": f"dehaze/SOTS/{part}/hazy", "gt": f"dehaze/SOTS/{part}/gt"}, official),
            ("official-clear", {"lq": f"dehaze/SOTS/{part}/hazy", "gt": f"dehaze/SOTS/{part}/clear"}),
            ("official-root", {"lq": f"SOTS/{part}/hazy", "gt": f"SOTS/{part}/gt"}),
            ("nyuhaze500", {"lq": "dehaze/SOTS/indoor/nyuhaze500/hazy",
                            "gt": "dehaze/SOTS/indoor/nyuhaze500/gt"}) if part == "indoor" else
            ("outdoor-nested", {"lq": "dehaze/SOTS/outdoor/outdoor/hazy",
                                "gt": "dehaze/SOTS/outdoor/outdoor/gt"}),
            ("dehazeformer", {"lq": f"dehaze/RESIDE-{upper}/test/hazy",
                              "gt": f"dehaze/RESIDE-{upper}/test/GT"},
             f"DehazeFormer data/RESIDE-{upper}/test/{{hazy,GT}}"),
            ("dehazeformer-root", {"lq": f"RESIDE-{upper}/test/hazy", "gt": f"RESIDE-{upper}/test/GT"}),
        ),
        sources=(DataSource("manual", RESIDE, note="RESIDE-Standard SOTS (Google Drive / Baidu)"),),
        homepage=RESIDE,
    )


class SOTS(DatasetTask):
    degradation = "haze"
    citation = RESIDE_CITATION
    expected_count = 500
    conventions = MetricConventions(color_space="rgb", crop_border=0, quantize=False)
    pair_rule = staticmethod(first_field)

    def __init__(self, gt_crop: bool = False) -> None:
        super().__init__()
        self.gt_crop = bool(gt_crop)
        self.options = {"gt_crop": self.gt_crop}

    def gt_size_for(self, gt_size: tuple[int, int], lq_size: tuple[int, int]) -> tuple[int, int]:
        if self.gt_crop and gt_size[0] >= lq_size[0] and gt_size[1] >= lq_size[1]:
            return lq_size
        return gt_size

    def prepare_gt(self, gt: torch.Tensor, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        if not self.gt_crop or gt.shape == lq.shape:
            return gt
        height, width = lq.shape[-2:]
        if gt.shape[-2] < height or gt.shape[-1] < width:
            raise ValueError(f"GT {tuple(gt.shape[-2:])} is smaller than the hazy image "
                             f"{(height, width)}; the centre-crop rule only crops")
        meta["gt_crop"] = {"from": list(gt.shape[-2:]), "to": [height, width]}
        return center_crop_to(gt, height, width)


class SOTSIndoor(SOTS):
    name = "sots-indoor"
    description = ("RESIDE SOTS indoor (500 hazy / 50 GT), RGB float PSNR; GT centre-cropped to "
                   "the hazy size (gt_crop)")
    dataset = _sots_spec("indoor", "1400_1.png -> 1400.png")

    def __init__(self, gt_crop: bool = True) -> None:
        super().__init__(gt_crop=gt_crop)


class SOTSOutdoor(SOTS):
    name = "sots-outdoor"
    description = "RESIDE SOTS outdoor (500 pairs), RGB float PSNR"
    dataset = _sots_spec("outdoor", "0001_0.8_0.2.jpg -> 0001.png")


HSTS_SPEC = DatasetSpec(
    "HSTS synthetic (TAO 256x256)",
    layouts=layouts_for(
        ("ci", {"lq": "dehaze/hsts_synthetic_tao256/hazy", "gt": "dehaze/hsts_synthetic_tao256/clear"}),
        ("tao", {"lq": "dehaze/HSTS_256x256/synthetic", "gt": "dehaze/HSTS_256x256/original"},
         "TAO test_samples/HSTS_256x256/{synthetic,original}"),
        ("tao-root", {"lq": "test_samples/HSTS_256x256/synthetic",
                      "gt": "test_samples/HSTS_256x256/original"}),
        ("ldrps", {"lq": "HSTS/input", "gt": "HSTS/target"}, "LD-RPS ./data/HSTS/{input,target}"),
    ),
    sources=(DataSource("manual", "https://github.com/YBGou/2024-ICML-TAO/tree/main/test_samples/HSTS_256x256",
                        note="TAO splits the hazy images over synthetic/ and sub_syn_*/ folders: "
                             "gather all 10 into one folder"),),
    homepage="https://github.com/YBGou/2024-ICML-TAO",
)


class HSTS(DatasetTask):
    name = "hsts"
    description = ("HSTS synthetic, TAO/LD-RPS 256x256 copies (10 pairs, JPEG); RGB PSNR, Y(yiq) "
                   "SSIM, 8-bit; not comparable with full-size HSTS")
    citation = f"{RESIDE_CITATION}; Gou et al. ICML 2024 (TAO 256x256 protocol)"
    degradation = "haze"
    dataset = HSTS_SPEC
    expected_count = 10
    expected_sizes = frozenset({(256, 256)})
    conventions = MetricConventions(color_space="rgb", ssim_color_space="yiq", quantize=True)


register_task("sots-indoor")(SOTSIndoor)
register_task("sots-outdoor")(SOTSOutdoor)
register_task("hsts")(HSTS)
