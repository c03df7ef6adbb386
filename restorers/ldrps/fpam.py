"""F-PAM (the learned HQ → LQ degradation) and the two patch GANs (``ldrps.md`` §2.4–2.6).

F-PAM maps a decoded clean estimate x ∈ [0,1] (pixel space) to what the degraded observation
would look like; the guidance then compares F(x) with the input y. It is trained online, one Adam
step per diffusion step, and is fully convolutional with stride 1 (any size).

* :class:`ResidualFPAM` — the reference's ``--use_bn`` path (``linear_degradation_net``; no
  BatchNorm despite the flag): ``out = net2(o1) + κ ⊙ o1``, ``o1 = net1(x)``, κ ∈ ℝ^{1×3×1×1}.
* :class:`PlainFPAM` — the no-flag path (``GenerativeDegradation``): one 4-conv stack.
* :class:`PatchDiscriminator` — D_f (inside F-PAM) and D_g (guidance) share this architecture:
  three stride-2 3×3 convs, a 1×1 conv and a sigmoid (64×64 patch map at 512²).
* :class:`AdversarialTerm` — one discriminator with its own Adam: every call takes one D step on
  the detached (fake, real) batch and returns the generator-side BCE(D(fake), 1).

Initialisation is the reference's ``init.kaiming_normal_`` (fan_in, gain √2), biases 0, drawn from
an explicit ``torch.Generator`` so that a run is reproducible image by image.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def kaiming_init(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Kaiming-normal (fan_in, a=0 → gain √2) on every conv weight, zero biases. The draw is made
    on the CPU from ``generator`` and copied, so CPU and CUDA runs start from the same weights."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            weight = torch.empty(m.weight.shape, dtype=torch.float32)
            nn.init.kaiming_normal_(weight, generator=generator)
            with torch.no_grad():
                m.weight.copy_(weight)
                if m.bias is not None:
                    m.bias.zero_()


class ResidualFPAM(nn.Module):
    """Residual F-PAM: 373,577 parameters, 9×9 receptive field."""

    def __init__(self, channels: int = 3, width: int = 64):
        super().__init__()
        self.net1 = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.01),
                                  nn.Conv2d(width, channels, 1))
        self.net2 = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.01),
            nn.Conv2d(width, 2 * width, 3, 1, 1), nn.LeakyReLU(0.01),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1), nn.LeakyReLU(0.01),
            nn.Conv2d(4 * width, channels, 1))
        #: κ, the learnable skip scale (an ``nn.Parameter``, so conv re-initialisation misses it).
        self.skip_scale = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1 = self.net1(x)
        return self.net2(o1) + o1 * self.skip_scale

    def reset_skip_scale(self) -> None:
        with torch.no_grad():
            self.skip_scale.fill_(1.0)


class PlainFPAM(nn.Module):
    """Plain F-PAM: 371,587 parameters."""

    def __init__(self, channels: int = 3, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.01),
            nn.Conv2d(width, 2 * width, 3, 1, 1), nn.LeakyReLU(0.01),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1), nn.LeakyReLU(0.01),
            nn.Conv2d(4 * width, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def reset_skip_scale(self) -> None:
        return None


class PatchDiscriminator(nn.Module):
    """D_f / D_g: 371,073 parameters; output a sigmoid patch map at 1/8 resolution."""

    def __init__(self, channels: int = 3, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1), nn.LeakyReLU(0.01),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.01),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.LeakyReLU(0.01),
            nn.Conv2d(4 * width, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _bce(prob: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(prob) if real else torch.zeros_like(prob)
    return F.binary_cross_entropy(prob, target)


class AdversarialTerm:
    """A discriminator and its Adam (default betas), used as a one-step GAN loss.

    ``__call__(fake, real)``: one D update on ``cat(fake, real).detach()`` (labels 0 / 1), then the
    generator-side loss BCE(D(fake), 1), differentiable w.r.t. ``fake`` only (D's parameters are
    frozen for that forward: the reference lets gradients reach them, but they are discarded by
    the next ``zero_grad``, so freezing is the same result for less work).
    """

    def __init__(self, disc: PatchDiscriminator, lr: float):
        self.disc, self.lr = disc, lr
        self.optimizer = torch.optim.Adam(disc.parameters(), lr)

    def reset_optimizer(self) -> None:
        self.optimizer = torch.optim.Adam(self.disc.parameters(), self.lr)

    def __call__(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            self.disc.train()
            self.optimizer.zero_grad()
            probs = self.disc(torch.cat([fake, real]).detach())
            d_loss = _bce(probs[: fake.shape[0]], False) + _bce(probs[fake.shape[0]:], True)
            d_loss.backward()
            self.optimizer.step()
            self.disc.eval()
            self.disc.requires_grad_(False)
            try:
                return _bce(self.disc(fake), True)
            finally:
                self.disc.requires_grad_(True)


def build_fpam(variant: Literal["residual", "plain"], width: int = 64) -> nn.Module:
    if variant == "residual":
        return ResidualFPAM(width=width)
    if variant == "plain":
        return PlainFPAM(width=width)
    raise ValueError(f"unknown F-PAM variant {variant!r}")


class FPAMTrainer:
    """F-PAM with its optimiser, its discriminator D_f and its loss weights.

    ``train_step(x, y, t)`` is the reference's ``GenerativeDegradation*.forward`` with TRAIN:
    o = F(x.detach()); L_F = w_mse·MSE(o, x) + clip_t(w_pse·P(o, x)) + w_adv·G_f(o, y); one Adam
    step. The weighted perceptual term is multiplied by 0.2 when t < ``clip_below`` and it
    exceeds 10 (``dynamic_clip``). ``__call__`` is F in eval mode, differentiable w.r.t. x.
    """

    def __init__(self, variant: Literal["residual", "plain"], weights: tuple[float, float, float],
                 disc_lr: float, perceptual=None, clip_below: int = 700, width: int = 64):
        self.variant = variant
        self.net = build_fpam(variant, width)
        self.w_mse, self.w_pse, self.w_adv = weights
        self.adversarial = AdversarialTerm(PatchDiscriminator(width=width), disc_lr)
        self.perceptual = perceptual
        self.clip_below = clip_below
        self.reset_optimizer()

    def reset_optimizer(self) -> None:
        # Residual: Adam 5e-4 with weight decay 1e-5; plain: Adam 5e-4 (U:139, U:258).
        wd = 1e-5 if self.variant == "residual" else 0.0
        self.optimizer = torch.optim.Adam(self.net.parameters(), 5e-4, weight_decay=wd)
        self.adversarial.reset_optimizer()

    def to(self, device: torch.device) -> FPAMTrainer:
        self.net.to(device)
        self.adversarial.disc.to(device)
        return self

    def train_step(self, x: torch.Tensor, y: torch.Tensor, t: int) -> dict[str, float]:
        with torch.enable_grad():
            self.net.train()
            self.optimizer.zero_grad()
            x = x.detach()
            out = self.net(x)
            mse = F.mse_loss(out, x) * self.w_mse
            total = mse
            pse_value = 0.0
            if self.perceptual is not None and self.w_pse:
                pse = self._perceptual(out, x) * self.w_pse
                if t < self.clip_below and pse.item() > 10:
                    pse = 0.2 * pse
                total = total + pse
                pse_value = float(pse.detach())
            adv = self.adversarial(out, y) * self.w_adv
            (total + adv).backward()
            self.optimizer.step()
            self.net.eval()
        return {"fpam_mse": float(mse.detach()), "fpam_pse": pse_value, "fpam_adv": float(adv.detach())}

    def _perceptual(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """P(out, x) with the target's features computed without a graph: x is detached, so the
        reference's single VGG call on cat(out, x) backpropagates through a half whose gradient is
        discarded (0.1 TFLOP per step at 512², batch 2). VGG is per-sample, so the values are
        those of the concatenated call."""
        with torch.no_grad():
            target = self.perceptual.features_of(x)
        return self.perceptual(out, x, target)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
