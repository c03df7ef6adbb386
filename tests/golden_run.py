"""The fixed run that pins the harness's output across refactors (``test_golden_run.py``).

``python -m tests.golden_run OUT.json`` runs the command below in a scratch folder and writes
what must not change: every record's metric values (as ``repr`` of the float, i.e. bit for
bit), the ``results.json`` aggregates, and the MLflow structure (parent and child run names,
params, metric keys and values, artifact paths). Timing fields (latency, memory) and fields
that name the machine, the time or the folder are left out: they legitimately differ per run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

COMMAND = ["run", "-r", "identity", "-r", "nlm", "-r", "nlm[sigma=estimate]", "-t", "demo",
           "-t", "kodak24-awgn25", "--limit", "3", "--seed", "1", "--no-previews"]
TIMING = ("latency_ms", "latency_calls", "peak_mem_mb", "throughput")
VOLATILE_PARAMS = ("versions", "device", "threads")  # threads: the machine's CPUs


def _timing(key: str) -> bool:
    return key.startswith(TIMING)


def run(workdir: Path) -> Path:
    """Run the fixed command with ``bench`` in ``workdir``; return the run folder."""
    env = {**os.environ, "BENCH_FAST_EXIT": "0"}
    out = workdir / "results"
    subprocess.run([sys.executable, "-m", "harness.cli.main", *COMMAND, "--output-dir", str(out),
                    "--run-name", "golden"], check=True, env=env, cwd=Path(__file__).parents[1],
                   stdout=subprocess.DEVNULL)
    return out / "golden"


def summary(run_dir: Path) -> dict[str, Any]:
    records = []
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        records.append({"key": [r["restorer_id"], r["task_id"], r["sample_id"]],
                        "restorer": r["restorer"], "task": r["task"], "status": r["status"],
                        "seed": r.get("seed"), "degradation_seed": r.get("degradation_seed"),
                        "metrics": {k: repr(v) for k, v in sorted(r.get("metrics", {}).items())}})
    records.sort(key=lambda r: r["key"])
    results = json.loads((run_dir / "results.json").read_text())
    aggregates = {r: {t: {m: v for m, v in sorted(agg.items()) if not _timing(m)}
                      for t, agg in sorted(by.items())}
                  for r, by in sorted(results["results"].items())}
    return {"records": records, "aggregates": aggregates,
            "units": sorted([u["restorer_id"], u["task_id"], u["n_planned"], u["n_recorded"]]
                            for u in results["units"]),
            "mlflow": mlflow_structure(run_dir.parent / "mlflow.db", run_dir.parent / "mlartifacts")}


def mlflow_structure(db: Path, artifacts: Path) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("restorebench")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    parent = parents[0]

    def describe(r: Any) -> dict[str, Any]:
        return {"status": r.info.status,
                "params": {k: v for k, v in sorted(r.data.params.items())
                           if k not in VOLATILE_PARAMS},
                "metrics": {k: round(v, 9) for k, v in sorted(r.data.metrics.items())
                            if not _timing(k)},
                "artifacts": sorted(a.path for a in client.list_artifacts(r.info.run_id))}

    children = {r.info.run_name: describe(r) for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return {"parent": {**describe(parent), "name": "golden" if parent.info.run_name == "golden"
                       else parent.info.run_name},
            "children": dict(sorted(children.items()))}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = summary(run(Path(tmp)))
    Path(sys.argv[1]).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
