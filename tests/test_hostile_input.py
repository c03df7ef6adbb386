"""Hostile or careless input is scored right or refused with one line, never scored wrongly.

Covers: ambiguous folder pairing (several GT candidates or duplicate LQ stems), float and
high-range images, restorer outputs that are not float / not finite / another shape, option
values (duplicates, NaN, ranges) and report cells (markdown and CSV injection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner


def _png(path: Path, seed: int, size=(16, 16)) -> np.ndarray:
    array = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


# item 7: pairing -------------------------------------------------------------------------------
def test_several_gt_candidates_are_an_error_naming_them(tmp_path):
    """gt/z.png and gt/z.tif used to pair lq/z.png with whichever came last (PSNR 7.68 against
    the wrong one instead of 80); now the task refuses, and data validate says invalid."""
    from harness.api.task import build_task
    from harness.assets.data_validation import validate_task

    _png(tmp_path / "lq" / "z.png", 0)
    _png(tmp_path / "gt" / "z.png", 0)
    _png(tmp_path / "gt" / "z.tif", 1)
    task = build_task("folder", lq=str(tmp_path / "lq"), gt=str(tmp_path / "gt"))
    with pytest.raises(ValueError, match=r"GT folder .*z\.png and z\.tif"):
        task.sample_ids()
    report = validate_task(task)
    assert report.status == "invalid" and "z.png and z.tif" in report.message


def test_duplicate_lq_stems_are_an_error(tmp_path):
    from harness.api.task import build_task
    from harness.assets.data_validation import validate_task

    _png(tmp_path / "lq" / "x.png", 0)
    _png(tmp_path / "lq" / "x.bmp", 1)
    task = build_task("folder", lq=str(tmp_path / "lq"))
    with pytest.raises(ValueError, match=r"LQ folder .*x\.bmp and x\.png"):
        task.sample_ids()
    assert validate_task(task).status == "invalid"


# item 7: image ranges -------------------------------------------------------------------------
def test_float_tiff_read_by_its_range(tmp_path):
    """A PIL mode-F TIFF in [0, 1] used to become all zeros (two different images: PSNR 80,
    SSIM 1). It is read as it is now (float32 exact), and one outside [0, 1] is refused."""
    from harness.io.images import ImageReadError, read_image_info

    a = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    b = np.random.default_rng(1).random((8, 8)).astype(np.float32)
    for name, array in (("a.tif", a), ("b.tif", b)):
        Image.fromarray(array, mode="F").save(tmp_path / name)
    ta, conversion = read_image_info(tmp_path / "a.tif")
    tb, _ = read_image_info(tmp_path / "b.tif")
    assert "float" in conversion
    assert torch.equal(ta[0], torch.from_numpy(a)) and torch.equal(tb[1], torch.from_numpy(b))
    Image.fromarray(a * 255, mode="F").save(tmp_path / "c.tif")
    with pytest.raises(ImageReadError, match=r"values in \[.*outside the \[0, 1\] range"):
        read_image_info(tmp_path / "c.tif")
    Image.fromarray(np.full((4, 4), 70000, np.int32), mode="I").save(tmp_path / "d.tif")
    with pytest.raises(ImageReadError, match="outside the"):
        read_image_info(tmp_path / "d.tif")


# item 7: restorer outputs ---------------------------------------------------------------------
class _Returns:
    """A restorer whose ``_restore`` returns ``make(x)``."""

    def __new__(cls, make):
        from harness.api.restorer import Restorer

        class Bad(Restorer):
            name = "bad"

            def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
                return make(lq)

        return Bad()


@pytest.mark.parametrize("make, reason", [
    (lambda x: torch.full_like(x, float("inf")), "non-finite"),
    (lambda x: (x * 255).to(torch.uint8), "dtype uint8"),
    (lambda x: torch.nn.functional.pad(x, (0, 4, 0, 4)), "returned shape"),
    (lambda x: torch.full_like(x, float("nan")), "non-finite"),
    # one bad value among finite ones, and +inf beside -inf (their sum is NaN, not inf)
    (lambda x: x.clone().index_put_((torch.tensor([0]),) * 4, torch.tensor(float("nan"))), "1 non-finite"),
    (lambda x: torch.cat([torch.full_like(x[:, :, :4], float("inf")),
                          torch.full_like(x[:, :, 4:], -float("inf"))], dim=2), "192 non-finite"),
])
def test_bad_outputs_fail_with_a_reason(make, reason):
    restorer = _Returns(make)
    with pytest.raises(ValueError, match=reason):
        restorer.restore(torch.rand(1, 3, 8, 8))


def test_huge_finite_outputs_are_not_called_non_finite():
    """The check sums the output (one number, no masks); finite values large enough to overflow
    that sum are finite all the same: clamped, not refused."""
    restorer = _Returns(lambda x: torch.full_like(x, 3e38))
    assert bool(torch.isinf(torch.full((1, 3, 8, 8), 3e38).sum()))  # the sum does overflow
    assert torch.equal(restorer.restore(torch.rand(1, 3, 8, 8)), torch.ones(1, 3, 8, 8))


def test_executor_fails_the_record_not_scores_it(tmp_path):
    """The same check guards restorers that override ``restore`` itself."""
    from harness.api.restorer import check_output

    with pytest.raises(ValueError, match="dtype uint8"):
        check_output("r", torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (1, 3, 4, 4))
    check_output("r", torch.zeros(1, 3, 4, 4), (1, 3, 4, 4))


# item 13: options -----------------------------------------------------------------------------
def test_duplicate_and_non_finite_options_refused():
    from harness.api.items import parse_item
    from harness.api.options import Alternative, Range

    with pytest.raises(ValueError, match="'sigma' is given twice"):
        parse_item("nlm[sigma=1,sigma=2]")
    assert not Alternative(float).accepts(float("nan"))
    assert not Alternative(float).accepts(float("inf"))
    assert not Alternative(float, Range(0, None)).accepts(float("inf"))
    assert Alternative(float).accepts(2)


def test_clahe_kernel_size_bounded(tmp_path):
    from harness.cli.main import app

    result = CliRunner().invoke(app, ["run", "-r", "clahe[kernel_size=99999999]", "-t", "demo",
                                      "--no-tracking", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "kernel_size" in result.output


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], "--lr nan: must be a finite number"),
    (["--ema", "2"], "--ema 2.0: must be in (0, 1)"),
    (["--weight-decay", "-1"], "--weight-decay -1.0: must be >= 0"),
])
def test_train_check_refuses_bad_numbers(tmp_path, args, message):
    from harness.cli.main import app

    result = CliRunner().invoke(app, ["train", "-r", "unfoldldm", "--train-set", "x",
                                      "--out", str(tmp_path / "c.pt"), "--check", *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_recipe_yaml_syntax_error_is_one_line(tmp_path):
    from harness.cli.main import app

    recipe = tmp_path / "r.yaml"
    recipe.write_text("restorer: [unclosed\n  lr: 1\n")
    result = CliRunner().invoke(app, ["train", "--recipe", str(recipe)])
    assert result.exit_code == 2 and "not valid YAML at line 2" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--conf-label", "2"], "--conf-label 2.0"),
    (["--imgsz", "0"], "--imgsz 0"),
    (["--limit", "0"], "--limit 0"),
    (["--class-map", "banana"], "--class-map 'banana'"),
])
def test_detect_options_checked_first(tmp_path, args, message):
    from downstream.cli import app

    result = CliRunner().invoke(app, ["detect", "-r", "identity", "--data", "folder[lq=/none]",
                                      "--detector", "yolo11n.pt", "--labels", "pseudo",
                                      "--no-tracking", "--output-dir", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_report_max_samples_checked(tmp_path):
    from harness.cli.main import app

    result = CliRunner().invoke(app, ["report", "--max-samples", "-1", str(tmp_path)])
    assert result.exit_code == 2 and "--max-samples -1" in result.output


def test_label_lines_validated(tmp_path):
    from downstream.data import read_yolo_labels

    path = tmp_path / "x.txt"
    for line, message in (("garbage line here x y", "not numbers"),
                          ("999 0.5 0.5 0.1 0.1", "class 999 is not one"),
                          ("0 0.5 0.5 -0.1 0.1", "must be positive"),
                          ("0.5 0.5 0.5 0.1 0.1", "must be an integer")):
        path.write_text(line + "\n")
        with pytest.raises(ValueError, match=message):
            read_yolo_labels(path, 10, 10, {0, 1})
    path.write_text("1 0.5 0.5 0.2 0.4\n")
    assert read_yolo_labels(path, 10, 10, {0, 1}).cls.tolist() == [1]


# item 14: report injection ----------------------------------------------------------------------
def test_markdown_and_csv_cells_are_inert(tmp_path):
    import pandas as pd

    from harness.io.tables import csv_cell, markdown_cell, write_csv

    cell = markdown_cell("<script>alert(1)</script>|[x](javascript:y)")
    assert "<" not in cell and ">" not in cell and "\\|" in cell and "\\[x\\]" in cell
    assert csv_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell(-0.5) == -0.5 and csv_cell("ok") == "ok"
    write_csv(pd.DataFrame({"restorer": ["=1+1", "+x", "fine"], "psnr": [-1.0, 2.0, 3.0]}),
              tmp_path / "t.csv", index=False)
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["restorer"].tolist() == ["'=1+1", "'+x", "fine"] and back["psnr"].tolist()[0] == -1.0


def test_leaderboard_escapes_labels(tmp_path):
    import json

    from harness.report.leaderboard import build_leaderboard, to_markdown, write_tables
    from harness.report.load import read_run

    run = tmp_path / "r"
    run.mkdir()
    unit = {"psnr": {"mean": 30.0, "std": 0.1, "ci95": [29.9, 30.1], "n": 4}, "n_ok": 4, "n_failed": 0}
    (run / "results.json").write_text(json.dumps({
        "schema_version": 1, "run_id": "r", "created": "2026-01-01T00:00:00+00:00", "git_hash": "x",
        "device": "cpu", "versions": {}, "tasks": {}, "missing_metrics": {},
        "results": {"<script>x</script>": {"=HYPERLINK(1)": unit}}}))
    (run / "samples.jsonl").write_text("")
    board = build_leaderboard([read_run(run)])
    md = to_markdown(board)
    assert "<script>" not in md and "&lt;script&gt;" in md
    files = write_tables(board, tmp_path / "out")
    assert "'=HYPERLINK(1)" in files["csv"].read_text()
