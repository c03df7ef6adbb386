"""DR-LDM: degradation-resistant latent diffusion prior (the paper's proximal-prior box).

Per stage, from the MGDA output ``v_k`` (spec §3), a prior of ``N_p`` tokens × ``C_p`` channels:

* **Phase I** (clean prior): ``z_k = E_clean(cat[PU4(x_gt), PU4(v_k)])`` — needs ground truth.
* **Phase II** (generated prior): ``c_k = E_cond(PU4(v_k))``; a T = 3-step x0-parameterised
  diffusion denoises ``z_T`` into ``ẑ_0`` conditioned on ``c_k``. Training starts the chain from
  ``q(z_{T−1} | z_0 = E_clean(x_gt, v_k))`` and backpropagates through all T steps (DiffIR);
  inference starts from ``z_T ~ N(0, I)`` drawn from the caller's generator (or 0).

Schedule (DiffIR/Reti-Diff, recomputed for T = 3): ``β_t = linspace(√0.1, √0.99, T)²``; the
reverse step is the deterministic posterior mean ``μ̃ = coef1_t ẑ_0 + coef2_t z_t``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DiffusionSchedule(nn.Module):
    """β, ᾱ and the posterior-mean coefficients (buffers, so they follow ``.to(device)``).

    Notation (0-indexed t): ``ᾱ_t = Π_{s≤t}(1 − β_s)``, ``ᾱ_{−1} = 1``;
    ``coef1_t = β_t √ᾱ_{t−1} / (1 − ᾱ_t)``, ``coef2_t = (1 − ᾱ_{t−1}) √(1 − β_t) / (1 − ᾱ_t)``.
    """

    def __init__(self, steps: int = 3, linear_start: float = 0.1, linear_end: float = 0.99):
        super().__init__()
        betas = (
            torch.linspace(math.sqrt(linear_start), math.sqrt(linear_end), steps, dtype=torch.float64) ** 2
        )
        alphas_cumprod = torch.cumprod(1 - betas, 0)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        self.steps = steps
        for name, value in {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt(),
            "coef1": betas * prev.sqrt() / (1 - alphas_cumprod),
            "coef2": (1 - prev) * (1 - betas).sqrt() / (1 - alphas_cumprod),
        }.items():
            self.register_buffer(name, value.float(), persistent=False)


class ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PriorEncoder(nn.Module):
    """``E(u)``: convs + ResBlocks → C_p maps → pooled √N_p×√N_p grid → MLP-mixer → tokens.

    One architecture for ``E_clean`` (``c_in = 96``) and ``E_cond`` (``c_in = 48``).
    """

    def __init__(self, c_in: int, width: int, n_res: int, n_tokens: int, prior_dim: int):
        super().__init__()
        side = math.isqrt(n_tokens)
        if side * side != n_tokens:
            raise ValueError(f"N_p must be a square (1, 4, 16, ...), got {n_tokens}")
        self.grid = side
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 3, padding=1),
            nn.LeakyReLU(0.1),
            *[ResBlock(width) for _ in range(n_res)],
            nn.Conv2d(width, prior_dim, 3, padding=1),
            nn.LeakyReLU(0.1),
        )
        self.norm_tokens = nn.LayerNorm(prior_dim)
        self.token_mlp = nn.Sequential(
            nn.Linear(n_tokens, 2 * n_tokens), nn.GELU(), nn.Linear(2 * n_tokens, n_tokens)
        )
        self.norm_channels = nn.LayerNorm(prior_dim)
        self.channel_mlp = nn.Sequential(
            nn.Linear(prior_dim, 2 * prior_dim), nn.GELU(), nn.Linear(2 * prior_dim, prior_dim)
        )
        self.out = nn.Sequential(nn.Linear(prior_dim, prior_dim), nn.LeakyReLU(0.1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        maps = F.adaptive_avg_pool2d(self.body(u), self.grid)  # (B, C_p, √N_p, √N_p)
        tokens = maps.flatten(2).transpose(1, 2)  # (B, N_p, C_p)
        tokens = tokens + self.token_mlp(self.norm_tokens(tokens).transpose(1, 2)).transpose(1, 2)
        tokens = tokens + self.channel_mlp(self.norm_channels(tokens))
        return self.out(tokens)


class Denoiser(nn.Module):
    """Token-wise ResMLP ``ẑ_0 = f(cat[c, t/(10T), z_t])`` (DiffIR's ``denoise``, shared over tokens)."""

    def __init__(self, prior_dim: int, hidden: int, n_layers: int, steps: int):
        super().__init__()
        self.steps = steps
        layers: list[nn.Module] = [nn.Linear(2 * prior_dim + 1, hidden), nn.LeakyReLU(0.1)]
        for _ in range(n_layers):
            layers += [nn.Linear(hidden, hidden), nn.LeakyReLU(0.1)]
        layers.append(nn.Linear(hidden, prior_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, cond: torch.Tensor, t: int, z_t: torch.Tensor) -> torch.Tensor:
        time = torch.full_like(z_t[..., :1], t / (10 * self.steps))
        return self.mlp(torch.cat([cond, time, z_t], dim=-1))


class DRLDM(nn.Module):
    """The prior of every stage: ``E_clean`` (Phase I teacher), ``E_cond`` + denoiser (Phase II).

    Args:
        prior_dim: ``C_p`` (64 in the paper).
        n_tokens: ``N_p`` (16 full, 4 small; 1 = DiffIR's single prior vector).
        width: encoder width ``C_e``.
        n_res: ResBlocks per encoder.
        hidden: denoiser width.
        n_layers: hidden layers of the denoiser.
        steps: diffusion steps ``T`` (3 in the paper).
    """

    def __init__(
        self,
        prior_dim: int,
        n_tokens: int,
        width: int,
        n_res: int,
        hidden: int,
        n_layers: int,
        steps: int = 3,
    ):
        super().__init__()
        self.prior_dim, self.n_tokens = prior_dim, n_tokens
        self.e_clean = PriorEncoder(96, width, n_res, n_tokens, prior_dim)
        self.e_cond = PriorEncoder(48, width, n_res, n_tokens, prior_dim)
        self.denoiser = Denoiser(prior_dim, hidden, n_layers, steps)
        self.schedule = DiffusionSchedule(steps)

    def clean_prior(self, gt: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Phase I: ``z_0 = E_clean(cat[PU4(x_gt), PU4(v_k)])``."""
        return self.e_clean(torch.cat([F.pixel_unshuffle(gt, 4), F.pixel_unshuffle(v, 4)], dim=1))

    def reverse(self, cond: torch.Tensor, z: torch.Tensor, start: int) -> torch.Tensor:
        """Deterministic posterior-mean steps ``t = start, …, 0``; returns ``ẑ_0``."""
        s = self.schedule
        for t in range(start, -1, -1):
            z0_hat = self.denoiser(cond, t, z)
            z = s.coef1[t] * z0_hat + s.coef2[t] * z  # t = 0: coef1 = 1, coef2 = 0 → ẑ_0
        return z

    def generate(self, v: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Inference: ``z_T = noise`` (N(0,I) from the caller's generator, or zeros), T steps."""
        cond = self.e_cond(F.pixel_unshuffle(v, 4))
        return self.reverse(cond, noise, self.schedule.steps - 1)

    def train_chain(self, v: torch.Tensor, z0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Phase II training: ``z_{T−1} = √ᾱ z_0 + √(1−ᾱ) ε`` then the whole chain, with gradients."""
        s, t = self.schedule, self.schedule.steps - 1
        z_t = s.sqrt_alphas_cumprod[t] * z0 + s.sqrt_one_minus_alphas_cumprod[t] * noise
        return self.reverse(self.e_cond(F.pixel_unshuffle(v, 4)), z_t, t)
