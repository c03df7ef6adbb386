"""The UnfoldLDM checkpoint that ships in the repository: present, small, verified, the default
when no checkpoint is given, and trained (it restores better than the input it is given)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from harness.api.checkpoints import read_checkpoint
from harness.api.restorer import build_restorer
from harness.cli.main import app
from harness.io.hashing import file_sha256
from restorers.unfoldldm.restorer import UnfoldLDM

SHIPPED = UnfoldLDM.shipped_checkpoint


def test_the_shipped_checkpoint_is_small_and_matches_its_card():
    assert SHIPPED.is_file() and SHIPPED.stat().st_size <= 10 * 2**20
    card = json.loads(SHIPPED.with_name(SHIPPED.name + ".json").read_text())
    assert card["sha256"] == file_sha256(SHIPPED)
    checkpoint = read_checkpoint(SHIPPED)  # re-hashes the weights
    assert checkpoint.training is None  # exported: no optimiser state
    assert checkpoint.config["config"] == "small"
    assert "degraded[clean=cbsd68+skimage" in checkpoint.provenance["train_set"]


def test_it_is_the_default_and_its_provenance_is_recorded():
    restorer = build_restorer("unfoldldm")
    restorer.load(torch.device("cpu"))
    assert restorer.weights[-1]["sha256"] == file_sha256(SHIPPED)
    assert "train_set" in json.loads(restorer.weights[-1]["provenance"])
    with pytest.raises(ValueError, match="no weights for this configuration"):
        build_restorer("unfoldldm", config="full").check_assets()


@pytest.mark.data
def test_it_restores_a_mixed_degradation_better_than_the_input(tmp_path, with_data):
    """Centre crops of three McMaster images (never trained on: the training set is CBSD68 and
    the scikit-image photos) under the mixed degradation at severity 3."""
    from harness.run.runner import RunConfig, run_benchmark

    summary = run_benchmark(RunConfig(
        restorers=[("identity", {}), ("unfoldldm", {})],
        tasks=[("synth:mcmaster:noise+blur+lowlight@3", {"crop": 128})], limit=3, metrics=["psnr"],
        output_dir=tmp_path, tracking=False, show_progress=False, device="cpu"))
    task = "synth:mcmaster:noise+blur+lowlight@3"
    psnr = {r: summary.results[r][task]["psnr"]["mean"] for r in ("identity", "unfoldldm")}
    assert psnr["unfoldldm"] > psnr["identity"] + 1.0, psnr


def test_lolv1_without_its_data_says_where_to_get_them(tmp_path):
    result = CliRunner().invoke(app, ["run", "-r", "unfoldldm", "-t", "lolv1", "--no-tracking",
                                      "--output-dir", str(tmp_path), "--data-root", str(tmp_path)])
    assert result.exit_code == 2
    assert "daooshee.github.io" in result.output and "LOLdataset" in result.output
