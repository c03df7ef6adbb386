"""Loading the latent diffusion model, the decoders, the text prompt and the captioner.

Everything goes through the libraries' own ``from_pretrained`` (unpatched diffusers and
transformers), from a Hugging Face hub id or a local folder in the diffusers layout
(``unet/ vae/ text_encoder/ tokenizer/ scheduler/``, as ``save_pretrained`` or
``huggingface-cli download <id> --local-dir DIR`` writes it). Offline (``HF_HUB_OFFLINE=1`` or
``BENCH_OFFLINE=1``) only local files are used; a missing component raises
:class:`ModelMissingError` naming what is missing and how to provide it. Nothing falls back to
random weights.

Only one UNet is loaded (the reference loads two identical pipelines).

TAESD (``decoder=taesd``): diffusers' ``AutoencoderTiny`` decoder, filled from the declared asset
``taesd_bf16`` (the original-format ``taesd_decoder.safetensors``, bf16; key ``N.*`` of the
original ``nn.Sequential`` is diffusers' ``layers.{N-1}.*`` because diffusers moves the input
clamp out of the sequence), or from a diffusers ``AutoencoderTiny`` folder / hub id
(``madebyollin/taesd``) given with the ``taesd`` option.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.assets import Asset, AssetFile, AssetMissingError, fetch, offline, register_asset

SD21_BASE = "stabilityai/stable-diffusion-2-1-base"
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

_TAESD_COMMIT = "9360bbca8af3fcc01b4f23ed494d127f609442ab"
TAESD_ASSET = register_asset(Asset(
    name="taesd_bf16",
    files=(
        AssetFile("taesd_decoder.safetensors",
                  "d903e7cc3ae58f21d985a3498a841fa8b230edccff7ac5d27607b0c557945c6f",
                  f"https://raw.githubusercontent.com/joshellis625/ComfyUI/{_TAESD_COMMIT}/"
                  "models/vae_approx/taesd_decoder.safetensors", size=2450590),
    ),
    description="TAESD tiny decoder for the SD1.x/2.x latent space (bf16 re-encoding of "
                "madebyollin/taesd; LD-RPS fast guidance decoder)",
    licence="MIT (madebyollin/taesd)",
    homepage="https://github.com/madebyollin/taesd"))


class ModelMissingError(AssetMissingError):
    """The diffusion model, a component of it, or the captioner cannot be loaded offline."""


def _hub_hint(model: str) -> str:
    return (f"Provide it: online it is downloaded from the Hugging Face hub on first use (unset "
            f"HF_HUB_OFFLINE/BENCH_OFFLINE); offline, run `huggingface-cli download {model} "
            f"--local-dir DIR` on a machine with internet access, copy DIR over and pass "
            f"-r 'ldrps[model=DIR]' (DIR holds {', '.join(c + '/' for c in COMPONENTS)}).")


def is_local(model: str) -> bool:
    """A path (existing, or written like one) rather than a hub id ``owner/name``."""
    return Path(model).expanduser().exists() or model.startswith(("/", ".", "~")) or os.sep * 2 in model


def check_model(model: str, text: bool = True) -> None:
    """Raise :class:`ModelMissingError` now if :func:`load_components` would, building nothing."""
    needed = [c for c in COMPONENTS if text or c not in ("text_encoder", "tokenizer")]
    if is_local(model):
        root = Path(model).expanduser()
        if not root.is_dir():
            raise ModelMissingError(f"LD-RPS: the diffusion-model folder {root} does not exist. "
                                    + _hub_hint(SD21_BASE))
        missing = [c for c in needed if not (root / c).is_dir()]
        if missing:
            raise ModelMissingError(f"LD-RPS: the diffusion-model folder {root} lacks "
                                    f"{', '.join(m + '/' for m in missing)}. " + _hub_hint(SD21_BASE))
        return
    if not offline():
        return  # from_pretrained downloads what is missing
    from huggingface_hub import try_to_load_from_cache

    name = {"unet": "config.json", "vae": "config.json", "text_encoder": "config.json",
            "tokenizer": "tokenizer_config.json", "scheduler": "scheduler_config.json"}
    missing = [c for c in needed if not isinstance(try_to_load_from_cache(model, f"{c}/{name[c]}"), str)]
    if missing:
        raise ModelMissingError(f"LD-RPS: the diffusion model {model!r} is not in the Hugging Face "
                                f"cache (missing {', '.join(missing)}) and downloads are disabled. "
                                + _hub_hint(model))


def _load(cls: Any, model: str, subfolder: str, **kwargs: Any) -> Any:
    local = is_local(model)
    source = str(Path(model).expanduser()) if local else model
    try:
        return cls.from_pretrained(source, subfolder=subfolder, local_files_only=local or offline(),
                                   **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelMissingError(f"LD-RPS: cannot load {subfolder}/ of the diffusion model "
                                f"{model!r} ({type(exc).__name__}: {str(exc)[:300]}). "
                                + _hub_hint(SD21_BASE if local else model)) from exc


@dataclass
class SDComponents:
    """The parts of a Stable-Diffusion checkpoint LD-RPS uses (one UNet)."""

    unet: nn.Module
    vae: nn.Module
    scheduler: Any  # diffusers DDIMScheduler: schedule constants only
    text_encoder: nn.Module | None
    tokenizer: Any | None

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def load_components(model: str, text: bool = True) -> SDComponents:
    """UNet, VAE, DDIM schedule constants and (when ``text``) the CLIP text encoder/tokenizer."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    check_model(model, text)
    unet = _load(UNet2DConditionModel, model, "unet")
    vae = _load(AutoencoderKL, model, "vae")
    scheduler = _load(DDIMScheduler, model, "scheduler")
    encoder = tokenizer = None
    if text:
        from transformers import AutoTokenizer, CLIPTextModel

        encoder = _load(CLIPTextModel, model, "text_encoder")
        tokenizer = _load(AutoTokenizer, model, "tokenizer")
    if scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise ValueError(f"LD-RPS needs an epsilon-prediction model; {model!r} predicts "
                         f"{scheduler.config.prediction_type!r}")
    return SDComponents(unet.eval().requires_grad_(False), vae.eval().requires_grad_(False),
                        scheduler, None if encoder is None else encoder.eval().requires_grad_(False),
                        tokenizer)


@torch.no_grad()
def encode_prompt(encoder: nn.Module, tokenizer: Any, prompt: str, device: torch.device) -> torch.Tensor:
    """CLIP last hidden state of ``prompt`` padded/truncated to the tokenizer's max length
    (diffusers' ``_encode_prompt``, clip_skip None): (1, L, D)."""
    tokens = tokenizer([prompt], padding="max_length", max_length=tokenizer.model_max_length,
                       truncation=True, return_tensors="pt")
    kwargs = {}
    if getattr(encoder.config, "use_attention_mask", False):
        kwargs["attention_mask"] = tokens.attention_mask.to(device)
    return encoder(tokens.input_ids.to(device), **kwargs)[0]


# Decoders -----------------------------------------------------------------------------------------
class VAEDecoder(nn.Module):
    """x = (VAE.decode(z / scaling_factor) + 1)/2, unclamped (the reference's guidance decode)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        self.scaling = float(vae.config.scaling_factor)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vae.parameters()).dtype
        out = self.vae.decode(z.to(dtype) / self.scaling, return_dict=False)[0]
        return (out.float() + 1) / 2


class TAESDDecoder(nn.Module):
    """TAESD decoder on UNet-scale latents (its scale factor is 1): x ≈ (decoder(z) + 1)/2."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        dtype = next(self.decoder.parameters()).dtype
        return (self.decoder(z.to(dtype)).float() + 1) / 2


def load_taesd(source: str | None = None,
               gradient_checkpointing: bool = False) -> tuple[nn.Module, dict[str, str]]:
    """The TAESD decoder: from the ``taesd_bf16`` asset (``source`` None), a folder holding the
    original ``taesd_decoder.safetensors``, or a diffusers AutoencoderTiny folder / hub id."""
    from diffusers import AutoencoderTiny

    if source is None or Path(source).expanduser().joinpath("taesd_decoder.safetensors").is_file():
        from safetensors.torch import load_file

        if source is None:
            file = fetch(TAESD_ASSET.name, "taesd_decoder.safetensors")
            record = {"file": file.name, "sha256": TAESD_ASSET.files[0].sha256,
                      "uri": TAESD_ASSET.files[0].url}
        else:
            from harness.assets import sha256_of

            file = Path(source).expanduser() / "taesd_decoder.safetensors"
            record = {"file": str(file), "sha256": sha256_of(file), "uri": str(file)}
        raw = load_file(str(file))
        tiny = AutoencoderTiny()
        state = {}
        for key, value in raw.items():
            index, _, rest = key.partition(".")
            state[f"layers.{int(index) - 1}.{rest}"] = value.float()
        tiny.decoder.load_state_dict(state, strict=True)
    else:
        tiny = _load(AutoencoderTiny, source, "")
        record = {"file": source, "sha256": "", "uri": source}
    if gradient_checkpointing:  # switched on through the parent ModelMixin
        tiny.enable_gradient_checkpointing()
    return tiny.decoder.eval().requires_grad_(False), record


# Prompts ------------------------------------------------------------------------------------------
#: ``get_prompts.py`` (HEAD) question for restoration tasks, verbatim after the ``<image>`` tag
#: (the run of spaces is the reference's backslash line continuation).
RESTORATION_QUESTION = (
    "This is a low-quality image. Please briefly describe what the content should look like under "
    "normal and high-quality condition. Please reply with words or phrases, not exceeding 20 words."
    "     Please emphasize the main subject in the description and try to include details such as "
    "color and orientation.")
#: The colorization variant (``get_prompts.py`` at 093e5f5).
COLORIZATION_QUESTION = (
    "Please briefly describe what the content should look like under colorful condition. Please "
    "reply with words or phrases, not exceeding 20 words.     Please emphasize the main subject in "
    "the description and try to include details such as color and orientation.")


def read_prompts(path: str | Path) -> dict[str, str]:
    """id → prompt from a JSON object, a TSV (``id<TAB>prompt``) or a folder of ``<id>.txt``
    (the reference's ``prompt/`` layout); prompts are ``.strip()``-ed as the reference does."""
    import json

    path = Path(path).expanduser()
    if path.is_dir():
        return {p.stem: p.read_text(encoding="utf-8").strip() for p in sorted(path.glob("*.txt"))}
    if not path.is_file():
        raise FileNotFoundError(f"LD-RPS: prompts file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object id -> prompt")
        return {str(k): str(v).strip() for k, v in data.items()}
    out = {}
    for line in text.splitlines():
        if line.strip():
            key, sep, prompt = line.partition("\t")
            if not sep:
                raise ValueError(f"{path}: line {line[:40]!r} is not 'id<TAB>prompt'")
            out[key.strip()] = prompt.strip()
    return out


class Captioner:
    """An image-text-to-text model (transformers id or folder) asked the reference question.

    The reference uses InternVL-Chat-V1-5 (26B) with sampling and no seed; here generation is
    greedy (``do_sample=False``) so that a run is reproducible — a documented deviation."""

    def __init__(self, model: str, question: str, max_new_tokens: int = 64):
        self.model_id, self.question, self.max_new_tokens = model, question, max_new_tokens
        self.processor: Any = None
        self.model: Any = None

    def check(self) -> None:
        if is_local(self.model_id):
            if not Path(self.model_id).expanduser().is_dir():
                raise ModelMissingError(f"LD-RPS: captioner folder {self.model_id} does not exist; "
                                        f"pass captioner=<transformers id or folder>, a prompt or "
                                        f"prompts_file")
        elif offline():
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(self.model_id, "config.json"), str):
                raise ModelMissingError(
                    f"LD-RPS: captioner {self.model_id!r} is not in the Hugging Face cache and "
                    f"downloads are disabled; download it on a machine with internet access "
                    f"(`huggingface-cli download {self.model_id} --local-dir DIR`) and pass "
                    f"captioner=DIR, or give prompt=... / prompts_file=...")

    def load(self, device: torch.device) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.check()
        local = is_local(self.model_id)
        source = str(Path(self.model_id).expanduser()) if local else self.model_id
        try:
            self.processor = AutoProcessor.from_pretrained(source, local_files_only=local or offline())
            self.model = AutoModelForImageTextToText.from_pretrained(
                source, local_files_only=local or offline()).to(device).eval()
        except (OSError, ValueError) as exc:
            raise ModelMissingError(f"LD-RPS: cannot load captioner {self.model_id!r} "
                                    f"({type(exc).__name__}: {str(exc)[:300]})") from exc

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> str:
        """Prompt for a (3,H,W) [0,1] image."""
        from PIL import Image

        array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        pil = Image.fromarray(array)
        messages = [{"role": "user", "content": [{"type": "image", "image": pil},
                                                 {"type": "text", "text": self.question}]}]
        inputs = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True, return_tensors="pt")
        inputs = inputs.to(self.model.device)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new, skip_special_tokens=True)[0].strip()
