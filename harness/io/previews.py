"""Small per-image previews that the HTML report shows: ``run_dir/previews/``.

The report's image viewer needs LQ | each restorer's output | GT for every sample without
re-running anything, so the runner saves a small copy of each as it scores it. Layout::

    previews/<restorer>/<task>/<sample_id>.png   one per (restorer, task, sample)
    previews/_lq/<task>/<sample_id>.png          once per (task, sample)
    previews/_gt/<task>/<sample_id>.png          once per (task, sample), tasks with GT only

Why these choices:

* **PNG, long side ≤ 512**: lossless, so the report's difference / error maps show the
  restorer's errors and not JPEG's; 512 px keeps a 256² block at full resolution and a 4K frame
  at ~300 KB. All three images of a sample are resized with the same rule, so they stay aligned.
* **Safe, injective names**: restorer and task names carry brackets, colons and ``@``
  (``nlm[sigma=estimate]``, ``synth:kodak24:noise@3``). A name that is not already a plain file
  name becomes ``<slug>-<8 hex of its sha1>``, so ``a:b`` and ``a_b`` never share a folder. A slug
  never starts with ``_`` or ``.``, so no restorer can collide with ``_lq``/``_gt``.
* **Atomic writes** (temporary file, then rename): a run killed mid-write and resumed never
  leaves a truncated PNG behind for the report to choke on.

:func:`read_previews` is the reader; it answers with the paths that exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.io.names import safe_name

PREVIEWS_DIR = "previews"
LQ_DIR = "_lq"
GT_DIR = "_gt"
MAX_SIDE = 512
@dataclass(frozen=True)
class PreviewPaths:
    """Where the previews of one sample are; ``None`` where none was saved."""

    lq: Path | None
    out: Path | None
    gt: Path | None


def preview_path(run_dir: Path, restorer: str, task: str, sample_id: str) -> Path:
    """The preview of ``restorer``'s output (``restorer`` may be ``_lq``/``_gt`` for the inputs)."""
    folder = restorer if restorer in (LQ_DIR, GT_DIR) else safe_name(restorer)
    return Path(run_dir) / PREVIEWS_DIR / folder / safe_name(task) / f"{safe_name(sample_id)}.png"


def _small(image: torch.Tensor, max_side: int) -> Image.Image:
    """(1,3,H,W) or (3,H,W) float [0,1] → 8-bit RGB with the long side at most ``max_side``."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"previews take one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"previews take (1,3,H,W) images, got shape {tuple(image.shape)}")
    array = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    pil = Image.fromarray(np.ascontiguousarray(array.permute(1, 2, 0).cpu().numpy()))
    if max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
        pil = pil.resize(size, Image.LANCZOS)
    return pil


def _write_png(pil: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pil.save(tmp, format="PNG", optimize=False, compress_level=1)  # 4x faster than 6, ~25% larger
        tmp.replace(path)
    except BaseException:  # a full disk: no partial temporary file left behind
        tmp.unlink(missing_ok=True)
        raise


def save_previews(run_dir: Path, restorer: str, task: str, sample_id: str, lq: torch.Tensor,
                  out: torch.Tensor, gt: torch.Tensor | None, max_side: int = MAX_SIDE) -> PreviewPaths:
    """Write the preview of ``out``, and of ``lq``/``gt`` unless this task's already exist.

    Call once per scored sample (any device; tensors are copied to the CPU). Returns the paths.
    """
    run_dir = Path(run_dir)
    out_path = preview_path(run_dir, restorer, task, sample_id)
    _write_png(_small(out, max_side), out_path)
    lq_path = preview_path(run_dir, LQ_DIR, task, sample_id)
    if not lq_path.exists():
        _write_png(_small(lq, max_side), lq_path)
    gt_path = None
    if gt is not None:
        gt_path = preview_path(run_dir, GT_DIR, task, sample_id)
        if not gt_path.exists():
            _write_png(_small(gt, max_side), gt_path)
    return PreviewPaths(lq_path, out_path, gt_path)


def read_previews(run_dir: Path, restorer: str, task: str, sample_id: str) -> PreviewPaths:
    """The previews of one sample that exist on disk (missing ones are ``None``)."""

    def existing(path: Path) -> Path | None:
        return path if path.is_file() else None

    return PreviewPaths(existing(preview_path(run_dir, LQ_DIR, task, sample_id)),
                        existing(preview_path(run_dir, restorer, task, sample_id)),
                        existing(preview_path(run_dir, GT_DIR, task, sample_id)))
