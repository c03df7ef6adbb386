"""Issue 9: what a new user hits with bad inputs and two processes at once.

The concurrency tests start real ``bench`` processes (``subprocess``), not mocks: two runs on a
fresh output folder (and a fresh ``BENCH_HOME``, so the MLflow store template is created by both
at once), and two runs with one ``--run-name``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app

REPO = Path(__file__).resolve().parents[1]
cli = CliRunner()


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), BENCH_HOME=str(home),
               BENCH_OFFLINE="1", PYTHONWARNINGS="ignore")
    return env


def _bench(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "tests" / "slow_cli.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out + err


# Two processes at once ----------------------------------------------------------------------------
def test_two_runs_started_together_on_a_fresh_output_dir_both_complete(tmp_path):
    out = tmp_path / "results"
    env = _env(tmp_path / "home")  # no MLflow store template yet: both create it
    env["FIXED_RUN_NAME"] = "20260101-000000"  # both default names fall in one second
    args = ["run", "-r", "identity", "-t", "demo", "--limit", "2", "--metrics", "psnr",
            "--output-dir", str(out), "--no-progress"]
    first, second = _bench(args, env), _bench(args, env)
    results = [_finish(first), _finish(second)]
    for code, text in results:
        assert code == 0, text
        assert "Traceback" not in text and "MLflow:" not in text.replace("MLflow: mlflow ui", ""), text
    runs = sorted(p for p in out.iterdir() if p.is_dir() and p.name != "mlartifacts")
    assert [r.name for r in runs] == ["20260101-000000", "20260101-000000-2"], runs
    for run in runs:
        lines = (run / "samples.jsonl").read_text().splitlines()
        assert len(lines) == 2
    with sqlite3.connect(out / "mlflow.db") as db:
        statuses = [s for (s,) in db.execute("select status from runs")]
    assert len(statuses) == 4 and set(statuses) == {"FINISHED"}, statuses  # 2 parents + 2 children


def test_two_runs_with_one_run_name_the_second_refuses(tmp_path):
    out = tmp_path / "results"
    # the first run must still hold the folder when the second, still importing torch, reaches
    # the lock: 5 images x 4 s outlast a slow start on a loaded machine
    env = {**_env(tmp_path / "home"), "SLEEPY_S": "4"}
    args = ["run", "-r", "t-sleepy", "-t", "demo", "--metrics", "psnr", "--run-name", "shared",
            "--output-dir", str(out), "--no-progress", "--no-tracking"]
    first = _bench(args, env)
    lock = out / "shared" / ".lock"
    deadline = time.time() + 120
    while not lock.exists() and time.time() < deadline:
        time.sleep(0.05)
    second = _bench(args, env)
    (code1, text1), (code2, text2) = _finish(first), _finish(second)
    assert sorted([code1, code2]) == [0, 2], (text1, text2)
    refused = text2 if code2 else text1
    assert "is being written by another bench run (pid" in refused, refused
    assert "choose another --run-name" in refused
    records = [json.loads(line) for line in (out / "shared" / "samples.jsonl").read_text().splitlines()]
    ids = [r["sample_id"] for r in records]
    assert len(ids) == len(set(ids)) == 5  # every image once, not twice
    payload = json.loads((out / "shared" / "results.json").read_text())
    assert payload["results"]["t-sleepy"]["demo"]["psnr"]["n"] == 5


def test_busy_sqlite_is_retried(tmp_path):
    """A store held by another writer ("database is locked") is waited for, not an error."""
    from harness.tracking.store import Tracker, ensure_sqlite_store, retry_busy

    db = tmp_path / "mlflow.db"
    ensure_sqlite_store(db)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('begin exclusive'); print('locked', flush=True); time.sleep(1.5); c.rollback()"),
        str(db)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    start = time.perf_counter()
    tracker = retry_busy(Tracker, f"sqlite:///{db}", "exp", tmp_path / "art")
    run_id = tracker.start_parent("p", {}, {"a": 1})
    holder.wait(timeout=30)
    assert run_id and time.perf_counter() - start > 0.5  # it did wait for the holder


# Bad inputs -----------------------------------------------------------------------------------------
def test_limit_below_one_is_a_one_line_error_before_anything_loads(tmp_path, monkeypatch):
    import harness.run.runner

    def no_run(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(harness.run.runner, "run_benchmark", no_run)
    out = tmp_path / "results"
    for limit in ("-2", "0"):
        result = cli.invoke(app, ["run", "-r", "identity", "--limit", limit, "--output-dir",
                                  str(out), "--no-tracking", "--no-progress"])
        assert result.exit_code == 2, result.output
        assert f"--limit {limit}: give a number of samples >= 1" in result.output
        assert "Traceback" not in result.output and "Usage:" not in result.output
    assert not out.exists()  # no empty run folder


def test_device_gpu_is_a_clear_error_before_anything_heavy(tmp_path, monkeypatch):
    import harness.run.runner

    def no_run(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(harness.run.runner, "run_benchmark", no_run)
    result = cli.invoke(app, ["run", "-r", "identity", "--device", "gpu", "--output-dir",
                              str(tmp_path), "--no-tracking"])
    assert result.exit_code == 2
    assert ("--device 'gpu' is not a device (did you mean --device cuda?); use auto, cpu, cuda "
            "or cuda:N") in result.output
    assert "Traceback" not in result.output
    from harness.run.runner import resolve_device

    with pytest.raises(ValueError, match="did you mean --device cuda:1"):
        resolve_device("gpu1")


def _altered_zero_dce(home: Path, weights_dir: Path) -> Path:
    """Import Zero-DCE's weights into ``home``, then flip one byte keeping size and mtime."""
    from harness.assets.cache import fetch, import_dir
    from harness.assets.declarations import load_all_declarations

    import_dir(weights_dir / "zero_dce", load_all_declarations())
    path = fetch("zero_dce")  # stamps it
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return path


def test_altered_weights_verify_rehashes_and_run_logs_how_it_checked(tmp_path, weights_dir,
                                                                      monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("BENCH_HOME", str(home))
    path = _altered_zero_dce(home, weights_dir)
    verify = cli.invoke(app, ["assets", "verify"])
    assert verify.exit_code == 1
    assert "corrupt" in verify.output and path.name in verify.output
    out = tmp_path / "results"
    base = ["run", "-r", "zero-dce", "-t", "demo", "--limit", "1", "--metrics", "psnr",
            "--output-dir", str(out), "--no-tracking", "--no-progress"]
    trusted = cli.invoke(app, [*base, "--run-name", "trusted"])
    assert trusted.exit_code == 0, trusted.output
    assert "trusted by their size+mtime stamp (--verify-assets re-hashes every file)" in trusted.output
    checks = json.loads((out / "trusted" / "results.json").read_text())["asset_checks"]
    assert checks[str(path)].startswith("stamp trusted")
    strict = cli.invoke(app, [*base, "--run-name", "strict", "--verify-assets"])
    assert strict.exit_code == 2
    assert "does not match the declared" in strict.output and "re-import" in strict.output


def _runs(db: Path) -> list[tuple[str, str, str | None]]:
    """(run_id, status, parent run id or None) of every run in an MLflow sqlite store."""
    with sqlite3.connect(db) as con:
        rows = con.execute("select r.run_uuid, r.status, t.value from runs r left join tags t on "
                           "t.run_uuid = r.run_uuid and t.key = 'mlflow.parentRunId'").fetchall()
    return [(run_id, status, parent or None) for run_id, status, parent in rows]


def test_killed_run_is_marked_killed_and_resume_continues_the_same_parent(tmp_path):
    import signal

    out = tmp_path / "results"
    env = {**_env(tmp_path / "home"), "SLEEPY_S": "2.5"}
    args = ["run", "-r", "t-sleepy", "-t", "demo", "--metrics", "psnr", "--run-name", "k",
            "--output-dir", str(out), "--no-progress"]
    first = _bench(args, env)
    run_file, samples = out / "k" / "mlflow_run.json", out / "k" / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (run_file.exists() and samples.exists()
                                           and samples.read_text().count("\n") >= 1):
        time.sleep(0.1)
    assert run_file.exists(), _finish(first)[1]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    parent_id = json.loads(run_file.read_text())["run_id"]
    db = out / "mlflow.db"
    deadline = time.time() + 60  # the orphaned MLflow process notices and closes the runs
    while time.time() < deadline and dict((r, s) for r, s, _ in _runs(db)).get(parent_id) != "KILLED":
        time.sleep(0.2)
    assert dict((r, s) for r, s, _ in _runs(db))[parent_id] == "KILLED"

    env["SLEEPY_S"] = "0"
    code, text = _finish(_bench([*args, "--resume"], env))
    assert code == 0, text
    runs = _runs(db)
    parents = [(r, s) for r, s, p in runs if p is None]
    assert parents == [(parent_id, "FINISHED")], runs  # the same parent, not a second one
    assert json.loads(run_file.read_text())["run_id"] == parent_id
    children = [(r, s) for r, s, p in runs if p == parent_id]
    assert [s for _, s in children] == ["FINISHED"], runs
    assert not [r for r in runs if r[1] == "RUNNING"]
    ids = [json.loads(line)["sample_id"] for line in samples.read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 5


def _folder(tmp_path: Path, images: dict[str, tuple[int, int, str]]) -> tuple[Path, Path]:
    """LQ and GT folders with one random image per ``name: (width, height, PIL mode)``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    for folder in (lq, gt):
        folder.mkdir(parents=True, exist_ok=True)
        for name, (width, height, mode) in images.items():
            channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
            array = (rng.random((height, width, channels)) * 255).astype("uint8")
            Image.fromarray(array[..., 0] if channels == 1 else array, mode).save(folder / f"{name}.png")
    return lq, gt


def test_tiny_image_metrics_say_why_they_are_not_computed(tmp_path, weights_home, recwarn):
    lq, gt = _folder(tmp_path, {"tiny": (8, 8, "RGB"), "big": (128, 128, "RGB")})
    out = tmp_path / "results"
    result = cli.invoke(app, ["run", "-r", "identity", "-t", f"folder[lq={lq},gt={gt}]",
                              "--metrics", "psnr,ssim,niqe", "--output-dir", str(out), "--run-name",
                              "tiny", "--no-tracking", "--no-progress"])
    assert result.exit_code == 0, result.output
    records = {json.loads(line)["sample_id"]: json.loads(line)
               for line in (out / "tiny" / "samples.jsonl").read_text().splitlines()}
    tiny = records["tiny"]
    assert tiny["status"] == "ok" and set(tiny["metrics"]) == {"psnr"}  # no null SSIM
    assert "smaller than SSIM's 11x11 Gaussian window" in tiny["metric_errors"]["ssim"]
    assert "smaller than NIQE's 96x96 blocks" in tiny["metric_errors"]["niqe"]
    assert set(records["big"]["metrics"]) == {"psnr", "ssim", "niqe"}
    agg = json.loads((out / "tiny" / "results.json").read_text())["results"]["identity"]["folder"]
    assert (agg["psnr"]["n"], agg["ssim"]["n"], agg["niqe"]["n"], agg["n_ok"]) == (2, 1, 1, 2)
    assert agg["ssim"]["n_not_computed"] == 1 and "11x11" in agg["ssim"]["not_computed"]
    assert "(n=1)" in result.output  # the table's n per metric agrees with results.json
    assert "ssim not computed on 1 of 2 image(s) of identity @ folder" in result.output
    assert not [w for w in recwarn.list if issubclass(w.category, RuntimeWarning)]


def test_grey_and_rgba_inputs_are_converted_and_the_conversion_recorded(tmp_path):
    lq, gt = _folder(tmp_path, {"grey": (32, 32, "L"), "rgba": (32, 32, "RGBA"), "rgb": (32, 32, "RGB")})
    out = tmp_path / "results"
    result = cli.invoke(app, ["run", "-r", "identity", "-t", f"folder[lq={lq},gt={gt}]",
                              "--metrics", "psnr", "--output-dir", str(out), "--run-name", "c",
                              "--no-tracking", "--no-progress"])
    assert result.exit_code == 0, result.output
    records = {json.loads(line)["sample_id"]: json.loads(line)
               for line in (out / "c" / "samples.jsonl").read_text().splitlines()}
    assert records["grey"]["input_conversion"] == {"lq": "L grey replicated to RGB",
                                                   "gt": "L grey replicated to RGB"}
    assert "alpha channel dropped" in records["rgba"]["input_conversion"]["lq"]
    assert "input_conversion" not in records["rgb"]
    assert all(r["status"] == "ok" for r in records.values())


def test_failures_are_listed_in_results_and_named_on_the_console(tmp_path):
    lq, gt = _folder(tmp_path, {"a": (32, 32, "RGB"), "b": (32, 32, "RGB")})
    (lq / "broken.png").write_bytes(b"not a png")
    (gt / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "results"
    result = cli.invoke(app, ["run", "-r", "identity", "-t", f"folder[lq={lq},gt={gt}]",
                              "--metrics", "psnr", "--output-dir", str(out), "--run-name", "f",
                              "--no-tracking", "--no-progress"])
    assert result.exit_code == 0, result.output
    units = json.loads((out / "f" / "results.json").read_text())["units"]
    assert [f["sample_id"] for f in units[0]["failed"]] == ["broken"]
    assert "cannot decode image" in units[0]["failed"][0]["error"]
    assert "1 image(s) failed; the first 1:" in result.output
    assert "identity @ folder / broken: ImageReadError: cannot decode image" in result.output


def test_option_syntax_is_printed_literally(tmp_path):
    """rich markup would swallow ``[key=value,...]``: help, tables and messages keep it."""
    help_text = cli.invoke(app, ["run", "--help"]).output
    assert "name[key=value,...]" in help_text
    listing = cli.invoke(app, ["list", "tasks"]).output
    assert "-t 'lolv1[gt_mean=true]'" in listing and "reference_noise=False" in listing
    lq, gt = _folder(tmp_path, {"a": (32, 32, "RGB")})
    result = cli.invoke(app, ["run", "-r", "nlm[sigma=25]", "-t", f"folder[lq={lq},gt={gt}]",
                              "--metrics", "psnr", "--output-dir", str(tmp_path / "r[1]"),
                              "--no-tracking", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "nlm[sigma=25]" in result.output and "r[1]" in result.output
    bad = cli.invoke(app, ["run", "-r", "nlm[sigma=banana]", "--no-tracking"])
    assert "nlm[sigma=banana]" not in bad.output  # the message names option and value instead:
    assert "option sigma='banana' is not allowed; sigma must be 'task' | 'estimate' or float in " \
           "[0, 255]" in bad.output.replace("\n", " ")


def test_missing_gt_folder_says_only_that(tmp_path):
    lq, _ = _folder(tmp_path, {"a": (16, 16, "RGB")})
    result = cli.invoke(app, ["run", "-r", "identity", "-t", f"folder[lq={lq},gt={tmp_path / 'nope'}]",
                              "--output-dir", str(tmp_path / "out"), "--no-tracking"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"folder: GT folder {tmp_path / 'nope'} does not exist" in text
    assert "no images found" not in text


def test_pyiqa_metric_weights_offline_name_the_file_source_and_import(tmp_path, monkeypatch):
    import pyiqa.utils.download_util as download_util

    from harness.api.task import MetricConventions
    from harness.metrics.suite import MetricSuite

    cache = tmp_path / "pyiqa-cache"
    monkeypatch.setattr(download_util, "DEFAULT_CACHE_DIR", str(cache))
    import torch

    suite = MetricSuite(["brisque"], MetricConventions(), torch.device("cpu"), has_gt=True)
    reason = suite.missing["brisque"]
    assert "brisque needs the weight file 'brisque_svm_weights.pth'" in reason
    # pyiqa publishes no sha256, so no copy can be verified: the reason says where the file comes
    # from and where to place it (under BENCH_HOME, loaded weights-only), not to import it
    assert "source: https://" in reason and "place it at" in reason
    assert str(Path(os.environ["BENCH_HOME"]) / "pyiqa" / "brisque_svm_weights.pth") in reason
    assert "URLError" not in reason
    # and `bench assets import` of a folder holding a file of that name does not copy it
    folder = tmp_path / "from-usb" / "nested"
    folder.mkdir(parents=True)
    (folder / "brisque_svm_weights.pth").write_bytes(b"weights")
    imported = cli.invoke(app, ["assets", "import", str(tmp_path / "from-usb")])
    assert imported.exit_code == 0, imported.output
    assert not (cache / "brisque_svm_weights.pth").exists()
    assert not (Path(os.environ["BENCH_HOME"]) / "pyiqa" / "brisque_svm_weights.pth").exists()


def test_cpu_peak_memory_is_the_restorers_own_increment_without_ci(tmp_path):
    from harness.api.restorer import Restorer, register_restorer
    from harness.run.runner import RunConfig, run_benchmark

    @register_restorer("t-hungry")
    class Hungry(Restorer):
        description = "test: holds 200 MB for 50 ms"

        def _restore(self, lq, meta):
            import numpy as np

            block = np.ones(25_000_000)  # 200 MB, touched
            time.sleep(0.05)
            del block
            return lq.clone()

    config = RunConfig(restorers=[("identity", {}), ("t-hungry", {})], tasks=[("demo", {})],
                       device="cpu", limit=2, metrics=["psnr"], output_dir=tmp_path, tracking=False,
                       show_progress=False, argv=["test"])
    results = run_benchmark(config).results
    identity, hungry = results["identity"]["demo"]["peak_mem_mb"], results["t-hungry"]["demo"]["peak_mem_mb"]
    assert identity["mean"] < 50  # not the ~1 GB process RSS
    assert 150 < hungry["mean"] < 400
    assert identity["ci95"] == [None, None] and identity["kind"].startswith("cpu heap in use")
    from harness.cli.summary import format_aggregate as _fmt

    assert "±" not in _fmt(hungry, 2, ci=False)
