"""Paired comparison of two restorers on one task, image by image.

Leaderboard CIs overlap far more often than the restorers are indistinguishable: both saw the
same images, and image difficulty dominates the per-image variance. Pairing removes it. For each
metric, on the images both restorers scored (finite values only):

* **mean difference** ``A − B`` with a percentile bootstrap 95% CI of the mean of the per-image
  differences (``scipy.stats.bootstrap``, seeded, the same method as the leaderboard's CIs);
* **p-values**: a paired permutation test (random sign flips of the differences; exact when
  ``2**n`` is at most the resample count, i.e. n ≤ 13 at the default) and the Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon``). Identical inputs give p = 1 for both;
* **A better on** the fraction of images where A beats B *in the metric's direction*; ties are
  counted apart. With an unknown direction no winner is named.

Differences are always ``A − B`` in the metric's own units, whatever its direction.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

RESAMPLES = 9999


@dataclass
class PairedResult:
    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_lo: float
    ci_hi: float
    p_permutation: float
    p_wilcoxon: float
    wins: int
    ties: int
    losses: int
    lower_better: bool | None

    @property
    def frac_a_better(self) -> float | None:
        if self.lower_better is None or self.n == 0:
            return None
        return self.wins / self.n


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_stats(a: Any, b: Any, lower_better: bool | None, *, resamples: int = RESAMPLES,
                 seed: int = 0, metric: str = "") -> PairedResult:
    """Statistics of paired samples ``a[i]`` vs ``b[i]`` (same length, finite values)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples need equal 1-D shapes, got {x.shape} and {y.shape}")
    n = int(x.size)
    if n == 0:
        nan = math.nan
        return PairedResult(metric, 0, nan, nan, nan, nan, nan, nan, nan, 0, 0, 0, lower_better)
    d = x - y
    diff = float(d.mean())
    if n == 1 or np.all(d == d[0]):
        lo = hi = diff  # every resample has the same mean; scipy would warn of a degenerate CI
    else:
        ci = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=resamples,
                             method="percentile", rng=np.random.default_rng(seed)).confidence_interval
        lo, hi = float(ci.low), float(ci.high)
    if np.all(d == 0):
        p_perm = p_wil = 1.0  # no difference at all: no evidence against equality
    elif n == 1:
        p_perm = p_wil = math.nan  # one pair: no test is defined (scipy refuses one observation)
    else:
        p_perm = float(stats.permutation_test(
            (x, y), _mean_diff, permutation_type="samples", vectorized=True, n_resamples=resamples,
            alternative="two-sided", rng=np.random.default_rng(seed)).pvalue)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # small-n normal approximation notes
            p_wil = float(stats.wilcoxon(x, y).pvalue)
    if lower_better is None:
        wins = losses = 0
    else:
        wins = int(np.sum(d < 0)) if lower_better else int(np.sum(d > 0))
        losses = int(np.sum(d > 0)) if lower_better else int(np.sum(d < 0))
    ties = int(np.sum(d == 0))
    return PairedResult(metric, n, float(x.mean()), float(y.mean()), diff, lo, hi, p_perm, p_wil,
                        wins, ties, losses, lower_better)


def _values(records: list[dict[str, Any]], metric: str) -> dict[str, float]:
    """sample_id → finite value of ``metric`` (quality metrics, latency and memory alike)."""
    out: dict[str, float] = {}
    for record in records:
        if record.get("status") != "ok":
            continue
        value = record.get("metrics", {}).get(metric, record.get(metric))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[str(record["sample_id"])] = float(value)
    return out


def compare_records(records_a: list[dict[str, Any]], records_b: list[dict[str, Any]],
                    metrics: list[str], directions: dict[str, bool | None], *,
                    resamples: int = RESAMPLES, seed: int = 0) -> list[PairedResult]:
    """One :class:`PairedResult` per metric, over the sample ids both sides scored."""
    results = []
    for metric in metrics:
        va, vb = _values(records_a, metric), _values(records_b, metric)
        common = [sid for sid in va if sid in vb]
        results.append(paired_stats([va[s] for s in common], [vb[s] for s in common],
                                    directions.get(metric), resamples=resamples, seed=seed,
                                    metric=metric))
    return results


def metrics_of(records: list[dict[str, Any]]) -> list[str]:
    """Per-image metrics present in the records, then latency and memory."""
    names: list[str] = []
    for record in records:
        names += [k for k in record.get("metrics", {}) if k not in names]
    return names + [m for m in ("latency_ms", "peak_mem_mb")
                    if any(isinstance(r.get(m), (int, float)) for r in records)]


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"


def result_frame(results: list[PairedResult], a: str, b: str) -> pd.DataFrame:
    """Display table: one row per metric."""
    rows = []
    for r in results:
        frac = r.frac_a_better
        rows.append({
            "metric": r.metric + ("" if r.lower_better is None else " ↓" if r.lower_better else " ↑"),
            "n": r.n, f"mean {a}": _fmt(r.mean_a), f"mean {b}": _fmt(r.mean_b),
            "Δ (A−B)": _fmt(r.diff), "95% CI": f"[{_fmt(r.ci_lo)}, {_fmt(r.ci_hi)}]",
            "p (perm.)": _fmt(r.p_permutation, 3), "p (Wilcoxon)": _fmt(r.p_wilcoxon, 3),
            "A better": "direction unknown" if frac is None else
            f"{frac:.0%} ({r.wins}/{r.n}, {r.ties} tie{'s' if r.ties != 1 else ''})"})
    return pd.DataFrame(rows)


def result_records(results: list[PairedResult], a: str, b: str, task: str) -> pd.DataFrame:
    """Numeric table for CSV."""
    return pd.DataFrame([{"a": a, "b": b, "task": task, **asdict(r), "frac_a_better": r.frac_a_better}
                         for r in results])
