"""Draw ``docs/img/degradations_severity.png``: one photograph under every operator at levels 1-5.

    python -m tasks.degradations.figure [--out docs/img/degradations_severity.png]

The photograph is scikit-image's ``chelsea`` (public domain, bundled with scikit-image, so anyone
can regenerate the figure offline): a 192×192 centre crop reduced to 96×96 by area averaging.
Each row is one operator (and the ``noise+blur+lowlight`` mixture); column 0 is the clean crop,
columns 1-5 the severity levels,
all drawn with the same seed (so a row shows the level changing, not the draw). The PSNR of each
tile against the clean crop is printed under it. Written as an 8-bit palette PNG to stay small.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from harness.io.images import to_uint8
from tasks.degradations import OPERATORS, build_degradation
from tasks.synthetic import skimage_photo

ROWS = (*OPERATORS, "noise+blur+lowlight")
TILE, GAP, LABEL_W, CAPTION_H, HEADER_H = 96, 4, 140, 14, 18
SEED = 2024
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "img" / "degradations_severity.png"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10.0 * torch.log10(torch.tensor(1.0 / mse)).item() if mse > 0 else float("inf")


def draw(out: Path = DEFAULT_OUT, image_name: str = "chelsea") -> Path:
    photo = skimage_photo(image_name, crop=2 * TILE)
    clean = torch.nn.functional.avg_pool2d(photo[None], 2)[0]
    font = ImageFont.load_default()
    width = LABEL_W + 6 * (TILE + GAP)
    height = HEADER_H + len(ROWS) * (TILE + CAPTION_H + GAP)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    pen = ImageDraw.Draw(canvas)
    for column, title in enumerate(["clean", *(f"severity {s}" for s in range(1, 6))]):
        pen.text((LABEL_W + column * (TILE + GAP) + 4, 3), title, fill=(0, 0, 0), font=font)
    for row, spec in enumerate(ROWS):
        top = HEADER_H + row * (TILE + CAPTION_H + GAP)
        pen.text((4, top + TILE // 2 - 6), spec, fill=(0, 0, 0), font=font)
        tiles = [(clean, "")]
        for level in range(1, 6):
            degraded, _ = build_degradation(spec, level)(clean, torch.Generator().manual_seed(SEED))
            tiles.append((degraded, f"{_psnr(degraded, clean):.1f} dB"))
        for column, (tile, caption) in enumerate(tiles):
            left = LABEL_W + column * (TILE + GAP)
            canvas.paste(Image.fromarray(to_uint8(tile)), (left, top))
            pen.text((left + 4, top + TILE + 1), caption, fill=(60, 60, 60), font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--image", default="chelsea", help="a scikit-image data photograph")
    args = parser.parse_args()
    print(draw(args.out, args.image))


if __name__ == "__main__":
    main()
