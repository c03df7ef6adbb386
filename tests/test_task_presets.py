"""Benchmark presets: registration, metric conventions, layout detection and loaders.

Layouts absent from this machine (SIDD .mat blocks, GoPro scenes, SOTS naming, UIEB split, LOL
official / Retinexformer) are exercised on tiny fixtures written to ``tmp_path``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from harness.api.task import DataMissingError, MetricConventions, build_task
from harness.assets.data_validation import validate_task
from harness.metrics.suite import MetricSuite

ALL_PRESETS = (
    "lolv1", "lolv1-tao256", "lime", "dicm", "mef", "npe", "vv", "baid",
    *(f"{s}-awgn{n}" for s in ("kodak24", "kodak24c500", "cbsd68", "mcmaster") for n in (15, 25, 50)),
    "sidd-val", "kodak24-tao256-awgn30", "gopro", "rain100l", "rain12",
    "sots-indoor", "sots-outdoor", "hsts", "uieb-t90",
)
NO_GT = {"lime", "dicm", "mef", "npe", "vv"}


def _png(path, height, width, seed=0, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    array = (np.full((height, width, 3), value, np.uint8) if value is not None
             else rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    Image.fromarray(array).save(path)
    return array


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_ROOT", str(tmp_path))
    return tmp_path


class TestRegistry:
    """Every preset of the issue exists, describes itself and knows its benchmark size."""

    @pytest.mark.parametrize("name", ALL_PRESETS)
    def test_preset_metadata(self, name):
        task = build_task(name)
        assert task.description and task.citation and task.degradation
        assert task.expected_count and task.expected_count > 0
        assert task.has_gt is (name not in NO_GT)
        assert task.default_metrics() == (["niqe"] if name in NO_GT
                                          else ["psnr", "ssim", "lpips", "niqe"])

    def test_expected_counts_of_the_benchmarks(self):
        counts = {"lolv1": 15, "sidd-val": 1280, "gopro": 1111, "rain100l": 100, "rain12": 12,
                  "sots-indoor": 500, "sots-outdoor": 500, "hsts": 10, "uieb-t90": 90,
                  "kodak24-awgn25": 24, "cbsd68-awgn25": 68, "mcmaster-awgn25": 18, "dicm": 64}
        assert {name: build_task(name).expected_count for name in counts} == counts

    def test_missing_data_fails_before_any_model_with_how_to(self, root):
        task = build_task("gopro")
        with pytest.raises(DataMissingError) as info:
            task.check_available()
        message = str(info.value)
        assert "GOPRO_Large/test" in message and "seungjunnah.github.io" in message


class TestConventions:
    """Pins of conventions.md §2: Rain100L is BT.601 Y, the other presets are RGB."""

    def test_rain100l_scores_bt601_y(self):
        conventions = build_task("rain100l").conventions
        assert conventions.color_space == "ycbcr601"
        assert conventions.ssim_color_space in (None, "ycbcr601")

    @pytest.mark.parametrize("name", [n for n in ALL_PRESETS if n != "rain100l"])
    def test_other_presets_score_rgb_psnr(self, name):
        assert build_task(name).conventions.color_space == "rgb"

    def test_rain100l_psnr_is_the_limited_range_luma(self):
        """The metric suite built from the preset really computes BT.601 limited-range Y PSNR,
        not RGB and not full-range (yiq) luma, which reads 1.32 dB lower (conventions.md §2.2)."""
        rng = np.random.default_rng(0)
        gt8 = rng.integers(30, 220, (48, 48, 3)).astype(np.float64)
        out8 = np.clip(gt8 + rng.normal(0, 12, gt8.shape).round(), 0, 255)

        def psnr(a, b):
            return 10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2))

        def y601(x):
            return 16 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255

        def yiq(x):
            return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]

        expected = {"ycbcr601": psnr(y601(out8), y601(gt8)), "yiq": psnr(yiq(out8), yiq(gt8)),
                    "rgb": psnr(out8, gt8)}
        assert expected["ycbcr601"] - expected["yiq"] == pytest.approx(20 * np.log10(255 / 219), abs=1e-6)
        to_tensor = lambda a: torch.from_numpy(a / 255).permute(2, 0, 1)[None].float()
        for name, space in (("rain100l", "ycbcr601"), ("rain12", "rgb")):
            suite = MetricSuite(["psnr"], build_task(name).conventions, torch.device("cpu"), True)
            values, errors, _ = suite.score(to_tensor(out8), to_tensor(gt8))
            assert not errors
            assert values["psnr"] == pytest.approx(expected[space], abs=0.1), name

    def test_ldrps_presets_use_yiq_ssim_and_8bit(self):
        for name in ("lolv1-tao256", "hsts", "kodak24-tao256-awgn30"):
            c = build_task(name).conventions
            assert (c.color_space, c.ssim_color_space, c.quantize) == ("rgb", "yiq", True)

    def test_lolv1_gt_mean_off_by_default_and_logged_when_on(self):
        default = build_task("lolv1")
        assert default.conventions.gt_mean is False and default.conventions.quantize is False
        on = build_task("lolv1", gt_mean=True)
        assert on.conventions.gt_mean is True and on.options["gt_mean"] is True
        assert on.conventions.as_params()["metric.gt_mean"] is True
        assert on.describe()["conventions"]["gt_mean"] is True

    def test_sots_float_and_indoor_crop_option(self):
        indoor, outdoor = build_task("sots-indoor"), build_task("sots-outdoor")
        assert indoor.conventions.quantize is False and outdoor.conventions.quantize is False
        assert indoor.options == {"gt_crop": True} and outdoor.options == {"gt_crop": False}


class TestOfficialLayouts:
    def test_lol_official_layout_is_preferred_and_paired(self, root):
        _png(root / "lowlight/LOLdataset/eval15/low/1.png", 400, 600, 1)
        _png(root / "lowlight/LOLdataset/eval15/high/1.png", 400, 600, 2)
        _png(root / "lowlight/LOLv1/Test/input/9.png", 400, 600, 3)  # a second, later layout
        _png(root / "lowlight/LOLv1/Test/target/9.png", 400, 600, 4)
        task = build_task("lolv1")
        assert task.data_location()["layout"] == "official"
        assert task.sample_ids() == ["1"]
        sample = task.load("1")
        assert sample.lq.shape == sample.gt.shape == (3, 400, 600)
        report = validate_task(task)
        assert report.status == "partial" and (report.found, report.paired) == (1, 1)

    def test_lol_retinexformer_layout(self, root):
        for stem in ("111", "146"):
            _png(root / f"lowlight/LOLv1/Test/input/{stem}.png", 400, 600)
            _png(root / f"lowlight/LOLv1/Test/target/{stem}.png", 400, 600)
        task = build_task("lolv1")
        assert task.data_location()["layout"] == "retinexformer"
        assert task.sample_ids() == ["111", "146"]
        task.check_available()

    def test_lol_wrong_size_is_invalid(self, root):
        _png(root / "lowlight/LOLv1/Test/input/1.png", 256, 256)
        _png(root / "lowlight/LOLv1/Test/target/1.png", 256, 256)
        report = validate_task(build_task("lolv1"))
        assert report.status == "invalid" and "not one of" in report.problems[0]

    def test_lol_low_only_copy_is_partial_and_refused_by_the_runner(self, root):
        _png(root / "lowlight/lolv1_eval15_low_partial/low/1.png", 400, 600)
        task = build_task("lolv1")
        report = validate_task(task)
        assert (report.status, report.found, report.paired) == ("partial", 1, 0)
        with pytest.raises(DataMissingError, match="no ground truth"):
            task.check_available()

    def test_gopro_scene_layout_uses_blur_not_blur_gamma(self, root):
        for scene in ("GOPR0384_11_00", "GOPR0862_11_00"):
            base = root / "deblur/GOPRO_Large/test" / scene
            _png(base / "blur/000001.png", 8, 12, 1)
            _png(base / "blur_gamma/000001.png", 8, 12, 2)
            sharp = _png(base / "sharp/000001.png", 8, 12, 3)
        task = build_task("gopro")
        assert task.sample_ids() == ["GOPR0384_11_00/000001", "GOPR0862_11_00/000001"]
        sample = task.load("GOPR0862_11_00/000001")
        assert "/blur/" in sample.meta["lq_path"]
        assert torch.equal((sample.gt.permute(1, 2, 0) * 255).round().byte(), torch.from_numpy(sharp))
        task.check_available()

    def test_sots_naming_and_indoor_gt_centre_crop(self, root):
        hazy = root / "dehaze/SOTS/indoor/hazy"
        for k in (1, 2):
            _png(hazy / f"1400_{k}.png", 460, 620, k)
        gt = _png(root / "dehaze/SOTS/indoor/gt/1400.png", 480, 640, 9)
        task = build_task("sots-indoor")
        assert task.sample_ids() == ["1400_1", "1400_2"]
        sample = task.load("1400_2")
        expected = torch.from_numpy(gt[10:470, 10:630].copy()).permute(2, 0, 1).float() / 255
        assert torch.equal(sample.gt, expected)
        assert sample.meta["gt_crop"] == {"from": [480, 640], "to": [460, 620]}
        assert validate_task(task).status == "partial"
        with pytest.raises(ValueError, match="differ in size"):
            build_task("sots-indoor", gt_crop=False).load("1400_1")

    def test_sots_outdoor_naming(self, root):
        _png(root / "dehaze/SOTS/outdoor/hazy/0001_0.8_0.2.jpg", 16, 16)
        _png(root / "dehaze/SOTS/outdoor/gt/0001.png", 16, 16)
        task = build_task("sots-outdoor")
        assert task.index()["0001_0.8_0.2"][1].name == "0001.png"

    def test_uieb_split_file(self, root):
        from tasks.underwater import split_names

        names = split_names()
        assert len(names) == 90 == len(set(names))
        for name in names[:3]:
            _png(root / "underwater/UIEB/raw-890" / name, 20, 30)
            _png(root / "underwater/UIEB/reference-890" / name, 20, 30)
        _png(root / "underwater/UIEB/raw-890/not_in_split.png", 20, 30)
        task = build_task("uieb-t90")
        assert task.sample_ids() == [n.removesuffix(".png") for n in names[:3]]
        report = validate_task(task)
        assert (report.status, report.found, report.expected) == ("partial", 3, 90)
        resized = build_task("uieb-t90", resize=16).load(task.sample_ids()[0])
        assert resized.lq.shape == resized.gt.shape == (3, 16, 16)

    def test_uieb_split_ships_as_package_data(self):
        """setuptools only ships *.txt of packages: tasks/splits must be one, under tasks*."""
        import tomllib
        from pathlib import Path

        repo = Path(__file__).parents[1]
        setuptools_cfg = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
        assert "*.txt" in setuptools_cfg["package-data"]["*"]
        assert "tasks*" in setuptools_cfg["packages"]["find"]["include"]
        assert (repo / "tasks/splits/__init__.py").is_file()
        assert (repo / "tasks/splits/uieb_t90.txt").is_file()


class TestSIDD:
    def _write(self, folder, noisy, gt):
        import scipy.io

        folder.mkdir(parents=True)
        scipy.io.savemat(folder / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
        scipy.io.savemat(folder / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})

    def test_blocks_become_samples(self, root):
        rng = np.random.default_rng(0)
        noisy = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
        gt = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
        self._write(root / "Datasets/test/SIDD", noisy, gt)
        task = build_task("sidd-val")
        assert task.data_location()["layout"] == "restormer"
        ids = task.sample_ids()
        assert ids[0] == "img00_blk00" and ids[-1] == "img01_blk02" and len(ids) == 6
        sample = task.load("img01_blk02")
        assert torch.equal((sample.lq.permute(1, 2, 0) * 255).round().byte(), torch.from_numpy(noisy[1, 2]))
        assert torch.equal((sample.gt.permute(1, 2, 0) * 255).round().byte(), torch.from_numpy(gt[1, 2]))
        report = validate_task(task)
        # 8x8 blocks are not the benchmark's 256x256: reported, not passed
        assert report.status == "invalid" and "not one of" in report.problems[0]

    def test_v73_file_says_so(self, root):
        folder = root / "denoise/SIDD"
        folder.mkdir(parents=True)
        header = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, "
                  b"Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 .")
        for stem in ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"):
            (folder / f"{stem}.mat").write_bytes(header.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM")
        pytest.importorskip("scipy")
        try:
            import h5py  # noqa: F401
        except ImportError:
            with pytest.raises(ValueError, match="v7.3"):
                build_task("sidd-val").sample_ids()
        else:  # h5py present: the fake file is not valid HDF5, so h5py itself complains
            with pytest.raises(Exception):  # noqa: B017
                build_task("sidd-val").sample_ids()


class TestRealData:
    """The copies on this machine (BENCH_DATA_ROOT=../shared/data)."""

    def test_tao_preprocessing_reproduces_tao_lol_bit_exactly(self, with_data):
        from tasks._common import tao_square

        low = with_data / "lowlight/lolv1_eval15_low_partial/low/22.png"
        tao = np.asarray(Image.open(with_data / "lowlight/lolv1_eval15_tao256/low/22.png").convert("RGB"))
        ours = (tao_square(low, 256).permute(1, 2, 0) * 255).round().byte().numpy()
        assert np.array_equal(ours, tao)

    def test_ldrps_denoise_preset(self, with_data):
        task = build_task("kodak24-tao256-awgn30")
        sample = task.load("kodim03")
        assert sample.lq.shape == sample.gt.shape == (3, 256, 256)
        assert sample.lq.min() >= 0 and sample.lq.max() <= 1
        assert torch.equal(sample.lq, torch.round(sample.lq * 255) / 255)  # 8-bit noisy input
        noise_std = float((sample.lq - sample.gt).std() * 255)
        assert 25 < noise_std < 31  # sigma 30, slightly reduced by clipping
        again = build_task("kodak24-tao256-awgn30").load("kodim03")
        assert torch.equal(sample.lq, again.lq)

    def test_ffdnet_kodak_crops_are_centre_crops_of_kodak24(self, with_data):
        """The FFDNet paper's Kodak24 (500x500) is a lossless centre crop of the canonical set."""
        full = build_task("kodak24-awgn25").load("kodim01").gt
        crop = build_task("kodak24c500-awgn25").load("kodim01").gt
        assert crop.shape == (3, 500, 500)
        top, left = (full.shape[1] - 500) // 2, (full.shape[2] - 500) // 2
        assert torch.equal(crop, full[:, top:top + 500, left:left + 500])

    def test_mcmaster_tiffs(self, with_data):
        task = build_task("mcmaster-awgn25")
        assert len(task.sample_ids()) == 18
        assert task.load(task.sample_ids()[0]).gt.shape == (3, 500, 500)

    def test_reference_noise_reproduces_numpy_seed0(self, with_data):
        task = build_task("kodak24-awgn25", reference_noise=True)
        sample = task.load("kodim01")
        np.random.seed(0)
        clean = sample.gt.permute(1, 2, 0).numpy()
        expected = clean + np.random.normal(0, 25 / 255, clean.shape)
        assert np.array_equal(sample.lq.permute(1, 2, 0).numpy(), expected.astype(np.float32))

    def test_rain_pairing_on_real_files(self, with_data):
        task = build_task("rain12")
        assert task.index()["rain-001"][1].name == "norain-001.png"
        task.check_available()

    def test_convention_override_is_logged(self, with_data):
        task = build_task("rain12", color_space="ycbcr601")
        assert task.conventions == MetricConventions(color_space="ycbcr601", quantize=True)
        assert task.options["color_space"] == "ycbcr601"
