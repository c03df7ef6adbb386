"""MGDA: multi-granularity degradation-aware gradient step (the paper's gradient-descent box).

Unfolded proximal gradient on ``½‖y − Dx‖²`` with an *unknown* ``D`` (spec §1–§2)::

    v_k = x_{k−1} − ρ_k^h · A_Dᵀ(A_D(x_{k−1}) − y) − ρ_k^d · D_dᵀ(D_d(x_{k−1}) − y)

Two granularities of the degradation estimate, both predicted from ``F_k = VSS(Conv(cat[x_{k−1}, y]))``:

* **holistic**: ``A_D`` and ``A_Dᵀ`` are two separate residual operators ``u + Conv(VSS(Conv(u) + F_k))``
  (the VSS-simulated D and Dᵀ; DGUNet's learned ``phi``/``phit`` precedent). Their last conv
  is zero-initialised, so at initialisation ``A_D = A_Dᵀ = I`` and ``g_h = x − y``.
* **decomposed**: ``D = Mᵀ ⊗ W``, i.e. per channel ``(D x)_c = g_c · W_c X_c M_c`` with
  ``W_c ∈ R^{H×H}`` (rows) and ``M_c ∈ R^{W×W}`` (columns), applied as two batched matmuls
  (never the ``HW×HW`` Kronecker matrix); its exact adjoint is ``Dᵀ r = W_cᵀ (g_c r_c) M_cᵀ``.
  ``W, M`` are identity-blended row-stochastic softmax mixing matrices from row/column-pooled
  features (resolution-independent); ``g`` is a global gain, 1 at init.

Returns ``v_k`` and the residuals ``r_h = A_D(x) − y``, ``r_d = D_d(x) − y`` that the ISDA loss
reuses at no extra cost, plus an :class:`Operators` handle for the ISDA variants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from restorers.unfoldldm.vss import ConvBlock, VSSBlock

Granularity = Literal["both", "holistic", "decomposed"]


def kron_apply(W: torch.Tensor, M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(Mᵀ ⊗ W) vec(X)`` per channel, as ``W @ X @ M``: (B,c,H,H), (B,c,W,W), (B,c,H,W)."""
    return torch.matmul(torch.matmul(W, x), M)


def kron_adjoint(W: torch.Tensor, M: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The exact adjoint ``(Mᵀ ⊗ W)ᵀ vec(R) = vec(Wᵀ R Mᵀ)``."""
    return torch.matmul(torch.matmul(W.transpose(-1, -2), r), M.transpose(-1, -2))


class HolisticOperator(nn.Module):
    """``A(u) = u + Conv3x3(C_g→3)(VSS(Conv3x3(3→C_g)(u) + F_k))``; identity at init."""

    def __init__(self, width: int, d_state: int, block: type[nn.Module], chunk: int | None):
        super().__init__()
        self.embed = nn.Conv2d(3, width, 3, padding=1)
        self.body = block(width, d_state, chunk=chunk)
        self.out = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, u: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return u + self.out(self.body(self.embed(u) + features))


class DecomposedEstimator(nn.Module):
    """Predicts ``W (B,3,H,H)``, ``M (B,3,W,W)`` and the gain ``g (B,3,1,1)`` from ``F_k``."""

    def __init__(self, width: int, token_dim: int, channels: int = 3):
        super().__init__()
        self.channels, self.token_dim = channels, token_dim
        self.row_proj = nn.Linear(width, 2 * channels * token_dim)
        self.col_proj = nn.Linear(width, 2 * channels * token_dim)
        self.lambda_w = nn.Parameter(torch.full((1,), -2.0))  # σ(−2) ≈ 0.12: near-identity at init
        self.lambda_m = nn.Parameter(torch.full((1,), -2.0))  # shape (1,): 0-dim breaks weights_digest
        self.gain = nn.Linear(width, channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.constant_(self.gain.bias, math.log(math.e - 1.0))  # softplus(b0) = 1

    def _mixing(self, tokens: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
        batch, length, _ = tokens.shape
        q, k = proj(tokens).reshape(batch, length, 2, self.channels, self.token_dim).permute(2, 0, 3, 1, 4)
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.token_dim), dim=-1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = features.mean(dim=3).transpose(1, 2)  # (B, H, C_g)
        cols = features.mean(dim=2).transpose(1, 2)  # (B, W, C_g)
        s_w, s_m = self._mixing(rows, self.row_proj), self._mixing(cols, self.col_proj)
        lam_w, lam_m = torch.sigmoid(self.lambda_w), torch.sigmoid(self.lambda_m)
        eye_h = torch.eye(s_w.shape[-1], dtype=s_w.dtype, device=s_w.device)
        eye_w = torch.eye(s_m.shape[-1], dtype=s_m.dtype, device=s_m.device)
        W = (1 - lam_w) * eye_h + lam_w * s_w
        M = (1 - lam_m) * eye_w + lam_m * s_m.transpose(-1, -2)
        gain = F.softplus(self.gain(features.mean(dim=(2, 3))))[..., None, None]
        return W, M, gain


@dataclass
class Operators:
    """The degradation estimated in one stage, applicable to any image of that size."""

    holistic: tuple[HolisticOperator, HolisticOperator, torch.Tensor] | None
    decomposed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None

    def D_h(self, u: torch.Tensor) -> torch.Tensor:
        forward_op, _, features = self.holistic
        return forward_op(u, features)

    def Dt_h(self, r: torch.Tensor) -> torch.Tensor:
        _, adjoint_op, features = self.holistic
        return adjoint_op(r, features)

    def D_d(self, u: torch.Tensor) -> torch.Tensor:
        W, M, gain = self.decomposed
        return gain * kron_apply(W, M, u)

    def Dt_d(self, r: torch.Tensor) -> torch.Tensor:
        W, M, gain = self.decomposed
        return kron_adjoint(W, M, gain * r)


@dataclass
class MGDAOutput:
    v: torch.Tensor
    r_h: torch.Tensor | None
    r_d: torch.Tensor | None
    operators: Operators


class MGDA(nn.Module):
    """The gradient step of every stage (weights shared; step sizes per stage).

    Args:
        width: feature width ``C_g``.
        d_state: SS2D state size ``N``.
        token_dim: ``d`` of the W/M query/key tokens.
        stages: number of unfolding stages ``K`` (one pair of step sizes each).
        granularity: ``both`` (paper), or the ablations ``holistic`` / ``decomposed`` only.
        vss: use VSS blocks (paper) or plain convolutions (ablation).
        share_steps: one pair ``ρ^h, ρ^d`` for all stages instead of one per stage.
        chunk: CPU scan chunk length.
    """

    def __init__(
        self,
        width: int,
        d_state: int,
        token_dim: int,
        stages: int,
        granularity: Granularity = "both",
        vss: bool = True,
        share_steps: bool = False,
        chunk: int | None = None,
    ):
        super().__init__()
        block = VSSBlock if vss else ConvBlock
        self.granularity = granularity
        self.feat_embed = nn.Conv2d(6, width, 3, padding=1)
        self.feat_body = block(width, d_state, chunk=chunk)
        self.use_h = granularity in ("both", "holistic")
        self.use_d = granularity in ("both", "decomposed")
        n_steps = 1 if share_steps else stages
        # ρ^h + ρ^d = 0.5 at init (DGUNet's r = 0.5), whichever branches exist.
        rho = 0.5 / (int(self.use_h) + int(self.use_d))
        if self.use_h:
            self.op_D = HolisticOperator(width, d_state, block, chunk)
            self.op_Dt = HolisticOperator(width, d_state, block, chunk)
            self.rho_h = nn.Parameter(torch.full((n_steps,), rho))
        if self.use_d:
            self.decomposed = DecomposedEstimator(width, token_dim)
            self.rho_d = nn.Parameter(torch.full((n_steps,), rho))

    def zero_decomposed_step_(self) -> None:
        """Start with the decomposed step switched off (``ρ^d = 0``, a ReZero gate), so that
        ``v = y`` whenever ``x = y``.

        The holistic branch needs nothing: ``A_D = A_Dᵀ = I`` at init gives ``g_h = x − y = 0``.
        ``D_d`` cannot start as ``I`` (its identity blend ``σ(λ)`` is 0 only at ``λ = −∞``), so
        ``g_d ≠ 0`` and only its step can be zero. ``ρ^d`` gets a gradient through ``v`` on the
        first update, and the estimator of ``W, M`` through the ISDA loss, which uses ``r_d``.
        """
        if self.use_d:
            nn.init.zeros_(self.rho_d)

    def estimate(self, x: torch.Tensor, y: torch.Tensor) -> Operators:
        """Degradation features ``F_k`` from ``cat[x_{k−1}, y]`` and both operator estimates."""
        features = self.feat_body(self.feat_embed(torch.cat([x, y], dim=1)))
        holistic = (self.op_D, self.op_Dt, features) if self.use_h else None
        decomposed = self.decomposed(features) if self.use_d else None
        return Operators(holistic, decomposed)

    def forward(self, x: torch.Tensor, y: torch.Tensor, stage: int) -> MGDAOutput:
        """One gradient step from ``x = x_{k−1}`` (stage index ``stage`` = k−1, 0-based)."""
        ops = self.estimate(x, y)
        v, r_h, r_d = x, None, None
        if self.use_h:
            r_h = ops.D_h(x) - y
            v = v - self.rho_h[min(stage, self.rho_h.numel() - 1)] * ops.Dt_h(r_h)
        if self.use_d:
            r_d = ops.D_d(x) - y
            v = v - self.rho_d[min(stage, self.rho_d.numel() - 1)] * ops.Dt_d(r_d)
        return MGDAOutput(v, r_h, r_d, ops)
