"""The four configurations of spec §6 (full = recommended, large = 4-level OCFormer,
small = every component at CPU size, tiny = unit tests)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

ConfigName = Literal["tiny", "small", "full", "large"]


@dataclass(frozen=True)
class UnfoldLDMConfig:
    # MGDA (C_g, N, d)
    mgda_width: int
    d_state: int
    token_dim: int
    # OCFormer
    dim: int
    blocks: tuple[int, ...]
    refinement: int
    heads: tuple[int, ...]
    ffn_factor: float
    # DR-LDM prior (N_p, C_p), encoders (C_e, n_res), denoiser (hid, n)
    n_tokens: int
    prior_dim: int
    encoder_width: int
    encoder_res: int
    denoiser_hidden: int
    denoiser_layers: int
    diffusion_steps: int = 3

    def as_dict(self) -> dict:
        return asdict(self)


CONFIGS: dict[str, UnfoldLDMConfig] = {
    "full": UnfoldLDMConfig(32, 16, 16, 48, (2, 4, 4), 2, (1, 2, 4), 2.66, 16, 64, 64, 4, 256, 2),
    "large": UnfoldLDMConfig(32, 16, 16, 48, (2, 3, 3, 4), 2, (1, 2, 4, 8), 2.66, 16, 64, 64, 4, 256, 2),
    "small": UnfoldLDMConfig(12, 4, 8, 16, (1, 1, 1), 1, (1, 2, 4), 2.0, 4, 32, 16, 1, 64, 1),
    "tiny": UnfoldLDMConfig(4, 4, 4, 8, (1, 1), 1, (1, 2), 2.0, 4, 16, 8, 1, 32, 1),
}
