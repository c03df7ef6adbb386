"""Per-task hyperparameters of LD-RPS (``ldrps.md`` §4.2, §7 rows 7, 10, 11).

``lowlight``, ``dehaze`` and ``denoise`` are the defaults of the reference scripts LL, DH and DN.
The reference has no script for colorization or the mixed degradations; those presets, the
``generic`` one and every value listed in a preset's ``ours`` are this project's choices (the
reasons are in the comments). Any field can be overridden with the restorer option
``overrides={"field": value}``; the resolved preset is part of the logged config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

PresetName = Literal["lowlight", "dehaze", "denoise", "colorize", "lowlight_noise", "colorize_noise",
                     "generic"]


@dataclass(frozen=True)
class TaskPreset:
    """Hyperparameters that differ between tasks.

    Attributes:
        seed: the reference script's seed (used only with the restorer option ``seed="preset"``).
        guidance_step: s, the posterior step size (CLI ``--guidance_scale`` of the reference).
        fpam_weights: F-PAM loss weights (w_mse, w_pse, w_adv).
        fpam_disc_lr: (residual, plain) learning rate of F-PAM's discriminator D_f.
        guidance_mse / guidance_perceptual / guidance_adv: weights of MSE(F(x)₀, y), P(F(x)₀, y)
            and the residual GAN for t < t₁ (0 = off).
        guidance_disc_lr: Adam lr of D_g.
        exposure_patch / exposure_weight / colour_weight: Zero-DCE quality losses on x₀.
        quality_below: the quality losses apply for t < this.
        recurrences: recurrent re-noise/re-sample rounds after the first pass.
        text: whether a prompt is used by default (when one is available).
        question: ``restoration`` or ``colorization`` MLLM question (``models.py``).
        ours: fields whose value is this project's choice, not the reference's.
    """

    seed: int
    guidance_step: float
    fpam_weights: tuple[float, float, float]
    fpam_disc_lr: tuple[float, float]
    guidance_mse: float = 1.0
    guidance_perceptual: float = 0.0
    guidance_adv: float = 0.0
    guidance_disc_lr: float = 4e-5
    exposure_patch: int = 32
    exposure_weight: float = 0.0
    colour_weight: float = 0.0
    quality_below: int = 100
    recurrences: int = 1
    text: bool = False
    question: Literal["restoration", "colorization"] = "restoration"
    ours: tuple[str, ...] = field(default=())

    def with_overrides(self, overrides: dict[str, Any] | None) -> TaskPreset:
        if not overrides:
            return self
        names = {f.name for f in fields(self)} - {"ours"}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"LD-RPS overrides: unknown field(s) {unknown}; fields are {sorted(names)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        return replace(self, **values, ours=tuple(sorted({*self.ours, *values})))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, TaskPreset] = {
    # LL (lowlight_pipeline.py): MLLM prompt, s = 8e4, the full loss set.
    "lowlight": TaskPreset(
        seed=20, guidance_step=80000.0, fpam_weights=(0.02, 0.3, 0.8), fpam_disc_lr=(4e-5, 1e-3),
        guidance_perceptual=2e-3, guidance_adv=5e-5, guidance_disc_lr=4e-5, exposure_patch=32,
        exposure_weight=1e-2, colour_weight=1e-2, quality_below=100, recurrences=2, text=True),
    # DH: prompt forced to '' (code parity, §7 row 6); iter=0 writes nothing (a bug) → 1 (ours).
    "dehaze": TaskPreset(
        seed=10, guidance_step=25000.0, fpam_weights=(0.2, 0.5, 0.2), fpam_disc_lr=(1e-4, 2e-5),
        guidance_perceptual=5e-3, guidance_adv=0.0, guidance_disc_lr=2e-5, exposure_patch=64,
        exposure_weight=1e-2, colour_weight=1e-3, quality_below=150, recurrences=1, text=False,
        ours=("recurrences",)),
    # DN: prompt forced to ''; MSE guidance only.
    "denoise": TaskPreset(
        seed=20, guidance_step=40000.0, fpam_weights=(3.0, 0.002, 0.001), fpam_disc_lr=(1e-4, 1e-4),
        guidance_perceptual=0.0, guidance_adv=0.0, guidance_disc_lr=1e-3, recurrences=1, text=False),
    # No script (§7 row 10): DH config, colour constancy and exposure OFF (they push to grey and
    # fight colorization), the colourful question, iter = 2 as multi_gpu.sh's colorizing call.
    "colorize": TaskPreset(
        seed=20, guidance_step=25000.0, fpam_weights=(0.2, 0.5, 0.2), fpam_disc_lr=(1e-4, 2e-5),
        guidance_perceptual=5e-3, guidance_adv=0.0, guidance_disc_lr=2e-5, exposure_patch=64,
        exposure_weight=0.0, colour_weight=0.0, quality_below=150, recurrences=2, text=True,
        question="colorization",
        ours=("guidance_step", "fpam_weights", "fpam_disc_lr", "guidance_perceptual",
              "exposure_weight", "colour_weight", "recurrences", "text", "seed")),
    # No script (§7 row 11): the LL config unchanged — a guess, marked as such.
    "lowlight_noise": TaskPreset(
        seed=20, guidance_step=80000.0, fpam_weights=(0.02, 0.3, 0.8), fpam_disc_lr=(4e-5, 1e-3),
        guidance_perceptual=2e-3, guidance_adv=5e-5, guidance_disc_lr=4e-5, exposure_patch=32,
        exposure_weight=1e-2, colour_weight=1e-2, quality_below=100, recurrences=2, text=True,
        ours=("guidance_step", "fpam_weights", "fpam_disc_lr", "guidance_perceptual", "guidance_adv",
              "exposure_weight", "colour_weight", "recurrences")),
    # No script (§7 row 11): colorize with F-PAM's w_mse raised to DN's 3.0 so that F-PAM stays
    # close to identity and the noise is explained by the residual, not absorbed in x.
    "colorize_noise": TaskPreset(
        seed=20, guidance_step=25000.0, fpam_weights=(3.0, 0.5, 0.2), fpam_disc_lr=(1e-4, 2e-5),
        guidance_perceptual=5e-3, guidance_adv=0.0, guidance_disc_lr=2e-5, exposure_patch=64,
        exposure_weight=0.0, colour_weight=0.0, quality_below=150, recurrences=2, text=True,
        question="colorization",
        ours=("guidance_step", "fpam_weights", "fpam_disc_lr", "guidance_perceptual",
              "exposure_weight", "colour_weight", "recurrences", "text", "seed")),
    # Unknown degradation (ours throughout): DN's step size between LL and DH, DH's F-PAM weights
    # (neither identity-locked like DN nor as free as LL), a light perceptual term, no quality
    # losses (they encode a low-light prior), one recurrence.
    "generic": TaskPreset(
        seed=20, guidance_step=40000.0, fpam_weights=(0.2, 0.5, 0.2), fpam_disc_lr=(1e-4, 2e-5),
        guidance_perceptual=2e-3, guidance_adv=0.0, guidance_disc_lr=4e-5, recurrences=1, text=False,
        ours=("seed", "guidance_step", "fpam_weights", "fpam_disc_lr", "guidance_perceptual",
              "recurrences", "text")),
}
