"""The metric comparisons with pyiqa, rerun under lower CPU kernel families on this machine.

Two libraries choose kernels from the CPU at start-up, each on its own: ATen its vectorised
kernels (AVX-512, AVX2 or the scalar ``default``), capped by ``ATEN_CPU_CAPABILITY``, and MKL
its BLAS kernels (the SGEMM of the colour conversions), capped by ``MKL_ENABLE_INSTRUCTIONS``.
ATen's cap does not reach MKL: with ``ATEN_CPU_CAPABILITY=default`` alone the luma SGEMMs
still round as on AVX-512. Each run below caps both, as a CPU of that generation would, in a
subprocess (the variables are read once, at start-up): an AVX2-only CPU, and one with
neither AVX2 nor FMA (MKL's SSE4.2 kernels, where pyiqa's and our SGEMM calls round alike).
The default run of the suite covers the machine's own family.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

#: The comparison tests (not the lean-import test, which starts its own interpreter).
SELECTION = ["tests/test_metrics_fast.py", "-k", "not lean",
             "tests/test_metrics.py::test_any_pyiqa_metric_is_usable_by_name",
             "tests/test_metrics.py::test_cpu_ssim_equals_pyiqa_ssim"]

#: run → (environment, the capability ATen must then report, capabilities the CPU must have).
RUNS = {
    "avx2": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}, "AVX2",
             {"AVX2", "AVX512"}),
    "default": ({"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, "DEFAULT",
                {"DEFAULT", "AVX2", "AVX512"}),
}

_RUN_PYTEST = ("import sys, pytest, torch; print('capability', torch.backends.cpu.get_cpu_capability());"
               " sys.exit(pytest.main(sys.argv[1:]))")


@pytest.mark.data
@pytest.mark.weights
@pytest.mark.parametrize("run", sorted(RUNS))
def test_metric_comparisons_pass_with_a_lower_cpu_capability(run, data_root, weights_dir):
    env_caps, expected, needs = RUNS[run]
    own = torch.backends.cpu.get_cpu_capability()
    if own not in needs:
        pytest.skip(f"this CPU runs ATen at {own}, which has no {expected} kernels")
    env = {**os.environ, **env_caps, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _RUN_PYTEST, "-q", "-p", "no:cacheprovider", *SELECTION],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    report = done.stdout[-3000:] + done.stderr[-2000:]
    assert f"capability {expected}\n" in done.stdout, report
    assert done.returncode == 0, report
    assert " passed" in done.stdout and "skipped" not in done.stdout, report
