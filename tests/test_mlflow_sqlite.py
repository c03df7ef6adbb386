"""The direct sqlite writer (harness/tracking/sqlite.py) against MlflowClient on the same calls:
what MLflow itself reads back must be the same, whichever of the two wrote it."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from PIL import Image

from harness.tracking.factory import open_tracker
from harness.tracking.sqlite import SqliteTracker, schema_problem
from harness.tracking.store import Tracker, default_tracking_uri, ensure_sqlite_store

VOLATILE_TAGS = {"mlflow.parentRunId", "mlflow.loggedArtifacts"}


def _log_layout(tracker: Tracker, tmp: Path) -> None:
    """What a `bench run` logs: parent with params, one child with aggregates, a table,
    an image, a dict and an artifact; a second child left RUNNING then killed as stale."""
    parent = tracker.start_parent("run-1", tags={"git_hash": "abc", "torch": "2.x"},
                                  params={"seed": 0, "restorer": {"nlm": {"sigma": "estimate"}}})
    child = tracker.start_child("nlm@demo", tags={"restorer": "nlm", "task": "demo"})
    tracker.log_params(child, {"metric.psnr.lower_better": False, "long": "x" * 7000})
    tracker.log_aggregates(child, {"psnr": {"mean": 28.5, "std": 1.5, "ci95": [27.0, 30.0], "n": 3},
                                   "count": 7.0, "bad": float("nan")})
    tracker.log_metric_steps(child, [(1, {"loss": 0.5}), (2, {"loss": 0.25}), (3, {"loss": 0.75})])
    tracker.log_table(child, [{"sample_id": "a", "psnr": 28.0, "error": ""},
                              {"sample_id": "b", "psnr": float("nan"), "seed": 3}], "per_image/nlm.json")
    tracker.log_image(child, Image.new("RGB", (8, 4), (10, 20, 30)), "comparisons/a_lq-out-gt.png")
    tracker.log_dict(child, {"k": [1, 2]}, "extra/info.json")
    note = tmp / "results.json"
    note.write_text('{"ok": true}')
    tracker.log_artifact(parent, note)
    tracker.log_artifact(parent, note, "report")
    tracker.end(child)
    tracker.start_child("stale@demo")
    tracker.kill_stale_children(parent)
    tracker.log_tags(parent, {"missing.lpips": "no weights"})
    tracker.end(parent, "FINISHED")


def _read(uri: str, experiment: str, scratch: Path) -> list[dict]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    out = []
    for run in sorted(runs, key=lambda r: r.info.run_name):
        children = client.search_runs(
            [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
        history = client.get_metric_history(run.info.run_id, "loss")
        files: list[str] = []
        pending: list[str | None] = [None]
        while pending:
            for item in client.list_artifacts(run.info.run_id, pending.pop()):
                (pending if item.is_dir else files).append(item.path)
        table = None
        if "per_image/nlm.json" in files:  # as MlflowClient.load_table reads it
            import pandas as pd

            local = client.download_artifacts(run.info.run_id, "per_image/nlm.json", str(scratch))
            table = {k: [None if v != v else v for v in values]  # NaN != NaN
                     for k, values in pd.read_json(local, orient="split").to_dict("list").items()}
        out.append({
            "name": run.info.run_name, "status": run.info.status,
            "stage": run.info.lifecycle_stage, "has_end": run.info.end_time is not None,
            "params": run.data.params, "metrics": run.data.metrics,
            "tags": {k: v for k, v in run.data.tags.items() if k not in VOLATILE_TAGS},
            "logged": json.loads(run.data.tags.get("mlflow.loggedArtifacts", "[]")),
            "children": sorted(c.info.run_name for c in children),
            "loss_history": sorted((m.step, m.value) for m in history),
            "files": sorted(files), "table": table,
        })
    return out


def test_sqlite_writer_reads_back_like_mlflowclient(tmp_path: Path, monkeypatch) -> None:
    results = {}
    for kind in ("client", "sqlite"):
        folder = tmp_path / kind
        folder.mkdir()
        uri = default_tracking_uri(folder)
        if kind == "client":
            monkeypatch.setenv("BENCH_MLFLOW_CLIENT", "1")
        else:
            monkeypatch.delenv("BENCH_MLFLOW_CLIENT", raising=False)
        tracker = open_tracker(uri, "restorebench", folder / "mlartifacts")
        assert isinstance(tracker, SqliteTracker) == (kind == "sqlite")
        _log_layout(tracker, folder)
        (folder / "scratch").mkdir()
        results[kind] = _read(uri, "restorebench", folder / "scratch")
    assert results["sqlite"] == results["client"]
    by_name = {r["name"]: r for r in results["sqlite"]}
    assert by_name["stale@demo"]["status"] == "KILLED"
    assert by_name["run-1"]["children"] == ["nlm@demo", "stale@demo"]
    assert by_name["nlm@demo"]["metrics"]["loss"] == 0.75  # latest = largest step
    assert by_name["nlm@demo"]["loss_history"] == [(1, 0.5), (2, 0.25), (3, 0.75)]
    assert "bad" not in by_name["nlm@demo"]["metrics"]
    assert by_name["nlm@demo"]["logged"] == [{"path": "per_image/nlm.json", "type": "table"}]


def test_resume_parent_through_sqlite(tmp_path: Path) -> None:
    uri = default_tracking_uri(tmp_path)
    first = open_tracker(uri, "e", tmp_path / "art")
    parent = first.start_parent("run", tags={}, params={"a": 1})
    child = first.start_child("x@y")  # the process died here: both left RUNNING
    second = open_tracker(uri, "e", tmp_path / "art")
    assert second.resume_parent(parent, tags={"argv": "bench run --resume"}) == parent
    assert second.resume_parent("0" * 32, tags={}) is None  # not in this store
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(parent).info.status == "RUNNING"
    assert client.get_run(parent).data.tags["resumed"] == "1"
    assert client.get_run(child).info.status == "KILLED"
    other = open_tracker(uri, "another-experiment", tmp_path / "art")
    assert other.resume_parent(parent, tags={}) is None  # another experiment: start a new parent


def test_schema_check_leaves_unknown_schemas_to_mlflowclient(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    ensure_sqlite_store(store)
    assert schema_problem(store) is None
    changed = tmp_path / "changed.db"
    shutil.copyfile(store, changed)
    with sqlite3.connect(changed) as db:
        db.execute("ALTER TABLE runs ADD COLUMN owner_team VARCHAR(20) NOT NULL DEFAULT 'x'")
    assert schema_problem(changed) is None  # a defaulted new column is filled by sqlite
    with sqlite3.connect(changed) as db:
        db.execute("DROP TABLE latest_metrics")
    assert "latest_metrics" in schema_problem(changed)
    assert schema_problem(tmp_path / "absent" / "x.db") is not None


def test_concurrent_writers_on_one_store(tmp_path: Path) -> None:
    uri = default_tracking_uri(tmp_path)
    ensure_sqlite_store(tmp_path / "mlflow.db")
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            tracker = open_tracker(uri, "shared", tmp_path / "art")
            parent = tracker.start_parent(f"run-{index}", tags={}, params={"i": index})
            for j in range(5):
                child = tracker.start_child(f"c{j}@{index}")
                aggregate = {"mean": float(j), "std": 0.0, "ci95": [j, j], "n": 1}
                tracker.log_aggregates(child, {"psnr": aggregate})
                tracker.end(child)
            tracker.end(parent)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("shared").experiment_id], max_results=100)
    assert len(runs) == 3 * 6
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_unsafe_artifact_paths_are_refused(tmp_path: Path) -> None:
    tracker = open_tracker(default_tracking_uri(tmp_path), "e", tmp_path / "art")
    run = tracker.start_parent("r", tags={}, params={})
    with pytest.raises(ValueError, match="relative"):
        tracker.log_dict(run, {}, "../escape.json")


def test_payloads_cross_to_the_tracking_child_as_builtins() -> None:
    """A torch.__version__ tag (a TorchVersion) made the child import torch to unpickle it."""
    import pickle

    import numpy as np
    import torch

    from harness.tracking.worker import _plain

    payload = _plain({"version": torch.__version__, "x": np.float32(1.5), "n": torch.tensor(3),
                      "flag": np.bool_(True), "nested": [np.int64(2), (Path("p"), None)]})
    blob = pickle.dumps(payload)
    assert b"torch" not in blob and b"numpy" not in blob
    assert payload == {"version": str(torch.__version__), "x": 1.5, "n": 3, "flag": True,
                       "nested": [2, [Path("p"), None]]}


def test_the_mlflow_writer_thread_neither_pickles_nor_frees(tmp_path: Path) -> None:
    """The writer thread only writes bytes the caller pickled, and hands them back to be freed on
    the caller's thread (``settle``, which the executor calls before probing a restorer's heap):
    a job pickled or freed on that thread during a probe moved identity's figure by 0.6-1.1 MB."""
    import time

    from harness.tracking.worker import TrackingProcess

    store = tmp_path / "mlflow.db"
    tracking = TrackingProcess(f"sqlite:///{store}", "writer-test", tmp_path / "artifacts")
    try:
        tracking.start_parent("run", tags={"t": "x"}, params={"p": 1}, run_dir=tmp_path)
        deadline = time.monotonic() + 30
        while not tracking._written and time.monotonic() < deadline:
            time.sleep(0.01)
        written = list(tracking._written)
        assert len(written) == 1 and isinstance(written[0], bytes)  # kept, not freed there
        tracking.settle()
        assert tracking._written == []
        # a job that cannot be pickled (the public calls pass plain data: _plain) is reported,
        # not raised into the run
        tracking._put(("log_steps", {"rows": [lambda: 0]}))
        assert any("log_steps: not sent to MLflow" in e for e in tracking.errors)
        tracking.finish(None, {}, "FINISHED")
    finally:
        tracking.close()
    assert tracking.parent_id and tracking._written == []
    assert any("log_steps: not sent to MLflow" in e for e in tracking.errors)
