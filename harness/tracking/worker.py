"""MLflow in a child process: :class:`TrackingProcess` (the front end, in the computing process)
sends the run layout's calls to ``python -m harness.tracking.worker``, where a :class:`RunLayout`
executes them in order on the store :func:`~harness.tracking.factory.open_tracker` picks.
``mlflow_run.json`` ties a run folder to its MLflow parent for ``--resume``.

Which command uses this is the rule in :mod:`harness.tracking`: commands that log while they
compute (``bench run``, ``bench train``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from harness.io.names import safe_name
from harness.tracking.factory import open_tracker
from harness.tracking.store import HTTP_LIMITS, Tracker, retry_busy

MLFLOW_RUN_FILE = "mlflow_run.json"


def read_mlflow_run(run_dir: Path) -> dict[str, Any] | None:
    """The MLflow parent of a run folder (``mlflow_run.json``), if an attempt recorded one."""
    return read_mlflow_record(Path(run_dir) / MLFLOW_RUN_FILE)


def write_mlflow_run(run_dir: Path, payload: dict[str, Any]) -> None:
    write_mlflow_record(Path(run_dir) / MLFLOW_RUN_FILE, payload)


def read_mlflow_record(path: Path) -> dict[str, Any] | None:
    """A parent-run record (``{run_id, tracking_uri, experiment_id}``) at ``path``, if any."""
    import json

    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) and payload.get("run_id") else None


def write_mlflow_record(path: Path, payload: dict[str, Any]) -> None:
    import json

    from harness.io.safefiles import write_atomic

    write_atomic(Path(path), json.dumps(payload, indent=2))


class RunLayout:
    """The calls a command makes on its MLflow parent run, executed on one store.

    It lives in the tracking child (:func:`_run_logger`), which calls the methods named in
    :data:`JOBS` in the order the front end sent them; it keeps the parent run's id between them.
    """

    JOBS = ("start_parent", "log_pair", "log_steps", "finish")

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.parent_id = ""

    def start_parent(self, run_name: str, tags: dict[str, Any], params: dict[str, Any],
                     run_dir: Path | None = None, record: Path | None = None) -> None:
        """Start the parent run, or continue the one recorded in ``<run_dir>/mlflow_run.json``
        by an earlier attempt of the same run folder (``--resume``), and record its id there.
        ``record`` names the record file itself instead (``bench train`` keeps one per checkpoint)."""
        tracker = self.tracker
        if record is None and run_dir is not None:
            record = Path(run_dir) / MLFLOW_RUN_FILE
        previous = read_mlflow_record(record) if record is not None else None
        resumed = None
        if previous and previous.get("tracking_uri") == tracker.tracking_uri:
            resumed = tracker.resume_parent(previous["run_id"], tags)
        if resumed is None:
            extra = {"resumed_from": previous["run_id"]} if previous else {}
            self.parent_id = tracker.start_parent(run_name, {**tags, **extra}, params)
        else:
            self.parent_id = resumed
        if record is not None:
            write_mlflow_record(record, {"run_id": self.parent_id, "tracking_uri": tracker.tracking_uri,
                                         "experiment_id": tracker.experiment_id})

    def log_pair(self, *, name: str, tags: dict[str, Any], params: dict[str, Any],
                 aggregates: dict[str, Any], rows: list[dict[str, Any]],
                 images: list[tuple[str, Any]], identity: dict[str, Any] | None = None) -> None:
        """One child run with everything about one (restorer, task) pair, in batched calls;
        ``images`` are ``(sample id, PIL montage)``. With ``identity`` (tags naming the pair;
        ``--resume`` of a pair an earlier attempt completed), nothing is logged if the parent
        already has that pair's FINISHED child; an unfinished one is replaced. A child whose
        logging fails is ended FAILED, not left RUNNING."""
        tracker = self.tracker
        if identity is not None and tracker.finished_child(self.parent_id, identity):
            return
        child = tracker.start_child(name, tags=tags)
        try:
            tracker.log_params(child, params)
            tracker.log_aggregates(child, aggregates)
            tracker.log_table(child, rows, f"per_image/{safe_name(name)}.json")
            for sample_id, montage in images:
                tracker.log_image(child, montage, f"comparisons/{safe_name(sample_id)}_lq-out-gt.png")
        except BaseException:
            _quietly(tracker.end, child, "FAILED")
            raise
        tracker.end(child)

    def log_steps(self, rows: list[tuple[int, dict[str, float]]]) -> None:
        """Step-indexed metrics on the parent run (training curves)."""
        self.tracker.log_metric_steps(self.parent_id, rows)

    def finish(self, artifact: Path | None, missing: dict[str, str], status: str,
               reason: str | None = None, tags: dict[str, Any] | None = None) -> None:
        """Attach ``artifact`` (``results.json``, a checkpoint's sidecar), tag the missing
        metrics (and ``tags``) and end the parent run with ``status``. A run that did not finish tags its
        ``failure_reason`` and ends its open children with the same status; each step is tried
        even if an earlier one failed (a full disk), so that the runs never stay RUNNING."""
        if not self.parent_id:
            return
        tracker, errors = self.tracker, []
        if artifact is not None and Path(artifact).exists():
            errors.append(_quietly(tracker.log_artifact, self.parent_id, artifact))
        tags = {**(tags or {}), **{f"missing.{k}": v for k, v in missing.items()}}
        if reason:
            tags["failure_reason"] = reason
        errors.append(_quietly(tracker.log_tags, self.parent_id, tags))
        if status != "FINISHED":
            errors.append(_quietly(tracker.kill_stale_children, self.parent_id, status))
        errors.append(_quietly(tracker.end, self.parent_id, status))
        failed = [e for e in errors if e is not None]
        if failed:
            raise failed[0]

    def kill(self) -> None:
        """The computing process died: mark the parent and any open child KILLED."""
        if self.parent_id:
            self.tracker.kill_stale_children(self.parent_id)
            self.tracker.end(self.parent_id, "KILLED")


def _quietly(call: Any, *args: Any) -> Exception | None:
    """Call; return the exception instead of raising it (best-effort clean-up steps)."""
    try:
        call(*args)
    except Exception as exc:
        return exc
    return None


def _run_logger(jobs: Any, send_result: Any, uri: str, experiment: str, artifact_root: str) -> None:
    """The tracking process: set up MLflow, then execute ``(method, kwargs)`` jobs in order.

    ``jobs()`` returns the next job, ``None`` at the normal end, or raises ``EOFError`` when the
    process that owns the run died (killed, out of memory) before sending the end: then the
    parent run and any open child are marked KILLED, so a dead run never stays RUNNING. A
    tracking failure never ends the computation: it is kept and reported with the outcome."""
    errors: list[str] = []
    layout = None
    try:
        layout = RunLayout(retry_busy(open_tracker, uri, experiment, Path(artifact_root)))
    except Exception as exc:
        errors.append(f"MLflow set-up failed: {type(exc).__name__}: {exc}")
    while True:
        try:
            job = jobs()
        except EOFError:
            if layout is not None:
                layout.kill()
            return
        if job is None:
            break
        method, kwargs = job
        if layout is None:
            continue
        if method not in RunLayout.JOBS:
            errors.append(f"{method}: not a tracking job")
            continue
        try:
            getattr(layout, method)(**kwargs)
        except Exception as exc:  # keep going: later calls may still succeed
            errors.append(f"{method}: {type(exc).__name__}: {exc}")
    send_result({"parent_id": layout.parent_id if layout else "", "errors": errors})


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
    """The MLflow calls of one command in a child process (``bench run``, ``bench train``).

    ``import mlflow`` and opening the store cost 2–5 s of pure-Python work; on a thread that
    work holds the GIL and stalls the computation, in a process it runs on another core. The child
    is a plain ``python -m harness.tracking.worker`` (not ``multiprocessing``: its ``spawn`` re-imports
    the caller's ``__main__``, which breaks notebooks, ``python -c`` and unguarded scripts), fed
    pickled jobs through its stdin by a writer thread, so a slow child never blocks the caller.
    The caller pickles each job, and the written bytes go back to it to be freed at
    :meth:`settle`: the writer thread only writes (the GIL released), so it neither allocates nor
    frees while the executor probes a restorer's heap (a pickled preview montage, allocated on
    that thread during a probe, added 0.6-1.1 MB to identity's 1.5 MB; freed there, it subtracted).
    Only plain data cross (run names, params, aggregates, per-image rows, small PIL images). It
    starts as soon as the command starts, so MLflow is ready when the plan has been checked;
    nothing is created in MLflow unless :meth:`start_parent` is called. :attr:`parent_id` and
    :attr:`errors` are known after :meth:`close`.
    """

    enabled = True

    def __init__(self, uri: str, experiment: str, artifact_root: Path):
        import queue
        import subprocess
        import threading

        self.parent_id = ""
        self.errors: list[str] = []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "harness.tracking.worker", uri, experiment, str(artifact_root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**HTTP_LIMITS, **os.environ, "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])})
        self._jobs: queue.Queue[tuple[bytes, bool]] = queue.Queue()
        self._written: list[bytes] = []  # freed by the caller (settle), never by the writer
        self._writer = threading.Thread(target=self._write, name="mlflow-writer", daemon=True)
        self._writer.start()
        self._closed = False

    def _put(self, job: tuple[str, dict[str, Any]] | None) -> None:
        import pickle

        self.settle()
        try:
            data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # MLflow misses this call; the result files hold everything
            self.errors.append(f"{job[0] if job else 'close'}: not sent to MLflow "
                               f"({type(exc).__name__}: {exc})")
            return
        self._jobs.put((data, job is None))

    def _write(self) -> None:
        pipe = self._process.stdin
        while True:
            data, last = self._jobs.get()
            try:
                pipe.write(data)
                pipe.flush()
            except (BrokenPipeError, OSError):
                return
            finally:
                self._written.append(data)
            del data
            if last:
                return

    def settle(self) -> None:
        """Free the jobs written so far (on the caller's thread: see the class docstring)."""
        del self._written[:]

    def start_parent(self, run_name: str, tags: dict[str, Any], params: dict[str, Any],
                     run_dir: Path | None = None, record: Path | None = None) -> None:
        """See :meth:`RunLayout.start_parent`."""
        self._put(("start_parent", {"run_name": run_name, "tags": _plain(tags),
                                         "params": _plain(params), "run_dir": run_dir,
                                         "record": record}))

    def log_pair(self, **kwargs: Any) -> None:
        """See :meth:`RunLayout.log_pair`; ``images`` are ``(sample id, panels)``, joined here."""
        from harness.io.images import montage

        # PIL images cross the queue; tensors would make the child import torch to unpickle them
        images = [(sid, montage(list(panels))) for sid, panels in kwargs.pop("images", [])]
        self._put(("log_pair", {**_plain(kwargs), "images": images}))

    def log_steps(self, rows: list[tuple[int, dict[str, float]]]) -> None:
        """See :meth:`RunLayout.log_steps`."""
        if rows:
            self._put(("log_steps", {"rows": _plain(rows)}))

    def finish(self, artifact: Path | None, missing: dict[str, str], status: str,
               reason: str | None = None, tags: dict[str, Any] | None = None) -> None:
        """See :meth:`RunLayout.finish`; then :meth:`close`."""
        self._put(("finish", {"artifact": artifact, "missing": _plain(missing),
                                   "status": status, "reason": reason, "tags": _plain(tags or {})}))
        self.close()

    def close(self) -> None:
        """Wait for the child to execute every job and report the parent id and the errors."""
        import pickle

        if self._closed:
            return
        self._closed = True
        self._put(None)
        self._writer.join()
        self.settle()
        try:
            self._process.stdin.close()
            outcome = pickle.load(self._process.stdout)
            self.parent_id = outcome["parent_id"]
            self.errors = [*self.errors, *outcome["errors"]]
        except Exception as exc:  # the process died: say so, the result files are complete
            self.errors.append(f"the MLflow process ended without reporting ({type(exc).__name__})")
        try:
            self._process.wait(timeout=60)
        except Exception:
            self._process.kill()


class NoTracking:
    """:class:`TrackingProcess`'s interface doing nothing (``--no-tracking``)."""

    enabled = False
    parent_id = ""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def start_parent(self, *args: Any, **kwargs: Any) -> None:
        """Nothing is logged."""

    def log_pair(self, **kwargs: Any) -> None:
        """Nothing is logged."""

    def log_steps(self, rows: list[tuple[int, dict[str, float]]]) -> None:
        """Nothing is logged."""

    def finish(self, artifact: Path | None, missing: dict[str, str], status: str,
               reason: str | None = None, tags: dict[str, Any] | None = None) -> None:
        """Nothing is logged."""

    def settle(self) -> None:
        """Nothing was written."""

    def close(self) -> None:
        """Nothing to wait for."""


def open_tracking(enabled: bool, uri: str, experiment: str,
                  artifact_root: Path) -> TrackingProcess | NoTracking:
    """The tracking front end of a long-running command: a child process, or nothing."""
    return TrackingProcess(uri, experiment, artifact_root) if enabled else NoTracking()


if __name__ == "__main__":
    _child_main()
