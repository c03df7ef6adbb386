"""Process-level helpers: allocator setting and the exit without teardown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.io import fastproc

REPO = Path(__file__).resolve().parents[1]
#: Children load the module file alone: ``import harness`` would import torch (seconds).
_LOAD = ("import importlib.util as u; s = u.spec_from_file_location('fastproc', "
         f"{str(REPO / 'harness' / 'io' / 'fastproc.py')!r}); fp = u.module_from_spec(s); "
         "import sys; sys.modules['fastproc'] = fp; "
         "s.loader.exec_module(fp)\n")


def test_default_mode_changes_nothing():
    setting = fastproc.configure_malloc("default")
    assert not setting.applied and setting.mode == "default"


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="BENCH_MALLOC"):
        fastproc.configure_malloc("fast")


@pytest.mark.skipif(fastproc._libc() is None, reason="not glibc")
def test_tuned_mode_is_accepted_by_glibc():
    # in a child: the setting is per process and this one is shared with other tests
    code = _LOAD + "s = fp.configure_malloc('nommap'); print(s.applied, s.detail)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("True") and "mmap_max=0" in out


def test_fast_exit_runs_atexit_joins_threads_and_flushes(tmp_path):
    marker = tmp_path / "atexit.txt"
    code = _LOAD + f"""
import atexit, sys, threading, time
fast_exit = fp.fast_exit
atexit.register(lambda: open({str(marker)!r}, "w").write("ran"))
def work():
    time.sleep(0.2)
    open({str(marker)!r} + ".thread", "w").write("done")
threading.Thread(target=work).start()
sys.stdout.write("unflushed line")
fast_exit(3)
print("not reached")
"""
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stdout == "unflushed line"
    assert marker.read_text() == "ran"
    assert Path(str(marker) + ".thread").read_text() == "done"


def test_fast_exit_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("BENCH_FAST_EXIT", "0")
    with pytest.raises(SystemExit) as info:
        fastproc.fast_exit(2)
    assert info.value.code == 2
