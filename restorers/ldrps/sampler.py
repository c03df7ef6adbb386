"""The DDIM sampler of LD-RPS, written out (``ldrps.md`` §1.1, §7 rows 1–3).

The reference runs diffusers' ``DDIMScheduler`` with a *patched* dynamic thresholding and the
default "leading" grid of a config that has no ``timestep_spacing`` key. Both are reproduced here
explicitly, so that a diffusers release that changes either default (or a user with an unpatched
copy) cannot change the result. diffusers still supplies the schedule constants
(``alphas_cumprod``, ``final_alpha_cumprod``) from the model's own scheduler config, and the tests
check these formulas against ``DDIMScheduler.step`` wherever the two agree (no thresholding;
thresholding up to the division by ``s`` the patch removes).

Notation (the paper's and diffusers' DDIM, η = 0):

=========  =====================================================================
ᾱ_t        ``alphas_cumprod[t]``; ᾱ_{-1} = ``final_alpha_cumprod`` (= ᾱ_0 for SD2.1,
           ``set_alpha_to_one=False``)
ε̂          CFG-combined noise prediction
x̂₀         ``clip_q((z_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t)`` — the clean-latent estimate
z_{t'}     ``√ᾱ_{t'}·x̂₀ + √(1−ᾱ_{t'})·ε̂`` with t' the next grid timestep (unclipped ε̂)
clip_q     per-sample clamp to ±s, s = 99.5 % quantile of |x̂₀| clamped to [1, 100],
           **without** the division by s of upstream diffusers (the reference's patch)
=========  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Spacing = Literal["leading", "trailing"]


def timestep_grid(num_inference_steps: int, num_train_timesteps: int = 1000, steps_offset: int = 1,
                  spacing: Spacing = "leading") -> list[int]:
    """The descending timestep list of a DDIM run.

    ``leading`` (the reference, SD2.1's config has no ``timestep_spacing``): ratio
    ``T // N`` and offset 1, so 450 steps give ``[899, 897, …, 3, 1]``. ``trailing`` starts at
    T − 1 (999), which is more principled but changes results (spec §7 row 2).
    """
    if not 1 <= num_inference_steps <= num_train_timesteps:
        raise ValueError(f"steps must be in [1, {num_train_timesteps}], got {num_inference_steps}")
    if spacing == "leading":
        ratio = num_train_timesteps // num_inference_steps
        grid = (np.arange(num_inference_steps) * ratio).round()[::-1].astype(np.int64) + steps_offset
    elif spacing == "trailing":
        ratio_f = num_train_timesteps / num_inference_steps
        grid = np.round(np.arange(num_train_timesteps, 0, -ratio_f)).astype(np.int64) - 1
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}")
    return [int(t) for t in grid]


def recurrence_start(num_inference_steps: int, strength: float) -> int:
    """Index into the grid where an img2img pass of ``strength`` starts (diffusers'
    ``get_timesteps``): 450 steps, strength 0.5 → index 225, i.e. t = 449."""
    init = min(int(num_inference_steps * strength), num_inference_steps)
    return max(num_inference_steps - init, 0)


def clip_quantile(x0: torch.Tensor, ratio: float = 0.995, max_value: float = 100.0) -> torch.Tensor:
    """Outlier clipping of x̂₀: per sample, clamp to ±s with s the ``ratio`` quantile of |x̂₀| over
    all its latent values, s ∈ [1, ``max_value``]; no division by s (the reference's patched
    ``_threshold_sample``; upstream divides, which greys the output)."""
    dtype = x0.dtype
    flat = x0.reshape(x0.shape[0], -1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()  # quantile is not implemented in half precision
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1.0, max=max_value).unsqueeze(1)
    return torch.clamp(flat, -s, s).reshape(x0.shape).to(dtype)


@dataclass
class DDIMSchedule:
    """Schedule constants of the diffusion model plus the timestep grid of one run.

    ``alphas_cumprod`` and ``final_alpha_cumprod`` come from diffusers' ``DDIMScheduler`` built
    from the model's scheduler config (the constants only; nothing of its stepping logic).
    """

    alphas_cumprod: torch.Tensor  # (T,) float32, as diffusers computes it
    final_alpha_cumprod: torch.Tensor  # scalar
    timesteps: list[int]
    threshold: bool = True
    ratio: float = 0.995
    max_value: float = 100.0

    @classmethod
    def from_scheduler(cls, scheduler, num_inference_steps: int, spacing: Spacing = "leading",
                       threshold: bool = True) -> DDIMSchedule:
        config = scheduler.config
        grid = timestep_grid(num_inference_steps, int(config.num_train_timesteps),
                             int(config.get("steps_offset", 0)), spacing)
        return cls(scheduler.alphas_cumprod.float().cpu(),
                   torch.as_tensor(scheduler.final_alpha_cumprod).float().cpu(), grid, threshold)

    def alpha(self, t: int) -> torch.Tensor:
        return self.alphas_cumprod[t] if t >= 0 else self.final_alpha_cumprod

    def prev(self, t: int) -> int:
        """Next (smaller) grid timestep after ``t``; −1 after the last one (→ ᾱ_final).

        For the leading grid this equals diffusers' ``t − T//N``."""
        index = self.timesteps.index(t)
        return self.timesteps[index + 1] if index + 1 < len(self.timesteps) else -1

    def clip(self, x0: torch.Tensor) -> torch.Tensor:
        return clip_quantile(x0, self.ratio, self.max_value) if self.threshold else x0

    def predict_x0(self, z: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """x̂₀ = clip((z − √(1−ᾱ_t)·ε̂)/√ᾱ_t)."""
        a_t = self.alpha(t).to(z.device)
        return self.clip((z - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5)

    def step(self, z: torch.Tensor, eps: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One deterministic DDIM step t → prev(t); returns (z_prev, x̂₀).

        Same operation order as diffusers' ``DDIMScheduler.step`` (η = 0,
        ``use_clipped_model_output=False``), so fp32 results match it bit for bit where the
        thresholding agrees."""
        a_prev = self.alpha(self.prev(t)).to(z.device)
        x0 = self.predict_x0(z, eps, t)
        direction = (1 - a_prev) ** 0.5 * eps
        return a_prev ** 0.5 * x0 + direction, x0

    def add_noise(self, z: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
        """Forward diffusion of a clean latent to timestep t (diffusers' ``add_noise``)."""
        a_t = self.alpha(t).to(z.device)
        return a_t ** 0.5 * z + (1 - a_t) ** 0.5 * noise
