"""The ``unfoldldm`` restorer: options, inference (padding, tiling, seeded prior noise),
the training hooks of ``bench train`` (two phases), and the complexity count for ``bench list``.

``UnfoldingRestorer`` holds what UnfoldLDM and the plug-and-play host ``dgunet-pnp``
(``dgunet.py``) share; each subclass only builds its :class:`UnfoldingNetwork`.
"""

from __future__ import annotations

import functools
import json
from abc import abstractmethod
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from harness.api.options import Range
from harness.api.restorer import Restorer, register_restorer
from harness.api.task import Task
from restorers.unfoldldm.configs import CONFIGS, ConfigName
from restorers.unfoldldm.drldm import DRLDM
from restorers.unfoldldm.losses import IsdaTarget, diffusion_loss, isda_loss
from restorers.unfoldldm.mgda import MGDA, Granularity
from restorers.unfoldldm.model import Mode, UnfoldingNetwork, UnfoldingTrace
from restorers.unfoldldm.ocformer import OCFormer

PAPER = (
    "He, Zhang, Chen, Yang, Fang, Lin, Xiao, Farsiu. UnfoldLDM: Deep Unfolding-based Blind "
    "Image Restoration with Latent Diffusion Priors. arXiv 2511.18152, 2025"
)


class UnfoldingRestorer(Restorer):
    """Shared machinery of the unfolding restorers (see module docstring)."""

    trainable = True
    #: PixelUnshuffle(4) in the prior encoders and up to 3 U-Net downsamplings (spec §1).
    pad_multiple = 8
    #: Checkpoint names of the three parts, as in the paper's figure.
    part_names: tuple[str, str, str] = ("mgda", "drldm", "ocformer")

    def _setup(
        self,
        *,
        checkpoint: str | None,
        phase: int,
        init: str | None,
        stages: int,
        output_stage: int | None,
        tile: int | None,
        tile_overlap: int,
        prior_noise: str,
        random_init: bool,
        isda_weight: float,
        diffusion_weight: float,
        warmup_fraction: float,
        isda_target: IsdaTarget,
        isda_cross: bool,
        isda_gt: bool,
        deep_supervision: float,
    ) -> None:
        if output_stage is not None and not 1 <= output_stage <= stages:
            raise ValueError(f"output_stage={output_stage} must lie in 1..stages={stages}")
        if tile is not None and tile and tile < 32:
            raise ValueError(f"tile={tile} is too small (≥ 32, a multiple of 8)")
        self.checkpoint, self.phase, self.init, self.stages = checkpoint, phase, init, stages
        self.output_stage, self.tile_overlap, self.prior_noise = output_stage, tile_overlap, prior_noise
        self.tile = (tile // 8) * 8 if tile else None
        self.random_init = random_init
        self.isda_weight, self.diffusion_weight, self.warmup_fraction = (
            isda_weight,
            diffusion_weight,
            warmup_fraction,
        )
        self.isda_target, self.isda_cross, self.isda_gt = isda_target, isda_cross, isda_gt
        self.deep_supervision = deep_supervision
        self.net = self.build_network()

    @abstractmethod
    def build_network(self) -> UnfoldingNetwork:
        """The configured network, randomly initialised."""

    # Lifecycle --------------------------------------------------------------------------------
    def modules(self) -> list[nn.Module]:
        return [self.net]

    #: The checkpoint used when none is given (``None``: this restorer ships none).
    shipped_checkpoint: Path | None = None

    @classmethod
    def weights_summary(cls) -> str:
        shipped = cls.shipped_checkpoint
        if shipped is None or not shipped.is_file():
            return "none shipped: give checkpoint=PATH (from bench train)"
        card = json.loads(shipped.with_name(shipped.name + ".json").read_text(encoding="utf-8"))
        trained = {k: card["config"][k] for k in cls.checkpoint_options if k in card["config"]}
        shown = ",".join(f"{k}={json.dumps(v).strip(chr(34))}" for k, v in trained.items()
                         if k in ("config", "prior", "stages"))
        return (f"ships {shipped.name} ({shown}; the default); any other configuration: "
                f"checkpoint=PATH (from bench train)")

    def _checkpoint_path(self) -> Path | None:
        """The given checkpoint (:meth:`resolve_checkpoint`), else the shipped one for the
        configuration it was trained with."""
        if self.checkpoint:
            path = self.resolve_checkpoint(self.checkpoint)
            if path is None:
                raise ValueError(
                    f"{self.name}: checkpoint={self.checkpoint} is chosen per task by `bench run` "
                    f"(from the task's degradation); outside a run give checkpoint=auto:FAMILY "
                    f"or checkpoint=PATH"
                )
            return path
        shipped = self.shipped_checkpoint
        if self.random_init or shipped is None or not shipped.is_file():
            return None
        card = json.loads(shipped.with_name(shipped.name + ".json").read_text(encoding="utf-8"))
        trained = card.get("config", {})
        differs = {k: (v, trained.get(k)) for k, v in self.config.items()
                   if k in self.checkpoint_options and trained.get(k) != v}
        return None if differs else shipped

    def check_assets(self) -> None:
        path = self._checkpoint_path()
        if path is not None and not path.is_file():
            raise FileNotFoundError(
                f"{self.name}: checkpoint {path} does not exist; train one with "
                f"`bench train -r {self.name} ... --out {path}`"
            )
        if path is None and not self.random_init:
            shipped = self.shipped_checkpoint
            hint = (f" (the shipped {shipped.name} is for config="
                    f"{json.loads(shipped.with_name(shipped.name + '.json').read_text())['config']['config']}"
                    f" with the default architecture options)" if shipped and shipped.is_file() else "")
            raise ValueError(
                f"{self.name}: no weights for this configuration{hint}: give checkpoint=PATH (from "
                f"`bench train`, recipes in restorers/unfoldldm/recipes/), or random_init=true to "
                f"time an untrained network"
            )

    def load(self, device: torch.device) -> None:
        self.check_assets()
        path = self._checkpoint_path()
        if path is not None:
            self.load_checkpoint(path)
        super().load(device)

    def train_modules(self) -> dict[str, nn.Module]:
        modules = (self.net.gradient, self.net.prior, self.net.proximal)
        parts = dict(zip(self.part_names, modules, strict=True))
        return {name: module for name, module in parts.items() if module is not None}

    # Inference --------------------------------------------------------------------------------
    def _noise_fn(self, meta: dict[str, Any]):
        if self.prior_noise == "zero":
            return lambda shape, like: like.new_zeros(shape)
        generator = meta.get("generator")
        if generator is None:  # direct calls without the runner: still reproducible
            generator = torch.Generator().manual_seed(int(meta.get("seed", 0)))
        return lambda shape, like: torch.randn(shape, generator=generator).to(like.device, like.dtype)

    def _forward(self, x: torch.Tensor, noise) -> torch.Tensor:
        trace = self.net(x, mode="eval", noise=noise, stop_at=self.output_stage)
        return trace.outputs[-1]

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        noise = self._noise_fn(meta)
        height, width = lq.shape[-2:]
        tile = self.tile
        if not tile or (height <= tile and width <= tile):
            return self._forward(lq, noise)
        return self._tiled(lq, noise, tile)

    def _tiled(self, lq: torch.Tensor, noise, tile: int) -> torch.Tensor:
        """Overlapping tiles (Restormer's demo), averaged where they overlap; tiles are visited
        in a fixed order, so the prior noise drawn for each is reproducible."""
        height, width = lq.shape[-2:]
        th, tw = min(tile, height), min(tile, width)
        stride = max(8, tile - self.tile_overlap)
        rows = sorted({*range(0, height - th, stride), height - th})
        cols = sorted({*range(0, width - tw, stride), width - tw})
        out = torch.zeros_like(lq)
        weight = torch.zeros_like(lq[:, :1])
        for top in rows:
            for left in cols:
                patch = lq[..., top : top + th, left : left + tw]
                out[..., top : top + th, left : left + tw] += self._forward(patch, noise)
                weight[..., top : top + th, left : left + tw] += 1
        return out / weight

    # Training ---------------------------------------------------------------------------------
    def setup_training(self, device: torch.device) -> None:
        if self.init:
            from harness.api.checkpoints import read_checkpoint

            self.load_state_dict(read_checkpoint(Path(self.init)).inference_weights())
        self.device = device
        self.net.to(device).train()
        prior = self.net.prior
        if prior is not None:
            # Phase II: E_clean is the frozen teacher. Phase I: E_cond and the denoiser are unused.
            prior.e_clean.requires_grad_(self.phase == 1)
            prior.e_cond.requires_grad_(self.phase == 2)
            prior.denoiser.requires_grad_(self.phase == 2)

    def parameter_groups(self) -> list[dict[str, Any]]:
        params = [p for m in self.train_modules().values() for p in m.parameters() if p.requires_grad]
        return [{"params": params}]

    def training_mode(self, step: int, total_steps: int) -> Mode:
        if self.net.prior is None or self.phase == 1:
            return "phase1"
        return "warmup" if step < self.warmup_fraction * total_steps else "phase2"

    def training_step(
        self, lq: torch.Tensor, gt: torch.Tensor, step: int, total_steps: int
    ) -> dict[str, torch.Tensor]:
        height, width = lq.shape[-2:]
        m = self.pad_multiple
        pad = (0, (-width) % m, 0, (-height) % m)
        if any(pad):
            lq, gt = F.pad(lq, pad, mode="reflect"), F.pad(gt, pad, mode="reflect")
        mode = self.training_mode(step, total_steps)
        trace: UnfoldingTrace = self.net(lq, gt=gt, mode=mode)
        crop = lambda x: x[..., :height, :width]  # noqa: E731
        losses: dict[str, torch.Tensor] = {}
        if trace.z_hat:
            losses["diffusion"] = diffusion_loss(trace.z_hat, trace.z0)
        if mode == "warmup":
            losses["loss"] = self.diffusion_weight * losses["diffusion"]
            return losses
        l1 = F.l1_loss(crop(trace.outputs[-1]), crop(gt))
        losses["l1"] = l1
        loss = l1
        if self.deep_supervision:
            for x_k in trace.outputs[:-1]:
                loss = loss + self.deep_supervision * F.l1_loss(crop(x_k), crop(gt))
        losses["isda"] = isda_loss(
            trace.gradient,
            trace.inputs,
            trace.outputs,
            lq,
            gt,
            self.isda_target,
            self.isda_cross,
            self.isda_gt,
        )
        loss = loss + self.isda_weight * losses["isda"]
        if "diffusion" in losses:
            loss = loss + self.diffusion_weight * losses["diffusion"]
        losses["loss"] = loss
        return losses


#: ``checkpoint=auto``: chosen per task, written as ``auto:<family>`` (see ``UnfoldLDM``)
AUTO = "auto"
#: a family's checkpoint is ``<FAMILY_FILE><family>.pt`` in the shipped checkpoint's folder
FAMILY_FILE = "unfoldldm-small-"


@register_restorer("unfoldldm", "unfold-ldm")
class UnfoldLDM(UnfoldingRestorer):
    """UnfoldLDM; ``checkpoint=auto`` picks the weights by the task's declared degradation.

    One small checkpoint per degradation family ships (or will: issue 22) as
    ``weights/unfoldldm-small-<family>.pt``, where ``<family>`` is a value of ``Task.degradation``
    (noise, blur, lowlight, haze, rain, jpeg, mixed). ``checkpoint=auto`` resolves, per task, to
    ``auto:<degradation>`` when that family's file ships, else to ``auto:<general>``, the family of
    :attr:`shipped_checkpoint` (today ``mixed``, the noise + blur + low-light model): the row label,
    params and records then say which weights ran (``unfoldldm[checkpoint=auto:lowlight]``).
    ``auto:<family>`` may also be given directly. ``auto`` is opt-in; the default (no checkpoint)
    stays the shipped general checkpoint until the specialists ship.
    """

    #: trained here with ``restorers/unfoldldm/recipes/train-small-cpu.sh`` (model card beside it)
    shipped_checkpoint = Path(__file__).with_name("weights") / f"{FAMILY_FILE}mixed.pt"
    #: what a checkpoint fixes (networks and their shapes); ``checkpoint=PATH`` restores these
    checkpoint_options = ("config", "stages", "prior", "mgda", "vss", "share_steps", "n_tokens")
    description = "UnfoldLDM (arXiv 2025): deep unfolding (MGDA) + latent-diffusion prior + OCFormer; trained"
    degradations = ("noise", "blur", "rain", "lowlight", "underwater", "backlit")
    paper = PAPER
    licence = "our implementation from the paper (no official code); weights: whatever you train"

    def __init__(
        self,
        config: ConfigName = "small",
        checkpoint: str | None = None,
        phase: Literal[1, 2] = 2,
        init: str | None = None,
        stages: Annotated[int, Range(1, 5)] = 3,
        prior: bool = True,
        mgda: Granularity = "both",
        vss: bool = True,
        share_steps: bool = False,
        n_tokens: Literal[1, 4, 16] | None = None,
        output_stage: Annotated[int, Range(1, 5)] | None = None,
        tile: int | None = None,
        tile_overlap: Annotated[int, Range(0, 256)] = 32,
        prior_noise: Literal["gaussian", "zero"] = "gaussian",
        random_init: bool = False,
        scan_chunk: Annotated[int, Range(1, 65536)] | None = None,
        isda_weight: Annotated[float, Range(0, None)] = 0.1,
        diffusion_weight: Annotated[float, Range(0, None)] = 1.0,
        warmup_fraction: Annotated[float, Range(0, 1)] = 0.25,
        isda_target: IsdaTarget = "previous",
        isda_cross: bool = False,
        isda_gt: bool = False,
        deep_supervision: Annotated[float, Range(0, None)] = 0.0,
        identity_init: bool = False,
    ):
        """
        Args:
            config: size (spec §6): ``tiny`` (tests), ``small`` (CPU, every component), ``full``
                (recommended), ``large`` (4-level OCFormer).
            checkpoint: a ``bench train`` checkpoint to evaluate (EMA weights when present);
                ``auto``: the shipped checkpoint of the task's degradation family, else the
                general one (see the class docstring); ``auto:<family>``: that family's.
            phase: training phase: 1 = clean prior from E_clean(x_gt, v_k); 2 = generated prior
                (E_clean frozen, first ``warmup_fraction`` of the steps diffusion-only).
            init: Phase-I checkpoint that Phase II starts from.
            stages: unfolding stages K (weights shared across stages).
            prior: use DR-LDM; false = ablation "OCFormer without prior".
            mgda: MGDA granularities: ``both`` (paper), ``holistic`` or ``decomposed`` only (ablations).
            vss: VSS blocks in MGDA (paper); false = ablation with plain convolutions.
            share_steps: one pair of step sizes for all stages instead of one per stage.
            n_tokens: override the config's number of prior tokens N_p (1 = DiffIR's prior vector).
            output_stage: score the output x_k of this stage instead of x_K.
            tile: tiled inference with tiles of this size (CPU memory on large images); none = whole image.
            tile_overlap: overlap of neighbouring tiles, pixels.
            prior_noise: z_T at inference: ``gaussian`` from the image's seeded generator, or ``zero``.
            random_init: allow evaluating without a checkpoint (latency, smoke tests).
            scan_chunk: chunk length of the CPU selective scan (default ≈ √(H·W)).
            isda_weight: λ_c of the ISDA loss.
            diffusion_weight: λ_d of the diffusion loss.
            warmup_fraction: share of Phase-II steps that train only E_cond + denoiser.
            isda_target: apply each stage's D to x_{k−1} (``previous``, default) or x_k (``current``).
            isda_cross: add the cross-granularity agreement ‖A_D(x) − D_d(x)‖₁ to ISDA.
            isda_gt: add the GT-anchored ‖D(x_gt) − y‖₁ to ISDA.
            deep_supervision: weight of the L1 loss on intermediate stage outputs (0 = paper).
            identity_init: start training from the identity: the untrained network returns its
                input exactly (OCFormer's last conv and MGDA's decomposed step ρ^d zeroed; see
                :func:`build_unfoldldm`). Initial values only: a checkpoint replaces them, so one
                trained either way loads with either setting. False = paper-style random init.
        """
        super().__init__()
        self.cfg = CONFIGS[config]
        self.use_prior, self.granularity, self.vss, self.share_steps = prior, mgda, vss, share_steps
        self.n_tokens = n_tokens or self.cfg.n_tokens
        self.scan_chunk, self.identity_init = scan_chunk, identity_init
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
            isda_target=isda_target,
            isda_cross=isda_cross,
            isda_gt=isda_gt,
            deep_supervision=deep_supervision,
        )

    # checkpoint=auto ---------------------------------------------------------------------------
    @classmethod
    def shipped_families(cls) -> dict[str, Path]:
        """Family → its checkpoint, for every ``unfoldldm-small-<family>.pt`` beside the shipped
        checkpoint (a user's ``auto:<family>`` is only looked up here, never joined into a path)."""
        folder = cls.shipped_checkpoint.parent
        files = sorted(folder.glob(f"{FAMILY_FILE}*.pt"))
        return {p.name[len(FAMILY_FILE):-len(".pt")]: p for p in files if p.is_file()}

    @classmethod
    def general_family(cls) -> str:
        """The family of the shipped general checkpoint: what ``auto`` falls back to."""
        return cls.shipped_checkpoint.name.removeprefix(FAMILY_FILE).removesuffix(".pt")

    @classmethod
    def options_for_task(cls, options: dict[str, Any], task: Task) -> dict[str, Any]:
        """``checkpoint=auto`` → ``auto:<task.degradation>`` when that family ships, else
        ``auto:<general family>``; any other options unchanged."""
        if options.get("checkpoint") != AUTO:
            return options
        shipped = cls.shipped_families()
        family = task.degradation if task.degradation in shipped else cls.general_family()
        return {**options, "checkpoint": f"{AUTO}:{family}"}

    @classmethod
    def resolve_checkpoint(cls, value: str) -> Path | None:
        """``auto`` → None (chosen per task); ``auto:<family>`` → that family's shipped file, or a
        ``ValueError`` listing the shipped families; anything else is a path."""
        if value == AUTO:
            return None
        if not value.startswith(f"{AUTO}:"):
            return super().resolve_checkpoint(value)
        family, shipped = value[len(AUTO) + 1:], cls.shipped_families()
        if family not in shipped:
            raise ValueError(
                f"{cls.name}: checkpoint={value}: no {FAMILY_FILE}{family}.pt ships in "
                f"{cls.shipped_checkpoint.parent}; shipped families: {', '.join(shipped) or 'none'} "
                f"(give one of them, checkpoint=auto to choose by the task's degradation, or "
                f"checkpoint=PATH)"
            )
        return shipped[family]

    @classmethod
    def weights_summary(cls) -> str:
        summary = super().weights_summary()
        families = cls.shipped_families()
        if not families:
            return summary
        auto = (f"checkpoint=auto: by the task's degradation among the shipped families "
                f"({', '.join(families)}), else {cls.general_family()}")
        head, sep, tail = summary.partition("; any other configuration")
        return f"{head}; {auto}{sep}{tail}"

    def build_network(self) -> UnfoldingNetwork:
        return build_unfoldldm(
            self.cfg,
            self.stages,
            self.use_prior,
            self.granularity,
            self.vss,
            self.share_steps,
            self.n_tokens,
            self.scan_chunk,
            self.identity_init,
        )

    def info(self):
        record = super().info()
        record.config = {
            **record.config,
            "complexity": model_complexity(self.config.get("config", "small"), self.stages),
        }
        return record


def build_unfoldldm(
    cfg,
    stages: int = 3,
    prior: bool = True,
    granularity: Granularity = "both",
    vss: bool = True,
    share_steps: bool = False,
    n_tokens: int | None = None,
    scan_chunk: int | None = None,
    identity_init: bool = False,
) -> UnfoldingNetwork:
    """MGDA + DR-LDM + OCFormer for a :class:`~restorers.unfoldldm.configs.UnfoldLDMConfig`.

    ``identity_init`` makes every stage start as ``x_k = x_{k−1} = y``: OCFormer's residual is
    zero (last conv zeroed) and MGDA's step is zero at ``x = y`` (holistic operators are the
    identity at init anyway; the decomposed step ρ^d is zeroed). An untrained network then
    returns its input exactly, and training starts from "change nothing" instead of from a
    random correction that makes every image worse.
    """
    gradient = MGDA(
        cfg.mgda_width, cfg.d_state, cfg.token_dim, stages, granularity, vss, share_steps, scan_chunk
    )
    drldm = (
        DRLDM(
            cfg.prior_dim,
            n_tokens or cfg.n_tokens,
            cfg.encoder_width,
            cfg.encoder_res,
            cfg.denoiser_hidden,
            cfg.denoiser_layers,
            cfg.diffusion_steps,
        )
        if prior
        else None
    )
    proximal = OCFormer(
        cfg.dim,
        list(cfg.blocks),
        cfg.refinement,
        list(cfg.heads),
        cfg.ffn_factor,
        cfg.prior_dim if prior else 0,
    )
    if identity_init:
        gradient.zero_decomposed_step_()
        proximal.zero_output_()
    return UnfoldingNetwork(gradient, drldm, proximal, stages)


def scan_macs(net: UnfoldingNetwork, height: int, width: int) -> int:
    """Selective-scan MACs FlopCounterMode cannot see (elementwise): per SS2D call 4 directions ×
    d_in × L × N × 3 (decay·state, input, output contraction)."""
    from restorers.unfoldldm.vss import SS2D

    per_call = sum(
        m.directions * m.d_inner * height * width * m.d_state * 3
        for m in net.gradient.modules()
        if isinstance(m, SS2D)
    )
    return per_call * net.stages


@functools.cache
def model_complexity(config: str = "small", stages: int = 3, size: int = 256) -> dict[str, int]:
    """Parameters and MACs of one inference forward at ``size``² (``bench list`` / ``info``).

    ``params``: what inference uses (MGDA, E_cond, denoiser, OCFormer); ``params_train``: plus
    E_clean. ``macs_256``: convolutions/matmuls counted by ``torch.utils.flop_counter`` on the
    meta device (no compute, no memory) plus the analytic selective-scan MACs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    cfg = CONFIGS[config]
    # built on the CPU, then moved: constructing under ``torch.device("meta")`` breaks once
    # another library has imported torch._dynamo (factory calls then escape the device context)
    net = build_unfoldldm(cfg, stages).to("meta")
    with torch.device("meta"):
        x = torch.empty(1, 3, size, size)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            net(x, mode="eval", noise=lambda shape, like: torch.empty(shape, device="meta"))
    total = sum(p.numel() for p in net.parameters())
    e_clean = sum(p.numel() for p in net.prior.e_clean.parameters())
    return {
        "params": total - e_clean,
        "params_train": total,
        f"macs_{size}": counter.get_total_flops() // 2 + scan_macs(net, size, size),
    }
