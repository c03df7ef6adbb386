"""Untrusted run folders and hostile names (issue "Untrusted files and hostile input", items 4,
8, 9, 10, 11, 12): nothing planted in a run folder redirects a write, names are one path component
checked before anything is created, damaged files are read with a warning naming the file, and a
tracking server that does not answer fails in seconds.

Runs use the ``demo`` task (embedded, 5 small images) with ``--metrics psnr`` and
``--no-tracking`` unless MLflow is the point, so each run takes a second or two.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app

cli = CliRunner()


def bench(*args: str):
    return cli.invoke(app, list(args))


def run_args(out: Path, *extra: str, restorers: tuple[str, ...] = ("identity",)) -> list[str]:
    args = ["run", *[a for r in restorers for a in ("-r", r)], "-t", "demo", "--limit", "2",
            "--metrics", "psnr", "--output-dir", str(out), "--no-progress"]
    return [*args, *extra] if "--tracking-uri" in extra else [*args, "--no-tracking", *extra]


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    text = " ".join(result.output.split())  # rich wraps long lines
    for needle in needles:
        assert needle in text, text
    return text


# Item 4: planted links ---------------------------------------------------------------------------
@pytest.mark.parametrize("planted", [".lock", "samples.jsonl"])
def test_a_planted_link_to_a_run_file_is_refused_and_its_target_untouched(tmp_path, planted):
    out, target = tmp_path / "results", tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (out / "R").mkdir(parents=True)
    (out / "R" / planted).symlink_to(target)
    result = bench(*run_args(out, "--run-name", "R", *(["--resume"] if planted != ".lock" else [])))
    one_line_error(result, f"{planted} is a symbolic link")
    assert target.read_text() == "keep me\n"


def test_a_hard_link_as_the_lock_is_refused(tmp_path):
    out, target = tmp_path / "results", tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (out / "R").mkdir(parents=True)
    (out / "R" / ".lock").hardlink_to(target)
    one_line_error(bench(*run_args(out, "--run-name", "R")), "not a regular file with one link")
    assert target.read_text() == "keep me\n"


def test_planted_temporary_file_links_are_not_followed(tmp_path):
    """The old fixed temporary names (``results.json.tmp``, ``mlflow_run.json.tmp``) as links:
    the run writes fresh temporary files instead and leaves the targets alone."""
    out, target = tmp_path / "results", tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (out / "R").mkdir(parents=True)
    for name in ("results.json.tmp", "mlflow_run.json.tmp", "samples.jsonl.tmp"):
        (out / "R" / name).symlink_to(target)
    result = bench(*run_args(out, "--run-name", "R", "--tracking-uri",
                             f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert result.exit_code == 0, result.output
    assert target.read_text() == "keep me\n"
    assert json.loads((out / "R" / "results.json").read_text())["results"]["identity"]["demo"]
    assert not [p for p in (out / "R").iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


def test_a_run_folder_that_is_a_link_is_refused(tmp_path):
    out, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "R").symlink_to(elsewhere, target_is_directory=True)
    one_line_error(bench(*run_args(out, "--run-name", "R")), "is a symbolic link")
    assert list(elsewhere.iterdir()) == []


# Item 8: --shard-size ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["-3", "0"])
def test_shard_size_below_one_is_refused(tmp_path, size):
    one_line_error(bench(*run_args(tmp_path / "o", "--shard-size", size)), f"--shard-size {size}")
    assert not (tmp_path / "o").exists()


def test_make_plan_refuses_a_negative_shard_size():
    from harness.run.plan import RestorerItem, make_plan

    with pytest.raises(ValueError, match="--shard-size -3"):
        make_plan([RestorerItem("identity")], [("demo", {})], shard_size=-3)


# Item 9: names and labels -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "ABS", ".", "a/b", "..", "", "mlartifacts", "_x"])
def test_run_names_are_one_folder_under_output_dir(tmp_path, name):
    root = tmp_path / "deep" / "er"
    root.mkdir(parents=True)
    out = root / "results"
    name = str(tmp_path / "abs") if name == "ABS" else name
    one_line_error(bench(*run_args(out, "--run-name", name)), "--run-name")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "er"]  # nothing created


@pytest.mark.parametrize("label", ["_gt", "_lq"])
def test_labels_starting_with_underscore_are_reserved(tmp_path, label):
    result = bench(*run_args(tmp_path / "o", restorers=(f"{label}=gamma", "identity")))
    one_line_error(result, f"restorer label '{label}'", "reserved")


def test_labels_that_map_to_one_file_name_are_refused(tmp_path):
    result = bench(*run_args(tmp_path / "o", restorers=("Fast=gamma", "fast=identity")))
    one_line_error(result, "map to one file name")


def test_distinct_labels_get_distinct_folders_inside_the_run(tmp_path):
    out = tmp_path / "o"
    result = bench(*run_args(out, "--run-name", "r", "--save-images",
                             restorers=("a b=gamma", "a_b=identity", "..=gamma[gamma=0.5]")))
    assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in (out / "r" / "images").iterdir())
    assert len(folders) == 3 and "a_b" in folders, folders
    assert all(len(list((out / "r" / "images" / f / "demo").glob("*.png"))) == 2 for f in folders)
    assert {p.name for p in tmp_path.iterdir()} == {"o"}  # nothing escaped
    previews = sorted(p.name for p in (out / "r" / "previews").iterdir())
    assert previews == sorted(["_gt", "_lq", *folders]), previews


def test_a_study_and_a_run_never_share_a_folder(tmp_path):
    """Runs live in ``<root>/NAME``, studies in ``<root>/studies/NAME``: ``--run-name S`` and
    ``--name S`` get different folders, and no run may be called ``studies``."""
    out = tmp_path / "o"
    assert bench(*run_args(out, "--run-name", "S")).exit_code == 0
    study = bench("study", "ood", "-r", "identity", "-t", "demo", "--limit", "1", "--metrics", "psnr",
                  "--name", "S", "--output-dir", str(out), "--no-tracking", "--no-progress")
    assert study.exit_code == 0, study.output
    assert (out / "studies" / "S" / ".study").exists() and not (out / "S" / ".study").exists()
    assert (out / "S" / "samples.jsonl").exists()
    one_line_error(bench(*run_args(out, "--run-name", "studies")), "--run-name 'studies'")
    one_line_error(bench("study", "ood", "-r", "identity", "-t", "demo", "--name", "../x",
                         "--output-dir", str(out), "--no-tracking"), "--name '../x'")


# Item 10: damaged run folders -------------------------------------------------------------------
def test_non_record_lines_are_skipped_with_their_line_numbers(tmp_path):
    out = tmp_path / "o"
    assert bench(*run_args(out, "--run-name", "k")).exit_code == 0
    samples = out / "k" / "samples.jsonl"
    with samples.open("a") as fh:
        fh.write('42\nnull\n{"a": 1}\n')
    result = bench(*run_args(out, "--run-name", "k", "--resume", "--limit", "3"))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"{samples}: lines 3, 4, 5 are not a record" in text, text
    assert "resumed: 2 image(s)" in text
    lines = samples.read_text().splitlines()
    assert lines[2:5] == ["42", "null", '{"a": 1}']  # reported, not rewritten
    payload = json.loads((out / "k" / "results.json").read_text())
    assert payload["results"]["identity"]["demo"]["psnr"]["n"] == 3

    from harness.report.load import read_run

    with pytest.warns(UserWarning, match="lines 3, 4, 5 are not a record"):
        run = read_run(out / "k")
    assert len(run.records) == 3


def test_a_corrupt_middle_line_is_named_not_silently_dropped(tmp_path):
    out = tmp_path / "o"
    assert bench(*run_args(out, "--run-name", "k")).exit_code == 0
    samples = out / "k" / "samples.jsonl"
    first, second = samples.read_text().splitlines()
    samples.write_text(f"{first}\n{second[:20]}#garbage\n")
    result = bench(*run_args(out, "--run-name", "k", "--resume"))
    assert result.exit_code == 0, result.output
    assert f"{samples}: line 2 is not a record" in " ".join(result.output.split())
    lines = samples.read_text().splitlines()
    assert lines[1] == f"{second[:20]}#garbage" and len(lines) == 3  # the image was evaluated again


def test_a_half_written_last_line_is_cut_with_a_warning(tmp_path):
    out = tmp_path / "o"
    assert bench(*run_args(out, "--run-name", "k")).exit_code == 0
    samples = out / "k" / "samples.jsonl"
    first, second = samples.read_text().splitlines()
    samples.write_text(f"{first}\n{second[:30]}")  # a crash mid-write: no line end
    result = bench(*run_args(out, "--run-name", "k", "--resume"))
    assert result.exit_code == 0, result.output
    assert "line 2 was cut off by an interrupted write" in " ".join(result.output.split())
    ids = [json.loads(line)["sample_id"] for line in samples.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 2


def test_a_truncated_results_json_is_named_and_rebuilt_on_resume(tmp_path):
    out = tmp_path / "o"
    assert bench(*run_args(out, "--run-name", "k")).exit_code == 0
    results = out / "k" / "results.json"
    expected = json.loads(results.read_text())["results"]
    results.write_text(results.read_text()[:200])

    from harness.io.results import ResultsReadError, read_results

    with pytest.raises(ResultsReadError, match=f"{results} is not valid JSON"):
        read_results(results)
    report = bench("report", str(out / "k"))
    one_line_error(report, str(results), "rebuilds it from samples.jsonl")
    result = bench(*run_args(out, "--run-name", "k", "--resume"))
    assert result.exit_code == 0, result.output
    assert f"{results} is not valid JSON" in " ".join(result.output.split())
    rebuilt = json.loads(results.read_text())["results"]
    assert rebuilt["identity"]["demo"]["psnr"] == expected["identity"]["demo"]["psnr"]


# Item 11: one training per checkpoint ------------------------------------------------------------
def test_a_second_training_on_a_locked_checkpoint_refuses(tmp_path):
    from harness.io.results import RunLockedError
    from harness.train.trainer import checkpoint_lock

    out = tmp_path / "model.pt"
    with checkpoint_lock(out):
        with pytest.raises(RunLockedError, match=f"{out} is being trained by another bench train"):
            checkpoint_lock(out).acquire()
        result = bench("train", "-r", "identity", "--train-set", "x", "--out", str(out),
                       "--resume", "--no-tracking")
        one_line_error(result, "is being trained by another bench train (pid")
    checkpoint_lock(out).acquire().release()  # free again once the holder let go


# Item 12: an unreachable tracking server ---------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_tracking_server_fails_in_seconds_before_any_work(tmp_path):
    out = tmp_path / "o"
    start = time.perf_counter()
    result = bench(*run_args(out, "--run-name", "k", "--tracking-uri",
                             f"http://127.0.0.1:{_free_port()}"))
    elapsed = time.perf_counter() - start
    one_line_error(result, "the MLflow server does not answer", "--no-tracking")
    assert "mlflow ui" not in result.output
    assert elapsed < 30, elapsed  # was 255 s of client retries
    assert not (out / "k").exists()


class _Broken(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's names
        self.send_error(500, "broken")

    do_POST = do_GET

    def log_message(self, *args):
        pass


def test_a_server_that_fails_mid_run_keeps_the_results_and_exits_non_zero(tmp_path):
    """A server that accepts connections but answers every call with 500: the run completes,
    its files are written, the command ends within seconds with exit 2 and no ``mlflow ui``
    hint (MLflow's retries are bounded in the tracking process)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "o"
        start = time.perf_counter()
        result = bench(*run_args(out, "--run-name", "k", "--tracking-uri",
                                 f"http://127.0.0.1:{server.server_port}"))
        elapsed = time.perf_counter() - start
    finally:
        server.shutdown()
    one_line_error(result, "MLflow logging failed", "results files are complete")
    assert "mlflow ui" not in result.output
    assert json.loads((out / "k" / "results.json").read_text())["results"]["identity"]["demo"]
    assert elapsed < 120, elapsed
