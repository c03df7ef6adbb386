"""The table ``bench run`` prints: one row per (restorer, task), metric means with 95% CI
half-widths, then notes on missing metrics and the first few failed images.

Read from the aggregates of ``results.json`` (``RunSummary.results``), so the table shows what
the files hold.
"""

from __future__ import annotations

import math
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.cli.common import console, err_console


def format_aggregate(agg: Any, n_ok: int | None = None, ci: bool = True) -> str:
    """``mean ±half-CI``; ``(n=k)`` when the metric has fewer values than the row has images
    (images it could not score); no CI where one means nothing (peak memory)."""
    if not isinstance(agg, dict) or agg.get("n", 0) == 0 or agg["mean"] is None:
        return "-" + (" (n=0)" if isinstance(agg, dict) and agg.get("n_not_computed") else "")
    mean = agg["mean"]
    if isinstance(mean, float) and not math.isfinite(mean):
        return str(mean)
    digits = 2 if abs(mean) >= 10 else 4
    text = f"{mean:.{digits}f}"
    if ci:
        lo, hi = agg["ci95"]
        half = (hi - lo) / 2 if lo is not None and hi is not None else 0.0
        text += f" ±{half:.{digits}f}"
    if n_ok is not None and agg["n"] < n_ok:
        text += f" (n={agg['n']})"
    return text


#: columns shown without a CI: peak memory is a property of the method and input size, not a
#: sample of a quality distribution
NO_CI_COLUMNS = frozenset({"peak_mem_mb"})


def summary_columns(results: dict[str, dict[str, dict[str, Any]]],
                    missing: dict[str, str]) -> list[str]:
    """Quality metrics first (psnr, ssim, lpips, niqe, others), then latency and memory."""
    columns: list[str] = []
    for by_task in results.values():
        for agg in by_task.values():
            columns += [k for k, v in agg.items() if isinstance(v, dict) and k not in columns]
    ordered = [c for c in ("psnr", "ssim", "lpips", "niqe") if c in columns or c in missing]
    ordered += [c for c in columns if c not in ordered and c not in ("latency_ms", "peak_mem_mb")]
    return ordered + [c for c in ("latency_ms", "peak_mem_mb") if c in columns]


def print_summary(results: dict[str, dict[str, dict[str, Any]]], missing: dict[str, str]) -> None:
    """One row per (restorer, task): metric means with 95% CI half-widths, n, failures."""
    ordered = summary_columns(results, missing)
    table = Table(title="restorebench results (mean ±95% CI half-width; (n=k): images scored "
                        "when fewer than n)")
    table.add_column("restorer")
    table.add_column("task")
    for column in ordered:
        table.add_column(column, justify="right")
    table.add_column("n", justify="right")
    table.add_column("failed", justify="right")
    notes: list[str] = []
    for restorer, by_task in results.items():
        for task, agg in by_task.items():
            n_ok = agg.get("n_ok", 0)
            cells = ["missing*" if c in missing and c not in agg else
                     format_aggregate(agg.get(c), n_ok, ci=c not in NO_CI_COLUMNS) for c in ordered]
            table.add_row(escape(restorer), escape(task), *cells, str(n_ok),
                          str(agg.get("n_failed", 0)))
            for column in ordered:
                entry = agg.get(column)
                if isinstance(entry, dict) and entry.get("n_not_computed"):
                    notes.append(f"{column} not computed on {entry['n_not_computed']} of {n_ok} "
                                 f"image(s) of {restorer} @ {task}: {entry.get('not_computed', '')}")
    console.print(table)
    for name, reason in missing.items():
        if _told_before(name, reason):  # the full how-to-fix once per BENCH_HOME, then one line
            console.print(f"[yellow]* {escape(name)} missing[/] (why and the fix: results.json "
                          "missing_metrics, or bench doctor)")
        else:
            console.print(f"[yellow]* {escape(name)} missing:[/] {escape(reason)}")
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    if "peak_mem_mb" in ordered:
        console.print("peak_mem_mb: the restorer's own peak (CPU: heap in use during the call "
                      "minus before it; CUDA: max allocated), mean over images, no CI")


FAILURES_SHOWN = 3


def print_failures(units: list[dict[str, Any]], n_failed: int) -> None:
    """Name the first few failed images with their one-line errors (all of them are in
    ``results.json`` under ``units[].failed`` and in ``samples.jsonl``)."""
    failed = [(u["restorer"], u["task"], f) for u in units for f in u.get("failed", [])]
    err_console.print(f"[yellow]{n_failed} image(s) failed[/]; the first "
                      f"{min(len(failed), FAILURES_SHOWN)}:")
    for restorer, task, failure in failed[:FAILURES_SHOWN]:
        line = (failure.get("error") or "").splitlines()[0] if failure.get("error") else "(no message)"
        err_console.print(f"  {escape(restorer)} @ {escape(task)} / {escape(str(failure['sample_id']))}: "
                          f"{escape(line[:300])}")
    err_console.print("  (every failure: units[].failed in results.json; tracebacks in samples.jsonl)")


def _told_before(name: str, reason: str) -> bool:
    """Whether this exact note was already printed in full on this ``BENCH_HOME`` (a marker file
    per note under ``BENCH_HOME/notes/``); the first call for a note records it."""
    import hashlib

    from harness.assets.cache import bench_home

    marker = bench_home() / "notes" / hashlib.sha256(f"{name}\n{reason}".encode()).hexdigest()[:16]
    if marker.exists():
        return True
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only home: keep printing the full note
        pass
    return False
