"""The O(1) guided filter (He, Sun, Tang, ECCV 2010 / TPAMI 2013) with a grey guide, in numpy.

OpenCV's ``cv2.ximgproc.guidedFilter`` lives in opencv-contrib, which this project does not
install, and the filter is a handful of box filters: for each window ω_k of radius r,
q = ā·I + b̄ with a_k = cov_k(I,p) / (var_k(I) + ε), b_k = mean_k(p) − a_k·mean_k(I), and ā, b̄ the
box means of a, b. Box means use integral images with windows clipped at the border (divided by
the true pixel count, as the authors' ``boxfilter.m`` + ``N`` normalisation), so any radius works on
any image size.
"""

from __future__ import annotations

import numpy as np


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)² window clipped to the image, for a 2-D array, via integral images."""
    height, width = image.shape
    integral = np.zeros((height + 1, width + 1))
    integral[1:, 1:] = image.cumsum(0).cumsum(1)
    rows, cols = np.arange(height), np.arange(width)
    top, bottom = np.clip(rows - radius, 0, height), np.clip(rows + radius + 1, 0, height)
    left, right = np.clip(cols - radius, 0, width), np.clip(cols + radius + 1, 0, width)
    total = (integral[np.ix_(bottom, right)] - integral[np.ix_(top, right)]
             - integral[np.ix_(bottom, left)] + integral[np.ix_(top, left)])
    count = np.outer(bottom - top, right - left)
    return total / count


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Filter ``source`` (H,W) edge-preservingly along the edges of ``guide`` (H,W)."""
    mean_i, mean_p = box_mean(guide, radius), box_mean(source, radius)
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)
