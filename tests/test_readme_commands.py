"""Every command of the README's "Using it" block runs and exits 0 (docs checked against the
code). Commands that read a benchmark get ``--limit 1``; ``my/noisy`` and ``my/clean`` are made
from two Kodak24 images. The block is parsed from README.md, so a new line there is tested too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: README commands that fail on this branch's code, found by this test (reported to the lead)
#: README commands known to fail, with why (strict xfail: the day one is fixed it fails here)
KNOWN_BROKEN: dict[str, str] = {}


def using_it_commands() -> list[str]:
    """The indented ``bench ...`` lines of the "## Using it" section's first code block."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Using it", 1)[1]
    block = re.match(r"\s*\n((?: {4}.*\n)+)", section).group(1)
    return [line.strip() for line in block.splitlines() if line.strip().startswith("bench ")]


def _argv(command: str) -> list[str]:
    argv = shlex.split(command, comments=True)[1:]
    if argv[0] == "run" and "--resume" not in argv:
        if "--limit" in argv:  # the README's own --limit N becomes 1
            i = argv.index("--limit")
            argv = argv[:i] + argv[i + 2:]
        argv += ["--limit", "1"]
    return argv


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, data_root) -> Path:
    """A working directory with ``my/noisy`` and ``my/clean`` (the README's own-images line)."""
    work = tmp_path_factory.mktemp("readme")
    clean = sorted((data_root / "denoise" / "kodak24").glob("*.png"))[:2]
    for folder in ("noisy", "clean"):
        (work / "my" / folder).mkdir(parents=True)
        for image in clean:
            shutil.copy(image, work / "my" / folder / image.name)
    # the README's first command (a bare run: identity and nlm on demo), which `compare` reads
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "harness.cli", "run", "--no-progress"], cwd=work, env=env,
                   check=True, capture_output=True, timeout=600)
    return work


def test_the_block_is_found():
    commands = using_it_commands()
    assert len(commands) >= 10 and commands[0].startswith("bench doctor"), commands


@pytest.mark.data
@pytest.mark.parametrize("command", using_it_commands())
def test_readme_command(command, workdir, data_root, request):
    """Run in order of the block within one working directory: `--resume`, `report` and
    `compare` read the runs the earlier lines wrote."""
    argv = _argv(command)
    if argv[0] == "detect":
        pytest.skip("needs YOLO weights (yolo.pt): absent offline; bench doctor lists the fix")
    if argv[0] in KNOWN_BROKEN:  # strict: turns into a failure the day it is fixed, to drop it here
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN_BROKEN[argv[0]]))
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_DATA_ROOT": str(data_root)}
    result = subprocess.run([sys.executable, "-m", "harness.cli", *argv], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
