"""OCFormer: over-smoothing correction transformer (the paper's proximal network).

A Restormer-style U-Net (spec §4.1) of OCBlocks, each ``X += DRA(LN(X), z)``; ``X += PDR(LN(X), z)``:

* **DRA** (degradation-resistant attention): prior FiLM ``X(1+γ)+β`` from the token mean ``z̄``,
  Restormer's transposed (channel) attention, plus cross-attention from every pixel to the
  ``N_p`` prior tokens (LADE-DUN style); ``V_p`` and the FiLM are zero-initialised, so the prior
  branch contributes exactly 0 at initialisation.
* **PDR** (prior-guided detail recovery): FiLM, Restormer's gated FFN, plus an explicit
  high-pass branch ``U − AvgPool3(U)`` gated by ``σ(Linear(z̄))``.

``prior_dim = 0`` builds OCFormer without any prior layer (ablation "no DR-LDM").
The network returns the residual ``Δ``; the stage output is ``x_k = v_k + Δ``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """Restormer's WithBias LayerNorm over channels of (B, C, H, W)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias).permute(0, 3, 1, 2)


def _film(linear: nn.Linear | None, x: torch.Tensor, z_mean: torch.Tensor | None) -> torch.Tensor:
    if linear is None or z_mean is None:
        return x
    gamma, beta = linear(z_mean)[..., None, None].chunk(2, dim=1)
    return x * (1 + gamma) + beta


class DRA(nn.Module):
    """Degradation-resistant attention (MDTA + prior cross-attention, FiLM-modulated)."""

    def __init__(self, dim: int, heads: int, prior_dim: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)
        self.film = self.prior_kv = None
        if prior_dim:
            self.film = nn.Linear(prior_dim, 2 * dim, bias=False)
            nn.init.zeros_(self.film.weight)
            self.prior_kv = nn.Linear(prior_dim, 2 * dim, bias=False)
            nn.init.zeros_(self.prior_kv.weight[dim:])  # V_p half: prior branch = 0 at init
            self.prior_temperature = nn.Parameter(torch.ones(heads, 1, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        batch, dim, height, width = x.shape
        z_mean = None if z is None else z.mean(dim=1)
        u = _film(self.film, x, z_mean)
        q, k, v = self.qkv_dwconv(self.qkv(u)).reshape(batch, 3, self.heads, dim // self.heads, -1).unbind(1)
        qn, kn = F.normalize(q, dim=-1), F.normalize(k, dim=-1)  # over HW
        out = torch.softmax(qn @ kn.transpose(-1, -2) * self.temperature, dim=-1) @ v  # (B,h,c_h,HW)
        if self.prior_kv is not None and z is not None:
            k_p, v_p = (
                self.prior_kv(z).reshape(batch, -1, 2, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
            )
            q_t = F.normalize(q.transpose(-1, -2), dim=-1)  # (B,h,HW,c_h), over c_h
            attn = torch.softmax(
                q_t @ F.normalize(k_p, dim=-1).transpose(-1, -2) * self.prior_temperature, -1
            )
            out = out + (attn @ v_p).transpose(-1, -2)  # (B,h,c_h,HW)
        return self.project_out(out.reshape(batch, dim, height, width))


class PDR(nn.Module):
    """Prior-guided detail recovery: gated FFN + prior-gated high-frequency branch."""

    def __init__(self, dim: int, ffn_factor: float, prior_dim: int):
        super().__init__()
        hidden = int(dim * ffn_factor)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=False)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=False)
        self.detail_in = nn.Conv2d(dim, hidden, 1, bias=False)
        self.detail_dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)
        self.film = self.gate = None
        if prior_dim:
            self.film = nn.Linear(prior_dim, 2 * dim, bias=False)
            nn.init.zeros_(self.film.weight)
            self.gate = nn.Linear(prior_dim, hidden, bias=False)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        z_mean = None if z is None else z.mean(dim=1)
        u = _film(self.film, x, z_mean)
        p1, p2 = self.dwconv(self.project_in(u)).chunk(2, dim=1)
        hidden = F.gelu(p1) * p2
        high = u - F.avg_pool2d(u, 3, stride=1, padding=1, count_include_pad=False)
        detail = self.detail_dwconv(self.detail_in(high))
        # Without a prior the detail branch is gated by σ(0) = ½, the value the prior gate has at z = 0.
        gate = (
            0.5 if self.gate is None or z_mean is None else torch.sigmoid(self.gate(z_mean))[..., None, None]
        )
        return self.project_out(hidden + gate * detail)


class OCBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_factor: float, prior_dim: int):
        super().__init__()
        self.norm1, self.norm2 = LayerNorm2d(dim), LayerNorm2d(dim)
        self.dra = DRA(dim, heads, prior_dim)
        self.pdr = PDR(dim, ffn_factor, prior_dim)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        x = x + self.dra(self.norm1(x), z)
        return x + self.pdr(self.norm2(x), z)


class Level(nn.Module):
    def __init__(self, n: int, dim: int, heads: int, ffn_factor: float, prior_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList(OCBlock(dim, heads, ffn_factor, prior_dim) for _ in range(n))

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, z)
        return x


class OCFormer(nn.Module):
    """Restormer U-Net of OCBlocks; every block sees the same prior ``z`` (B, N_p, C_p).

    Args:
        dim: width of level 1.
        blocks: blocks per level, the last entry being the latent level (e.g. ``[2, 4, 4]``).
        refinement: refinement blocks at full resolution.
        heads: attention heads per level.
        ffn_factor: hidden-width factor of PDR.
        prior_dim: ``C_p``; 0 builds no prior layers.
    """

    def __init__(
        self,
        dim: int,
        blocks: list[int],
        refinement: int,
        heads: list[int],
        ffn_factor: float,
        prior_dim: int,
    ):
        super().__init__()
        levels = len(blocks)
        dims = [dim * 2**i for i in range(levels)]
        self.embed = nn.Conv2d(3, dim, 3, padding=1, bias=False)
        self.encoders = nn.ModuleList(
            Level(blocks[i], dims[i], heads[i], ffn_factor, prior_dim) for i in range(levels - 1)
        )
        self.downs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dims[i], dims[i] // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))
            for i in range(levels - 1)
        )
        self.latent = Level(blocks[-1], dims[-1], heads[-1], ffn_factor, prior_dim)
        self.ups = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(dims[i + 1], 2 * dims[i + 1], 3, padding=1, bias=False), nn.PixelShuffle(2)
            )
            for i in range(levels - 1)
        )
        # Level 1 keeps the concatenated 2·dim channels (Restormer); deeper levels reduce back.
        self.reduces = nn.ModuleList(
            nn.Conv2d(2 * dims[i], dims[i], 1, bias=False) if i else nn.Identity() for i in range(levels - 1)
        )
        self.decoders = nn.ModuleList(
            Level(blocks[i], dims[i] * (2 if i == 0 else 1), heads[i], ffn_factor, prior_dim)
            for i in range(levels - 1)
        )
        self.refinement = Level(refinement, 2 * dim, heads[0], ffn_factor, prior_dim)
        self.output = nn.Conv2d(2 * dim, 3, 3, padding=1, bias=False)

    def zero_output_(self) -> None:
        """Zero the last convolution, so that ``Δ = 0`` for every input (ControlNet's zero
        convolution) and the stage output starts as its gradient step ``v_k``. Only this layer
        gets a gradient on the first update; once it has moved off zero, the gradient reaches
        every layer before it."""
        nn.init.zeros_(self.output.weight)

    @property
    def pad_multiple(self) -> int:
        return 2 ** (len(self.encoders))

    def forward(self, v: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        x = self.embed(v)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x, z)
            skips.append(x)
            x = down(x)
        x = self.latent(x, z)
        for i in range(len(self.decoders) - 1, -1, -1):
            x = self.reduces[i](torch.cat([self.ups[i](x), skips[i]], dim=1))
            x = self.decoders[i](x, z)
        return self.output(self.refinement(x, z))
