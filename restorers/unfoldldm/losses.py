"""The training losses (spec §5): L1 reconstruction, ISDA (stages 2..K), diffusion L1.

``L = L_rec + λ_c·L_ISDA + λ_d·L_diff``; in Phase I there is no ``L_diff``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from restorers.unfoldldm.mgda import MGDAOutput

IsdaTarget = Literal["previous", "current"]


def isda_loss(
    stages: list[MGDAOutput],
    inputs: list[torch.Tensor],
    outputs: list[torch.Tensor],
    y: torch.Tensor,
    gt: torch.Tensor | None = None,
    target: IsdaTarget = "previous",
    cross: bool = False,
    gt_anchor: bool = False,
) -> torch.Tensor:
    """Intra-stage degradation-aware consistency over stages ``k = 2..K`` (0 for ``K = 1``).

    Default: ``mean_k(‖A_D^{(k)}(x_{k−1}) − y‖₁ + ‖D_d^{(k)}(x_{k−1}) − y‖₁)`` = the residuals MGDA
    already computed. Stage 1 is left out because ``x_0 = y``: ``D(y) ≈ y`` would pull D to I.

    Args:
        stages: MGDA outputs of stages 1..K.
        inputs: ``x_{k−1}`` of each stage; outputs: ``x_k``.
        y: the observation.
        gt: ground truth (only for ``gt_anchor``).
        target: ``previous`` = apply the stage's D to ``x_{k−1}`` (default), ``current`` = to ``x_k``
            (variant (a), costs extra D evaluations).
        cross: add ``‖A_D(x_{k−1}) − D_d(x_{k−1})‖₁`` (variant (b)).
        gt_anchor: add ``‖D(x_gt) − y‖₁`` (variant (c)).
    """
    terms = []
    for k in range(1, len(stages)):
        out, ops = stages[k], stages[k].operators
        term = y.new_zeros(())
        if target == "previous":
            for r in (out.r_h, out.r_d):
                if r is not None:
                    term = term + r.abs().mean()
        else:
            x_k = outputs[k]
            if ops.holistic is not None:
                term = term + F.l1_loss(ops.D_h(x_k), y)
            if ops.decomposed is not None:
                term = term + F.l1_loss(ops.D_d(x_k), y)
        if cross and out.r_h is not None and out.r_d is not None:
            term = term + F.l1_loss(out.r_h, out.r_d)  # = ‖A_D(x) − D_d(x)‖₁
        if gt_anchor and gt is not None:
            if ops.holistic is not None:
                term = term + F.l1_loss(ops.D_h(gt), y)
            if ops.decomposed is not None:
                term = term + F.l1_loss(ops.D_d(gt), y)
        terms.append(term)
    return torch.stack(terms).mean() if terms else y.new_zeros(())


def diffusion_loss(z_hat: list[torch.Tensor], z0: list[torch.Tensor]) -> torch.Tensor:
    """``L_diff = mean_k ‖ẑ_0^{(k)} − z_0^{(k)}‖₁`` with ``z_0 = E_clean(x_gt, v_k)`` detached."""
    return torch.stack([F.l1_loss(a, b.detach()) for a, b in zip(z_hat, z0, strict=True)]).mean()
