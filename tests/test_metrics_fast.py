"""The fast CPU metric paths, pinned to pyiqa on real 8-bit images.

Real images matter: on random floats no luma lands on a rounding tie, on 8-bit images ~0.1 % of
pixels do, and a path that rounds in another dtype than pyiqa drifts by ~3e-6 (SSIM-Y).
Images: Kodak24 with seeded AWGN σ=25 (the kodak24-awgn25 protocol: ``np.random.seed(0)``, no
clipping of the noise, output clamped and quantised to 8 bit), and the TID2013 calibration set.
SSIM is compared on crops because pyiqa's float64 ``conv2d`` takes seconds per full image.

PSNR is pyiqa's formula evaluated in float64 (thread- and CPU-independent), and niqe-pyiqa's grey
image a float32 computation whose luma SGEMM rounds differently from pyiqa's on some CPUs; pyiqa
is held to bounds derived from float32 rounding (``tests/metric_bounds.py``), not to bit identity.
``tests/test_cpu_capability.py`` reruns these tests with ATen's and MKL's kernels capped at AVX2 and below.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metric_bounds import gamma, psnr64_and_bound

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
    """Not bit for bit: ``psnr_cpu`` evaluates pyiqa's formula in float64 (so that its value does
    not depend on the thread count or the CPU), pyiqa in float32.

    pyiqa's float32 value is not a property of the images alone: its luma goes through an MKL
    SGEMM whose kernel MKL picks from CPUID (not ``ATEN_CPU_CAPABILITY``), and ATen splits the
    float32 sum per thread. At 25 dB one float32 ulp of the result is 1.9e-6 dB. So pyiqa is held
    to a float32 bound around the float64 evaluation (``metric_bounds.psnr64_and_bound``,
    ≈5e-5 dB here), and ``psnr_cpu`` — which *is* a float64 evaluation, with float64 luma and
    numpy's pairwise sum — must match that evaluation to float64 accuracy.
    """
    reference = _pyiqa("psnr", **COLOR[space])
    for out, gt in kodak_pairs:
        opts = COLOR[space]
        ours = float(psnr_cpu(out, gt, opts["test_y_channel"], opts.get("color_space", "yiq")))
        theirs = float(reference(out, gt))
        exact, bound = psnr64_and_bound(out, gt, space)
        # float64 sums of ~4e5 terms in two orders differ by ~1e-16 relative; 1e-9 dB is generous
        assert abs(ours - exact) <= 1e-9, (ours, exact)
        assert abs(theirs - exact) <= bound, (theirs, exact, bound)  # the bound holds for pyiqa


@pytest.mark.data
def test_psnr_and_ssim_do_not_depend_on_the_thread_count(kodak_pairs):
    """A local run (2 threads) and a Ray worker (1 thread) must record the same bits: the
    float32 mean PSNR used to give 13.559062958 vs 13.559063911 dB on one image."""
    previous = torch.get_num_threads()
    values: dict[int, list[float]] = {}
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            values[threads] = [float(f(out, gt, y, cs)) for out, gt in kodak_pairs[:4]
                               for f in (psnr_cpu, ssim_cpu)
                               for y, cs in ((False, "yiq"), (True, "yiq"), (True, "ycbcr"))]
    finally:
        torch.set_num_threads(previous)
    assert values[1] == values[2] == values[3]


@pytest.mark.data
@pytest.mark.parametrize("space", sorted(COLOR))
def test_ssim_equals_pyiqa_on_8bit_images(space, kodak_pairs):
    reference = _pyiqa("ssim", downsample=False, **COLOR[space])
    for i, (out, gt) in enumerate(kodak_pairs[:3]):
        top, left = 37 * i, 101 * i  # odd offsets, non-square crops
        out_c = out[..., top:top + 160, left:left + 213]
        gt_c = gt[..., top:top + 160, left:left + 213]
        ours = ssim_cpu(out_c, gt_c, COLOR[space]["test_y_channel"], COLOR[space].get("color_space", "yiq"))
        # Not a float32 comparison: ssim_cpu takes the 8-bit luma from pyiqa's own
        # ``preprocess_rgb`` (the same SGEMM call, so no MKL difference), and both sides filter
        # in float64. What is left (≤ 2.2e-10 here) is the zero-sum part of pyiqa's
        # float32-rounded window, which ssim_cpu does not copy (ssim_cpu._gaussian_1d).
        assert float(ours) == pytest.approx(float(reference(out_c, gt_c)), abs=1e-6)


def _pyiqa_grey(img: torch.Tensor) -> np.ndarray:
    """The grey image pyiqa's NIQE computes (``calculate_niqe``: Y of ``rgb2yiq`` × 255, rounded)."""
    from pyiqa.utils.color_util import to_y_channel

    return torch.round(to_y_channel(img, 255, "yiq"))[0, 0].double().numpy()


def _pyiqa_features(grey: np.ndarray) -> torch.Tensor:
    """pyiqa's NIQE features (1, n_blocks, 36) of a cropped grey image: the first half of
    ``pyiqa.archs.niqe_arch.niqe``, line for line."""
    from pyiqa.archs.niqe_arch import blockproc, compute_feature, imresize, normalize_img_with_gauss

    x = torch.from_numpy(grey)[None, None]
    feats = []
    for scale in (1, 2):
        feats.append(blockproc(normalize_img_with_gauss(x, padding="replicate"),
                               [96 // scale, 96 // scale], fun=compute_feature))
        x = imresize(x / 255.0, scale=0.5, antialiasing=True) * 255.0
    return torch.cat(feats, -1)


def _pyiqa_niqe_from_features(feats: torch.Tensor, mu: np.ndarray, cov: np.ndarray) -> float:
    """The second half of ``pyiqa.archs.niqe_arch.niqe``, line for line."""
    from pyiqa.archs.niqe_arch import nancov, nanmean

    mu_t, cov_t = torch.from_numpy(mu)[None], torch.from_numpy(cov)[None]
    inv = torch.linalg.pinv((cov_t + nancov(feats)) / 2)
    diff = (mu_t - nanmean(feats, dim=1)).unsqueeze(1)
    return float(torch.sqrt(torch.bmm(torch.bmm(diff, inv), diff.transpose(1, 2)).squeeze()))


def _our_features(grey: np.ndarray) -> np.ndarray:
    """The same features from ``harness.metrics.niqe_matlab`` (the steps of ``niqe_grey``, pyiqa flavour)."""
    from harness.metrics import niqe_matlab as nm

    img, table, feats = grey, nm._gamma_table("pyiqa"), []
    for scale in (1, 2):
        feats.append(nm._block_features(nm._mscn(img, nm.PYIQA.blur), nm.BLOCK // scale, table))
        img = nm.PYIQA.resize(img)
    return np.concatenate(feats, axis=1)


#: NIQE features computed in float64 on both sides: α (columns 0, 2, 6, 10, 14 of each scale) is
#: a point of the same γ grid chosen by the same argmin, so it is compared exactly; the other
#: features are ratios, square roots and Γ-table products of sums over ≤ 9,216 MSCN values whose
#: summation orders differ (ndimage vs ``conv2d`` for the 49-tap window, numpy vs ATen sums).
#: Budget: a few hundred float64 roundings (u = 1.1e-16) on features of magnitude ≤ 10,
#: i.e. ≤ ~5e-13; 1e-12 absolute. Largest difference seen (TID2013, noisy Kodak): 4e-14.
ALPHA_COLUMNS = [c + 18 * s for s in (0, 1) for c in (0, 2, 6, 10, 14)]
FEATURE_ATOL = 1e-12


def _niqe_rel_bound(feats: np.ndarray, cov_pris: np.ndarray, feature_err: float, niqe: float) -> float:
    """First-order relative bound on NIQE = sqrt(Δμᵀ A⁺ Δμ), A = (Σ_pris + Σ_dist)/2, when
    every feature moves by ≤ ``feature_err`` (also standing for the float64 rounding of the mean
    and covariance sums): Δμ by ‖δΔμ‖ ≤ 6·err (36 features); each entry of
    Σ_dist by ≤ 4·err·max|F − F̄|·n/(n−1), so ‖δA‖₂ ≤ ½·36·that; and with λ = λ_min(A) ≥
    λ_min(Σ_pris)/2 (both PSD): δq/q ≤ ‖δA‖/λ + 2‖δΔμ‖/(√λ·NIQE), δNIQE/NIQE = δq/(2q). Plus
    the pseudo-inverse itself, backward stable in float64 on both sides: κ(A)·36·u64."""
    n = len(feats)
    lam = np.linalg.eigvalsh(cov_pris)[0] / 2
    d_a = 18 * 4 * feature_err * np.abs(feats - feats.mean(0)).max() * n / (n - 1)
    d_q = d_a / lam + 2 * 6 * feature_err / (np.sqrt(lam) * niqe)
    kappa = np.linalg.cond((cov_pris + np.cov(feats, rowvar=False)) / 2)
    return d_q / 2 + kappa * 36 * np.finfo(np.float64).eps / 2


@pytest.mark.data
@pytest.mark.weights
def test_niqe_pyiqa_equals_pyiqa(weights_home, kodak_pairs, data_root):
    """``niqe-pyiqa`` is pyiqa's NIQE: the same grey image up to float32 rounding ties, the same
    features and the same number from the same grey image.

    The operation that diverges is the grey conversion. pyiqa takes Y of ``rgb2yiq`` (an MKL
    SGEMM with the 3×3 matrix, n=3), :func:`~harness.metrics.niqe_matlab.pyiqa_grey` multiplies by the Y
    column (n=1). MKL picks its kernel from CPUID and the shape (``ATEN_CPU_CAPABILITY`` does not
    reach it); on an AVX-512 Xeon (torch 2.14.1, MKL 2024.2) the two round differently in ~5 %
    of pixels by 1 float32 ulp, and with ``MKL_CBWR=COMPATIBLE`` or
    ``MKL_ENABLE_INSTRUCTIONS=SSE4_2`` they agree. After ×255 and round-half-even that flips a
    grey level only where the exact value lies on a .5 tie: 1 pixel of TID2013 I03 (91.50000244:
    92 here, 91 in pyiqa), 1 of I08, 10 of the noisy kodim01. NIQE (an AGGD fit on a γ grid and a
    Mahalanobis distance through an ill-conditioned covariance, κ up to 1.3e6) moves by
    +1.6e-3, −4.4e-4 and −9.5e-4 there. Thread count plays no part. Everything after the grey
    image is float64 on both sides (the float32 resize is replicated operation for operation),
    and agrees to ≤ 3e-13 relative.
    """
    from harness.metrics import niqe_matlab as nm
    from harness.metrics.suite import niqe_mat_file

    mu, cov = nm.official_params()
    reference = _pyiqa("niqe", pretrained_model_path=str(niqe_mat_file()))
    tid = data_root / "iqa" / "tid2013_pairs" / "dist_dir"
    images = [_tensor(_load(tid / f"{n}.bmp")) for n in ("I03", "I04", "I06", "I08", "I19")]
    images += [kodak_pairs[0][0]]  # a noisy 768×512 image
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).double()
    for img in images:
        # 1. The grey images: each float32 Y·255 is within γ₄·Y of the exact value Y (3-term dot
        # product of non-negative terms, then ×255), so they can round to different levels only
        # where Y is that close to a .5 tie, and then by one level.
        ours_grey, grey = nm.pyiqa_grey(img), _pyiqa_grey(img)
        exact = (img[0].double().permute(1, 2, 0) @ weights).numpy() * 255.0
        near_tie = np.abs(exact - np.floor(exact) - 0.5) <= (gamma(4) + gamma(4, 2.0**-53)) * exact
        differ = ours_grey != grey
        assert not (differ & ~near_tie).any()
        assert (np.abs(ours_grey - grey)[differ] == 1).all()
        # 2. From pyiqa's own grey image: the features, then NIQE within what they allow.
        crop = grey[: grey.shape[0] // nm.BLOCK * nm.BLOCK, : grey.shape[1] // nm.BLOCK * nm.BLOCK]
        theirs_t = _pyiqa_features(crop)
        theirs_f, ours_f = theirs_t[0].numpy(), _our_features(crop)
        assert not np.isnan(theirs_f).any()
        np.testing.assert_array_equal(ours_f[:, ALPHA_COLUMNS], theirs_f[:, ALPHA_COLUMNS])
        np.testing.assert_allclose(ours_f, theirs_f, rtol=0, atol=FEATURE_ATOL)
        theirs = _pyiqa_niqe_from_features(theirs_t, mu, cov)
        if img is images[0]:  # the two halves are pyiqa's metric (one full pyiqa run suffices)
            assert float(reference(img)) == theirs
        # the features' difference, plus n·eps64·max|F| for summing n of them in mean and cov
        err = np.abs(ours_f - theirs_f).max() + len(ours_f) * np.finfo(float).eps * np.abs(ours_f).max()
        rel = _niqe_rel_bound(theirs_f, cov, err, theirs)
        assert nm.niqe_grey(grey, mu, cov, nm.PYIQA) == pytest.approx(theirs, rel=rel)
        # 3. End to end: where the grey images agree, so does NIQE.
        if not differ.any():
            assert nm.niqe_pyiqa(img, mu, cov) == pytest.approx(theirs, rel=rel)
    spec = {s.name: s for s in nm.NIQE_SPECS}["niqe-pyiqa"]
    assert float(spec.build(None, None)(images[0], None, {})[0]) == nm.niqe_pyiqa(images[0], mu, cov)


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
