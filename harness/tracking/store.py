"""The MLflow run layout over ``MlflowClient``: one parent run per command, one child run per
(restorer, task); and the sqlite-store helpers both stores share.

The default store is ``sqlite:///<output-dir>/mlflow.db`` with artifacts in
``<output-dir>/mlartifacts`` (MLflow 3 refuses plain file stores, and the default ``./mlruns``
would land wherever the user happened to ``cd``). The client API is used rather than the fluent
one so nothing depends on a global "active run".

Names follow conventions.md §5: child runs are ``"{restorer}@{task}"``; metric keys are the
metric name (``psnr``) with ``_std``, ``_ci95_lo``, ``_ci95_hi`` siblings; missing metrics are
tags ``missing.<metric>`` carrying the reason.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-. /:]")
_PARAM_MAX = 6000
_TAG_MAX = 5000


def sanitize_key(key: str) -> str:
    """MLflow accepts only alphanumerics and ``_ - . space / :`` in keys (``mAP50(B)`` fails)."""
    return _KEY_BAD.sub("_", key)[:250]


def default_tracking_uri(output_dir: Path) -> str:
    """The store of an output root: ``bench run``, ``bench study`` (its runs under
    ``<root>/studies/``) and ``bench train`` given one ``--output-dir`` log to this one file."""
    return f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


#: MLflow keeps run names to 250 characters; ours stay readable well below that.
_NAME_MAX = 160


def describe_run(restorers: list[str], tasks: list[str]) -> str:
    """A parent run's name: what ran, ``unfoldldm, lime, zero-dce @ lolv1-tao256`` (a long list
    is cut with ``+N more``), so that the MLflow run list reads without opening each run."""
    def listing(labels: list[str]) -> str:
        text = ", ".join(labels)
        for keep in range(len(labels) - 1, 0, -1):
            if len(text) <= _NAME_MAX // 2:
                break
            text = ", ".join(labels[:keep]) + f" +{len(labels) - keep} more"
        return text

    return f"{listing(list(restorers))} @ {listing(list(tasks))}"


def training_run_name(restorer_label: str, train_set: str) -> str:
    """A training run's name: the restorer configuration and the training set it learns from,
    so that two trainings of one configuration on different sets are told apart."""
    return f"train:{restorer_label} on {train_set}"


class TrackingUnreachable(ValueError):
    """The tracking server of ``--tracking-uri`` does not answer."""


#: MLflow's HTTP client retries a refused connection with back-off for minutes (255 s seen); a
#: run's tracking child uses these instead (each unset variable only), so a server that goes away
#: mid-run costs seconds, not minutes
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def check_reachable(uri: str, timeout: float = 3.0) -> None:
    """Fail in seconds, before any work, when ``uri`` names an HTTP(S) tracking server that does
    not accept a connection (refused, unknown host, no answer within ``timeout``). Other URIs
    (local sqlite, Databricks profiles, ...) are not probed here."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise TrackingUnreachable(
            f"--tracking-uri {uri}: the MLflow server does not answer ({why}); start it "
            "(mlflow server ...), fix the URI, or pass --no-tracking") from None


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    _flatten(prefix, d, out)
    return out


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def ensure_sqlite_store(path: Path) -> None:
    """Create a fresh MLflow sqlite store by copying a pre-migrated empty one.

    MLflow builds a new store by replaying its alembic migrations: 3–8 s here, more than the
    whole evaluation of a fast restorer on a small set. The empty store of each MLflow version is
    built once, in ``$BENCH_HOME/mlflow-store-template/<version>.db``, and copied from then on
    (0.05 s). Both steps go through a temporary file and an exclusive link, so two processes
    starting at once never run migrations on one file (MLflow's alembic would fail with
    "table _alembic_tmp_experiments already exists").
    """
    import shutil
    from importlib.metadata import version

    if path.exists():
        return
    from harness.assets.cache import bench_home

    template = bench_home() / "mlflow-store-template" / f"mlflow-{version('mlflow')}.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        scratch = template.with_name(f".{template.name}.{os.getpid()}.tmp")
        import logging

        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        for name in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..."
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            store = SqlAlchemyStore(f"sqlite:///{scratch}", str(template.parent / "unused-artifacts"))
            store.engine.dispose()
            os.link(scratch, template)  # first one wins; the others use the winner's file
        except FileExistsError:
            pass
        finally:
            scratch.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:  # a full disk fails the copy: the partial scratch file must not stay and fill it
        shutil.copyfile(template, scratch)
        os.link(scratch, path)
    except FileExistsError:
        pass
    finally:
        scratch.unlink(missing_ok=True)


#: sqlite serialises writers; a second ``bench run`` on the same store sees "database is locked"
#: whenever the other holds the write lock past SQLAlchemy's wait. Those calls are retried.
_BUSY = ("database is locked", "database table is locked", "database is busy")
_RETRIES = 8


def is_busy(exc: BaseException) -> bool:
    """A transient sqlite contention error (anywhere in the exception chain)?"""
    seen: BaseException | None = exc
    while seen is not None:
        if any(text in str(seen).lower() for text in _BUSY):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_busy(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call, retrying on a busy sqlite store with exponential back-off (0.1 s … 12.8 s, about
    25 s in all): long enough for another run's batch, short enough to report a stuck store."""
    for attempt in range(_RETRIES):
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if attempt == _RETRIES - 1 or not is_busy(exc):
                raise
            time.sleep(0.1 * 2 ** attempt)
    raise AssertionError("unreachable")  # pragma: no cover


class _RetryingClient:
    """``MlflowClient`` whose every call is retried on a busy sqlite store (:func:`retry_busy`).
    A locked write never commits, so a retried ``create_run`` does not create a duplicate."""

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: retry_busy(attribute, *args, **kwargs)


class Tracker:
    """The parent/child run layout over a few storage primitives.

    This class implements the primitives with ``MlflowClient`` (any tracking URI: a server,
    Databricks, a sqlite store of an unknown schema). :class:`harness.tracking.sqlite.SqliteTracker`
    implements the same primitives with the stdlib ``sqlite3`` for the local sqlite stores that
    ``bench`` creates, without importing MLflow (see that module for why). :func:`open_tracker`
    picks one.
    """

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path):
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        store = _sqlite_path(tracking_uri)
        if store is not None:
            ensure_sqlite_store(store)
        from mlflow import MlflowClient

        # after the import: mlflow configures its loggers when it is imported
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)

        self.client = _RetryingClient(MlflowClient(tracking_uri=tracking_uri))
        self.tracking_uri = tracking_uri
        experiment_obj = self.client.get_experiment_by_name(experiment)
        if experiment_obj is None:
            artifact_root.mkdir(parents=True, exist_ok=True)
            try:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=artifact_root.resolve().as_uri())
            except Exception:  # another run created it between our look-up and our insert
                experiment_obj = self.client.get_experiment_by_name(experiment)
                if experiment_obj is None:
                    raise
                self.experiment_id = experiment_obj.experiment_id
        else:
            self.experiment_id = experiment_obj.experiment_id
        self.parent_id: str | None = None

    # Storage primitives ---------------------------------------------------------------------------
    def _create_run(self, run_name: str, tags: dict[str, str]) -> str:
        return self.client.create_run(self.experiment_id, run_name=run_name, tags=tags).info.run_id

    def _run_state(self, run_id: str) -> tuple[str, str, dict[str, str]] | None:
        """``(experiment_id, lifecycle_stage, tags)`` of a run, ``None`` if it is not in the store."""
        try:
            run = self.client.get_run(run_id)
        except Exception:  # not in this store (another --tracking-uri, a deleted run)
            return None
        return str(run.info.experiment_id), run.info.lifecycle_stage, dict(run.data.tags)

    def _set_running(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def _running_children(self, parent_id: str) -> list[str]:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and "
                                                "attributes.status = 'RUNNING'")
        return [run.info.run_id for run in runs]

    def _children(self, parent_id: str) -> list[tuple[str, str, dict[str, str]]]:
        """``(run id, status, tags)`` of every active child run of ``parent_id``."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
        return [(run.info.run_id, run.info.status, dict(run.data.tags)) for run in runs]

    def _delete_run(self, run_id: str) -> None:
        """Soft-delete (MLflow's ``deleted`` stage; ``mlflow gc`` purges, the UI can restore)."""
        self.client.delete_run(run_id)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def _log_batch(self, run_id: str, params: list[tuple[str, str]] = (),
                   tags: list[tuple[str, str]] = (),
                   metrics: list[tuple[str, float, int, int]] = ()) -> None:
        """Params ``(key, value)``, tags ``(key, value)``, metrics ``(key, value, ms, step)``."""
        from mlflow.entities import Metric, Param, RunTag

        params = [Param(k, v) for k, v in params]
        tags = [RunTag(k, v) for k, v in tags]
        metrics = [Metric(k, v, ms, step) for k, v, ms, step in metrics]
        for start in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[start:start + 100])
        if tags:
            self.client.log_batch(run_id, tags=tags)
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000])

    def log_table(self, run_id: str, rows: list[dict[str, Any]], artifact_file: str) -> None:
        import pandas as pd

        if rows:
            self.client.log_table(run_id, data=pd.DataFrame(rows), artifact_file=artifact_file)

    def log_image(self, run_id: str, image: Any, artifact_file: str) -> None:
        self.client.log_image(run_id, image, artifact_file=artifact_file)

    def log_dict(self, run_id: str, payload: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(run_id, payload, artifact_file)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    # Runs -----------------------------------------------------------------------------------------
    def start_parent(self, run_name: str, tags: dict[str, Any], params: dict[str, Any]) -> str:
        self.parent_id = self._create_run(run_name, {k: str(v)[:_TAG_MAX] for k, v in tags.items()})
        self.log_params(self.parent_id, params)
        return self.parent_id

    def resume_parent(self, run_id: str, tags: dict[str, Any]) -> str | None:
        """Continue the parent run ``run_id`` of an interrupted attempt: status back to
        RUNNING, its children that were left RUNNING marked KILLED, ``resumed`` counted in a tag.
        Params are not re-logged (MLflow params are immutable). ``None`` if the run is not in
        this store or experiment (then the caller starts a new parent)."""
        state = self._run_state(run_id)
        if state is None:
            return None
        experiment_id, stage, run_tags = state
        if experiment_id != str(self.experiment_id) or stage != "active":
            return None
        self.parent_id = run_id
        self._set_running(run_id)
        self.kill_stale_children(run_id)
        count = int(run_tags.get("resumed", "0")) + 1
        self.log_tags(run_id, {**{k: v for k, v in tags.items() if not k.startswith("mlflow.")},
                               "resumed": count})
        return run_id

    def kill_stale_children(self, parent_id: str, status: str = "KILLED") -> None:
        """Children of ``parent_id`` still RUNNING belong to a dead (or failed) process: end them
        with ``status`` (KILLED, or FAILED when the run failed)."""
        for child in self._running_children(parent_id):
            self.end(child, status=status)

    def finished_child(self, parent_id: str, tags: dict[str, Any]) -> bool:
        """Does ``parent_id`` have a FINISHED child whose tags include ``tags``? Its other
        children with those tags (KILLED, FAILED, RUNNING: an attempt that died while logging
        them) are soft-deleted, so that the pair ends with exactly one child, FINISHED."""
        wanted = {k: str(v) for k, v in tags.items()}
        same = [(run_id, status) for run_id, status, run_tags in self._children(parent_id)
                if all(run_tags.get(k) == v for k, v in wanted.items())]
        if any(status == "FINISHED" for _, status in same):
            return True
        for run_id, _ in same:
            self._delete_run(run_id)
        return False

    def start_child(self, run_name: str, tags: dict[str, Any] | None = None) -> str:
        all_tags = {"mlflow.parentRunId": self.parent_id or "", **(tags or {})}
        return self._create_run(run_name, {k: str(v)[:_TAG_MAX] for k, v in all_tags.items()})

    # Logging --------------------------------------------------------------------------------------
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        items = [(sanitize_key(k), str(v)[:_PARAM_MAX]) for k, v in flatten(params).items()]
        if items:
            self._log_batch(run_id, params=items)

    def log_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        items = [(sanitize_key(k), str(v)[:_TAG_MAX]) for k, v in tags.items()]
        if items:
            self._log_batch(run_id, tags=items)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        self.log_metric_steps(run_id, [(step, metrics)])

    def log_metric_steps(self, run_id: str, rows: list[tuple[int, dict[str, float]]]) -> None:
        """Metrics at several steps (training curves) in one batch; NaN and ±inf are dropped."""
        now = int(time.time() * 1000)
        items = [(sanitize_key(k), float(v), now, int(step)) for step, values in rows
                 for k, v in values.items()
                 if v is not None and v == v and abs(float(v)) != float("inf")]
        if items:
            self._log_batch(run_id, metrics=items)

    def log_aggregates(self, run_id: str, aggregates: dict[str, Any]) -> None:
        """``{metric: {mean, std, ci95, n}}`` → ``metric``, ``metric_std``, ``metric_ci95_lo/hi``."""
        flat: dict[str, float] = {}
        for name, agg in aggregates.items():
            if isinstance(agg, dict):
                flat[name] = agg["mean"]
                flat[f"{name}_std"] = agg["std"]
                lo, hi = agg["ci95"]
                flat[f"{name}_ci95_lo"], flat[f"{name}_ci95_hi"] = lo, hi
                flat[f"{name}_n"] = agg["n"]
            else:
                flat[name] = agg
        self.log_metrics(run_id, flat)
