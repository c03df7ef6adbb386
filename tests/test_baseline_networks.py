"""Published baseline networks: contract on random weights, weight verification, pinned scores.

Three layers, cheapest first:

* contract: every registered :class:`PretrainedNetwork` (each variant) loads a randomly
  initialised checkpoint through the real loading path (asset cache, sha256, ``torch.load``,
  checkpoint filter, strict ``load_state_dict``) and restores an odd-sized batch;
* weights: the declared sha256s are those of the shared weights; a missing file names its source
  and ``bench assets import``; a wrong file is refused before it is unpickled; every real
  checkpoint fits its architecture with the parameter counts of SOURCE.txt;
* regression: per-image PSNR of the real weights on two images of the benchmark tasks, pinned
  to 1e-3 dB (values measured with these weights and the project's metric code; they equal the
  per-image records of the ``bench run`` in the implementation note).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from harness.api.restorer import RESTORERS, build_restorer
from harness.api.task import build_task
from harness.assets.cache import (
    ASSETS,
    AssetCorruptError,
    AssetMissingError,
    asset_dir,
    sha256_of,
    status,
)
from harness.metrics.suite import MetricSuite
from restorers.baselines._pretrained import PretrainedNetwork

CPU = torch.device("cpu")

#: Every network and variant (name, options). A registered PretrainedNetwork missing here fails
#: ``test_every_registered_network_has_a_case``.
CASES: list[tuple[str, dict]] = [
    ("zero-dce", {}),
    ("zero-dce-pp", {}),
    ("zero-dce-pp", {"scale_factor": 1}),
    ("sci", {"variant": "easy"}),
    ("sci", {"variant": "medium"}),
    ("sci", {"variant": "difficult"}),
    ("aod-net", {}),
    ("dncnn", {"variant": "color_blind"}),
    ("dncnn", {"variant": "gray25"}),
    ("dncnn", {"variant": "gray_blind"}),
    ("ffdnet", {}),
    ("ffdnet", {"sigma": 25}),
]


def _case_id(case: tuple[str, dict]) -> str:
    name, options = case
    return name + "".join(f"[{k}={v}]" for k, v in options.items())


def _network_names() -> list[str]:
    names = []
    for name in RESTORERS.names():
        try:
            cls = RESTORERS.get(name)
        except ImportError:  # another method's optional dependency; not ours to test here
            continue
        if isinstance(cls, type) and issubclass(cls, PretrainedNetwork):
            names.append(name)
    return names


def _install_random_weights(restorer: PretrainedNetwork, monkeypatch) -> dict[str, torch.Tensor]:
    """Save a seeded random checkpoint where the cache expects the variant's file, and declare
    its sha256 in place of the published one (only for this test)."""
    torch.manual_seed(0)
    state = restorer.build_network().state_dict()
    spec = restorer.asset.file(restorer.weights_file())
    path = asset_dir(restorer.asset.name) / spec.name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    patched_file = dataclasses.replace(spec, sha256=sha256_of(path), size=path.stat().st_size)
    patched = dataclasses.replace(restorer.asset, files=tuple(
        patched_file if f.name == spec.name else f for f in restorer.asset.files))
    monkeypatch.setitem(ASSETS, restorer.asset.name, patched)
    return state


# Contract ----------------------------------------------------------------------------------------
def test_every_registered_network_has_a_case():
    assert set(_network_names()) == {name for name, _ in CASES}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_random_weights_load_through_the_cache_and_restore_odd_sizes(case, monkeypatch):
    name, options = case
    restorer = build_restorer(name, **options)
    with pytest.raises(RuntimeError, match="load"):
        restorer.restore(torch.rand(1, 3, 8, 8))
    state = _install_random_weights(restorer, monkeypatch)
    restorer.load(CPU)
    loaded = restorer.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())

    generator = torch.Generator().manual_seed(1)
    lq = torch.rand(1, 3, 37, 53, generator=generator)
    out = restorer.restore(lq, {})
    assert out.shape == lq.shape
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    info = restorer.info()
    assert info.paper and info.licence and info.input_range and info.degradations
    assert info.weights and info.weights[0]["uri"].startswith("https://")


def test_ffdnet_sigma_source_follows_the_option():
    lq = 0.5 + 0.1 * torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    from_task = build_restorer("ffdnet").noise_levels(lq, {"sigma": 25})
    assert torch.allclose(from_task.flatten(), torch.full((2,), 25 / 255))
    estimated = build_restorer("ffdnet").noise_levels(lq, {})
    assert torch.allclose(estimated.flatten(), torch.full((2,), 0.1), atol=0.01)
    forced = build_restorer("ffdnet", sigma="estimate").noise_levels(lq, {"sigma": 50})
    assert torch.allclose(forced, estimated)
    assert torch.allclose(build_restorer("ffdnet", sigma=15).noise_levels(lq, {"sigma": 50}),
                          torch.full((2, 1, 1, 1), 15 / 255))
    with pytest.raises(ValueError, match="sigma"):
        build_restorer("ffdnet", sigma="auto")


@pytest.mark.parametrize(("name", "options"), [
    ("sci", {"variant": "hard"}), ("dncnn", {"variant": "gray50"}),
    ("zero-dce-pp", {"scale_factor": 0}), ("ffdnet", {"estimator": "pca"})])
def test_bad_options_are_refused_with_the_valid_choices(name, options):
    with pytest.raises(ValueError, match=next(iter(options))):
        build_restorer(name, **options)


def test_sci_filter_refuses_a_checkpoint_whose_alias_differs():
    from restorers.baselines.sci import checkpoint_filter_fn

    weight = torch.ones(3, 3, 3, 3)
    kept = checkpoint_filter_fn({"enhance.conv.0.weight": weight,
                                 "enhance.blocks.0.0.weight": weight.clone(),
                                 "calibrate.in_conv.0.weight": torch.zeros(1)})
    assert list(kept) == ["enhance.conv.0.weight"]
    with pytest.raises(ValueError, match="differs"):
        checkpoint_filter_fn({"enhance.conv.0.weight": weight,
                              "enhance.blocks.0.0.weight": weight * 2})


# Real weights: declaration, missing, corrupt -----------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_missing_weights_name_source_and_import_command(case):
    restorer = build_restorer(case[0], **case[1])  # the autouse fixture gives an empty cache
    spec = restorer.asset.file(restorer.weights_file())
    with pytest.raises(AssetMissingError) as info:
        restorer.load(CPU)
    message = str(info.value)
    assert spec.name in message and spec.url in message and spec.sha256 in message
    assert "bench assets import" in message


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_corrupt_weights_are_refused_before_loading(case, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(tmp_path))
    restorer = build_restorer(case[0], **case[1])
    path = asset_dir(restorer.asset.name) / restorer.weights_file()
    path.parent.mkdir(parents=True)
    torch.save(restorer.build_network().state_dict(), path)  # loadable, but not the declared file
    with pytest.raises(AssetCorruptError, match="does not match"):
        restorer.load(CPU)


def test_declared_hashes_are_those_of_the_shared_weights(weights_home):
    ours = {build_restorer(name).asset.name for name, _ in CASES}
    states = [s for s in status({n: ASSETS[n] for n in ours})]
    assert len(states) == 10
    assert {(s.asset, s.file): s.status for s in states if s.status != "ok"} == {}


#: Parameter counts stated in the weights' SOURCE.txt (None: not stated there).
PARAMETERS = {"zero-dce": 79_416, "sci": 258, "aod-net": 1_761}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_real_weights_fit_the_architecture(case, weights_home):
    restorer = build_restorer(case[0], **case[1])
    restorer.load(CPU)
    assert restorer.weights[0]["sha256"] == sha256_of(
        asset_dir(restorer.asset.name) / restorer.weights_file())
    if case[0] in PARAMETERS:
        assert restorer.info().parameters == PARAMETERS[case[0]]


# Regression: pinned per-image PSNR with the real weights -----------------------------------------
LOL256 = "lowlight/lolv1_eval15_tao256"

#: (restorer, options, task, {sample_id: PSNR dB}). AWGN tasks: default per-image
#: torch noise (seed 0), quantised RGB PSNR; LOL 256: the folder task (RGB, 8-bit) on the first
#: two pairs in natural order.
PINNED = [
    ("dncnn", {"variant": "color_blind"}, "cbsd68-awgn25", {"3096": 39.7653, "12084": 29.8883}),
    ("ffdnet", {}, "kodak24-awgn25", {"kodim01": 29.6859, "kodim02": 32.8872}),
    ("zero-dce", {}, "folder", {"1": 15.2665, "22": 13.4799}),
    ("zero-dce-pp", {}, "folder", {"1": 17.0208, "22": 13.7464}),
    ("sci", {"variant": "medium"}, "folder", {"1": 17.4316, "22": 14.2080}),
]


def _task_options(task: str, data_root: Path) -> dict:
    if task == "folder":
        return {"lq": str(data_root / LOL256 / "low"), "gt": str(data_root / LOL256 / "high")}
    return {}


@pytest.mark.parametrize("pin", PINNED, ids=lambda p: f"{p[0]}@{p[2]}")
def test_pinned_per_image_psnr(pin, with_data, weights_home):
    name, options, task_name, expected = pin
    task = build_task(task_name, **_task_options(task_name, with_data))
    restorer = build_restorer(name, **options)
    restorer.load(CPU)
    suite = MetricSuite(["psnr"], task.conventions, CPU, task.has_gt)
    measured = {}
    for sample_id in task.sample_ids()[:2]:
        sample = task.load(sample_id)
        out = restorer.restore(sample.lq.unsqueeze(0), dict(sample.meta))
        measured[sample_id] = suite.score(out, sample.gt.unsqueeze(0))[0]["psnr"]
    assert measured.keys() == expected.keys()
    for sample_id, value in expected.items():
        assert measured[sample_id] == pytest.approx(value, abs=1e-3), sample_id
