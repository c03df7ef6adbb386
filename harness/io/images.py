"""Reading, writing and montaging images as (3,H,W) float tensors in [0,1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


class ImageReadError(ValueError):
    """An image file cannot be decoded; the message names the file and the cause."""


def read_image(path: str | Path) -> torch.Tensor:
    """Decode any PIL-readable file to RGB float (3,H,W) in [0,1] (see :func:`read_image_info`)."""
    return read_image_info(path)[0]


def conversion_of(mode: str) -> str | None:
    """What :func:`read_image_info` does to an image of PIL ``mode`` to make it RGB, in words
    (``None`` for RGB itself). Every restorer takes (B,3,H,W), so a grey or RGBA input is
    converted, never refused; the per-image record says how (``input_conversion``)."""
    if mode == "RGB":
        return None
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        return f"{mode} 16-bit grey scaled by 1/65535 and replicated to RGB"
    if mode == "F":
        return "F float grey in [0, 1] taken as is and replicated to RGB"
    if mode in ("L", "1"):
        return f"{mode} grey replicated to RGB"
    if mode == "LA":
        return "LA grey+alpha: alpha dropped (not composited), grey replicated to RGB"
    if mode in ("RGBA", "RGBa"):
        return f"{mode}: alpha channel dropped (not composited onto a background)"
    if mode in ("P", "PA"):
        return f"{mode} palette image expanded to RGB" + (" (alpha dropped)" if mode == "PA" else "")
    return f"{mode} converted to RGB by PIL"


def read_image_info(path: str | Path) -> tuple[torch.Tensor, str | None]:
    """Decode any PIL-readable file to RGB float (3,H,W) in [0,1], and say what conversion it
    took (:func:`conversion_of`; ``None`` for an RGB file).

    Grey is replicated to RGB; alpha is dropped, not composited (a restorer sees the colour
    channels as stored). 16-bit files are scaled by 65535, not truncated to 8 bit. Integer and
    float grey files are converted by their real range (:func:`_high_range_grey`); one whose
    values lie outside it is refused, never clipped (PIL's ``convert("RGB")`` would turn a
    float image in [0, 1] into zeros).
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            conversion = conversion_of(img.mode)
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                array = _high_range_grey(np.asarray(img), img.mode, path)
                array = np.repeat(array[..., None], 3, axis=-1)
            else:
                array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (FileNotFoundError, ImageReadError):
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, ImportError) as exc:
        # ImportError: ultralytics patches PIL.Image.open process-wide and, on an unreadable
        # file, tries to import an optional HEIF plugin before giving up
        raise ImageReadError(f"cannot decode image {path}: {type(exc).__name__}: {exc}. Replace or "
                             f"remove the file.") from exc
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).clamp(0.0, 1.0), conversion


def _high_range_grey(values: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """A 16/32-bit integer (``I;16*``, ``I``) or float (``F``) grey image as float32 in [0, 1]:
    integers by 1/65535 (the 16-bit range, which ``I`` files written from 16-bit data use),
    floats as they are. Values outside that range (negative, above 65535, a float image in
    0..255, NaN/inf) would be clipped into a different image, so they are refused."""
    values = values.astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    limit = 1.0 if mode == "F" else 65535.0
    if not (np.isfinite(values).all() and low >= 0.0 and high <= limit):
        kind = "float" if mode == "F" else "integer"
        raise ImageReadError(f"{path}: {mode} {kind} image with values in [{low:g}, {high:g}], "
                             f"outside the [0, {limit:g}] range it is read with; save it as 8- or "
                             f"16-bit, or scale it to [0, {limit:g}]")
    return (values / limit).astype(np.float32)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) or (1,3,H,W) float [0,1] → HWC uint8 (rounded, as BasicSR ``tensor2img``)."""
    if image.ndim == 4:
        image = image[0]
    array = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return array.permute(1, 2, 0).cpu().numpy()


def save_image(image: torch.Tensor, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)


def montage(panels: list[torch.Tensor | None], height: int = 256, gap: int = 4) -> Image.Image:
    """Side-by-side strip (LQ | output | GT) at a common height for comparison images."""
    tiles = []
    for panel in panels:
        if panel is None:
            continue
        img = Image.fromarray(to_uint8(panel))
        width = max(1, round(img.width * height / img.height))
        tiles.append(img.resize((width, height), Image.BICUBIC))
    total = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    strip = Image.new("RGB", (total, height), (255, 255, 255))
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + gap
    return strip


def thumbnail(image: torch.Tensor, max_side: int = 384) -> torch.Tensor:
    """A small CPU copy kept for comparison images without holding full-size tensors."""
    if image.ndim == 4:
        image = image[0]
    h, w = image.shape[-2:]
    scale = min(1.0, max_side / max(h, w))
    image = image.detach().float().cpu()
    if scale < 1.0:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        image = torch.nn.functional.interpolate(image[None], size=size, mode="area")[0]
    return image
