"""Detection after restoration: ultralytics' matching and mAP through our metric, the toy
detector end to end on coco8, offline weights errors, data parsing and class maps.

No test downloads anything: the detector is built from the package's ``yolov8n.yaml``
(:mod:`downstream.toy_detector`), ``BENCH_OFFLINE=1`` (conftest) and ``YOLO_OFFLINE=1``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from downstream.data import (
    EXDARK_TO_COCO,
    RTTS_TO_COCO,
    Labels,
    convert_exdark,
    convert_voc,
    load_data_yaml,
    resolve_class_map,
)
from downstream.metric import (
    DetectionMetric,
    Detections,
    detection_metric_spec,
    pack_tp,
    unpack_tp,
)
from downstream.yolo_env import DetectorWeightsMissing, resolve_weights

COCO8 = Path(os.environ.get("BENCH_DATA_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "detection" / "coco8"


class HandDetector:
    """Stands in for :class:`downstream.metric.Detector`: returns hand-made detections by image."""

    names = {0: "cat", 1: "traffic light"}
    key = ("hand",)

    def __init__(self, by_value: dict[float, Detections]):
        self.by_value = by_value

    def __call__(self, image):
        return self.by_value[round(float(image.flatten()[0]), 3)]


def _dets(rows):
    rows = sorted(rows, key=lambda r: -r[1])
    return Detections(np.asarray([r[0] for r in rows], np.float32),
                      np.asarray([r[1] for r in rows], np.float32),
                      np.asarray([r[2] for r in rows], np.int64))


def _yolo_folder(root: Path, labels: dict[str, list[str]], size=(100, 100)) -> Path:
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for stem, lines in labels.items():
        Image.new("RGB", size).save(root / "images" / "val" / f"{stem}.png")
        (root / "labels" / "val" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
    data = root / "data.yaml"
    data.write_text(f"path: {root}\nval: images/val\nnames:\n  0: cat\n  1: traffic light\n")
    return data


def test_hand_made_boxes_give_the_hand_computed_map(tmp_path):
    """Two 100×100 images, real-label protocol, through ``DetectionMetric.update/compute``.

    Image ``a`` (class 0, GT A=[0,0,10,10], B=[20,0,30,10]); predictions, by confidence:
    p0 0.95 [50,50,60,60] (FP), p1 0.9 = A (IoU 1), p2 0.8 [20,0,30,7.8] (IoU with B 0.78),
    p3 0.7 [70,70,80,80] (FP), p4 0.6 class 0 on C (FP: C is a class-1 box of image b; here no GT).
    Image ``b`` (class 1, GT C=[0,20,10,30]); p5 0.5 class 1 = C (IoU 1).

    Class 0, IoU 0.50-0.75 (6 thresholds): TP sequence 0,1,1,0,0 → recall .5,1 at precision
    .5, 2/3; ultralytics' envelope is 2/3 on [0, 1) and drops to 0 at recall 1 (its closing
    sentinel), so the 101-point trapezoid gives AP = 2/3 · 0.995 = 0.663333.
    Class 0, IoU 0.80-0.95 (4 thresholds): p2 is now FP: TP sequence 0,1,0,0,0 → recall .5 at
    precision .5; envelope .5 on [0, .5), 0 from .5 on: AP = .5 · .495 = 0.2475.
    Class 0: AP50 = 0.663333, AP50-95 = (6·0.663333 + 4·0.2475)/10 = 0.497.
    Class 1: one TP with IoU 1: AP = 0.995 at every threshold (ultralytics' perfect score).
    mAP50 = (0.663333 + 0.995)/2 = 0.829167;  mAP50-95 = (0.497 + 0.995)/2 = 0.746.
    """
    data = _yolo_folder(tmp_path, {"a": ["0 0.05 0.05 0.1 0.1", "0 0.25 0.05 0.1 0.1"],
                                   "b": ["1 0.05 0.25 0.1 0.1"]})
    dataset = load_data_yaml(data)
    detector = HandDetector({
        0.1: _dets([([50, 50, 60, 60], 0.95, 0), ([0, 0, 10, 10], 0.9, 0),
                    ([20, 0, 30, 7.8], 0.8, 0), ([70, 70, 80, 80], 0.7, 0),
                    ([0, 20, 10, 30], 0.6, 0)]),
        0.2: _dets([([0, 20, 10, 30], 0.5, 1)]),
    })
    cmap = resolve_class_map(dataset.names, detector.names)
    metric = DetectionMetric("det_map50", detector, "gt", dataset, cmap, conf_label=0.25)
    states = [metric.update(torch.full((1, 3, 100, 100), value), None, {"sample_id": sid})
              for sid, value in (("a", 0.1), ("b", 0.2))]
    states = json.loads(json.dumps(states))  # what survives samples.jsonl
    assert states[0]["tp"][1] == 2**10 - 1 and states[0]["tp"][2] == 2**6 - 1
    result = metric.compute(states)
    assert result["det_map50"] == pytest.approx(0.829167, abs=1e-5)
    assert result["det_map50.map50_95"] == pytest.approx(0.746, abs=1e-5)
    assert result["det_map50.ap50.cat"] == pytest.approx(0.663333, abs=1e-5)
    assert result["det_map50.ap50_95.cat"] == pytest.approx(0.497, abs=1e-5)
    assert result["det_map50.ap50.traffic_light"] == pytest.approx(0.995, abs=1e-9)
    assert result["det_map50.n_targets"] == 3 and result["det_map50.n_predictions"] == 6


def test_tp_bits_round_trip():
    tp = np.random.default_rng(0).random((7, 10)) > 0.5
    assert (unpack_tp(pack_tp(tp)) == tp).all()
    assert unpack_tp([]).shape == (0, 10)


# coco8 with a detector built here --------------------------------------------------------------
def _require_coco8() -> Path:
    if not (COCO8 / "images" / "val").is_dir():
        if os.environ.get("BENCH_REQUIRE_DATA", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"coco8 is required (BENCH_REQUIRE_DATA=1) but absent at {COCO8}")
        pytest.skip(f"coco8 not available at {COCO8}")
    return COCO8


@pytest.fixture(scope="module")
def coco8(tmp_path_factory) -> Path:
    """A copy of coco8 whose yaml ``path:`` points at the copy (the shared one stays untouched)."""
    source = _require_coco8()
    root = tmp_path_factory.mktemp("coco8") / "coco8"
    shutil.copytree(source, root)
    text = (root / "coco8.yaml").read_text()
    lines = [f"path: {root}" if line.startswith("path:") else line for line in text.splitlines()]
    (root / "coco8.yaml").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def toy_weights(coco8, tmp_path_factory) -> Path:
    from downstream.toy_detector import build_toy_detector

    images = sorted((coco8 / "images").glob("*/*.jpg"))
    names = load_data_yaml(coco8 / "coco8.yaml").names
    return build_toy_detector(tmp_path_factory.mktemp("det") / "toy-yolov8n.pt", names, images)


@pytest.mark.data
def test_pseudo_labels_of_clean_images_score_perfectly_and_noise_lowers_it(coco8, toy_weights):
    """Clean images against their own boxes (conf ≥ 0.25): ultralytics' perfect score, 0.995 at
    every IoU threshold (its 101-point AP closes the PR curve at recall 1 with precision 0, so a
    perfect detector gets 0.995, not 1). Degraded twins (synthetic noise, severity 5) score lower.
    The samples come through the real synthetic task; the detector loads from the saved .pt."""
    from harness.api.task import build_task

    spec = detection_metric_spec(toy_weights, protocol="pseudo", conf_label=0.25, imgsz=320,
                                 device="cpu")
    assert spec.kind == "dataset" and spec.mode == "FR" and spec.name == "consistency_map50"
    metric = spec.build(None, "cpu")
    clean_states, noisy_states = [], []
    for split in ("train", "val"):
        task = build_task("synth:coco8:noise@5", clean_dir=str(coco8 / "images" / split))
        for sample_id in task.sample_ids():
            sample = task.load(sample_id)
            clean_states.append(metric.update(sample.gt[None], sample.gt[None], sample.meta))
            noisy_states.append(metric.update(sample.lq[None], sample.gt[None], sample.meta))
    assert [s["id"] for s in clean_states[:1]] == ["000000000009"]
    clean = metric.compute(json.loads(json.dumps(clean_states)))
    noisy = metric.compute(json.loads(json.dumps(noisy_states)))
    assert clean["consistency_map50.n_targets"] > 0
    assert clean["consistency_map50"] == pytest.approx(0.995, abs=1e-9)
    assert clean["consistency_map50.map50_95"] == pytest.approx(0.995, abs=1e-9)
    assert noisy["consistency_map50"] < 0.9
    describe = spec.describe(None)
    assert describe["ultralytics"] and describe["conf_label"] == 0.25
    assert len(describe["weights_sha256"]) == 64


@pytest.mark.data
def test_real_labels_protocol_on_coco8_with_clean_row(coco8, toy_weights):
    """Real labels (coco8 val, 17 boxes): the restored output equal to the clean image must
    score exactly like the clean row, computed in the same pass."""
    from harness.io.images import read_image

    spec = detection_metric_spec(toy_weights, coco8 / "coco8.yaml", protocol="gt", imgsz=320,
                                 device="cpu")
    assert spec.mode == "meta" and spec.name == "det_map50"
    metric = spec.build(None, "cpu")
    dataset = load_data_yaml(coco8 / "coco8.yaml")
    states = []
    for sample_id in dataset.sample_ids():
        image = read_image(dataset.image_path(sample_id))[None]
        states.append(metric.update(image, image, {"sample_id": sample_id}))
    result = metric.compute(states)
    assert result["det_map50.n_targets"] == 17 and result["det_map50.n_images"] == 4
    assert 0.0 <= result["det_map50"] <= 1.0
    assert result["det_map50.clean"] == result["det_map50"]
    assert result["det_map50.clean.map50_95"] == result["det_map50.map50_95"]
    with pytest.raises(ValueError, match="labelled image"):  # a cropped image cannot use labels
        metric.update(torch.zeros(1, 3, 64, 64), None, {"sample_id": dataset.sample_ids()[0]})

    # a bare labels folder (ids are the detector's) scores the same
    by_folder = detection_metric_spec(toy_weights, coco8 / "labels" / "val", protocol="gt",
                                      imgsz=320, device="cpu").build(None, "cpu")
    image = read_image(dataset.image_path(dataset.sample_ids()[0]))[None]
    assert by_folder.update(image, None, {"gt_path": str(dataset.image_path(dataset.sample_ids()[0]))}) \
        == {k: v for k, v in states[0].items() if k != "clean"}


# offline behaviour -----------------------------------------------------------------------------
def test_offline_missing_weights_name_the_file(tmp_path):
    with pytest.raises(DetectorWeightsMissing, match=r"yolo11n\.pt.*downloads are disabled"):
        resolve_weights("yolo11n.pt")
    with pytest.raises(DetectorWeightsMissing, match="no_such_detector.pt"):
        detection_metric_spec(tmp_path / "no_such_detector.pt", protocol="pseudo")
    from typer.testing import CliRunner

    from downstream.cli import app

    result = CliRunner().invoke(app, ["detect", "-r", "identity", "--data", "synth:skimage:noise@1",
                                      "--detector", "yolo11n.pt", "--labels", "pseudo",
                                      "--no-tracking", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "yolo11n.pt" in result.output
    assert not (tmp_path / "mlflow.db").exists() and not list(tmp_path.iterdir())


_NO_NETWORK_SCRIPT = r"""
import json, socket, sys
calls = []
def refuse(name):
    def call(*args, **kwargs):
        calls.append(name)
        raise OSError(f"network disabled by the test ({name})")
    return call
socket.getaddrinfo = refuse("getaddrinfo")
socket.create_connection = refuse("create_connection")
socket.socket.connect = refuse("connect")
from pathlib import Path
import numpy as np
from PIL import Image
from downstream.yolo_env import configure_ultralytics
configure_ultralytics()
from ultralytics.utils import ONLINE, SETTINGS
from downstream.metric import detection_metric_spec
from downstream.toy_detector import build_toy_detector
from harness.io.images import read_image
work = Path(sys.argv[1])
rng = np.random.default_rng(0)
images = []
for i in range(2):
    images.append(work / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(images[-1])
weights = build_toy_detector(work / "toy.pt", {0: "a", 1: "b"}, images, cls_bias_shift=12)
metric = detection_metric_spec(weights, protocol="pseudo", imgsz=128, device="cpu").build(None, "cpu")
x = read_image(images[0])[None]
result = metric.compute([metric.update(x, x, {"sample_id": "0"})])
print(json.dumps({"online": ONLINE, "file": str(SETTINGS.file_path), "sync": SETTINGS["sync"],
                  "mlflow": SETTINGS["mlflow"], "calls": calls, "map50": result["consistency_map50"],
                  "n_targets": result["consistency_map50.n_targets"]}))
"""


def test_ultralytics_offline_no_network_nothing_in_home(tmp_path):
    """In a fresh process with every socket call refused: importing and configuring ultralytics,
    building and saving a YOLO, loading it, predicting and scoring never touch the network
    (no DNS probe: ONLINE is False), settings live under BENCH_HOME with sync and logger
    integrations off, and nothing is written into the home folder."""
    import subprocess
    import sys

    home, bench = tmp_path / "home", tmp_path / "bench"
    home.mkdir()
    (tmp_path / "script.py").write_text(_NO_NETWORK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "XDG_"))}
    env.update(HOME=str(home), BENCH_HOME=str(bench), BENCH_OFFLINE="1",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["calls"] == []
    assert info["online"] is False and info["sync"] is False and info["mlflow"] is False
    assert info["file"] == str(bench / "ultralytics" / "Ultralytics" / "settings.json")
    assert info["n_targets"] > 0 and info["map50"] == pytest.approx(0.995, abs=1e-9)
    assert not any(home.rglob("*"))


# data, class maps, converters -------------------------------------------------------------------
def test_yaml_path_fallback_labels_and_class_maps(tmp_path):
    data = _yolo_folder(tmp_path / "ds", {"x": ["1 0.5 0.5 0.2 0.4", "0 0.1 0.1 0.3 0.5 0.3 0.1"]})
    data.write_text(data.read_text().replace(f"path: {tmp_path / 'ds'}", "path: ../elsewhere"))
    dataset = load_data_yaml(data)  # 'path' does not exist: the yaml's folder is used
    labels = dataset.labels("x")
    assert labels.cls.tolist() == [1, 0]
    np.testing.assert_allclose(labels.boxes[0], [40, 30, 60, 70], atol=1e-4)
    np.testing.assert_allclose(labels.boxes[1], [10, 10, 30, 50], atol=1e-4)  # polygon → box
    assert dataset.labels("x") is not None and load_data_yaml(data).label_path("y").name == "y.txt"

    coco = load_data_yaml(COCO8 / "coco8.yaml").names if COCO8.is_dir() else {
        0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 8: "boat", 15: "cat",
        16: "dog", 39: "bottle", 41: "cup", 56: "chair", 60: "dining table"}
    exdark = resolve_class_map(dict(enumerate(EXDARK_TO_COCO)), coco)
    assert exdark.table == "exdark" and not exdark.unmapped and len(exdark.to_detector) == 12
    assert coco[exdark.to_detector[10]] == "person" and coco[exdark.to_detector[11]] == "dining table"
    rtts = resolve_class_map(dict(enumerate(RTTS_TO_COCO)), coco)
    assert rtts.table == "rtts" and coco[rtts.to_detector[4]] == "motorcycle"
    partial = resolve_class_map({0: "Person", 1: "unicorn"}, coco)
    assert partial.unmapped == ("unicorn",)
    mapped, dropped = partial.map_labels(Labels(np.zeros((2, 4), np.float32), np.array([0, 1])))
    assert mapped.cls.tolist() == [0] and dropped == 1


def test_exdark_and_voc_converters(tmp_path):
    Image.new("RGB", (200, 100)).save(tmp_path / "a.jpg")
    (tmp_path / "a.jpg.txt").write_text("% bbGt version=3\nPeople 20 10 40 50 0 0 0 0 0 0 0\n")
    assert convert_exdark(tmp_path / "a.jpg.txt", tmp_path / "a.jpg", tmp_path / "out" / "a.txt") == 1
    assert (tmp_path / "out" / "a.txt").read_text() == "10 0.200000 0.350000 0.200000 0.500000\n"
    (tmp_path / "b.xml").write_text(
        "<annotation><size><width>200</width><height>100</height></size>"
        "<object><name>motorbike</name><bndbox><xmin>20</xmin><ymin>10</ymin><xmax>60</xmax>"
        "<ymax>60</ymax></bndbox></object><object><name>dog</name></object></annotation>")
    assert convert_voc(tmp_path / "b.xml", tmp_path / "out" / "b.txt") == 1
    assert (tmp_path / "out" / "b.txt").read_text() == "4 0.200000 0.350000 0.200000 0.500000\n"


@pytest.mark.data
def test_bench_detect_end_to_end(coco8, toy_weights, tmp_path):
    """``bench detect`` on two coco8 images: states in samples.jsonl, mAP and the clean row in
    results.json, then the table, the bar chart and one boxes strip in ``<run>/detection``."""
    import pandas as pd
    from typer.testing import CliRunner

    from downstream.cli import app

    args = ["detect", "-r", "identity", "--data", str(coco8 / "coco8.yaml"), "--detector",
            str(toy_weights), "--labels", "gt", "--degradation", "noise@2", "--imgsz", "320",
            "--limit", "2", "--no-tracking", "--output-dir", str(tmp_path), "--device", "cpu",
            "--metrics", "psnr", "--n-images", "1", "--no-progress", "--run-name", "r"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "r"
    unit = json.loads((run / "results.json").read_text())["results"]["identity"]["synth:coco8:noise@2"]
    assert unit["det_map50.n_images"]["mean"] == 2 and "det_map50.clean" in unit and "psnr" in unit
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert all(len(r["metric_states"]["det_map50"]["tp"]) == len(r["metric_states"]["det_map50"]["conf"])
               for r in records)
    table = (run / "detection" / "detection.md").read_text()
    assert "| clean |" in table and "| degraded |" in table
    # finding 9: the stand-in detector says so wherever its numbers appear
    assert table.startswith("**STAND-IN DETECTOR, not a real mAP**")
    assert "stand-in" in set(pd.read_csv(run / "detection" / "detection.csv")["detector"])
    task_info = json.loads((run / "results.json").read_text())["tasks"]["synth:coco8:noise@2"]
    assert task_info["metrics"]["det_map50.stand_in"].startswith("stand-in detector")
    from harness.cli.main import app as bench

    report = CliRunner().invoke(bench, ["report", str(run), "--no-tracking", "--markdown",
                                        "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    assert "det_map50 (stand-in) ↑" in (tmp_path / "rep" / "detection.md").read_text()
    assert (run / "detection" / "detection_bars.png").stat().st_size > 0
    assert len(list((run / "detection").glob("boxes_*.png"))) == 1


def test_detection_severity_study_gives_curves(coco8, toy_weights, tmp_path):
    """``bench detect --levels``: the detection metric as a study axis, one curve per restorer;
    pseudo labels make the consistency fall as the noise level rises (a 2-image coco8 slice)."""
    import pandas as pd
    from typer.testing import CliRunner

    from downstream.cli import app

    args = ["detect", "-r", "identity", "--data", str(coco8 / "coco8.yaml"), "--detector",
            str(toy_weights), "--labels", "pseudo", "--degradation", "noise", "--levels", "1,5",
            "--imgsz", "320", "--limit", "2", "--no-tracking", "--output-dir", str(tmp_path),
            "--device", "cpu", "--metrics", "psnr", "--no-progress", "--run-name", "sev"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    study = tmp_path / "studies" / "sev"
    curve = pd.read_csv(study / "severity_consistency_map50.csv", index_col="restorer")
    assert [int(c) for c in curve.columns] == [1, 5]
    assert curve.loc["identity", "1"] > curve.loc["identity", "5"]
    assert (study / "severity_curves.png").stat().st_size > 10_000
    assert not (study / "severity_consistency_map50.ap50.person.csv").exists()  # headline only
