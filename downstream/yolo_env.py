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

Scan: an ultralytics ``.pt`` is a pickled model, and ``YOLO(path)`` unpickles it whole (code in
the file would run). :func:`scan_detector` first lists the file's pickle globals without
unpickling (:func:`harness.io.safe_load.pickle_globals`) and refuses any outside
:func:`allowed_global`: the ``nn.Module`` classes of ``torch.nn`` and ``ultralytics.nn``, torch's
tensor rebuilders, storages, dtypes and sizes, numpy's array and scalar reconstruction,
``collections.OrderedDict``, ``set``/``frozenset``/``slice`` and ultralytics'
``IterableSimpleNamespace`` (its ``train_args``): what real ultralytics checkpoints reference
(the test suite's stand-in YOLO; ``tests/test_untrusted_files.py``). ``--trust-detector``
skips the scan for a file you made yourself (``docs/detection.md``).
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


class UntrustedDetector(ValueError):
    """A detector file references globals a real ultralytics checkpoint does not use."""


#: Plain data constructors a checkpoint may reference, by (module, name).
_PLAIN_GLOBALS = frozenset({
    ("collections", "OrderedDict"), ("__builtin__", "set"), ("builtins", "set"),
    ("__builtin__", "frozenset"), ("builtins", "frozenset"), ("__builtin__", "slice"),
    ("builtins", "slice"), ("torch", "Size"), ("torch", "device"),
    ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch.storage", "UntypedStorage"), ("torch.storage", "TypedStorage"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("ultralytics.utils", "IterableSimpleNamespace"),
})

#: Packages whose ``nn.Module`` subclasses a checkpoint may name (imported to check; they are
#: the installed code, which is trusted; the file's names only pick classes from them).
_MODULE_PACKAGES = ("torch.nn.modules.", "ultralytics.nn.")


def allowed_global(module: str, name: str) -> bool:
    """Whether a detector checkpoint may reference ``module.name``: a plain constructor of
    :data:`_PLAIN_GLOBALS`, a torch storage or dtype, or an ``nn.Module`` class of torch.nn or
    ultralytics.nn (a class, never a function: a pickle calls what it names)."""
    import importlib

    import torch

    if (module, name) in _PLAIN_GLOBALS:
        return True
    if module == "torch":
        return name.endswith("Storage") or isinstance(getattr(torch, name, None), torch.dtype)
    if module.startswith("numpy.dtypes") and name.endswith("DType"):
        return True
    if not module.startswith(_MODULE_PACKAGES) or "." in name:
        return False
    try:
        target = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    return isinstance(target, type) and issubclass(target, torch.nn.Module)


def scan_detector(path: str | Path) -> None:
    """Refuse a detector file that references anything :func:`allowed_global` does not allow,
    before ultralytics unpickles it.

    Raises:
        UntrustedDetector: naming the globals and how to proceed.
    """
    from harness.io.safe_load import UnsafeFileError, describe_globals, pickle_globals

    configure_ultralytics()  # allowed_global may import ultralytics.nn: settings first
    try:
        names = pickle_globals(path)
    except UnsafeFileError as exc:
        raise UntrustedDetector(f"--detector {path}: not an ultralytics .pt checkpoint ({exc})") from exc
    refused = [(m, n) for m, n in names if not allowed_global(m, n)]
    if refused:
        raise UntrustedDetector(
            f"--detector {path} references {describe_globals(refused)}, which a YOLO checkpoint "
            f"does not use; loading it (ultralytics unpickles the whole model) could run code. "
            f"Use a detector from a source you trust; if you made this file yourself, pass "
            f"--trust-detector (docs/detection.md)")


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


def load_detector(weights: str | Path, device: str = "cpu", *, trust: bool = False
                  ) -> tuple[Any, Path]:
    """``(ultralytics.YOLO, local weights path)``; one model object per (file, device) and
    process: ultralytics binds its predictor to the device of the first ``predict`` call.
    The file is scanned first (:func:`scan_detector`) unless ``trust``."""
    path = resolve_weights(weights)
    if not trust:
        scan_detector(path)
    return _load(str(path), path.stat().st_mtime_ns, str(device)), path
