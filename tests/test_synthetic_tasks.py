"""Synthetic tasks (synth: specs, presets, demo) and the training-pair source."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from harness.api.task import TASKS, build_task
from tasks.degradations import OPERATORS
from tasks.synthetic import SKIMAGE_PHOTOS, skimage_photo
from tasks.training import DegradedCrops

MIXED = "synth:skimage:noise+blur+lowlight@3"


class TestSynthSpec:
    def test_spec_builds_a_recorded_seeded_task(self):
        task = build_task(MIXED, crop=64)
        assert task.name == MIXED and task.degradation == "mixed" and task.has_gt
        assert task.sample_ids() == list(SKIMAGE_PHOTOS)
        sample = task.load("chelsea")
        assert sample.lq.shape == sample.gt.shape == (3, 64, 64)
        assert torch.equal(sample.gt, skimage_photo("chelsea", crop=64))
        record = sample.meta["degradation"]
        assert record["seed"] == task.image_seed("chelsea") and record["severity"] == 3
        assert [op["op"] for op in record["ops"]] == ["motion_blur", "lowlight"]
        assert json.loads(json.dumps(record)) == record
        assert "sigma" not in sample.meta  # blind: parameters only under "degradation"

    def test_two_builds_same_images_and_different_images_differ(self):
        first, second = build_task(MIXED, crop=64), build_task(MIXED, crop=64)
        assert torch.equal(first.load("coffee").lq, second.load("coffee").lq)
        seeds = {first.image_seed(i) for i in first.sample_ids()}
        assert len(seeds) == len(SKIMAGE_PHOTOS)
        a, b = first.load("coffee").meta["degradation"], first.load("rocket").meta["degradation"]
        assert a["ops"][0]["extent"] != b["ops"][0]["extent"]

    def test_identical_in_a_single_threaded_subprocess(self):
        code = ("import torch, hashlib; torch.set_num_threads(1); from harness.api.task import build_task;"
                f"t = build_task({MIXED!r}, crop=64); x = t.load('astronaut').lq;"
                "print(hashlib.sha256(x.numpy().tobytes()).hexdigest())")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        previous = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            here = build_task(MIXED, crop=64).load("astronaut").lq
        finally:
            torch.set_num_threads(previous)
        import hashlib

        assert out.stdout.strip() == hashlib.sha256(here.numpy().tobytes()).hexdigest()

    def test_levels_share_draws_and_seed_changes_them(self):
        low, high = build_task("synth:skimage:motion_blur@1"), build_task("synth:skimage:motion_blur@5")
        assert low.image_seed("rocket") == high.image_seed("rocket")
        trajectory = lambda t: t.load("rocket").meta["degradation"]["ops"][0]["trajectory"]  # noqa: E731
        assert trajectory(low) == trajectory(high)
        reseeded = build_task("synth:skimage:motion_blur@1")
        reseeded.seed = 7
        assert trajectory(reseeded) != trajectory(low)

    def test_operator_options_reach_the_operator(self):
        task = build_task("synth:skimage:lowlight@2", crop=32, color_cast=True)
        record = task.load("astronaut").meta["degradation"]["ops"][0]
        assert record["color_cast"] is True and len(record["cast_gains"]) == 3

    @pytest.mark.parametrize("name, message", [
        ("synth:skimage:noise", "synth:CLEAN:SPEC@LEVEL"),
        ("synth:skimage:noise@9", "level after '@' must be 1-5"),
        ("synth:skimage:smoke@2", "unknown degradation 'smoke'"),
    ])
    def test_bad_specs_fail_at_lookup(self, name, message):
        with pytest.raises(ValueError, match=message):
            build_task(name)

    def test_unknown_clean_set_says_what_exists(self):
        with pytest.raises(ValueError, match="unknown clean set 'kodak'.*kodak24"):
            build_task("synth:kodak:noise@2")

    def test_clean_dir_makes_any_folder_a_clean_set(self, tmp_path):
        from harness.io.images import save_image

        save_image(skimage_photo("coffee", crop=40), tmp_path / "a.png")
        task = build_task("synth:mine:jpeg@4", clean_dir=str(tmp_path))
        assert task.sample_ids() == ["a"] and task.load("a").lq.shape == (3, 40, 40)


class TestPresets:
    def test_every_preset_is_registered(self):
        names = set(TASKS.names())
        expected = {f"kodak24-mixed-s{level}" for level in range(1, 6)}
        expected |= {"mcmaster-mixed-s3", "cbsd68-mixed-s3", "demo"}
        expected |= {f"kodak24-{op.replace('_', '-')}-s3" for op in OPERATORS}
        assert expected <= names

    def test_preset_draws_like_its_spec(self, with_data):
        preset = build_task("kodak24-mixed-s2", crop=48)
        spec = build_task("synth:kodak24:noise+blur+lowlight@2", crop=48)
        assert preset.name == "kodak24-mixed-s2" and len(preset.sample_ids()) == 24
        assert torch.equal(preset.load("kodim05").lq, spec.load("kodim05").lq)
        assert preset.load("kodim05").meta["gt_path"].endswith("kodim05.png")


class TestDemo:
    def test_demo_is_the_library_gaussian_noise_at_sigma_25(self):
        task = build_task("demo")
        assert task.name == "demo" and task.has_gt and task.sample_ids() == list(SKIMAGE_PHOTOS)
        sample = task.load("astronaut")
        assert sample.lq.shape == (3, 256, 256) and sample.meta["sigma"] == 25.0
        record = sample.meta["degradation"]
        assert record["ops"][0] == {"op": "gaussian_noise", "severity": 3, "sigma": 25.0, "fixed": True}
        generator = torch.Generator().manual_seed(task.image_seed("astronaut"))
        noise = torch.randn(sample.gt.shape, generator=generator)
        expected = (sample.gt.double() + noise.double() * (25.0 / 255.0)).clamp(0, 1).float()
        assert torch.equal(sample.lq, expected)


class TestTrainingPairs:
    def test_items_are_seeded_and_differ(self):
        data = DegradedCrops("skimage", "noise+blur+lowlight", severity=(1, 5), crop=32, length=20)
        lq, gt = data[3]
        again = DegradedCrops("skimage", "noise+blur+lowlight", severity=(1, 5), crop=32, length=20)[3]
        assert lq.shape == gt.shape == (3, 32, 32)
        assert torch.equal(lq, again[0]) and torch.equal(gt, again[1])
        assert not torch.equal(data[4][0], lq)
        levels = {data.sample(i)[2]["severity"] for i in range(20)}
        assert len(levels) > 1 and levels <= {1, 2, 3, 4, 5}

    def test_epochs_and_loader_batches(self):
        data = DegradedCrops("skimage", "gaussian_noise", crop=24, length=6, return_params=True)
        first = data[0][0]
        data.set_epoch(1)
        assert not torch.equal(first, data[0][0])
        loader = torch.utils.data.DataLoader(data, batch_size=3)
        lq, gt, params = next(iter(loader))
        assert lq.shape == (3, 3, 24, 24)
        assert torch.equal(lq[0], data[0][0])
        assert json.loads(params[0])["ops"][0]["op"] == "gaussian_noise"

    def test_gt_is_a_crop_of_the_clean_image(self):
        data = DegradedCrops("skimage", "jpeg", crop=16, length=4)
        _, gt, params = data.sample(2)
        image = skimage_photo(params["image_id"], crop=0)
        crop = image[:, params["top"]:params["top"] + 16, params["left"]:params["left"] + 16]
        assert torch.equal(gt, crop.flip(-1) if params["flip"] else crop)
