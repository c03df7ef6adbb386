"""PSNR + SSIM(Y) + NIQE on Kodak24 σ=25: this harness against pyiqa's own CLI (issue 15).

Builds noisy/clean folders from ``$BENCH_DATA_ROOT/denoise/kodak24`` (``np.random.seed(0)`` per
image, AWGN σ=25, clipped and quantised to 8-bit PNG — a folder of files cannot hold the
unclipped input), then measures:

* ``cli``: whole processes, ``--runs`` times each, medians and the ratio per pair:
  ``pyiqa psnr ssim niqe -t LQ -r GT --device cpu`` (NIQE parameters placed in its cache inside a
  temporary HOME/TORCH_HOME, so nothing of the user's changes), ``bench run -r identity -t
  'folder[lq=…,gt=…,ssim_color_space=yiq]' --metrics psnr,ssim,niqe --no-tracking`` (as wired
  today), and ``parts``: one process doing what the wired CLI will do with this branch's pieces
  (allocator setting, lean pyiqa import, fast PSNR/SSIM, ``niqe-pyiqa`` and ``niqe``, fast exit) —
  the lower bound of what the runner can reach without overlapping restore and metrics. Checks
  that the PSNR/SSIM/NIQE(pyiqa) means agree.
* ``per-image``: decode, PSNR, SSIM-Y, NIQE per image, pyiqa's module against the fast paths.
* ``fixed``: per-process costs: ``import torch``, full ``import pyiqa`` + metrics against
  ``harness.metrics.pyiqa_lean``, interpreter teardown against ``fastproc.fast_exit``.
* ``malloc``: NIQE per image and a DnCNN-sized conv stack, and peak RSS, under
  ``BENCH_MALLOC=default|tuned|nommap`` (one fresh process each).

Usage::

    PYTHONPATH=$PWD python benchmarks/metrics_vs_pyiqa.py [--runs 3] [--images 24]
        [--sections cli,per-image,fixed,malloc]

The machine this was written on had 2 cores shared with other jobs: read medians, and compare
ratios measured in the same invocation. Numbers go into reports, never into tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIGMA = 25


def data_root() -> Path:
    return Path(os.environ.get("BENCH_DATA_ROOT", REPO.parent / "shared" / "data"))


def weights_dir() -> Path:
    return Path(os.environ.get("BENCH_WEIGHTS_DIR", REPO.parent / "shared" / "weights"))


def build_folders(tmp: Path, n_images: int) -> tuple[Path, Path]:
    from PIL import Image

    lq, gt = tmp / "lq", tmp / "gt"
    lq.mkdir()
    gt.mkdir()
    for path in sorted((data_root() / "denoise" / "kodak24").glob("*.png"))[:n_images]:
        clean = np.asarray(Image.open(path).convert("RGB"))
        np.random.seed(0)
        noisy = clean / 255.0 + np.random.normal(0, SIGMA / 255.0, clean.shape)
        Image.fromarray(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(lq / path.name)
        shutil.copyfile(path, gt / path.name)
    return lq, gt


def pyiqa_env(tmp: Path) -> dict[str, str]:
    """A private HOME/TORCH_HOME with the official NIQE parameters where pyiqa looks for them."""
    home, torch_home = tmp / "home", tmp / "torch_home"
    cache = torch_home / "hub" / "pyiqa"
    cache.mkdir(parents=True)
    home.mkdir()
    shutil.copyfile(weights_dir() / "niqe" / "modelparameters.mat", cache / "niqe_modelparameters.mat")
    return dict(os.environ, HOME=str(home), TORCH_HOME=str(torch_home), HF_HUB_OFFLINE="1")


def bench_env(tmp: Path) -> dict[str, str]:
    """A private BENCH_HOME with the weights imported (as the tests do)."""
    home = tmp / "bench_home"
    env = dict(os.environ, BENCH_HOME=str(home), BENCH_OFFLINE="1", PYTHONPATH=str(REPO),
               HOME=str(tmp / "home"), TORCH_HOME=str(tmp / "torch_home"))
    subprocess.run([sys.executable, "-c", "import sys; from harness.assets import import_dir, "
                    "load_all_declarations; from pathlib import Path; "
                    "import_dir(Path(sys.argv[1]), load_all_declarations())", str(weights_dir())],
                   env=env, check=True, capture_output=True)
    return env


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{cmd[:4]}… failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stdout


def pyiqa_means(stdout: str) -> dict[str, float]:
    return {m: float(v) for m, v in re.findall(r"'(\w+)': \{'mean': (?:np\.float64\()?([-0-9.eE+]+)", stdout)}


def bench_means(out_dir: Path) -> dict[str, float]:
    results = json.loads(next(out_dir.rglob("results.json")).read_text())
    found: dict[str, float] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("psnr", "ssim", "niqe") and isinstance(value, (int, float)):
                    found.setdefault(key, float(value))
                elif key in ("psnr", "ssim", "niqe") and isinstance(value, dict) and "mean" in value:
                    found.setdefault(key, float(value["mean"]))
                else:
                    walk(value)

    walk(results.get("results", results))
    return found


PARTS_SCRIPT = r"""
import sys, time
t0 = time.perf_counter()
from harness.io.fastproc import configure_malloc, fast_exit
configure_malloc()
from pathlib import Path
import numpy as np, torch
from PIL import Image
from harness.metrics.psnr_cpu import psnr_cpu
from harness.metrics.ssim_cpu import ssim_cpu
from harness.metrics import niqe_matlab as nm
lq, gt = Path(sys.argv[1]), Path(sys.argv[2])
mu, cov = nm.official_params()
vals = {"psnr": [], "ssim": [], "niqe-pyiqa": [], "niqe": []}
for path in sorted(lq.glob("*.png")):
    a = np.asarray(Image.open(path).convert("RGB")); b = np.asarray(Image.open(gt / path.name).convert("RGB"))
    x = torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255
    y = torch.from_numpy(b.copy()).permute(2, 0, 1)[None].float() / 255
    vals["psnr"].append(float(psnr_cpu(x, y)))
    vals["ssim"].append(float(ssim_cpu(x, y, True, "yiq")))
    vals["niqe-pyiqa"].append(nm.niqe_pyiqa(x, mu, cov))
    vals["niqe"].append(nm.niqe_matlab(a, mu, cov))
print({k: float(np.mean(v)) for k, v in vals.items()}, flush=True)
fast_exit(0)
"""


def section_cli(tmp: Path, lq: Path, gt: Path, runs: int) -> None:
    penv, benv = pyiqa_env(tmp), bench_env(tmp)
    pyiqa_cli = shutil.which("pyiqa", path=str(Path(sys.executable).parent)) or "pyiqa"
    commands = {
        "pyiqa CLI": ([pyiqa_cli, "psnr", "ssim", "niqe", "-t", str(lq), "-r", str(gt), "--device", "cpu"],
                      penv),
        "bench run (today)": ([sys.executable, "-m", "harness.cli.main", "run", "-r", "identity", "-t",
                               f"folder[lq={lq},gt={gt},ssim_color_space=yiq]", "--metrics",
                               "psnr,ssim,niqe", "--no-tracking", "--no-progress", "--device", "cpu",
                               "--output-dir", str(tmp / "bench_out")], benv),
        "parts (this branch)": ([sys.executable, "-c", PARTS_SCRIPT, str(lq), str(gt)], benv),
    }
    walls: dict[str, list[float]] = {k: [] for k in commands}
    means: dict[str, dict[str, float]] = {}
    for _ in range(runs):  # interleaved, so load drifts hit all three alike
        for name, (cmd, env) in commands.items():
            if name.startswith("bench"):
                shutil.rmtree(tmp / "bench_out", ignore_errors=True)
            wall, out = timed(cmd, env, cwd=tmp)
            walls[name].append(wall)
            if name.startswith("pyiqa"):
                means[name] = pyiqa_means(out)
            elif name.startswith("bench"):
                means[name] = bench_means(tmp / "bench_out")
            else:
                means[name] = {k: float(v) for k, v in re.findall(r"'([\w-]+)': ([-0-9.eE+]+)", out)}
    ref = statistics.median(walls["pyiqa CLI"])
    print("| process | runs (s) | median (s) | / pyiqa CLI |\n|---|---|---|---|")
    for name, w in walls.items():
        print(f"| {name} | {', '.join(f'{x:.1f}' for x in w)} | {statistics.median(w):.2f} | "
              f"{statistics.median(w) / ref:.2f} |")
    print("\nmeans:", json.dumps(means, indent=None))
    p, parts = means["pyiqa CLI"], means["parts (this branch)"]
    for key, ours in (("psnr", "psnr"), ("ssim", "ssim"), ("niqe", "niqe-pyiqa")):
        print(f"  {key}: pyiqa {p.get(key)}  parts {parts.get(ours)}  "
              f"diff {abs(p.get(key, np.nan) - parts.get(ours, np.nan)):.2e}")
    print(f"  niqe (MATLAB-faithful) mean: {parts.get('niqe')}")


def _median_ms(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def section_per_image(lq: Path, gt: Path, n: int) -> None:
    import pyiqa
    import torch
    from PIL import Image

    from harness.metrics import niqe_matlab as nm
    from harness.metrics.psnr_cpu import psnr_cpu
    from harness.metrics.ssim_cpu import ssim_cpu

    torch.set_num_threads(1)
    mu, cov = nm._load_params(str(weights_dir() / "niqe" / "niqe_pris_params.npz"))
    pyiqa_psnr = pyiqa.create_metric("psnr", device="cpu")
    params = str(weights_dir() / "niqe" / "modelparameters.mat")
    pyiqa_niqe = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=params)
    pyiqa_ssim = pyiqa.create_metric("ssim", device="cpu")
    rows: dict[str, list[float]] = {}
    paths = sorted(lq.glob("*.png"))[:n]

    def load(p: Path) -> np.ndarray:
        return np.asarray(Image.open(p).convert("RGB"))

    def time_image(path: Path, with_pyiqa_ssim: bool) -> None:
        a = load(path)
        x = torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255
        y = torch.from_numpy(load(gt / path.name).copy()).permute(2, 0, 1)[None].float() / 255
        timings = {
            "decode PNG": lambda: load(path),
            "PSNR pyiqa": lambda: pyiqa_psnr(x, y),
            "PSNR psnr_cpu": lambda: psnr_cpu(x, y),
            "SSIM-Y ssim_cpu": lambda: ssim_cpu(x, y, True, "yiq"),
            "SSIM-RGB ssim_cpu": lambda: ssim_cpu(x, y, False),
            "NIQE pyiqa": lambda: pyiqa_niqe(x),
            "NIQE niqe-pyiqa (fast)": lambda: nm.niqe_pyiqa(x, mu, cov),
            "NIQE niqe (MATLAB)": lambda: nm.niqe_matlab(a, mu, cov),
        }
        if with_pyiqa_ssim:  # pyiqa's float64 conv2d SSIM takes seconds: one image
            timings["SSIM-Y pyiqa"] = lambda: pyiqa_ssim(x, y)
        for name, fn in timings.items():
            rows.setdefault(name, []).append(_median_ms(fn, 1 if "SSIM-Y pyiqa" in name else 3))

    for i, path in enumerate(paths):
        time_image(path, i == 0)
    print(f"| step (768×512, 1 thread, {len(paths)} images) | median ms/image |\n|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.1f} |")


FIXED_SCRIPT = r"""
import sys, time, os
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
mode = sys.argv[1]
params = sys.argv[2]
if mode.startswith("lean"):
    from harness.metrics.pyiqa_lean import create_lean
    ms = [create_lean("psnr"), create_lean("ssim"), create_lean("niqe", pretrained_model_path=params)]
else:
    import pyiqa
    ms = [pyiqa.create_metric(n, device="cpu", **({"pretrained_model_path": params} if n == "niqe" else {}))
          for n in ("psnr", "ssim", "niqe")]
t2 = time.perf_counter()
heavy = [m for m in ("torchvision.models", "torch._dynamo") if m in sys.modules]
print(f"T {t1 - t0:.3f} {t2 - t1:.3f} {time.time():.6f} {heavy}", flush=True)
if mode.endswith("fastexit"):
    from harness.io.fastproc import fast_exit
    fast_exit(0)
"""


def section_fixed(tmp: Path, runs: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    params = str(weights_dir() / "niqe" / "modelparameters.mat")
    print("| process | import torch (s) | metrics import+create (s) | exit after last line (s) | heavy |")
    print("|---|---|---|---|---|")
    for mode in ("full", "full-fastexit", "lean", "lean-fastexit"):
        rows = []
        for _ in range(runs):
            done = subprocess.run([sys.executable, "-c", FIXED_SCRIPT, mode, params], env=env,
                                  capture_output=True, text=True, check=True)
            end = time.time()
            line = next(ln for ln in done.stdout.splitlines() if ln.startswith("T "))
            _, torch_s, create_s, stamp, heavy = line.split(" ", 4)
            rows.append((float(torch_s), float(create_s), end - float(stamp), heavy))
        med = [statistics.median(r[i] for r in rows) for i in range(3)]
        print(f"| {mode} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {rows[0][3]} |")


MALLOC_SCRIPT = r"""
import sys, time, statistics
from harness.io.fastproc import configure_malloc, peak_rss_mb
setting = configure_malloc(sys.argv[1])
from pathlib import Path
import numpy as np, torch
from PIL import Image
from harness.metrics import niqe_matlab as nm
torch.set_num_threads(1)
mu, cov = nm._load_params(sys.argv[3])
n = int(sys.argv[4])
paths = sorted(Path(sys.argv[2]).glob("*.png"))[:n]
# A run's per-image work: a DnCNN-sized grey forward (17 conv layers, 64 channels, full image)
# as the restore, then NIQE on the result, image after image.
net = torch.nn.Sequential(torch.nn.Conv2d(1, 64, 3, padding=1), torch.nn.ReLU(),
                          *[m for _ in range(15)
                            for m in (torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU())],
                          torch.nn.Conv2d(64, 1, 3, padding=1)).eval()
cnn, niqe = [], []
rss_start = peak_rss_mb()
with torch.no_grad():
    for p in paths:
        a = np.asarray(Image.open(p).convert("RGB"))
        x = torch.from_numpy(nm.rgb2gray_uint8(a)).float()[None, None] / 255
        t = time.perf_counter(); y = net(x); cnn.append(time.perf_counter() - t)
        t = time.perf_counter(); nm.niqe_matlab(a, mu, cov); niqe.append(time.perf_counter() - t)
print(f"R {setting.mode} {statistics.median(niqe[1:] or niqe) * 1000:.1f} "
      f"{statistics.median(cnn[1:] or cnn) * 1000:.0f} {rss_start:.0f} {peak_rss_mb():.0f}", flush=True)
"""


def section_malloc(lq: Path, runs: int, n_images: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    params = str(weights_dir() / "niqe" / "niqe_pris_params.npz")
    print(f"| BENCH_MALLOC | NIQE ms/image | DnCNN-sized forward ms (768×512 grey, 1 thread) | "
          f"peak RSS MB before → after {n_images} images |\n|---|---|---|---|")
    results: dict[str, list[tuple[float, ...]]] = {}
    for _ in range(runs):
        for mode in ("default", "tuned", "nommap"):
            done = subprocess.run([sys.executable, "-c", MALLOC_SCRIPT, mode, str(lq), params, str(n_images)],
                                  env=env, capture_output=True, text=True, check=True)
            line = next(ln for ln in done.stdout.splitlines() if ln.startswith("R "))
            results.setdefault(mode, []).append(tuple(float(v) for v in line.split()[2:]))
    for mode, rows in results.items():
        med = [statistics.median(r[i] for r in rows) for i in range(4)]
        print(f"| {mode} | {med[0]:.1f} | {med[1]:.0f} | {med[2]:.0f} → {med[3]:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--per-image", type=int, default=6, help="images timed in the per-image section")
    parser.add_argument("--malloc-images", type=int, default=4, help="images per process, malloc section")
    parser.add_argument("--sections", default="cli,per-image,fixed,malloc")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    print(f"python {sys.version.split()[0]}, cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f} "
          "(shared machine: compare within one invocation)\n")
    with tempfile.TemporaryDirectory(prefix="metrics_vs_pyiqa_") as name:
        tmp = Path(name)
        lq, gt = build_folders(tmp, args.images)
        if "cli" in sections:
            section_cli(tmp, lq, gt, args.runs)
            print()
        if "per-image" in sections:
            section_per_image(lq, gt, args.per_image)
            print()
        if "fixed" in sections:
            section_fixed(tmp, args.runs)
            print()
        if "malloc" in sections:
            section_malloc(lq, args.runs, args.malloc_images)


if __name__ == "__main__":
    main()
