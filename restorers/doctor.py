"""``bench doctor`` checks of the restorers' weights that live outside restorebench's asset
cache: LD-RPS's Stable Diffusion 2.1 and its optional captioner (an MLLM), both in the Hugging
Face cache. Cheap: a cache lookup, no model load, no download, no diffusers import."""

from __future__ import annotations

from harness.api.checks import Check, register_check

SD21_BASE = "stabilityai/stable-diffusion-2-1-base"  # restorers.ldrps.models.SD21_BASE
#: the captioner of the LD-RPS reference (get_prompts.py); ours takes any image-text-to-text id
REFERENCE_CAPTIONER = "OpenGVLab/InternVL-Chat-V1-5"


def _in_hf_cache(repo_id: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return found if isinstance(found, str) else None


@register_check("ldrps")
def ldrps_checks() -> list[Check]:
    sd = _in_hf_cache(SD21_BASE, "model_index.json")
    mllm = _in_hf_cache(REFERENCE_CAPTIONER, "config.json")
    download = "huggingface-cli download {} --local-dir DIR (online; copy DIR over when air-gapped)"
    return [
        Check("weights", "Stable Diffusion 2.1 base (ldrps)", sd is not None,
              sd or f"{SD21_BASE} not in the Hugging Face cache (downloaded on first use when online)",
              "" if sd else download.format(SD21_BASE) + ", then -r 'ldrps[model=DIR]'"),
        Check("weights", "MLLM captioner (ldrps captioner=)", mllm is not None,
              mllm or f"{REFERENCE_CAPTIONER} (the reference's) not cached; optional: prompt= or "
                      "prompts_file= need none",
              "" if mllm else download.format(REFERENCE_CAPTIONER) + ", then captioner=DIR"),
    ]
