"""A small stand-in detector for tests and offline demos: the real ultralytics YOLO class, untrained.

No ultralytics-format weights are available offline (``shared/README.md``), so the tests and the
measured coco8 figures of ``docs/detection.md`` use this detector, built without any download:

1. ``YOLO("yolov8n.yaml")``: the YOLOv8n architecture from the package's own model cfg, random
   initialisation under ``torch.manual_seed(seed)``; class names set to the dataset's.
2. BatchNorm re-calibration: the running statistics of every BatchNorm layer are recomputed from
   one forward pass (train mode, cumulative average) over the calibration images. Without it the
   default initialisation shrinks activations layer by layer until every box of a level has the
   same confidence (a constant ``sigmoid(bias)``), so detections would carry no image content.
3. The classification biases of the Detect head are raised by ``cls_bias_shift`` so that some
   boxes pass ``conf ≥ 0.25`` (the pseudo-label threshold). A briefly *trained* YOLOv8n (30
   epochs on coco8 from scratch, measured) still predicts nothing above ``conf = 0.001``, so
   training would not help.

The result predicts input-dependent boxes and classes; its boxes are not meaningful objects, so
its real-label mAP is about 0, while detection consistency (pseudo labels) is meaningful: it
measures how much a degradation changes what the network sees.

The saved model carries :data:`STAND_IN_KEY` in its ``yaml`` dict (saved with the model), so
whoever loads it can tell: ``bench detect`` then labels every table, figure, results file and
MLflow record of its numbers as coming from a stand-in (:func:`stand_in_note`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from downstream.yolo_env import configure_ultralytics

#: Key in the model's ``yaml`` dict that marks a stand-in; its value is the note shown to readers.
STAND_IN_KEY = "restorebench_stand_in"
STAND_IN_NOTE = ("stand-in detector (untrained YOLOv8n, recalibrated BatchNorm): its numbers "
                 "exercise the pipeline and say nothing about restorers")


def stand_in_note(model: object) -> str | None:
    """The stand-in note of a loaded ultralytics model, or ``None`` for a real detector."""
    yaml = getattr(getattr(model, "model", None), "yaml", None)
    return yaml.get(STAND_IN_KEY) if isinstance(yaml, dict) else None


def _letterbox_tensor(path: Path, size: int) -> torch.Tensor:
    with Image.open(path) as img:
        img = img.convert("RGB").resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0


def build_toy_detector(target: Path, names: dict[int, str], calibration_images: Sequence[Path], *,
                       seed: int = 0, cls_bias_shift: float = 6.0, imgsz: int = 320,
                       cfg: str = "yolov8n.yaml") -> Path:
    """Build, calibrate and save the stand-in detector as an ultralytics ``.pt`` checkpoint."""
    configure_ultralytics()
    from ultralytics import YOLO

    torch.manual_seed(seed)
    model = YOLO(cfg)
    net = model.model
    net.names = dict(names)
    net.yaml[STAND_IN_KEY] = STAND_IN_NOTE
    batch = torch.stack([_letterbox_tensor(Path(p), imgsz) for p in calibration_images])
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one pass sets the batch statistics
    net.train()
    with torch.no_grad():
        net(batch)
        for seq in net.model[-1].cv3:
            seq[-1].bias.add_(cls_bias_shift)
    net.eval()
    for norm in norms:
        norm.momentum = 0.03  # ultralytics' default
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save(target)
    return target


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.toy_detector DATA.yaml OUT.pt [--seed 0] [--shift 6]``: the stand-in
    detector of ``docs/detection.md``, calibrated on every image of the yaml's train and val."""
    import argparse

    from downstream.data import load_data_yaml

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("data")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", type=float, default=6.0)
    args = parser.parse_args(argv)
    images: list[Path] = []
    names: dict[int, str] = {}
    for split in ("train", "val"):
        try:
            dataset = load_data_yaml(args.data, split)
        except (ValueError, FileNotFoundError):
            continue
        names = dataset.names
        images += [dataset.image_path(i) for i in dataset.sample_ids()]
    path = build_toy_detector(args.out, names, images, seed=args.seed, cls_bias_shift=args.shift)
    print(path)


if __name__ == "__main__":
    main()
