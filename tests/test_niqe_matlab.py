"""MATLAB-faithful NIQE (``harness.metrics.niqe_matlab``) against the official MATLAB values.

Reference values: the official MATLAB release (``niqe_release``, LIVE) on the five TID2013
calibration images, as recorded by pyiqa in ``ResultsCalibra/results_official.csv`` (row
``niqe``), chaofengc/IQA-PyTorch commit 01ae427f9afd66842031d3a7cb694dcad5b5cbb8 (2026-05-14;
the row dates from 981fc369, 2022-03-19). The images are ``ResultsCalibra/dist_dir`` of the same
repository (our ``data/iqa/tid2013_pairs/dist_dir``, byte-identical per its MANIFEST).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.metrics import niqe_matlab as nm

#: Official MATLAB NIQE (see the module docstring for the source).
OFFICIAL_NIQE = {
    "I03": 15.7536293917814,
    "I04": 3.65492152353770,
    "I06": 3.23547743716998,
    "I08": 3.18403333858339,
    "I19": 8.63519663862637,
}


def _load_rgb(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture(scope="module")
def tid_images(data_root) -> dict[str, np.ndarray]:
    folder = data_root / "iqa" / "tid2013_pairs" / "dist_dir"
    return {name: _load_rgb(folder / f"{name}.bmp") for name in OFFICIAL_NIQE}


@pytest.fixture
def params(weights_home) -> tuple[np.ndarray, np.ndarray]:
    return nm.official_params()


@pytest.mark.data
@pytest.mark.weights
@pytest.mark.parametrize("name", sorted(OFFICIAL_NIQE))
def test_niqe_is_within_one_percent_of_official_matlab(name, tid_images, params):
    ours = nm.niqe_matlab(tid_images[name], *params)
    official = OFFICIAL_NIQE[name]
    assert abs(ours - official) / official < 0.01, (name, ours, official)


@pytest.mark.data
@pytest.mark.weights
def test_metric_spec_scores_tensors_like_the_function(tid_images, params):
    spec = {s.name: s for s in nm.NIQE_SPECS}["niqe"]
    assert spec.mode == "NR" and spec.lower_better
    scorer = spec.build(None, torch.device("cpu"))
    img = tid_images["I04"]
    tensor = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    value = scorer(tensor, None, {})
    assert value.shape == (1,)
    assert float(value[0]) == pytest.approx(nm.niqe_matlab(img, *params), abs=1e-12)


@pytest.fixture
def no_package_copies(monkeypatch):
    """Hide pip-installed copies of asset files (mmagic ships the npz), as on a bare machine."""
    import dataclasses

    from harness.assets import cache as assets  # noqa: F401  (metrics declares the NIQE asset)

    for name, asset in list(assets.ASSETS.items()):
        files = tuple(dataclasses.replace(f, package=None) for f in asset.files)
        monkeypatch.setitem(assets.ASSETS, name, dataclasses.replace(asset, files=files))


def test_without_parameters_the_metric_is_unavailable(no_package_copies):
    from harness.api.metric import MetricUnavailable

    with pytest.raises(MetricUnavailable, match="niqe_pris_params.npz"):
        nm.NIQE_SPEC.build(None, torch.device("cpu"))


def test_imresize_matches_a_float64_run_of_pyiqas_resize_kernel():
    """pyiqa's ``resize_1d`` (MATLAB's ``imresize`` weights) run in float64 — what pyiqa's own
    ``imresize`` would give without its float32 cast."""
    from pyiqa.matlab_utils.resize import resize_1d

    x = np.random.default_rng(0).random((97, 131)) * 255
    t = torch.from_numpy(x)[None, None]
    t = resize_1d(t, -2, size=math.ceil(97 / 2), scale=0.5)
    t = resize_1d(t, -1, size=math.ceil(131 / 2), scale=0.5)
    np.testing.assert_allclose(nm.imresize_half(x), t[0, 0].numpy(), rtol=0, atol=1e-11)


def test_constant_neighbourhoods_are_found_exactly():
    import scipy.ndimage as ndi

    rng = np.random.default_rng(1)
    for _ in range(10):
        a = rng.integers(0, 3, (37, 53)).astype(float)
        a[5:20, 10:40] = 7
        a[:, :9] = 1
        expected = ndi.maximum_filter(a, 7, mode="nearest") == ndi.minimum_filter(a, 7, mode="nearest")
        assert np.array_equal(nm._constant_7x7(a), expected)


def test_gamma_grid_is_matlabs_colon():
    gam = nm._matlab_colon(0.2, 0.001, 10.0)
    assert len(gam) == 9801 and gam[0] == 0.2 and gam[-1] == 10.0
    assert np.all(np.diff(nm._gamma_table("matlab").r_gam) > 0)


def test_rgb2gray_weights_and_rounding():
    assert nm.RGB2GRAY == pytest.approx([0.298936021293775, 0.587043074451121, 0.114020904255103],
                                        abs=1e-15)
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [10, 200, 30]]], dtype=np.uint8)
    grey = nm.rgb2gray_uint8(rgb)
    assert grey.tolist() == [[255.0, 0.0, round(float(rgb[0, 2].astype(float) @ nm.RGB2GRAY))]]


def test_noise_scores_worse_than_clean(params):
    from skimage import data

    clean = data.astronaut()[:288, :288]
    noise = np.random.default_rng(0).normal(0, 25, clean.shape)
    noisy = np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)
    assert nm.niqe_matlab(noisy, *params) > nm.niqe_matlab(clean, *params)


@pytest.mark.data
@pytest.mark.weights
def test_an_image_without_flat_areas_matches_matlab_to_rounding(tid_images, params):
    """I04 has no constant 7×7 neighbourhood, so nothing depends on floating-point noise: the
    method itself is MATLAB's to ~1e-12 (measured 3.5e-13)."""
    assert not nm._constant_7x7(nm.rgb2gray_uint8(tid_images["I04"])).any()
    assert nm.niqe_matlab(tid_images["I04"], *params) == pytest.approx(OFFICIAL_NIQE["I04"], abs=1e-9)


def test_grey_tensors_are_accepted(params):
    grey = torch.rand(1, 1, 200, 200, generator=torch.Generator().manual_seed(0))
    rgb = grey.expand(1, 3, 200, 200)
    assert math.isfinite(nm.niqe_matlab(grey, *params))
    assert nm.niqe_pyiqa(grey, *params) == pytest.approx(nm.niqe_pyiqa(rgb, *params), rel=1e-3)
