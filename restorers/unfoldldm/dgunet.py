"""``dgunet-pnp``: a small DGUNet-style unfolding restorer, the host of the plug-and-play study.

The paper claims MGDA, DR-LDM and OCFormer drop into existing deep unfolding networks. This is
the natural host (spec §7.1), written small and from the DGUNet paper (Mou et al., CVPR 2022):
per stage a learned gradient step ``x̂ = x − r·Φᵀ(Φx − y)`` with ``Φ``, ``Φᵀ`` two separate small
ResBlocks and ``r`` initialised to 0.5, followed by a plain residual CNN as the proximal net.
Options swap in each UnfoldLDM part (``gradient=mgda``, ``prior=true``, ``proximal=ocformer``);
training goes through the same hooks as ``unfoldldm`` (shared :class:`UnfoldingRestorer`), so a
study sweeps the eight combinations with one command.

It lives in ``restorers/unfoldldm/`` (not ``baselines/``) because it *imports* UnfoldLDM's parts
and training code, and restorers must not import other restorer packages. It is not DGUNet
itself (no ISFF inter-stage feature fusion, no U-Net proximal, a few K parameters).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import nn

from harness.api.options import Range
from harness.api.restorer import register_restorer
from restorers.unfoldldm.configs import CONFIGS
from restorers.unfoldldm.drldm import DRLDM
from restorers.unfoldldm.mgda import MGDA, MGDAOutput, Operators
from restorers.unfoldldm.model import UnfoldingNetwork
from restorers.unfoldldm.ocformer import OCFormer
from restorers.unfoldldm.restorer import UnfoldingRestorer

#: width of Φ/Φᵀ and of the proximal CNN, per size.
WIDTHS = {"tiny": 8, "small": 32}


class LearnedOperator(nn.Module):
    """DGUNet's ``phi``/``phit``: ``u + Conv(ReLU(Conv(u)))``; last conv zero-init (identity at init)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1)
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, u: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return u + self.body(u)


class DGUGradient(nn.Module):
    """``x̂ = x − r_k·Φᵀ(Φx − y)``; returns :class:`MGDAOutput` (``r_h = Φx − y``) like MGDA, so
    ISDA applies to it as to MGDA's holistic branch."""

    def __init__(self, width: int, stages: int):
        super().__init__()
        self.phi, self.phit = LearnedOperator(width), LearnedOperator(width)
        self.r = nn.Parameter(torch.full((stages,), 0.5))

    def forward(self, x: torch.Tensor, y: torch.Tensor, stage: int) -> MGDAOutput:
        residual = self.phi(x) - y
        v = x - self.r[stage] * self.phit(residual)
        return MGDAOutput(v, residual, None, Operators((self.phi, self.phit, None), None))


class ProxCNN(nn.Module):
    """Plain proximal net: Conv → n × ResBlock → Conv, residual; with a prior, a zero-init FiLM
    from the token mean after the first conv (identity at init)."""

    def __init__(self, width: int, n_blocks: int = 3, prior_dim: int = 0):
        super().__init__()
        self.embed = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1)
            )
            for _ in range(n_blocks)
        )
        self.out = nn.Conv2d(width, 3, 3, padding=1)
        self.film = nn.Linear(prior_dim, 2 * width, bias=False) if prior_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)

    def forward(self, v: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        x = self.embed(v)
        if self.film is not None and z is not None:
            gamma, beta = self.film(z.mean(dim=1))[..., None, None].chunk(2, dim=1)
            x = x * (1 + gamma) + beta
        for block in self.blocks:
            x = x + block(x)
        return self.out(x)


@register_restorer("dgunet-pnp", "dgunet_pnp")
class DGUNetPnP(UnfoldingRestorer):
    description = "Small DGUNet-style unfolding net; plug-and-play host for MGDA / DR-LDM / OCFormer; trained"
    degradations = ("noise", "blur", "rain", "lowlight")
    paper = (
        "Mou, Wang, Zhang. Deep Generalized Unfolding Networks for Image Restoration. CVPR 2022 "
        "(host); UnfoldLDM arXiv 2511.18152 (the parts swapped in)"
    )
    licence = "our implementation; weights: whatever you train"
    #: what a checkpoint fixes (networks and their shapes); ``checkpoint=PATH`` restores these
    checkpoint_options = ("config", "gradient", "prior", "proximal", "stages")

    def __init__(
        self,
        config: Literal["tiny", "small"] = "small",
        gradient: Literal["dgunet", "mgda"] = "dgunet",
        prior: bool = False,
        proximal: Literal["cnn", "ocformer"] = "cnn",
        checkpoint: str | None = None,
        phase: Literal[1, 2] = 2,
        init: str | None = None,
        stages: Annotated[int, Range(1, 5)] = 3,
        output_stage: Annotated[int, Range(1, 5)] | None = None,
        tile: int | None = None,
        tile_overlap: Annotated[int, Range(0, 256)] = 32,
        prior_noise: Literal["gaussian", "zero"] = "gaussian",
        random_init: bool = False,
        isda_weight: Annotated[float, Range(0, None)] = 0.0,
        diffusion_weight: Annotated[float, Range(0, None)] = 1.0,
        warmup_fraction: Annotated[float, Range(0, 1)] = 0.25,
    ):
        """
        Args:
            config: size; MGDA / DR-LDM / OCFormer parts come from ``unfoldldm``'s config of that name.
            gradient: ``dgunet`` (learned Φ/Φᵀ step) or ``mgda`` (UnfoldLDM's MGDA swapped in).
            prior: add DR-LDM (two-phase training as in ``unfoldldm``).
            proximal: ``cnn`` (plain residual CNN) or ``ocformer`` (UnfoldLDM's OCFormer).
            checkpoint: a ``bench train`` checkpoint to evaluate.
            phase: training phase (only matters with ``prior``).
            init: Phase-I checkpoint for Phase II.
            stages: unfolding stages (weights shared).
            output_stage: score this stage's output instead of the last.
            tile: tiled inference tile size; none = whole image.
            tile_overlap: tile overlap in pixels.
            prior_noise: z_T at inference (``gaussian`` seeded per image, or ``zero``).
            random_init: allow evaluation without a checkpoint.
            isda_weight: λ_c of ISDA on the gradient residuals (0: DGUNet has no such loss).
            diffusion_weight: λ_d of the diffusion loss.
            warmup_fraction: diffusion-only share of Phase II.
        """
        super().__init__()
        self.size, self.gradient_kind, self.use_prior, self.proximal_kind = config, gradient, prior, proximal
        self.part_names = (
            "mgda" if gradient == "mgda" else "gradient",
            "drldm",
            "ocformer" if proximal == "ocformer" else "proximal",
        )
        self._setup(
            checkpoint=checkpoint,
            phase=phase,
            init=init,
            stages=stages,
            output_stage=output_stage,
            tile=tile,
            tile_overlap=tile_overlap,
            prior_noise=prior_noise,
            random_init=random_init,
            isda_weight=isda_weight,
            diffusion_weight=diffusion_weight,
            warmup_fraction=warmup_fraction,
            isda_target="previous",
            isda_cross=False,
            isda_gt=False,
            deep_supervision=0.0,
        )

    def build_network(self) -> UnfoldingNetwork:
        cfg, width = CONFIGS[self.size], WIDTHS[self.size]
        if self.gradient_kind == "mgda":
            gradient: nn.Module = MGDA(cfg.mgda_width, cfg.d_state, cfg.token_dim, self.stages)
        else:
            gradient = DGUGradient(width, self.stages)
        prior = (
            DRLDM(
                cfg.prior_dim,
                cfg.n_tokens,
                cfg.encoder_width,
                cfg.encoder_res,
                cfg.denoiser_hidden,
                cfg.denoiser_layers,
                cfg.diffusion_steps,
            )
            if self.use_prior
            else None
        )
        prior_dim = cfg.prior_dim if self.use_prior else 0
        if self.proximal_kind == "ocformer":
            proximal: nn.Module = OCFormer(
                cfg.dim, list(cfg.blocks), cfg.refinement, list(cfg.heads), cfg.ffn_factor, prior_dim
            )
        else:
            proximal = ProxCNN(width, prior_dim=prior_dim)
        return UnfoldingNetwork(gradient, prior, proximal, self.stages)
