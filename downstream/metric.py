"""Detection after restoration as a dataset-level metric (``MetricSpec(kind="dataset")``).

Per image, :meth:`DetectionMetric.update` runs the detector on the (restored) output, matches its
boxes to the image's labels and returns the matched predictions as a small JSON state; once per
(restorer, task), :meth:`DetectionMetric.compute` concatenates the states and reduces them to
mAP50, mAP50-95, precision, recall and per-class AP. Both steps are **ultralytics' own code**, the
code ``yolo val`` runs, not a re-implementation:

* matching: ``DetectionValidator._process_batch`` (``box_iou`` + ``BaseValidator.match_predictions``:
  class-aware, greedy in descending confidence, one target per prediction per IoU threshold) over
  the ten thresholds ``linspace(0.5, 0.95, 10)`` of ``DetectionValidator.iouv``;
* reduction: ``DetMetrics.update_stats`` / ``process`` (``ap_per_class``, 101-point COCO-style
  interpolated AP; precision and recall are the class means at the confidence of maximum mean F1).
  Because ultralytics closes the PR curve with a zero-precision point at recall 1, a perfect
  detector scores AP = 0.995, not 1 (documented ultralytics behaviour, checked in the tests).

Predictions come from ``YOLO.predict`` (letterbox to ``imgsz``, NMS ``iou=0.7``, ``conf=0.001``,
``max_det=300``: the ``yolo val`` defaults, so the PR curve reaches low confidences) with boxes in
pixels of the original image; labels are converted to the same pixels, so IoUs equal those of
``yolo val`` up to letterbox rounding. (``yolo val`` letterboxes with ``rect`` batching; ``predict``
with minimal stride padding; the difference is sub-pixel.)

Protocols (``conventions.md`` §4.2), never mixed: their metric names differ.

* ``labels="gt"``: real labels of a YOLO dataset, mapped to the detector's classes
  (:mod:`downstream.data`). Headline ``det_map50``. When the task has a clean twin, the clean
  image is detected as well (once per image per process, cached in memory) and scored against the
  same labels: ``det_map50.clean`` and friends, the "clean" row of every table, computed in the
  same pass so it uses exactly the same labels, detector and settings as the other rows.
* ``labels="pseudo"``: the detector's own detections on the clean twin with ``conf ≥ conf_label``
  become the labels ("detection consistency"; needs GT, mode ``FR``). Headline
  ``consistency_map50``. The clean image scored against its own pseudo labels is the ceiling
  (0.995 by ultralytics' interpolation), so no clean row is reported.

State of one image (JSON, written into ``samples.jsonl`` by the runner)::

    {"id": "000000000036", "tp": [1023, 0, ...], "conf": [0.91, ...], "cls": [0, ...],
     "target_cls": [0, 0, 23], "n_dropped": 0, "clean": {"tp": [...], "conf": [...], "cls": [...]}}

``tp[i]`` packs row ``i`` of the ``(N, 10)`` true-positive matrix as bits (bit ``j`` = correct at
IoU threshold ``0.5 + 0.05 j``): ten times smaller than nested lists, and exact.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from downstream.data import ClassMap, Labels, YoloDataset, load_dataset, resolve_class_map
from downstream.yolo_env import (
    configure_ultralytics,
    load_detector,
    resolve_weights,
    scan_detector,
    ultralytics_version,
)
from harness.api.metric import DatasetMetric, MetricSpec
from harness.io.hashing import file_sha256
from harness.io.threads import kept_threads

PROTOCOLS = ("gt", "pseudo")
N_IOU = 10
_BITS = 1 << np.arange(N_IOU)


@dataclass(frozen=True)
class Detections:
    """Detections in pixels of the image they were made on, sorted by descending confidence."""

    boxes: np.ndarray  # (N, 4) xyxy float32
    conf: np.ndarray  # (N,) float32
    cls: np.ndarray  # (N,) int64

    def above(self, threshold: float) -> Labels:
        keep = self.conf >= threshold
        return Labels(self.boxes[keep], self.cls[keep])

    def only(self, classes: set[int] | None) -> Detections:
        if classes is None:
            return self
        keep = np.isin(self.cls, sorted(classes))
        return Detections(self.boxes[keep], self.conf[keep], self.cls[keep])


def to_bgr_uint8(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) or (1,3,H,W) float [0,1] RGB → (H,W,3) uint8 BGR, what ``YOLO.predict`` expects
    of a numpy array (it reverses channels as for a ``cv2.imread`` image)."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"detection scores one image at a time, got a batch of {image.shape[0]}")
        image = image[0]
    array = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(array.permute(1, 2, 0).cpu().numpy()[..., ::-1])


class Detector:
    """An ultralytics YOLO detector with fixed inference settings (logged by ``describe``)."""

    def __init__(self, weights: str | Path, imgsz: int = 640, device: str | torch.device = "cpu",
                 conf: float = 0.001, iou: float = 0.7, max_det: int = 300, trust: bool = False):
        self.model, self.path = load_detector(weights, str(device), trust=trust)
        self.weights = str(weights)
        self.imgsz, self.conf, self.iou, self.max_det = int(imgsz), float(conf), float(iou), int(max_det)
        self.device = str(device)
        self.names: dict[int, str] = {int(k): str(v) for k, v in dict(self.model.names).items()}
        self.sha256 = file_sha256(self.path)
        self.key = (self.sha256, self.imgsz, self.conf, self.iou, self.max_det, self.device)

    def __call__(self, image: torch.Tensor | np.ndarray) -> Detections:
        array = image if isinstance(image, np.ndarray) else to_bgr_uint8(image)
        with kept_threads():  # ultralytics' select_device sets torch's threads and keeps them
            result = self.model.predict(array, imgsz=self.imgsz, conf=self.conf, iou=self.iou,
                                        max_det=self.max_det, device=self.device, verbose=False)[0]
        boxes = result.boxes
        conf = boxes.conf.cpu().numpy().astype(np.float32)
        order = np.argsort(-conf, kind="stable")
        return Detections(boxes.xyxy.cpu().numpy().astype(np.float32)[order], conf[order],
                          boxes.cls.cpu().numpy().astype(np.int64)[order])

    def describe(self) -> dict[str, Any]:
        return {"weights": self.weights, "weights_path": str(self.path),
                "weights_sha256": self.sha256, "imgsz": self.imgsz, "conf": self.conf,
                "nms_iou": self.iou, "max_det": self.max_det, "device": self.device}


# ultralytics' matching and reduction ---------------------------------------------------------------
_VALIDATOR: Any = None


def _validator() -> Any:
    """One ``DetectionValidator`` (its ``_process_batch`` / ``match_predictions`` / ``iouv``)."""
    global _VALIDATOR
    if _VALIDATOR is None:
        configure_ultralytics()
        from ultralytics.models.yolo.detect import DetectionValidator

        save_dir = Path(tempfile.gettempdir()) / "restorebench-ultralytics-val"
        _VALIDATOR = DetectionValidator(save_dir=save_dir, args={"task": "detect", "plots": False})
        assert _VALIDATOR.niou == N_IOU
    return _VALIDATOR


def match(detections: Detections, labels: Labels) -> np.ndarray:
    """The ``(N, 10)`` true-positive matrix of ultralytics' ``DetectionValidator``."""
    validator = _validator()
    preds = {"bboxes": torch.from_numpy(detections.boxes).float(),
             "cls": torch.from_numpy(detections.cls).float()}
    batch = {"bboxes": torch.from_numpy(labels.boxes).float(),
             "cls": torch.from_numpy(labels.cls).float()}
    return np.asarray(validator._process_batch(preds, batch)["tp"], dtype=bool)


def pack_tp(tp: np.ndarray) -> list[int]:
    return [int(v) for v in (tp.astype(np.int64) * _BITS).sum(axis=1)] if len(tp) else []


def unpack_tp(bits: list[int]) -> np.ndarray:
    values = np.asarray(bits, dtype=np.int64).reshape(-1, 1)
    return (values & _BITS).astype(bool) if len(bits) else np.zeros((0, N_IOU), bool)


def prediction_state(detections: Detections, labels: Labels) -> dict[str, list]:
    tp = match(detections, labels)
    return {"tp": pack_tp(tp), "conf": [round(float(c), 6) for c in detections.conf],
            "cls": [int(c) for c in detections.cls]}


def _key(name: str) -> str:
    return name.strip().replace(" ", "_")


def reduce_states(states: list[dict[str, Any]], names: dict[int, str], prefix: str) -> dict[str, float]:
    """Concatenate per-image states and reduce them with ultralytics' ``DetMetrics``.

    ``states`` need ``tp``, ``conf``, ``cls``, ``target_cls`` (and optionally ``id``).
    """
    configure_ultralytics()
    from ultralytics.utils.metrics import DetMetrics

    if not hasattr(DetMetrics, "update_stats"):
        raise RuntimeError(f"ultralytics {ultralytics_version()}: DetMetrics has no update_stats; "
                           f"the detection metric needs the ultralytics>=8.4 API (tested: 8.4.190)")
    metrics = DetMetrics(names=dict(names))
    n_targets = n_predictions = 0
    for index, state in enumerate(states):
        target_cls = np.asarray(state["target_cls"], dtype=np.float64)
        tp = unpack_tp(state["tp"])
        n_targets += len(target_cls)
        n_predictions += len(tp)
        metrics.update_stats({"tp": tp, "conf": np.asarray(state["conf"], dtype=np.float64),
                              "pred_cls": np.asarray(state["cls"], dtype=np.float64),
                              "target_cls": target_cls, "target_img": np.unique(target_cls),
                              "im_name": str(state.get("id", index))})
    out: dict[str, float] = {f"{prefix}.n_images": float(len(states)),
                             f"{prefix}.n_targets": float(n_targets),
                             f"{prefix}.n_predictions": float(n_predictions)}
    if n_targets == 0:  # no labels at all: mAP is undefined, not 0
        out.update({prefix: math.nan, f"{prefix}.map50_95": math.nan,
                    f"{prefix}.precision": math.nan, f"{prefix}.recall": math.nan})
        return out
    metrics.process(save_dir=Path(tempfile.gettempdir()), plot=False)
    box = metrics.box
    out.update({prefix: float(box.map50), f"{prefix}.map50_95": float(box.map),
                f"{prefix}.precision": float(box.mp), f"{prefix}.recall": float(box.mr)})
    for i, cls in enumerate(metrics.ap_class_index):
        label = _key(names.get(int(cls), str(int(cls))))
        out[f"{prefix}.ap50.{label}"] = float(box.ap50[i])
        out[f"{prefix}.ap50_95.{label}"] = float(box.ap[i])
    return out


# The metric -------------------------------------------------------------------------------------------
_CLEAN_CACHE: OrderedDict[tuple, Detections] = OrderedDict()
_CLEAN_CACHE_SIZE = 4096


def _digest(array: np.ndarray) -> str:
    return hashlib.blake2b(array.tobytes() + str(array.shape).encode(), digest_size=16).hexdigest()


def sample_id_of(meta: dict[str, Any]) -> str:
    """The sample id (= image stem = label file stem): ``meta['sample_id']`` when the runner
    provides it, else the stem of the clean (``gt_path``) or input (``lq_path``) file."""
    for key in ("sample_id", "id"):
        if meta.get(key):
            return str(meta[key])
    for key in ("gt_path", "lq_path"):
        if meta.get(key):
            return Path(str(meta[key])).stem
    raise KeyError("detection needs the sample id in meta ('sample_id', or 'gt_path'/'lq_path' "
                   "whose stem is the label file's)")


class DetectionMetric(DatasetMetric):
    """See the module docstring. One instance per run; the detector is shared."""

    def __init__(self, name: str, detector: Detector, protocol: str, dataset: YoloDataset | None,
                 class_map: ClassMap | None, conf_label: float):
        if protocol not in PROTOCOLS:
            raise ValueError(f"labels protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if protocol == "gt" and (dataset is None or class_map is None):
            raise ValueError("labels=gt needs a dataset (data yaml or labels folder)")
        self.name, self.detector, self.protocol = name, detector, protocol
        self.dataset, self.class_map, self.conf_label = dataset, class_map, float(conf_label)

    def detect_clean(self, gt: torch.Tensor) -> Detections:
        """Detections on the clean twin, cached per (detector settings, image content)."""
        array = to_bgr_uint8(gt)
        key = (self.detector.key, _digest(array))
        if key in _CLEAN_CACHE:
            _CLEAN_CACHE.move_to_end(key)
            return _CLEAN_CACHE[key]
        detections = self.detector(array)
        _CLEAN_CACHE[key] = detections
        if len(_CLEAN_CACHE) > _CLEAN_CACHE_SIZE:
            _CLEAN_CACHE.popitem(last=False)
        return detections

    def labels_for(self, sample_id: str, shape: tuple[int, int]) -> tuple[Labels, int]:
        assert self.dataset is not None and self.class_map is not None
        expected = self.dataset.image_size(sample_id)
        if tuple(shape) != expected:
            raise ValueError(f"{sample_id}: scored image is {shape[0]}x{shape[1]} but the labelled "
                             f"image is {expected[0]}x{expected[1]}; detection labels need uncropped, "
                             f"unresized images (no crop= on the task)")
        return self.class_map.map_labels(self.dataset.labels(sample_id))

    def update(self, out: Any, gt: Any | None, meta: dict[str, Any]) -> dict[str, Any]:
        sample_id = sample_id_of(meta)
        shape = tuple(out.shape[-2:])
        detections = self.detector(out)
        if self.protocol == "pseudo":
            if gt is None:
                raise ValueError("labels=pseudo needs the clean twin (a task with GT)")
            labels, dropped = self.detect_clean(gt).above(self.conf_label), 0
            state: dict[str, Any] = {"id": sample_id, **prediction_state(detections, labels)}
        else:
            labels, dropped = self.labels_for(sample_id, shape)
            keep = self.class_map.detector_classes if self.class_map else None
            state = {"id": sample_id, **prediction_state(detections.only(keep), labels)}
            if gt is not None:
                state["clean"] = prediction_state(self.detect_clean(gt).only(keep), labels)
        state["target_cls"] = [int(c) for c in labels.cls]
        state["n_dropped"] = dropped
        return state

    def compute(self, states: list[Any]) -> dict[str, float]:
        states = [s for s in states if s is not None]
        out = reduce_states(states, self.detector.names, self.name)
        if self.protocol == "gt" and states and all("clean" in s for s in states):
            clean = [{**s["clean"], "target_cls": s["target_cls"], "id": s.get("id")} for s in states]
            stats = reduce_states(clean, self.detector.names, f"{self.name}.clean")
            out.update({k: v for k, v in stats.items() if ".ap50" not in k and ".n_" not in k})
        out[f"{self.name}.n_dropped_targets"] = float(sum(s.get("n_dropped", 0) for s in states))
        return out


def _stand_in(weights: str | Path) -> str | None:
    """The stand-in note when ``weights`` is :mod:`downstream.toy_detector`'s model (it marks
    itself), so its numbers are never mistaken for a real detector's."""
    from downstream.toy_detector import stand_in_note

    return stand_in_note(load_detector(weights, "cpu")[0])


def headline_name(protocol: str) -> str:
    return {"gt": "det_map50", "pseudo": "consistency_map50"}[protocol]


def detection_metric_spec(weights: str | Path, data_yaml_or_labels: str | Path | None = None,
                          protocol: str = "gt", conf_label: float = 0.25, imgsz: int = 640,
                          device: str | torch.device | None = None, *, split: str = "val",
                          class_map: str | dict[str, str] = "auto", conf: float = 0.001,
                          iou: float = 0.7, max_det: int = 300,
                          name: str | None = None, trust_detector: bool = False) -> MetricSpec:
    """A dataset-level metric spec the runner computes in the same pass as PSNR/SSIM.

    ``protocol="gt"`` (mode ``meta``: the labels come from ``data_yaml_or_labels`` by sample id;
    GT, when the task has it, adds the clean row) or ``"pseudo"`` (mode ``FR``). Weights and
    labels are checked here, before any run starts; the model is loaded in ``build``.
    ``device=None`` uses the runner's device. The weights file is scanned for foreign pickle
    globals here, before anything unpickles it (:func:`~downstream.yolo_env.scan_detector`),
    unless ``trust_detector``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"--labels must be one of {PROTOCOLS}, got {protocol!r}")
    local = resolve_weights(weights)  # a missing file fails now, naming the file
    if not trust_detector:
        scan_detector(local)
    if protocol == "gt" and data_yaml_or_labels is None:
        raise ValueError("labels=gt needs a data yaml or labels folder")
    # a labels folder has no class names: its ids are the detector's (class map "none")
    labels_folder = protocol == "gt" and Path(str(data_yaml_or_labels)).is_dir()
    if labels_folder and class_map == "auto":
        class_map = "none"
    dataset = load_dataset(data_yaml_or_labels, split) if protocol == "gt" and not labels_folder \
        else None
    metric_name = name or headline_name(protocol)
    stand_in = _stand_in(weights)

    def build(conventions: Any, runner_device: Any) -> DetectionMetric:
        chosen = device if device is not None else (runner_device or "cpu")
        detector = Detector(weights, imgsz=imgsz, device=str(chosen), conf=conf, iou=iou,
                            max_det=max_det, trust=trust_detector)
        data = load_dataset(data_yaml_or_labels, split, detector.names) if labels_folder else dataset
        cmap = resolve_class_map(data.names, detector.names, class_map) if data else None
        return DetectionMetric(metric_name, detector, protocol, data, cmap, conf_label)

    def describe(conventions: Any) -> dict[str, Any]:
        info: dict[str, Any] = {
            "protocol": "real labels" if protocol == "gt" else "pseudo ground truth (consistency)",
            "weights": str(weights), "weights_sha256": file_sha256(resolve_weights(weights)),
            "imgsz": imgsz, "conf": conf, "nms_iou": iou, "max_det": max_det,
            "iou_thresholds": "0.50:0.05:0.95",
            "evaluator": "ultralytics DetectionValidator._process_batch + DetMetrics "
                         "(101-point interpolated AP)",
            "ultralytics": ultralytics_version()}
        if stand_in:
            info["stand_in"] = stand_in
        if protocol == "pseudo":
            info["conf_label"] = conf_label
        if protocol == "gt":
            info.update({"labels": str(dataset.labels_dir if dataset else data_yaml_or_labels),
                         "split": split,
                         "class_map": class_map if isinstance(class_map, str) else "custom"})
        return info

    what = ("mAP50 of a YOLO detector against real labels" if protocol == "gt" else
            f"detection consistency: mAP50 against the detector's own clean-image boxes "
            f"(conf ≥ {conf_label})")
    if stand_in:
        what = f"STAND-IN, not a real mAP: {what}; {stand_in}"
    return MetricSpec(name=metric_name, mode="meta" if protocol == "gt" else "FR",
                      lower_better=False, description=what, build=build, describe=describe,
                      kind="dataset", group="detection")
