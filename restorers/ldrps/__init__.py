"""LD-RPS (ICCV 2025): zero-shot recurrent posterior sampling with a latent diffusion model.

Files, in the order of the method: ``sampler`` (DDIM with the clip-only thresholding and the
leading grid), ``models`` (SD components, decoders, prompts), ``fpam`` (F-PAM and the patch
GANs), ``losses``, ``presets`` (per-task hyperparameters), ``restorer`` (the guided loop and the
recurrence; see its docstring for options and parity hooks), ``tiny_pipeline`` (a random tiny
SD-like folder for tests). Importing this package imports no diffusers/transformers model code.
"""
