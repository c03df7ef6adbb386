"""LD-RPS per-step time: our sampler against a faithful reference-order loop, on CPU.

Both loops run the same networks (a small random SD-like pipeline written by
``restorers.ldrps.tiny_pipeline``, with wider VAE/UNet than the test one so that the decoder's
share of a step is closer to SD2.1's), from the same injected initial state (latents,
re-noising draws, F-PAM/D_f/D_g weights), so their outputs must agree; the script prints the
largest difference. The reference order (``lowlight_pipeline.py``) is:

* two UNet calls per step, one per sample, each with the CFG pair [z_b, z_b] (CFG even for an
  empty prompt);
* both samples decoded with a graph; F-PAM's output re-encoded with the VAE encoder (``learned_lq``,
  never used); the backward pass at every step, also for t ≥ t₁ where the loss is ``mse·0``.

Ours: one UNet call of batch 4 (2 when the prompt is empty), the companion decoded without a
graph, no encode, no backward for t ≥ t₁. Reported: per-step milliseconds by component (UNet,
decoder forward+backward, F-PAM step, losses incl. backward, encode), seconds per image and the
ratio reference/ours (CPU time by default: wall time is meaningless on a shared machine);
then the same with the TAESD decoder (``decoder=taesd``, not equal output),
and with ``companions=0``.

    PYTHONPATH=$PWD BENCH_WEIGHTS_DIR=../shared/weights python benchmarks/ldrps_step.py \\
        [--size 64] [--steps 20] [--recurrences 1] [--preset lowlight] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import restorers.ldrps.restorer as ldrps_restorer
from restorers.ldrps.restorer import LDRPS, lanczos_resize
from restorers.ldrps.sampler import recurrence_start
from restorers.ldrps.tiny_pipeline import write_tiny_pipeline

CPU = torch.device("cpu")


def reference_order(r: LDRPS, image: torch.Tensor, init: dict[str, Any],
                    prompt: str) -> tuple[torch.Tensor, dict[str, float], int]:
    """One image in the reference's order and with its redundant work; same maths as ours."""
    times: dict[str, float] = {}

    def timed(name: str, fn):
        start = ldrps_restorer.CLOCK()
        out = fn()
        times[name] = times.get(name, 0.0) + ldrps_restorer.CLOCK() - start
        return out

    y = lanczos_resize(image, (r.size, r.size), r.input_8bit)[None].to(image.device)
    ys = y.expand(2, -1, -1, -1)
    uncond = r._uncond
    cond = r._embeddings(prompt)
    context = torch.cat([uncond, uncond if cond is None else cond])  # CFG even for ''
    r._reset_networks(torch.Generator().manual_seed(0), init)
    z = init["latents"].clone()
    grid = r.schedule.timesteps
    first = recurrence_start(len(grid), r.strength)
    vae = r.vae
    steps = 0
    for round_index in range(r.preset.recurrences + 1):
        timesteps = grid
        if round_index:
            timesteps = grid[first:]
            z = r.schedule.add_noise(z, init["renoise"][round_index - 1], timesteps[0])
        for t in timesteps:
            steps += 1
            new, x0s = [], []
            for b in range(2):  # two UNet calls of batch 2
                with torch.no_grad():
                    pair = torch.cat([z[b:b + 1]] * 2)
                    out = timed("unet", lambda pair=pair, t=t: r.unet(pair, torch.tensor(t),
                                                                  encoder_hidden_states=context,
                                                                  return_dict=False)[0])
                    e_u, e_c = out.chunk(2)
                    eps = e_u + r.cfg_scale * (e_c - e_u)
                    z_b, _ = r.schedule.step(z[b:b + 1], eps, t)
                    new.append(z_b)
                    x0s.append(r.schedule.predict_x0(z_b, eps, t))  # step() called again
            with torch.enable_grad():
                x_in = torch.cat(x0s).detach().requires_grad_(True)
                x = timed("decode", lambda x_in=x_in: r.guidance_decoder(x_in))
                timed("fpam", lambda x=x, t=t: r.fpam.train_step(x, ys, t))
                start = ldrps_restorer.CLOCK()
                x_tilde = r.fpam(x)
                timed("encode", lambda xt=x_tilde: 0.18215 * vae.encode(xt * 2 - 1).latent_dist.mean)
                if t >= r.t1:
                    loss = F.mse_loss(x_tilde, ys) * 0.0
                else:
                    loss = r._loss_terms(x, x_tilde, y, t, {}, adversarial=True)
                (grad,) = torch.autograd.grad(-r.preset.guidance_step * loss, x_in)
                times["losses"] = times.get("losses", 0.0) + ldrps_restorer.CLOCK() - start
            z = torch.cat(new) + grad
    with torch.no_grad():
        x = r.final_decoder(z[:1]).clamp(0, 1)[0]
    return r._finish(x, tuple(image.shape[-2:])), times, steps


def ours(r: LDRPS, image: torch.Tensor, init: dict[str, Any] | None):
    r.inject_state = init
    start = ldrps_restorer.CLOCK()
    out = r.restore(image[None], {"seed": 0, "sample_id": "bench"})[0]
    return out, ldrps_restorer.CLOCK() - start, dict(r.last_stats["breakdown_s"]), r.last_stats["steps"]


def row(name: str, total: float, parts: dict[str, float], steps: int) -> str:
    cols = " ".join(f"{k}={1000 * v / steps:7.1f}" for k, v in sorted(parts.items()))
    return f"{name:<28} {total:7.2f} s/image  {1000 * total / steps:7.1f} ms/step  [{cols}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--recurrences", type=int, default=1)
    parser.add_argument("--preset", default="lowlight")
    parser.add_argument("--prompt", default="the low light")
    parser.add_argument("--fpam-width", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: process CPU time (robust on a shared machine with --threads 1)")
    parser.add_argument("--model", default=None, help="an SD folder instead of the benchmark pipeline")
    parser.add_argument("--perceptual", action="store_true",
                        help="keep the VGG terms (full-width VGG is ~16x over-weighted against the "
                             "quarter-width pipeline, so it is off by default)")
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings per loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        ldrps_restorer.CLOCK = time.process_time
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if os.environ.get("BENCH_WEIGHTS_DIR"):  # the TAESD asset, for the decoder=taesd row
        from harness.assets.cache import import_dir

        import_dir(Path(os.environ["BENCH_WEIGHTS_DIR"]) / "taesd_bf16")
    tmp = tempfile.TemporaryDirectory()
    # quarter of SD2.1's VAE widths (128, 256, 512, 512): per pixel 1/16 of its decoder FLOPs, like
    # F-PAM and the discriminators at width 16 (reference 64)
    model = args.model or str(write_tiny_pipeline(Path(tmp.name) / "bench", unet_channels=(32, 64),
                                                  vae_channels=(32, 64, 128, 128)))
    options = dict(model=model, size=args.size, steps=args.steps, recurrences=args.recurrences,
                   preset=args.preset, fpam_width=args.fpam_width, profile=True,
                   perceptual=args.perceptual,
                   overrides={"exposure_patch": min(32, args.size)}, record=str(Path(tmp.name) / "rec"))
    prompt = args.prompt if args.prompt else None
    image = torch.rand(3, args.size // 2 * 2, args.size, generator=torch.Generator().manual_seed(0)) * 0.5
    r = LDRPS(**options, prompt=prompt)
    r.load(CPU)
    ours(r, image, None)  # warm-up and the recorded initial state
    init = torch.load(Path(tmp.name) / "rec" / "bench.pt", weights_only=False)["init"]
    best_ours: tuple | None = None
    best_ref: tuple | None = None
    for _ in range(args.repeats):  # best of N: the machine is shared
        run = ours(r, image, init)
        best_ours = run if best_ours is None or run[1] < best_ours[1] else best_ours
        start = ldrps_restorer.CLOCK()
        out_ref, parts_ref, steps_ref = reference_order(r, image, init, prompt or "")
        t_ref = ldrps_restorer.CLOCK() - start
        best_ref = (out_ref, t_ref, parts_ref, steps_ref) if best_ref is None or t_ref < best_ref[1] \
            else best_ref
    out_ours, t_ours, parts_ours, steps = best_ours
    out_ref, t_ref, parts_ref, steps_ref = best_ref
    assert steps == steps_ref
    print(f"pipeline {model}  size {args.size}  steps {steps} per image  preset {args.preset}  "
          f"prompt {prompt!r}  perceptual {args.perceptual}  threads {args.threads}  "
          f"clock {args.clock}  best of {args.repeats}")
    print(row("reference order", t_ref, parts_ref, steps))
    print(row("ours (equal output)", t_ours, parts_ours, steps))
    print(f"  ratio {t_ref / t_ours:.2f}x   max |out_ref - out_ours| = "
          f"{(out_ref - out_ours).abs().max().item():.2e}")
    for label, extra in (("ours, decoder=taesd", {"decoder": "taesd"}),
                         ("ours, companions=0", {"companions": 0})):
        try:
            variant = LDRPS(**{**options, **extra, "record": None}, prompt=prompt)
            variant.load(CPU)
        except Exception as exc:  # e.g. the TAESD asset not imported
            print(f"{label:<28} skipped: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        ours(variant, image, init)
        _, t_var, parts_var, _ = min((ours(variant, image, init) for _ in range(args.repeats)),
                                     key=lambda run: run[1])
        print(row(label, t_var, parts_var, steps) + f"   ratio {t_ref / t_var:.2f}x (not equal output)")


if __name__ == "__main__":
    main()
