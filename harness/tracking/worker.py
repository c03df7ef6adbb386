"""MLflow off the run's thread: a worker thread (``TrackingWorker``) or a child process
(``TrackingProcess``) executes the run layout's calls in order, so that importing MLflow, setting
up the store and every batch overlap the evaluation; ``mlflow_run.json`` ties a run folder to its
MLflow parent for ``--resume``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from harness.tracking.factory import open_tracker
from harness.tracking.store import Tracker, retry_busy


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
                from harness.io.images import montage

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
    """``python -m harness.tracking.worker URI EXPERIMENT ARTIFACT_ROOT``: jobs arrive pickled on stdin,
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
    is a plain ``python -m harness.tracking.worker`` (not ``multiprocessing``: its ``spawn`` re-imports
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
            [sys.executable, "-m", "harness.tracking.worker", uri, experiment, str(artifact_root)],
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
        from harness.io.images import montage

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
