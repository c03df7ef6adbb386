"""The Ray executor: the run's units on every GPU (or CPU) of a Ray cluster, same records as local.

``bench run/study/detect --executor ray`` plugs :class:`RayExecutor` into the runner's executor
seam (``RunConfig.executor``, from :func:`harness.run.executors.executor_factory`). Plan and
reducer are unchanged: the driver plans, the workers turn shards into records, and the driver's
reducer alone writes ``samples.jsonl``, ``results.json``, previews, images and MLflow, exactly as
for a local run.

How it works, and why:

* **Workers** are Ray actors (``--workers``, each with ``num_gpus=--gpus-per-worker``). Each one
  builds a :class:`~harness.run.executor.LocalExecutor` over the same plan, rebuilt from its picklable
  parts (restorer specs, task specs, seed, metric names and specs: :func:`plan_parts`); tasks are
  rebuilt with :func:`harness.api.task.build_task`, so the data are read by each worker from the path
  the machines share (``BENCH_DATA_ROOT``) and never shipped. A worker reuses ``LocalExecutor``'s
  own ``load``/``stream``/``evaluate``, so seeding, warm-up, timing (on the worker's device,
  CUDA-synchronised) and scoring are the local code, and a record carries its worker's
  ``device`` and ``host``.
* **Threads and denormals**: each worker runs with the run's thread count (``--threads``, resolved
  on the driver) and denormal mode, set first thing in the actor (before torch's thread pool
  starts, :mod:`harness.io.threads`); metrics are computed by thread-independent code on the
  CPU. Ray reserves ``cpus_per_worker`` (1) CPUs per worker whatever the thread count; a run
  whose workers × threads exceed the cluster's CPUs gets a warning (oversubscribed cores make
  latency meaningless: give ``--threads``). So a worker's records are the records a local run makes
  (``tests/test_ray_executor.py`` checks them bit for bit), whatever Ray's own
  ``OMP_NUM_THREADS`` for the actor says.
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
  and thumbnails already small, images as 8-bit; thumbnails inside the record) and written by
  the driver with the run's own :class:`~harness.run.executor.ExecutorHooks`, so the run folder
  only has to exist on the driver.
* **Announcements**: a worker's restorer info, the metrics it could not build and its warnings
  travel as messages in the same stream and reach the driver's hooks (``on_restorer`` once per
  configuration, ``on_metrics_missing``, ``on_warning``), as a local run's do.
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
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from harness.metrics.suite import get_metric
from harness.run.executor import ExecutorError, ExecutorHooks, Loaded, LocalExecutor
from harness.run.plan import Plan, resolve_device
from harness.run.record import Record, new_record
from harness.run.units import Unit

INSTALL_HINT = "pip install 'restorebench[ray]'  (or: pip install 'ray>=2.9')"


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
        cpus_per_worker: CPUs Ray reserves per actor (each worker runs torch with the run's
            ``threads``, as a local run does, whatever this says).
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


def rebuild_plan(parts: dict[str, Any], device: torch.device) -> Plan:
    """The worker's copy of the plan on its device: tasks rebuilt by name and options (data
    read here); restorers are built when loaded."""
    from harness.api.task import build_task

    for module in parts["modules"]:
        importlib.import_module(module)
    task_objects = {}
    for spec in parts["tasks"]:
        task = build_task(spec.name, **dict(spec.options))
        task.seed = spec.seed
        task_objects[spec.id] = task
    return Plan(parts["restorers"], parts["tasks"], task_objects, [], parts["seed"], parts["metrics"],
                parts["metric_specs"], device)


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
    spec_id, info)`` when a restorer is loaded, ``("suite", task_id, missing)`` when a task's
    metrics are built, ``("warning", text)``, and ``("record", record, extras)`` per image, where
    the record carries its comparison thumbnails and extras what the driver writes (8-bit image,
    previews).
    """

    def __init__(self, parts: dict[str, Any], device_spec: str, n_keep: int, want_images: bool,
                 want_previews: bool, threads: int | None = None, flush_denormal: bool = True):
        from harness.io.threads import configure_timing

        # before anything runs torch in this process: its thread pool inherits the denormal mode
        self.environment = configure_timing(threads, flush_denormal)
        self.plan = rebuild_plan(parts, worker_device(device_spec))
        self.n_keep = n_keep
        self.messages: list[tuple[Any, ...]] = []
        self.extras: dict[str, dict[str, Any]] = {}
        self.kept: dict[tuple[str, str], int] = {}
        self.loaded: Loaded | None = None
        self.executor = LocalExecutor(self.plan, ExecutorHooks(
            save_image=self._capture_image if want_images else None,
            save_previews=self._capture_previews if want_previews else None,
            keep_outputs=self._keep if n_keep > 0 else None,
            on_restorer=lambda spec, info: self.messages.append(("restorer", spec.id, info)),
            on_metrics_missing=lambda task_id, missing: self.messages.append(("suite", task_id, missing)),
            on_warning=self._warn))

    def pid(self) -> int:
        return os.getpid()

    def _warn(self, text: str) -> None:
        self.messages.append(("warning", f"{platform.node()}:{os.getpid()}: {text}"))

    def _capture_image(self, unit: Unit, sample_id: str, out: torch.Tensor) -> None:
        from harness.io.images import to_uint8

        self.extras.setdefault(sample_id, {})["image"] = torch.from_numpy(to_uint8(out)).permute(2, 0, 1)

    def _capture_previews(self, unit: Unit, sample_id: str, lq: torch.Tensor, out: torch.Tensor,
                          gt: torch.Tensor | None) -> None:
        self.extras.setdefault(sample_id, {})["previews"] = (
            _small_u8(lq), _small_u8(out), None if gt is None else _small_u8(gt))

    def _keep(self, unit: Unit, sample_id: str) -> bool:
        count = self.kept.get(unit.key, 0)
        if count < self.n_keep:
            self.kept[unit.key] = count + 1
            return True
        return False

    def run_shard(self, unit: Unit) -> Iterator[tuple[Any, ...]]:
        if self.loaded is None or self.loaded.spec.id != unit.restorer.id:
            self.loaded = None  # one restorer in memory at a time
            if self.plan.device.type == "cuda":
                torch.cuda.empty_cache()
            self.loaded = self.executor.load(unit.restorer)
        yield from self._drain()
        for record in self.executor.stream(self.loaded, [unit]):
            extras = self.extras.pop(record.sample_id, {})
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


@dataclass
class _Dispatch:
    """The state of one ``RayExecutor.run``: what is queued, in flight, received, and how to
    start a replacement worker."""

    ray: Any
    remote: Any
    parts_ref: Any
    gpus: float
    queue: ShardQueue
    max_deaths: int
    jobs: dict[Any, _Job] = field(default_factory=dict)
    received: set[tuple[str, str, str]] = field(default_factory=set)
    deaths_of: dict[tuple[str, str, str], int] = field(default_factory=dict)


class RayExecutor:
    """Runs units on Ray actors (see the module docstring); same contract as LocalExecutor."""

    def __init__(self, plan: Plan, config: Any, options: RayOptions, hooks: ExecutorHooks | None = None):
        self.plan = plan
        self.device_spec = str(getattr(config, "device", None) or plan.device)
        self.hooks = hooks or ExecutorHooks()
        self.n_keep = int(getattr(config, "n_comparisons", 3)) if self.hooks.keep_outputs else 0
        self.threads: int | None = getattr(config, "threads", None)
        self.flush_denormal = bool(getattr(config, "flush_denormal", True))
        self.options = options
        self._announced: set[str] = set()
        self.workers: list[_Worker] = []
        #: what happened, for tests and the benchmark: deaths, re-queued ids, dropped duplicates
        self.stats = {"worker_deaths": 0, "requeued_ids": 0, "duplicates_dropped": 0,
                      "failed_after_deaths": 0, "restorer_loads": 0, "shards": 0}
        #: ``startup_s`` (workers started), ``driver_busy_s`` (the driver's time not spent waiting
        #: for workers: receiving, writing files, the reducer, MLflow hand-off), ``images``
        self.timings: dict[str, float] = {}

    # Starting ------------------------------------------------------------------------------------
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
            parts_ref, self.device_spec, self.n_keep, self.hooks.save_image is not None,
            self.hooks.save_previews is not None, self.threads, self.flush_denormal)
            for _ in range(n)]
        try:
            pids = ray.get([actor.pid.remote() for actor in actors])
        except ray.exceptions.RayActorError as exc:
            for actor in actors:
                ray.kill(actor)
            cause = getattr(exc, "cause", None) or exc
            raise ExecutorError(f"a Ray worker failed to start: {cause}") from exc
        return [_Worker(actor, pid) for actor, pid in zip(actors, pids, strict=True)]

    def _prepare(self, ray: Any, units: list[Unit]) -> _Dispatch:
        """Shards cut, workers sized and started: the state :meth:`run` drives."""
        total = sum(len(u.sample_ids) for u in units)
        n_workers, gpus = self._sizes(ray, total)
        size = self.options.shard_size or max(1, math.ceil(total / (4 * n_workers)))
        queue = ShardQueue(split_units(units, size))
        n_workers = min(n_workers, len(queue))
        cpus = ray.cluster_resources().get("CPU", 0)
        if self.threads and gpus == 0 and n_workers * self.threads > cpus:
            self.hooks.on_warning(f"{n_workers} Ray workers × {self.threads} threads exceed the "
                                  f"cluster's {cpus:g} CPUs: their latencies are inflated "
                                  "(pass --threads or fewer --workers)")
        max_deaths = self.options.max_worker_deaths
        state = _Dispatch(ray, ray.remote(ShardWorker), ray.put(plan_parts(self.plan)), gpus, queue,
                          3 * n_workers if max_deaths is None else max_deaths)
        self.workers = self._start_workers(ray, state.remote, state.parts_ref, gpus, n_workers)
        return state

    # Running ------------------------------------------------------------------------------------
    def run(self, units: list[Unit]) -> Iterator[Record]:
        ray = import_ray()
        if not units:
            return
        started = time.perf_counter()
        shutdown = self._connect(ray)
        try:
            state = self._prepare(ray, units)
            self.timings["startup_s"] = time.perf_counter() - started
            self._wake(state)
            waited = 0.0  # the driver's busy time is the loop's time minus this (and start-up)
            loop_start = time.perf_counter()
            while state.jobs:
                wait_start = time.perf_counter()
                ready, _ = ray.wait(list(state.jobs), num_returns=1)
                waited += time.perf_counter() - wait_start
                yield from self._step(state, state.jobs[ready[0]])
            self.timings["driver_busy_s"] = time.perf_counter() - loop_start - waited
            self.timings["images"] = len(state.received)
        finally:
            for worker in self.workers:
                ray.kill(worker.actor)
            if shutdown:
                ray.shutdown()

    def _dispatch(self, state: _Dispatch, worker: _Worker) -> None:
        """Give ``worker`` its next shard (:meth:`ShardQueue.take`), or mark it idle."""
        on: dict[str, int] = {}
        for other in self.workers:
            if other is not worker and other.current is not None:
                on[other.current] = on.get(other.current, 0) + 1
        unit = state.queue.take(worker.current, on)
        if unit is None:
            worker.busy = False
            return
        if unit.restorer.id != worker.current:
            self.stats["restorer_loads"] += 1
        worker.current, worker.busy = unit.restorer.id, True
        self.stats["shards"] += 1
        stream = worker.actor.run_shard.options(num_returns="streaming").remote(unit)
        state.jobs[stream] = _Job(worker, unit, stream, list(unit.sample_ids))

    def _wake(self, state: _Dispatch) -> None:
        """Give work to every idle worker (re-queued ids can wake one that had none)."""
        for worker in self.workers:
            if not worker.busy:
                self._dispatch(state, worker)

    def _step(self, state: _Dispatch, job: _Job) -> Iterator[Record]:
        """Take the next message of a ready shard: a record, an announcement, its end, or the
        death of its worker (then a replacement starts)."""
        ray = state.ray
        try:
            message = ray.get(next(job.stream))
        except StopIteration:
            del state.jobs[job.stream]
            job.worker.busy = False
            if job.left:  # a shard that ended without all its records: do them again
                state.queue.push_front(replace(job.unit, sample_ids=tuple(job.left)))
            self._wake(state)
            return
        except ray.exceptions.RayTaskError as exc:  # the code failed, not the worker
            raise exc.as_instanceof_cause() from None
        except ray.exceptions.RayActorError as exc:
            del state.jobs[job.stream]
            yield from self._worker_died(state, job, exc)
            replacement = self._start_workers(ray, state.remote, state.parts_ref, state.gpus, 1)[0]
            self.workers[self.workers.index(job.worker)] = replacement
            self._wake(state)
            return
        record = self._receive(message, job, state.received)
        if record is not None:
            yield record

    def _receive(self, message: tuple[Any, ...], job: _Job, received: set[tuple[str, str, str]]
                 ) -> Record | None:
        """Handle one message of a worker; the record to yield, or None."""
        kind = message[0]
        if kind == "restorer":
            _, spec_id, info = message
            if spec_id not in self._announced:
                self._announced.add(spec_id)
                self.hooks.on_restorer(self.plan.restorer(spec_id), info)
            return None
        if kind == "suite":
            self.hooks.on_metrics_missing(message[1], message[2])
            return None
        if kind == "warning":
            self.hooks.on_warning(message[1])
            return None
        _, record, extras = message
        key = (record.restorer_id, record.task_id, record.sample_id)
        if key in received:
            self.stats["duplicates_dropped"] += 1
            return None
        received.add(key)
        if record.sample_id in job.left:
            job.left.remove(record.sample_id)
        self._write_extras(job.unit, record, extras)
        return record

    def _write_extras(self, unit: Unit, record: Record, extras: dict[str, Any]) -> None:
        """What a local run writes beside the record, written here with the run's hooks; the
        comparison thumbnails stay on the record only if the run keeps this image's."""
        hooks, sample_id = self.hooks, record.sample_id
        if "image" in extras and hooks.save_image is not None:
            hooks.save_image(unit, sample_id, _from_u8(extras["image"]))
        if "previews" in extras and hooks.save_previews is not None:
            lq, out, gt = (_from_u8(t) for t in extras["previews"])
            hooks.save_previews(unit, sample_id, lq, out, gt)
        if record.comparison is not None and not (
                hooks.keep_outputs is not None and hooks.keep_outputs(unit, sample_id)):
            record.comparison = None

    def _worker_died(self, state: _Dispatch, job: _Job, exc: BaseException) -> Iterator[Record]:
        """Re-queue what the dead worker had not delivered; fail an image that keeps killing."""
        self.stats["worker_deaths"] += 1
        self.hooks.on_warning(f"Ray worker (pid {job.worker.pid}) died during {job.unit.restorer.label} "
                              f"@ {job.unit.task.label}; {len(job.left)} image(s) re-queued "
                              f"({type(exc).__name__})")
        if self.stats["worker_deaths"] > state.max_deaths:
            raise ExecutorError(f"{self.stats['worker_deaths']} Ray workers died in this run (more "
                                f"than {state.max_deaths}); the last: {exc}") from exc
        left = list(job.left)
        if left:
            key = (job.unit.restorer.id, job.unit.task.id, left[0])  # the image in flight
            state.deaths_of[key] = state.deaths_of.get(key, 0) + 1
            if state.deaths_of[key] >= self.options.max_image_deaths:
                left.pop(0)
                state.received.add(key)
                self.stats["failed_after_deaths"] += 1
                yield self._failed_record(job.unit, key[2], f"WorkerDied: the worker process died "
                                          f"{state.deaths_of[key]} times while restoring this image")
        if left:
            self.stats["requeued_ids"] += len(left)
            state.queue.push_front(replace(job.unit, sample_ids=tuple(left)))

    def _failed_record(self, unit: Unit, sample_id: str, error: str) -> Record:
        """The record of an image no worker survived to write (device and host unknown)."""
        task = self.plan.task_objects[unit.task.id]
        record = new_record(unit, sample_id, run_seed=self.plan.seed,
                            degradation_seed=task.image_seed(sample_id), device="unknown",
                            host="unknown")
        record.fail(error)
        return record


__all__ = ["RayExecutor", "RayOptions", "ShardQueue", "ShardWorker", "import_ray", "plan_parts",
           "rebuild_plan"]
