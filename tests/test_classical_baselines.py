"""Classical baselines (issue 5 B): interface contract, one behavioural check per family, and
CBM3D regression pins on real Kodak24 crops.

Behavioural tests use scikit-image's bundled sample photos (no download) degraded synthetically,
with thresholds well inside what the methods reach and well outside what the identity gives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data

from harness.api.restorer import RESTORERS, build_restorer
from restorers.baselines._guided_filter import box_mean, guided_filter
from restorers.baselines._psf import estimate_gaussian_blur
from restorers.baselines.dcp import dark_channel
from restorers.baselines.lime import refine_illumination

CLASSICAL = ["nlm", "gamma", "clahe", "lime", "cbm3d", "wiener", "richardson-lucy", "dcp",
             "underwater-cb"]


def to_batch(image: np.ndarray) -> torch.Tensor:
    """(H,W,3) float → (1,3,H,W) float32."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]


def to_image(batch: torch.Tensor) -> np.ndarray:
    return batch[0].double().numpy().transpose(1, 2, 0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def photo_crop(name: str = "astronaut", size: int = 96, top: int = 40, left: int = 180) -> np.ndarray:
    image = getattr(data, name)()[..., :3].astype(np.float64) / 255.0
    return image[top:top + size, left:left + size]


class TestContract:
    """Every classical restorer: odd sizes, shape kept, finite, in [0,1], documented."""

    @pytest.mark.parametrize("shape", [(1, 3, 37, 53), (1, 3, 64, 48)])
    @pytest.mark.parametrize("name", CLASSICAL)
    def test_restore_odd_sizes(self, name, shape):
        generator = torch.Generator().manual_seed(0)
        smooth = torch.nn.functional.interpolate(torch.rand(shape[0], 3, 6, 6, generator=generator),
                                                 size=shape[-2:], mode="bilinear", align_corners=False)
        lq = smooth + 0.08 * torch.randn(shape, generator=generator)  # spills outside [0,1]
        assert lq.min() < 0 and lq.max() > 1
        out = build_restorer(name).restore(lq, {"sigma": 20.0})
        assert out.shape == lq.shape and out.dtype == lq.dtype
        assert torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1
        assert not torch.equal(out, lq.clamp(0, 1)), f"{name} returned its input"

    @pytest.mark.parametrize("name", CLASSICAL)
    def test_info_documents_the_method(self, name):
        info = build_restorer(name).info()
        assert info.paper and info.licence and info.description and info.input_range
        assert info.degradations and "any" not in info.degradations
        assert RESTORERS.get(name).name == name

    def test_bad_options_are_rejected(self):
        for name, kwargs in [("cbm3d", {"sigma": "guess"}), ("gamma", {"gamma": -1}),
                             ("wiener", {"balance": 0}), ("dcp", {"omega": 2})]:
            with pytest.raises(ValueError, match=name.split("-")[0]):
                build_restorer(name, **kwargs)


class TestLowLight:
    @pytest.mark.parametrize("name", ["gamma", "clahe", "lime"])
    def test_brightens_a_darkened_photo_and_keeps_structure(self, name):
        clean = photo_crop("coffee", top=100, left=200)
        dark = 0.12 * clean ** 1.4
        out = to_image(build_restorer(name).restore(to_batch(dark)))
        assert out.mean() > dark.mean() + 0.15
        assert np.corrcoef(out.mean(-1).ravel(), clean.mean(-1).ravel())[0, 1] > 0.8

    def test_gamma_auto_reaches_the_target_mean_on_a_flat_image(self):
        flat = np.full((16, 16, 3), 0.1)
        out = to_image(build_restorer("gamma").restore(to_batch(flat)))
        assert out.mean() == pytest.approx(0.5, abs=1e-3)

    def test_lime_refinement_smooths_texture_but_keeps_the_level(self):
        rng = np.random.default_rng(0)
        t_hat = np.clip(np.linspace(0.1, 0.6, 40)[None, :] + 0.05 * rng.standard_normal((30, 40)), 0, 1)
        refined = refine_illumination(t_hat, alpha=0.15, sigma=2.0, eps=1e-3)
        assert np.abs(np.diff(refined, axis=1)).mean() < 0.5 * np.abs(np.diff(t_hat, axis=1)).mean()
        assert abs(refined.mean() - t_hat.mean()) < 0.02


class TestDenoising:
    @pytest.mark.parametrize("name,kwargs", [("cbm3d", {}), ("cbm3d", {"sigma": "estimate"}),
                                             ("nlm", {})])
    def test_raises_psnr_on_a_noisy_crop(self, name, kwargs):
        clean = photo_crop(size=64)
        noisy = clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape)
        out = to_image(build_restorer(name, **kwargs).restore(to_batch(noisy), {"sigma": 25.0}))
        assert psnr(out, clean) > psnr(np.clip(noisy, 0, 1), clean) + 4.0

    def test_sigma_source_is_recorded(self):
        restorer = build_restorer("cbm3d")
        assert restorer.config["sigma_source"].startswith("task")
        image = np.random.default_rng(4).normal(0.5, 10 / 255, (64, 64, 3))
        assert restorer.noise_sigma(image, {"sigma": 25}) == (pytest.approx(25 / 255), "task")
        sigma, source = restorer.noise_sigma(image, {})
        assert source == "estimated" and sigma == pytest.approx(10 / 255, rel=0.15)
        assert restorer.noise_sigma(np.zeros((8, 8, 3)), {}) == (0.0, "estimated")

    def test_bm3d_runs_one_thread_unless_asked(self, monkeypatch):
        """bm3d's own pool defaults to every host core (num_threads=0) and its output then
        varies slightly between calls: the restorer hands it the named profile with 1 thread."""
        import bm3d

        seen = []
        monkeypatch.setattr(bm3d, "bm3d_rgb", lambda z, sigma, profile, colorspace: seen.append(
            profile) or z)
        image = to_batch(photo_crop(size=16))
        build_restorer("cbm3d", profile="high").restore(image, {"sigma": 25.0})
        build_restorer("cbm3d", num_threads=2).restore(image, {"sigma": 25.0})
        assert [type(p) for p in seen] == [bm3d.BM3DProfileHigh, bm3d.BM3DProfile]
        assert [p.num_threads for p in seen] == [1, 2]
        assert bm3d.BM3DProfile().num_threads == 0  # the package default this guards against


class TestDeblurring:
    def test_psf_estimator_recovers_the_blur_width(self):
        grey = photo_crop(size=192, top=20, left=150).mean(-1)
        for sigma in (1.0, 2.0, 3.0):
            assert estimate_gaussian_blur(gaussian_filter(grey, sigma)) == pytest.approx(sigma, rel=0.25)

    @pytest.mark.parametrize("name", ["wiener", "richardson-lucy"])
    def test_raises_psnr_on_a_blurred_crop(self, name):
        clean = photo_crop(size=128, top=20, left=150)
        blurred = np.stack([gaussian_filter(clean[..., c], 1.5, mode="reflect") for c in range(3)], -1)
        blurred += np.random.default_rng(2).normal(0, 0.005, clean.shape)
        out = to_image(build_restorer(name).restore(to_batch(blurred)))
        assert psnr(out, clean) > psnr(np.clip(blurred, 0, 1), clean) + 1.0


class TestDehazing:
    def test_guided_filter_box_mean_matches_brute_force(self):
        image = np.random.default_rng(3).random((9, 13))
        radius = 2
        brute = np.array([[image[max(0, i - radius):i + radius + 1, max(0, j - radius):j + radius + 1].mean()
                           for j in range(13)] for i in range(9)])
        np.testing.assert_allclose(box_mean(image, radius), brute, atol=1e-12)
        np.testing.assert_allclose(guided_filter(image, image, radius, 1e-8), image, atol=1e-4)

    def test_dcp_removes_synthetic_haze(self):
        clean = photo_crop("astronaut", size=128, top=0, left=0)
        depth = np.linspace(0.2, 1.5, 128)[None, :, None]
        t, light = np.exp(-depth), np.array([0.9, 0.92, 0.95])
        hazy = clean * t + light * (1 - t)
        out = to_image(build_restorer("dcp", gf_radius=20).restore(to_batch(hazy)))
        assert dark_channel(out, 15).mean() < 0.5 * dark_channel(hazy, 15).mean()
        assert psnr(out, clean) > psnr(hazy, clean) + 5.0


class TestUnderwater:
    def test_reduces_the_red_deficit(self):
        clean = photo_crop("chelsea", size=128, top=50, left=150)
        underwater = clean * np.array([0.25, 0.85, 0.9]) + np.array([0.0, 0.05, 0.08])
        out = to_image(build_restorer("underwater-cb").restore(to_batch(underwater)))

        def deficit(image):
            return image[..., 1].mean() - image[..., 0].mean()

        assert deficit(underwater) > 0.15
        assert abs(deficit(out)) < 0.25 * deficit(underwater)


@pytest.mark.data
class TestCBM3DRegression:
    """CBM3D on 128×128 centre crops of kodak24-awgn25 (the task's own noise, then cropped).

    Values measured with bm3d 4.0.3 ('np' profile), σ = 25 from the task, scored by the task's
    metric suite (8-bit quantised RGB PSNR, pyiqa SSIM). Inputs score 20.2629 / 20.6440 dB.
    """

    PINS = {"kodim01": (28.24838, 0.832138), "kodim02": (32.03141, 0.785780)}

    def test_pinned_per_image_values(self, with_data):
        from harness.api.task import build_task
        from harness.metrics.suite import MetricSuite

        task = build_task("kodak24-awgn25")
        suite = MetricSuite(["psnr", "ssim"], task.conventions, torch.device("cpu"), has_gt=True)
        restorer = build_restorer("cbm3d")
        for sample_id, (want_psnr, want_ssim) in self.PINS.items():
            sample = task.load(sample_id)
            _, height, width = sample.lq.shape
            top, left = (height - 128) // 2, (width - 128) // 2
            window = (slice(None), slice(top, top + 128), slice(left, left + 128))
            lq, gt = sample.lq[window][None], sample.gt[window][None]
            scores, errors, _ = suite.score(restorer.restore(lq, sample.meta), gt)
            assert not errors
            assert scores["psnr"] == pytest.approx(want_psnr, abs=1e-3), sample_id
            assert scores["ssim"] == pytest.approx(want_ssim, abs=1e-4), sample_id
