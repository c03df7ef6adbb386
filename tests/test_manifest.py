"""The restorer manifest (declared metadata read by ``bench list`` without imports) is fresh, and
listing and alias lookups really import no method module and no torch."""

from __future__ import annotations

import json
import subprocess
import sys

from restorers.manifest import MANIFEST, build, render


def test_manifest_matches_the_classes():
    assert MANIFEST.read_text(encoding="utf-8") == render(build()), (
        "restorers/manifest.json is stale: run `python -m restorers.manifest`")


def test_every_builtin_is_declared_with_its_options():
    from restorers import BUILTIN_RESTORERS

    entries = json.loads(MANIFEST.read_text(encoding="utf-8"))
    assert set(entries) == set(BUILTIN_RESTORERS)
    assert entries["nlm"]["options"]["sigma"]["default"] == "task"
    assert "non-local-means" in entries["nlm"]["aliases"]


def test_listing_and_a_mistyped_alias_import_no_torch():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom harness.cli.main import app\n"
            "r = CliRunner().invoke(app, ['list', 'restorers'])\nassert r.exit_code == 0, r.output\n"
            "assert 'zero-dce' in r.output\n"
            "from harness.api.registries import RESTORERS\n"
            "assert RESTORERS.canonical('non-local-means') == 'nlm'\n"
            "try:\n    RESTORERS.canonical('nlmm')\nexcept KeyError as e:\n    assert 'nlm' in str(e)\n"
            "bad = [m for m in ('torch', 'restorers.baselines.nlm', 'pyiqa') if m in sys.modules]\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
