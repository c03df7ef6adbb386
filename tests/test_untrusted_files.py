"""Files a user hands the harness are untrusted: none of them may run code (docs/security.md).

Each code-execution test builds a marker-writing pickle, ``torch.save({"init": Evil(marker)})``
whose ``__reduce__`` returns ``(os.system, ("echo pwned >> MARKER",))``, hands it to the harness
the way a user would, and asserts that the harness refused it with a message and that the
marker file was never written.
"""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from harness.io.safe_load import UnsafeFileError, load_npz, load_torch_file, pickle_globals


class Evil:
    """Unpickling this runs a shell command that appends to ``marker``."""

    def __init__(self, marker: Path):
        self.command = f"echo pwned >> {marker}"

    def __reduce__(self):
        return (os.system, (self.command,))


def evil_file(tmp_path: Path, name: str = "evil.pt", wrap: bool = True) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    path = tmp_path / name
    torch.save({"init": Evil(marker)} if wrap else Evil(marker), path)
    return path, marker


# the loader itself -------------------------------------------------------------------------------
def test_loader_refuses_code_and_names_it(tmp_path):
    path, marker = evil_file(tmp_path)
    with pytest.raises(UnsafeFileError, match=r"system.*could run code.*state_dict"):
        load_torch_file(path, what="test file")
    assert not marker.exists()
    plain = tmp_path / "plain.pt"
    torch.save({"init": {"w": torch.ones(2)}, "n": 3}, plain)
    assert torch.equal(load_torch_file(plain, what="test file")["init"]["w"], torch.ones(2))


def test_pickle_globals_reads_opcodes_only(tmp_path):
    """GLOBAL (protocol 0-2) and STACK_GLOBAL through the memo (protocol 4+) are both found,
    in a plain pickle and in a torch zip; nothing is unpickled (no marker)."""
    marker = tmp_path / "MARKER"
    for protocol in (0, 2, 4, 5):
        raw = tmp_path / f"p{protocol}.pkl"
        raw.write_bytes(pickle.dumps([Evil(marker), Evil(marker)], protocol=protocol))
        found = pickle_globals(raw)
        assert any(name == "system" for _, name in found), (protocol, found)
        # memoised second reference: optimize() keeps BINGET of the names
        raw.write_bytes(pickletools.optimize(raw.read_bytes()))
        assert any(name == "system" for _, name in pickle_globals(raw))
    path, _ = evil_file(tmp_path)
    assert ("posix", "system") in pickle_globals(path) or ("nt", "system") in pickle_globals(path)
    assert not marker.exists()
    with pytest.raises(UnsafeFileError, match="neither a torch checkpoint nor a pickle"):
        pickle_globals(Path("/etc/hostname") if Path("/etc/hostname").exists() else __file__)


def test_npz_with_objects_refused(tmp_path):
    import numpy as np

    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(UnsafeFileError, match="pickled Python objects"):
        load_npz(tmp_path / "obj.npz", what="test")
    np.savez(tmp_path / "ok.npz", a=np.arange(3))
    assert load_npz(tmp_path / "ok.npz", what="test")["a"].tolist() == [0, 1, 2]


# item 1: LD-RPS inject= and checkpoints ----------------------------------------------------------
def test_ldrps_inject_refuses_code(tmp_path):
    from harness.api.restorer import build_restorer

    path, marker = evil_file(tmp_path)
    restorer = build_restorer("ldrps", inject=str(path))  # no model loads until load()
    with pytest.raises(UnsafeFileError, match="LD-RPS injected state"):
        restorer._injected({"sample_id": "x"})
    assert not marker.exists()


def test_checkpoint_option_refuses_code(tmp_path):
    from harness.api.checkpoints import read_checkpoint

    path, marker = evil_file(tmp_path)
    with pytest.raises(UnsafeFileError, match="checkpoint"):
        read_checkpoint(path)
    assert not marker.exists()


# item 2: assets import and pyiqa ---------------------------------------------------------------
def test_import_ignores_pyiqa_names_and_pyiqa_loads_weights_only(tmp_path, monkeypatch):
    """A file named like pyiqa's BRISQUE weights is not imported (no sha256 to check it
    against), nothing is written to $TORCH_HOME, and even when a user places it in pyiqa's cache
    ($BENCH_HOME/pyiqa) the metric is reported missing, with the reason, and runs no code."""
    from harness.api.task import MetricConventions
    from harness.assets.cache import bench_home
    from harness.cli.main import app
    from harness.metrics.suite import MetricSuite, pyiqa_cache_dir

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    drop = tmp_path / "drop"
    drop.mkdir()
    path, marker = evil_file(drop, "brisque_svm_weights.pth", wrap=False)
    result = CliRunner().invoke(app, ["assets", "import", str(drop)])
    assert result.exit_code == 0, result.output
    assert "not imported" in result.output and "brisque_svm_weights.pth" in result.output
    assert not (tmp_path / "torch_home").exists()
    assert pyiqa_cache_dir() == bench_home() / "pyiqa" and not pyiqa_cache_dir().exists()

    pyiqa_cache_dir().mkdir(parents=True)
    (pyiqa_cache_dir() / path.name).write_bytes(path.read_bytes())
    suite = MetricSuite(["brisque"], MetricConventions(), torch.device("cpu"), has_gt=False)
    assert "brisque" in suite.missing and "could run code" in suite.missing["brisque"]
    assert not marker.exists()


def test_import_needs_full_hash_and_keeps_verified_files(tmp_path):
    from harness.assets.cache import Asset, AssetFile, asset_dir, import_dir
    from harness.io.hashing import file_sha256

    payload = tmp_path / "in" / "weights.bin"
    payload.parent.mkdir()
    payload.write_bytes(b"the real weights")
    digest = file_sha256(payload)
    full = Asset("full-hash", (AssetFile("w.bin", digest, "https://example.invalid/w.bin"),))
    prefix = Asset("prefix-only", (AssetFile("w.bin", digest[:8], "https://example.invalid/w.bin"),))
    report = import_dir(tmp_path / "in", {a.name: a for a in (full, prefix)})
    assert [(i.asset, i.file) for i in report.imported] == [("full-hash", "w.bin")]
    assert report.prefix_only == [("prefix-only", "w.bin")]
    assert not (asset_dir("prefix-only") / "w.bin").exists()  # the prefix matched: not imported
    target = asset_dir("full-hash") / "w.bin"
    stamp = target.stat().st_mtime_ns
    again = import_dir(tmp_path / "in", {full.name: full})
    assert again.imported == [] and [i.file for i in again.present] == ["w.bin"]
    assert target.stat().st_mtime_ns == stamp  # a verified file is never rewritten


def test_backbones_declared_by_full_sha256():
    from harness.assets.metric_weights import LPIPS_BACKBONES

    for spec in LPIPS_BACKBONES.files:
        assert spec.full_hash and spec.sha256.startswith(spec.name.rsplit("-", 1)[1][:8])


def test_import_of_missing_folder_exits_2(tmp_path):
    from harness.cli.main import app

    result = CliRunner().invoke(app, ["assets", "import", str(tmp_path / "nonexistent")])
    assert result.exit_code == 2 and "is not a folder" in result.output


# item 3: YOLO detector -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def standin_yolo(tmp_path_factory) -> Path:
    """The test suite's stand-in YOLO (downstream.toy_detector: the real ultralytics class,
    saved by ultralytics' own ``save``), calibrated on one random image."""
    import numpy as np
    from PIL import Image

    from downstream.toy_detector import build_toy_detector

    root = tmp_path_factory.mktemp("yolo")
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")).save(
        root / "a.png")
    return build_toy_detector(root / "toy.pt", {0: "a", 1: "b"}, [root / "a.png"], imgsz=64)


def test_detector_scan_allows_a_real_checkpoint_and_refuses_code(standin_yolo, tmp_path):
    from downstream.yolo_env import UntrustedDetector, allowed_global, scan_detector

    scan_detector(standin_yolo)  # every global of a real ultralytics checkpoint is allowed
    assert all(allowed_global(m, n) for m, n in pickle_globals(standin_yolo))
    for module, name in (("builtins", "eval"), ("os", "system"), ("torch", "load"),
                         ("ultralytics.utils.checks", "check_requirements"),
                         ("ultralytics.nn.tasks", "torch_safe_load"), ("torch.hub", "load")):
        assert not allowed_global(module, name), (module, name)
    path, marker = evil_file(tmp_path)
    with pytest.raises(UntrustedDetector, match=r"system.*--trust-detector"):
        scan_detector(path)
    assert not marker.exists()


def test_bench_detect_refuses_evil_detector(tmp_path):
    from downstream.cli import app

    path, marker = evil_file(tmp_path)
    lq = tmp_path / "lq"
    lq.mkdir()
    for detector, expected in ((str(path), "could run code"), ("/etc/passwd", "not an ultralytics")):
        result = CliRunner().invoke(app, ["detect", "-r", "identity", "--data", f"folder[lq={lq}]",
                                          "--detector", detector, "--labels", "pseudo",
                                          "--no-tracking", "--output-dir", str(tmp_path / "out")])
        assert result.exit_code == 2, result.output
        assert expected in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not marker.exists()
