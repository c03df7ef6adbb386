"""Degradation operators: reproducibility, severity monotonicity, and each physical model."""

from __future__ import annotations

import json

import pytest
import torch

from tasks.degradations import OPERATORS, build_degradation, canonical_spec
from tasks.degradations.base import filter2d, linear_to_srgb, srgb_to_linear
from tasks.degradations.blur import MotionBlur
from tasks.degradations.haze import depth_proxy
from tasks.degradations.jpeg import jpeg_roundtrip
from tasks.degradations.lowlight import LowLight
from tasks.synthetic import skimage_photo

SPECS = [*OPERATORS, "noise+blur+lowlight", "haze+rain+jpeg"]


@pytest.fixture(scope="module")
def photos() -> list[torch.Tensor]:
    """Three real photographs, 96x96 centre crops (small but with texture and flat regions)."""
    return [skimage_photo(name, crop=96) for name in ("astronaut", "chelsea", "coffee")]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a.double() - b.double()) ** 2).mean()))


def degrade(spec: str, severity: int, image: torch.Tensor, seed: int) -> tuple[torch.Tensor, dict]:
    return build_degradation(spec, severity)(image, torch.Generator().manual_seed(seed))


class TestReproducibility:
    @pytest.mark.parametrize("spec", SPECS)
    def test_same_seed_same_image_across_runs(self, spec, photos):
        first, params1 = degrade(spec, 3, photos[0], 11)
        second, params2 = degrade(spec, 3, photos[0], 11)
        assert torch.equal(first, second)
        assert params1 == params2

    def test_identical_across_thread_counts(self, photos):
        previous = torch.get_num_threads()
        try:
            outputs = {}
            for threads in (1, 2):
                torch.set_num_threads(threads)
                outputs[threads] = [degrade(spec, 4, photos[1], 5)[0] for spec in SPECS]
        finally:
            torch.set_num_threads(previous)
        for spec, one, two in zip(SPECS, outputs[1], outputs[2], strict=True):
            assert torch.equal(one, two), spec

    @pytest.mark.parametrize("spec", SPECS)
    def test_different_seeds_draw_differently(self, spec, photos):
        a, pa = degrade(spec, 3, photos[0], 1)
        b, pb = degrade(spec, 3, photos[0], 2)
        assert not torch.equal(a, b)
        assert pa != pb

    @pytest.mark.parametrize("spec", SPECS)
    def test_params_are_json_and_shape_dtype_kept(self, spec, photos):
        batch = torch.stack(photos[:2])
        out, params = build_degradation(spec, 2)(batch, torch.Generator().manual_seed(0))
        assert out.shape == batch.shape and out.dtype == batch.dtype
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        assert json.loads(json.dumps(params)) == params
        assert [p["severity"] for p in params["ops"]] == [2] * len(params["ops"])

    def test_generator_must_be_cpu_and_image_must_be_rgb(self, photos):
        op = build_degradation("gaussian_noise", 1)
        with pytest.raises(ValueError, match=r"\(3,H,W\)"):
            op(photos[0][:1], torch.Generator())


class TestSeverity:
    @pytest.mark.parametrize("spec", SPECS)
    def test_psnr_falls_strictly_with_severity(self, spec, photos):
        for index, image in enumerate(photos):
            scores = [psnr(degrade(spec, level, image, 100 + index)[0], image) for level in range(1, 6)]
            assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), (spec, index, scores)

    @pytest.mark.parametrize("level", [0, 6, 2.5, True])
    def test_bad_level_is_rejected(self, level):
        with pytest.raises(ValueError, match="severity must be an integer 1-5"):
            build_degradation("haze", level)


class TestComposition:
    def test_physical_order_whatever_the_spelling(self):
        assert canonical_spec("lowlight+noise+blur") == "noise+blur+lowlight"
        assert canonical_spec("mixed") == "noise+blur+lowlight"
        assert canonical_spec("jpeg+haze+gaussian_blur") == "haze+gaussian_blur+jpeg"
        op = build_degradation("lowlight+jpeg+noise+blur", 3)
        assert op.order == ["motion_blur", "lowlight",
                            "poisson_gaussian_noise (in lowlight, linear RGB)", "jpeg"]

    def test_mixture_is_blur_then_exposure_then_sensor_noise(self, photos):
        """Recompute noise+blur+lowlight step by step from the recorded parameters."""
        image = photos[2]
        out, record = degrade("noise+blur+lowlight", 3, image, 9)
        blur, low = record["ops"]
        generator = torch.Generator().manual_seed(9)
        blurred, blur_again = MotionBlur(3)(image, generator)
        assert blur_again == blur
        # the remaining generator state drives exposure, cast draws, then the sensor noise
        lowlight, low_again = LowLight(3)(blurred, generator)
        assert low_again == low
        assert torch.equal(lowlight, out)
        assert low["sensor_noise"]["op"] == "poisson_gaussian_noise"

    def test_errors_name_the_problem(self):
        with pytest.raises(ValueError, match="unknown degradation 'fog'"):
            canonical_spec("noise+fog")
        with pytest.raises(ValueError, match="more than once"):
            canonical_spec("gaussian_noise+noise")
        with pytest.raises(ValueError, match=r"no operator takes option\(s\) \['colour'\]"):
            build_degradation("haze", 1, colour=True)


class TestModels:
    def test_srgb_curve_round_trip_and_reference_values(self):
        x = torch.linspace(0, 1, 101, dtype=torch.float64)
        assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
        half = srgb_to_linear(torch.tensor(0.5, dtype=torch.float64))
        assert float(half) == pytest.approx(0.21404, abs=1e-5)

    def test_lowlight_scales_linear_light_by_the_exposure(self, photos):
        class NoNoise(LowLight):  # the exposure/cast part alone
            pass

        silent = build_degradation("gaussian_noise", 1)
        silent.operators[0].sigma = 0.0
        op = NoNoise(4, color_cast=True, sensor_noise=silent.operators[0])
        out, params = op(photos[0].double(), torch.Generator().manual_seed(3))
        gains = torch.tensor(params["cast_gains"], dtype=torch.float64).view(3, 1, 1)
        expected = linear_to_srgb(srgb_to_linear(photos[0].double()) * params["exposure"] * gains)
        assert torch.allclose(out, expected, atol=1e-12)
        assert 0.06 <= params["exposure"] <= 0.12

    def test_haze_follows_the_scattering_model(self, photos):
        image = photos[1].double()
        out, params = degrade("haze", 3, image, 4)
        t = torch.exp(-params["ops"][0]["beta"] * depth_proxy(image[None]))[0]
        a = torch.tensor(params["ops"][0]["airlight"], dtype=torch.float64).view(3, 1, 1)
        assert torch.allclose(out, (image * t + a * (1 - t)).clamp(0, 1), atol=1e-12)

    def test_motion_kernel_is_a_seeded_normalised_trajectory(self):
        k1 = MotionBlur.kernel_for(torch.Generator().manual_seed(1), 12.0)
        k2 = MotionBlur.kernel_for(torch.Generator().manual_seed(2), 12.0)
        assert float(k1.sum()) == pytest.approx(1.0) and float(k1.min()) >= 0.0
        assert k1.shape == k2.shape and not torch.allclose(k1, k2)
        assert int((k1 > 0).sum()) > 12  # a path, not a point

    def test_filter2d_matches_direct_convolution(self):
        x = torch.rand(1, 3, 20, 23, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        k = torch.rand(5, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        padded = torch.nn.functional.pad(x, (3, 3, 2, 2), mode="reflect")
        direct = torch.nn.functional.conv2d(padded, k.expand(3, 1, 5, 7), groups=3)
        assert torch.allclose(filter2d(x, k), direct, atol=1e-12)

    def test_jpeg_is_pillow_at_the_recorded_quality(self, photos):
        out, params = degrade("jpeg", 5, photos[0], 2)
        quality = params["ops"][0]["quality"]
        assert 6 <= quality <= 10
        assert torch.equal(out, jpeg_roundtrip(photos[0], quality).float())

    def test_rain_only_brightens(self, photos):
        out, params = degrade("rain", 3, photos[0], 2)
        assert bool((out >= photos[0] - 1e-6).all())
        assert params["ops"][0]["n_streaks"] > 0
