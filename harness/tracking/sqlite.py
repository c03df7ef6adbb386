"""Runs written straight into an MLflow sqlite store with the stdlib ``sqlite3``.

Why by hand: ``import mlflow`` and opening its SQLAlchemy store cost about 3 s of CPU per
process (1.7 s import, 1.2 s store; ``benchmarks/runner_overhead.py``), against about 5 s for the
whole of ``bench run -r identity -t kodak24-awgn25 --metrics psnr``: MLflow was a third of a fast
restorer's run. What a run logs is a handful of rows in six tables of the store and a few files
in the run's artifact folder; this module writes exactly those rows, as MLflow's own
``SqlAlchemyStore`` would (same columns, run ids, name tag, latest-metric rule, artifact layout,
``mlflow.loggedArtifacts`` tag of tables), so the MLflow UI, ``MlflowClient`` and
``mlflow.search_runs`` read them like any other run (``tests/test_mlflow_sqlite.py`` compares
both writers through ``MlflowClient``).

Only stores that ``bench`` creates are written this way: a local ``sqlite:///`` URI whose schema
has every column written here and no other required column (:func:`schema_problem`), with a
local artifact location. Anything else (a tracking server, another database, an unknown schema
of a future MLflow) goes through ``MlflowClient`` (:func:`harness.tracking.factory.open_tracker`);
``BENCH_MLFLOW_CLIENT=1`` forces that path.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from harness.tracking.store import Tracker, _sqlite_path, retry_busy

#: Columns this writer fills, per table. A store missing one of them, or requiring (NOT NULL
#: without default) a column not listed, is left to MlflowClient.
WRITTEN = {
    "experiments": {"experiment_id", "name", "artifact_location", "lifecycle_stage", "creation_time",
                    "last_update_time"},
    "runs": {"run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id", "status",
             "start_time", "end_time", "source_version", "lifecycle_stage", "artifact_uri",
             "experiment_id", "deleted_time"},
    "tags": {"key", "value", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
    "metrics": {"key", "value", "timestamp", "run_uuid", "step", "is_nan"},
    "latest_metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"},
}
LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"


class UnsupportedStore(RuntimeError):
    """The store or experiment is not one this writer may touch (use MlflowClient)."""


def schema_problem(path: Path) -> str | None:
    """Why the sqlite store at ``path`` cannot be written here, or ``None`` if it can."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return f"cannot open {path}: {exc}"
    try:
        for table, written in WRITTEN.items():
            # (cid, name, type, notnull, default, pk)
            columns = connection.execute(f'PRAGMA table_info("{table}")').fetchall()
            if not columns:
                return f"no table {table}"
            names = {c[1] for c in columns}
            if written - names:
                return f"table {table} lacks {sorted(written - names)}"
            required = {c[1] for c in columns if c[3] and c[4] is None and not c[5]}
            if required - written:
                return f"table {table} requires {sorted(required - written)}"
    except sqlite3.Error as exc:
        return f"cannot read the schema of {path}: {exc}"
    finally:
        connection.close()
    return None


def _local_path(location: str) -> Path | None:
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and location:
        return Path(location)
    return None


class SqliteTracker(Tracker):
    """:class:`~harness.tracking.store.Tracker` whose storage primitives are SQL statements on the
    store file (no MLflow import). Every write is one ``BEGIN IMMEDIATE`` transaction, retried
    on a busy store like the MlflowClient path."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path):
        path = _sqlite_path(tracking_uri)
        if path is None:
            raise UnsupportedStore(f"not a local sqlite URI: {tracking_uri}")
        self.tracking_uri = tracking_uri
        self.parent_id: str | None = None
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self._workspace = "workspace" in {c[1] for c in self._db.execute("PRAGMA table_info(experiments)")}
        row = self._experiment(experiment)
        if row is None:
            artifact_root.mkdir(parents=True, exist_ok=True)
            now = _now_ms()
            try:
                self._write(lambda db: db.execute(
                    "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, "
                    "last_update_time) VALUES (?, ?, 'active', ?, ?)",
                    (experiment, artifact_root.resolve().as_uri(), now, now)))
            except sqlite3.IntegrityError:  # another run created it between our look-up and insert
                pass
            row = self._experiment(experiment)
            if row is None:
                raise UnsupportedStore(f"experiment {experiment!r} could not be created")
        experiment_id, location, stage = row
        if stage != "active":
            raise UnsupportedStore(f"experiment {experiment!r} is {stage}")
        root = _local_path(location or "")
        if root is None:
            raise UnsupportedStore(f"artifact location {location} is not local")
        self.experiment_id = str(experiment_id)
        self._artifact_location = location.rstrip("/")
        self._artifact_root = root

    # sqlite ---------------------------------------------------------------------------------------
    def _experiment(self, name: str) -> tuple[int, str, str] | None:
        where = "name = ? AND workspace = 'default'" if self._workspace else "name = ?"
        return self._db.execute(
            f"SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments WHERE {where}",
            (name,)).fetchone()

    def _write(self, statements: Any) -> Any:
        def transaction() -> Any:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = statements(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

        return retry_busy(transaction)

    def close(self) -> None:
        self._db.close()

    # Storage primitives ---------------------------------------------------------------------------
    def _create_run(self, run_name: str, tags: dict[str, str]) -> str:
        run_id = uuid.uuid4().hex
        tags = {**tags}
        tags.setdefault("mlflow.runName", run_name)

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
                "experiment_id, deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', "
                "'active', ?, ?, NULL)",
                (run_id, run_name, tags.get("mlflow.user", "unknown"), _now_ms(),
                 f"{self._artifact_location}/{run_id}/artifacts", int(self.experiment_id)))
            db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                           [(k, v, run_id) for k, v in tags.items()])

        self._write(insert)
        return run_id

    def _run_state(self, run_id: str) -> tuple[str, str, dict[str, str]] | None:
        row = self._db.execute("SELECT experiment_id, lifecycle_stage FROM runs WHERE run_uuid = ?",
                               (run_id,)).fetchone()
        if row is None:
            return None
        tags = dict(self._db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
        return str(row[0]), row[1], tags

    def _set_running(self, run_id: str) -> None:
        self._write(lambda db: db.execute(
            "UPDATE runs SET status = 'RUNNING', end_time = NULL WHERE run_uuid = ?", (run_id,)))

    def _running_children(self, parent_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'mlflow.parentRunId' AND t.value = ? AND r.status = 'RUNNING' "
            "AND r.experiment_id = ? AND r.lifecycle_stage = 'active'",
            (parent_id, int(self.experiment_id))).fetchall()
        return [r[0] for r in rows]

    def _children(self, parent_id: str) -> list[tuple[str, str, dict[str, str]]]:
        rows = self._db.execute(
            "SELECT r.run_uuid, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'mlflow.parentRunId' AND t.value = ? AND r.experiment_id = ? "
            "AND r.lifecycle_stage = 'active'", (parent_id, int(self.experiment_id))).fetchall()
        return [(run_id, status, dict(self._db.execute(
            "SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))) for run_id, status in rows]

    def _delete_run(self, run_id: str) -> None:
        self._write(lambda db: db.execute(
            "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? WHERE run_uuid = ?",
            (_now_ms(), run_id)))

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self._write(lambda db: db.execute(
            "UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", (status, _now_ms(), run_id)))

    def _log_batch(self, run_id: str, params: list[tuple[str, str]] = (),
                   tags: list[tuple[str, str]] = (),
                   metrics: list[tuple[str, float, int, int]] = ()) -> None:
        def insert(db: sqlite3.Connection) -> None:
            # params are immutable in MLflow: the first value stays
            db.executemany("INSERT OR IGNORE INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                           [(k, v, run_id) for k, v in params])
            db.executemany("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                           [(k, v, run_id) for k, v in tags])
            db.executemany(
                "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES (?, ?, ?, ?, ?, 0)", [(k, v, ms, run_id, step) for k, v, ms, step in metrics])
            # latest_metrics: MLflow's rule, the largest (step, timestamp, value) is the latest
            latest: dict[str, tuple[int, int, float]] = {}
            for k, v, ms, step in metrics:
                if k not in latest or (step, ms, v) > latest[k]:
                    latest[k] = (step, ms, v)
            for k, (step, ms, v) in latest.items():
                old = db.execute("SELECT step, timestamp, value FROM latest_metrics "
                                 "WHERE key = ? AND run_uuid = ?", (k, run_id)).fetchone()
                if old is None or (step, ms, v) > tuple(old):
                    db.execute("INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, "
                               "run_uuid) VALUES (?, ?, ?, ?, 0, ?)", (k, v, ms, step, run_id))

        if params or tags or metrics:
            self._write(insert)

    # Artifacts: files under <artifact location>/<run id>/artifacts, as MLflow's local repository
    def _artifact_file(self, run_id: str, artifact_file: str) -> Path:
        relative = Path(artifact_file)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"artifact path {artifact_file!r} must be relative, without '..'")
        path = self._artifact_root / run_id / "artifacts" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def log_table(self, run_id: str, rows: list[dict[str, Any]], artifact_file: str) -> None:
        """The JSON of pandas' ``to_json(orient="split", index=False)`` (what
        ``MlflowClient.log_table`` writes), plus the ``mlflow.loggedArtifacts`` tag the UI reads."""
        if not rows:
            return
        columns = list(dict.fromkeys(k for row in rows for k in row))
        data = [[_json_value(row.get(c)) for c in columns] for row in rows]
        path = self._artifact_file(run_id, artifact_file)
        path.write_text(json.dumps({"columns": columns, "data": data}), encoding="utf-8")
        state = self._run_state(run_id)
        logged = json.loads((state[2] if state else {}).get(LOGGED_ARTIFACTS, "[]"))
        entry = {"path": artifact_file, "type": "table"}
        if entry not in logged:
            self.log_tags(run_id, {LOGGED_ARTIFACTS: json.dumps([*logged, entry])})

    def log_image(self, run_id: str, image: Any, artifact_file: str) -> None:
        if not hasattr(image, "save"):
            from PIL import Image

            image = Image.fromarray(image)
        image.save(self._artifact_file(run_id, artifact_file))

    def log_dict(self, run_id: str, payload: dict[str, Any], artifact_file: str) -> None:
        path = self._artifact_file(run_id, artifact_file)
        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            path.write_text(yaml.safe_dump(payload, default_flow_style=False), encoding="utf-8")
        else:
            path.write_text(json.dumps(payload, indent=2), encoding="utf-8")

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        name = Path(path).name
        target = f"{artifact_path}/{name}" if artifact_path else name
        shutil.copyfile(path, self._artifact_file(run_id, target))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
