"""Write a tiny, randomly initialised SD-like pipeline folder (for tests, benchmarks, smoke runs).

The folder has the diffusers layout LD-RPS loads (``unet/ vae/ text_encoder/ tokenizer/
scheduler/``), written by the libraries' own ``save_pretrained`` from random-initialised
``UNet2DConditionModel``, ``AutoencoderKL`` (8× like SD, so TAESD also fits), ``CLIPTextModel``
and a CLIP BPE tokenizer built from a hand-made vocabulary. The scheduler is SD2.1-base's PNDM
config (leading spacing, offset 1, scaled-linear β). It also holds
``perceptual/vgg16_relu2_2.pth``: **random** VGG16 relu2_2 weights, so that the perceptual terms
run offline; ``TINY_RANDOM.txt`` says so. ``ldrps.json`` sets small defaults (64² images, 20
steps, F-PAM width 8) that options given explicitly override. The outputs are meaningless; the
algorithm and its costs per pixel are the same as with real weights.

    python -m restorers.ldrps.tiny_pipeline OUT_DIR [--seed 0]
    bench run -r 'ldrps[model=OUT_DIR]' -t lolv1-tao256 --limit 2 --no-tracking
"""

from __future__ import annotations

import argparse
import json
import string
from pathlib import Path

import torch

#: Scheduler config of stabilityai/stable-diffusion-2-1-base (a PNDM config; no timestep_spacing).
SD21_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                  "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "epsilon",
                  "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
                  "trained_betas": None}


def _write_tokenizer(folder: Path, max_length: int) -> None:
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(string.ascii_lowercase + string.digits + ".,!?'-")
    vocab = ["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols),
             "th", "the</w>", "lo", "low</w>", "li", "light</w>"]
    merges = ["#version: 0.2", "t h", "th e</w>", "l o", "lo w</w>", "l i", "li g", "lig h", "ligh t</w>"]
    vocab += ["lig", "ligh"]
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                              model_max_length=max_length, pad_token="<|endoftext|>")
    tokenizer.save_pretrained(str(folder))


def write_tiny_pipeline(out_dir: str | Path, seed: int = 0, context_length: int = 16,
                        unet_channels: tuple[int, int] = (16, 32),
                        vae_channels: tuple[int, int, int, int] = (8, 8, 16, 16),
                        defaults: dict[str, int] | None = None) -> Path:
    """Write the tiny pipeline to ``out_dir`` and return it.

    ``unet_channels`` / ``vae_channels`` set the widths (the benchmark uses wider ones so that the
    decoder's share of a step is closer to SD's); ``defaults`` is written to ``ldrps.json``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel

    from restorers.ldrps.losses import vgg16_relu2_2

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    _write_tokenizer(out / "tokenizer", context_length)
    tokenizer = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    text_config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                                 num_hidden_layers=2, num_attention_heads=4,
                                 max_position_embeddings=context_length,
                                 bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=32)
    CLIPTextModel(text_config).save_pretrained(str(out / "text_encoder"))
    UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=tuple(unet_channels), norm_num_groups=8, cross_attention_dim=32,
        attention_head_dim=4, use_linear_projection=True,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    ).save_pretrained(str(out / "unet"))
    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
        block_out_channels=tuple(vae_channels), sample_size=64, scaling_factor=0.18215,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ).save_pretrained(str(out / "vae"))
    # written as SD2.1-base ships it: a PNDM config that also carries DDIM keys (clip_sample)
    (out / "scheduler").mkdir(exist_ok=True)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "PNDMScheduler", "_diffusers_version": "0.8.0", **SD21_SCHEDULER}, indent=1))
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"]},
        indent=1))
    (out / "perceptual").mkdir(exist_ok=True)
    features = vgg16_relu2_2()
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()},
               out / "perceptual" / "vgg16_relu2_2.pth")
    # small defaults so that `ldrps[model=OUT_DIR]` runs in seconds on a CPU (explicit options win)
    (out / "ldrps.json").write_text(json.dumps(defaults or {"size": 64, "steps": 20, "fpam_width": 8}))
    (out / "TINY_RANDOM.txt").write_text(
        "Random-initialised tiny SD-like pipeline written by restorers.ldrps.tiny_pipeline "
        f"(seed {seed}); perceptual/vgg16_relu2_2.pth is RANDOM too. For tests and timing only.\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_tiny_pipeline(args.out_dir, args.seed))


if __name__ == "__main__":
    main()
