"""The fast CPU metric paths, pinned to pyiqa on real 8-bit images.

Real images matter: on random floats no luma lands on a rounding tie, on 8-bit images ~0.1 % of
pixels do, and a path that rounds in another dtype than pyiqa drifts by ~3e-6 (SSIM-Y).
Images: Kodak24 with seeded AWGN σ=25 (the kodak24-awgn25 protocol: ``np.random.seed(0)``, no
clipping of the noise, output clamped and quantised to 8 bit), and the TID2013 calibration set.
SSIM is compared on crops because pyiqa's float64 ``conv2d`` takes seconds per full image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.metrics.psnr_cpu import psnr_cpu
from harness.metrics.ssim_cpu import ssim_cpu

KODAK = ("kodim01", "kodim05", "kodim13", "kodim23")
COLOR = {"rgb": {"test_y_channel": False}, "yiq": {"test_y_channel": True, "color_space": "yiq"},
         "ycbcr": {"test_y_channel": True, "color_space": "ycbcr"}}


def _tensor(rgb8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb8)).permute(2, 0, 1)[None].float() / 255.0


def _load(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture(scope="module")
def kodak_pairs(data_root) -> list[tuple[torch.Tensor, torch.Tensor]]:
    pairs = []
    for name in KODAK:
        clean = _load(data_root / "denoise" / "kodak24" / f"{name}.png")
        np.random.seed(0)
        noisy = clean / 255.0 + np.random.normal(0, 25 / 255.0, clean.shape)
        noisy8 = np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)
        pairs.append((_tensor(noisy8), _tensor(clean)))
    return pairs


def _pyiqa(name: str, **opts):
    import pyiqa

    return pyiqa.create_metric(name, device="cpu", **opts)


@pytest.mark.data
@pytest.mark.parametrize("space", sorted(COLOR))
def test_psnr_equals_pyiqa(space, kodak_pairs):
    reference = _pyiqa("psnr", **COLOR[space])
    for out, gt in kodak_pairs:
        ours = psnr_cpu(out, gt, COLOR[space]["test_y_channel"], COLOR[space].get("color_space", "yiq"))
        assert float(ours) == pytest.approx(float(reference(out, gt)), abs=1e-6)


@pytest.mark.data
@pytest.mark.parametrize("space", sorted(COLOR))
def test_ssim_equals_pyiqa_on_8bit_images(space, kodak_pairs):
    reference = _pyiqa("ssim", downsample=False, **COLOR[space])
    for i, (out, gt) in enumerate(kodak_pairs[:3]):
        top, left = 37 * i, 101 * i  # odd offsets, non-square crops
        out_c = out[..., top:top + 160, left:left + 213]
        gt_c = gt[..., top:top + 160, left:left + 213]
        ours = ssim_cpu(out_c, gt_c, COLOR[space]["test_y_channel"], COLOR[space].get("color_space", "yiq"))
        assert float(ours) == pytest.approx(float(reference(out_c, gt_c)), abs=1e-6)


@pytest.mark.data
@pytest.mark.weights
def test_niqe_pyiqa_equals_pyiqa(weights_home, kodak_pairs, data_root):
    from harness.metrics import niqe_matlab as nm
    from harness.metrics.suite import niqe_mat_file

    mu, cov = nm.official_params()
    reference = _pyiqa("niqe", pretrained_model_path=str(niqe_mat_file()))
    tid = data_root / "iqa" / "tid2013_pairs" / "dist_dir"
    images = [_tensor(_load(tid / f"{n}.bmp")) for n in ("I03", "I04", "I06", "I08", "I19")]
    images += [kodak_pairs[0][0]]  # a noisy 768×512 image
    for img in images:
        assert nm.niqe_pyiqa(img, mu, cov) == pytest.approx(float(reference(img)), abs=1e-6)
    spec = {s.name: s for s in nm.NIQE_SPECS}["niqe-pyiqa"]
    assert float(spec.build(None, None)(images[0], None, {})[0]) == pytest.approx(
        float(reference(images[0])), abs=1e-6)


_LEAN_SCRIPT = r"""
import json, sys, torch
from harness.metrics.pyiqa_lean import create_lean
lean = {"psnr": create_lean("psnr"), "ssim": create_lean("ssim", downsample=False),
        "niqe": create_lean("niqe", pretrained_model_path=sys.argv[1])}
heavy = sorted(m for m in ("torchvision", "torchvision.models", "torch._dynamo", "huggingface_hub")
               if m in sys.modules)
g = torch.Generator().manual_seed(0)
gt = torch.rand(1, 3, 100, 150, generator=g)
out = (torch.round((gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1) * 255) / 255)
lean_values = {k: float(m(out, gt)) if k != "niqe" else float(m(out)) for k, m in lean.items()}
import pyiqa  # the lazily registered package must still be complete
full = {"psnr": pyiqa.create_metric("psnr", device="cpu"),
        "ssim": pyiqa.create_metric("ssim", device="cpu", downsample=False),
        "niqe": pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=sys.argv[1])}
full_values = {k: float(m(out, gt)) if k != "niqe" else float(m(out)) for k, m in full.items()}
print(json.dumps({"heavy": heavy, "lean": lean_values, "full": full_values}))
"""


@pytest.mark.weights
def test_lean_pyiqa_import_skips_torchvision_and_gives_pyiqas_numbers(weights_home, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from harness.metrics.suite import niqe_mat_file

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", _LEAN_SCRIPT, str(niqe_mat_file())], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    for name, value in result["full"].items():
        assert result["lean"][name] == pytest.approx(value, abs=1e-9), name
