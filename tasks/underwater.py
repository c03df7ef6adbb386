"""Underwater enhancement: UIEB with a fixed 90-image test split (``uieb-t90``).

UIEB (Li et al., TIP 2019) ships 890 raw images with references (``raw-890/``,
``reference-890/``, same file names) and **no official train/test split**; papers use a random 90
(U-shape Transformer#9), 5-fold splits (Deep-WaveNet) or undisclosed lists (Phaseformer#6), which
makes their tables irreproducible. This preset fixes the list in the repository:
``tasks/splits/uieb_t90.txt``, 90 file names, sha256 pinned in :data:`SPLIT_SHA256` and checked on
every load.

Provenance of the list (no published "T90" list was found in the indexed repositories): the first
90 lines, in file order, of ``data/list/UIEB_test.txt`` in ``wdhudiekou/STSC`` at commit
``86bac9762eb74f80870bb24d4da34b1a063b51e3`` — a shuffled list of UIEB names that repository tests
on. The rule is deterministic and checkable; it is *our* split, not an official one, so compare only
with results computed on this list.

Conventions: RGB PSNR/SSIM on 8-bit outputs at the native size. Option ``resize`` (0 = off, the
default) resizes LQ and GT to ``resize×resize`` (bicubic) for the papers that evaluate at 256×256;
it is logged like every option.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.nn.functional as F

from harness.api.options import Range
from harness.api.task import MetricConventions, Sample, register_task
from harness.assets.datasets import DatasetSpec, DataSource
from tasks._dataset import DatasetTask, layouts_for

SPLIT_FILE = "uieb_t90.txt"
SPLIT_SHA256 = "47f1da31ff055c51a9dc5884315174b6a0484909cb465961dc6a171c1ebb222b"

UIEB_SPEC = DatasetSpec(
    "UIEB (raw-890 / reference-890)",
    layouts=layouts_for(
        ("official", {"lq": "underwater/UIEB/raw-890", "gt": "underwater/UIEB/reference-890"}),
        ("official-nested", {"lq": "underwater/UIEB/raw-890/raw-890",
                             "gt": "underwater/UIEB/reference-890/reference-890"},
         "zip files extracted into same-named folders"),
        ("lowercase", {"lq": "underwater/uieb/raw-890", "gt": "underwater/uieb/reference-890"}),
        ("root", {"lq": "UIEB/raw-890", "gt": "UIEB/reference-890"}),
    ),
    sources=(DataSource("manual", "https://li-chongyi.github.io/proj_benchmark.html",
                        note="raw-890.zip and reference-890.zip; Hugging Face Hikari0608/UIEB has "
                             "no file names, so this split cannot be matched against it"),),
    homepage="https://li-chongyi.github.io/proj_benchmark.html",
)


def split_names(name: str = SPLIT_FILE, sha256: str | None = SPLIT_SHA256) -> list[str]:
    """The committed split (file names, in file order); verifies its sha256."""
    data = resources.files("tasks").joinpath("splits", name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise ValueError(f"tasks/splits/{name} has sha256 {digest}, expected {sha256}: the split "
                         f"file was modified; restore it from git")
    return [line.strip() for line in data.decode().splitlines() if line.strip()]


class UIEBT90(DatasetTask):
    name = "uieb-t90"
    description = "UIEB, 90 test pairs from the committed split file, RGB PSNR/SSIM, 8-bit"
    citation = ("Li, Guo, Ren, Cong, Hou, Kwong, Tao. An Underwater Image Enhancement Benchmark "
                "Dataset and Beyond. TIP 2019")
    degradation = "underwater"
    dataset = UIEB_SPEC
    expected_count = 90
    conventions = MetricConventions(color_space="rgb", crop_border=0, quantize=True)

    def __init__(self, resize: Annotated[int, Range(0, 8192)] = 0) -> None:
        super().__init__()
        self.resize = int(resize)
        if self.resize < 0:
            raise ValueError("resize must be 0 (off) or a positive size")
        self.split = split_names()
        self.options = {"split": SPLIT_FILE, "split_sha256": SPLIT_SHA256, "resize": self.resize}

    def build_index(self) -> dict[str, tuple[Path, Path | None]]:
        """Only the split's names, in split order; names absent from the copy are left out
        (validation then reports the set as partial)."""
        paths = self.match().paths
        lq_dir, gt_dir = paths["lq"], paths.get("gt")
        assert lq_dir is not None
        index: dict[str, tuple[Path, Path | None]] = {}
        for name in self.split:
            lq = lq_dir / name
            if lq.is_file():
                gt = gt_dir / name if gt_dir is not None and (gt_dir / name).is_file() else None
                index[Path(name).stem] = (lq, gt)
        return index

    def probe(self, sample_id: str) -> dict[str, Any]:
        sizes = super().probe(sample_id)
        if self.resize:
            square = (self.resize, self.resize)
            return {"lq_size": square, "gt_size": square if sizes["gt_size"] else None}
        return sizes

    def load(self, sample_id: str) -> Sample:
        sample = super().load(sample_id)
        if self.resize:
            def resize(x: torch.Tensor) -> torch.Tensor:
                out = F.interpolate(x[None], size=(self.resize, self.resize), mode="bicubic",
                                    align_corners=False, antialias=True)
                return out[0].clamp(0.0, 1.0)

            sample.lq = resize(sample.lq)
            sample.gt = resize(sample.gt) if sample.gt is not None else None
            sample.meta["resize"] = self.resize
        return sample


register_task("uieb-t90")(UIEBT90)
