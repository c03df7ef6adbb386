"""``bench study ood`` / ``severity``: grids, tables, figures, checkpoints and MLflow records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from harness.api.restorer import RESTORERS, Restorer, register_restorer
from harness.api.task import build_task
from harness.cli.main import app
from harness.study.figures import curves_title, heatmap_data, plot_heatmap
from harness.study.grid import baseline_label, parse_entry, parse_levels, to_markdown
from harness.tracking.store import sanitize_key

TASKS = ["synth:skimage:gaussian_noise@3[crop=48]", "synth:skimage:motion_blur@3[crop=48]",
         "synth:skimage:jpeg@4[crop=48]"]


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, ["study", *args, "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def input_psnr(task_spec: str, sample_id: str) -> float:
    """PSNR of the 8-bit-quantised degraded input, computed here independently of pyiqa."""
    name, _, opts = task_spec.partition("[")
    crop = int(opts.rstrip("]").split("=")[1])
    sample = build_task(name, crop=crop).load(sample_id)
    lq = torch.round(sample.lq.double().clamp(0, 1) * 255) / 255
    return float(10 * torch.log10(1 / ((lq - sample.gt.double()) ** 2).mean()))


class TestParsing:
    def test_entries_with_options_and_training_tags(self):
        entry = parse_entry("unet[checkpoint=runs/a@b.pt,width=8]@noise")
        assert (entry.name, entry.options, entry.train_tag) == ("unet", {"checkpoint": "runs/a@b.pt",
                                                                        "width": 8}, "noise")
        assert entry.label == "unet (trained on noise)"
        assert parse_entry("nlm").label == "nlm" and parse_entry("nlm@blur").train_tag == "blur"
        with pytest.raises(ValueError, match="empty training tag"):
            parse_entry("unet[checkpoint=a.pt]@")

    def test_labelled_entries(self):
        entry = parse_entry("no prior=unfoldldm[prior=false,checkpoint=ab/no=prior.pt]@mixed")
        assert (entry.label, entry.name, entry.train_tag) == ("no prior", "unfoldldm", "mixed")
        assert entry.options == {"prior": False, "checkpoint": "ab/no=prior.pt"}
        assert parse_entry("nlm[sigma=estimate]").label == "nlm"  # '=' inside brackets is an option
        with pytest.raises(ValueError, match="empty label"):
            parse_entry("=nlm")

    def test_levels(self):
        assert parse_levels("1-5") == [1, 2, 3, 4, 5] and parse_levels("1,3, 5") == [1, 3, 5]
        with pytest.raises(ValueError, match="range"):
            parse_levels("one")

    def test_markdown_table(self):
        frame = pd.DataFrame({"t1": [1.23456, float("nan")]}, index=pd.Index(["a", "b"], name="r"))
        assert to_markdown(frame).splitlines() == ["| r | t1 |", "|---|---|", "| a | 1.235 |",
                                                   "| b | – |"]


def test_ood_two_restorers_three_tasks(tmp_path):
    invoke("ood", "-r", "identity", "-r", "nlm", *[a for t in TASKS for a in ("-t", t)],
           "--limit", "1", "--metrics", "psnr", "--output-dir", str(tmp_path), "--name", "grid",
           "--no-tracking")
    study = tmp_path / "studies" / "grid"
    table = pd.read_csv(study / "ood_psnr.csv", index_col="restorer")
    names = [t.split("[")[0] for t in TASKS]
    assert list(table.index) == ["identity", "nlm"] and list(table.columns) == names
    # identity scores the degraded input itself; NLM must improve the noisy task
    for spec, name in zip(TASKS, names, strict=True):
        assert table.loc["identity", name] == pytest.approx(input_psnr(spec, "astronaut"), abs=1e-3)
    assert table.loc["nlm", names[0]] > table.loc["identity", names[0]] + 2.0
    markdown = (study / "ood.md").read_text()
    assert "| identity |" in markdown and names[1] in markdown
    assert "(n=1) |" in markdown and "±" in markdown  # finding 4: CI and n, as in the CSV
    # finding 4: the gains over the input, signed so that better is positive, next to the figure
    gain = pd.read_csv(study / "ood_psnr_gain.csv", index_col="restorer")
    pd.testing.assert_frame_equal(gain, table - table.loc["identity"], check_names=False)
    assert "Baseline: `identity`" in markdown and "Gain over `identity`" in markdown
    with Image.open(study / "ood_psnr.png") as png:
        assert png.width >= 400 and png.height >= 250
        # a drawn heatmap, not a blank canvas
        assert len(png.convert("RGB").getcolors(maxcolors=1 << 20)) > 50
    long = pd.read_csv(study / "study.csv")
    assert set(long["task"]) == set(names) and (long["n"] == 1).all()


class TinyConv(Restorer):
    """Test-only trainable restorer: a 3→3 conv whose weights come from ``checkpoint``."""

    description = "test-only 3x3 conv"

    def __init__(self, checkpoint: str = ""):
        super().__init__()
        self.checkpoint = checkpoint
        self.net = torch.nn.Conv2d(3, 3, 3, padding=1)
        if not checkpoint:
            raise ValueError("tiny-conv needs checkpoint=PATH")
        self.net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return lq + 0.1 * self.net(lq)


@pytest.fixture
def checkpoints(tmp_path) -> dict[str, Path]:
    if "test-tiny-conv" not in RESTORERS:
        register_restorer("test-tiny-conv")(TinyConv)
    paths = {}
    for index, tag in enumerate(("noise", "blur")):
        torch.manual_seed(index)
        paths[tag] = tmp_path / f"{tag}.pt"
        torch.save(torch.nn.Conv2d(3, 3, 3, padding=1).state_dict(), paths[tag])
    return paths


def test_ood_rows_are_train_on_by_checkpoint(tmp_path, checkpoints):
    args = ["ood", "-r", "identity"]
    for tag, path in checkpoints.items():
        args += ["-r", f"test-tiny-conv[checkpoint={path}]@{tag}"]
    invoke(*args, "-t", TASKS[0], "-t", TASKS[1], "--limit", "1", "--metrics", "psnr",
           "--output-dir", str(tmp_path / "out"), "--name", "ckpt", "--no-tracking")
    table = pd.read_csv(tmp_path / "out" / "studies" / "ckpt" / "ood_psnr.csv", index_col="restorer")
    assert list(table.index) == ["identity", "test-tiny-conv (trained on noise)",
                                 "test-tiny-conv (trained on blur)"]
    # two different checkpoints really were loaded: their scores differ
    assert table.iloc[1, 0] != pytest.approx(table.iloc[2, 0], abs=1e-6)
    # one run holds all three entries: two configs of one restorer are two units of one run
    results = json.loads((tmp_path / "out" / "studies" / "ckpt" / "run" / "results.json").read_text())
    assert list(results["results"]) == ["identity", "test-tiny-conv (trained on noise)",
                                        "test-tiny-conv (trained on blur)"]
    assert len({u["restorer_id"] for u in results["units"]}) == 3


def test_severity_curves_and_mlflow_parent(tmp_path, weights_home):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("severity", "-r", "identity", "-r", "nlm", "--degradation", "noise+blur+lowlight",
                    "--levels", "1-3", "--clean", "skimage", "--task-option", "crop=96",
                    "--limit", "1", "--output-dir", str(tmp_path / "out"), "--name", "sev",
                    "--tracking-uri", uri)
    study = tmp_path / "out" / "studies" / "sev"
    psnr = pd.read_csv(study / "severity_psnr.csv", index_col="restorer")
    assert [int(c) for c in psnr.columns] == [1, 2, 3]
    identity = psnr.loc["identity"].tolist()
    assert identity[0] > identity[1] > identity[2]  # the input gets worse with the level
    assert (study / "severity_ssim.csv").exists() and (study / "severity_niqe.csv").exists()
    assert (study / "severity_curves.png").stat().st_size > 10_000
    gain = pd.read_csv(study / "severity_psnr_gain.csv", index_col="restorer")
    assert gain.loc["nlm"].tolist() == pytest.approx((psnr.loc["nlm"] - psnr.loc["identity"]).tolist())
    # NIQE: lower is better, so its gain is identity − nlm (better is positive in every figure)
    niqe = pd.read_csv(study / "severity_niqe.csv", index_col="restorer")
    niqe_gain = pd.read_csv(study / "severity_niqe_gain.csv", index_col="restorer")
    assert niqe_gain.loc["nlm"].tolist() == pytest.approx((niqe.loc["identity"] - niqe.loc["nlm"]).tolist())
    assert "MLflow parent run" in result.output

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("restorebench")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("study_name") == "sev")
    # named by what ran (the folder name is the tag study_name)
    assert parent.info.run_name.startswith(
        "severity study: identity, nlm @ synth:skimage:noise+blur+lowlight@1, ")
    assert parent.data.tags["study"] == "severity" and parent.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"severity.md", "severity_curves.png", "study.csv", "severity_psnr.csv"} <= artifacts
    runner_parents = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runner_parents) == 1  # the whole grid is one runner call
    cells = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in
             {p.info.run_id for p in runner_parents}]
    assert len(cells) == 6 and all("psnr" in c.data.metrics for c in cells)
    key = sanitize_key("psnr.identity.synth:skimage:noise+blur+lowlight@1")
    assert parent.data.metrics[key] == pytest.approx(identity[0])


class TestFigures:
    """Finding 4: the figures colour the gain over the input and say n and what data they show."""

    FRAME = pd.DataFrame({"kodak24-noise-s3": [20.0, 24.5, 19.0], "kodak24-blur-s3": [25.0, 25.5, 23.0]},
                         index=pd.Index(["identity", "nlm", "gamma"], name="restorer"))
    N = pd.DataFrame({"kodak24-noise-s3": [24, 24, 24], "kodak24-blur-s3": [24, 22, 24]},
                     index=FRAME.index)

    def test_heatmap_colours_the_gain_over_the_baseline(self, tmp_path):
        data = heatmap_data(self.FRAME, self.N, "psnr", False, "identity", "ood study 'g'")
        expected = (self.FRAME - self.FRAME.loc["identity"]).to_numpy()
        # float64 arithmetic on the same numbers: exact
        assert data.colour.tolist() == expected.tolist()
        assert data.values.tolist() == self.FRAME.to_numpy().tolist()
        assert data.columns == ["kodak24-noise-s3\n(n=24)", "kodak24-blur-s3\n(n=22–24)"]
        assert data.cells[1][0] == "24.50\n+4.50" and data.cells[2][1] == "23.00\n-2.00"
        assert data.cells[0][0] == "20.00\n(baseline)"  # the baseline row is shown, gain 0
        assert "psnr" in data.title and "'identity'" in data.title and "ood study 'g'" in data.title
        path = plot_heatmap(data, tmp_path / "h.png")
        with Image.open(path) as png:
            assert png.width >= 600 and len(png.convert("RGB").getcolors(maxcolors=1 << 20)) > 50

    def test_lower_is_better_gains_are_flipped(self):
        data = heatmap_data(self.FRAME, self.N, "niqe", True, "identity", "s")
        assert data.colour.tolist() == (self.FRAME.loc["identity"] - self.FRAME).to_numpy().tolist()
        assert "identity − niqe" in data.title

    def test_without_a_baseline_the_figure_says_it_shows_absolute_values(self):
        data = heatmap_data(self.FRAME, self.N, "psnr", False, None, "s")
        assert data.colour.tolist() == self.FRAME.to_numpy().tolist()
        assert "absolute values" in data.title and "no baseline" in data.title

    def test_severity_title_names_the_data_and_n(self):
        title = curves_title("severity study 'x'", "kodak24", "noise+blur", pd.Series([24, 24, 23]))
        assert "noise+blur on kodak24" in title and "n = 23–24" in title


class TestBaseline:
    def test_detected_by_the_restorer_class_not_its_name(self):
        # "input" is an alias of the pass-through restorer: found by its class attribute
        entries = [parse_entry("nlm"), parse_entry("input")]
        assert baseline_label(entries, None) == "input"
        assert baseline_label([parse_entry("nlm")], None) is None
        assert baseline_label(entries, "nlm") == "nlm"

    def test_unknown_baseline_is_a_user_error_before_anything_runs(self, tmp_path):
        result = CliRunner().invoke(app, ["study", "ood", "-r", "identity", "-r", "nlm", "-t", TASKS[0],
                                          "--baseline", "idnetity", "--output-dir", str(tmp_path),
                                          "--no-tracking", "--no-progress"])
        assert result.exit_code == 2
        assert "--baseline 'idnetity' is not a row" in result.output and "'identity'" in result.output
        assert not (tmp_path / "studies").exists()
