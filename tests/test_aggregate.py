"""Aggregation: mean, sample std, percentile bootstrap CI, non-finite handling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.run.aggregate import aggregate_records, bootstrap_ci, summarize


def test_summary_matches_numpy_and_ci_brackets_the_mean():
    rng = np.random.default_rng(1)
    values = rng.normal(30.0, 2.0, size=40)
    summary = summarize(values)
    assert summary["mean"] == pytest.approx(values.mean())
    assert summary["std"] == pytest.approx(values.std(ddof=1))
    lo, hi = summary["ci95"]
    assert lo < summary["mean"] < hi
    # a 95% CI of the mean is about ±1.96·std/√n wide
    expected_half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert (hi - lo) / 2 == pytest.approx(expected_half, rel=0.2)
    assert summary["n"] == 40


def test_bootstrap_is_deterministic_and_narrows_with_more_images():
    rng = np.random.default_rng(2)
    small, large = rng.normal(size=10), rng.normal(size=1000)
    assert bootstrap_ci(small) == bootstrap_ci(small)
    width = lambda v: np.subtract(*bootstrap_ci(v)[::-1])
    assert width(large) < width(small)


def test_constant_and_single_values_have_zero_width_interval():
    assert summarize([5.0, 5.0, 5.0])["ci95"] == [5.0, 5.0]
    single = summarize([7.0])
    assert single["std"] == 0.0 and single["ci95"] == [7.0, 7.0] and single["n"] == 1


def test_infinite_psnr_is_counted_apart():
    summary = summarize([30.0, math.inf, 32.0])
    assert summary["mean"] == pytest.approx(31.0)
    assert summary["n"] == 2 and summary["n_nonfinite"] == 1


def test_records_aggregate_by_metric_and_count_failures():
    records = [
        {"status": "ok", "metrics": {"psnr": 20.0}, "latency_ms": 1.0, "peak_mem_mb": 10.0},
        {"status": "ok", "metrics": {"psnr": 22.0}, "latency_ms": 3.0, "peak_mem_mb": 12.0},
        {"status": "failed", "metrics": {}, "error": "boom"},
    ]
    agg = aggregate_records(records)
    assert agg["psnr"]["mean"] == pytest.approx(21.0)
    assert agg["latency_ms"]["mean"] == pytest.approx(2.0)
    assert agg["n_ok"] == 2 and agg["n_failed"] == 1
