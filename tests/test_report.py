"""Reports: the run reader (schemas 1 and 2), leaderboard formats, paired statistics, previews,
``bench report`` / ``bench compare`` end to end on real demo runs, and the HTML in Chromium."""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from harness.cli.main import app
from harness.io.names import safe_name
from harness.io.previews import read_previews, save_previews
from harness.report.leaderboard import build_leaderboard, numeric_frame, to_latex, to_markdown
from harness.report.load import RunReadError, read_run
from harness.report.paired import compare_records, paired_stats

runner = CliRunner()


# Fabricated run folders ---------------------------------------------------------------------------
def _agg(mean: float, half: float = 0.1, n: int = 4) -> dict:
    return {"mean": mean, "std": half, "ci95": [mean - half, mean + half], "n": n}


def _write_run(folder: Path, results: dict, *, schema: int = 1, missing: dict | None = None,
               metrics: dict | None = None, tasks: dict | None = None, records: list | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"schema_version": schema, "run_id": folder.name, "created": "2026-01-01T00:00:00+00:00",
               "git_hash": "abc123", "device": "cpu", "versions": {"python": "3.11"},
               "tasks": tasks or {}, "results": results, "missing_metrics": missing or {}}
    if metrics is not None:
        payload["metrics"] = metrics
    (folder / "results.json").write_text(json.dumps(payload), encoding="utf-8")
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records or []),
                                          encoding="utf-8")
    return folder


def _unit(**metrics: float) -> dict:
    return {**{k: _agg(v) for k, v in metrics.items()}, "n_ok": 4, "n_failed": 0}


# Paired statistics ----------------------------------------------------------------------------------
def test_identical_inputs_give_zero_difference_and_p_one():
    values = np.linspace(20, 30, 12)
    result = paired_stats(values, values.copy(), lower_better=False)
    assert result.diff == 0 and (result.ci_lo, result.ci_hi) == (0.0, 0.0)
    assert result.p_permutation == 1.0 and result.p_wilcoxon == 1.0
    assert (result.wins, result.ties, result.losses) == (0, 12, 0) and result.frac_a_better == 0.0


def test_constant_shift_is_detected_in_the_metrics_direction():
    b = np.array([20.1, 25.3, 22.0, 30.2, 27.7, 24.4, 21.9, 26.5, 23.3, 28.8])
    higher = paired_stats(b + 0.5, b, lower_better=False)
    assert higher.diff == pytest.approx(0.5) and higher.ci_lo == pytest.approx(0.5)
    assert higher.ci_hi == pytest.approx(0.5)
    # exact sign-flip distribution over 2**10 assignments: only all-plus and all-minus are as extreme
    assert higher.p_permutation == pytest.approx(2 / 1024)
    assert higher.p_wilcoxon < 0.01 and higher.frac_a_better == 1.0
    lower = paired_stats(b + 0.5, b, lower_better=True)  # e.g. LPIPS: A is worse on every image
    assert lower.frac_a_better == 0.0 and lower.losses == 10
    unknown = paired_stats(b + 0.5, b, lower_better=None)
    assert unknown.frac_a_better is None


def test_small_example_matches_scipy_and_exact_enumeration():
    a = np.array([0.71, 0.64, 0.80, 0.55, 0.69, 0.77, 0.62, 0.58])
    b = np.array([0.66, 0.65, 0.71, 0.50, 0.70, 0.69, 0.55, 0.57])
    result = paired_stats(a, b, lower_better=False, resamples=4999, seed=3)
    d = a - b
    assert result.diff == pytest.approx(d.mean())
    assert result.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue)
    # exact paired permutation p by enumerating all 2**8 sign flips, independent of scipy
    flips = np.array(list(itertools.product([1, -1], repeat=d.size)))
    null = (flips * d).mean(axis=1)
    greater = np.mean(null >= d.mean() - 1e-12)
    less = np.mean(null <= d.mean() + 1e-12)
    assert result.p_permutation == pytest.approx(min(1.0, 2 * min(greater, less)))
    reference = stats.bootstrap((d,), np.mean, n_resamples=4999, method="percentile",
                                rng=np.random.default_rng(3)).confidence_interval
    assert (result.ci_lo, result.ci_hi) == pytest.approx((reference.low, reference.high))
    assert result.ci_lo < d.mean() < result.ci_hi
    assert (result.wins, result.ties, result.losses) == (6, 0, 2)


def test_three_positive_differences_have_exact_p_a_quarter():
    result = paired_stats([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], lower_better=False)
    assert result.p_permutation == pytest.approx(0.25)  # 2 of the 8 sign patterns are as extreme


def test_compare_records_pairs_by_sample_id_and_skips_failed_and_nonfinite():
    rec = lambda sid, v, status="ok": {"sample_id": sid, "status": status, "metrics": {"psnr": v},
                                      "latency_ms": 2.0}
    a = [rec("x", 30.0), rec("y", 31.0), rec("z", float("inf")), rec("w", 0.0, "failed")]
    b = [rec("y", 30.0), rec("x", 29.0), rec("z", 25.0), rec("w", 20.0)]
    (psnr, latency) = compare_records(a, b, ["psnr", "latency_ms"], {"psnr": False, "latency_ms": True})
    assert psnr.n == 2 and psnr.diff == pytest.approx(1.0) and psnr.frac_a_better == 1.0
    assert latency.n == 3 and latency.diff == 0 and latency.p_permutation == 1.0


# Reader and leaderboard -------------------------------------------------------------------------------
def test_best_marking_follows_each_metrics_direction_per_task(tmp_path):
    run = _write_run(tmp_path / "r1", {
        "good": {"t1": _unit(psnr=30.0, niqe=4.0, latency_ms=50.0, mystery_score=1.0),
                 "t2": _unit(psnr=20.0, niqe=9.0, latency_ms=5.0, mystery_score=1.0)},
        "fast": {"t1": _unit(psnr=25.0, niqe=6.0, latency_ms=1.0, mystery_score=2.0),
                 "t2": _unit(psnr=22.0, niqe=9.0, latency_ms=50.0, mystery_score=2.0)}})
    data = read_run(run)
    assert data.directions["psnr"] is False and data.directions["niqe"] is True
    assert data.directions["latency_ms"] is True and data.directions["mystery_score"] is None
    board = build_leaderboard([data])
    best = {(r.restorer, r.task): {m for m, c in r.cells.items() if c.best} for r in board.rows}
    assert best[("good", "t1")] == {"psnr", "niqe"}
    assert best[("fast", "t1")] == {"latency_ms"}
    assert best[("good", "t2")] == {"niqe", "latency_ms"}  # niqe tie: both marked
    assert best[("fast", "t2")] == {"psnr", "niqe"}
    md = to_markdown(board)
    assert "| good | t1 | **30.00 ±0.10** | **4.000 ±0.100** |" in md  # niqe column: 3 decimals
    assert "mystery_score ?" in md and "Direction unknown (no best marked): mystery_score" in md
    csv = numeric_frame(board)
    assert csv.loc[(csv.restorer == "good") & (csv.task == "t1"), "psnr_best"].item()
    assert not csv["mystery_score_best"].any()


def test_missing_metric_reasons_survive_into_markdown_latex_and_csv(tmp_path):
    reason = "asset 'alexnet' is missing; run `bench assets import DIR`"
    tasks = {"t": {"has_gt": True, "n": 4, "conventions": {"color_space": "ycbcr601", "crop_border": 4},
                   "metrics": {"psnr.impl": "pyiqa psnr", "psnr.color_space": "ycbcr601"}},
             "nogt": {"has_gt": False, "n": 4, "conventions": {"color_space": "rgb"}}}
    run = _write_run(tmp_path / "r", {"a": {"t": _unit(psnr=30.0, niqe=5.0), "nogt": _unit(niqe=4.0)},
                                      "b": {"t": _unit(psnr=28.0, niqe=6.0), "nogt": _unit(niqe=3.0)}},
                     missing={"lpips": reason}, tasks=tasks)
    board = build_leaderboard([read_run(run)])
    assert board.metrics == ["psnr", "lpips", "niqe"]
    md = to_markdown(board)
    assert "| a | t | **30.00 ±0.10** | missing [1] |" in md
    assert f"[1] lpips: {reason}" in md
    assert "psnr: full-reference metric; task nogt has no ground truth" in md
    assert "t: color_space=ycbcr601, crop_border=4; psnr: pyiqa psnr (ycbcr601); n=4" in md
    tex = to_latex(board)
    assert r"missing\textsuperscript{1}" in tex and "run `bench assets import DIR`" in tex
    assert r"crop\_border=4" in tex
    csv = numeric_frame(board)
    assert (csv["lpips_missing"] == f"lpips: {reason}").all()


def test_schema_2_declared_directions_and_fallbacks(tmp_path):
    records = [{"restorer": "a", "task": "t", "sample_id": "s1", "status": "ok",
                "metrics": {"psnr": 30.0, "det_map50": 0.5}}]
    unit = {**_unit(psnr=30.0, det_map50=0.5, boxes_found=0.4), "restorer_config_hash": "f00",
            "det_map50.precision": 0.7, "seed": 3}
    run = _write_run(tmp_path / "v2", {"a": {"t": unit}},
                     schema=2, metrics={"det_map50": {"lower_better": False, "mode": "meta",
                                                      "group": "detection"},
                                        "boxes_found": {"lower_better": False, "mode": "meta",
                                                        "group": "detection"},
                                        "psnr": {"mode": "FR"}}, records=records)
    data = read_run(run)
    assert data.schema_version == 2
    assert data.directions["det_map50"] is False  # declared in the file
    assert data.directions["psnr"] is False  # not declared: registry fallback
    assert data.directions["det_map50.precision"] is None  # companion: unknown, not guessed
    unit = data.units[0]
    assert "seed" not in unit.aggregates and unit.identity["restorer_config_hash"] == "f00"
    assert unit.aggregates["det_map50.precision"].mean == 0.7 and unit.records == records
    # the group is the declared one, whatever the name; a companion has its headline's group
    assert data.groups == {"det_map50": "detection", "boxes_found": "detection", "psnr": "quality",
                           "det_map50.precision": "detection"}
    main = build_leaderboard([data], include=lambda m: not data.is_detection(m))
    detection = build_leaderboard([data], include=data.is_detection)
    assert main.metrics == ["psnr"]
    assert detection.metrics == ["det_map50", "boxes_found", "det_map50.precision"]
    (tmp_path / "v9").mkdir()
    (tmp_path / "v9" / "results.json").write_text(json.dumps({"schema_version": 9, "results": {}}))
    with pytest.raises(RunReadError, match="schema_version 9"):
        read_run(tmp_path / "v9")
    with pytest.raises(RunReadError, match="does not exist"):
        read_run(tmp_path / "nothing")


# Previews ---------------------------------------------------------------------------------------------
def test_previews_are_small_safe_and_written_once_per_task(tmp_path):
    assert safe_name("nlm") == "nlm"
    assert safe_name("a:b") != safe_name("a_b") and "/" not in safe_name("../x/y")
    assert not safe_name("_lq").startswith("_")
    lq, out, gt = (torch.rand(1, 3, 300, 900) for _ in range(3))
    paths = save_previews(tmp_path, "nlm[sigma=estimate]", "synth:kodak24:noise@3", "img/01", lq, out, gt)
    from PIL import Image

    with Image.open(paths.out) as img:
        assert img.size == (512, 171)
    assert paths.out.parent.parent.parent == tmp_path / "previews"
    stamp = paths.lq.stat().st_mtime_ns
    save_previews(tmp_path, "other", "synth:kodak24:noise@3", "img/01", lq, out, None)
    assert paths.lq.stat().st_mtime_ns == stamp  # inputs once per (task, sample)
    found = read_previews(tmp_path, "other", "synth:kodak24:noise@3", "img/01")
    assert found.out is not None and found.lq == paths.lq and found.gt == paths.gt
    assert read_previews(tmp_path, "absent", "synth:kodak24:noise@3", "img/01").out is None
    with pytest.raises(ValueError, match="one image"):
        save_previews(tmp_path, "x", "t", "s", torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), None)


# End to end on demo runs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """Two real runs on the demo task (runner + saved images → previews)."""
    from report_support import demo_run

    out = tmp_path_factory.mktemp("report_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_OFFLINE", "1")
        first = demo_run(out, "demo-a")
        second = demo_run(out, "demo-b", "-r", "clahe", "--limit", "3")
    return out, first, second


def test_bench_report_defaults_to_the_latest_run_and_writes_every_format(demo_runs, tmp_path):
    out, first, second = demo_runs
    result = runner.invoke(app, ["report", "--output-dir", str(out), "--no-tracking", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "clahe" in result.output and "latency_ms" in result.output  # demo-b is the latest
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "report.html",
                 "quality_vs_latency.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    both = runner.invoke(app, ["report", str(first), str(second / "results.json"), "--no-tracking",
                               "--markdown", "--out", str(tmp_path / "both")])
    assert both.exit_code == 0, both.output
    md = (tmp_path / "both" / "leaderboard.md").read_text()
    nlm_psnr = json.loads((first / "results.json").read_text())["results"]["nlm"]["demo"]["psnr"]["mean"]
    assert f"| demo-a | nlm | demo | **{nlm_psnr:.2f} ±" in md and "| demo-b | clahe | demo |" in md
    assert "missing [1]" in md and "[1] lpips:" in md  # no AlexNet weights offline
    assert "| run | restorer | task |" in both.output
    frame = pd.read_csv(tmp_path / "both" / "leaderboard.csv")
    assert set(frame["run"]) == {"demo-a", "demo-b"} and frame["psnr_n"].max() == 5
    assert "(n=3)" not in md  # n per row is 3 for demo-b; per-metric n only when it differs
    html = (tmp_path / "both" / "report.html").read_text()
    assert html.count('<img data-role="out"') == 5 * 2 + 3 and html.count("no preview") == 2
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing is fetched over the network
    linked = runner.invoke(app, ["report", str(first), "--no-tracking", "--embed", "no", "--max-samples", "2",
                                 "--out", str(tmp_path / "linked")])
    assert linked.exit_code == 0, linked.output
    page = (tmp_path / "linked" / "report.html").read_text()
    assert page.count('<img data-role="out" alt="nlm" draggable="false" src="report_files/') == 2
    assert len(list((tmp_path / "linked" / "report_files").glob("*.png"))) == 2 * 4 + 1  # + scatter
    assert "Showing 2 of 5 samples" in page
    bad = runner.invoke(app, ["report", str(out / "nope"), "--no-tracking"])
    assert bad.exit_code != 0 and "does not exist" in bad.output


def test_bench_compare_is_paired_and_uses_direction(demo_runs, tmp_path):
    out, first, _ = demo_runs
    csv = tmp_path / "cmp.csv"
    result = runner.invoke(app, ["compare", "nlm", "identity", "--task", "demo", str(first),
                                 "--out", str(csv)])
    assert result.exit_code == 0, result.output
    assert "p (perm.)" in result.output and "Wilcoxon" in result.output
    frame = pd.read_csv(csv).set_index("metric")
    assert frame.loc["psnr", "diff"] > 3 and frame.loc["psnr", "frac_a_better"] == 1.0
    assert frame.loc["psnr", "p_permutation"] == pytest.approx(2 / 32)  # n=5: exact sign flips
    assert frame.loc["latency_ms", "lower_better"]
    ambiguous = runner.invoke(app, ["compare", "identity", "clahe", "--task", "demo", str(out / "demo-a"),
                                    str(out / "demo-b")])
    assert ambiguous.exit_code == 0, ambiguous.output  # identity only in demo-a, clahe in demo-b
    unknown = runner.invoke(app, ["compare", "nlm", "zzz", "--task", "demo", str(first)])
    assert unknown.exit_code != 0 and "choose from" in unknown.output


def test_compare_and_report_search_every_run_under_the_output_root(demo_runs, tmp_path):
    """Finding 3: not only the latest run; each number says which run it came from."""
    out, first, second = demo_runs
    found = runner.invoke(app, ["compare", "nlm", "clahe", "--task", "demo", "--output-dir", str(out)])
    assert found.exit_code == 0, found.output  # nlm is only in demo-a, clahe only in demo-b
    assert f"A from {first}" in found.output and f"B from {second}" in found.output
    absent = runner.invoke(app, ["compare", "nlm", "clahe", "--task", "lolv1", "--output-dir", str(out)])
    assert absent.exit_code == 2
    assert "no results for task 'lolv1' in the runs under" in absent.output
    assert "bench compare A B RUN_DIR" in " ".join(absent.output.split())  # rich wraps lines
    every = runner.invoke(app, ["report", "--all", "--output-dir", str(out), "--no-tracking",
                                "--out", str(tmp_path / "all")])
    assert every.exit_code == 0, every.output
    frame = pd.read_csv(tmp_path / "all" / "leaderboard.csv")
    assert {"demo-a", "demo-b"} <= set(frame["run"])


def test_report_from_an_mlflow_experiment_is_logged_as_artifacts(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("BENCH_OFFLINE", "1")
    out = tmp_path / "results"
    run = runner.invoke(app, ["run", "-r", "identity", "--limit", "2", "--output-dir", str(out),
                              "--experiment", "exp-a", "--no-progress", "--metrics", "psnr"])
    assert run.exit_code == 0, run.output
    run_dir = next(p for p in out.iterdir() if (p / "results.json").exists())
    assert len(list((run_dir / "previews").rglob("*.png"))) == 6  # the runner wrote out, lq, gt of 2
    report = runner.invoke(app, ["report", "--experiment", "exp-a", "--output-dir", str(out),
                                 "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("exp-a")
    parents = [r for r in client.search_runs([experiment.experiment_id])
               if r.data.tags.get("report") == "leaderboard"]
    assert len(parents) == 1
    names = {Path(a.path).name for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert {"report.html", "leaderboard.md", "leaderboard.csv", "leaderboard.tex",
            "quality_vs_latency.png"} <= names
    missing = runner.invoke(app, ["report", "--experiment", "nope", "--output-dir", str(out)])
    assert missing.exit_code != 0 and "no MLflow experiment 'nope'" in missing.output


# The HTML in a real browser -------------------------------------------------------------------------------
def _require_browser() -> None:
    from report_support import chromium_binaries

    try:
        import selenium  # noqa: F401
        present = chromium_binaries() is not None
    except ImportError:
        present = False
    if not present:
        message = "headless Chromium + chromedriver + selenium (apt-get install -y chromium chromium-driver)"
        if os.environ.get("BENCH_REQUIRE_DATA", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message} is required (BENCH_REQUIRE_DATA=1) but absent")
        pytest.skip(f"{message} not available")


def test_html_report_in_headless_chromium(demo_runs, tmp_path):
    _require_browser()
    from report_support import open_chromium
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from harness.cli.report import make_report

    _, first, second = demo_runs
    html = make_report([first, second], tmp_path / "report").files["html"]
    driver = open_chromium(tmp_path / "profile")
    try:
        driver.get(html.resolve().as_uri())
        expected = 5 * 4 + 3 + 1  # + the scatter
        deadline = time.time() + 60  # the viewer is built by script after load: wait for it
        while True:
            widths = driver.execute_script(
                "return Array.from(document.images).map(function (i) {"
                " return i.complete ? i.naturalWidth : 0; });")
            if (len(widths) == expected and all(w > 0 for w in widths)) or time.time() > deadline:
                break
            time.sleep(0.2)
        previews = sorted(str(q.relative_to(run)) for run in (first, second)
                          for q in (run / "previews").rglob("*.png"))
        assert len(widths) == expected and all(w > 0 for w in widths), (widths, previews)
        viewer = driver.find_element(By.CSS_SELECTOR, ".viewer")
        viewer.find_element(By.CSS_SELECTOR, ".zoom-in").click()
        viewer.find_element(By.CSS_SELECTOR, ".zoom-in").click()
        assert float(viewer.get_attribute("data-zoom")) == pytest.approx(2.25)
        panels = viewer.find_elements(By.CSS_SELECTOR, ".frame img")
        zoomed = panels[0].get_attribute("style")
        frame = viewer.find_elements(By.CSS_SELECTOR, ".frame")[1]
        ActionChains(driver).move_to_element(frame).click_and_hold().move_by_offset(-40, -30).release(
        ).perform()
        transforms = {img.get_attribute("style") for img in panels}
        assert len(transforms) == 1  # every panel of the task shows the same crop
        panned = transforms.pop()
        assert "scale(2.25)" in panned and panned != zoomed
        out_img = viewer.find_element(By.CSS_SELECTOR, 'img[data-role="out"]')
        before = out_img.get_attribute("src")
        Select(viewer.find_element(By.CSS_SELECTOR, ".mode")).select_by_value("gt")
        assert out_img.get_attribute("src") != before and "|X − GT|" in viewer.find_element(
            By.CSS_SELECTOR, ".status").text
        Select(viewer.find_element(By.CSS_SELECTOR, ".mode")).select_by_value("image")
        assert out_img.get_attribute("src") == before
        psnr_head = next(th for th in driver.find_elements(By.CSS_SELECTOR, "#leaderboard-table th")
                         if th.text.startswith("psnr"))
        psnr_head.click()
        psnr_head.click()  # descending: best first
        first_row = driver.find_element(By.CSS_SELECTOR, "#leaderboard-table tbody tr")
        assert "nlm" in first_row.text
        driver.save_screenshot(str(tmp_path / "report.png"))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_html_holds_study_figures_detection_tables_and_metadata(tmp_path):
    """A study folder given as the argument means its runs; its heatmap and pivots are shown."""
    from PIL import Image

    from harness.cli.report import make_report

    study = tmp_path / "ood-1"
    records = [{"restorer": r, "task": "t", "sample_id": f"s{i}", "status": "ok",
                "metrics": {"psnr": 20.0 + i + (r == "b"), "det_map50": 0.5 + 0.01 * i}, "latency_ms": 3.0}
               for r in ("a", "b") for i in range(4)]
    for index, name in enumerate(("a", "b")):
        _write_run(study / "runs" / f"0{index}-{name}",
                   {name: {"t": _unit(psnr=21.5 + index, det_map50=0.52, latency_ms=3.0)}},
                   records=[r for r in records if r["restorer"] == name],
                   tasks={"t": {"has_gt": True, "n": 4, "conventions": {"color_space": "rgb"}}})
    pd.DataFrame([{"restorer": "a (trained on noise)", "restorer_name": "a", "task": "t",
                   "metric": "psnr", "mean": 21.5, "run_dir": str(study / "runs" / "00-a")}]).to_csv(
        study / "study.csv", index=False)
    pd.DataFrame({"t": [21.5, 22.5]}, index=pd.Index(["a", "b"], name="restorer")).to_csv(
        study / "ood_psnr.csv")
    (study / "ood.md").write_text("# ood\n")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(study / "ood_psnr.png")
    files = make_report([study], tmp_path / "out")
    assert "detection_markdown" in files.files
    html = files.files["html"].read_text()
    assert '<section id="studies">' in html and 'alt="ood_psnr.png" src="data:image/png;base64,' in html
    assert '<section id="detection">' in html and "det_map50 ?" in html.split('id="detection"')[1]
    assert "det_map50" not in html.split('id="leaderboard-table"')[1].split("</table>")[0]
    assert "<b>A</b> = a (trained on noise) (00-a), <b>B</b> = b (01-b)" in html  # study labels
    assert "| 00-a | a (trained on noise) | t |" in files.files["markdown"].read_text()
    assert "abc123" in html and "No previews were saved" in html
    detection_md = files.files["detection_markdown"].read_text()
    # schema 1 does not declare det_map50's direction and no registry knows it: no best marked
    assert "| 00-a | a (trained on noise) | t | 0.5200 ±0.1000 |" in detection_md
    assert "**" not in detection_md


# Directions and groups (harness.metrics.directions) -------------------------------------------------
def test_direction_and_group_come_from_declaration_then_runtime_registry_pyiqa():
    from harness.metrics.directions import direction_arrow, metric_direction, metric_group

    declared = {"psnr": {"lower_better": True, "group": "detection"}, "boxes": {"group": "detection"}}
    assert metric_direction("psnr", declared) is True and metric_group("psnr", declared) == "detection"
    assert metric_group("boxes.recall", declared) == "detection"  # a companion: its headline's group
    assert metric_direction("boxes.recall", declared) is None  # ... but no direction of its own
    assert (metric_direction("latency_ms"), metric_group("peak_mem_mb")) == (True, "timing")
    assert (metric_direction("psnr"), metric_group("psnr")) == (False, "quality")  # registry
    assert (metric_direction("niqe"), metric_direction("lpips")) == (True, True)
    assert (metric_direction("gmsd"), metric_group("gmsd")) == (True, "quality")  # pyiqa's configs
    assert (metric_direction("seed"), metric_group("seed")) == (None, None)  # nobody declares it
    assert [direction_arrow(m) for m in ("psnr", "niqe", "seed")] == ["↑", "↓", "?"]


def test_directions_import_neither_torch_nor_pyiqa():
    import subprocess
    import sys

    code = ("import sys, harness.metrics.directions as d; d.pyiqa_configs(); "
            "print('torch' in sys.modules, 'pyiqa' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_detection_spec_declares_its_group_in_results():
    from harness.api.metric import MetricSpec
    from harness.api.task import MetricConventions
    from harness.metrics.suite import MetricSuite

    spec = MetricSpec("boxes", "meta", False, "test", lambda c, d: None, lambda c: {},
                      kind="dataset", group="detection")
    suite = MetricSuite(["psnr"], MetricConventions(), "cpu", True, extra=[spec],
                        build_kinds=("image",))
    assert suite.directions()["boxes"]["group"] == "detection"
    assert suite.directions()["psnr"]["group"] == "quality"
    with pytest.raises(ValueError, match="group"):
        MetricSpec("x", "NR", False, "", lambda c, d: None, lambda c: {}, group="speed")


def test_one_column_has_one_number_format():
    """Finding 11: latency 13599.60 ±1189.12 next to 5.7207 ±4.4372 in one column; now the
    column's largest value sets the decimals for all of its cells."""
    from harness.report.leaderboard import Cell, Row, column_digits, value_text
    from harness.report.load import Aggregate

    slow, fast = Aggregate(13599.6, 12410.48, 14788.72, n=5), Aggregate(5.7207, 1.2835, 10.1579, n=5)
    digits = column_digits([slow.mean, fast.mean])
    texts = [value_text(Row("r", "x", "t", 5, 0, {}), Cell(agg, digits=digits)) for agg in (slow, fast)]
    assert texts == ["13599.6 ±1189.1", "5.7 ±4.4"]
    assert column_digits([28.64, 31.2]) == 2 and column_digits([0.8123, 0.61]) == 4


def test_one_pair_gives_its_difference_and_no_p_value():
    """A run of ``--limit 1`` has one image per row: the difference is that image's, and no test
    is defined (scipy refuses a one-observation permutation test; the report must not fail)."""
    import math

    result = paired_stats([30.0], [28.5], lower_better=False, metric="psnr")
    assert result.n == 1 and result.diff == 1.5 and result.ci_lo == result.ci_hi == 1.5
    assert math.isnan(result.p_permutation) and math.isnan(result.p_wilcoxon)
    assert (result.wins, result.ties, result.losses) == (1, 0, 0)


def test_find_runs_skips_mlflow_artifact_copies_of_results(tmp_path):
    """MLflow keeps a copy of each run's results.json under mlartifacts/; it is not a run (no
    samples.jsonl) and, being newest, used to be taken as the latest run by bench compare."""
    from harness.report.load import find_runs

    run = tmp_path / "20260101-000000"
    copy = tmp_path / "mlartifacts" / "abc" / "artifacts"
    for folder in (run, copy):
        folder.mkdir(parents=True)
        (folder / "results.json").write_text("{}")
    (run / "samples.jsonl").write_text("")
    assert find_runs(tmp_path) == [run]
