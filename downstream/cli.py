"""``bench detect``: what restoration does for a YOLO detector, in one benchmark pass.

    bench detect -r nlm -r dncnn --data coco8.yaml --detector yolo11n.pt --labels pseudo \\
        --degradation noise@3

builds the task (``--data`` yaml + ``--degradation`` → ``synth:<name>:<spec>[clean_dir=<split
images>]``; a yaml without ``--degradation`` → ``folder[lq=<split images>]``, real degraded
photographs such as ExDark or RTTS; or any task spec), prepends ``identity`` (the "degraded"
row), and runs the benchmark with the detection metric computed in the same pass as PSNR/SSIM
(``RunConfig.metric_specs``). Afterwards it writes into the run folder ``detection/``: a table
(markdown + CSV), a bar chart, and a few ``clean | degraded | restored`` images with boxes.

The lead attaches :func:`detect` to the ``bench`` app (``app.command("detect")(detect)``);
``python -m downstream.cli detect ...`` works on its own.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from harness.api.extras import require
from harness.api.items import parse_item
from harness.cli.common import Threads
from harness.cli.executor_options import (
    ExecutorName,
    GpusPerWorker,
    RayAddress,
    ShardSize,
    Workers,
    make_executor,
)

console = Console()
err_console = Console(stderr=True)
app = typer.Typer(help="Detection after restoration.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Detection after restoration (``python -m downstream.cli detect ...``)."""

DEGRADED = "identity"


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(2)


def check_options(*, conf_label: float, imgsz: int, limit: int | None, n_images: int,
                  class_map: str, labels: str) -> None:
    """The numeric and named options of ``bench detect``, before anything loads (``ValueError``
    with the option, the value and what is allowed)."""
    import math

    from downstream.data import CLASS_MAPS
    from downstream.metric import PROTOCOLS

    if not (math.isfinite(conf_label) and 0.0 <= conf_label <= 1.0):
        raise ValueError(f"--conf-label {conf_label}: a confidence threshold in [0, 1]")
    if imgsz < 32:
        raise ValueError(f"--imgsz {imgsz}: the detector input side in pixels, at least 32 "
                         f"(YOLO's largest stride)")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit {limit}: a number of images >= 1 (or leave it out)")
    if n_images < 0:
        raise ValueError(f"--n-images {n_images}: a number of images >= 0")
    if labels not in PROTOCOLS:
        raise ValueError(f"--labels {labels!r}: choose one of {', '.join(PROTOCOLS)}")
    maps = ("auto", "none", *sorted(CLASS_MAPS))
    if class_map not in maps:
        raise ValueError(f"--class-map {class_map!r}: choose one of {', '.join(maps)}")


def plan_task(data: str, degradation: str | None, split: str) -> tuple[tuple[str, dict[str, Any]],
                                                                      Path | None]:
    """``(task item, labels source or None)`` for ``--data`` / ``--degradation``."""
    if data.endswith((".yaml", ".yml")):
        from downstream.data import load_data_yaml

        dataset = load_data_yaml(data, split)
        if degradation:
            spec = degradation if "@" in degradation else f"{degradation}@3"
            return (f"synth:{dataset.name}:{spec}", {"clean_dir": str(dataset.images_dir)}), Path(data)
        return ("folder", {"lq": str(dataset.images_dir)}), Path(data)
    if degradation:
        raise ValueError("--degradation needs --data DATA.yaml (a task spec brings its own "
                         "degradation)")
    return parse_item(data), None


def run_detection(config: Any, spec: Any, console: Any = None) -> Any:
    """Run with the detection spec in the same pass as the quality metrics (``metric_specs``)."""
    from harness.run.runner import run_benchmark

    return run_benchmark(dataclasses.replace(config, metric_specs=[spec]), console=console)


def make_figures(run_dir: Path, spec_name: str, task_item: tuple[str, dict[str, Any]],
                 restorers: list[tuple[str, dict[str, Any]]], detector: Any, dataset: Any,
                 class_map: Any, device: str, n_images: int, limit: int | None) -> list[Path]:
    """Table, bar chart, and ``n_images`` strips with boxes (restorers re-run on those only)."""
    import torch

    from downstream.report import bar_chart, boxes_figure, detection_rows, write_table
    from downstream.toy_detector import stand_in_note
    from harness.api.restorer import build_restorer
    from harness.api.task import build_task
    from harness.io.results import RESULTS_FILE, read_results
    from harness.run.runner import resolve_device

    out_dir = run_dir / "detection"
    results = read_results(run_dir / RESULTS_FILE)
    rows = detection_rows(results, spec_name)
    stand_in = stand_in_note(detector.model)
    written = write_table(rows, out_dir, stand_in=stand_in)
    written.append(bar_chart(rows, spec_name, out_dir / "detection_bars.png",
                             title=f"{spec_name} — {task_item[0]}", stand_in=bool(stand_in)))
    console.print((out_dir / "detection.md").read_text(), markup=False, highlight=False)
    if n_images <= 0:
        return written
    task = build_task(task_item[0], **dict(task_item[1]))
    ids = task.sample_ids()[:limit][:n_images]
    samples = [task.load(i) for i in ids]
    torch_device = resolve_device(device)
    outputs: dict[str, list[torch.Tensor]] = {}
    for name, options in restorers:
        if name == DEGRADED:
            continue
        restorer = build_restorer(name, **dict(options))
        restorer.load(torch_device)
        with torch.inference_mode():
            outputs[restorer.name] = [restorer.restore(s.lq[None].to(torch_device), dict(s.meta))[0].cpu()
                                      for s in samples]
        del restorer
    for index, sample in enumerate(samples):
        panels = ([("clean", sample.gt)] if sample.gt is not None else []) + [("degraded", sample.lq)]
        panels += [(name, images[index]) for name, images in outputs.items()]
        labels = None
        if dataset is not None and class_map is not None:
            try:
                labels = class_map.map_labels(dataset.labels(sample.id))[0]
            except (ValueError, KeyError) as exc:  # recorded per image already; draw no boxes
                err_console.print(f"[yellow]warning:[/] {escape(str(exc))}; {sample.id} drawn "
                                  f"without its labelled boxes")
        written.append(boxes_figure(panels, detector, out_dir / f"boxes_{sample.id}.png",
                                    labels=labels))
    return written


@app.command()
def detect(
    restorer: Annotated[list[str], typer.Option(
        "--restorer", "-r", help="Restorer name or 'name\\[key=value,...]'; repeatable. "
                                 "'identity' (the degraded row) is always included.")],
    data: Annotated[str, typer.Option(help="YOLO data yaml (its --split images), or a task spec.")],
    detector: Annotated[str, typer.Option(
        help="YOLO weights: a .pt path (works offline) or a hub name such as yolo11n.pt.")],
    labels: Annotated[str, typer.Option(
        help="gt: the dataset's labels (det_map50); pseudo: the detector's clean-image boxes "
             "(consistency_map50; needs a clean twin).")] = "gt",
    conf_label: Annotated[float, typer.Option(help="Pseudo-label confidence threshold.")] = 0.25,
    degradation: Annotated[str | None, typer.Option(
        help="Synthetic degradation of the clean images, OPS@LEVEL (e.g. noise+blur+lowlight@3).")
    ] = None,
    imgsz: Annotated[int, typer.Option(help="Detector input size.")] = 640,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    output_dir: Annotated[Path, typer.Option(help="Where runs and mlflow.db go.")] = Path("results"),
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Skip MLflow.")] = False,
    split: Annotated[str, typer.Option(help="Split of the data yaml.")] = "val",
    class_map: Annotated[str, typer.Option(
        help="Dataset → detector classes: auto | exdark | rtts | none.")] = "auto",
    labels_from: Annotated[Path | None, typer.Option(
        help="With a task spec as --data and --labels gt: the data yaml holding the labels.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    metrics: Annotated[str | None, typer.Option(
        help="Quality metrics beside mAP (default psnr,ssim with a clean twin, niqe without).")
    ] = None,
    run_name: Annotated[str | None, typer.Option(help="Run folder name.")] = None,
    n_images: Annotated[int, typer.Option(help="Images drawn with boxes.")] = 3,
    levels: Annotated[str | None, typer.Option(
        help="A severity study instead of one run: the detection metric of every restorer over "
             "these levels of --degradation (e.g. 1-5), as curves (bench study severity).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    trust_detector: Annotated[bool, typer.Option(
        "--trust-detector", help="Load --detector without scanning it for code (only for a file "
                                 "you made or fully trust; docs/detection.md).")] = False,
    executor: ExecutorName = "local", ray_address: RayAddress = None,
    gpus_per_worker: GpusPerWorker = None, workers: Workers = None, shard_size: ShardSize = None,
    threads: Threads = None,
) -> None:
    """Detection mAP after restoration: clean / degraded / restored, beside PSNR/SSIM."""
    from downstream.metric import detection_metric_spec
    from harness.cli.common import user_errors

    errors = user_errors(KeyError)

    try:
        require("ultralytics", "bench detect")  # the detect extra: one line, before anything loads
        check_options(conf_label=conf_label, imgsz=imgsz, limit=limit, n_images=n_images,
                      class_map=class_map, labels=labels)
        task_item, source = plan_task(data, degradation, split)
        if labels == "gt" and source is None:
            source = labels_from
        spec = detection_metric_spec(detector, source, labels, conf_label=conf_label, imgsz=imgsz,
                                     split=split, class_map=class_map,
                                     trust_detector=trust_detector)
        restorers = [(DEGRADED, {})] + [parse_item(r) for r in restorer if parse_item(r)[0] != DEGRADED]
        run_executor = make_executor(executor, ray_address, gpus_per_worker, workers, shard_size)
    except errors as exc:
        _fail(str(exc))
    if levels:
        _severity_study(restorers, data, degradation, split, levels, spec, metrics, device, limit,
                        output_dir, run_name, no_tracking, progress, threads)
        return
    _single_run(task_item, restorers, spec, labels, metrics, device, limit, output_dir, run_name,
                no_tracking, progress, run_executor, shard_size, n_images, errors, threads)


def _single_run(task_item: tuple[str, dict[str, Any]], restorers: list[tuple[str, dict[str, Any]]],
                spec: Any, labels: str, metrics: str | None, device: str, limit: int | None,
                output_dir: Path, run_name: str | None, no_tracking: bool, progress: bool,
                run_executor: Any, shard_size: int | None, n_images: int,
                errors: tuple[type[BaseException], ...], threads: int | None = None) -> None:
    """``bench detect`` without ``--levels``: one run, then its table and figures."""
    from harness.run.runner import RunConfig, resolve_device

    has_gt = task_item[0].startswith("synth:") or "gt" in task_item[1]
    if labels == "pseudo" and task_item[0] == "folder" and not has_gt:
        _fail("--labels pseudo needs a clean twin: give --degradation (synthetic) or a task with GT")
    quality = [m.strip() for m in metrics.split(",")] if metrics else (
        ["psnr", "ssim"] if has_gt else None)
    config = RunConfig(restorers=restorers, tasks=[task_item], device=device, limit=limit,
                       metrics=quality, output_dir=output_dir, run_name=run_name,
                       tracking=not no_tracking, argv=list(sys.argv), show_progress=progress,
                       executor=run_executor, shard_size=shard_size, threads=threads)
    try:
        summary = run_detection(config, spec, console=console)
    except errors as exc:
        _fail(str(exc))
    metric = spec.build(None, str(resolve_device(device)))
    make_figures(summary.run_dir, spec.name, task_item, restorers, metric.detector,
                 metric.dataset, metric.class_map, device, n_images, limit)
    console.print(f"detection outputs: {summary.run_dir / 'detection'}")


def _severity_study(restorers: list[tuple[str, dict[str, Any]]], data: str, degradation: str | None,
                    split: str, levels: str, spec: Any, metrics: str | None, device: str,
                    limit: int | None, output_dir: Path, name: str | None, no_tracking: bool,
                    progress: bool, threads: int | None = None) -> None:
    """``bench detect --levels 1-5``: the study engine with the detection metric as an axis."""
    from harness.study.grid import StudyConfig, StudyEntry, parse_levels, run_study

    if not degradation or "@" in degradation or not data.endswith((".yaml", ".yml")):
        _fail("--levels needs --data DATA.yaml and --degradation OPS without '@LEVEL'")
    try:
        level_list = parse_levels(levels)
        tasks = [plan_task(data, f"{degradation}@{level}", split)[0] for level in level_list]
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    quality = [m.strip() for m in metrics.split(",")] if metrics else ["psnr"]
    headline = [spec.name, f"{spec.name}.map50_95"]
    summary = run_study(StudyConfig(
        kind="severity", entries=[StudyEntry(n, o) for n, o in restorers], tasks=tasks,
        levels=level_list, metrics=quality, primary_metric=spec.name, device=device, limit=limit,
        output_dir=Path(output_dir), name=name, tracking=not no_tracking,
        show_progress=progress, argv=list(sys.argv), metric_specs=[spec],
        report_metrics=headline + quality, threads=threads), console=console)
    console.print(f"detection severity study: {summary.study_dir} "
                  f"(curves: {summary.files.get('figure')})")


if __name__ == "__main__":
    app()
