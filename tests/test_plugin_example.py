"""The plugin example of ``docs/plugins.md`` (``examples/restorebench-plugin-example``), installed
with pip and run through ``bench``: what the docs promise a plugin author, checked end to end.

The package is installed with ``pip install --target`` into a temporary folder put on
``PYTHONPATH`` (a real wheel build and install with its ``entry_points.txt``, which is how
restorebench finds it), so the shared test environment is left untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "restorebench-plugin-example"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """Environment for ``bench`` subprocesses with the example plugin installed."""
    target = tmp_path_factory.mktemp("plugin-site")
    # --no-build-isolation: build with this environment's setuptools (no index needed);
    # --no-deps: restorebench, torch and numpy are already here
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(EXAMPLE)], check=True)
    assert (target / "restorebench_example").is_dir()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(REPO), env.get("PYTHONPATH", "")])
    env["BENCH_HOME"] = str(tmp_path_factory.mktemp("home"))
    env.setdefault("BENCH_OFFLINE", "1")
    return env


def _bench(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_listing_shows_the_plugin(plugin_env, tmp_path):
    """Each entry-point group is discovered: restorer, task and metric appear in ``bench list``."""
    for kind, name in (("restorers", "median"), ("tasks", "saltpepper"), ("metrics", "mae")):
        result = _bench(plugin_env, "list", kind, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert name in result.stdout, f"{name} missing from bench list {kind}:\n{result.stdout}"
        assert "could not import" not in result.stderr


def test_run_scores_the_plugin(plugin_env, tmp_path):
    """``bench run`` with the plugin's restorer, task and metric: the metric's values match an
    independent computation, and the median filter does what it is for."""
    result = _bench(plugin_env, "run", "-r", "median", "-r", "identity", "-t", "saltpepper[amount=0.1]",
                    "--metrics", "psnr,mae", "--no-tracking", "--no-progress", "--output-dir",
                    str(tmp_path / "out"), "--run-name", "plugin", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "out" / "plugin"
    results = json.loads((run_dir / "results.json").read_text())["results"]
    identity, median = results["identity"]["saltpepper"], results["median"]["saltpepper"]
    assert identity["mae"]["n"] == median["mae"]["n"] == 4

    # Identity scores the noisy input: E|noisy - clean| = amount / 2 for any clean image (see
    # the task's docstring). Per value the term lies in [0, 1] with variance <= amount, so the
    # mean of 4 * 128*128*3 values is within 5 sigma = 5 * sqrt(0.1 / 196608) = 0.0036 of 0.05.
    assert abs(identity["mae"]["mean"] - 0.05) < 0.0036

    # The runner's per-image value equals |lq - gt| recomputed from the plugin's task in this
    # process (same seed → same pixels): the float64 mean of differences of 8-bit values, so
    # float32 storage of the images bounds the difference at ~1e-7.
    sys.path.insert(0, plugin_env["PYTHONPATH"].split(os.pathsep)[0])
    try:
        from restorebench_example.task import SaltPepperTask
    finally:
        sys.path.pop(0)
    task = SaltPepperTask(amount=0.1)
    task.name = "saltpepper"
    records = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    for record in (r for r in records if r["restorer"] == "identity"):
        sample = task.load(record["sample_id"])
        expected = (sample.lq.double() - sample.gt.double()).abs().mean().item()
        assert record["metrics"]["mae"] == pytest.approx(expected, abs=1e-6)

    # A 3x3 median removes isolated impulses: on smooth images it leaves well under a tenth of
    # the error, and gains more than 15 dB.
    assert median["mae"]["mean"] < identity["mae"]["mean"] / 10
    assert median["psnr"]["mean"] > identity["psnr"]["mean"] + 15


def test_plugin_options_are_checked(plugin_env, tmp_path):
    """A plugin's typed options get the same one-line check as the built-ins' (exit 2)."""
    result = _bench(plugin_env, "run", "-r", "median[size=4]", "-t", "saltpepper", "--no-tracking",
                    cwd=tmp_path)
    assert result.returncode == 2
    assert "size" in result.stderr and "3 | 5 | 7" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
