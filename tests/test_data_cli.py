"""``bench list tasks`` data status, ``bench data validate|fetch`` and the fetch machinery."""

from __future__ import annotations

import hashlib
import re
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from harness.assets.data_fetch import DataFetchError, export_hf_dataset, fetch_dataset
from harness.assets.datasets import DatasetSpec, DataSource, Layout
from harness.cli.main import app

runner = CliRunner()

PRESENT_HERE = ("lolv1-tao256", "dicm", "kodak24-awgn25", "cbsd68-awgn25", "mcmaster-awgn25",
                "hsts", "rain12", "kodak24-tao256-awgn30")


def _row(output: str, name: str) -> str:
    for line in output.splitlines():
        if re.search(rf"[│|]\s*{re.escape(name)}\s*[│|]", line):
            return line
    raise AssertionError(f"no row for {name!r} in:\n{output}")


class TestListTasks:
    def test_every_preset_with_data_status(self, with_data):
        result = runner.invoke(app, ["list", "tasks"])
        assert result.exit_code == 0, result.output
        out = result.output
        assert "present (15)" in _row(out, "lolv1-tao256")
        assert "partial (4 of 15)" in _row(out, "lolv1")
        assert "partial (10 of 100)" in _row(out, "rain100l")
        assert "present (64)" in _row(out, "dicm")
        assert "present (18)" in _row(out, "mcmaster-awgn50")
        for absent in ("sidd-val", "gopro", "sots-indoor", "sots-outdoor", "uieb-t90", "baid", "vv"):
            assert "missing" in _row(out, absent)


class TestValidate:
    def test_sets_present_here_pass(self, with_data):
        result = runner.invoke(app, ["data", "validate", *PRESENT_HERE])
        assert result.exit_code == 0, result.output
        for name in PRESENT_HERE:
            assert " ok " in _row(result.output, name)

    def test_partial_sets_are_reported_as_partial(self, with_data):
        result = runner.invoke(app, ["data", "validate", "rain100l", "lolv1", "lime"])
        assert result.exit_code == 3, result.output
        assert re.search(r"partial\s*│\s*10 of 100", _row(result.output, "rain100l"))
        assert re.search(r"partial\s*│\s*4 of 15\s*│\s*0", _row(result.output, "lolv1"))
        assert re.search(r"partial\s*│\s*9 of 10", _row(result.output, "lime"))
        assert "not comparable" in result.output
        allowed = runner.invoke(app, ["data", "validate", "rain100l", "--allow-partial"])
        assert allowed.exit_code == 0, allowed.output

    def test_missing_set_fails_with_how_to(self, tmp_path):
        result = runner.invoke(app, ["data", "validate", "sots-outdoor", "--data-root", str(tmp_path)])
        assert result.exit_code == 1
        assert "missing" in result.output and "SOTS/outdoor/hazy" in result.output
        assert "reside" in result.output.lower()

    def test_json_report(self, with_data):
        import json

        result = runner.invoke(app, ["data", "validate", "rain100l", "--json", "--allow-partial"])
        report = json.loads(result.output)[0]
        assert (report["status"], report["found"], report["expected"], report["paired"]) == (
            "partial", 10, 100, 10)
        assert report["location"]["layout"] == "ci-subset"

    def test_unpaired_lq_is_invalid(self, tmp_path):
        folder = tmp_path / "derain/rain12/rain"
        folder.mkdir(parents=True)
        for stem in ("rain-001", "rain-002"):
            Image.new("RGB", (8, 8)).save(folder / f"{stem}.png")
        (tmp_path / "derain/rain12/norain").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / "derain/rain12/norain/norain-001.png")
        result = runner.invoke(app, ["data", "validate", "rain12", "--data-root", str(tmp_path)])
        assert result.exit_code == 1
        assert "invalid" in result.output and "norain-002" in result.output


class TestRunRefusesMissingData:
    def test_fails_before_any_restorer_is_built(self, tmp_path, monkeypatch):
        import harness.api.restorer

        def no_model(*args, **kwargs):
            raise AssertionError("a restorer was built before the data check")

        monkeypatch.setattr(harness.api.restorer, "build_restorer", no_model)
        result = runner.invoke(app, ["run", "-r", "identity", "-t", "uieb-t90", "--no-tracking",
                                     "--output-dir", str(tmp_path / "out"),
                                     "--data-root", str(tmp_path / "empty")])
        assert result.exit_code == 2
        assert "raw-890" in result.output and "li-chongyi.github.io" in result.output


class TestFetch:
    def test_offline_message_says_where_and_how(self, tmp_path):
        result = runner.invoke(app, ["data", "fetch", "kodak24-awgn25", "--data-root", str(tmp_path)])
        assert result.exit_code == 1
        out = " ".join(result.output.split())
        assert "downloads are disabled" in out
        assert "SCU-VIP-Lab/compression-eval-datasets" in out and "r0k.us" in out
        assert "denoise/kodak24" in out

    def test_manual_only_dataset(self, tmp_path):
        result = runner.invoke(app, ["data", "fetch", "gopro", "--data-root", str(tmp_path)])
        assert result.exit_code == 1
        out = " ".join(result.output.split())
        assert "no automatic download" in out and "GOPRO_Large/test" in out

    def test_already_present(self, with_data):
        result = runner.invoke(app, ["data", "fetch", "rain12"])
        assert result.exit_code == 0, result.output
        assert "already present" in result.output

    def _zip(self, tmp_path):
        archive = tmp_path / "set.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for stem in ("a", "b"):
                for part in ("low", "high"):
                    image = tmp_path / f"{part}_{stem}.png"
                    Image.new("RGB", (4, 4), (10, 20, 30)).save(image)
                    zf.write(image, f"Toy/{part}/{stem}.png")
        return archive, hashlib.sha256(archive.read_bytes()).hexdigest()

    def _spec(self, url, sha256):
        return DatasetSpec("toy", (Layout("official", (("lq", "toy/low"), ("gt", "toy/high"))),),
                           (DataSource("url", url, files=(("Toy/", "toy"),), sha256=sha256),))

    def test_url_archive_is_verified_and_extracted(self, tmp_path, monkeypatch):
        monkeypatch.delenv("BENCH_OFFLINE", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        archive, digest = self._zip(tmp_path)
        root = tmp_path / "data"
        match = fetch_dataset(self._spec(archive.as_uri(), digest), root, log=lambda _: None)
        assert match.layout.name == "official"
        assert sorted(p.name for p in (root / "toy/low").iterdir()) == ["a.png", "b.png"]

    def test_wrong_sha256_writes_nothing(self, tmp_path, monkeypatch):
        monkeypatch.delenv("BENCH_OFFLINE", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        archive, _ = self._zip(tmp_path)
        root = tmp_path / "data"
        with pytest.raises(DataFetchError, match="does not match"):
            fetch_dataset(self._spec(archive.as_uri(), "0" * 64), root, log=lambda _: None)
        assert not (root / "toy").exists()

    def test_offline_never_downloads(self, tmp_path):
        archive, digest = self._zip(tmp_path)
        with pytest.raises(DataFetchError, match="downloads are disabled") as info:
            fetch_dataset(self._spec(archive.as_uri(), digest), tmp_path / "data", log=lambda _: None)
        assert "toy/low" in str(info.value)
        assert not (tmp_path / "data").exists()

    def test_hf_dataset_export(self, tmp_path):
        datasets = pytest.importorskip("datasets")
        images = [Image.fromarray(np.full((4, 4, 3), v, np.uint8)) for v in (0, 128)]
        table = datasets.Dataset.from_dict({"raw": images, "gt": images[::-1],
                                            "name": ["1_img_.png", "2_img_.png"]})
        source = DataSource("hf-dataset", "someone/uieb", columns=(("raw", "u/raw"), ("gt", "u/ref")),
                            name_column="name")
        assert export_hf_dataset(table, source, tmp_path) == 4
        assert np.asarray(Image.open(tmp_path / "u/ref/1_img_.png"))[0, 0, 0] == 128
        assert export_hf_dataset(table, source, tmp_path) == 0  # never overwrites
