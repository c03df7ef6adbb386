"""Shared fixtures.

Data and weights come from outside the repository: ``BENCH_DATA_ROOT`` (a folder of datasets,
``../shared/data`` in CI) and a weights folder (``BENCH_WEIGHTS_DIR``, ``../shared/weights`` in CI)
imported into a per-session asset cache through the project's own ``import_dir``.

A test that needs them skips when they are absent — except when ``BENCH_REQUIRE_DATA=1`` (set by
``.ci/run``), where absence is a failure, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_DEFAULT_SHARED = REPO.parent / "shared"


def _require() -> bool:
    return os.environ.get("BENCH_REQUIRE_DATA", "").lower() in ("1", "true", "yes")


def _missing(what: str) -> None:
    if _require():
        pytest.fail(f"{what} is required (BENCH_REQUIRE_DATA=1) but absent")
    pytest.skip(f"{what} not available")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets an empty asset cache unless it asks for ``weights_home``."""
    monkeypatch.setenv("BENCH_HOME", str(tmp_path_factory.mktemp("bench_home")))
    monkeypatch.setenv("BENCH_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The benchmark data folder; fails (CI) or skips (dev) when absent."""
    # absolute: tests run commands from other working directories (the README test, subprocesses),
    # and the README passes a relative BENCH_DATA_ROOT (../shared/data)
    root = Path(os.environ.get("BENCH_DATA_ROOT", _DEFAULT_SHARED / "data")).resolve()
    if not (root / "denoise" / "kodak24").is_dir():
        _missing(f"benchmark data (BENCH_DATA_ROOT={root})")
    return root


@pytest.fixture
def with_data(data_root, monkeypatch) -> Path:
    monkeypatch.setenv("BENCH_DATA_ROOT", str(data_root))
    return data_root


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    folder = Path(os.environ.get("BENCH_WEIGHTS_DIR", _DEFAULT_SHARED / "weights")).resolve()
    if not folder.is_dir():
        _missing(f"weights folder (BENCH_WEIGHTS_DIR={folder})")
    return folder


@pytest.fixture(scope="session")
def _imported_home(tmp_path_factory, weights_dir) -> Path:
    """One cache per session with every declared asset found in the weights folder."""
    home = tmp_path_factory.mktemp("bench_home_weights")
    previous = os.environ.get("BENCH_HOME")
    os.environ["BENCH_HOME"] = str(home)
    try:
        from harness.assets.cache import import_dir
        from harness.assets.declarations import load_all_declarations

        import_dir(weights_dir, load_all_declarations())
    finally:
        if previous is None:
            os.environ.pop("BENCH_HOME", None)
        else:
            os.environ["BENCH_HOME"] = previous
    return home


@pytest.fixture
def weights_home(_imported_home, monkeypatch) -> Path:
    """Point ``BENCH_HOME`` at the session cache holding the imported weights."""
    monkeypatch.setenv("BENCH_HOME", str(_imported_home))
    return _imported_home


@pytest.fixture
def one_call_per_image(monkeypatch):
    """Time every image with exactly one call (the executor repeats calls under
    ``SHORT_CALL_MS``; tests that count a restorer's calls turn that off)."""
    from harness.run import executor

    monkeypatch.setattr(executor, "SHORT_CALL_MS", 0.0)
