"""The all-in-one training data: ``lowlight_calibrated`` and ``degraded[degradation=a|b|...]``."""

from __future__ import annotations

import collections
import math

import pytest
import torch
import yaml

from harness.api.training_sets import build_training_set
from tasks.degradations import OPERATORS, build_degradation
from tasks.degradations.lowlight import CalibratedLowLight, LowLight
from tasks.synthetic import skimage_photo
from tasks.training import DegradedCrops

MIX = "none|noise|haze|rain|jpeg|lowlight_calibrated|noise+blur+lowlight"


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return skimage_photo("chelsea", crop=64)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a.double() - b.double()) ** 2).mean()))


class TestCalibratedLowLight:
    def test_is_a_registered_lowlight_operator_and_the_preset_is_unchanged(self):
        assert OPERATORS["lowlight_calibrated"] is CalibratedLowLight
        assert CalibratedLowLight.family == "lowlight"
        # the presets' table stays as published in docs/degradations.md
        assert LowLight.table == ((0.35, 0.5), (0.2, 0.35), (0.12, 0.2), (0.06, 0.12), (0.03, 0.06))

    def test_bands_cover_the_published_ranges_without_overlap(self):
        ratios = [1 / k for band in CalibratedLowLight.table for k in band]
        assert math.isclose(min(ratios), 2.0) and math.isclose(max(ratios), 100.0)  # SID's ×100
        shots = [a for band in CalibratedLowLight.shot_table for a in band]
        assert math.isclose(min(shots), 1e-4) and math.isclose(max(shots), 1.2e-2)  # Brooks et al.
        for table in (CalibratedLowLight.table, CalibratedLowLight.shot_table):
            for (_, end), (start, _) in zip(table, table[1:], strict=False):
                assert math.isclose(end, start)

    def test_draws_lie_in_their_band_and_are_recorded(self, photo):
        for level in range(1, 6):
            op = build_degradation("lowlight_calibrated", level)
            _, params = op(photo, torch.Generator().manual_seed(7))
            op = params["ops"][0]
            low, high = CalibratedLowLight.table[level - 1]
            assert high <= op["exposure"] <= low
            low, high = CalibratedLowLight.shot_table[level - 1]
            noise = op["sensor_noise"]
            assert low <= noise["shot"] <= high and noise["read_variance"] > 0
            red, green, blue = op["cast_gains"]
            assert green == 1.0 and 1.5 / 1.9 / 1.27 < red < 2.4 / 1.9 and 1.5 / 1.9 <= blue <= 1.9 / 1.5

    def test_darker_and_worse_with_severity(self, photo):
        ops = [build_degradation("lowlight_calibrated", s) for s in range(1, 6)]
        values = [psnr(op(photo, torch.Generator().manual_seed(3))[0], photo) for op in ops]
        assert values == sorted(values, reverse=True)

    def test_a_listed_noise_operator_replaces_the_calibrated_noise(self, photo):
        op = build_degradation("noise+lowlight_calibrated", 2)
        out, params = op(photo, torch.Generator().manual_seed(0))
        assert params["ops"][0]["sensor_noise"]["op"] == "poisson_gaussian_noise"
        assert params["order"][-1].startswith("poisson_gaussian_noise (in lowlight_calibrated")
        alone = build_degradation("lowlight_calibrated", 2)(photo, torch.Generator().manual_seed(0))[1]
        assert alone["ops"][0]["sensor_noise"]["op"] == "brooks2019"
        assert alone["order"] == ["lowlight_calibrated"]

    def test_cast_can_be_switched_off_without_changing_other_draws(self, photo):
        gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
        on = build_degradation("lowlight_calibrated", 3)(photo, gen())[1]["ops"][0]
        off = build_degradation("lowlight_calibrated", 3, color_cast=False)(photo, gen())[1]["ops"][0]
        assert off["cast_gains"] is None and off["exposure"] == on["exposure"]
        assert off["sensor_noise"] == on["sensor_noise"]


class TestAlternatives:
    def test_single_spec_draws_exactly_as_before(self):
        """A spec without ``|`` draws no alternative: items are those of the existing recipes."""
        ds = DegradedCrops("skimage", "noise+blur+lowlight", (1, 5), crop=32, length=4)
        lq, gt, params = ds.sample(0)
        assert "degradation" not in params
        gen = torch.Generator().manual_seed(params["seed"])
        draws = [int(torch.randint(n, (), generator=gen)) for n in (len(ds.images), 5)]
        assert ds.images[draws[0]][0] == params["image_id"] and draws[1] + 1 == params["severity"]

    def test_each_alternative_is_drawn_and_none_is_a_clean_pair(self):
        ds = DegradedCrops("skimage", MIX, (1, 5), crop=32, length=140)
        seen = collections.Counter()
        for index in range(140):
            lq, gt, params = ds.sample(index)
            seen[params["degradation"]] += 1
            if params["degradation"] == "none":
                assert torch.equal(lq, gt) and params["ops"] == []
            else:
                assert params["ops"]
        assert set(seen) == set(ds.alternatives) and min(seen.values()) >= 8

    def test_items_are_reproducible_and_epochs_differ(self):
        a, b = (DegradedCrops("skimage", MIX, (1, 5), crop=32, length=8) for _ in range(2))
        for index in range(8):
            assert all(torch.equal(x, y) for x, y in zip(a[index], b[index], strict=True))
        b.set_epoch(1)
        assert any(not torch.equal(a[i][0], b[i][0]) for i in range(8))

    def test_options_reach_only_the_alternatives_that_take_them(self):
        ds = DegradedCrops("skimage", "noise|lowlight", 3, crop=32, length=2, color_cast=True)
        assert ds.operators[("lowlight", 3)].operators[0].color_cast
        with pytest.raises(ValueError, match="no operator takes"):
            DegradedCrops("skimage", "noise|haze", 3, crop=32, length=2, color_cast=True)
        with pytest.raises(ValueError, match="unknown degradation"):
            DegradedCrops("skimage", "noise|fog", 3, crop=32, length=2)

    def test_quantize_rounds_to_8_bits(self):
        ds = build_training_set("degraded", clean="skimage", degradation="lowlight_calibrated", severity=5,
                                crop=32, length=2, quantize=True)
        lq, _ = ds[0]
        assert torch.equal(lq, (lq * 255).round() / 255)


def test_allinone_recipes_share_data_and_cover_every_family():
    from tasks.degradations.compose import operator_class

    phase1, phase2 = (yaml.safe_load(open(f"restorers/unfoldldm/recipes/allinone-cpu-phase{p}.yaml"))
                      for p in (1, 2))
    assert phase1["train_set"] == phase2["train_set"] and phase1["val_task"] == phase2["val_task"]
    spec = phase1["train_set"].split("degradation=")[1].split(",")[0]
    families = {operator_class(token).family for alt in spec.split("|") if alt != "none"
                for token in alt.split("+")}
    assert families == {"noise", "blur", "lowlight", "haze", "rain", "jpeg"}
    assert "unfoldldm-small-allinone-phase1.pt" in phase2["restorer"]


def test_family_recipes_are_the_generated_ones_and_train_only_their_family():
    """The committed families/*.yaml are what family_recipes.py writes (edit the generator, not
    the files); each specialist's training operators belong to its family (the OOD study's
    columns are single degradations), and its validation tiles use the same operators."""
    from restorers.unfoldldm.recipes.family_recipes import TRAIN, recipes
    from restorers.unfoldldm.recipes.family_val import FAMILIES
    from tasks.degradations.compose import operator_class

    for path, text in recipes().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run family_recipes"
    for family, spec in TRAIN.items():
        phase1, phase2 = (yaml.safe_load(open(f"restorers/unfoldldm/recipes/families/{family}-phase{p}.yaml"))
                          for p in (1, 2))
        assert phase1["train_set"] == phase2["train_set"] and phase1["iters"] == phase2["iters"]
        assert "val_task" not in phase1 and phase2["early_stop"]["metric"] == "val_psnr"
        assert f"unfoldldm-small-{family}-phase1.pt" in phase2["restorer"]
        assert set(spec.split("|")) == set(FAMILIES[family])
        tokens = {operator_class(token).family for alt in spec.split("|") for token in alt.split("+")}
        assert tokens == ({"noise", "blur", "lowlight"} if family == "mixed" else {family})
