"""Issue 3, Done-when 3: identity runs on the real sets present here, NIQE alone on a no-GT set."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harness.cli.main import app

TASKS = ("lolv1-tao256", "kodak24-awgn25", "cbsd68-awgn25", "hsts", "rain12", "dicm")


def test_identity_on_the_real_sets_completes_with_nr_metrics_only_without_gt(
        with_data, weights_home, tmp_path):
    args = ["run", "-r", "identity", "--limit", "2", "--output-dir", str(tmp_path),
            "--no-tracking", "--no-progress"]
    for task in TASKS:
        args += ["-t", task]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = next(p for p in tmp_path.iterdir() if (p / "results.json").exists())
    results = json.loads((run_dir / "results.json").read_text())["results"]["identity"]
    for task in TASKS:
        assert results[task]["n_failed"] == 0 and results[task]["n_ok"] == 2, task
        assert results[task]["niqe"]["n"] == 2, task
    assert "psnr" not in results["dicm"] and "ssim" not in results["dicm"]
    for task in set(TASKS) - {"dicm"}:
        assert results[task]["psnr"]["n"] == 2 and results[task]["ssim"]["n"] == 2, task
