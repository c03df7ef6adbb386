"""ultralytics, quietly and offline-safe: configuration before import, and loading a detector.

What ultralytics does by default on first use, and what we do about each (all before the first
``import ultralytics``, because several of them run at import time):

* **settings file in the home folder** (``~/.config/Ultralytics/settings.json``, written at import):
  ``YOLO_CONFIG_DIR`` is set to ``$BENCH_HOME/ultralytics`` (default
  ``~/.cache/restorebench/ultralytics``), so the settings file, downloaded fonts and any other
  per-user state live in our cache.
* **DNS probe at import** (``ultralytics.utils.ONLINE = is_online()``, resolving
  ``one.one.one.one`` / ``dns.google``; on an air-gapped host a resolver timeout stalls every
  import): ``YOLO_OFFLINE=1`` makes ``is_online()`` return False without a lookup. ``ONLINE`` only
  gates telemetry, the PyPI update check and Sentry, never a weights download, so hub names still
  download when the network is there.
* **telemetry / sync** (``utils.events``, Sentry): ``SETTINGS["sync"] = False`` (and ``ONLINE`` is
  False anyway).
* **pip auto-install of missing requirements**: ``YOLO_AUTOINSTALL=0``.
* **logger integrations** (MLflow, ClearML, Comet, DVC, Ray Tune, TensorBoard, W&B callbacks that
  fire during training, e.g. the toy detector of the tests): all switched off in ``SETTINGS``, so
  ultralytics never logs into our MLflow experiment.
* **AMP check** (downloads ``yolo26n.pt`` on the first CUDA *training* run) and **fonts**
  (``Arial.ttf`` for PIL plotting): we never train on CUDA and never use ultralytics' plotting;
  :func:`downstream.toy_detector` trains nothing and passes ``amp=False, plots=False`` where it
  would. Our box figures are drawn with matplotlib.

``SETTINGS`` changes are written to the settings file only when that file is ours (under
``$BENCH_HOME``); if something imported ultralytics before us, they are applied in memory only,
never written to the user's own settings file.

Weights: :func:`resolve_weights` accepts a path (works offline) or a hub name such as
``yolo11n.pt`` (looked up in ``$BENCH_HOME/ultralytics/weights`` first, downloaded there by
ultralytics' own ``attempt_download_asset`` when online). Offline (``BENCH_OFFLINE=1``,
``HF_HUB_OFFLINE=1``) a missing file raises :class:`DetectorWeightsMissing` naming the file and
where to put it.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.assets import bench_home, offline

#: settings switched off on every use (telemetry and logger integrations).
_SETTINGS_OFF = ("sync", "mlflow", "clearml", "comet", "dvc", "raytune", "tensorboard", "wandb")


class DetectorWeightsMissing(FileNotFoundError):
    """Detector weights are not on disk and cannot be downloaded (offline or failed)."""


def ultralytics_home() -> Path:
    return bench_home() / "ultralytics"


def weights_dir() -> Path:
    """Where hub-named detector weights are looked up and downloaded to."""
    return ultralytics_home() / "weights"


_configured = False


def configure_ultralytics() -> Any:
    """Set the environment, import ultralytics, switch off telemetry and integrations.

    Idempotent; returns the ``ultralytics`` module. Environment variables the user set win
    (``setdefault``), so ``YOLO_CONFIG_DIR=...`` or ``YOLO_OFFLINE=0`` still work.
    """
    global _configured
    already_imported = "ultralytics" in sys.modules
    if not already_imported:
        os.environ.setdefault("YOLO_CONFIG_DIR", str(ultralytics_home()))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "0")
        os.environ.setdefault("YOLO_VERBOSE", "0")
    import ultralytics
    from ultralytics.utils import SETTINGS

    if not _configured:
        updates = {k: False for k in _SETTINGS_OFF if SETTINGS.get(k) is not False}
        settings_file = getattr(SETTINGS, "file_path", None)
        ours = settings_file is not None and Path(settings_file).resolve().is_relative_to(
            bench_home().resolve())
        if updates:
            if ours:
                SETTINGS.update(updates)  # persisted in our own settings file
            else:
                dict.update(SETTINGS, updates)  # in memory only: never rewrite the user's file
        _configured = True
    return ultralytics


def ultralytics_version() -> str:
    from importlib.metadata import version

    return version("ultralytics")


def _looks_like_hub_name(weights: str) -> bool:
    """``yolo11n.pt`` (no folder part) is a hub name; ``./x.pt`` or ``/a/x.pt`` is a path."""
    return os.sep not in weights and "/" not in weights and not weights.startswith(".")


def resolve_weights(weights: str | Path) -> Path:
    """The local file of a detector: a path as given, or a hub name cached in our weights dir.

    Raises:
        DetectorWeightsMissing: the file is absent and offline mode forbids (or the network
            failed) downloading it; the message names the file and where to place it.
    """
    text = str(weights)
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    if not _looks_like_hub_name(text):
        raise DetectorWeightsMissing(
            f"detector weights {text!r} not found (no such file: {path.resolve()}). "
            f"Pass an existing .pt file, or a hub name such as 'yolo11n.pt' when online.")
    cached = weights_dir() / text
    if cached.is_file():
        return cached
    where = (f"Download {text} on a machine with internet access (e.g. `python -c \"from "
             f"ultralytics import YOLO; YOLO('{text}')\"` or the ultralytics/assets GitHub "
             f"release) and copy it to {cached}, or pass its path with --detector.")
    if offline():
        raise DetectorWeightsMissing(
            f"detector weights {text!r} are not cached at {cached} and downloads are disabled "
            f"(BENCH_OFFLINE/HF_HUB_OFFLINE). {where}")
    configure_ultralytics()
    from ultralytics.utils.downloads import attempt_download_asset

    cached.parent.mkdir(parents=True, exist_ok=True)
    try:  # the returned path can differ from ``cached``: yolov5n.pt is renamed yolov5nu.pt
        downloaded = Path(attempt_download_asset(cached))
    except Exception as exc:  # network errors of every kind end in the same advice
        raise DetectorWeightsMissing(f"detector weights {text!r}: download failed "
                                     f"({type(exc).__name__}: {exc}). {where}") from exc
    if not downloaded.is_file():
        raise DetectorWeightsMissing(f"detector weights {text!r}: ultralytics knows no such "
                                     f"release asset. {where}")
    return downloaded


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, device: str) -> Any:
    configure_ultralytics()
    from ultralytics import YOLO

    return YOLO(path, task="detect")


def load_detector(weights: str | Path, device: str = "cpu") -> tuple[Any, Path]:
    """``(ultralytics.YOLO, local weights path)``; one model object per (file, device) and
    process: ultralytics binds its predictor to the device of the first ``predict`` call."""
    path = resolve_weights(weights)
    return _load(str(path), path.stat().st_mtime_ns, str(device)), path
