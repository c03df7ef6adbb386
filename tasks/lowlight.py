"""Low-light enhancement presets: LOL-v1 (full size and the TAO/LD-RPS 256×256 protocol), the
unpaired sets LIME / DICM / MEF / NPE / VV (no ground truth: NIQE only) and BAID (backlit).

Conventions (``conventions.md`` §2.1):

* ``lolv1``: RGB PSNR/SSIM on the **float** output (Retinexformer ``test_from_dataset.py``;
  BasicSR forks quantise — pass ``quantize=true`` for those), no crop; ``gt_mean`` (KinD /
  Retinexformer ``--GT_mean``) is off by default and, like every convention, logged.
* ``lolv1-tao256``: the LD-RPS/TAO evaluation (``ldrps.md`` §5): pyiqa RGB PSNR, **Y (yiq) SSIM**,
  outputs saved as 8-bit images before scoring (``quantize``). The images are TAO's centre-crop
  400×400 + bicubic 256×256 copies, so numbers are *not* comparable with full-size LOL tables.
* unpaired sets: Zero-DCE's ``test_data`` copies (DICM 64 of the 69 originals, LIME 10, MEF 17,
  NPE 8, VV 24 — the counts Zero-DCE and most LLIE papers evaluate on).
* ``baid``: BAID test split (368 pairs, Lv et al. 2022) as CLIP-LIT evaluates it, RGB, quantised.
  Its folder names vary between copies; the candidates below are **unverified** guesses, and a
  copy in another layout can be used with ``folder[lq=…,gt=…]``.
"""

from __future__ import annotations

from harness.api.task import MetricConventions, register_task
from harness.assets.datasets import DatasetSpec, DataSource, Layout
from tasks._dataset import DatasetTask, layouts_for

LOL_CITATION = "Wei, Wang, Yang, Liu. Deep Retinex Decomposition for Low-Light Enhancement. BMVC 2018"
TAO_CITATION = ("Gou et al. Test-Time Degradation Adaptation for Open-Set Image Restoration. "
                "ICML 2024 (TAO; data protocol reused by LD-RPS)")
ZERO_DCE = "https://github.com/Li-Chongyi/Zero-DCE/tree/master/Zero-DCE_code/data/test_data"

LOL_SPEC = DatasetSpec(
    "LOL-v1 eval15",
    layouts=(
        *layouts_for(
            ("official", {"lq": "lowlight/LOLdataset/eval15/low", "gt": "lowlight/LOLdataset/eval15/high"},
             "LOLdataset.zip extracted under lowlight/"),
            ("official-root", {"lq": "LOLdataset/eval15/low", "gt": "LOLdataset/eval15/high"}),
            ("lolv1", {"lq": "lowlight/lolv1/eval15/low", "gt": "lowlight/lolv1/eval15/high"}),
            ("retinexformer", {"lq": "lowlight/LOLv1/Test/input", "gt": "lowlight/LOLv1/Test/target"},
             "Retinexformer data/LOLv1/Test/{input,target}"),
            ("retinexformer-root", {"lq": "LOLv1/Test/input", "gt": "LOLv1/Test/target"}),
            ("hf-laxury", {"lq": "lowlight/LOLv1/Test/low", "gt": "lowlight/LOLv1/Test/high"},
             "Hugging Face laxury/LLIE-LoL-v1 Test/ folder"),
            ("ci-flat", {"lq": "lowlight/lolv1_eval15/low", "gt": "lowlight/lolv1_eval15/high"}),
        ),
        Layout("ci-partial", (("lq", "lowlight/lolv1_eval15_low_partial/low"),
                              ("gt", "lowlight/lolv1_eval15_low_partial/high")),
               frozenset({"gt"}), "partial copy: some eval15 low images, GT possibly absent"),
    ),
    sources=(
        DataSource("manual", "https://daooshee.github.io/BMVC2018website/",
                   note="official LOLdataset.zip (Google Drive / Baidu)"),
        DataSource("hf-files", "laxury/LLIE-LoL-v1", files=(("Test/*/*", "lowlight/LOLv1/Test"),),
                   note="unofficial copy, licence unknown, folder names unverified"),
    ),
    homepage="https://daooshee.github.io/BMVC2018website/",
)

TAO_LOL_SPEC = DatasetSpec(
    "LOL-v1 eval15 TAO 256x256",
    layouts=layouts_for(
        ("ci", {"lq": "lowlight/lolv1_eval15_tao256/low", "gt": "lowlight/lolv1_eval15_tao256/high"}),
        ("tao", {"lq": "lowlight/LOL_256x256/lowlight", "gt": "lowlight/LOL_256x256/original"},
         "TAO test_samples/LOL_256x256/{lowlight,original}"),
        ("tao-root", {"lq": "test_samples/LOL_256x256/lowlight",
                      "gt": "test_samples/LOL_256x256/original"}),
        ("ldrps", {"lq": "LOLv1/input", "gt": "LOLv1/target"}, "LD-RPS ./data/LOLv1/{input,target}"),
    ),
    sources=(DataSource("manual", "https://github.com/YBGou/2024-ICML-TAO/tree/main/test_samples/LOL_256x256",
                        note="Apache-2.0 repo; LOL terms apply to the images"),),
    homepage="https://github.com/YBGou/2024-ICML-TAO",
)


class LOLv1(DatasetTask):
    """LOL-v1 eval15 at full size (400×600)."""

    name = "lolv1"
    description = "LOL-v1 eval15 (15 pairs, 600x400), RGB float PSNR/SSIM; gt_mean option (off)"
    citation = LOL_CITATION
    degradation = "lowlight"
    dataset = LOL_SPEC
    expected_count = 15
    expected_sizes = frozenset({(400, 600)})
    conventions = MetricConventions(color_space="rgb", crop_border=0, gt_mean=False, quantize=False)


class LOLv1Tao256(DatasetTask):
    name = "lolv1-tao256"
    description = ("LOL-v1 eval15, TAO/LD-RPS 256x256 copies (centre crop 400 + bicubic 256); "
                   "RGB PSNR, Y(yiq) SSIM, 8-bit; not comparable with full-size LOL")
    citation = f"{LOL_CITATION}; {TAO_CITATION}"
    degradation = "lowlight"
    dataset = TAO_LOL_SPEC
    expected_count = 15
    expected_sizes = frozenset({(256, 256)})
    conventions = MetricConventions(color_space="rgb", ssim_color_space="yiq", quantize=True)


def _unpaired_spec(title: str, folder: str, upper: str) -> DatasetSpec:
    return DatasetSpec(
        title,
        layouts=layouts_for(
            ("ci", {"lq": f"lowlight/{folder}"}),
            ("upper", {"lq": f"lowlight/{upper}"}),
            ("zero-dce", {"lq": f"test_data/{upper}"}, "Zero-DCE data/test_data/<SET>"),
            ("root", {"lq": upper}),
        ),
        sources=(DataSource("manual", f"{ZERO_DCE}/{upper}",
                            note="Zero-DCE test_data (CC BY-NC 4.0 per its README)"),),
        homepage=ZERO_DCE,
    )


class UnpairedLowLight(DatasetTask):
    degradation = "lowlight"
    has_gt = False
    conventions = MetricConventions(color_space="rgb", quantize=True)


def _unpaired(name: str, upper: str, count: int, citation: str, note: str = "") -> None:
    spec = _unpaired_spec(f"{upper} (low-light, no GT)", name, upper)
    cls = type(f"{upper}Task", (UnpairedLowLight,), {
        "__module__": __name__,  # type() under ABCMeta would say 'abc' (reprs, origins)
        "name": name, "dataset": spec, "expected_count": count, "citation": citation,
        "description": f"{upper} low-light, {count} images, no ground truth (NIQE only){note}"})
    register_task(name)(cls)


_unpaired("lime", "LIME", 10, "Guo, Li, Ling. LIME: Low-Light Image Enhancement via Illumination "
          "Map Estimation. TIP 2017")
_unpaired("dicm", "DICM", 64, "Lee, Lee, Kim. Contrast enhancement based on layered difference "
          "representation. ICIP 2012", "; Zero-DCE's 64 of 69")
_unpaired("mef", "MEF", 17, "Ma, Zeng, Wang. Perceptual quality assessment for multi-exposure "
          "image fusion. TIP 2015")
_unpaired("npe", "NPE", 8, "Wang, Zheng, Hu, Li. Naturalness preserved enhancement algorithm "
          "for non-uniform illumination images. TIP 2013")
_unpaired("vv", "VV", 24, "Vonikakis et al. (VV dataset, https://sites.google.com/site/vonikakis/datasets)")


BAID_SPEC = DatasetSpec(
    "BAID test (backlit)",
    layouts=layouts_for(
        ("baid-input-gt", {"lq": "lowlight/BAID/test/input", "gt": "lowlight/BAID/test/GT"}),
        ("baid-input-target", {"lq": "lowlight/BAID/test/input", "gt": "lowlight/BAID/test/target"}),
        ("baid-root", {"lq": "BAID/test/input", "gt": "BAID/test/GT"}),
        ("ci", {"lq": "lowlight/baid/input", "gt": "lowlight/baid/gt"}),
    ),
    sources=(DataSource("manual", "the BAID release of Lv et al. (CVIU 2022), linked from "
                        "https://github.com/ZhexinLiang/CLIP-LIT",
                        note="link and folder names unverified offline"),),
    homepage="https://github.com/ZhexinLiang/CLIP-LIT",
)


class BAID(DatasetTask):
    name = "baid"
    description = "BAID backlit test set (368 pairs), RGB PSNR/SSIM, 8-bit"
    citation = ("Lv, Zhang, Liu, Xie, Zhong, Zhou. BacklitNet: A dataset and network for backlit "
                "image enhancement. CVIU 2022")
    degradation = "lowlight"
    dataset = BAID_SPEC
    expected_count = 368
    conventions = MetricConventions(color_space="rgb", quantize=True)


register_task("lolv1")(LOLv1)
register_task("lolv1-tao256")(LOLv1Tao256)
register_task("baid")(BAID)
