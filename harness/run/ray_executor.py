"""The Ray executor: the run's units on every GPU (or CPU) of a Ray cluster, same records as local.

``bench run/study/detect --executor ray`` plugs :class:`RayExecutor` into the runner's executor
seam (``RunConfig.executor``). Plan and reducer are unchanged: the driver plans, the workers
turn shards into records, and the driver's reducer alone writes ``samples.jsonl``,
``results.json``, previews, images and MLflow, exactly as for a local run.

How it works, and why:

* **Workers** are Ray actors (``--workers``, each with ``num_gpus=--gpus-per-worker``). Each one
  builds a :class:`~harness.run.executor.LocalExecutor` over the same plan, rebuilt from its picklable
  parts (restorer specs, task specs, seed, metric names and specs: :func:`plan_parts`); tasks are
  rebuilt with :func:`harness.api.task.build_task`, so the data are read by each worker from the path
  the machines share (``BENCH_DATA_ROOT``) and never shipped. A worker reuses ``LocalExecutor``'s
  own ``load``/``stream``/``evaluate``, so seeding, warm-up, timing (on the worker's device,
  CUDA-synchronised) and scoring are the local code, and a record carries its worker's
  ``device`` and ``host``.
* **Shards** stream their records back one by one (a Ray streaming generator per shard, drained
  with ``ray.wait``). A worker keeps its restorer loaded while shards of that configuration
  remain (:class:`ShardQueue`: it takes the next shard of its current restorer; a free worker
  joins the configuration with the most shards left per worker on it), so each restorer is
  loaded about once per worker that runs it.
* **Faults**: when a worker dies (process killed, node lost), the ids of its shard the driver has
  not recorded yet are re-queued on a fresh worker; records already received are never
  recomputed, and a record that arrives twice is dropped (the driver keys records by
  ``(restorer_id, task_id, sample_id)``). An image that was in flight during
  :attr:`RayOptions.max_image_deaths` deaths is recorded as failed, so one image that crashes
  its process cannot stall the run. ``--resume`` works across executors because the reducer
  hands any executor only what ``samples.jsonl`` does not hold yet.
* **Files**: images, previews and comparison thumbnails are computed on the worker (previews
  and thumbnails already small, images as 8-bit) and written by the driver with the runner's own
  callbacks, so the run folder only has to exist on the driver.
* **Dataset-level metrics and params on the driver**: the reducer needs each task's
  :class:`~harness.metrics.suite.MetricSuite` for ``params()``, ``directions()``, ``missing`` and
  ``reduce()``. :class:`ReductionSuite` builds, lazily and on the CPU, only the dataset-level
  metrics (whose ``compute`` reduces the records' states); per-image metrics (LPIPS, NIQE...)
  are declared but never built on the driver, so no metric model is loaded twice, and none on
  the driver's GPU. What a worker could not build (weights missing) is reported by the worker
  and merged into ``missing``.
* **Code on the workers**: on one machine (a local Ray instance or ``ray start --head``), workers
  import the driver's own source folders: the non-site-packages entries of the driver's
  ``sys.path`` go to the actors as ``PYTHONPATH`` (a worktree, a test folder); ``BENCH_*``
  variables travel too. On a real cluster, install restorebench (and any plugin) on every node
  and mount the data and weights at the same paths; see ``docs/cluster.md``.

``import ray`` happens only when a Ray executor runs; without Ray the error names the install
command (``pip install 'restorebench[ray]'``).
"""

from __future__ import annotations

import importlib
import math
import os
import platform
import site
import sys
import sysconfig
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from harness.api.metric import MetricSpec
from harness.metrics.suite import MetricSuite, get_metric
from harness.run.executor import Loaded, LocalExecutor, restorer_seed
from harness.run.plan import Plan
from harness.run.units import RestorerSpec, Unit

INSTALL_HINT = "pip install 'restorebench[ray]'  (or: pip install 'ray>=2.9')"
EXECUTORS = ("local", "ray")


class ExecutorError(RuntimeError):
    """The cluster, not an image, failed: a worker could not start, or too many died."""


def import_ray() -> Any:
    """``ray``, or an ImportError that says how to install it."""
    try:
        import ray
    except ModuleNotFoundError as exc:
        if exc.name != "ray":
            raise
        raise ImportError(f"--executor ray needs Ray, which is not installed here: {INSTALL_HINT}"
                          ) from exc
    return ray


@dataclass
class RayOptions:
    """How the Ray executor connects and sizes its workers.

    Attributes:
        address: ``None`` starts a local Ray instance (or joins the one ``RAY_ADDRESS`` names);
            ``auto`` joins the running cluster; ``HOST:PORT`` joins that head node.
        workers: number of actors; ``None`` = as many as the cluster's GPUs (or CPUs) allow.
        gpus_per_worker: GPUs per actor; ``None`` = 1 when the cluster has GPUs and ``--device``
            is not ``cpu``, else 0.
        cpus_per_worker: CPUs per actor (also its torch thread count under Ray).
        shard_size: images per shard sent to a worker; ``None`` = about four shards per worker
            over the run (small shards balance the end of a run; a shard costs one round trip,
            the restorer stays loaded).
        max_image_deaths: a worker death with the same image in flight this many times records
            that image as failed instead of re-queueing it again.
        max_worker_deaths: worker deaths tolerated in one run (``None``: 3 per worker) before
            the run stops with an error.
        runtime_env: extra Ray ``runtime_env`` for the actors (merged with the env vars above).
        init_kwargs: extra ``ray.init`` arguments when this executor starts or joins Ray.
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
    shard_size: int | None = None
    max_image_deaths: int = 2
    max_worker_deaths: int | None = None
    runtime_env: dict[str, Any] | None = None
    init_kwargs: dict[str, Any] = field(default_factory=dict)


def executor_factory(kind: str, options: RayOptions | None = None) -> Callable[..., Any] | None:
    """``RunConfig.executor`` for ``--executor KIND``: ``None`` (the runner's local default) for
    ``local``, a :class:`RayExecutor` factory for ``ray``. Ray is not imported here."""
    if kind not in EXECUTORS:
        raise ValueError(f"--executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
    if kind == "local":
        return None
    opts = options or RayOptions()
    if opts.workers is not None and opts.workers < 1:
        raise ValueError(f"--workers {opts.workers}: give at least 1")
    if opts.gpus_per_worker is not None and opts.gpus_per_worker < 0:
        raise ValueError(f"--gpus-per-worker {opts.gpus_per_worker}: give 0 or more")
    if opts.shard_size is not None and opts.shard_size < 1:
        raise ValueError(f"--shard-size {opts.shard_size}: give at least 1")

    def factory(plan: Plan, device: torch.device, config: Any, **kw: Any) -> RayExecutor:
        return RayExecutor(plan, device, config, opts, **kw)

    return factory


# What travels to the workers -------------------------------------------------------------------
def plan_parts(plan: Plan) -> dict[str, Any]:
    """The picklable parts of a plan (no task objects, no data): what a worker rebuilds it from,
    plus the modules that registered its restorers, tasks and metrics (so that plugins and
    test-only classes are registered in the worker too)."""
    from harness.api.registries import RESTORERS

    modules = {type(task).__module__ for task in plan.task_objects.values()}
    for spec in plan.restorers:
        target = RESTORERS.get(spec.name)
        modules.add(getattr(target, "__module__", ""))
    for name in plan.metrics or []:
        modules.add(getattr(get_metric(name).build, "__module__", ""))
    return {"restorers": list(plan.restorers), "tasks": list(plan.tasks), "seed": plan.seed,
            "metrics": plan.metrics, "metric_specs": list(plan.metric_specs),
            "modules": sorted(m for m in modules if m and m != "__main__")}


def rebuild_plan(parts: dict[str, Any]) -> Plan:
    """The worker's copy of the plan: tasks rebuilt by name and options (data read here)."""
    from harness.api.task import build_task

    for module in parts["modules"]:
        importlib.import_module(module)
    task_objects = {}
    for spec in parts["tasks"]:
        task = build_task(spec.name, **dict(spec.options))
        task.seed = spec.seed
        task_objects[spec.id] = task
    return Plan(parts["restorers"], parts["tasks"], task_objects, [], parts["seed"], parts["metrics"],
                parts["metric_specs"])


def worker_env() -> dict[str, str]:
    """Env vars for the actors: ``BENCH_*`` and the driver's source folders as ``PYTHONPATH``
    (entries outside site-packages and the standard library; harmless where they do not exist)."""
    skip = {os.path.realpath(p) for p in (*site.getsitepackages(), site.getusersitepackages(),
                                          sysconfig.get_paths()["stdlib"],
                                          sysconfig.get_paths()["platstdlib"])}
    paths = []
    for entry in [os.getcwd() if p == "" else p for p in sys.path]:
        real = os.path.realpath(entry)
        if not os.path.isdir(real) or real in paths or any(
                real == s or real.startswith(s + os.sep) for s in skip):
            continue
        paths.append(real)
    env = {k: v for k, v in os.environ.items() if k.startswith("BENCH_")}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def worker_device(spec: str) -> torch.device:
    """The worker's device for the run's ``--device``: Ray exposes a worker's GPUs as
    ``cuda:0..``, so ``cuda:N`` (an index on the driver's machine) means ``cuda`` here."""
    from harness.run.runner import resolve_device

    return resolve_device("cuda" if spec.startswith("cuda") else spec)


def _small_u8(image: torch.Tensor) -> torch.Tensor:
    """A preview-size 8-bit (3,h,w) copy: the exact pixels ``save_previews`` would write."""
    import numpy as np

    from harness.io.previews import MAX_SIDE, _small

    return torch.from_numpy(np.asarray(_small(image.detach().cpu(), MAX_SIDE)).copy()).permute(2, 0, 1)


def _from_u8(image: torch.Tensor | None) -> torch.Tensor | None:
    """Back to float [0,1]; writing it again rounds to the same 8-bit values."""
    return None if image is None else image.float().div(255.0)


class ShardWorker:
    """The body of one Ray actor: a LocalExecutor that keeps one restorer loaded across shards.

    ``run_shard`` is a generator (a Ray streaming method): it yields messages, ``("restorer",
    spec_id, info, config_hash)`` when a restorer is loaded, ``("suite", task_id, missing)`` when
    a task's metrics are built, ``("warning", text)``, and ``("record", record, extras)`` per
    image, where extras hold what the driver writes (8-bit image, previews, thumbnails).
    """

    def __init__(self, parts: dict[str, Any], device_spec: str, n_keep: int, want_images: bool,
                 want_previews: bool):
        self.plan = rebuild_plan(parts)
        self.device = worker_device(device_spec)
        self.n_keep = n_keep
        self.messages: list[tuple[Any, ...]] = []
        self.extras: dict[str, dict[str, Any]] = {}
        self.kept: dict[tuple[str, str], int] = {}
        self.loaded: Loaded | None = None
        self.suites: set[str] = set()
        self.executor = LocalExecutor(
            self.plan, self.device, on_restorer=self._announce, on_warning=self._warn,
            save_images=self._capture_image if want_images else None,
            save_previews=self._capture_previews if want_previews else None,
            keep_outputs=self._keep if n_keep > 0 else None)

    def pid(self) -> int:
        return os.getpid()

    def _announce(self, spec: RestorerSpec, restorer: Any) -> None:
        self.messages.append(("restorer", spec.id, restorer.info().to_dict(), restorer.config_hash()))

    def _warn(self, text: str) -> None:
        self.messages.append(("warning", f"{platform.node()}:{os.getpid()}: {text}"))

    def _capture_image(self, unit: Unit, sample_id: str, out: torch.Tensor) -> None:
        from harness.io.images import to_uint8

        self.extras.setdefault(sample_id, {})["image"] = torch.from_numpy(to_uint8(out)).permute(2, 0, 1)

    def _capture_previews(self, unit: Unit, sample_id: str, lq: torch.Tensor, out: torch.Tensor,
                          gt: torch.Tensor | None) -> None:
        self.extras.setdefault(sample_id, {})["previews"] = (
            _small_u8(lq), _small_u8(out), None if gt is None else _small_u8(gt))

    def _keep(self, unit: Unit, sample_id: str, record: dict[str, Any]) -> bool:
        count = self.kept.get(unit.key, 0)
        if count < self.n_keep:
            self.kept[unit.key] = count + 1
            return True
        return False

    def run_shard(self, unit: Unit) -> Iterator[tuple[Any, ...]]:
        from harness.io.images import thumbnail

        if self.loaded is None or self.loaded.spec.id != unit.restorer.id:
            self.loaded = None  # one restorer in memory at a time
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.loaded = self.executor.load(unit.restorer)
        if unit.task.id not in self.suites:
            self.suites.add(unit.task.id)
            self.messages.append(("suite", unit.task.id, dict(self.executor.suite(unit.task.id).missing)))
        yield from self._drain()
        for record in self.executor.stream(self.loaded, [unit]):
            sample_id = record["sample_id"]
            extras = self.extras.pop(sample_id, {})
            outputs = self.executor.outputs.pop((unit.restorer.id, unit.task.id, sample_id), None)
            if outputs is not None:
                extras["thumbnails"] = tuple(None if t is None else thumbnail(t) for t in outputs)
            yield from self._drain()
            yield ("record", record, extras)

    def _drain(self) -> Iterator[tuple[Any, ...]]:
        while self.messages:
            yield self.messages.pop(0)


# Scheduling on the driver ----------------------------------------------------------------------
class ShardQueue:
    """Shards grouped by restorer configuration, handed out so that a worker keeps its restorer.

    A worker takes the next shard of the restorer it has loaded; a worker with nothing left of its
    own joins the configuration with the most shards left per worker already on it (plan order
    breaks ties), so loads are spread while the grid is wide and shared when it narrows.
    """

    def __init__(self, units: list[Unit]):
        self.groups: dict[str, deque[Unit]] = {}
        for unit in units:
            self.groups.setdefault(unit.restorer.id, deque()).append(unit)
        self.order = {rid: i for i, rid in enumerate(self.groups)}

    def __len__(self) -> int:
        return sum(len(q) for q in self.groups.values())

    def push_front(self, unit: Unit) -> None:
        self.groups.setdefault(unit.restorer.id, deque()).appendleft(unit)
        self.order.setdefault(unit.restorer.id, len(self.order))

    def take(self, current: str | None, on: dict[str, int]) -> Unit | None:
        """The next shard for a worker holding ``current``; ``on``: workers per restorer id."""
        if current is not None and self.groups.get(current):
            return self.groups[current].popleft()
        left = [rid for rid, queue in self.groups.items() if queue]
        if not left:
            return None
        best = max(left, key=lambda rid: (len(self.groups[rid]) / (1 + on.get(rid, 0)), -self.order[rid]))
        return self.groups[best].popleft()


def split_units(units: list[Unit], size: int) -> list[Unit]:
    """Units cut into shards of at most ``size`` sample ids (records do not depend on shards)."""
    out: list[Unit] = []
    for unit in units:
        ids = list(unit.sample_ids)
        for start in range(0, len(ids), size):
            out.append(replace(unit, sample_ids=tuple(ids[start:start + size])))
    return out


class ReductionSuite(MetricSuite):
    """A task's metrics as the driver needs them: declared (params, directions), dataset-level
    ones built on the CPU (for ``reduce``), per-image ones never built (the workers score them).
    ``missing`` is the union of what the driver and each worker could not build."""

    def __init__(self, names: list[str], conventions: Any, has_gt: bool,
                 extra: list[MetricSpec] | None = None):
        super().__init__(names, conventions, torch.device("cpu"), has_gt, extra,
                         build_kinds=("dataset",))


@dataclass
class _Job:
    """A shard in flight on one worker and the ids of it still unrecorded."""

    worker: _Worker
    unit: Unit
    stream: Any
    left: list[str]


@dataclass
class _Worker:
    actor: Any
    pid: int
    current: str | None = None
    busy: bool = False


class _Announced:
    """What the runner's ``on_restorer`` reads from a restorer, as a worker reported it."""

    def __init__(self, info: dict[str, Any], config_hash: str):
        self._info, self._hash = info, config_hash

    def info(self) -> _Announced:
        return self

    def to_dict(self) -> dict[str, Any]:
        return dict(self._info)

    def config_hash(self) -> str:
        return self._hash


class RayExecutor:
    """Runs units on Ray actors (see the module docstring); same interface as LocalExecutor."""

    def __init__(self, plan: Plan, device: torch.device, config: Any, options: RayOptions, *,
                 save_images: Callable | None = None, save_previews: Callable | None = None,
                 on_restorer: Callable | None = None, on_warning: Callable[[str], None] | None = None,
                 keep_outputs: Callable | None = None):
        self.plan = plan
        self.device = device
        self.device_spec = str(getattr(config, "device", None) or device)
        tracking = getattr(config, "tracking", True)
        self.n_keep = int(getattr(config, "n_comparisons", 3)) if tracking and keep_outputs else 0
        self.options = options
        self.save_images = save_images
        self.save_previews = save_previews
        self.on_restorer = on_restorer
        self.on_warning = on_warning or (lambda message: None)
        self.keep_outputs = keep_outputs
        self.outputs: dict[tuple[str, str, str], tuple[torch.Tensor | None, ...]] = {}
        self._suites: dict[str, ReductionSuite] = {}
        self._announced: set[str] = set()
        self.workers: list[_Worker] = []
        #: what happened, for tests and the benchmark: deaths, re-queued ids, dropped duplicates
        self.stats = {"worker_deaths": 0, "requeued_ids": 0, "duplicates_dropped": 0,
                      "failed_after_deaths": 0, "restorer_loads": 0, "shards": 0}
        #: ``startup_s`` (workers started), ``driver_busy_s`` (the driver's time not spent waiting
        #: for workers: receiving, writing files, the reducer, MLflow hand-off), ``images``
        self.timings: dict[str, float] = {}

    # The reducer's view --------------------------------------------------------------------------
    def suite(self, task_id: str) -> ReductionSuite:
        """The task's metrics for reduction and params, built on the driver's CPU once."""
        if task_id not in self._suites:
            task = self.plan.task_objects[task_id]
            self._suites[task_id] = ReductionSuite(self.plan.metrics or task.default_metrics(),
                                                   task.conventions, task.has_gt,
                                                   extra=self.plan.metric_specs)
        return self._suites[task_id]

    # Running ------------------------------------------------------------------------------------
    def _connect(self, ray: Any) -> bool:
        """Start or join Ray unless this process already did; True when we must shut it down."""
        if ray.is_initialized():
            return False
        kwargs = {"include_dashboard": False, **self.options.init_kwargs}
        ray.init(address=self.options.address, **kwargs)
        return True

    def _sizes(self, ray: Any, n_images: int) -> tuple[int, float]:
        """(workers, GPUs per worker): from the options, else from the cluster's resources."""
        resources = ray.cluster_resources()
        gpus = self.options.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if resources.get("GPU", 0) >= 1 and self.device_spec != "cpu" else 0.0
        if gpus > resources.get("GPU", 0):
            raise ValueError(f"--gpus-per-worker {gpus:g}: the Ray cluster has "
                             f"{resources.get('GPU', 0):g} GPU(s)")
        workers = self.options.workers
        if workers is None:
            cpus = resources.get("CPU", 1) / max(self.options.cpus_per_worker, 1e-9)
            workers = int(resources.get("GPU", 0) // gpus) if gpus > 0 else int(cpus)
        return max(1, min(workers, n_images)), gpus

    def _start_workers(self, ray: Any, remote: Any, parts_ref: Any, gpus: float, n: int) -> list[_Worker]:
        """``n`` actors, started together (each imports torch and builds its plan) and waited
        for: a worker that cannot start (an import error) fails the run here, not mid-way."""
        runtime_env = dict(self.options.runtime_env or {})
        runtime_env["env_vars"] = {**worker_env(), **runtime_env.get("env_vars", {})}
        actors = [remote.options(num_cpus=self.options.cpus_per_worker, num_gpus=gpus, max_restarts=0,
                                 runtime_env=runtime_env).remote(
            parts_ref, self.device_spec, self.n_keep, self.save_images is not None,
            self.save_previews is not None) for _ in range(n)]
        try:
            pids = ray.get([actor.pid.remote() for actor in actors])
        except ray.exceptions.RayActorError as exc:
            for actor in actors:
                ray.kill(actor)
            cause = getattr(exc, "cause", None) or exc
            raise ExecutorError(f"a Ray worker failed to start: {cause}") from exc
        return [_Worker(actor, pid) for actor, pid in zip(actors, pids, strict=True)]

    def run(self, units: list[Unit]) -> Iterator[dict[str, Any]]:
        ray = import_ray()
        if not units:
            return
        started = time.perf_counter()
        shutdown = self._connect(ray)
        try:
            total = sum(len(u.sample_ids) for u in units)
            n_workers, gpus = self._sizes(ray, total)
            size = self.options.shard_size or max(1, math.ceil(total / (4 * n_workers)))
            queue = ShardQueue(split_units(units, size))
            n_workers = min(n_workers, len(queue))
            max_deaths = self.options.max_worker_deaths
            max_deaths = 3 * n_workers if max_deaths is None else max_deaths
            remote = ray.remote(ShardWorker)
            parts_ref = ray.put(plan_parts(self.plan))
            self.workers = self._start_workers(ray, remote, parts_ref, gpus, n_workers)
            self.timings["startup_s"] = time.perf_counter() - started
            received: set[tuple[str, str, str]] = set()
            deaths_of: dict[tuple[str, str, str], int] = {}
            jobs: dict[Any, _Job] = {}

            def dispatch(worker: _Worker) -> None:
                on: dict[str, int] = {}
                for other in self.workers:
                    if other is not worker and other.current is not None:
                        on[other.current] = on.get(other.current, 0) + 1
                unit = queue.take(worker.current, on)
                if unit is None:
                    worker.busy = False
                    return
                if unit.restorer.id != worker.current:
                    self.stats["restorer_loads"] += 1
                worker.current, worker.busy = unit.restorer.id, True
                self.stats["shards"] += 1
                stream = worker.actor.run_shard.options(num_returns="streaming").remote(unit)
                jobs[stream] = _Job(worker, unit, stream, list(unit.sample_ids))

            def wake() -> None:
                """Give work to every idle worker (re-queued ids can wake one that had none)."""
                for worker in self.workers:
                    if not worker.busy:
                        dispatch(worker)

            wake()
            waited = 0.0  # the driver's busy time is the loop's time minus this (and start-up)
            loop_start = time.perf_counter()
            while jobs:
                wait_start = time.perf_counter()
                ready, _ = ray.wait(list(jobs), num_returns=1)
                waited += time.perf_counter() - wait_start
                job = jobs[ready[0]]
                try:
                    message = ray.get(next(job.stream))
                except StopIteration:
                    del jobs[job.stream]
                    job.worker.busy = False
                    if job.left:  # a shard that ended without all its records: do them again
                        queue.push_front(replace(job.unit, sample_ids=tuple(job.left)))
                    wake()
                    continue
                except ray.exceptions.RayTaskError as exc:  # the code failed, not the worker
                    raise exc.as_instanceof_cause() from None
                except ray.exceptions.RayActorError as exc:
                    del jobs[job.stream]
                    yield from self._worker_died(ray, job, exc, queue, deaths_of, received, max_deaths)
                    replacement = self._start_workers(ray, remote, parts_ref, gpus, 1)[0]
                    self.workers[self.workers.index(job.worker)] = replacement
                    wake()
                    continue
                record = self._receive(message, job, received)
                if record is not None:
                    yield record
            self.timings["driver_busy_s"] = time.perf_counter() - loop_start - waited
            self.timings["images"] = len(received)
        finally:
            for worker in self.workers:
                ray.kill(worker.actor)
            if shutdown:
                ray.shutdown()

    def _receive(self, message: tuple[Any, ...], job: _Job, received: set[tuple[str, str, str]]
                 ) -> dict[str, Any] | None:
        """Handle one message of a worker; the record to yield, or None."""
        kind = message[0]
        if kind == "restorer":
            _, spec_id, info, config_hash = message
            if spec_id not in self._announced and self.on_restorer is not None:
                self._announced.add(spec_id)
                self.on_restorer(self.plan.restorer(spec_id), _Announced(info, config_hash))
            return None
        if kind == "suite":
            _, task_id, missing = message
            for name, reason in missing.items():
                self.suite(task_id).missing.setdefault(name, reason)
            return None
        if kind == "warning":
            self.on_warning(message[1])
            return None
        _, record, extras = message
        key = (record["restorer_id"], record["task_id"], record["sample_id"])
        if key in received:
            self.stats["duplicates_dropped"] += 1
            return None
        received.add(key)
        if record["sample_id"] in job.left:
            job.left.remove(record["sample_id"])
        self._write_extras(job.unit, record, extras)
        return record

    def _write_extras(self, unit: Unit, record: dict[str, Any], extras: dict[str, Any]) -> None:
        """What a local run writes beside the record, written here with the runner's callbacks."""
        sample_id = record["sample_id"]
        if "image" in extras and self.save_images is not None:
            self.save_images(unit, sample_id, _from_u8(extras["image"]))
        if "previews" in extras and self.save_previews is not None:
            lq, out, gt = (_from_u8(t) for t in extras["previews"])
            self.save_previews(unit, sample_id, lq, out, gt)
        if "thumbnails" in extras and self.keep_outputs is not None and self.keep_outputs(
                unit, sample_id, record):
            self.outputs[(unit.restorer.id, unit.task.id, sample_id)] = extras["thumbnails"]

    def _worker_died(self, ray: Any, job: _Job, exc: BaseException, queue: ShardQueue,
                     deaths_of: dict[tuple[str, str, str], int], received: set[tuple[str, str, str]],
                     max_deaths: int) -> Iterator[dict[str, Any]]:
        """Re-queue what the dead worker had not delivered; fail an image that keeps killing."""
        self.stats["worker_deaths"] += 1
        self.on_warning(f"Ray worker (pid {job.worker.pid}) died during {job.unit.restorer.label} @ "
                        f"{job.unit.task.label}; {len(job.left)} image(s) re-queued "
                        f"({type(exc).__name__})")
        if self.stats["worker_deaths"] > max_deaths:
            raise ExecutorError(f"{self.stats['worker_deaths']} Ray workers died in this run (more than "
                               f"{max_deaths}); the last: {exc}") from exc
        left = list(job.left)
        if left:
            key = (job.unit.restorer.id, job.unit.task.id, left[0])  # the image in flight
            deaths_of[key] = deaths_of.get(key, 0) + 1
            if deaths_of[key] >= self.options.max_image_deaths:
                left.pop(0)
                received.add(key)
                self.stats["failed_after_deaths"] += 1
                yield self._failed_record(job.unit, key[2], f"WorkerDied: the worker process died "
                                          f"{deaths_of[key]} times while restoring this image")
        if left:
            self.stats["requeued_ids"] += len(left)
            queue.push_front(replace(job.unit, sample_ids=tuple(left)))

    def _failed_record(self, unit: Unit, sample_id: str, error: str) -> dict[str, Any]:
        """The record a local run writes for a failed image (no worker survived to write it)."""
        task = self.plan.task_objects[unit.task.id]
        return {"sample_id": sample_id, "restorer": unit.restorer.label, "restorer_id": unit.restorer.id,
                "task": unit.task.label, "task_id": unit.task.id, "device": "unknown",
                "host": "unknown", "seed": restorer_seed(self.plan.seed, unit.task.id, sample_id),
                "degradation_seed": task.image_seed(sample_id), "metrics": {}, "latency_ms": None,
                "peak_mem_mb": None, "status": "failed", "error": error}


__all__ = ["ExecutorError", "RayExecutor", "RayOptions", "ReductionSuite", "ShardQueue", "ShardWorker",
           "executor_factory", "import_ray", "plan_parts", "rebuild_plan"]
