"""A tiny trainable restorer of the test suite's own (imported by tests and by the subprocesses
they start), so ``bench train`` is tested without any method's weights or data."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.api.registries import RESTORERS
from harness.api.restorer import Restorer, register_restorer


class TinyResidualNet(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TinyTrainable(Restorer):
    description = "test-only: a two-layer residual CNN trained by bench train"
    degradations = ("noise",)
    trainable = True

    def __init__(self, width: int = 8, checkpoint: str | None = None, step_delay: float = 0.0,
                 dropout_noise: float = 0.01, restore_noise: float = 0.0):
        """
        Args:
            width: hidden channels.
            checkpoint: a bench train checkpoint to load.
            step_delay: seconds slept per training step (lets a test kill a run mid-way).
            dropout_noise: std of input noise drawn from the global RNG in each training step
                (so a resumed run must restore the RNG state to match an uninterrupted one).
            restore_noise: std of output noise drawn from the image's ``meta["generator"]``
                (a stochastic restorer: its numbers depend on the per-image seed).
        """
        super().__init__()
        self.width, self.checkpoint = width, checkpoint
        self.step_delay, self.dropout_noise = step_delay, dropout_noise
        self.restore_noise = restore_noise
        self.net = TinyResidualNet(width)

    def load(self, device: torch.device) -> None:
        if self.checkpoint:
            self.load_checkpoint(self.checkpoint)
        super().load(device)

    def setup_training(self, device: torch.device) -> None:
        self.net = TinyResidualNet(self.width).to(device).train()
        self.device = device

    def training_step(self, lq: torch.Tensor, gt: torch.Tensor, step: int,
                      total_steps: int) -> dict[str, torch.Tensor]:
        if self.step_delay:
            time.sleep(self.step_delay)
        jitter = self.dropout_noise * torch.randn_like(lq)
        l1 = F.l1_loss(self.net(lq + jitter), gt)
        return {"loss": l1, "l1": l1.detach()}

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        out = self.net(lq)
        if self.restore_noise:
            noise = torch.randn(out.shape, generator=meta["generator"]).to(out.device)
            out = (out + self.restore_noise * noise).clamp(0, 1)
        return out


if "test-tiny-trainable" not in RESTORERS:
    register_restorer("test-tiny-trainable")(TinyTrainable)
