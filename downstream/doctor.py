"""``bench doctor`` check of ``bench detect``'s detector weights: a hub-named YOLO file in
restorebench's ultralytics folder (:func:`downstream.yolo_env.weights_dir`). Imports no
ultralytics."""

from __future__ import annotations

from harness.api.checks import Check, register_check

DEFAULT_DETECTOR = "yolo11n.pt"  # the README's examples


@register_check("detect")
def detect_checks() -> list[Check]:
    from downstream.yolo_env import weights_dir

    cached = weights_dir() / DEFAULT_DETECTOR
    found = cached.is_file()
    return [Check(
        "weights", f"YOLO detector {DEFAULT_DETECTOR} (bench detect)", found,
        str(cached) if found else f"not at {cached} (downloaded there on first use when online)",
        "" if found else f"python -c \"from ultralytics import YOLO; YOLO('{DEFAULT_DETECTOR}')\" "
                         f"online, then copy {DEFAULT_DETECTOR} to {cached} (or pass --detector FILE)")]
