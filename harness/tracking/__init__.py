"""Layer 3 — MLflow. Imports io, api, assets; never metrics.

Modules, one job each:

* :mod:`~harness.tracking.store` — the run layout over ``MlflowClient`` (:class:`Tracker`: one
  parent run per command, one child per (restorer, task)) and the sqlite-store helpers;
* :mod:`~harness.tracking.sqlite` — the same primitives written with the stdlib ``sqlite3`` for
  the local stores ``bench`` creates (no ``import mlflow``);
* :mod:`~harness.tracking.factory` — :func:`open_tracker`: which of the two writes a URI;
* :mod:`~harness.tracking.worker` — :class:`TrackingProcess`, the child process that executes a
  command's calls (:class:`RunLayout`) off the computing process.

The rule for commands: **a command that logs while it computes logs through the child process**
(``bench run``, ``bench train``: :func:`~harness.tracking.worker.open_tracking`), so MLflow's set-up
and every write overlap the computation and a dead command's runs end KILLED; **a command that
logs finished files uses the store directly** (``bench report``; ``bench study``, whose parent
run only wraps the runner's own and receives the tables and figures once they exist:
:func:`~harness.tracking.factory.open_tracker`), because it waits for nothing and needs the parent
run's id at once.
"""
