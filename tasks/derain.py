"""Deraining presets: Rain100L (Y-channel) and Rain12.

* ``rain100l``: JORDER's 100 test pairs ``rain-XXX.png`` → ``norain-XXX.png``. Scored on the
  **BT.601 limited-range Y channel** (``color_space=ycbcr601``: MATLAB ``rgb2ycbcr``, Restormer
  ``Deraining/evaluate_PSNR_SSIM.m``, MMagic ``convert_to='Y'``), 8-bit outputs, no crop. Scoring
  RGB instead is the classic 1.2 dB mistake (Restormer#55).
* ``rain12``: Li et al.'s 12 pairs, same naming. conventions.md fixes no colour space for it;
  the preset scores RGB (the issue's rule: only Rain100L is Y). Pass ``color_space=ycbcr601``
  to compare with tables that report Y.

Sizes are not pinned: Rain100L copies circulate at 481×321 and, 1-pixel cropped, 480×320.
"""

from __future__ import annotations

import re

from harness.api.task import MetricConventions, register_task
from harness.assets.datasets import DatasetSpec, DataSource
from tasks._dataset import DatasetTask, layouts_for

_RAIN = re.compile(r"^rain[-_]?", re.IGNORECASE)


def rain_to_norain(stem: str) -> str:
    """``rain-001`` → ``norain-001``; stems without the prefix (Restormer copies) are kept."""
    return _RAIN.sub(lambda m: "no" + m.group(0), stem, count=1) if _RAIN.match(stem) else stem


def _rain_spec(title: str, folder: str, upper: str, extra: tuple = (), sources: tuple = ()) -> DatasetSpec:
    return DatasetSpec(
        title,
        layouts=layouts_for(
            ("official", {"lq": f"derain/{folder}/rain", "gt": f"derain/{folder}/norain"},
             "rain-XXX.png / norain-XXX.png"),
            ("official-upper", {"lq": f"derain/{upper}/rain", "gt": f"derain/{upper}/norain"}),
            ("restormer", {"lq": f"derain/{upper}/input", "gt": f"derain/{upper}/target"},
             f"Restormer Datasets/test/{upper}/{{input,target}}"),
            ("restormer-root", {"lq": f"Datasets/test/{upper}/input",
                                "gt": f"Datasets/test/{upper}/target"}),
            ("root", {"lq": f"{upper}/rain", "gt": f"{upper}/norain"}),
            *extra,
        ),
        sources=sources,
    )


RAIN100L_SPEC = _rain_spec(
    "Rain100L test", "rain100l", "Rain100L",
    extra=(("ci-subset", {"lq": "derain/rain100l_subset10/rain", "gt": "derain/rain100l_subset10/norain"},
            "partial CI copy (first 10 pairs)"),),
    sources=(DataSource("manual", "https://www.icst.pku.edu.cn/struct/Projects/joint_rain_removal.html",
                        note="JORDER release (Rain100L test: 100 pairs)"),),
)
RAIN12_SPEC = _rain_spec(
    "Rain12", "rain12", "Rain12",
    sources=(DataSource("manual", "https://yu-li.github.io/ (Rain12, Li et al. CVPR 2016)"),),
)


class Rain100L(DatasetTask):
    name = "rain100l"
    description = "Rain100L test (100 pairs), BT.601 Y-channel PSNR/SSIM, 8-bit"
    citation = ("Yang, Tan, Feng, Liu, Guo, Yan. Deep Joint Rain Detection and Removal from a "
                "Single Image. CVPR 2017")
    degradation = "rain"
    dataset = RAIN100L_SPEC
    expected_count = 100
    conventions = MetricConventions(color_space="ycbcr601", crop_border=0, quantize=True)
    pair_rule = staticmethod(rain_to_norain)


class Rain12(DatasetTask):
    name = "rain12"
    description = "Rain12 (12 pairs, 480x320), RGB PSNR/SSIM, 8-bit"
    citation = ("Li, Tan, Guo, Lu, Brown. Rain Streak Removal Using Layer Priors. CVPR 2016")
    degradation = "rain"
    dataset = RAIN12_SPEC
    expected_count = 12
    conventions = MetricConventions(color_space="rgb", crop_border=0, quantize=True)
    pair_rule = staticmethod(rain_to_norain)


register_task("rain100l")(Rain100L)
register_task("rain12")(Rain12)
