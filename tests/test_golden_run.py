"""A fixed run whose output is pinned across refactors of the harness.

``tests/data/golden_run.json`` was written by ``python -m tests.golden_run`` from the code before
the harness was split into layers; the same command must give the same records, aggregates and
MLflow structure after it (and after any later change that claims not to change results).

Metric values are compared as floats with a relative tolerance of 1e-6: on the machine that made
the file they are bit-identical (the restructure was checked with ``==`` on the ``repr``), but
PSNR/SSIM are float32 reductions whose last bits depend on the CPU's kernels (AVX2 vs AVX-512)
and NIQE amplifies such differences through a covariance inverse (~1e-4 relative at most on the
test images: see ``test_metrics_fast.py``), so a portable test bounds them: 64 float32 ulps
(64 × 1.2e-7 ≈ 7.6e-6) for PSNR / SSIM and 1e-3 relative for NIQE. Everything else (names,
statuses, seeds, params, artifact paths, counts) must be equal.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import golden_run  # tests/ is on sys.path (pytest rootdir conftest)
import pytest

GOLDEN = Path(__file__).parent / "data" / "golden_run.json"
PARAM_IGNORED_PREFIXES = ("versions.", "niqe.impl")
RELATIVE = {"niqe": 1e-3}
FLOAT32_RELATIVE = 64 * 1.2e-7


def _close(name: str, a: float, b: float) -> bool:
    tol = next((t for prefix, t in RELATIVE.items() if name.startswith(prefix)), FLOAT32_RELATIVE)
    return math.isclose(a, b, rel_tol=tol, abs_tol=1e-9)


def _compare(path: str, want, got, problems: list[str]) -> None:
    if isinstance(want, dict) and isinstance(got, dict):
        if set(want) != set(got):
            problems.append(f"{path}: keys {sorted(set(want) ^ set(got))} differ")
        for key in set(want) & set(got):
            _compare(f"{path}.{key}", want[key], got[key], problems)
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for index, (a, b) in enumerate(zip(want, got, strict=True)):
            _compare(f"{path}[{index}]", a, b, problems)
    elif isinstance(want, float | int) and isinstance(got, float | int) and not isinstance(want, bool):
        if not _close(path.rsplit(".", 2)[-2] if "." in path else path, float(want), float(got)):
            problems.append(f"{path}: {want!r} != {got!r}")
    elif isinstance(want, str) and isinstance(got, str) and path.split(".")[-2:-1] == ["metrics"]:
        if not _close(path.rsplit(".", 1)[-1], float(want), float(got)):  # record values as repr
            problems.append(f"{path}: {want} != {got}")
    elif want != got:
        problems.append(f"{path}: {want!r} != {got!r}")


def _drop_volatile(summary: dict) -> dict:
    for run in [summary["mlflow"]["parent"], *summary["mlflow"]["children"].values()]:
        run["params"] = {k: v for k, v in run["params"].items()
                         if not k.startswith(PARAM_IGNORED_PREFIXES)}
    return summary


@pytest.mark.data
def test_the_fixed_run_gives_the_pinned_records_aggregates_and_mlflow_structure(with_data, tmp_path):
    want = _drop_volatile(json.loads(GOLDEN.read_text()))
    got = _drop_volatile(golden_run.summary(golden_run.run(tmp_path)))
    problems: list[str] = []
    _compare("run", want, got, problems)
    assert not problems, "\n".join(problems[:40])
