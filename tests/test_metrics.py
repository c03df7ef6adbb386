"""Metric conventions and the missing-weights paths of NIQE and LPIPS."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from harness.api.task import MetricConventions
from harness.assets import cache as assets
from harness.metrics.suite import MetricSuite

CPU = torch.device("cpu")


def _pair(seed: int = 0, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(1, 3, size, size, generator=g)
    out = (gt + 0.05 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1)
    return out, gt


def _numpy_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_rgb_psnr_equals_an_independent_computation_on_8bit_output():
    out, gt = _pair()
    suite = MetricSuite(["psnr"], MetricConventions(quantize=True), CPU, has_gt=True)
    values, errors, _ = suite.score(out, gt)
    expected = _numpy_psnr(np.round(out.numpy() * 255) / 255, gt.numpy())
    assert not errors
    assert values["psnr"] == pytest.approx(expected, abs=1e-4)


def test_ycbcr601_psnr_is_1_32_db_above_yiq_luma_psnr():
    """conventions.md §2.2: the limited-range Y scales differences by 219/255."""
    out, gt = _pair(1)
    score = lambda cs: MetricSuite(["psnr"], MetricConventions(color_space=cs, quantize=False),
                                   CPU, True).score(out, gt)[0]["psnr"]
    assert score("ycbcr601") - score("yiq") == pytest.approx(20 * math.log10(255 / 219), abs=1e-3)
    assert score("rgb") != pytest.approx(score("yiq"), abs=0.05)


def test_quantize_rounds_output_to_8bit_levels():
    out, gt = _pair(2)
    float_psnr = MetricSuite(["psnr"], MetricConventions(quantize=False), CPU, True).score(out, gt)[0]
    expected = _numpy_psnr(out.numpy(), gt.numpy())
    assert float_psnr["psnr"] == pytest.approx(expected, abs=1e-4)


def test_gt_mean_rescales_a_uniformly_darker_output():
    gt = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(3)) * 0.8
    out = gt * 0.5
    plain = MetricSuite(["psnr"], MetricConventions(quantize=False), CPU, True).score(out, gt)[0]
    gtm = MetricSuite(["psnr"], MetricConventions(quantize=False, gt_mean=True), CPU,
                      True).score(out, gt)[0]
    assert plain["psnr"] < 20
    assert gtm["psnr"] > 60


def test_crop_border_ignores_border_differences():
    gt = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(4))
    out = gt.clone()
    out[..., :4, :] = 0.0
    uncropped = MetricSuite(["psnr"], MetricConventions(quantize=False), CPU, True).score(out, gt)[0]
    cropped = MetricSuite(["psnr"], MetricConventions(quantize=False, crop_border=4), CPU,
                          True).score(out, gt)[0]
    assert uncropped["psnr"] < 30
    assert cropped["psnr"] > 70


def test_full_reference_metrics_are_missing_without_gt():
    suite = MetricSuite(["psnr", "niqe"], MetricConventions(), CPU, has_gt=False)
    assert "ground truth" in suite.missing["psnr"]


@pytest.fixture
def no_package_copies(monkeypatch):
    """Hide pip-installed copies of asset files, as on a machine without them."""
    for name, asset in list(assets.ASSETS.items()):
        files = tuple(dataclasses.replace(f, package=None) for f in asset.files)
        monkeypatch.setitem(assets.ASSETS, name, dataclasses.replace(asset, files=files))


def test_niqe_without_parameters_is_missing_with_reason(no_package_copies):
    suite = MetricSuite(["niqe"], MetricConventions(), CPU, has_gt=False)
    assert "niqe" not in suite.scorers
    reason = suite.missing["niqe"]
    assert "niqe_pris_params.npz" in reason and "bench assets import" in reason


def test_niqe_with_imported_parameters_scores_noise_worse(weights_home, no_package_copies):
    suite = MetricSuite(["niqe"], MetricConventions(), CPU, has_gt=False)
    assert not suite.missing
    from skimage import data

    clean = torch.from_numpy(data.astronaut()[:192, :192].copy()).permute(2, 0, 1)[None] / 255.0
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)))
    clean_score = suite.score(clean, None)[0]["niqe"]
    noisy_score = suite.score(noisy.clamp(0, 1), None)[0]["niqe"]
    assert math.isfinite(clean_score) and noisy_score > clean_score


def test_lpips_without_backbone_is_missing_with_reason():
    suite = MetricSuite(["lpips"], MetricConventions(), CPU, has_gt=True)
    reason = suite.missing["lpips"]
    assert "alexnet-owt-7be5be79.pth" in reason and "download.pytorch.org" in reason


def test_lpips_loads_a_backbone_through_the_asset_cache(tmp_path, monkeypatch, weights_dir):
    """A random-init AlexNet stands in for the ImageNet weights (not available offline)."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    standin = tmp_path / "standin" / "alexnet-owt-7be5be79.pth"
    standin.parent.mkdir()
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), standin)
    backbones = assets.ASSETS["torchvision-imagenet-backbones"]
    files = tuple(dataclasses.replace(f, sha256=assets.sha256_of(standin))
                  if f.name == standin.name else f for f in backbones.files)
    monkeypatch.setitem(assets.ASSETS, backbones.name, dataclasses.replace(backbones, files=files))
    assets.import_dir(standin.parent)
    assets.import_dir(weights_dir / "lpips_linear")
    suite = MetricSuite(["lpips"], MetricConventions(), CPU, has_gt=True)
    assert not suite.missing, suite.missing
    out, gt = _pair(5)
    same = suite.score(gt, gt)[0]["lpips"]
    different = suite.score(out, gt)[0]["lpips"]
    assert same == pytest.approx(0.0, abs=1e-4)  # only 8-bit rounding differs
    assert different > 100 * same


def test_any_pyiqa_metric_is_usable_by_name():
    """``psnry`` (pyiqa's Y-PSNR, yiq luma) is not registered here: it comes from pyiqa by name.

    It and our ``psnr`` compute the luma with different MKL SGEMM calls, which round apart on
    some CPUs (``test_metrics_fast.test_psnr_equals_pyiqa``): both are held to the float32 bound
    around a float64 evaluation instead of to each other at 1e-6 (below one float32 ulp).
    """
    from metric_bounds import psnr64_and_bound

    from harness.metrics.suite import METRICS, get_metric

    assert "psnry" not in METRICS.names()
    spec = get_metric("psnry")
    assert spec.mode == "FR"
    out, gt = _pair(6)
    by_name = MetricSuite(["psnry"], MetricConventions(quantize=False), CPU, True).score(out, gt)[0]
    ours = MetricSuite(["psnr"], MetricConventions(color_space="yiq", quantize=False), CPU,
                       True).score(out, gt)[0]
    exact, bound = psnr64_and_bound(out, gt, "yiq")
    assert abs(by_name["psnry"] - exact) <= bound
    assert abs(ours["psnr"] - exact) <= bound
    with pytest.raises(KeyError, match="Did you mean"):
        get_metric("psnrr")


@pytest.mark.parametrize("color_space", ["rgb", "yiq", "ycbcr601"])
def test_cpu_ssim_equals_pyiqa_ssim(color_space):
    import pyiqa

    from harness.metrics.suite import _color_opts

    out, gt = _pair(7, size=80)
    out = out[..., :67]  # odd, non-square
    gt = gt[..., :67]
    reference = pyiqa.create_metric("ssim", device="cpu", downsample=False,
                                    **_color_opts(color_space))(out, gt).item()
    ours = MetricSuite(["ssim"], MetricConventions(color_space=color_space, quantize=False),
                       CPU, True).score(out, gt)[0]["ssim"]
    assert ours == pytest.approx(reference, abs=1e-8)
    assert 0.2 < ours < 0.99
