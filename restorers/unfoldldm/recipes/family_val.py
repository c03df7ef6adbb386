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

from restorers.unfoldldm.recipes.allinone_val import write_tiles

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
    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: choose one of {', '.join(FAMILIES)}")
    pairs = [(spec, level) for spec in FAMILIES[family] for level in SEVERITIES]
    # tiles spread over the photograph (5 is coprime with 16), one seed per pair
    return write_tiles(out, [((index * 5) % 16, spec, level, 2000 + index,
                              f"{index:02d}-{spec.replace('+', '_')}-s{level}.png")
                             for index, (spec, level) in enumerate(pairs)])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m restorers.unfoldldm.recipes.family_val FAMILY OUT")
    written = make(sys.argv[1], Path(sys.argv[2]))
    print(f"{len(written)} validation pairs in {sys.argv[2]}")
