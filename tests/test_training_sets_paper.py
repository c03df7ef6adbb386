"""The paper-scale training sets (rain13k-train, uieb-train, baid-train), progressive patches in the
training loop, and the UnfoldLDM recipe files (each loads and validates without training)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.api.task import DataMissingError
from harness.api.training_sets import build_training_set
from harness.train.trainer import Recipe, TrainConfig, Trainer, _Batches

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "restorers" / "unfoldldm" / "recipes"


def write_pairs(lq_dir: Path, gt_dir: Path, names: list[str], size: int = 16,
                gt_names: list[str] | None = None, seed: int = 0) -> None:
    """PNG pairs with distinct contents (the GT is the LQ plus an offset, so pairs are checkable)."""
    lq_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, name in enumerate(names):
        lq = rng.integers(0, 200, (size, size, 3), dtype=np.uint8)
        lq[..., 0] = i  # the pair's index, readable back from any crop
        gt = lq.copy()
        gt[1:] += 50
        Image.fromarray(lq).save(lq_dir / name)
        Image.fromarray(gt).save(gt_dir / (gt_names[i] if gt_names else name))


def build_standins(root: Path) -> None:
    """Tiny copies, in the expected layouts, of every training set and validation task the paper
    recipes use."""
    write_pairs(root / "derain/Rain13K/input", root / "derain/Rain13K/target",
                ["1.png", "2.png", "rain-3.png"], gt_names=["1.png", "2.png", "norain-3.png"])
    t90 = (REPO / "tasks/splits/uieb_t90.txt").read_text().split()
    write_pairs(root / "underwater/UIEB/raw-890", root / "underwater/UIEB/reference-890",
                [*t90[:3], "9001_img_.png", "9002_img_.png"])
    write_pairs(root / "lowlight/BAID/train/input", root / "lowlight/BAID/train/GT", ["0001.png", "0002.png"])
    write_pairs(root / "lowlight/BAID/test/input", root / "lowlight/BAID/test/GT", ["0003.png"])
    lol = root / "lowlight/LOLdataset"
    write_pairs(lol / "our485/low", lol / "our485/high", ["2.png", "5.png"])
    write_pairs(lol / "eval15/low", lol / "eval15/high", ["1.png"])
    for scene in ("GOPR0372_07_00", "GOPR0374_11_00"):
        folder = root / f"deblur/GOPRO_Large/train/{scene}"
        write_pairs(folder / "blur", folder / "sharp", ["000047.png"])
    write_pairs(root / "deblur/GOPRO_Large/test/GOPR0384_11_00/blur",
                root / "deblur/GOPRO_Large/test/GOPR0384_11_00/sharp", ["000001.png"])
    scene = root / "denoise/SIDD_Medium_Srgb/Data/0001_001_S6_00100_00060_3200_L"
    write_pairs(scene, scene, ["0001_NOISY_SRGB_010.PNG"], gt_names=["0001_GT_SRGB_010.PNG"])
    import scipy.io

    (root / "denoise/SIDD").mkdir(parents=True)
    blocks = np.zeros((1, 2, 16, 16, 3), dtype=np.uint8)
    for key in ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"):
        scipy.io.savemat(root / f"denoise/SIDD/{key}.mat", {key: blocks})
    write_pairs(root / "derain/Rain100L/input", root / "derain/Rain100L/target", ["rain-001.png"],
                gt_names=["norain-001.png"])


@pytest.fixture
def standins(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    build_standins(root)
    monkeypatch.setenv("BENCH_DATA_ROOT", str(root))
    return root


def index_of(image: torch.Tensor) -> int:
    return round(float(image[0].mean()) * 255)


# Training sets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("rain13k-train", {"1.png": "1.png", "2.png": "2.png", "rain-3.png": "norain-3.png"}),
    ("uieb-train", {"9001_img_.png": "9001_img_.png", "9002_img_.png": "9002_img_.png"}),
    ("baid-train", {"0001.png": "0001.png", "0002.png": "0002.png"}),
])
def test_paper_sets_pair_their_images_and_crop_deterministically(standins, name, expected):
    data = build_training_set(name, seed=3, crop=8, length=12)
    assert {lq.name: gt.name for lq, gt in data.pairs} == expected
    for lq, gt in data.pairs:
        assert lq.parent != gt.parent
    for i in range(len(data)):
        lq, gt = data[i]
        assert lq.shape == gt.shape == (3, 8, 8)
    again, other = (build_training_set(name, seed=s, crop=8, length=12) for s in (3, 4))
    first = [data[i] for i in range(12)]
    assert all(torch.equal(a[0], again[i][0]) and torch.equal(a[1], again[i][1]) for i, a in enumerate(first))
    assert any(not torch.equal(a[0], other[i][0]) for i, a in enumerate(first))


def test_uieb_train_never_contains_a_t90_image(tmp_path, monkeypatch):
    from tasks.training import uieb_train_pairs
    from tasks.underwater import split_names

    t90 = split_names()
    assert len(t90) == len(set(t90)) == 90
    others = [f"{8000 + i}_img_.png" for i in range(5)]
    root = tmp_path / "data"
    write_pairs(root / "underwater/UIEB/raw-890", root / "underwater/UIEB/reference-890", [*t90, *others])
    # a copy re-encoded to another format must not leak either
    write_pairs(root / "underwater/UIEB/raw-890", root / "underwater/UIEB/reference-890",
                [Path(t90[0]).stem + ".jpg"], seed=1)
    monkeypatch.setenv("BENCH_DATA_ROOT", str(root))
    pairs = uieb_train_pairs()
    assert sorted(lq.name for lq, _ in pairs) == sorted(others)
    stems = {Path(n).stem for n in t90}
    assert not {lq.stem for lq, _ in pairs} & stems and not {gt.stem for _, gt in pairs} & stems
    data = build_training_set("uieb-train", crop=8, length=40)
    assert {index_of(data[i][0]) for i in range(40)} <= set(range(90, 95))  # only the non-T90 images


@pytest.mark.parametrize("name, source", [
    ("rain13k-train", "swz30/Restormer"),
    ("uieb-train", "li-chongyi.github.io"),
    ("baid-train", "CLIP-LIT"),
])
def test_missing_paper_sets_say_where_to_get_them(tmp_path, monkeypatch, name, source):
    monkeypatch.setenv("BENCH_DATA_ROOT", str(tmp_path))
    with pytest.raises(DataMissingError, match=name) as info:
        build_training_set(name)
    assert source in str(info.value) and str(tmp_path) in str(info.value)


def test_small_pairs_are_padded_to_the_crop_and_dihedral_augment_is_seeded(standins):
    data = build_training_set("baid-train", crop=24, length=4, augment="dihedral")
    lq, gt = data[0]
    assert lq.shape == gt.shape == (3, 24, 24)
    a = build_training_set("baid-train", crop=8, length=16, augment="dihedral", seed=1)
    b = build_training_set("baid-train", crop=8, length=16, augment="dihedral", seed=1)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(16))
    with pytest.raises(ValueError, match="augment"):
        build_training_set("baid-train", augment="mixup")


# Progressive patches ---------------------------------------------------------------------------------
def test_progressive_recipe_is_validated():
    recipe = Recipe(iters=10, progressive=[[4, 16, 4], [6, 32, 2]])
    assert recipe.batch_size == 4 and recipe.progressive == ((4, 16, 4), (6, 32, 2))
    assert recipe.stages() == [(0, 4, 16, 4), (4, 10, 32, 2)]
    assert recipe.identity()["progressive"] == [[4, 16, 4], [6, 32, 2]]
    assert "progressive" not in Recipe(iters=10).identity()  # old checkpoints keep resuming
    for stages, message in (([[4, 16, 4]], "add up to 4"), ([], "empty"), ([[10, 16]], "iters, crop"),
                            ([[10, 0, 2]], "positive"), ("10,16,4", "list of"),
                            ([[10, 16.5, 2]], "positive")):
        with pytest.raises(ValueError, match=message):
            Recipe(iters=10, progressive=stages)
    with pytest.raises(ValueError, match="conflicts"):
        Recipe(iters=10, batch_size=8, progressive=[[10, 16, 4]])


def test_progressive_batches_change_crop_and_size_and_resume_identically():
    data = build_training_set("degraded", seed=0, clean="skimage", degradation="gaussian_noise",
                              severity=1, crop=16, length=10)
    recipe = Recipe(iters=9, progressive=[[4, 8, 4], [5, 12, 2]])

    def take(start: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for batch in _Batches(data, recipe, seed=5, start=start):
            out.append(batch)
            if len(out) == n:
                return out
        return out

    full = take(0, 9)
    assert [tuple(lq.shape) for lq, _ in full] == [(4, 3, 8, 8)] * 4 + [(2, 3, 12, 12)] * 5
    for start in (1, 3, 4, 6):  # a resumed run sees the batches an uninterrupted one would
        resumed = take(start, 9 - start)
        assert len(resumed) == 9 - start
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                   for a, b in zip(full[start:], resumed, strict=True))
    positions = _Batches(data, recipe, seed=5, start=0)
    assert positions.position(3) == (1, 1, 4, 8, 4)  # 2 batches of 4 per epoch
    assert positions.position(4)[0] == 2  # a stage starts a fresh epoch


def test_progressive_needs_a_croppable_set_and_trains(tmp_path):
    import tiny_trainable  # noqa: F401

    from harness.run.plan import RestorerItem

    class Fixed(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)

    with pytest.raises(ValueError, match="set_crop"):
        _Batches(Fixed(), Recipe(iters=2, progressive=[[2, 8, 2]]), seed=0, start=0)
    config = TrainConfig(restorer=RestorerItem("test-tiny-trainable"), train_set=("degraded", {
        "clean": "skimage", "degradation": "gaussian_noise", "severity": 1, "crop": 16, "length": 8}),
        out=tmp_path / "p.pt", recipe=Recipe(iters=4, progressive=[[2, 8, 4], [2, 16, 2]], lr=1e-3),
        tracking=False, show_progress=False, device="cpu")
    from harness.train.trainer import train

    assert train(config).iteration == 4
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(TrainConfig(restorer=RestorerItem("test-tiny-trainable"), train_set=("degraded", {
            "clean": "skimage", "degradation": "gaussian_noise", "crop": 16, "length": 3}),
            out=tmp_path / "q.pt", recipe=Recipe(iters=4, progressive=[[4, 8, 4]]), tracking=False,
            show_progress=False, device="cpu")).check()


# Recipe files ----------------------------------------------------------------------------------------
RECIPE_FILES = sorted(RECIPES.glob("*.yaml"))


def test_every_paper_benchmark_has_both_phases():
    names = {p.name for p in RECIPE_FILES}
    for bench in ("lolv1", "sidd", "gopro", "rain100l", "uieb", "baid"):
        assert {f"paper-{bench}-phase1.yaml", f"paper-{bench}-phase2.yaml"} <= names
    assert (RECIPES / "train-paper.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("path", RECIPE_FILES, ids=[p.stem for p in RECIPE_FILES])
def test_recipe_loads_and_validates_without_training(path, standins, data_root, tmp_path, monkeypatch):
    from harness.cli.train import recipe_options, train_configs

    for clean in ("cbsd68", "kodak24"):  # the small-cpu recipes' clean sets, from the real data
        (standins / "denoise" / clean).symlink_to((data_root / "denoise" / clean).resolve())
    monkeypatch.chdir(tmp_path)  # relative outputs (checkpoints/...) land here
    if path.name.startswith("allinone-"):  # its validation tiles are made by a script, not shipped
        import subprocess
        import sys

        subprocess.run([sys.executable, "-m", "restorers.unfoldldm.recipes.allinone_val",
                        "checkpoints/allinone/val"], check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    # the ablation recipes leave restorer and output to ablation-cpu.sh, one per variant
    given = ({"restorer": "unfoldldm[config=small,prior=false,phase=1]", "out": "a.pt"}
             if path.name.startswith("ablation-") else {})
    options = recipe_options(path, given)
    [config] = train_configs(options, device="cpu", tracking=False, show_progress=False)
    report = Trainer(config).check()
    assert report["items"] >= config.recipe.batch_size
    assert report["val_samples"] >= (0 if path.name.startswith("ablation-") else 1)
    if path.name.startswith("paper-"):
        bench, phase = path.stem.removeprefix("paper-").rsplit("-phase", 1)
        recipe = config.recipe
        assert config.restorer.options["config"] == "full"
        assert recipe.iters == {"1": 300_000, "2": 400_000}[phase]
        sizes = [(192, 8), (256, 4), (320, 2), (384, 2), (464, 1), (512, 1)]
        assert [stage[1:] for stage in recipe.progressive] == sizes
        assert recipe.lr == 2e-4 and recipe.ema_decay == 0.999 and recipe.grad_clip
        assert recipe.weight_decay == 0 and recipe.min_lr_ratio * recipe.lr == pytest.approx(1e-6)
        assert config.train_set[1]["augment"] == "dihedral"
        assert Path(config.out).name == f"unfoldldm-full-{bench}-phase{phase}.pt"
        if phase == "2":
            assert config.restorer.options["warmup_fraction"] == 0.25
            assert config.restorer.options["init"] == f"checkpoints/unfoldldm-full-{bench}-phase1.pt"
