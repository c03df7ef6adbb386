"""Layer 3 — image-quality metrics: the metric suite configured per task, exact CPU paths of
PSNR / SSIM, MATLAB-faithful NIQE, and the lean pyiqa loader. Imports io, api, assets."""
