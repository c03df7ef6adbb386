"""A checkpoint describes itself: ``checkpoint=PATH`` alone rebuilds the networks it was trained
with (finding 1 of "A researcher's first day"); explicit options must agree with the file."""

from __future__ import annotations

import pytest
import torch

from harness.api.checkpoints import write_checkpoint
from harness.run.plan import RestorerItem, restorer_spec

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_no_prior(tmp_path_factory) -> str:
    """A checkpoint of ``unfoldldm[config=tiny,prior=false]`` (random weights, perturbed)."""
    from restorers.unfoldldm.restorer import UnfoldLDM

    restorer = UnfoldLDM(config="tiny", prior=False, random_init=True)
    restorer.setup_training(CPU)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in restorer.net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("ckpt") / "noise.pt"
    write_checkpoint(path, restorer="unfoldldm", config=restorer.config, model=restorer.state_dict(),
                     ema=None, training=None, provenance={"train_set": "test"})
    return str(path)


def test_the_path_alone_restores_the_trained_config(tiny_no_prior):
    from harness.api.restorer import build_restorer

    spec = restorer_spec(RestorerItem("unfoldldm", {"checkpoint": tiny_no_prior}))
    assert spec.config["config"] == "tiny" and spec.config["prior"] is False
    assert spec.label == f"unfoldldm[checkpoint={tiny_no_prior}]"  # what the user wrote
    restorer = build_restorer(spec.name, **spec.options)
    restorer.load(CPU)  # networks match the file: no "checkpoint holds networks ..." error
    assert restorer.net.prior is None and restorer.weights[-1]["file"] == tiny_no_prior
    # the same configuration spelled out is the same restorer (one id, one row)
    explicit = restorer_spec(RestorerItem("unfoldldm", {"checkpoint": tiny_no_prior,
                                                        "config": "tiny", "prior": False}))
    assert explicit.id == spec.id


def test_an_option_that_disagrees_with_the_checkpoint_is_refused_with_both_values(tiny_no_prior):
    with pytest.raises(ValueError, match=r"prior=True \(checkpoint: prior=False\)"):
        restorer_spec(RestorerItem("unfoldldm", {"checkpoint": tiny_no_prior, "prior": True}))
    with pytest.raises(ValueError, match=r"config='small' \(checkpoint: config='tiny'\)"):
        restorer_spec(RestorerItem("unfoldldm", {"checkpoint": tiny_no_prior, "config": "small"}))


def test_a_checkpoint_of_another_restorer_or_a_missing_file_is_a_clear_error(tiny_no_prior, tmp_path):
    with pytest.raises(ValueError, match="checkpoint of 'unfoldldm', not 'dgunet-pnp'"):
        restorer_spec(RestorerItem("dgunet-pnp", {"checkpoint": tiny_no_prior}))
    with pytest.raises(FileNotFoundError, match="bench train"):
        restorer_spec(RestorerItem("unfoldldm", {"checkpoint": str(tmp_path / "absent.pt")}))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a restorebench checkpoint"):
        restorer_spec(RestorerItem("unfoldldm", {"checkpoint": str(foreign)}))


def test_bench_list_restorers_says_which_ship_weights_and_which_need_a_checkpoint():
    from harness.cli.listing import restorer_rows

    weights = {row["name"]: row["weights"] for row in restorer_rows()}
    assert weights["dgunet-pnp"].startswith("none shipped: give checkpoint=PATH")
    assert weights["unfoldldm"].startswith("ships unfoldldm-small-mixed.pt (config=small,")
    assert "checkpoint=PATH" in weights["unfoldldm"]
    assert weights["zero-dce"].startswith("ships the published weights (asset zero_dce")
    assert weights["nlm"] == "none needed"
