"""Per-metric aggregation: mean, std, bootstrap 95% confidence interval, n.

Averages are per image (per block for SIDD), then the mean, as every reference repository does.
The CI is a percentile bootstrap over images (lm-eval reports a bootstrap stderr the same way);
it is seeded so that the same records always give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci(values: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; a single value gives a zero-width interval."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return (math.nan, math.nan)
    if data.size == 1:
        return (float(data[0]), float(data[0]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, size=(resamples, data.size))
    means = data[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def summarize(values: Sequence[float]) -> dict[str, object]:
    """``{mean, std, ci95: [lo, hi], n}``; std is the sample std (ddof=1), 0 for one value.

    Non-finite values (inf PSNR of identical images) are kept out and counted in ``n_nonfinite``.
    """
    data = np.asarray(values, dtype=np.float64)
    finite = data[np.isfinite(data)]
    n = int(finite.size)
    out: dict[str, object] = {
        "mean": float(finite.mean()) if n else math.nan,
        "std": float(finite.std(ddof=1)) if n > 1 else 0.0 if n == 1 else math.nan,
        "ci95": list(bootstrap_ci(finite)),
        "n": n,
    }
    if finite.size != data.size:
        out["n_nonfinite"] = int(data.size - finite.size)
    return out


def aggregate_records(records: Sequence[dict]) -> dict[str, object]:
    """Aggregate ``samples.jsonl`` records of one (restorer, task): metrics plus latency/memory."""
    ok = [r for r in records if r.get("status") == "ok"]
    by_metric: dict[str, list[float]] = {}
    for record in ok:
        for name, value in record.get("metrics", {}).items():
            by_metric.setdefault(name, []).append(value)
        for key in ("latency_ms", "peak_mem_mb"):
            if record.get(key) is not None:
                by_metric.setdefault(key, []).append(record[key])
    result: dict[str, object] = {name: summarize(vals) for name, vals in sorted(by_metric.items())}
    # a metric that could not be scored on some images says on how many and why: the reason of
    # the smallest sample id, so that record order (shards, resume) never changes the result
    reasons: dict[str, tuple[str, str]] = {}
    for record in ok:
        for name, reason in record.get("metric_errors", {}).items():
            entry = result.setdefault(name, summarize([]))
            assert isinstance(entry, dict)
            entry["n_not_computed"] = int(entry.get("n_not_computed", 0)) + 1
            first = (str(record["sample_id"]), reason)
            reasons[name] = min(reasons.get(name, first), first)
    for name, (sample_id, reason) in reasons.items():
        result[name]["not_computed"] = f"{sample_id}: {reason}"  # type: ignore[index]
    memory = result.get("peak_mem_mb")
    if isinstance(memory, dict):  # a per-run property, not a sample: no CI; the worst image too
        memory["ci95"] = [None, None]
        memory["max"] = float(max(by_metric["peak_mem_mb"]))
        kinds = {r.get("peak_mem_kind") for r in ok if r.get("peak_mem_kind")}
        if kinds:
            memory["kind"] = ", ".join(sorted(kinds))
    result["n_ok"] = len(ok)
    result["n_failed"] = sum(1 for r in records if r.get("status") == "failed")
    return result
