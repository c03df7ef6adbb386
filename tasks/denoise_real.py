"""Real-noise denoising: the SIDD sRGB validation blocks (``sidd-val``).

The benchmark is 40 images × 32 blocks of 256×256 (uint8 sRGB) in two MATLAB files,
``ValidationNoisyBlocksSrgb.mat`` and ``ValidationGtBlocksSrgb.mat`` (variables named like the
files, shape (40, 32, 256, 256, 3)). Every block is one sample (``img00_blk00`` …) and the score is
the mean over the 1280 blocks (Restormer ``evaluate_sidd.m``, NAFNet). Conventions: RGB, outputs
quantised to 8 bit (the released results are uint8 ``.mat`` files), no crop.

Reading: scipy.io for MATLAB v5 files (the official release). A v7.3 (HDF5) copy needs ``h5py``;
without it the error says so. The arrays are loaded once per task and kept in memory (2 × 252 MB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api.task import DataMissingError, MetricConventions, Sample, register_task
from harness.assets.datasets import DatasetSpec, DataSource
from tasks._common import data_root
from tasks._dataset import DatasetTask, layouts_for

NOISY, GT = "ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"
SHAPE = (40, 32, 256, 256, 3)


def _layout(name: str, folder: str, note: str = "") -> tuple[str, dict[str, str], str]:
    return (name, {"lq": f"{folder}/{NOISY}.mat", "gt": f"{folder}/{GT}.mat"}, note)


SIDD_SPEC = DatasetSpec(
    "SIDD validation (sRGB blocks)",
    layouts=layouts_for(
        _layout("official", "denoise/SIDD", "the two .mat files of the SIDD benchmark page"),
        _layout("lowercase", "denoise/sidd"),
        _layout("restormer", "Datasets/test/SIDD", "Restormer Denoising/Datasets/test/SIDD"),
        _layout("test-sidd", "test/SIDD"),
        _layout("root", "SIDD"),
    ),
    sources=(DataSource("manual", "https://www.eecs.yorku.ca/~kamel/sidd/benchmark.php ("
                        "ValidationNoisyBlocksSrgb.mat, ValidationGtBlocksSrgb.mat)",
                        note="Hugging Face MhdMohammadi/SIDD-CC is re-processed, not this set"),),
    homepage="https://www.eecs.yorku.ca/~kamel/sidd/",
)


def read_mat_array(path: Path, key: str) -> np.ndarray:
    """``key`` from a MATLAB file as (…, H, W, C) uint8; v7.3 (HDF5) via h5py if installed."""
    import scipy.io

    try:
        data = scipy.io.loadmat(path, variable_names=[key])
    except NotImplementedError as exc:  # scipy: "Please use HDF reader for matlab v7.3 files"
        try:
            import h5py
        except ImportError:
            raise ValueError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read. "
                             f"`pip install h5py` (restorebench then reads it), or re-save it "
                             f"as v7 in MATLAB: save(f, '{key}', '-v7').") from exc
        with h5py.File(path, "r") as handle:
            if key not in handle:
                raise KeyError(f"{path} has no variable {key!r} (has {sorted(handle)})") from exc
            # MATLAB stores column-major: h5py sees the axes reversed.
            return np.ascontiguousarray(np.asarray(handle[key]).transpose())
    if key not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise KeyError(f"{path} has no variable {key!r} (has {found}); is this the SIDD "
                       f"sRGB validation file?")
    return data[key]


class SIDDValidation(DatasetTask):
    name = "sidd-val"
    description = "SIDD sRGB validation: 40x32 blocks of 256x256, RGB PSNR/SSIM, mean of 1280"
    citation = ("Abdelhamed, Lin, Brown. A High-Quality Denoising Dataset for Smartphone "
                "Cameras. CVPR 2018")
    degradation = "noise"
    dataset = SIDD_SPEC
    expected_count = SHAPE[0] * SHAPE[1]
    expected_sizes = frozenset({(256, 256)})
    conventions = MetricConventions(color_space="rgb", crop_border=0, quantize=True)

    def __init__(self) -> None:
        super().__init__()
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            paths = self.match().paths
            noisy = read_mat_array(paths["lq"], NOISY)
            gt = read_mat_array(paths["gt"], GT)
            for label, array in (("noisy", noisy), ("gt", gt)):
                if array.ndim != 5 or array.shape[-1] != 3:
                    raise ValueError(f"SIDD {label} blocks have shape {array.shape}; expected "
                                     f"(images, blocks, H, W, 3) like {SHAPE}")
            if noisy.shape != gt.shape:
                raise ValueError(f"SIDD noisy {noisy.shape} and GT {gt.shape} blocks differ")
            self._arrays = (noisy, gt)
        return self._arrays

    def build_index(self) -> dict[str, tuple[Path, Path | None]]:
        noisy, _ = self.arrays()
        paths = self.match().paths
        return {f"img{i:02d}_blk{j:02d}": (paths["lq"], paths["gt"])
                for i in range(noisy.shape[0]) for j in range(noisy.shape[1])}

    def _block(self, sample_id: str) -> tuple[int, int]:
        image, block = sample_id.removeprefix("img").split("_blk")
        return int(image), int(block)

    def probe(self, sample_id: str) -> dict[str, Any]:
        noisy, gt = self.arrays()
        i, j = self._block(sample_id)
        return {"lq_size": tuple(noisy[i, j].shape[:2]), "gt_size": tuple(gt[i, j].shape[:2])}

    def load(self, sample_id: str) -> Sample:
        if sample_id not in self.index():
            raise DataMissingError(f"sidd-val has no block {sample_id!r}")
        noisy, gt = self.arrays()
        i, j = self._block(sample_id)

        def tensor(block: np.ndarray) -> torch.Tensor:
            if block.dtype != np.uint8:
                raise ValueError(f"SIDD blocks must be uint8, found {block.dtype}")
            return torch.from_numpy(block.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()

        return Sample(sample_id, tensor(noisy[i, j]), tensor(gt[i, j]),
                      {"image": i, "block": j, "lq_path": str(self.match().paths["lq"]),
                       "data_root": str(data_root())})


register_task("sidd-val")(SIDDValidation)
