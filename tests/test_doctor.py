"""``bench doctor`` and the optional stacks: what is present is reported present, what is missing
is reported missing with the command that fixes it, and a command whose stack is absent names
its pip extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: tasks whose data ../shared/data holds completely (its README's table → the task presets)
SHARED_TASKS = ("cbsd68-awgn25", "cbsd68-colorize", "kodak24-awgn25", "kodak24c500-awgn25",
                "mcmaster-awgn25", "kodak24-mixed-s3", "lolv1-tao256", "dicm", "hsts", "rain12", "demo")
#: subsets in ../shared/data: partial copies, reported as such (with `bench data validate`)
SHARED_PARTIAL = ("lime", "lolv1", "rain100l")


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, so the result does not depend on what this machine holds."""
    import huggingface_hub.constants

    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_doctor_on_the_shared_folders(with_data, weights_home, empty_hf_cache):
    """With ../shared imported: its data and weights are present; LPIPS's ImageNet backbones,
    Stable Diffusion, the MLLM captioner and YOLO are missing, each with its fix."""
    from harness.cli.doctor import collect

    checks = collect()
    present = next(c for c in checks if c.name.endswith("tasks present"))
    names = set(present.detail.split(", "))
    assert set(SHARED_TASKS) <= names, sorted(set(SHARED_TASKS) - names)
    partial = next(c for c in checks if c.name.endswith("tasks partial"))
    assert not partial.ok and "bench data validate" in partial.fix
    for name in SHARED_PARTIAL:
        assert name in partial.detail

    weights = [c for c in checks if c.group == "weights"]
    cached = next(c for c in weights if c.name.endswith("assets cached"))
    for asset in ("niqe-official", "lpips-linear-v0.1", "zero_dce", "zero_dce_pp", "sci", "aod_net",
                  "dncnn", "ffdnet", "taesd_bf16"):  # ../shared/weights, matched by sha256
        assert asset in cached.detail, asset
    missing = {c.name: c for c in weights if not c.ok}
    lpips = next(c for n, c in missing.items() if n.startswith("torchvision-imagenet-backbones"))
    assert "alexnet-owt-7be5be79.pth" in lpips.detail and "bench assets import" in lpips.fix
    sd = next(c for n, c in missing.items() if n.startswith("Stable Diffusion"))
    assert "huggingface-cli download stabilityai/stable-diffusion-2-1-base" in sd.fix
    mllm = next(c for n, c in missing.items() if n.startswith("MLLM"))
    assert "huggingface-cli download" in mllm.fix and "captioner=DIR" in mllm.fix
    yolo = next(c for n, c in missing.items() if n.startswith("YOLO"))
    assert "yolo11n.pt" in yolo.fix and str(weights_home) in yolo.fix
    assert sorted(missing) == sorted([lpips.name, sd.name, mllm.name, yolo.name]), sorted(missing)
    assert all(c.fix for c in checks if not c.ok), [c.name for c in checks if not c.ok and not c.fix]


def test_contributed_checks_find_what_is_there(tmp_path, empty_hf_cache, monkeypatch):
    """The SD and YOLO checks look where the loaders look: a snapshot in the Hugging Face cache
    layout and a file in $BENCH_HOME/ultralytics/weights turn them present."""
    from downstream.doctor import detect_checks
    from downstream.yolo_env import weights_dir
    from restorers.doctor import SD21_BASE, ldrps_checks

    repo = empty_hf_cache / f"models--{SD21_BASE.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "model_index.json").write_text("{}")
    sd, mllm = ldrps_checks()
    assert sd.ok and sd.detail.endswith("model_index.json") and not mllm.ok

    weights_dir().mkdir(parents=True)
    (weights_dir() / "yolo11n.pt").write_bytes(b"stand-in")
    assert detect_checks()[0].ok


def test_shadowing_folder_is_reported(tmp_path):
    """A user's ``tasks/`` package in the working directory hides the built-in tasks; the doctor
    says which folder does it (the reason the import names are checked, not namespaced)."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("")
    code = ("from harness.cli.doctor import _import_roots; c = _import_roots()[0]; "
            "print(c.ok, '|', c.detail, '|', c.fix)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ok, detail, fix = (part.strip() for part in out.stdout.split("|"))
    assert ok == "False" and f"tasks from {tmp_path.resolve()}" in detail and "rename" in fix


def test_bench_doctor_fits_a_screen(tmp_path):
    """The command runs (exit 0) with nothing configured and stays about one screen tall."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "160", "BENCH_HOME": str(tmp_path)}
    env.pop("BENCH_DATA_ROOT", None)
    out = subprocess.run([sys.executable, "-m", "harness.cli", "doctor"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "export BENCH_DATA_ROOT" in out.stdout and "bench assets import" in out.stdout
    assert len(out.stdout.splitlines()) < 100, out.stdout


# Optional stacks ---------------------------------------------------------------------------------
REQUIRES = ['torch>=2.4', 'diffusers>=0.30; extra == "ldrps"', 'ultralytics>=8.4; extra == "detect"',
            "mamba-ssm>=2.2; extra == 'cuda'", 'restorebench[ldrps,detect]; extra == "all"',
            'pytest>=8; extra == "test"']


@pytest.fixture
def metadata(monkeypatch):
    """restorebench's Requires-Dist as pyproject.toml declares it (the shared venv may hold an
    older editable install's metadata)."""
    import harness.api.extras as extras

    class Dist:
        requires = REQUIRES

    monkeypatch.setattr(extras, "distribution", lambda name: Dist())
    return extras


def test_extra_is_read_from_the_metadata(metadata):
    assert metadata.extra_for("ultralytics") == "detect"
    assert metadata.extra_for("mamba_ssm") == "cuda"  # module name → distribution name
    assert metadata.extra_for("diffusers.models") == "ldrps"
    assert metadata.extra_for("torch") is None  # core, not an extra
    assert metadata.extras_of() == {"ldrps": ["diffusers"], "detect": ["ultralytics"],
                                    "cuda": ["mamba-ssm"], "test": ["pytest"]}


def test_require_names_the_extra(metadata, monkeypatch):
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # what an absent package looks like
    with pytest.raises(ImportError, match=r"bench detect needs the detect extra: "
                                          r"pip install -e '\.\[detect\]'"):
        metadata.require("ultralytics", "bench detect")
    metadata.require("json", "anything")  # present: no error


def test_bench_detect_without_ultralytics(tmp_path):
    """``bench detect`` with ultralytics absent: one line naming what to install, exit 2, before
    any data or model is touched."""
    code = ("import sys; sys.modules['ultralytics'] = None; "
            "sys.argv = ['bench', 'detect', '-r', 'nlm', '--data', 'x.yaml', '--detector', 'y.pt']; "
            "from harness.cli.main import main; main()")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert "bench detect needs the" in out.stderr and "pip install" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "No such command" not in out.stderr
