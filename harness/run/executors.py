"""Which executor runs a run: ``--executor local|ray`` → a factory ``(plan, config, hooks)``.

The contract itself (:class:`~harness.run.executor.Executor`, :class:`~harness.run.executor.ExecutorHooks`,
:class:`~harness.run.executor.ExecutorError`) is in :mod:`harness.run.executor`, beside the local
executor. The Ray module is imported only when ``--executor ray`` is chosen, so a local run never
loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.run.executor import Executor, ExecutorHooks, LocalExecutor
from harness.run.plan import Plan

if TYPE_CHECKING:
    from harness.run.ray_executor import RayOptions

EXECUTORS = ("local", "ray")

#: ``(plan, config, hooks) -> Executor``: ``config`` is the run's ``RunConfig``
ExecutorFactory = Callable[[Plan, Any, ExecutorHooks], Executor]


def local_executor(plan: Plan, config: Any, hooks: ExecutorHooks) -> Executor:
    """The default: :class:`~harness.run.executor.LocalExecutor` on the plan's device."""
    return LocalExecutor(plan, hooks)


def executor_factory(kind: str, options: RayOptions | None = None) -> ExecutorFactory:
    """``RunConfig.executor`` for ``--executor KIND``; ValueError for a bad kind or option.
    The Ray module is imported only when ``kind`` is ``ray``."""
    if kind not in EXECUTORS:
        raise ValueError(f"--executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
    if kind == "local":
        return local_executor
    from harness.run.ray_executor import RayExecutor, RayOptions

    opts = options or RayOptions()
    if opts.workers is not None and opts.workers < 1:
        raise ValueError(f"--workers {opts.workers}: give at least 1")
    if opts.gpus_per_worker is not None and opts.gpus_per_worker < 0:
        raise ValueError(f"--gpus-per-worker {opts.gpus_per_worker}: give 0 or more")
    if opts.shard_size is not None and opts.shard_size < 1:
        raise ValueError(f"--shard-size {opts.shard_size}: give at least 1")

    def factory(plan: Plan, config: Any, hooks: ExecutorHooks) -> Executor:
        return RayExecutor(plan, config, opts, hooks)

    return factory
