"""YOLO-format detection data: the data yaml, images and labels keyed by sample id, class maps.

A YOLO dataset is a yaml (``path``, ``train``, ``val``, ``names``) plus ``images/<split>/x.jpg``
and ``labels/<split>/x.txt`` (one ``cls cx cy w h`` line per box, normalised to [0, 1]). The
label of an image is found by ultralytics' own rule (``ultralytics.data.utils.img2label_paths``:
the last ``/images/`` becomes ``/labels/``, the suffix ``.txt``), and the **sample id is the image
stem**, which is also the id the ``synth:...[clean_dir=...]`` and ``folder[...]`` tasks give it.
An image without a label file is a background image (no objects), as in ultralytics.

Resolving ``path``: absolute as given; relative, against the yaml's folder (ultralytics resolves it
against its ``datasets_dir`` instead, which is why the shipped ``coco8.yaml`` says
``../datasets/coco8``); when that folder does not hold the split, the yaml's own folder is tried.
Never edit a shared yaml: pass a copy, or rely on that fallback.

Class maps (a COCO-trained detector scored on another dataset's own labels, protocol 2 of
``conventions.md`` §4.2): dataset class names are mapped to detector class names by a table, and
only mapped classes are scored (boxes of unmapped dataset classes are dropped and counted;
detections of detector classes outside the map are ignored).

* ``EXDARK_TO_COCO``: ExDark's 12 classes as listed in ``Groundtruth/README.md`` of
  cs-chan/Exclusively-Dark-Image-Dataset (Bicycle(1) ... Table(12)); every one exists in COCO-80
  (names as in ultralytics ``cfg/datasets/coco.yaml``); People→person, Motorbike→motorcycle,
  Table→dining table, the rest are the same word in lower case.
* ``RTTS_TO_COCO``: RTTS (RESIDE-β, Li et al., "Benchmarking Single-Image Dehazing and Beyond",
  IEEE TIP 2019) annotates five PASCAL-VOC classes in VOC XML: person, bicycle, car, bus,
  motorbike; VOC's ``motorbike`` is COCO's ``motorcycle``.

Converters from the datasets' native annotation formats to YOLO labels are here too
(:func:`convert_exdark`, :func:`convert_voc`): ExDark's licence forbids redistributing its
annotations, so users convert their own copy locally; nothing converted lives in the repository.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

EXDARK_CLASSES = ("Bicycle", "Boat", "Bottle", "Bus", "Car", "Cat", "Chair", "Cup", "Dog",
                  "Motorbike", "People", "Table")
EXDARK_TO_COCO: dict[str, str] = {
    "Bicycle": "bicycle", "Boat": "boat", "Bottle": "bottle", "Bus": "bus", "Car": "car",
    "Cat": "cat", "Chair": "chair", "Cup": "cup", "Dog": "dog", "Motorbike": "motorcycle",
    "People": "person", "Table": "dining table",
}
RTTS_CLASSES = ("person", "bicycle", "car", "bus", "motorbike")
RTTS_TO_COCO: dict[str, str] = {"person": "person", "bicycle": "bicycle", "car": "car",
                                "bus": "bus", "motorbike": "motorcycle"}
CLASS_MAPS: dict[str, dict[str, str]] = {"exdark": EXDARK_TO_COCO, "rtts": RTTS_TO_COCO}


@dataclass(frozen=True)
class Labels:
    """Boxes of one image in pixels: ``boxes`` (M, 4) xyxy float32, ``cls`` (M,) int64."""

    boxes: np.ndarray
    cls: np.ndarray

    @staticmethod
    def empty() -> Labels:
        return Labels(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))


@dataclass
class YoloDataset:
    """One split of a YOLO dataset: image and label folders, class names, id → files."""

    images_dir: Path
    names: dict[int, str]
    labels_dir: Path | None = None
    yaml_path: Path | None = None
    split: str = "val"
    _images: dict[str, Path] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"image folder {self.images_dir} does not exist")
        self._images = {p.stem: p for p in sorted(self.images_dir.iterdir())
                        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
        if not self._images:
            raise FileNotFoundError(f"no images in {self.images_dir}")
        if self.labels_dir is None:
            from downstream.yolo_env import configure_ultralytics

            configure_ultralytics()
            from ultralytics.data.utils import img2label_paths

            first = next(iter(self._images.values()))
            self.labels_dir = Path(img2label_paths([str(first)])[0]).parent

    @property
    def name(self) -> str:
        return self.yaml_path.stem if self.yaml_path else self.images_dir.parent.parent.name

    def sample_ids(self) -> list[str]:
        return list(self._images)

    def image_path(self, sample_id: str) -> Path:
        return self._images[sample_id]

    def label_path(self, sample_id: str) -> Path:
        assert self.labels_dir is not None
        return self.labels_dir / f"{sample_id}.txt"

    def image_size(self, sample_id: str) -> tuple[int, int]:
        """``(height, width)`` of the labelled image, read from the file header only."""
        with Image.open(self._images[sample_id]) as img:
            width, height = img.size
        return height, width

    def labels(self, sample_id: str) -> Labels:
        """The boxes of ``sample_id`` in pixels of the labelled image (xyxy)."""
        if sample_id not in self._images:
            raise KeyError(f"sample {sample_id!r} has no image in {self.images_dir}; detection "
                           f"labels are keyed by image stem")
        height, width = self.image_size(sample_id)
        return read_yolo_labels(self.label_path(sample_id), width, height,
                                set(self.names) or None)


def read_yolo_labels(path: Path, width: int, height: int,
                     classes_known: Collection[int] | None = None) -> Labels:
    """Parse a YOLO label file; polygon (segment) lines become their bounding box, as in
    ultralytics' ``segments2boxes``. A missing or empty file means no objects.

    Raises ``ValueError`` naming ``file:line`` for a line that is not numbers, a class id that is
    not an integer (or not one of ``classes_known``, the dataset's ids), a non-finite
    coordinate, or a box with a negative or zero width or height: a wrong label would score
    silently."""
    if not path.is_file():
        return Labels.empty()
    boxes, classes = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{number}"
        if len(parts) < 5 or len(parts) % 2 == 0:
            raise ValueError(f"{where}: expected 'cls cx cy w h' or 'cls x1 y1 x2 y2 ...', "
                             f"got {line!r}")
        try:
            label = float(parts[0])
            values = np.asarray(parts[1:], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{where}: not numbers: {line!r}") from None
        if not (label.is_integer() and np.isfinite(values).all()):
            raise ValueError(f"{where}: class id must be an integer and coordinates finite, "
                             f"got {line!r}")
        if classes_known is not None and int(label) not in classes_known:
            raise ValueError(f"{where}: class {int(label)} is not one of the dataset's classes "
                             f"(0..{max(classes_known, default=-1)})")
        if len(parts) == 5:
            cx, cy, w, h = values
            if w <= 0 or h <= 0:
                raise ValueError(f"{where}: box width and height must be positive, got {line!r}")
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:
            xs, ys = values[0::2], values[1::2]
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
        boxes.append([x1 * width, y1 * height, x2 * width, y2 * height])
        classes.append(int(label))
    if not boxes:
        return Labels.empty()
    return Labels(np.asarray(boxes, np.float32), np.asarray(classes, np.int64))


def _names(raw: object) -> dict[int, str]:
    if isinstance(raw, dict):
        return {int(k): str(v) for k, v in raw.items()}
    if isinstance(raw, (list, tuple)):
        return dict(enumerate(str(v) for v in raw))
    raise ValueError(f"'names' must be a list or a mapping, got {type(raw).__name__}")


def load_data_yaml(path: str | Path, split: str = "val") -> YoloDataset:
    """Parse a YOLO data yaml and return the ``split`` (``val`` by default) as a dataset."""
    yaml_path = Path(path).expanduser().resolve()
    data = yaml.safe_load(yaml_path.read_text())
    if not isinstance(data, dict) or "names" not in data:
        raise ValueError(f"{yaml_path}: not a YOLO data yaml (needs 'names' and '{split}')")
    entry = data.get(split)
    if not entry:
        raise ValueError(f"{yaml_path}: no '{split}' split (has: "
                         f"{[k for k in ('train', 'val', 'test') if data.get(k)]})")
    if not isinstance(entry, str):
        raise ValueError(f"{yaml_path}: split '{split}' must be one folder (lists and .txt file "
                         "lists are not supported here)")
    root = Path(str(data.get("path") or "")).expanduser()
    candidates = [root if root.is_absolute() else yaml_path.parent / root, yaml_path.parent]
    tried = []
    for base in candidates:
        folder = (base / entry).resolve()
        tried.append(str(folder))
        if folder.is_dir():
            return YoloDataset(folder, _names(data["names"]), yaml_path=yaml_path, split=split)
    raise FileNotFoundError(f"{yaml_path}: split '{split}' not found; tried {tried}. Rewrite "
                            f"'path:' in a copy of the yaml to point at the dataset folder.")


def load_dataset(source: str | Path, split: str = "val",
                 names: dict[int, str] | None = None) -> YoloDataset:
    """A data yaml, or a labels folder (``.../labels/<split>``) next to ``.../images/<split>``."""
    path = Path(source).expanduser()
    if path.suffix.lower() in (".yaml", ".yml"):
        return load_data_yaml(path, split)
    if path.is_dir():
        if names is None:
            raise ValueError(f"{path}: a labels folder needs class names (give the data yaml "
                             f"instead, or names=...)")
        parts = list(path.resolve().parts)
        if "labels" not in parts:
            raise ValueError(f"{path}: expected a YOLO labels folder (.../labels/<split>)")
        at = len(parts) - 1 - parts[::-1].index("labels")
        images = Path(*parts[:at], "images", *parts[at + 1:])
        return YoloDataset(images, names, labels_dir=path.resolve(), split=split)
    raise FileNotFoundError(f"{source}: neither a data yaml nor a labels folder")


# Class maps ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassMap:
    """Dataset class id → detector class id, for the dataset classes that have a counterpart."""

    to_detector: dict[int, int]
    unmapped: tuple[str, ...]
    table: str

    def map_labels(self, labels: Labels) -> tuple[Labels, int]:
        """Labels in detector class ids, and how many boxes were dropped as unmapped."""
        keep = np.asarray([int(c) in self.to_detector for c in labels.cls], bool)
        cls = np.asarray([self.to_detector[int(c)] for c in labels.cls[keep]], np.int64)
        return Labels(labels.boxes[keep], cls), int((~keep).sum())

    @property
    def detector_classes(self) -> set[int]:
        return set(self.to_detector.values())


def resolve_class_map(dataset_names: dict[int, str], detector_names: dict[int, str],
                      table: str | dict[str, str] = "auto") -> ClassMap:
    """Map dataset classes to detector classes.

    ``table``: ``auto`` (identical names → identity; names equal to a known table's keys →
    that table; otherwise case-insensitive equal names), ``exdark``, ``rtts``, ``none`` (class
    ids are taken as they are: the dataset uses the detector's ids), or an explicit
    ``{dataset name: detector name}`` dict.
    """
    by_name = {v.lower(): k for k, v in detector_names.items()}
    if table == "none":
        return ClassMap({i: i for i in dataset_names if i in detector_names}, (), "none")
    if isinstance(table, dict):
        mapping, label = table, "custom"
    elif table == "auto":
        lowered = {v.lower() for v in dataset_names.values()}
        mapping, label = {}, "by name"
        for key, known in CLASS_MAPS.items():
            if lowered == {k.lower() for k in known}:
                mapping, label = known, key
                break
    elif table in CLASS_MAPS:
        mapping, label = CLASS_MAPS[table], table
    else:
        raise ValueError(f"unknown class map {table!r}; use auto, none, {sorted(CLASS_MAPS)}")
    lowered_map = {k.lower(): v.lower() for k, v in mapping.items()}
    to_detector: dict[int, int] = {}
    unmapped: list[str] = []
    for index, name in dataset_names.items():
        target = lowered_map.get(name.lower(), name.lower() if not mapping else None)
        if target is not None and target in by_name:
            to_detector[index] = by_name[target]
        else:
            unmapped.append(name)
    if not to_detector:
        raise ValueError(f"no dataset class maps to a detector class (dataset: "
                         f"{list(dataset_names.values())[:12]}, detector: "
                         f"{list(detector_names.values())[:12]}...); give a class map")
    return ClassMap(to_detector, tuple(unmapped), label)


# Converters -----------------------------------------------------------------------------------------
def _write_yolo(target: Path, rows: Iterable[tuple[int, float, float, float, float]]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in rows))


def _xywh_norm(left: float, top: float, w: float, h: float, width: int, height: int):
    return (left + w / 2) / width, (top + h / 2) / height, w / width, h / height


def convert_exdark(annotation: Path, image: Path, target: Path) -> int:
    """One ExDark ``.txt`` (``% bbGt`` header, ``Class l t w h ...`` lines in pixels) → YOLO.

    Class ids follow :data:`EXDARK_CLASSES` (0-based, in the README's order). Returns the box count.
    """
    with Image.open(image) as img:
        width, height = img.size
    rows = []
    for line in Path(annotation).read_text(errors="replace").splitlines():
        parts = line.split()
        if not parts or line.startswith("%"):
            continue
        name, (left, top, w, h) = parts[0], map(float, parts[1:5])
        rows.append((EXDARK_CLASSES.index(name), *_xywh_norm(left, top, w, h, width, height)))
    _write_yolo(target, rows)
    return len(rows)


def convert_voc(xml_path: Path, target: Path, classes: tuple[str, ...] = RTTS_CLASSES) -> int:
    """One PASCAL-VOC XML (RTTS, LOD) → YOLO, class ids in ``classes`` order; others skipped."""
    root = ET.parse(xml_path).getroot()
    size = root.find("size")
    assert size is not None, f"{xml_path}: no <size>"
    width, height = int(size.findtext("width", "0")), int(size.findtext("height", "0"))
    rows = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if name not in classes or box is None:
            continue
        x1, y1, x2, y2 = (float(box.findtext(k, "0")) for k in ("xmin", "ymin", "xmax", "ymax"))
        rows.append((classes.index(name), *_xywh_norm(x1, y1, x2 - x1, y2 - y1, width, height)))
    _write_yolo(target, rows)
    return len(rows)


def write_data_yaml(target: Path, root: Path, names: Iterable[str], val: str = "images/val") -> Path:
    """A minimal YOLO data yaml (``path`` absolute) for converted data."""
    target.write_text(yaml.safe_dump({"path": str(Path(root).resolve()), "val": val,
                                      "names": dict(enumerate(names))}, sort_keys=False))
    return target
