"""One restorer against the best baseline of each task, from finished runs' ``results.json``.

Reads any number of run folders (or their ``results.json``), and prints a markdown table with,
per task: the chosen restorer's PSNR / SSIM, the input's (``identity``), and the best other
restorer by PSNR and by SSIM (name and value). Only what the runs measured; tasks the chosen
restorer did not run on are left out. Used for the shipped UnfoldLDM checkpoint's table in
``restorers/unfoldldm/weights/MODEL_CARD.md``.

Usage::

    python benchmarks/best_baseline_table.py RUN_DIR [RUN_DIR ...] [--restorer unfoldldm]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.io.results import read_results


def collect(paths: list[Path]) -> dict[str, dict[str, dict[str, float]]]:
    """task → restorer → {metric: mean, "n": images} (later runs win on duplicates)."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for path in paths:
        results = read_results(path / "results.json" if path.is_dir() else path)
        for restorer, tasks in results["results"].items():
            for task, metrics in tasks.items():
                row = {m: v["mean"] for m, v in metrics.items()
                       if isinstance(v, dict) and v.get("mean") is not None}
                row["n"] = metrics.get("n_ok", 0)
                table.setdefault(task, {})[restorer] = row
    return table


def best(rows: dict[str, dict[str, float]], metric: str, exclude: set[str]) -> tuple[str, float] | None:
    candidates = [(r, m[metric]) for r, m in rows.items() if r not in exclude and metric in m]
    return max(candidates, key=lambda c: c[1]) if candidates else None


def markdown(table: dict[str, dict[str, dict[str, float]]], restorer: str) -> str:
    lines = [f"| task | n | {restorer} PSNR | SSIM | input PSNR | SSIM | best other PSNR | best other SSIM |",
             "|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, d: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
    for task, rows in table.items():
        if restorer not in rows:
            continue
        ours, inp = rows[restorer], rows.get("identity", {})
        psnr = best(rows, "psnr", {restorer, "identity"})
        ssim = best(rows, "ssim", {restorer, "identity"})
        lines.append(
            f"| {task} | {int(ours['n'])} | **{fmt(ours.get('psnr'), 2)}** | {fmt(ours.get('ssim'), 4)} | "
            f"{fmt(inp.get('psnr'), 2)} | {fmt(inp.get('ssim'), 4)} | "
            f"{f'{psnr[1]:.2f} ({psnr[0]})' if psnr else '–'} | "
            f"{f'{ssim[1]:.4f} ({ssim[0]})' if ssim else '–'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--restorer", default="unfoldldm")
    args = parser.parse_args()
    print(markdown(collect(args.runs), args.restorer))


if __name__ == "__main__":
    main()
