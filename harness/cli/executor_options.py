"""The executor options shared by ``bench run``, ``bench study`` and ``bench detect``.

Declared once here so the three commands spell and document them alike. Nothing here imports
Ray: ``--executor ray`` only builds a factory; Ray is imported when the run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from harness.run.executors import ExecutorFactory

ExecutorName = Annotated[str, typer.Option(
    "--executor", help="local (this process) or ray (a Ray cluster; pip install 'restorebench[ray]').")]
RayAddress = Annotated[str | None, typer.Option(
    "--ray-address", help="With --executor ray: auto (the running cluster) or HOST:PORT; default: "
                          "start a local Ray instance (or RAY_ADDRESS).")]
GpusPerWorker = Annotated[float | None, typer.Option(
    "--gpus-per-worker", help="With --executor ray: GPUs per worker (default 1 when the cluster has "
                              "GPUs and --device is not cpu, else 0).")]
Workers = Annotated[int | None, typer.Option(
    "--workers", help="With --executor ray: number of workers (default: as many as the GPUs, or "
                      "CPUs, allow).")]
def _check_shard_size(value: int | None) -> int | None:
    """``--shard-size N`` counts samples, so N >= 1 (checked while the options are parsed)."""
    if value is not None and value < 1:
        from harness.cli.common import fail

        fail(f"--shard-size {value}: give a number of samples per unit >= 1, or leave "
             "--shard-size out")
    return value


ShardSize = Annotated[int | None, typer.Option(
    "--shard-size", callback=_check_shard_size,
    help="Split each (restorer, task) pair into units of this many samples, >= 1 (Ray default: "
         "about four shards per worker).")]


def make_executor(executor: str, ray_address: str | None = None, gpus_per_worker: float | None = None,
                  workers: int | None = None, shard_size: int | None = None) -> ExecutorFactory:
    """``RunConfig.executor`` for the options; ValueError for bad values, and for Ray options
    given without ``--executor ray`` (they would be silently ignored). The Ray module is
    imported only for ``--executor ray``."""
    from harness.run.executors import executor_factory

    if executor != "ray":
        if ray_address is not None or gpus_per_worker is not None or workers is not None:
            raise ValueError("--ray-address, --gpus-per-worker and --workers need --executor ray")
        return executor_factory(executor)
    from harness.run.ray_executor import RayOptions

    return executor_factory(executor, RayOptions(address=ray_address, workers=workers,
                                                 gpus_per_worker=gpus_per_worker,
                                                 shard_size=shard_size))
