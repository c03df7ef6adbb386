"""MLflow logging: one parent run per CLI call, one child run per (restorer, task).

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
import sys
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
    return f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


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
    from harness.assets import bench_home

    template = bench_home() / "mlflow-store-template" / f"mlflow-{version('mlflow')}.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        scratch = template.with_name(f".{template.name}.{os.getpid()}.tmp")
        import logging

        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        for name in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..."
            logging.getLogger(name).setLevel(logging.WARNING)
        store = SqlAlchemyStore(f"sqlite:///{scratch}", str(template.parent / "unused-artifacts"))
        store.engine.dispose()
        try:
            os.link(scratch, template)  # first one wins; the others use the winner's file
        except FileExistsError:
            pass
        scratch.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.copyfile(template, scratch)
    try:
        os.link(scratch, path)
    except FileExistsError:
        pass
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
    Databricks, a sqlite store of an unknown schema). :class:`harness.mlflow_sqlite.SqliteTracker`
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

    def kill_stale_children(self, parent_id: str) -> None:
        """Children of ``parent_id`` still RUNNING belong to a dead process: mark them KILLED."""
        for child in self._running_children(parent_id):
            self.end(child, status="KILLED")

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


def open_tracker(tracking_uri: str, experiment: str, artifact_root: Path) -> Tracker:
    """The tracker for a URI: the direct sqlite writer for a local sqlite store whose schema it
    knows (``bench``'s default), else ``MlflowClient``. ``BENCH_MLFLOW_CLIENT=1`` forces the
    latter (to compare the two, or if a future MLflow changes what a run row means)."""
    store = _sqlite_path(tracking_uri)
    if store is not None and os.environ.get("BENCH_MLFLOW_CLIENT", "") not in ("1", "true"):
        from harness.mlflow_sqlite import SqliteTracker, UnsupportedStore, schema_problem

        ensure_sqlite_store(store)
        if schema_problem(store) is None:
            try:
                return SqliteTracker(tracking_uri, experiment, artifact_root)
            except UnsupportedStore:  # e.g. an experiment with a remote artifact location
                pass
    return Tracker(tracking_uri, experiment, artifact_root)


class NullTracker(Tracker):
    """Used with ``--no-tracking``: same calls, nothing stored."""

    def __init__(self) -> None:  # noqa: D107 - deliberately skips MLflow setup
        self.parent_id = None
        self.tracking_uri = ""
        self.experiment_id = ""

    def _create_run(self, run_name: str, tags: dict[str, str]) -> str:
        return ""

    def _run_state(self, run_id: str) -> tuple[str, str, dict[str, str]] | None:
        return None

    def _running_children(self, parent_id: str) -> list[str]:
        return []

    def _log_batch(self, run_id: str, params=(), tags=(), metrics=()) -> None:
        pass

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        pass

    def log_table(self, run_id: str, rows: list[dict[str, Any]], artifact_file: str) -> None:
        pass

    def log_image(self, run_id: str, image: Any, artifact_file: str) -> None:
        pass

    def log_dict(self, run_id: str, payload: dict[str, Any], artifact_file: str) -> None:
        pass

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        pass


class TrackingWorker:
    """MLflow calls of one run on a background thread, in order.

    Creating the store (sqlite schema migrations), the parent run and every child run's batch
    run while the evaluation goes on; :meth:`finish` waits for the queue. A tracking failure
    never ends the evaluation: it is kept and reported by :attr:`errors` (and printed by the
    CLI), the records and ``results.json`` are written regardless.

    Args:
        factory: builds the :class:`Tracker` (inside the worker thread; ``None`` = no tracking).
    """

    def __init__(self, factory: Any | None):
        import queue
        import threading

        self.enabled = factory is not None
        self.errors: list[str] = []
        self.parent_id = ""
        self._queue: queue.Queue = queue.Queue()
        self._tracker: Tracker | None = None
        self._factory = factory
        self._thread = threading.Thread(target=self._work, name="mlflow", daemon=True)
        if self.enabled:
            self._thread.start()

    def _work(self) -> None:
        try:
            self._tracker = self._factory()
        except Exception as exc:
            self.errors.append(f"MLflow set-up failed: {type(exc).__name__}: {exc}")
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._tracker is None:
                continue
            try:
                job(self._tracker)
            except Exception as exc:  # keep going: later calls may still succeed
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def submit(self, job: Any) -> None:
        if self.enabled:
            self._queue.put(job)

    # The run layout ------------------------------------------------------------------------------
    def start_parent(self, run_name: str, tags: dict[str, Any], params: dict[str, Any],
                     run_dir: Path | None = None) -> None:
        self.submit(lambda tracker: self._do_start_parent(tracker, run_name, tags, params, run_dir))

    def _do_start_parent(self, tracker: Tracker, run_name: str, tags: dict[str, Any],
                         params: dict[str, Any], run_dir: Path | None = None) -> None:
        """Start the parent run, or continue the one recorded in ``<run_dir>/mlflow_run.json``
        by an earlier attempt of the same run folder (``--resume``), and record its id there."""
        previous = read_mlflow_run(run_dir) if run_dir is not None else None
        resumed = None
        if previous and previous.get("tracking_uri") == tracker.tracking_uri:
            resumed = tracker.resume_parent(previous["run_id"], tags)
        if resumed is None:
            extra = {"resumed_from": previous["run_id"]} if previous else {}
            self.parent_id = tracker.start_parent(run_name, {**tags, **extra}, params)
        else:
            self.parent_id = resumed
        if run_dir is not None:
            write_mlflow_run(run_dir, {"run_id": self.parent_id, "tracking_uri": tracker.tracking_uri,
                                       "experiment_id": tracker.experiment_id})

    def log_pair(self, **kwargs: Any) -> None:
        """One child run with everything about one (restorer, task) pair, in batched calls."""
        self.submit(lambda tracker: self._do_log_pair(tracker, **kwargs))

    def _do_log_pair(self, tracker: Tracker, *, name: str, tags: dict[str, Any],
                     params: dict[str, Any], aggregates: dict[str, Any], rows: list[dict[str, Any]],
                     images: list[tuple[str, Any]]) -> None:
        child = tracker.start_child(name, tags=tags)
        tracker.log_params(child, params)
        tracker.log_aggregates(child, aggregates)
        # MLflow forbids ":" in artifact names; spec-string tasks (synth:...) contain it
        artifact = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
        tracker.log_table(child, rows, f"per_image/{artifact}.json")
        for sample_id, panels in images:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sample_id)
            if isinstance(panels, (list, tuple)):  # tensors: montage here (thread worker)
                from harness.images import montage

                panels = montage(list(panels))
            tracker.log_image(child, panels, f"comparisons/{safe}_lq-out-gt.png")
        tracker.end(child)

    def finish(self, results_file: Path, missing: dict[str, str], status: str) -> None:
        self.submit(lambda tracker: self._do_finish(tracker, results_file, missing, status))
        self.close()

    def _do_finish(self, tracker: Tracker, results_file: Path, missing: dict[str, str],
                   status: str) -> None:
        if self.parent_id:
            tracker.log_artifact(self.parent_id, results_file)
            tracker.log_tags(self.parent_id, {f"missing.{k}": v for k, v in missing.items()})
            tracker.end(self.parent_id, status)

    def close(self) -> None:
        if self.enabled and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


MLFLOW_RUN_FILE = "mlflow_run.json"


def read_mlflow_run(run_dir: Path) -> dict[str, Any] | None:
    """The MLflow parent of a run folder (``mlflow_run.json``), if an attempt recorded one."""
    import json

    path = Path(run_dir) / MLFLOW_RUN_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_mlflow_run(run_dir: Path, payload: dict[str, Any]) -> None:
    import json

    path = Path(run_dir) / MLFLOW_RUN_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    tmp.replace(path)


def _run_logger(jobs: Any, send_result: Any, uri: str, experiment: str, artifact_root: str) -> None:
    """The tracking process: set up MLflow, then execute ``(method, kwargs)`` jobs in order.

    ``jobs()`` returns the next job, ``None`` at the normal end, or raises ``EOFError`` when the
    process that owns the run died (killed, out of memory) before sending the end: then the
    parent run and any open child are marked KILLED, so a dead run never stays RUNNING."""
    errors: list[str] = []
    worker = TrackingWorker(None)  # the run layout methods, executed here synchronously
    tracker = None
    try:
        tracker = retry_busy(open_tracker, uri, experiment, Path(artifact_root))
    except Exception as exc:
        errors.append(f"MLflow set-up failed: {type(exc).__name__}: {exc}")
    while True:
        try:
            job = jobs()
        except EOFError:
            if tracker is not None and worker.parent_id:
                tracker.kill_stale_children(worker.parent_id)
                tracker.end(worker.parent_id, "KILLED")
            return
        if job is None:
            break
        method, kwargs = job
        if tracker is None:
            continue
        try:
            getattr(worker, f"_do_{method}")(tracker, **kwargs)
        except Exception as exc:
            errors.append(f"{method}: {type(exc).__name__}: {exc}")
    send_result({"parent_id": worker.parent_id, "errors": errors})


def _child_main() -> None:
    """``python -m harness.tracking URI EXPERIMENT ARTIFACT_ROOT``: jobs arrive pickled on stdin,
    the outcome leaves pickled on stdout (anything else the libraries print goes to stderr)."""
    import pickle

    jobs_in, result_out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    uri, experiment, artifact_root = sys.argv[1:4]

    def send(outcome: dict[str, Any]) -> None:
        pickle.dump(outcome, result_out)
        result_out.flush()

    _run_logger(lambda: pickle.load(jobs_in), send, uri, experiment, artifact_root)


def _plain(value: Any) -> Any:
    """Builtin types only, so the child unpickles without importing torch or numpy (a
    ``torch.__version__`` tag is a ``TorchVersion``: unpickling it imported torch, 1.2 s)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or type(value) in (bool, int, float, str) or isinstance(value, Path):
        return value
    if isinstance(value, str):  # str subclasses such as TorchVersion
        return str(value)
    if callable(getattr(value, "item", None)):  # numpy / torch scalars, numpy.bool_ included
        try:
            return _plain(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, (int, float)):  # int / float subclasses (IntEnum, ...)
        return float(value) if isinstance(value, float) else int(value)
    return str(value)


class TrackingProcess:
    """The MLflow calls of a ``bench run`` in a child process.

    ``import mlflow`` and opening the store cost 2–5 s of pure-Python work; on a thread that
    work holds the GIL and stalls the evaluation, in a process it runs on another core. The child
    is a plain ``python -m harness.tracking`` (not ``multiprocessing``: its ``spawn`` re-imports
    the caller's ``__main__``, which breaks notebooks, ``python -c`` and unguarded scripts), fed
    pickled jobs through its stdin by a writer thread, so a slow child never blocks the run.
    Only plain data cross (run names, params, aggregates, per-image rows, small PIL images). It
    starts as soon as the run starts, so MLflow is ready when the plan has been checked; nothing
    is created in MLflow unless :meth:`start_parent` is called.
    """

    def __init__(self, uri: str, experiment: str, artifact_root: Path):
        import queue
        import subprocess
        import threading

        self.enabled = True
        self.parent_id = ""
        self.errors: list[str] = []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "harness.tracking", uri, experiment, str(artifact_root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])})
        self._jobs: queue.Queue = queue.Queue()
        self._writer = threading.Thread(target=self._write, name="mlflow-writer", daemon=True)
        self._writer.start()
        self._closed = False

    def _write(self) -> None:
        import pickle

        pipe = self._process.stdin
        while True:
            job = self._jobs.get()
            try:
                pickle.dump(job, pipe)
                pipe.flush()
            except (BrokenPipeError, OSError):
                return
            if job is None:
                return

    def start_parent(self, run_name: str, tags: dict[str, Any], params: dict[str, Any],
                     run_dir: Path | None = None) -> None:
        self._jobs.put(("start_parent", {"run_name": run_name, "tags": _plain(tags),
                                         "params": _plain(params), "run_dir": run_dir}))

    def log_pair(self, **kwargs: Any) -> None:
        from harness.images import montage

        # PIL images cross the queue; tensors would make the child import torch to unpickle them
        images = [(sid, montage(list(panels))) for sid, panels in kwargs.pop("images", [])]
        self._jobs.put(("log_pair", {**_plain(kwargs), "images": images}))

    def finish(self, results_file: Path, missing: dict[str, str], status: str) -> None:
        self._jobs.put(("finish", {"results_file": results_file, "missing": missing, "status": status}))
        self.close()

    def close(self) -> None:
        import pickle

        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._writer.join()
        try:
            self._process.stdin.close()
            outcome = pickle.load(self._process.stdout)
            self.parent_id, self.errors = outcome["parent_id"], outcome["errors"]
        except Exception as exc:  # the process died: say so, the result files are complete
            self.errors.append(f"the MLflow process ended without reporting ({type(exc).__name__})")
        try:
            self._process.wait(timeout=60)
        except Exception:
            self._process.kill()


if __name__ == "__main__":
    _child_main()
