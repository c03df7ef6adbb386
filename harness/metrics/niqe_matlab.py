"""NIQE as the official MATLAB release computes it, vectorised in numpy (and pyiqa's NIQE, fast).

Reference: Mittal, Soundararajan & Bovik, "Making a 'completely blind' image quality analyzer",
IEEE SPL 2013; code ``niqe_release.zip`` (LIVE, UT Austin): ``niqe.m`` → ``computequality.m``
(``im, 96, 96, 0, 0, mu_prisparam, cov_prisparam``) → ``computefeature.m`` →
``estimateaggdparam.m``. The pristine model is the release's ``modelparameters.mat`` (our asset
:data:`harness.metrics.suite.NIQE_PARAMS`, bit-identical mu/cov).

What ``computequality.m`` does, step by step, and what this module does the same way:

1. ``rgb2gray`` on the uint8 image: weights ``inv(NTSC)(1,:)`` = 0.298936021293775,
   0.587043074451121, 0.114020904255103 (not 0.299/0.587/0.114), computed in double and
   **rounded half away from zero** back to uint8; then ``double``.
2. Crop to whole 96×96 blocks from the top-left (``floor(rows/96)*96``); partial blocks dropped.
3. Two scales. At each: 7×7 Gaussian σ=7/6 (``fspecial``, normalised), ``imfilter(...,
   'replicate')`` for μ and E[x²]; σ = sqrt(|E[x²] − μ²|); MSCN = (x − μ)/(σ + 1).
4. ``blkproc`` into non-overlapping blocks (96 px, then 48 px); per block 18 features: AGGD fit
   of the MSCN values (α, (βl+βr)/2), then for the shifts [0 1; 1 0; 1 1; 1 −1] the AGGD fit of
   MSCN × ``circshift``(MSCN) *within the block* (α, (βr−βl)·Γ(2/α)/Γ(1/α), βl, βr).
   α is the grid point of ``gam = 0.2:0.001:10`` minimising (r(γ) − r̂)²; the first one on ties.
5. ``imresize(im, 0.5)`` on the double image: bicubic (a = −0.5) **with antialiasing**, kernel
   widened ×2, symmetric boundary, rows then columns, in double, no rounding and no clamping.
6. The block features of both scales are concatenated (36 per block); ``nanmean`` per column and
   ``nancov`` (rows with any NaN dropped, N−1 normalisation); quality =
   sqrt(Δμ · pinv((Σ_pris + Σ_dist)/2) · Δμᵀ), ``pinv`` with MATLAB's tolerance
   max(size)·‖A‖₂·eps.
7. The release computes a per-block ``sharpness`` in ``computequality.m`` but never uses it: the
   "sharpness > 0.75·max" patch selection exists only in ``estimatemodelparam.m``, i.e. when the
   *pristine model* was trained. Applying it at test time would not be MATLAB's NIQE.

Departures of pyiqa's ``niqe`` (0.1.16, ``pyiqa/archs/niqe_arch.py``) from the above, all fixed
here, with their effect measured by switching each one alone into this implementation (TID2013
calibration images, ``tests/test_niqe_matlab.py``):

* **float32 Gaussian window**: ``fspecial`` returns a float32 tensor that is then cast to the
  float64 image — the 7×7 taps are rounded to float32 (sum 1 ± 1e-8). In flat areas that
  rounding decides the sign of x − μ (see the last point): **+5.05 % on I19** on its own.
  Here: the float64 separable window (``_gaussian_1d``).
* **imresize in float32**: pyiqa's ``imresize`` casts every input to float32 (``cast_input``:
  ``dtype != float32 or dtype != float64`` is always true), so the second scale is computed from
  a float32 image: −0.3 % on I08/I19. Here: float64, tap by tap like ``imresizemex``.
* **grey conversion**: 0.299/0.587/0.114 on the float32 [0,1] tensor × 255, rounded half to even
  (``torch.round``); MATLAB's ``rgb2gray`` weights in double, rounded half away from zero:
  −0.5 % on I03. Here: :func:`rgb2gray_uint8`.
* the γ grid from float32 ``torch.arange`` (here MATLAB's colon operator, :func:`_matlab_colon`),
  |r − r̂| instead of (r − r̂)² in the argmin (same minimiser but on ties), ``pinv`` with torch's
  default tolerance (here MATLAB's): no measurable effect on these images.

One addition that is not a pyiqa departure: in a constant 7×7 neighbourhood x − μ and σ are
exactly 0 in exact arithmetic, but any floating-point filter leaves ±1e-14 there, and its sign
decides whether those pixels count on the left or the right side of the AGGD fit (counts enter
βl, βr and so α). MATLAB's own sign depends on its filter's rounding order, which cannot be
reproduced bit for bit outside MATLAB; this module uses the exact value 0
(:func:`_constant_7x7`). On TID2013 (I19 is 30 % flat, I08 2 %, I03 1.5 %, I04 0 %) that moved
I19 from +0.71 % to +0.34 % and I08 from +0.65 % to +0.57 % off the official values; I04, which has
no flat area, matches to 4e-13. The remaining 0.04–0.57 % on I03/I06/I08/I19 is this
floating-point noise in flat areas (it tracks the flat fraction), not a method difference.

BasicSR's ``calculate_niqe`` (and so mmagic's) additionally uses the BT.601 limited-range Y
instead of ``rgb2gray`` by default, and resizes with its own float64 ``imresize``.

:func:`niqe_pyiqa` reproduces pyiqa's own pipeline (its grey conversion, float32 resize, float32
kernel and γ grid) with the same vectorised core, to be used as the fast ``niqe-pyiqa`` metric;
``tests/test_metrics_fast.py`` pins it to pyiqa.

Speed (768×512, one core, machine shared — see ``benchmarks/metrics_vs_pyiqa.py``): the
per-block AGGD fits are computed for all blocks and all five products at once; α
is found by binary search in the (monotone) r(γ) table instead of a 9,801-wide argmin per block;
Γ(1/α), Γ(2/α), Γ(3/α) are looked up from a table built once; the Gaussian filter is separable
and the resize is two small dense matrix products.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage as ndi
import scipy.special

from harness.api.metric import MetricSpec

BLOCK = 96
#: ``rgb2gray``: first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]).
RGB2GRAY = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))[0]


# MATLAB building blocks --------------------------------------------------------------------------
def _matlab_colon(a: float, step: float, b: float) -> np.ndarray:
    """``a:step:b`` as MATLAB builds it: from both ends towards the middle (``colonop``).

    numpy's ``a + k*step`` differs in the last bits for the upper half; only a tie in the α
    search could notice, but there is no reason to differ.
    """
    n = int(math.floor((b - a) / step * (1 + 2 * np.finfo(float).eps)))
    k = np.arange(n + 1, dtype=np.float64)
    hi = a + n * step
    out = a + k * step
    upper = k >= n / 2
    out[upper] = hi - (n - k[upper]) * step
    return out


def _gaussian_1d(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """1-D factor of ``fspecial('gaussian', size, sigma)`` (separable; no taps fall under eps)."""
    r = (size - 1) / 2.0
    x = np.arange(-r, r + 1)
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=32)
def _resize_taps(n_in: int, scale: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based source indices, both (taps, n_out), of MATLAB ``imresize(...,
    scale)`` bicubic + antialiasing along one dimension (``contributions`` in ``imresize.m``:
    kernel widened by 1/scale, ``ceil(width) + 2`` taps, weights normalised per output,
    symmetric folding of out-of-range indices)."""
    n_out = int(math.ceil(n_in * scale))
    width = 4.0 / scale
    u = np.arange(1, n_out + 1, dtype=np.float64)
    x = u / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(x - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based
    w = scale * _cubic(scale * (x[:, None] - idx))
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(1, n_in + 1), np.arange(n_in, 0, -1)])
    idx = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)] - 1
    return np.ascontiguousarray(w.T), np.ascontiguousarray(idx.T)


def _resize_rows(img: np.ndarray) -> np.ndarray:
    w, idx = _resize_taps(img.shape[0])
    out = w[0][:, None] * img[idx[0]]
    for k in range(1, w.shape[0]):  # accumulate tap by tap, as imresizemex does
        out += w[k][:, None] * img[idx[k]]
    return out


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` of a 2-D double image: rows first, then columns (equal
    scales keep MATLAB's dimension order), float64, no rounding or clamping."""
    return _resize_rows(_resize_rows(img).T).T


def _pinv_matlab(a: np.ndarray) -> np.ndarray:
    """``pinv(A)`` with MATLAB's default tolerance ``max(size(A)) * norm(A) * eps``."""
    u, s, vt = np.linalg.svd(a)
    tol = max(a.shape) * s[0] * np.finfo(a.dtype).eps
    keep = s > tol
    return (vt[keep].T / s[keep]) @ u[:, keep].T


# AGGD fit, vectorised ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _GammaTable:
    gam: np.ndarray
    r_gam: np.ndarray
    g1: np.ndarray  # Γ(1/γ)
    g2: np.ndarray  # Γ(2/γ)
    g3: np.ndarray  # Γ(3/γ)


@functools.lru_cache(maxsize=2)
def _gamma_table(flavour: str) -> _GammaTable:
    if flavour == "pyiqa":  # torch.arange(0.2, 10.001, 0.001) in float32, then float64
        import torch

        gam = torch.arange(0.2, 10 + 0.001, 0.001).double().numpy()
        lg = scipy.special.gammaln
        r_gam = np.exp(2 * lg(2.0 / gam) - (lg(1.0 / gam) + lg(3.0 / gam)))
    else:
        gam = _matlab_colon(0.2, 0.001, 10.0)
        g = scipy.special.gamma
        r_gam = g(2.0 / gam) ** 2 / (g(1.0 / gam) * g(3.0 / gam))
    if not np.all(np.diff(r_gam) > 0):  # the binary search below relies on it
        raise AssertionError("r(gamma) is expected to increase on the grid")
    return _GammaTable(gam, r_gam, scipy.special.gamma(1.0 / gam), scipy.special.gamma(2.0 / gam),
                       scipy.special.gamma(3.0 / gam))


def _nearest_index(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """argmin_k (table[k] − v)² for an increasing table; the lower index on ties (MATLAB
    ``min``). NaN values map to index 0 (their α is discarded as NaN later)."""
    hi = np.clip(np.searchsorted(table, values), 1, len(table) - 1)
    lo = hi - 1
    d_lo = (table[lo] - values) ** 2
    d_hi = (table[hi] - values) ** 2
    return np.where(d_hi < d_lo, hi, lo)


def _aggd(vec: np.ndarray, table: _GammaTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``estimateaggdparam`` for each row of ``vec`` (…, n): α, βl, βr and Γ(2/α)/Γ(1/α)."""
    # Sums of squares on each side, |x| sums and counts, without temporaries of masked copies.
    neg = np.minimum(vec, 0.0)
    pos = np.maximum(vec, 0.0)
    n = vec.shape[-1]
    left_sq = np.einsum("...i,...i->...", neg, neg)
    right_sq = np.einsum("...i,...i->...", pos, pos)
    n_left = np.count_nonzero(neg, axis=-1)
    n_right = np.count_nonzero(pos, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(left_sq / n_left)
        right_std = np.sqrt(right_sq / n_right)
        gammahat = left_std / right_std
        rhat = ((pos.sum(-1) - neg.sum(-1)) / n) ** 2 / ((left_sq + right_sq) / n)
        rhatnorm = (rhat * (gammahat**3 + 1) * (gammahat + 1)) / ((gammahat**2 + 1) ** 2)
    k = _nearest_index(table.r_gam, np.nan_to_num(rhatnorm, nan=0.0))
    nan = ~np.isfinite(rhatnorm)
    alpha = np.where(nan, np.nan, table.gam[k])
    scale = np.sqrt(table.g1[k] / table.g3[k])
    return alpha, left_std * scale, right_std * scale, table.g2[k] / table.g1[k]


_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _block_features(mscn: np.ndarray, block: int, table: _GammaTable) -> np.ndarray:
    """``blkproc(mscn, [block block], @computefeature)``: (n_blocks, 18), blocks column-major."""
    h, w = mscn.shape
    nbh, nbw = h // block, w // block
    # (nbw, nbh, block, block): column-major block order as MATLAB's reshape of blkproc output
    blocks = mscn[: nbh * block, : nbw * block].reshape(nbh, block, nbw, block).transpose(2, 0, 1, 3)
    blocks = blocks.reshape(nbw * nbh, block, block)
    flat = blocks.reshape(len(blocks), -1)
    products = [flat]
    for dy, dx in _SHIFTS:
        products.append((blocks * np.roll(blocks, (dy, dx), axis=(1, 2))).reshape(len(blocks), -1))
    alpha, bl, br, g21 = _aggd(np.stack(products), table)  # each (5, n_blocks)
    feats = [alpha[0], (bl[0] + br[0]) / 2]
    for i in range(1, 5):
        feats += [alpha[i], (br[i] - bl[i]) * g21[i], bl[i], br[i]]
    return np.stack(feats, axis=1)


# The metric --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Flavour:
    name: str
    blur: Callable[[np.ndarray], np.ndarray]
    resize: Callable[[np.ndarray], np.ndarray]
    pinv: Callable[[np.ndarray], np.ndarray]
    exact_flat: bool = False


def _window_all(ok: np.ndarray, n: int) -> np.ndarray:
    """Along axis 0: True where the ``n`` entries starting there are all true."""
    c = np.zeros((ok.shape[0] + 1,) + ok.shape[1:], dtype=np.int32)
    np.cumsum(ok, axis=0, out=c[1:])
    return (c[n:] - c[:-n]) == n


def _constant_7x7(img: np.ndarray) -> np.ndarray:
    """Pixels whose 7×7 replicate-padded neighbourhood holds a single value (exact comparisons;
    several times faster than a max/min filter pair)."""
    p = np.pad(img, 3, mode="edge")
    rows_const = _window_all((p[:, 1:] == p[:, :-1]).T, 6).T  # (H+6, W): 7-wide runs per row
    centre_const = _window_all(p[1:, 3:-3] == p[:-1, 3:-3], 6)  # (H, W): centre column
    return _window_all(rows_const, 7) & centre_const


def _mscn(img: np.ndarray, blur: Callable[[np.ndarray], np.ndarray], exact_flat: bool = False) -> np.ndarray:
    """MSCN coefficients: (x − μ)/(σ + 1) with a 7×7 Gaussian, replicate padding.

    ``exact_flat``: where the 7×7 neighbourhood is constant, x − μ is exactly 0 (its value in
    exact arithmetic). A floating-point filter leaves ±1e-14 there instead, whose sign decides
    whether those pixels count on the left or right of the AGGD fit and so moves NIQE by up to
    5 % on images with flat areas (TID2013 I19 is 30 % flat); see the module docstring.
    """
    mu = blur(img)
    sigma = np.sqrt(np.abs(blur(img * img) - mu * mu))
    centred = img - mu
    if exact_flat:
        flat = _constant_7x7(img)
        centred[flat] = 0.0
        sigma[flat] = 0.0
    return centred / (sigma + 1.0)


def niqe_grey(grey: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray,
              flavour: _Flavour | None = None) -> float:
    """NIQE of a 2-D grey image in [0, 255] (already rounded as the flavour wants)."""
    flavour = flavour or MATLAB
    table = _gamma_table(flavour.name)
    h, w = grey.shape
    if h < BLOCK or w < BLOCK:
        raise ValueError(f"NIQE needs at least one {BLOCK}x{BLOCK} block, got {w}x{h}")
    img = np.asarray(grey, dtype=np.float64)[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    feats = []
    for scale in (1, 2):
        feats.append(_block_features(_mscn(img, flavour.blur, flavour.exact_flat), BLOCK // scale, table))
        if scale == 1:
            img = flavour.resize(img)
    dist = np.concatenate(feats, axis=1)
    mu_dist = np.nanmean(dist, axis=0)
    complete = dist[~np.isnan(dist).any(axis=1)]
    cov_dist = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_pris)
    diff = mu_pris - mu_dist
    inv = flavour.pinv((cov_pris + cov_dist) / 2.0)
    return float(np.sqrt(diff @ inv @ diff))


def rgb2gray_uint8(rgb8: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` of an (…, 3) uint8 array: double weights, round half away from zero."""
    grey = rgb8.astype(np.float64) @ RGB2GRAY
    return np.clip(np.floor(grey + 0.5), 0, 255)  # non-negative: half away from zero = floor(+.5)


def _cubic32(x: np.ndarray) -> np.ndarray:
    """pyiqa's ``cubic_contribution`` (a = −0.5), operation for operation in float32."""
    a, f32 = np.float32(-0.5), np.float32
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax * ax2
    c01 = ((a + f32(2)) * ax3 - (a + f32(3)) * ax2 + f32(1)) * (ax <= 1).astype(f32)
    c12 = (a * ax3 - f32(5) * a * ax2 + f32(8) * a * ax - f32(4) * a) * ((ax > 1) & (ax <= 2)).astype(f32)
    return c01 + c12


@functools.lru_cache(maxsize=32)
def _pyiqa_taps(n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (taps, n_out) and source rows of pyiqa's ``resize_1d`` for scale 0.5, computed in
    float32 as pyiqa does (``pos``, ``dist`` and the kernel are float32 there)."""
    f32 = np.float32
    taps = 10  # ceil(4 / 0.5) + 2
    pos = (np.arange(-(-n_in // 2), dtype=f32) + f32(0.5)) / f32(0.5) - f32(0.5)
    base = np.floor(pos) - f32(taps // 2) + f32(1)
    dist = pos - base
    w = _cubic32(np.stack([dist - f32(i) for i in range(taps)]) * f32(0.5))
    w = w / w.sum(axis=0, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    idx = mirror[np.mod(base.astype(np.int64)[None, :] + np.arange(taps)[:, None], 2 * n_in)]
    return w, idx


def _pyiqa_resize_rows(x: np.ndarray) -> np.ndarray:
    w, idx = _pyiqa_taps(x.shape[0])
    out = np.zeros((w.shape[1], x.shape[1]), np.float32)
    for k in range(w.shape[0]):  # pyiqa: (sample * weight).sum(dim=taps), float32, in tap order
        out += x[idx[k]] * w[k][:, None]
    return out


def _pyiqa_resize(img: np.ndarray) -> np.ndarray:
    """pyiqa's ``imresize(img / 255, scale=0.5)`` × 255: its ``cast_input`` turns every input
    into float32, so the whole resize runs in float32 (bit-identical here), then float64."""
    x = (img / 255.0).astype(np.float32)
    y = _pyiqa_resize_rows(_pyiqa_resize_rows(x).T.copy()).T
    return y.astype(np.float64) * 255.0


def _pinv_numpy(a: np.ndarray) -> np.ndarray:
    return np.linalg.pinv(a)


def _separable_blur(g: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def blur(a: np.ndarray) -> np.ndarray:
        a = ndi.correlate1d(a, g, axis=0, mode="nearest")
        return ndi.correlate1d(a, g, axis=1, mode="nearest")

    return blur


def _pyiqa_blur() -> Callable[[np.ndarray], np.ndarray]:
    """pyiqa's ``fspecial(7, 7/6)`` is rounded to float32 as a 2-D kernel, which is no longer
    separable; NIQE is sensitive enough to that (≈1e-4 in the MSCN, a whole α step in some
    blocks) that the exact 2-D kernel is used."""
    r = 3.0
    y, x = np.ogrid[-r: r + 1, -r: r + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * (7.0 / 6.0) ** 2))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    k2 = (h / h.sum()).astype(np.float32).astype(np.float64)
    return lambda a: ndi.correlate(a, k2, mode="nearest")


MATLAB = _Flavour("matlab", _separable_blur(_gaussian_1d()), imresize_half, _pinv_matlab,
                  exact_flat=True)
PYIQA = _Flavour("pyiqa", _pyiqa_blur(), _pyiqa_resize, _pinv_numpy)


def _to_rgb8(img: Any) -> np.ndarray:
    """(1,3,H,W) or (3,H,W) tensor/array in [0,1], or (H,W,3) uint8 → (H,W,3) uint8."""
    arr = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    if arr.dtype == np.uint8:
        return arr
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError("one image at a time")
        arr = arr[0]
    arr = np.moveaxis(arr, 0, -1)
    return np.clip(np.floor(arr.astype(np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def niqe_matlab(img: Any, mu_pris: np.ndarray, cov_pris: np.ndarray) -> float:
    """MATLAB-faithful NIQE of one RGB image ((1,3,H,W) tensor in [0,1] or (H,W,3) uint8).

    A float input is first quantised to uint8 (MATLAB reads the 8-bit file); grey input
    (H,W) uint8 is used as is.
    """
    arr = np.asarray(img) if not hasattr(img, "detach") else None
    if arr is not None and arr.ndim == 2:
        return niqe_grey(arr.astype(np.float64), mu_pris, cov_pris, MATLAB)
    if arr is None and img.shape[-3] == 1:  # grey tensor in [0,1]
        grey = np.floor(img.detach().cpu().double().numpy().reshape(img.shape[-2:]) * 255.0 + 0.5)
        return niqe_grey(np.clip(grey, 0, 255), mu_pris, cov_pris, MATLAB)
    return niqe_grey(rgb2gray_uint8(_to_rgb8(img)), mu_pris, cov_pris, MATLAB)


def pyiqa_grey(img: Any) -> np.ndarray:
    """pyiqa's ``to_y_channel(img, 255, 'yiq')`` + round: float32 0.299/0.587/0.114 on the [0,1]
    tensor, ×255 in float32, round half to even."""
    import torch

    x = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.asarray(img))
    x = x.detach().cpu().float()
    if x.ndim == 3:
        x = x[None]
    if x.shape[1] == 1:  # pyiqa: grey input is scaled by 255 and rounded
        return torch.round(x * 255.0)[0, 0].double().numpy()
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).view(1, 3, 1, 1)
    # pyiqa: (x.permute(0,2,3,1) @ yiq_weights.T)[..., 0] then * 255 then round, all float32
    y = (x.permute(0, 2, 3, 1) @ weights.view(3, 1))[..., 0] * 255.0
    return torch.round(y)[0].double().numpy()


def niqe_pyiqa(img: Any, mu_pris: np.ndarray, cov_pris: np.ndarray) -> float:
    """pyiqa 0.1.16's ``niqe`` (official parameters, yiq grey), fast."""
    return niqe_grey(pyiqa_grey(img), mu_pris, cov_pris, PYIQA)


# Parameters and MetricSpecs ----------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _load_params(path: str) -> tuple[np.ndarray, np.ndarray]:
    from harness.io.safe_load import load_mat, load_npz

    p = Path(path)
    if p.suffix == ".npz":
        data = load_npz(p, what="NIQE parameters")
        return (np.ravel(data["mu_pris_param"]).astype(np.float64),
                np.asarray(data["cov_pris_param"], dtype=np.float64))
    data = load_mat(p, what="NIQE parameters")
    return np.ravel(data["mu_prisparam"]).astype(np.float64), np.asarray(data["cov_prisparam"], np.float64)


def official_params() -> tuple[np.ndarray, np.ndarray]:
    """The official pristine model (asset ``niqe-official``, declared in ``harness.metrics.suite``)
    through the asset cache; :class:`~harness.api.metric.MetricUnavailable` when absent."""
    from harness.api.metric import MetricUnavailable
    from harness.assets import metric_weights  # noqa: F401  (declares the asset)
    from harness.assets.cache import AssetMissingError, fetch

    try:
        path = fetch("niqe-official", "niqe_pris_params.npz")
    except AssetMissingError as exc:
        raise MetricUnavailable(str(exc)) from exc
    return _load_params(str(path))


def _scorer(fn: Callable[[Any, np.ndarray, np.ndarray], float]) -> Callable[..., Any]:
    mu, cov = official_params()

    def score(out: Any, _gt: Any = None, _meta: Any = None) -> Any:
        import torch

        if out.ndim == 4 and out.shape[0] > 1:
            return torch.tensor([fn(o[None], mu, cov) for o in out], dtype=torch.float64)
        return torch.tensor([fn(out, mu, cov)], dtype=torch.float64)

    return score


def _build_niqe_matlab(_conventions: Any, _device: Any) -> Callable[..., Any]:
    return _scorer(niqe_matlab)


def _build_niqe_pyiqa(_conventions: Any, _device: Any) -> Callable[..., Any]:
    return _scorer(niqe_pyiqa)


NIQE_SPEC = MetricSpec(
    "niqe", "NR", True,
    "NIQE as the official MATLAB release (rgb2gray, float64 imresize; official parameters)",
    _build_niqe_matlab,
    lambda _c: {"impl": "harness.metrics.niqe_matlab (MATLAB niqe_release computequality.m)",
                "params": "official (LIVE pristine, BasicSR npz)", "grey": "matlab rgb2gray uint8",
                "block": BLOCK, "device": "cpu"})
NIQE_PYIQA_SPEC = MetricSpec(
    "niqe-pyiqa", "NR", True, "NIQE exactly as pyiqa 0.1.16 computes it (fast CPU path)",
    _build_niqe_pyiqa,
    lambda _c: {"impl": "harness.metrics.niqe_matlab.niqe_pyiqa (= pyiqa 0.1.16 niqe)",
                "params": "official (LIVE pristine, BasicSR npz)", "grey": "yiq", "device": "cpu"})
#: For the registry: ``for spec in NIQE_SPECS: METRICS.register(spec.name, target=spec)``.
NIQE_SPECS: tuple[MetricSpec, ...] = (NIQE_SPEC, NIQE_PYIQA_SPEC)
