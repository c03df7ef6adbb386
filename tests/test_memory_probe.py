"""CPU peak memory comes from an untimed probe call per input size, never from the timed call.

Sampling the heap with a thread during the timed call slowed it by 5–18 % (harness.run.timing);
these tests pin that the timed call runs without the sampler, that every record of a size carries
its size's probe figure, and that a task with more sizes than ``MAX_PROBES`` says so instead of
probing every image.
"""

from __future__ import annotations

import pytest
import torch

from harness.api.restorer import Restorer, register_restorer
from harness.api.task import Sample, Task, register_task
from harness.run import executor as executor_module
from harness.run.runner import RunConfig, run_benchmark
from harness.run.timing import HEAP_METHOD, NOT_PROBED, PROBE_MAX_CALLS, PROBE_MIN_CALLS, cpu_method
from tests.probes import in_memory_probe

pytestmark = pytest.mark.skipif(cpu_method() != HEAP_METHOD,
                                reason="needs glibc >= 2.33 (mallinfo2); elsewhere the CPU figure "
                                       "is 'unavailable', tested in test_threads")

#: (sampler alive?, input height) of every restore call, in order
CALLS: list[tuple[bool, int]] = []
SIZES = {"a": 32, "b": 48, "c": 32, "d": 64}


@register_restorer("t-probe-watch")
class ProbeWatch(Restorer):
    description = "test: notes whether the memory sampler runs; holds 8 MB per 32 rows of input"
    warmup = "none"

    def _restore(self, lq: torch.Tensor, meta: dict) -> torch.Tensor:
        CALLS.append((in_memory_probe(), lq.shape[-2]))
        block = torch.ones(lq.shape[-2] // 32 * 2 * 2**20)  # 8 MB per 32 rows, freed on return
        block.add_(1)
        return lq.clone()


@register_task("t-probe-sizes")
class Sizes(Task):
    description = "test: four images of three heights"

    def sample_ids(self) -> list[str]:
        return list(SIZES)

    def load(self, sample_id: str) -> Sample:
        image = torch.full((3, SIZES[sample_id], 40), 0.5)
        return Sample(sample_id, image, image.clone(), {})


def _run(tmp_path) -> list[dict]:
    from harness.io.results import read_samples

    CALLS.clear()
    config = RunConfig(restorers=[("t-probe-watch", {})], tasks=[("t-probe-sizes", {})],
                       device="cpu", metrics=["psnr"], output_dir=tmp_path, tracking=False,
                       save_previews=False, show_progress=False, argv=["test"])
    summary = run_benchmark(config)
    return {r["sample_id"]: r for r in read_samples(summary.run_dir / "samples.jsonl")}


def test_timed_calls_run_without_the_sampler_and_each_size_is_probed_once(tmp_path,
                                                                          one_call_per_image):
    records = _run(tmp_path)
    # probes (sampler alive: at least two calls, more within 0.25 s) before the first
    # timed call of each new height: a, b, d; c (the height of a) is timed without one
    timed = [height for sampling, height in CALLS if not sampling]
    assert timed == [32, 48, 32, 64]
    probes: list[tuple[int, int]] = []  # (height, calls) per run of consecutive probe calls
    prev_sampling = False
    for sampling, height in CALLS:
        if sampling and probes and probes[-1][0] == height and prev_sampling:
            probes[-1] = (height, probes[-1][1] + 1)
        elif sampling:
            probes.append((height, 1))
        prev_sampling = sampling
    assert [h for h, _ in probes] == [32, 48, 64], CALLS
    assert all(PROBE_MIN_CALLS <= n <= PROBE_MAX_CALLS for _, n in probes), CALLS
    peaks = {k: r["peak_mem_mb"] for k, r in records.items()}
    assert peaks["a"] == peaks["c"]  # the same size's figure, reused
    # the 8/16 MB block plus the returned image; the window allows the process's other threads a
    # few small blocks between two heap readings (as in test_threads)
    assert 8 <= peaks["a"] < 8.5 and 16 <= peaks["d"] < 16.5 and 8 <= peaks["b"] < 8.5, peaks
    assert all(r["peak_mem_kind"] == HEAP_METHOD for r in records.values())


def test_sizes_beyond_the_probe_limit_are_reported_not_probed(tmp_path, monkeypatch,
                                                            one_call_per_image):
    monkeypatch.setattr(executor_module, "MAX_PROBES", 2)
    records = _run(tmp_path)
    assert {height for sampling, height in CALLS if sampling} == {32, 48}
    assert records["d"]["peak_mem_mb"] is None and records["d"]["peak_mem_kind"] == NOT_PROBED
    assert records["c"]["peak_mem_mb"] == records["a"]["peak_mem_mb"] is not None


@register_restorer("t-rare-peak")
class RarePeak(Restorer):
    description = "test: holds a 16 MB block on one probe call in five, 1 MB on the others"
    warmup = "none"
    calls = 0

    def _restore(self, lq: torch.Tensor, meta: dict) -> torch.Tensor:
        RarePeak.calls += 1
        mb = 16 if RarePeak.calls % 5 == 3 else 1
        block = torch.ones(mb * 2**18)  # float32: mb MB
        block.add_(1)
        return lq.clone()


def test_the_probe_keeps_the_largest_of_its_calls(tmp_path, one_call_per_image):
    """A sampled peak can only be missed, never invented (the executor quiets its other threads
    first), so the figure is the largest of the probe calls: a peak that one call in five shows
    (as identity's isfinite temporaries, seen by chance) is the figure, not a median that drops it."""
    from harness.io.results import read_samples

    RarePeak.calls = 0
    config = RunConfig(restorers=[("t-rare-peak", {})], tasks=[("t-probe-sizes", {})],
                       device="cpu", metrics=["psnr"], output_dir=tmp_path, tracking=False,
                       save_previews=False, show_progress=False, argv=["test"], limit=1)
    record = read_samples(run_benchmark(config).run_dir / "samples.jsonl")[0]
    assert RarePeak.calls >= 5  # the tiny call is probed many times within the 0.25 s budget
    # 16 MB block + the returned 3x32x40 image (15 KB); the window allows the process's other
    # threads a few small blocks between two heap readings (as above)
    assert 16 <= record["peak_mem_mb"] < 16.5, record["peak_mem_mb"]


#: the seed of every call of t-sleepy
SEEN: list[int] = []


@register_restorer("t-sleepy")
class Sleepy(Restorer):
    description = "test: sleeps `ms` per call, adds seeded noise"
    warmup = "none"

    def __init__(self, ms: float = 0.0):
        super().__init__()
        self.ms = ms

    def _restore(self, lq: torch.Tensor, meta: dict) -> torch.Tensor:
        import time

        SEEN.append(meta["seed"])
        time.sleep(self.ms / 1000)
        return lq + 0.01 * torch.randn(lq.shape, generator=meta["generator"])


def test_short_calls_are_timed_again_with_the_same_seeds_and_the_median_kept(tmp_path):
    """A call under SHORT_CALL_MS measures the core's wake-up as much as the method: it is
    repeated back to back (SHORT_CALL_REPEATS calls in all) with the image's seeds, so the output
    is the one the record scores; a call of 30 ms is timed once."""
    from harness.io.results import read_samples
    from harness.run.timing import SHORT_CALL_REPEATS

    runs = {}
    for ms in (0.0, 30.0):
        SEEN.clear()
        config = RunConfig(restorers=[("t-sleepy", {"ms": ms})], tasks=[("t-probe-sizes", {})],
                           device="cpu", metrics=["psnr"], output_dir=tmp_path / str(ms),
                           tracking=False, save_previews=False, show_progress=False, argv=["t"],
                           limit=2)
        records = read_samples(run_benchmark(config).run_dir / "samples.jsonl")
        runs[ms] = records
        timed = [s for s in SEEN if s != 0]  # seed 0: the memory probes
        calls = SHORT_CALL_REPEATS if ms == 0 else 1
        assert timed == [r["seed"] for r in records for _ in range(calls)]
        assert [r["latency_calls"] for r in records] == [calls] * 2
    assert all(r["latency_ms"] >= 30 for r in runs[30.0])
    # same seeds, same noise: the 0-ms and 30-ms runs score the same
    assert [r["metrics"] for r in runs[0.0]] == [r["metrics"] for r in runs[30.0]]
