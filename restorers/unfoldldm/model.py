"""UnfoldLDM: K unfolding stages with shared weights (spec §1; the paper's overall figure).

    x_0 = y
    for k = 1..K:   v_k = MGDA(x_{k−1}, y)                    gradient step
                    z_k = DR-LDM(v_k)                          prior (clean / generated)
                    x_k = v_k + OCFormer(v_k, z_k)             proximal step
    output x_K (or any x_k: ``stop_at``)

The three parts are pluggable (the paper's plug-and-play claim): any gradient module returning
an :class:`~restorers.unfoldldm.mgda.MGDAOutput`, an optional :class:`~restorers.unfoldldm.drldm.DRLDM`
and any proximal module ``f(v, z) → Δ`` (see ``dgunet.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from restorers.unfoldldm.drldm import DRLDM
from restorers.unfoldldm.mgda import MGDAOutput

#: ``phase1``: z = E_clean(gt, v); ``phase2``: generated ẑ_0 from q(z_{T−1}|z_0), trained through;
#: ``warmup``: Phase-II diffusion warm-up (only E_cond + denoiser get gradients);
#: ``eval``: generated from z_T = noise.
Mode = Literal["phase1", "phase2", "warmup", "eval"]
NoiseFn = Callable[[tuple[int, ...], torch.Tensor], torch.Tensor]


def gaussian_noise(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, dtype=like.dtype, device=like.device)


@dataclass
class UnfoldingTrace:
    """Everything a forward produces that a loss or a test may need."""

    inputs: list[torch.Tensor] = field(default_factory=list)  # x_{k−1}
    outputs: list[torch.Tensor] = field(default_factory=list)  # x_k
    gradient: list[MGDAOutput] = field(default_factory=list)
    z_hat: list[torch.Tensor] = field(default_factory=list)  # generated ẑ_0 (Phase II / eval)
    z0: list[torch.Tensor] = field(default_factory=list)  # E_clean targets


class UnfoldingNetwork(nn.Module):
    """Gradient → (prior) → proximal, repeated ``stages`` times with the same modules.

    Args:
        gradient: e.g. :class:`~restorers.unfoldldm.mgda.MGDA`.
        prior: :class:`~restorers.unfoldldm.drldm.DRLDM` or ``None`` (no prior).
        proximal: e.g. :class:`~restorers.unfoldldm.ocformer.OCFormer`.
        stages: ``K``.
    """

    def __init__(self, gradient: nn.Module, prior: DRLDM | None, proximal: nn.Module, stages: int):
        super().__init__()
        self.gradient, self.prior, self.proximal, self.stages = gradient, prior, proximal, stages

    def _prior(
        self, v: torch.Tensor, gt: torch.Tensor | None, mode: Mode, noise: NoiseFn, trace: UnfoldingTrace
    ) -> torch.Tensor | None:
        prior = self.prior
        if prior is None:
            return None
        shape = (v.shape[0], prior.n_tokens, prior.prior_dim)
        if mode == "eval":
            z = prior.generate(v, noise(shape, v))
            trace.z_hat.append(z)
            return z
        if gt is None:
            raise ValueError(f"mode {mode!r} needs the ground truth (E_clean sees x_gt)")
        if mode == "phase1":
            z = prior.clean_prior(gt, v)
            trace.z0.append(z)
            return z
        with torch.no_grad():  # E_clean is the frozen Phase-I teacher
            z0 = prior.clean_prior(gt, v)
        trace.z0.append(z0)
        if mode == "warmup":
            with torch.enable_grad():
                z_hat = prior.train_chain(v.detach(), z0, noise(shape, v))
            trace.z_hat.append(z_hat)
            return z_hat.detach()
        z_hat = prior.train_chain(v, z0, noise(shape, v))
        trace.z_hat.append(z_hat)
        return z_hat

    def forward(
        self,
        y: torch.Tensor,
        gt: torch.Tensor | None = None,
        mode: Mode = "eval",
        noise: NoiseFn = gaussian_noise,
        stop_at: int | None = None,
    ) -> UnfoldingTrace:
        trace = UnfoldingTrace()
        x = y
        last = self.stages if stop_at is None else min(stop_at, self.stages)
        for k in range(last):
            trace.inputs.append(x)
            with torch.set_grad_enabled(torch.is_grad_enabled() and mode != "warmup"):
                step = self.gradient(x, y, k)
            trace.gradient.append(step)
            z = self._prior(step.v, gt, mode, noise, trace)
            with torch.set_grad_enabled(torch.is_grad_enabled() and mode != "warmup"):
                x = step.v + self.proximal(step.v, z)
            trace.outputs.append(x)
        return trace
