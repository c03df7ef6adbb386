"""One MLflow run per training, across resumes.

The tracking child process (:mod:`harness.tracking.worker`) starts the parent run, or continues
the one named in a record file, and writes the run it logs to into that file:
``<out>.mlflow.json`` beside the checkpoint. :class:`RunRecord` is the training's side of it: before
the tracker starts it writes the run the checkpoint stored (the checkpoint is the authority: it
travels with the weights), and at each checkpoint it reads back the run the child confirmed, which
the loop stores in the checkpoint's training state. A run that is not in the store (another
``--tracking-uri``, a deleted run, another experiment) is not continued: the child starts a new
one tagged ``resumed_from`` the old id.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from harness.tracking.worker import read_mlflow_record, write_mlflow_record


def record_path(out: Path) -> Path:
    """The record file of the checkpoint ``out``."""
    out = Path(out)
    return out.with_name(f"{out.name}.mlflow.json")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


class RunRecord:
    """The record file of one training (see the module docstring)."""

    #: how long the first checkpoint waits for the tracking child to name its run (it imports
    #: nothing heavy for a local sqlite store: usually well under a second)
    FIRST_WAIT_S = 30.0

    def __init__(self, out: Path, enabled: bool):
        self.path = record_path(out)
        self.enabled = enabled
        self._own: tuple[int, int] | None = None
        self._confirmed: dict[str, Any] | None = None
        self._waited = False

    def prepare(self, stored: dict[str, Any] | None, resumed: bool) -> None:
        """Before the tracker starts: name the run to continue. ``stored`` is the checkpoint's
        record; a resumed checkpoint without one (killed before the child answered, or written
        before runs were recorded) keeps the file's; a new training removes any stale file."""
        if not self.enabled:
            return
        if stored and stored.get("run_id"):
            write_mlflow_record(self.path, dict(stored))
        elif not resumed:
            self.path.unlink(missing_ok=True)
        self._own = _stamp(self.path)

    def confirmed(self) -> dict[str, Any] | None:
        """The run the tracking child logs to, once it has written it (None before, or with
        tracking off). The first call waits up to :attr:`FIRST_WAIT_S` for it, so the first
        checkpoint stores the run id."""
        if not self.enabled or self._confirmed is not None:
            return self._confirmed
        deadline = time.monotonic() + (0.0 if self._waited else self.FIRST_WAIT_S)
        self._waited = True
        while True:
            stamp = _stamp(self.path)
            if stamp is not None and stamp != self._own:
                self._confirmed = read_mlflow_record(self.path)
                if self._confirmed is not None:
                    return self._confirmed
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def open_training_run(trainer: Any, start: int, record: RunRecord) -> Any:
    """The training's MLflow run, logged by the tracking child process: a new run, or the
    record's run continued (its params are not re-logged: MLflow params are immutable)."""
    from harness.io.results import git_hash
    from harness.tracking.store import check_reachable, default_tracking_uri, training_run_name
    from harness.tracking.worker import open_tracking

    config = trainer.config
    uri = config.tracking_uri or default_tracking_uri(config.output_dir)
    if config.tracking:
        check_reachable(uri)
    tracker = open_tracking(config.tracking, uri, config.experiment,
                            Path(config.output_dir) / "mlartifacts")
    tracker.start_parent(training_run_name(trainer.spec.label, trainer.train_spec),
                         params=trainer.params(start),
                         tags={"kind": "train", "git_hash": git_hash(), "argv": " ".join(config.argv)},
                         record=record.path if record.enabled else None)
    return tracker
