"""The validation set of the all-in-one recipes (``allinone-cpu-phase{1,2}.yaml``).

16 tiles of 128×128 from matplotlib's ``grace_hopper.jpg`` (a photograph shipped with the
matplotlib wheel: in no training set and no evaluation task), each degraded by one of
:data:`SPECS` at severity 3 with its own fixed seed, written as 8-bit PNGs to
``OUT/lq/NN-spec.png`` and ``OUT/gt/NN-spec.png`` for the ``folder`` task:

    python -m restorers.unfoldldm.recipes.allinone_val checkpoints/allinone/val

Deterministic: the same files on every machine (CPU float64 operators, fixed seeds). One
photograph is little; it monitors the training curve of every family, it does not rank models
(the evaluation tasks do that). Clean pairs (``none``) are left out: their input PSNR is infinite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

#: one degradation per tile: every family, the presets' mixture and the training mixtures
SPECS = ("gaussian_noise", "poisson_gaussian_noise", "gaussian_blur", "defocus_blur", "motion_blur",
         "jpeg", "haze", "rain", "lowlight", "lowlight_calibrated", "noise+blur+lowlight",
         "blur+lowlight_calibrated", "noise+jpeg", "blur+noise", "haze+noise", "rain+jpeg")
TILE, SEVERITY = 128, 3


def clean_photo() -> torch.Tensor:
    import matplotlib.cbook

    from harness.io.images import read_image

    return read_image(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


def write_tiles(out: Path, tiles: list[tuple[int, str, int, int, str]]) -> list[Path]:
    """Cut, degrade and save ``(tile index, spec, severity, seed, file name)`` tiles of the
    photograph (a 4×4 grid of 128² tiles, centred vertically) as ``OUT/lq`` and ``OUT/gt`` PNGs."""
    from harness.io.images import save_image
    from tasks.degradations import build_degradation

    photo = clean_photo()  # (3, 600, 512)
    top0 = (photo.shape[-2] - 4 * TILE) // 2
    written = []
    for tile, spec, severity, seed, name in tiles:
        row, col = divmod(tile, 4)
        gt = photo[:, top0 + row * TILE: top0 + (row + 1) * TILE, col * TILE:(col + 1) * TILE]
        gt = (gt * 255).round() / 255
        lq, _ = build_degradation(spec, severity)(gt, torch.Generator().manual_seed(seed))
        for folder, image in (("lq", lq), ("gt", gt)):
            (out / folder).mkdir(parents=True, exist_ok=True)
            save_image(image, out / folder / name)
        written.append(out / "lq" / name)
    return written


def make(out: Path) -> list[Path]:
    return write_tiles(out, [(index, spec, SEVERITY, 1000 + index,
                              f"{index:02d}-{spec.replace('+', '_')}.png")
                             for index, spec in enumerate(SPECS)])


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "checkpoints/allinone/val")
    print(f"{len(make(target))} validation pairs in {target}")
