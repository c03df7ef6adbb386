"""The ``bench`` CLI end to end, and MLflow records read back from the sqlite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.io.names import safe_name

runner = CliRunner()


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, _imported_home):
    """`bench run` with no restorer/task arguments: the embedded default (NIQE params imported)."""
    out = tmp_path_factory.mktemp("default_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(_imported_home))
        mp.setenv("BENCH_OFFLINE", "1")
        result = runner.invoke(app, ["run", "--output-dir", str(out), "--no-progress"])
    return out, result


def test_default_run_prints_the_summary_table(default_run):
    out, result = default_run
    assert result.exit_code == 0, result.output
    for column in ("psnr", "ssim", "niqe", "latency_ms", "peak_mem_mb"):
        assert column in result.output
    assert "identity" in result.output and "nlm" in result.output
    assert "missing*" in result.output and "lpips missing" in result.output
    run_dirs = [p for p in out.iterdir() if (p / "results.json").exists()]
    results = json.loads((run_dirs[0] / "results.json").read_text())
    assert results["schema_version"] == 2
    assert set(results["results"]) == {"identity", "nlm"}
    demo = results["results"]["nlm"]["demo"]
    assert demo["psnr"]["mean"] > results["results"]["identity"]["demo"]["psnr"]["mean"] + 3
    assert results["tasks"]["demo"]["conventions"]["color_space"] == "rgb"
    assert results["tasks"]["demo"]["metrics"]["psnr.color_space"] == "rgb"
    assert "lpips" in results["missing_metrics"]


def test_mlflow_store_holds_parent_and_children_with_metrics_and_tables(default_run):
    from mlflow import MlflowClient

    out, result = default_run
    assert result.exit_code == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("restorebench")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert sorted(r.info.run_name for r in children) == ["identity@demo", "nlm@demo"]
    assert parents[0].data.tags["git_hash"] is not None
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        for key in ("psnr", "ssim", "niqe", "latency_ms", "peak_mem_mb", "psnr_ci95_lo"):
            assert key in child.data.metrics, key
        assert child.data.params["metric.color_space"] == "rgb"
        assert child.data.params["psnr.impl"].startswith("pyiqa psnr")
        assert "missing.lpips" in child.data.tags
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "per_image")}
        assert artifacts == {f"per_image/{safe_name(child.info.run_name)}.json"}
        table_path = client.download_artifacts(child.info.run_id,
                                               f"per_image/{safe_name(child.info.run_name)}.json")
        table = json.loads(Path(table_path).read_text())
        assert len(table["data"]) == 5 and "psnr" in table["columns"]
        images = client.list_artifacts(child.info.run_id, "comparisons")
        assert len(images) == 3


def test_mistyped_restorer_gets_did_you_mean_and_nonzero_exit(tmp_path):
    result = runner.invoke(app, ["run", "-r", "identiy", "--output-dir", str(tmp_path),
                                 "--no-tracking"])
    assert result.exit_code != 0
    assert "Did you mean 'identity'" in result.output


def test_unknown_task_and_bad_spec_are_clear_errors(tmp_path):
    result = runner.invoke(app, ["run", "-t", "kodak42-awgn25", "--output-dir", str(tmp_path),
                                 "--no-tracking"])
    assert result.exit_code != 0 and "Did you mean" in result.output
    result = runner.invoke(app, ["run", "-t", "folder[lq]", "--output-dir", str(tmp_path),
                                 "--no-tracking"])
    assert result.exit_code != 0 and "not key=value" in result.output


def test_list_commands_describe_entries():
    restorers = runner.invoke(app, ["list", "restorers"])
    assert restorers.exit_code == 0 and "Non-local means" in restorers.output
    tasks = runner.invoke(app, ["list", "tasks"])
    assert tasks.exit_code == 0 and "demo" in tasks.output and "present" in tasks.output
    metrics = runner.invoke(app, ["list", "metrics"])
    assert metrics.exit_code == 0 and "niqe" in metrics.output and "NR" in metrics.output


def test_assets_import_list_verify(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["assets", "import", str(weights_dir / "niqe")])
    assert result.exit_code == 0 and "niqe-official/niqe_pris_params.npz" in result.output
    listing = runner.invoke(app, ["assets", "list"])
    assert "niqe-official" in listing.output and "ok" in listing.output
    cached = tmp_path / "home" / "assets" / "niqe-official" / "niqe_pris_params.npz"
    cached.write_bytes(b"corrupted")
    verify = runner.invoke(app, ["assets", "verify"])
    assert verify.exit_code == 1 and "corrupt" in verify.output


def test_save_images_writes_the_scored_outputs_and_tracking_options_are_honoured(tmp_path):
    """The saved PNG is the 8-bit output that was scored; --tracking-uri/--experiment are used."""
    import math

    import numpy as np
    from mlflow import MlflowClient
    from PIL import Image

    from harness.api.task import build_task

    store = tmp_path / "elsewhere.db"
    result = runner.invoke(app, ["run", "-r", "nlm", "-t", "demo", "--limit", "1", "--metrics",
                                 "psnr", "--save-images", "--output-dir", str(tmp_path / "out"),
                                 "--run-name", "saved", "--tracking-uri", f"sqlite:///{store}",
                                 "--experiment", "my-study", "--no-progress"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "out" / "saved"
    record = json.loads((run_dir / "samples.jsonl").read_text().splitlines()[0])
    saved = np.asarray(Image.open(run_dir / "images" / "nlm" / "demo" / f"{record['sample_id']}.png"),
                       dtype=np.float64) / 255.0
    gt = build_task("demo").load(record["sample_id"]).gt.permute(1, 2, 0).numpy().astype(np.float64)
    psnr = 10 * math.log10(1.0 / np.mean((saved - gt) ** 2))
    assert psnr == pytest.approx(record["metrics"]["psnr"], abs=1e-4)
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("my-study")
    assert experiment is not None
    assert len(client.search_runs([experiment.experiment_id])) == 2  # parent + nlm@demo
    assert not (tmp_path / "out" / "mlflow.db").exists()


def test_report_reprints_a_finished_run(default_run):
    out, result = default_run
    run_dir = next(p for p in out.iterdir() if (p / "results.json").exists())
    table = runner.invoke(app, ["report", str(run_dir), "--no-tracking", "--no-html"])
    assert table.exit_code == 0 and "nlm" in table.output and "psnr" in table.output
    md = runner.invoke(app, ["report", str(run_dir / "results.json"), "--markdown", "--no-tracking"])
    results = json.loads((run_dir / "results.json").read_text())["results"]
    nlm_psnr = results["nlm"]["demo"]["psnr"]["mean"]
    assert f"| nlm | demo | **{nlm_psnr:.2f} ±" in md.output  # best PSNR of the task in bold
    missing = runner.invoke(app, ["report", str(out / "nope"), "--no-tracking"])
    assert missing.exit_code != 0 and "does not exist" in missing.output


def test_user_errors_are_one_definition_and_load_nothing():
    """The one-line-error classes of every command; a run's ExecutorError joins once its module
    is loaded (it cannot be raised before), so an error exit imports no torch."""
    import subprocess
    import sys

    from harness.cli.common import USER_ERRORS, user_errors

    assert set(USER_ERRORS) <= set(user_errors())
    assert user_errors(FloatingPointError)[-1] is FloatingPointError
    code = ("import sys\nfrom harness.cli.common import user_errors\n"
            "names = [e.__name__ for e in user_errors()]\n"
            "print('ExecutorError' in names, 'torch' in sys.modules)\n"
            "import harness.run.ray_executor\n"
            "print('ExecutorError' in [e.__name__ for e in user_errors()])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    assert out == ["False", "False", "True"]


def test_mistyped_restorer_is_one_line_before_torch_loads(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom typer.testing import CliRunner\nfrom harness.cli.main import app\n"
            f"r = CliRunner().invoke(app, ['run', '-r', 'nlmx', '--output-dir', {str(tmp_path)!r}])\n"
            "print(r.exit_code, 'torch' in sys.modules)\nprint(r.output)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.startswith("2 False"), out
    assert "Did you mean 'nlm'" in out and "Traceback" not in out
