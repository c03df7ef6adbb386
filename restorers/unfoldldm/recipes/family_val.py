"""The validation tiles of one degradation family (``families/<family>-phase2.yaml``).

Like :mod:`allinone_val` (matplotlib's ``grace_hopper.jpg``: in no training set and no evaluation
task), but only the family's operators, each at severities 2, 3 and 4, one 128×128 tile each:

    python -m restorers.unfoldldm.recipes.family_val lowlight checkpoints/families/lowlight/val

Deterministic (CPU float64 operators, fixed seeds). It monitors one training curve and decides
early stopping; it does not rank models (the evaluation tasks do).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from restorers.unfoldldm.recipes.allinone_val import TILE, clean_photo

#: the operators each family's specialist is trained on (and validated on), as in its recipe
FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "poisson_gaussian_noise"),
    "blur": ("gaussian_blur", "defocus_blur", "motion_blur"),
    "lowlight": ("lowlight", "lowlight_calibrated"),
    "haze": ("haze",),
    "rain": ("rain",),
    "jpeg": ("jpeg",),
    "mixed": ("noise+blur+lowlight", "blur+lowlight_calibrated"),
}
SEVERITIES = (2, 3, 4)


def make(family: str, out: Path) -> list[Path]:
    from harness.io.images import save_image
    from tasks.degradations import build_degradation

    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: choose one of {', '.join(FAMILIES)}")
    photo = clean_photo()  # (3, 600, 512): 4×4 tiles of 128
    top0 = (photo.shape[-2] - 4 * TILE) // 2
    written = []
    pairs = [(spec, level) for spec in FAMILIES[family] for level in SEVERITIES]
    for index, (spec, level) in enumerate(pairs):
        row, col = divmod((index * 5) % 16, 4)  # spread over the photo (5 is coprime with 16)
        gt = photo[:, top0 + row * TILE: top0 + (row + 1) * TILE, col * TILE:(col + 1) * TILE]
        gt = (gt * 255).round() / 255
        lq, _ = build_degradation(spec, level)(gt, torch.Generator().manual_seed(2000 + index))
        name = f"{index:02d}-{spec.replace('+', '_')}-s{level}.png"
        for folder, image in (("lq", lq), ("gt", gt)):
            (out / folder).mkdir(parents=True, exist_ok=True)
            save_image(image, out / folder / name)
        written.append(out / "lq" / name)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m restorers.unfoldldm.recipes.family_val FAMILY OUT")
    written = make(sys.argv[1], Path(sys.argv[2]))
    print(f"{len(written)} validation pairs in {sys.argv[2]}")
