"""Training curves of an UnfoldLDM recipe, from its MLflow store, as one PNG for the model card.

Every resume of ``bench train`` opens a new MLflow run in the recipe's experiment, so the curve is
the union of the experiment's runs, by iteration (a later run's value wins where two logged the
same step: it resumed from a checkpoint before the first stopped). Left: the training loss
(raw, and a 50-point running median, since batch-4 losses on mixed degradations jump by 2×);
right: validation PSNR with the input's PSNR on the same tiles as a dashed line (the line a
restorer has to stay above), and SSIM on a second axis.

    python -m restorers.unfoldldm.recipes.plot_curves checkpoints/allinone/mlflow.db \\
        unfoldldm-allinone restorers/unfoldldm/weights/allinone_curves.png \\
        --val checkpoints/allinone/val
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def history(tracking_uri: str, experiment: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` over every run of ``experiment``, the later run winning."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} in {tracking_uri}")
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
    by_step: dict[int, float] = {}
    for run in runs:
        for point in client.get_metric_history(run.info.run_id, key):
            by_step[int(point.step)] = float(point.value)
    steps = np.array(sorted(by_step))
    return steps, np.array([by_step[s] for s in steps])


def input_psnr(val: Path) -> float:
    """Mean PSNR of the validation inputs against their ground truth (8-bit RGB, as validated)."""
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    values = [peak_signal_noise_ratio(np.asarray(Image.open(val / "gt" / p.name).convert("RGB")),
                                      np.asarray(Image.open(p).convert("RGB")), data_range=255)
              for p in sorted((val / "lq").glob("*.png"))]
    if not values:
        raise SystemExit(f"no validation tiles under {val / 'lq'}")
    return float(np.mean(values))


def running_median(values: np.ndarray, width: int = 50) -> np.ndarray:
    return np.array([np.median(values[max(0, i - width + 1):i + 1]) for i in range(len(values))])


def plot(db: Path, experiment: str, out: Path, val: Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    uri = f"sqlite:///{db.resolve()}"
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps, loss = history(uri, experiment, "loss")
    left.plot(steps, loss, color="0.8", linewidth=0.6, label="loss")
    left.plot(steps, running_median(loss), color="C0", label="running median (50)")
    left.set(xlabel="iteration", ylabel="training loss", yscale="log", title=experiment)
    left.legend()
    steps, psnr = history(uri, experiment, "val_psnr")
    right.plot(steps, psnr, "o-", color="C1", label="validation PSNR")
    if val is not None:
        right.axhline(input_psnr(val), color="C1", linestyle="--", label="input PSNR")
    right.set(xlabel="iteration", ylabel="PSNR (dB)")
    ssim_steps, ssim = history(uri, experiment, "val_ssim")
    twin = right.twinx()
    twin.plot(ssim_steps, ssim, "s:", color="C2", label="validation SSIM")
    twin.set_ylabel("SSIM")
    lines = right.get_legend_handles_labels()
    twin_lines = twin.get_legend_handles_labels()
    right.legend(lines[0] + twin_lines[0], lines[1] + twin_lines[1], loc="lower right")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="the recipe's mlflow.db")
    parser.add_argument("experiment")
    parser.add_argument("out", type=Path)
    parser.add_argument("--val", type=Path, default=None, help="validation folder (lq/, gt/)")
    args = parser.parse_args()
    plot(args.db, args.experiment, args.out, args.val)


if __name__ == "__main__":
    main()
