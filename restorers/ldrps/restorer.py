"""LD-RPS: zero-shot restoration by latent-diffusion recurrent posterior sampling.

Li et al., "Zero-Shot Unified Image Restoration via Latent Diffusion Recurrent Posterior
Sampling", ICCV 2025 (arXiv 2507.00790); reference code AMAP-ML/LD-RPS (``ldrps.md``). A
pretrained Stable Diffusion 2.1-base samples a clean latent; every DDIM step is pulled towards
the observation y by the gradient, w.r.t. the clean-latent estimate x̂₀, of a loss between
F-PAM(decode(x̂₀)) and y, where F-PAM is a small network trained online to reproduce the
degradation. After the first pass the result is re-noised to the strength-0.5 timestep and
sampled again (the recurrence), F-PAM and the discriminators carried across rounds.

Algorithm for one image (§8 of the spec; ``_restore_one`` / ``_pass`` / ``_guide``)::

    y ← Lanczos(lq, 512²)                          # [0,1]; sample 0 guided, sample 1 companion
    F, D_f, D_g ← Kaiming; Adam optimisers new     # per image (see carry_optimizers)
    z ← N(0, I) of shape (1+companions, 4, 64, 64)
    for round r = 0 … R:                           # R = recurrences
        r > 0: z ← √ᾱ_449·z + √(1−ᾱ_449)·ε         # strength 0.5 → grid[225] = 449
        for t in grid[r>0 ? 225 : 0 :]:            # leading grid 899, 897, …, 1
            ε̂ ← CFG(UNet(z, t))                    # both samples and both CFG branches: 1 call
            z, x̂₀ ← DDIM(z, ε̂, t)                  # clip-only dynamic thresholding
            x̂₀ ← x̂₀ recomputed from the new z     # the reference's quirk (x0_quirk)
            x ← D(x̂₀);  F-PAM step on x (always)
            t < t₁: z ← z − s·∇_{x̂₀} L_t(F(x), x, y)   (no backward for t ≥ t₁, where L ≡ 0)
        out_r ← decode(z₀) at the input's size     # every round kept (round_outputs)

Deviations from the reference, each a named option (default first):

* ``carry_optimizers=False``: Adam states and F-PAM's skip scale κ are re-created per image; the
  reference creates its optimisers once per process and never resets κ, so its results depend
  on the order of ``os.listdir``. ``true`` reproduces the carry-over.
* ``companions=1``: B = 2 as the reference; 0 drops the unguided companion (faster).
* ``recurrences``: from the preset; DH's 0 (which writes nothing) is 1 in the dehaze preset.
* ``seed=None``: the runner's per-image generator (``meta["generator"]``, else ``meta["seed"]``);
  the reference re-seeds every image with its script's seed — ``seed="preset"`` or an int.
* ``input_8bit=True``: the input is resized as the reference's 8-bit file (round to 8 bit,
  PIL Lanczos, /255); ``false`` resizes the float image per channel (PIL "F" Lanczos).
* Output: Lanczos back to the **input's size**, float (the task quantises). ``force_256`` and
  ``truncate_8bit`` give the reference's always-256² and truncating ``astype(uint8)``.
* ``text``: DH and DN read a prompt and overwrite it with ''; the presets follow the code
  (dehaze/denoise off). An empty prompt skips CFG (it is then exactly ε̂_uncond).
* Captioner generation is greedy (the reference samples without a seed).

Speed (all exact or equal up to float reassociation): one UNet (the reference loads two), one
UNet call of batch 2·(1+companions) per step, no VAE encodes (the reference's are unused), no
backward where the guidance is identically zero (t ≥ t₁) — F-PAM still trains there, — the
companion decoded and passed through F-PAM without a graph (its gradient is identically zero),
F-PAM's VGG loss with the detached target's features taken without a graph, the observation's
VGG features computed once per image, discriminator parameters frozen for the generator-side
forward, optional fp16/bf16 UNet/VAE on CUDA with the latents and the guidance update in fp32,
optional gradient checkpointing of the decoder. ``benchmarks/ldrps_flops.py`` counts the FLOPs per
image of this loop against the reference's order at SD2.1-base scale (``docs/ldrps.md``).

Parity hooks (for reproducing a recorded trajectory or the reference's numbers):

* ``record=DIR``: writes ``DIR/<sample id>.pt`` with ``init`` (initial latents, the re-noising
  draws per round, initial state dicts of F-PAM, D_f, D_g) and ``steps`` (per step: round, t,
  the latent after guidance, x̂₀ fed to the loss, every loss term). ~0.3 MB per step at 512².
* ``inject=FILE_or_DIR``: replaces those draws by a recorded ``init`` (a DIR is looked up by
  sample id), so a run reproduces a recorded trajectory exactly; the same dict can be put on
  ``restorer.inject_state`` from Python (e.g. tensors dumped from the reference code).
* Flags: ``x0_quirk`` (x̂₀ for the loss from the updated latent), ``carry_optimizers``,
  ``truncate_8bit``, ``force_256``, ``input_8bit``, ``seed``.

Latency: after each image ``restorer.last_stats`` (also written to ``meta["ldrps_stats"]`` of the
dict the caller passed) holds ``image_s``, ``steps`` (count), ``step_s`` (list of per-step wall
seconds, CUDA-synchronised) and ``breakdown_s`` (UNet, decode, F-PAM, losses+backward, summed;
component times are synchronised only with ``profile=true``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from harness.api.options import Range
from harness.api.restorer import Restorer, register_restorer
from harness.io.names import safe_name
from harness.io.safe_load import load_torch_file
from restorers.ldrps.fpam import AdversarialTerm, FPAMTrainer, PatchDiscriminator, kaiming_init
from restorers.ldrps.losses import VGGPerceptual, colour_loss, exposure_loss, load_vgg_features
from restorers.ldrps.models import (
    COLORIZATION_QUESTION,
    RESTORATION_QUESTION,
    SD21_BASE,
    Captioner,
    SDComponents,
    TAESDDecoder,
    VAEDecoder,
    check_model,
    encode_prompt,
    is_local,
    load_components,
    load_taesd,
    read_prompts,
)
from restorers.ldrps.presets import PRESETS, PresetName, TaskPreset
from restorers.ldrps.sampler import DDIMSchedule, recurrence_start

log = logging.getLogger(__name__)

#: Clock of the latency figures (wall time); ``benchmarks/ldrps_step.py`` swaps in CPU time.
CLOCK = time.perf_counter

#: A folder written by ``restorers.ldrps.tiny_pipeline`` carries its own (random) relu2_2 file.
MODEL_FOLDER_VGG = "perceptual/vgg16_relu2_2.pth"
#: ... and an ``ldrps.json`` with small defaults for ``steps``, ``size`` and ``fpam_width``.
MODEL_FOLDER_DEFAULTS = "ldrps.json"


def lanczos_resize(image: torch.Tensor, size: tuple[int, int], eight_bit: bool) -> torch.Tensor:
    """(3,H,W) float → (3,h,w) float in [0,1] with PIL Lanczos: on the 8-bit image (``eight_bit``,
    rounding, as a file would hold it) or per channel on the float image (mode "F")."""
    height, width = size
    array = image.detach().float().clamp(0, 1).cpu().numpy()
    if eight_bit:
        u8 = np.round(array * 255).astype(np.uint8).transpose(1, 2, 0)
        if (u8.shape[0], u8.shape[1]) != size:
            u8 = np.asarray(Image.fromarray(u8).resize((width, height), Image.LANCZOS))
        out = u8.astype(np.float32).transpose(2, 0, 1) / 255.0
    else:
        if array.shape[1:] == size:
            return torch.from_numpy(array)
        out = np.stack([np.asarray(Image.fromarray(c, mode="F").resize((width, height), Image.LANCZOS))
                        for c in array]).clip(0, 1)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


class _Timer:
    """Accumulates wall time per component; synchronises CUDA only when asked."""

    def __init__(self, device: torch.device, sync: bool):
        self.device, self.sync, self.totals = device, sync and device.type == "cuda", {}

    def __call__(self, name: str):
        timer = self

        class _Span:
            def __enter__(self):
                if timer.sync:
                    torch.cuda.synchronize(timer.device)
                self.start = CLOCK()

            def __exit__(self, *exc):
                if timer.sync:
                    torch.cuda.synchronize(timer.device)
                timer.totals[name] = timer.totals.get(name, 0.0) + CLOCK() - self.start

        return _Span()


@register_restorer("ldrps", "ld-rps")
class LDRPS(Restorer):
    description = ("LD-RPS (ICCV 2025) zero-shot recurrent posterior sampling with Stable Diffusion "
                   "2.1 + F-PAM")
    degradations = ("lowlight", "haze", "noise", "colorization", "mixed")
    paper = ("Li et al. Zero-Shot Unified Image Restoration via Latent Diffusion Recurrent Posterior "
             "Sampling. ICCV 2025 (arXiv 2507.00790)")
    licence = ("SD 2.1: CreativeML Open RAIL++-M; VGG16: BSD-3 (torchvision); TAESD: MIT; "
               "reference code: see AMAP-ML/LD-RPS")
    input_range = "RGB float [0,1], any size (resized to size×size Lanczos, back at the end)"
    needs_grad = True
    warmup = "custom"

    def __init__(
        self,
        model: str = SD21_BASE,
        preset: PresetName = "generic",
        prompt: str | None = None,
        prompts_file: str | None = None,
        captioner: str | None = None,
        text: bool | None = None,
        recurrences: Annotated[int, Range(0, 3)] | None = None,
        output_round: Annotated[int, Range(0, 3)] | Literal["last"] = "last",
        steps: Annotated[int, Range(1, 1000)] | None = None,
        strength: Annotated[float, Range(0.0, 1.0)] = 0.5,
        cfg_scale: Annotated[float, Range(0.0, None)] = 8.0,
        guidance_step: Annotated[float, Range(0.0, None)] | None = None,
        t1: Annotated[int, Range(0, 1000)] = 700,
        overrides: dict | None = None,
        fpam: Literal["residual", "plain"] = "residual",
        companions: Literal[0, 1] = 1,
        fpam_width: Annotated[int, Range(1, 256)] | None = None,
        decoder: Literal["vae", "taesd"] = "vae",
        taesd: str | None = None,
        perceptual: bool = True,
        vgg_weights: str | None = None,
        size: Annotated[int, Range(8, 2048)] | None = None,
        force_256: bool = False,
        truncate_8bit: bool = False,
        input_8bit: bool = True,
        x0_quirk: bool = True,
        carry_optimizers: bool = False,
        timestep_spacing: Literal["leading", "trailing"] = "leading",
        dtype: Literal["fp32", "fp16", "bf16"] = "fp32",
        gradient_checkpointing: bool = False,
        seed: int | Literal["preset"] | None = None,
        record: str | None = None,
        inject: str | None = None,
        profile: bool = False,
        max_new_tokens: Annotated[int, Range(1, 1024)] = 64,
    ) -> None:
        """
        Args:
            model: diffusers SD checkpoint: hub id or local folder (unet/ vae/ text_encoder/ tokenizer/
                scheduler/).
            preset: task hyperparameters (lowlight, dehaze, denoise = reference scripts; others ours).
            prompt: one text prompt for every image.
            prompts_file: id -> prompt (JSON object, TSV, or folder of <id>.txt as the reference's prompt/).
            captioner: transformers image-text-to-text model (id or folder) asked the reference question.
            text: text guidance on/off (default: the preset's choice when a prompt source is given).
            recurrences: recurrent rounds after the first pass, 0-3 (default: the preset's).
            output_round: which round's output restore returns (0 = first pass; every round is kept).
            steps: DDIM steps of the first pass (default 450 = reference, or the folder's ldrps.json).
            strength: re-noising strength of a recurrent round (0.5 -> t = 449 at 450 steps).
            cfg_scale: classifier-free guidance scale (8 in the reference; skipped for an empty prompt).
            guidance_step: posterior step size s (default: the preset's).
            t1: guidance off for t >= t1 (F-PAM warm-up); 700 in the reference.
            overrides: any preset field, e.g. {"exposure_weight": 0}.
            fpam: residual (reference run script, --use_bn) or plain F-PAM.
            companions: unguided companion samples that also train F-PAM (1 = reference, 0 = faster).
            fpam_width: base width of F-PAM and both discriminators (default 64 = reference, or ldrps.json).
            decoder: decoder inside the guidance: full VAE (reference) or TAESD (fast).
            taesd: TAESD source (folder or hub id); default the taesd_bf16 asset.
            perceptual: use the VGG16 relu2_2 perceptual terms (false drops them; recorded in the config).
            vgg_weights: VGG16 state-dict file; default the declared vgg16-397923af.pth asset.
            size: working resolution (default 512 = reference, or ldrps.json; a multiple of the VAE factor).
            force_256: reference protocol: always return 256x256 (the input must be 256x256).
            truncate_8bit: reference quantisation: truncate to 8 bit (astype uint8) before the resize.
            input_8bit: resize the input as the reference's 8-bit file (round, PIL Lanczos).
            x0_quirk: reference x0 for the loss, recomputed from the already updated latent.
            carry_optimizers: reference carry-over of Adam states and F-PAM skip scale across images.
            timestep_spacing: leading (reference, 899..1) or trailing (999..).
            dtype: UNet/VAE precision (half precision only on CUDA; bf16 also on CPU); guidance in fp32.
            gradient_checkpointing: checkpoint the decoder's activations in the guidance backward.
            seed: fixed seed for every image (int or 'preset'); default the runner's per-image seed.
            record: folder for per-image trajectories (latents, losses, initial state).
            inject: recorded trajectory file or folder whose initial state replaces the random draws.
            profile: CUDA-synchronise every component for the per-step breakdown (slower).
            max_new_tokens: captioner answer length.
        """
        super().__init__()
        if sum(x is not None for x in (prompt, prompts_file, captioner)) > 1:
            raise ValueError("LD-RPS: give at most one of prompt, prompts_file, captioner")
        if text is True and prompt is None and prompts_file is None and captioner is None:
            raise ValueError("LD-RPS: text=true needs a prompt source (prompt=..., prompts_file=... "
                             "or captioner=...)")
        self.model_id = model
        folder_defaults = _folder_defaults(model)
        steps = int(steps if steps is not None else folder_defaults.get("steps", 450))
        size = int(size if size is not None else folder_defaults.get("size", 512))
        fpam_width = int(fpam_width if fpam_width is not None else folder_defaults.get("fpam_width", 64))
        self.preset_name = preset
        base = PRESETS[preset].with_overrides(overrides)
        if guidance_step is not None:
            base = base.with_overrides({"guidance_step": float(guidance_step)})
        if recurrences is not None:
            base = base.with_overrides({"recurrences": int(recurrences)})
        self.preset: TaskPreset = base
        # the signature's Range/Literal hints are also checked here, so a bad value fails at
        # construction whichever way the restorer is built
        _check_range("recurrences", self.preset.recurrences, 0, 3)
        _check_range("steps", steps, 1, 1000)
        _check_range("strength", strength, 0.0, 1.0)
        _check_range("size", size, 8, 2048)
        _check_range("fpam_width", fpam_width, 1, 256)
        if companions not in (0, 1):
            raise ValueError(f"LD-RPS: companions must be 0 or 1, got {companions!r}")
        if isinstance(output_round, int) and output_round > self.preset.recurrences:
            raise ValueError(f"LD-RPS: output_round={output_round} but only rounds 0..."
                             f"{self.preset.recurrences} exist (recurrences={self.preset.recurrences})")
        has_source = prompt is not None or prompts_file is not None or captioner is not None
        self.use_text = has_source if text is None else bool(text)
        self.prompt, self.prompts_file, self.captioner_id = prompt, prompts_file, captioner
        self.output_round = output_round
        self.steps, self.strength, self.cfg_scale, self.t1 = steps, float(strength), float(cfg_scale), t1
        self.fpam_variant, self.companions, self.fpam_width = fpam, int(companions), fpam_width
        self.decoder_kind, self.taesd_source = decoder, taesd
        self.perceptual_on, self.vgg_weights = perceptual, vgg_weights
        self.size, self.force_256 = size, force_256
        self.truncate_8bit, self.input_8bit = truncate_8bit, input_8bit
        self.x0_quirk, self.carry_optimizers, self.spacing = x0_quirk, carry_optimizers, timestep_spacing
        self.dtype_name, self.gradient_checkpointing = dtype, gradient_checkpointing
        self.seed = self.preset.seed if seed == "preset" else seed
        self.record_dir = Path(record).expanduser() if record else None
        self.inject_path = Path(inject).expanduser() if inject else None
        self.profile, self.max_new_tokens = profile, max_new_tokens
        self._config.update(steps=steps, size=size, fpam_width=fpam_width)
        if folder_defaults:
            self._config["model_folder_defaults"] = folder_defaults
        self._config["resolved_preset"] = self.preset.as_dict()
        self._config["text_guidance"] = self.use_text
        self._config["perceptual_used"] = perceptual
        #: Initial state to use instead of random draws (see module docstring), or None.
        self.inject_state: dict[str, Any] | None = None
        #: (3,H,W) output of every round of the last image (index = round).
        self.round_outputs: list[torch.Tensor] = []
        self.last_stats: dict[str, Any] = {}
        self._prompts: dict[str, str] | None = None
        self._embedding_cache: dict[str, torch.Tensor] = {}
        self._loaded = False
        self._y_features: tuple[torch.Tensor, torch.Tensor] | None = None

    # Loading ------------------------------------------------------------------------------------
    @classmethod
    def weights_summary(cls) -> str:
        return "pretrained, zero-shot: Stable Diffusion 2.1 (hub or model=DIR), TAESD, VGG16 assets"

    def check_assets(self) -> None:
        check_model(self.model_id)
        if self.perceptual_on and self.vgg_weights is None and self._model_folder_vgg() is None:
            from harness.assets import fetch, offline
            from restorers.ldrps.losses import VGG16_FILE, vgg16_asset

            fetch(vgg16_asset().name, VGG16_FILE, download=not offline())
        if self.decoder_kind == "taesd" and self.taesd_source is None:
            from harness.assets import fetch, offline
            from restorers.ldrps.models import TAESD_ASSET

            fetch(TAESD_ASSET.name, "taesd_decoder.safetensors", download=not offline())
        if self.captioner_id is not None and self.use_text:
            Captioner(self.captioner_id, "").check()
        if self.prompts_file is not None:
            read_prompts(self.prompts_file)

    def _model_folder_vgg(self) -> Path | None:
        if not is_local(self.model_id):
            return None
        candidate = Path(self.model_id).expanduser() / MODEL_FOLDER_VGG
        return candidate if candidate.is_file() else None

    def _torch_dtype(self, device: torch.device) -> torch.dtype:
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.dtype_name]
        if dtype == torch.float16 and device.type != "cuda":
            raise ValueError("LD-RPS: dtype=fp16 needs CUDA (use fp32, or bf16 on the CPU)")
        return dtype

    def load(self, device: torch.device) -> None:
        parts = load_components(self.model_id)
        taesd = features = None
        records: list[dict[str, str]] = []
        if self.decoder_kind == "taesd":
            taesd, record = load_taesd(self.taesd_source, self.gradient_checkpointing)
            records.append(record)
        if self.perceptual_on:
            path = self.vgg_weights or self._model_folder_vgg()
            if path is not None and self.vgg_weights is None:
                log.warning("LD-RPS: using the perceptual weights shipped in the model folder: %s", path)
            features, record = load_vgg_features(path)
            records.append(record)
        self.attach(parts, device, features, taesd)
        self.weights = [{"file": self.model_id, "sha256": "", "uri": self.model_id
                         if not is_local(self.model_id) else str(Path(self.model_id).resolve())},
                        *records]
        self.captioner = None
        if self.use_text and self.captioner_id is not None:
            question = (COLORIZATION_QUESTION if self.preset.question == "colorization"
                        else RESTORATION_QUESTION)
            self.captioner = Captioner(self.captioner_id, question, self.max_new_tokens)
            self.captioner.load(device)
        if self.use_text and self.prompts_file is not None:
            self._prompts = read_prompts(self.prompts_file)

    def attach(self, parts: SDComponents, device: torch.device, perceptual: torch.nn.Module | None,
               taesd: torch.nn.Module | None = None) -> None:
        """Build the sampler around given networks: the SD components, the VGG16 relu2_2 features
        (None: no perceptual terms) and the TAESD decoder (for ``decoder=taesd``).

        ``load`` calls it with the loaded weights; ``benchmarks/ldrps_flops.py`` with SD2.1-base
        built on the ``meta`` device, so that the FLOP count runs this very code."""
        self.device = device
        dtype = self._torch_dtype(device)
        self.unet = parts.unet.to(device, dtype)
        self.vae = parts.vae.to(device, dtype)
        self.text_encoder = None if parts.text_encoder is None else parts.text_encoder.to(device)
        self.tokenizer = parts.tokenizer
        self.scheduler = parts.scheduler
        self.vae_factor = parts.vae_scale_factor
        if self.size % self.vae_factor:
            raise ValueError(f"LD-RPS: size={self.size} is not a multiple of the VAE factor "
                             f"{self.vae_factor}")
        self.latent_channels = int(self.unet.config.in_channels)
        self.final_decoder = VAEDecoder(self.vae)
        if self.decoder_kind == "taesd":
            if taesd is None:
                raise ValueError("LD-RPS: decoder=taesd needs the TAESD decoder")
            if self.vae_factor != 8:
                raise ValueError(f"LD-RPS: TAESD decodes 8x latents; this VAE's factor is {self.vae_factor}")
            self.guidance_decoder: torch.nn.Module = TAESDDecoder(taesd.to(device, dtype))
        else:
            if self.gradient_checkpointing:
                self.vae.enable_gradient_checkpointing()
            self.guidance_decoder = self.final_decoder
        self.perceptual = None if perceptual is None else VGGPerceptual(perceptual).to(device)
        preset = self.preset
        disc_lr = preset.fpam_disc_lr[0 if self.fpam_variant == "residual" else 1]
        self.fpam = FPAMTrainer(self.fpam_variant, preset.fpam_weights, disc_lr, self.perceptual,
                                clip_below=self.t1, width=self.fpam_width).to(device)
        self.guidance_gan = AdversarialTerm(PatchDiscriminator(width=self.fpam_width).to(device),
                                            preset.guidance_disc_lr)
        self.schedule = DDIMSchedule.from_scheduler(self.scheduler, self.steps, self.spacing)
        # The '' embedding is needed in every case (the UNet's context); the text encoder is kept
        # only when prompts will be encoded.
        self._uncond = encode_prompt(self.text_encoder, self.tokenizer, "", device)
        if not self.use_text:
            self.text_encoder = None
        self._loaded = True

    def modules(self) -> list[torch.nn.Module]:
        out = [m for m in (getattr(self, "unet", None), getattr(self, "vae", None),
                           getattr(self, "text_encoder", None)) if m is not None]
        if getattr(self, "decoder_kind", "vae") == "taesd" and hasattr(self, "guidance_decoder"):
            out.append(self.guidance_decoder)
        if hasattr(self, "fpam"):
            out += [self.fpam.net, self.fpam.adversarial.disc, self.guidance_gan.disc]
        return out

    # Text ---------------------------------------------------------------------------------------
    def _prompt_for(self, image: torch.Tensor, meta: dict[str, Any]) -> str:
        if not self.use_text:
            return ""
        if self.prompt is not None:
            return self.prompt.strip()
        if self._prompts is not None:
            sample_id = str(meta.get("sample_id") or Path(str(meta.get("lq_path", ""))).stem)
            if sample_id not in self._prompts:
                raise KeyError(f"LD-RPS: no prompt for sample {sample_id!r} in {self.prompts_file}")
            return self._prompts[sample_id]
        assert self.captioner is not None
        return self.captioner(image)

    def _embeddings(self, prompt: str) -> torch.Tensor | None:
        """(1, L, D) CLIP embedding of ``prompt``; None for an empty prompt (CFG skipped: with an
        empty negative prompt the two branches are identical)."""
        if not prompt:
            return None
        if prompt not in self._embedding_cache:
            self._embedding_cache[prompt] = encode_prompt(self.text_encoder, self.tokenizer, prompt,
                                                          self.device)
        return self._embedding_cache[prompt]

    # Randomness and injected state ----------------------------------------------------------------
    def _generator(self, meta: dict[str, Any]) -> torch.Generator:
        if self.seed is not None:
            return torch.Generator().manual_seed(int(self.seed))
        if isinstance(meta.get("generator"), torch.Generator):
            return meta["generator"]
        return torch.Generator().manual_seed(int(meta.get("seed", self.preset.seed)))

    def _injected(self, meta: dict[str, Any]) -> dict[str, Any] | None:
        if self.inject_state is not None:
            return self.inject_state
        if self.inject_path is None:
            return None
        path = self.inject_path
        if path.is_dir():
            path = path / f"{_sample_name(meta)}.pt"
        state = load_torch_file(path, what="LD-RPS injected state (inject=)")
        if not isinstance(state, dict) or not isinstance(state.get("init"), dict):
            raise ValueError(f"LD-RPS: inject={path} holds no 'init' state; give a file written "
                             f"by record=DIR (or a dict with an 'init' dict)")
        return state["init"]

    def _reset_networks(self, generator: torch.Generator, injected: dict[str, Any] | None) -> None:
        """Per image: Kaiming re-initialisation of F-PAM, D_f, D_g (or the injected weights);
        new optimisers and κ = 1 unless ``carry_optimizers`` (the reference's carry-over)."""
        nets = {"fpam": self.fpam.net, "d_f": self.fpam.adversarial.disc, "d_g": self.guidance_gan.disc}
        for name, net in nets.items():
            if injected is not None and name in injected:
                net.load_state_dict(injected[name])
            else:
                kept = net.skip_scale.detach().clone() if hasattr(net, "skip_scale") else None
                kaiming_init(net, generator)
                if kept is not None and self.carry_optimizers:
                    with torch.no_grad():
                        net.skip_scale.copy_(kept)
        if not self.carry_optimizers:
            if injected is None or "fpam" not in injected:
                self.fpam.net.reset_skip_scale()
            self.fpam.reset_optimizer()
            self.guidance_gan.reset_optimizer()

    # Inference ----------------------------------------------------------------------------------
    def warm_up(self, lq: torch.Tensor, meta: dict[str, Any]) -> None:
        """Cheap warm-up (``warmup = "custom"``): one UNet call and one decoder forward+backward at
        the working size — the CUDA kernels a real step needs — instead of a full restoration."""
        if not self._loaded:
            return
        h = self.size // self.vae_factor
        z = torch.zeros(1 + self.companions, self.latent_channels, h, h, device=self.device)
        with torch.no_grad():
            self._eps(z, self.schedule.timesteps[0], None)
        with torch.enable_grad():
            x_in = z[:1].clone().requires_grad_(True)
            self.guidance_decoder(x_in).mean().backward()

    def _eps(self, z: torch.Tensor, t: int, cond: torch.Tensor | None) -> torch.Tensor:
        """ε̂ for all samples in one UNet call: batch [z; z] against [uncond; cond] with CFG, or z
        against uncond when the prompt is empty."""
        dtype = next(self.unet.parameters()).dtype
        uncond = self._uncond
        n = z.shape[0]
        if cond is None:
            inputs, context = z, uncond.expand(n, -1, -1)
        else:
            inputs = torch.cat([z, z])
            context = torch.cat([uncond.expand(n, -1, -1), cond.expand(n, -1, -1)])
        timestep = torch.tensor(t, device=z.device)
        out = self.unet(inputs.to(dtype), timestep, encoder_hidden_states=context.to(dtype),
                        return_dict=False)[0].float()
        if cond is None:
            return out
        e_u, e_c = out.chunk(2)
        return e_u + self.cfg_scale * (e_c - e_u)

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        if not self._loaded:
            raise RuntimeError("LD-RPS: call load(device) first")
        outs = [self._restore_one(lq[i], meta) for i in range(lq.shape[0])]
        return torch.stack(outs).to(lq.device)

    def _restore_one(self, image: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        start = CLOCK()
        height, width = image.shape[-2:]
        if self.force_256 and (height, width) != (256, 256):
            raise ValueError(f"LD-RPS force_256: the reference protocol returns 256x256, but the input "
                             f"is {height}x{width}; use it with the 256x256 (TAO) tasks only")
        device = self.device
        generator = self._generator(meta)
        injected = self._injected(meta)
        y = lanczos_resize(image, (self.size, self.size), self.input_8bit)[None].to(device)
        prompt = self._prompt_for(image, meta)
        cond = self._embeddings(prompt)
        n = 1 + self.companions
        h = self.size // self.vae_factor
        shape = (n, self.latent_channels, h, h)
        recorder: dict[str, Any] | None = {"init": {}, "rounds": [], "steps": []} if self.record_dir else None

        self._reset_networks(generator, injected)
        if recorder is not None:
            recorder["init"].update({k: {p: v.detach().cpu().clone() for p, v in net.state_dict().items()}
                                     for k, net in (("fpam", self.fpam.net),
                                                    ("d_f", self.fpam.adversarial.disc),
                                                    ("d_g", self.guidance_gan.disc))})
        if injected is not None and "latents" in injected:
            z = injected["latents"].to(device=device, dtype=torch.float32)
        else:
            z = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
        if recorder is not None:
            recorder["init"]["latents"] = z.cpu().clone()
            recorder["init"]["renoise"] = []

        timer = _Timer(device, self.profile)
        step_times: list[float] = []
        grid = self.schedule.timesteps
        first = recurrence_start(len(grid), self.strength)
        self.round_outputs = []
        for round_index in range(self.preset.recurrences + 1):
            timesteps = grid
            if round_index > 0:
                timesteps = grid[first:]
                if not timesteps:
                    raise ValueError(f"LD-RPS: strength={self.strength} leaves no recurrent steps")
                draws = injected.get("renoise") if injected is not None else None
                if draws is not None and len(draws) >= round_index:
                    noise = draws[round_index - 1].to(device=device, dtype=torch.float32)
                else:
                    noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
                if recorder is not None:
                    recorder["init"]["renoise"].append(noise.cpu().clone())
                z = self.schedule.add_noise(z, noise, timesteps[0])
            if recorder is not None:
                recorder["rounds"].append({"round": round_index, "t_start": timesteps[0],
                                           "z_start": z.detach().cpu().clone()})
            z = self._pass(z, timesteps, y, cond, round_index, timer, step_times, recorder)
            with torch.no_grad():
                x = self.final_decoder(z[:1]).clamp(0, 1)[0]
            self.round_outputs.append(self._finish(x, (height, width)))

        index = self.preset.recurrences if self.output_round == "last" else int(self.output_round)
        self.last_stats = {"image_s": CLOCK() - start, "steps": len(step_times),
                           "step_s": step_times, "breakdown_s": dict(timer.totals),
                           "prompt": prompt,
                           "output_round": index}
        meta["ldrps_stats"] = self.last_stats
        if recorder is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            torch.save(recorder, self.record_dir / f"{_sample_name(meta)}.pt")
        return self.round_outputs[index]

    def _finish(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Decoded (3,S,S) in [0,1] → the returned image: input size (or 256² with force_256)."""
        target = (256, 256) if self.force_256 else size
        if self.truncate_8bit:  # the reference: (x·255).astype(uint8), then 8-bit PIL Lanczos
            u8 = np.floor(x.float().cpu().numpy() * 255).astype(np.uint8).transpose(1, 2, 0)
            if u8.shape[:2] != target:
                u8 = np.asarray(Image.fromarray(u8).resize((target[1], target[0]), Image.LANCZOS))
            return torch.from_numpy(u8.astype(np.float32).transpose(2, 0, 1) / 255.0)
        return lanczos_resize(x, target, eight_bit=False)

    def _pass(self, z: torch.Tensor, timesteps: list[int], y: torch.Tensor, cond: torch.Tensor | None,
              round_index: int, timer: _Timer, step_times: list[float],
              recorder: dict[str, Any] | None) -> torch.Tensor:
        """One guided DDIM pass over ``timesteps`` (spec §2.3)."""
        schedule = self.schedule
        for t in timesteps:
            step_start = CLOCK()
            with torch.no_grad():
                with timer("unet"):
                    eps = self._eps(z, t, cond)
                z_next, x0 = schedule.step(z, eps, t)
                if self.x0_quirk:  # the reference calls step() again on the updated latent
                    x0 = schedule.predict_x0(z_next, eps, t)
            gradient, losses = self._guide(x0, y, t, timer)
            if gradient is not None:
                z_next = z_next + gradient
            z = z_next
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            step_times.append(CLOCK() - step_start)
            if recorder is not None:
                recorder["steps"].append({"round": round_index, "t": t, "z": z.detach().cpu().clone(),
                                          "x0": x0.detach().cpu().clone(), "losses": losses})
        return z

    def _guide(self, x0: torch.Tensor, y: torch.Tensor, t: int,
               timer: _Timer) -> tuple[torch.Tensor | None, dict[str, float]]:
        """F-PAM step and, for t < t₁, the gradient −∇_{x̂₀}(s·L_t) (spec §2.4)."""
        preset = self.preset
        active = t < self.t1 and preset.guidance_step > 0
        ys = y.expand(x0.shape[0], -1, -1, -1)
        with timer("decode"):
            x_in = None
            if active:
                with torch.enable_grad():
                    x_in = x0[:1].detach().requires_grad_(True)
                    x_guided = self.guidance_decoder(x_in)
            with torch.no_grad():
                rest = x0 if not active else x0[1:]
                x_rest = self.guidance_decoder(rest) if rest.shape[0] else None
            if active:
                x = x_guided if x_rest is None else torch.cat([x_guided, x_rest])
            else:
                x = x_rest
        with timer("fpam"):
            losses = self.fpam.train_step(x, ys, t)
        if not active:
            return None, losses
        with timer("losses"), torch.enable_grad():
            x_tilde = self._fpam_guided(x)
            total = self._loss_terms(x, x_tilde, y, t, losses, adversarial=True)
            (grad,) = torch.autograd.grad(-preset.guidance_step * total, x_in)
        gradient = torch.zeros_like(x0)
        gradient[:1] = grad.float()
        return gradient, losses

    def _fpam_guided(self, x: torch.Tensor) -> torch.Tensor:
        """F(x) for all samples, with a graph for the guided sample 0 only: the gradient w.r.t.
        x̂₀ never reaches the companions, so their F-PAM backward (the reference runs it, 0.2
        TFLOP per step at 512²) is skipped. F-PAM is per-sample (convolutions, no batch
        statistics), so the values are those of one batch-2 call."""
        guided = self.fpam(x[:1])
        if x.shape[0] == 1:
            return guided
        with torch.no_grad():
            rest = self.fpam(x[1:])
        return torch.cat([guided, rest])

    def _loss_terms(self, x: torch.Tensor, x_tilde: torch.Tensor, y: torch.Tensor, t: int,
                    losses: dict[str, float], adversarial: bool) -> torch.Tensor:
        """L_t on sample 0 (t < t₁): MSE and P between F(x)₀ and y, the residual GAN (one D_g step;
        its real set is x − F(x) of all samples), and for t < t_q the quality losses on x₀."""
        preset = self.preset
        total = preset.guidance_mse * F.mse_loss(x_tilde[:1], y)
        losses["mse"] = float(total.detach())
        if preset.guidance_perceptual and self.perceptual is not None:
            if self._y_features is None or self._y_features[0] is not y:  # y is fixed per image
                with torch.no_grad():
                    self._y_features = (y, self.perceptual.features_of(y))
            pse = preset.guidance_perceptual * self.perceptual(x_tilde[:1], y, self._y_features[1])
            losses["pse"] = float(pse.detach())
            total = total + pse
        if preset.guidance_adv and adversarial:
            adv = preset.guidance_adv * self.guidance_gan(x[:1] - y, (x - x_tilde).detach())
            losses["adv"] = float(adv.detach())
            total = total + adv
        if t < preset.quality_below:
            if preset.exposure_weight:
                exp = preset.exposure_weight * exposure_loss(x[:1], preset.exposure_patch)
                losses["exp"] = float(exp.detach())
                total = total + exp
            if preset.colour_weight:
                col = preset.colour_weight * colour_loss(x[:1])
                losses["col"] = float(col.detach())
                total = total + col
        losses["guidance"] = float(total.detach())
        return total

    def guidance_loss(self, x0: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        """L_t(x̂₀) with the current F-PAM, without training anything (the adversarial term, whose
        evaluation is a D_g update, is left out): for tests and diagnostics."""
        x = self.guidance_decoder(x0)
        return self._loss_terms(x, self.fpam(x), y, t, {}, adversarial=False)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"LD-RPS: {name} must be in [{low}, {high}], got {value!r}")


def _folder_defaults(model: str) -> dict[str, int]:
    """``steps``/``size``/``fpam_width`` defaults a model folder declares in ``ldrps.json`` (the tiny
    test pipeline does, so that ``ldrps[model=TINY]`` runs in seconds on a CPU); explicit options
    win, and the values used are in the logged config."""
    import json

    if not is_local(model):
        return {}
    file = Path(model).expanduser() / MODEL_FOLDER_DEFAULTS
    if not file.is_file():
        return {}
    data = json.loads(file.read_text())
    unknown = sorted(set(data) - {"steps", "size", "fpam_width"})
    if unknown:
        raise ValueError(f"{file}: unknown keys {unknown} (allowed: steps, size, fpam_width)")
    return {k: int(v) for k, v in data.items()}


def _sample_name(meta: dict[str, Any]) -> str:
    """The file name of an image's recorded or injected state (the harness's one slugifier)."""
    name = meta.get("sample_id") or Path(str(meta.get("lq_path", "") or "image")).stem or "image"
    return safe_name(str(name))
