"""Which store writes a tracking URI: bench's direct sqlite writer or ``MlflowClient``."""

from __future__ import annotations

import os
from pathlib import Path

from harness.tracking.store import Tracker, _sqlite_path, ensure_sqlite_store


def open_tracker(tracking_uri: str, experiment: str, artifact_root: Path) -> Tracker:
    """The tracker for a URI: the direct sqlite writer for a local sqlite store whose schema it
    knows (``bench``'s default), else ``MlflowClient``. ``BENCH_MLFLOW_CLIENT=1`` forces the
    latter (to compare the two, or if a future MLflow changes what a run row means)."""
    store = _sqlite_path(tracking_uri)
    if store is not None and os.environ.get("BENCH_MLFLOW_CLIENT", "") not in ("1", "true"):
        from harness.tracking.sqlite import SqliteTracker, UnsupportedStore, schema_problem

        ensure_sqlite_store(store)
        if schema_problem(store) is None:
            try:
                return SqliteTracker(tracking_uri, experiment, artifact_root)
            except UnsupportedStore:  # e.g. an experiment with a remote artifact location
                pass
    return Tracker(tracking_uri, experiment, artifact_root)
