"""LD-RPS FLOPs per image at SD2.1-base scale: the authors' order of operations against ours.

Nothing is loaded and nothing is computed: SD2.1-base's UNet and VAE (diffusers
``UNet2DConditionModel`` / ``AutoencoderKL``), its CLIP text encoder, VGG16 relu2_2, F-PAM, the
discriminators and TAESD are built from their configs on the ``meta`` device, and
:class:`NetworkFlops` counts matrix multiplications, convolutions, attention and their backward
passes from shapes with ``torch.utils.flop_counter``'s formulas, as ``FlopCounterMode`` does (the
totals agree), filing each under one network. Elementwise work, the Adam updates and the
quantile clipping are not counted; they are negligible. 1 TFLOP = 1e12 floating-point operations
(a multiply-add is 2).

* **Ours** is our real code: ``LDRPS.attach`` receives the meta networks and
  ``LDRPS._restore_one`` restores a 256² image. Meta tensors have no values, so reading a scalar
  gives 0.0 and a copy to the CPU gives zeros (:class:`MetaValues`); the only branch on a value,
  F-PAM's ``dynamic_clip``, multiplies a scalar either way.
* **The authors' order** is :func:`authors_step` / :func:`authors_extras`: the order of
  operations of AMAP-ML/LD-RPS ``instruct_all_in_one/lowlight_pipeline.py`` (LL, HEAD a5539a6)
  and ``utils.py`` (U), re-expressed on the same networks (line numbers in the code). The
  per-task switches (guidance terms on or off, recurrences) are each preset's; DH's and DN's
  debug decodes of every step (DH:73-81, 169-177; DN:165-169) are left out, which favours
  the authors.
* **Schedule.** The cost of a step depends only on its class: warm-up (t ≥ t₁: F-PAM trains, no
  guidance), guided (t < t₁) and guided with the quality losses (t < the preset's
  ``quality_below``). The authors' order is counted on one step of each class plus the work
  outside the steps (the unused VAE encode of the input, the batch-2 decode after every
  recurrent round). Ours is one whole ``_restore_one`` run on a grid holding the first two
  timesteps of each class, every step counted on its own; a class costs what its last step
  cost, and the rest of the run (the final decode of every round; the observation's VGG
  features, taken once per image) is per-image work. Per image = Σ class cost × its number of
  steps in the 450-step grid (first pass 899…1, recurrent passes 449…1) + per-image work;
  ``--steps 20 --check`` compares that composition with ours counted as one whole run.
* The text encoder is not counted (≈ 0.05 TFLOP per 77-token prompt, in both orders).

Output: per preset, TFLOP per image of the authors' order, ours (equal output) and ours with
``decoder=taesd`` (faster, not equal output), the ratios, and the split by network (per image
and per guided step). About 35 s of CPU per preset (one thread).

    PYTHONPATH=$PWD python benchmarks/ldrps_flops.py [--preset lowlight ...] [--steps 450] [--check]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from restorers.ldrps.losses import colour_loss, exposure_loss, vgg16_relu2_2
from restorers.ldrps.models import SDComponents
from restorers.ldrps.presets import PRESETS
from restorers.ldrps.restorer import LDRPS
from restorers.ldrps.sampler import recurrence_start
from restorers.ldrps.tiny_pipeline import SD21_SCHEDULER

META = torch.device("meta")
TERA = 1e12
PROMPT = "a photo"  # presets with text guidance get a prompt, as LL reads one per image

#: stabilityai/stable-diffusion-2-1-base ``unet/config.json`` (diffusers layout; keys that only
#: restate diffusers' defaults omitted).
SD21_UNET: dict[str, Any] = {
    "act_fn": "silu", "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "DownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": False, "flip_sin_to_cos": True, "freq_shift": 0,
    "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05,
    "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "use_linear_projection": True}
#: stabilityai/stable-diffusion-2-1-base ``vae/config.json``.
SD21_VAE: dict[str, Any] = {
    "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 768,
    "scaling_factor": 0.18215, "up_block_types": ["UpDecoderBlock2D"] * 4}
#: stabilityai/stable-diffusion-2-1-base ``text_encoder/config.json`` (OpenCLIP ViT-H text tower).
SD21_TEXT: dict[str, Any] = {
    "hidden_act": "gelu", "hidden_size": 1024, "intermediate_size": 4096,
    "max_position_embeddings": 77, "num_attention_heads": 16, "num_hidden_layers": 23,
    "projection_dim": 512, "vocab_size": 49408}
# TAESD: diffusers' AutoencoderTiny() defaults are madebyollin/taesd's config.


class MetaValues(TorchDispatchMode):
    """Meta tensors hold no values: a scalar read gives 0.0 and a copy off the meta device gives
    zeros, so that code which logs a loss or resizes its output runs unchanged."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        source = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if source is not None and source.device.type == "meta":
            if func is torch.ops.aten._local_scalar_dense.default:
                return 0.0
            device = kwargs.get("device")
            if func is torch.ops.aten._to_copy.default and device is not None and device.type != "meta":
                return torch.zeros(source.shape, dtype=kwargs.get("dtype") or source.dtype,
                                   device=device)
        return func(*args, **kwargs)


class _Tokens:
    """Stand-in CLIP tokenizer: 77 token ids (their values do not change a FLOP)."""

    model_max_length = 77

    def __call__(self, texts: list[str], **_: Any) -> SimpleNamespace:
        ids = torch.zeros(len(texts), self.model_max_length, dtype=torch.long)
        return SimpleNamespace(input_ids=ids, attention_mask=torch.ones_like(ids))


class VAEEncode(nn.Module):
    """LL:40-47 ``get_latent_space``: 0.18215·VAE.encode(img).latent_dist.mean."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return 0.18215 * self.vae.encode(image).latent_dist.mean


def sd21_on_meta() -> tuple[SDComponents, nn.Module, nn.Module]:
    """SD2.1-base (UNet, VAE, text encoder), VGG16 relu2_2 and the TAESD decoder on ``meta``."""
    from diffusers import AutoencoderKL, AutoencoderTiny, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device(META):
        unet = UNet2DConditionModel(**SD21_UNET)
        vae = AutoencoderKL(**SD21_VAE)
        text = CLIPTextModel(CLIPTextConfig(**SD21_TEXT))
        vgg = vgg16_relu2_2()
        taesd = AutoencoderTiny().decoder
    parts = SDComponents(unet.eval().requires_grad_(False), vae.eval().requires_grad_(False),
                         DDIMScheduler.from_config(SD21_SCHEDULER), text.eval().requires_grad_(False),
                         _Tokens())
    return parts, vgg.eval().requires_grad_(False), taesd.eval().requires_grad_(False)


def build_ours(preset: str, networks: tuple[SDComponents, nn.Module, nn.Module], steps: int,
               decoder: str = "vae") -> LDRPS:
    parts, vgg, taesd = networks
    restorer = LDRPS(preset=preset, prompt=PROMPT if PRESETS[preset].text else None, steps=steps,
                     decoder=decoder, seed=0)
    restorer.attach(parts, META, vgg, taesd if decoder == "taesd" else None)
    if restorer.use_text:  # the prompt's embedding, as the text encoder gives it (not counted)
        restorer._embeddings(PROMPT)
    return restorer


# Counting by network ----------------------------------------------------------------------------
def _sequence_number() -> int:
    """The autograd sequence number the next graph node will get (a throw-away node's + 1)."""
    node = (torch.empty(0, requires_grad=True) * 1).grad_fn
    return node._sequence_nr() + 1


class NetworkFlops(TorchDispatchMode):
    """Counts FLOPs with ``torch.utils.flop_counter``'s formulas and files every counted operation
    under exactly one network.

    It is FlopCounterMode's dispatch (formulas from ``flop_registry``, decomposition of the
    operators it has no formula for) without its module tracker, which files a backward operation
    under every module whose backward it believes active (a tensor used by two modules, like
    F-PAM's output feeding VGG and D_f, keeps one "active" during the other's backward, so the
    per-module sums exceed the total) and which fails on a no-grad view of a tensor that requires
    grad. Here a forward operation belongs to the network whose forward runs (the networks are
    never nested), and a backward operation to the network whose forward created the graph node
    being differentiated (autograd sequence numbers are handed out in creation order, so each
    forward call owns a range of them)."""

    def __init__(self, networks: dict[str, nn.Module]):
        super().__init__()
        self.by_network: Counter[str] = Counter()
        self._active: list[str] = []
        self._ranges: list[tuple[int, int, str]] = []
        self._hooks = []
        for name, module in networks.items():
            self._hooks.append(module.register_forward_pre_hook(self._enter(name)))
            self._hooks.append(module.register_forward_hook(self._leave(name)))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        formula = flop_registry.get(func._overloadpacket)
        if formula is None:
            with self:
                out = func.decompose(*args, **kwargs)
            return func(*args, **kwargs) if out is NotImplemented else out
        out = func(*args, **kwargs)
        self.by_network[self._owner()] += formula(*args, **kwargs, out_val=out)
        return out

    def _enter(self, name: str):
        def hook(module: nn.Module, args: Any) -> None:
            self._active.append(name)
            self._ranges.append((_sequence_number() if torch.is_grad_enabled() else -1, -1, name))
        return hook

    def _leave(self, name: str):
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            start, _, _ = self._ranges.pop()
            if start >= 0:
                self._ranges.insert(0, (start, _sequence_number(), name))
            self._active.pop()
        return hook

    def _owner(self) -> str:
        node = torch._C._current_autograd_node()
        if node is None:
            return self._active[-1] if self._active else "outside the networks"
        number = node._sequence_nr()
        for start, end, name in self._ranges:
            if start <= number < end:
                return name
        return f"outside the networks ({node.name()})"

    def close(self) -> None:
        """Remove the hooks; raise if an operation ran outside the named networks."""
        for hook in self._hooks:
            hook.remove()
        if set(self.by_network) - set(NETWORKS):
            raise RuntimeError(f"FLOPs outside the named networks: {dict(self.by_network)}")


@contextmanager
def counting(networks: dict[str, nn.Module]) -> Iterator[NetworkFlops]:
    """``with counting(networks) as c:`` runs the body on meta values with a :class:`NetworkFlops`
    (whose own ``__exit__`` also runs after every inner decomposition, so it cannot clean up)."""
    counter = NetworkFlops(networks)
    try:
        with MetaValues(), counter:
            yield counter
    finally:
        counter.close()


def networks_of(r: LDRPS, encode: nn.Module) -> dict[str, nn.Module]:
    """The networks every counted operation runs in (``encode`` is the authors' unused one)."""
    out = {"UNet": r.unet, "VAE decoder": r.final_decoder, "VAE encoder": encode,
           "VGG16": r.perceptual.features, "F-PAM": r.fpam.net, "D_f": r.fpam.adversarial.disc,
           "D_g": r.guidance_gan.disc}
    if r.decoder_kind == "taesd":
        out["TAESD decoder"] = r.guidance_decoder
    return out


# The authors' order -----------------------------------------------------------------------------
def _authors_gan(disc: nn.Module, optimizer: torch.optim.Optimizer, fake: torch.Tensor,
                 real: torch.Tensor) -> torch.Tensor:
    """U:116-125 ``GANLoss.forward``: one D step on cat(fake, real).detach(), then BCE(D(fake), 1)
    with D's parameters still requiring grad."""
    disc.train()
    optimizer.zero_grad()
    logits = disc(torch.cat((fake, real)).detach())
    n = fake.shape[0]
    (F.binary_cross_entropy(logits[:n], torch.zeros_like(logits[:n]))
     + F.binary_cross_entropy(logits[n:], torch.ones_like(logits[n:]))).backward()
    optimizer.step()
    disc.eval()
    prob = disc(fake)
    return F.binary_cross_entropy(prob, torch.ones_like(prob))


def _authors_fpam(r: LDRPS, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """U:181-202 ``GenerativeDegradation_res.forward`` (TRAIN): one F-PAM step whose VGG loss is
    one call on cat(out, x) (U:88-92), then F(x) in eval mode with a graph, batch 2."""
    net, trainer = r.fpam.net, r.fpam
    net.train()
    trainer.optimizer.zero_grad()
    out = net(x.detach())
    mse = ((out - x.detach()) ** 2).mean() * trainer.w_mse
    pse = r.perceptual(out, x.detach()) * trainer.w_pse
    adv = _authors_gan(trainer.adversarial.disc, trainer.adversarial.optimizer, out, y.detach())
    (mse + pse + adv * trainer.w_adv).backward()
    trainer.optimizer.step()
    net.eval()
    return net(x)


def authors_step(r: LDRPS, z: torch.Tensor, t: int, context: torch.Tensor, y: torch.Tensor,
                 encode: VAEEncode) -> torch.Tensor:
    """One step of LL ``training`` (LL:131-166) with ``general_cond_fn`` (LL:63-108)."""
    preset, schedule = r.preset, r.schedule
    moved, x0s = [], []
    for b in range(2):  # LL:138-161: one UNet call of batch 2 (the CFG pair) per sample
        with torch.no_grad():
            pair = torch.cat([z[b:b + 1]] * 2)
            e_u, e_c = r.unet(pair, t, encoder_hidden_states=context, return_dict=False)[0].chunk(2)
            eps = e_u + r.cfg_scale * (e_c - e_u)
            z_b, _ = schedule.step(z[b:b + 1], eps, t)
            moved.append(z_b)
            x0s.append(schedule.predict_x0(z_b, eps, t))  # LL:160: step() again, on the new z
    with torch.enable_grad():
        x_in = torch.cat(x0s).detach().requires_grad_(True)  # LL:65
        x_hq = r.guidance_decoder(x_in)  # LL:66-67, batch 2 with a graph
        x_lq = _authors_fpam(r, x_hq, y)  # LL:71
        encode(x_lq * 2 - 1)  # LL:72-73 ``learned_lq``: never used
        if t >= r.t1:  # LL:86: mse·0 over both samples, differentiated all the same
            loss = ((x_lq - y) ** 2).mean() * 0.0
        else:  # LL:88-94 (the weights are the preset's; 0 = the term is commented out)
            loss = preset.guidance_mse * ((x_lq[:1] - y[:1]) ** 2).mean()
            if preset.guidance_perceptual:
                loss = loss + preset.guidance_perceptual * r.perceptual(x_lq[:1], y[:1])
            if preset.guidance_adv:
                loss = loss + preset.guidance_adv * _authors_gan(
                    r.guidance_gan.disc, r.guidance_gan.optimizer, (x_hq - y)[:1],
                    (x_hq - x_lq).detach())
            if t < preset.quality_below:
                if preset.exposure_weight:
                    loss = loss + preset.exposure_weight * exposure_loss(x_hq[:1], preset.exposure_patch)
                if preset.colour_weight:
                    loss = loss + preset.colour_weight * colour_loss(x_hq[:1])
        (grad,) = torch.autograd.grad(-preset.guidance_step * loss, x_in)  # LL:96, 105
    return torch.cat(moved) + grad  # LL:121-129


def authors_extras(r: LDRPS, y: torch.Tensor, encode: VAEEncode) -> None:
    """Per image outside the steps: LL:242 encodes the input (batch 2, never used); after every
    recurrent round LL:277-279 decodes both samples (``decode_latents``)."""
    with torch.no_grad():
        encode(y * 2 - 1)
        latents = torch.zeros(2, r.latent_channels, r.size // 8, r.size // 8, device=META)
        for _ in range(r.preset.recurrences):
            r.final_decoder(latents)


# The schedule -----------------------------------------------------------------------------------
def step_class(r: LDRPS, t: int) -> str:
    if t >= r.t1:
        return "warm-up"
    return "guided+quality" if t < r.preset.quality_below else "guided"


def schedule_counts(r: LDRPS) -> dict[str, int]:
    """Number of steps of each class in one image: the first pass and every recurrent pass."""
    grid = r.schedule.timesteps
    recurrent = grid[recurrence_start(len(grid), r.strength):]
    counts: Counter[str] = Counter()
    for t in grid + recurrent * r.preset.recurrences:
        counts[step_class(r, t)] += 1
    return dict(counts)


def representatives(r: LDRPS, per_class: int = 1) -> list[int]:
    """The first ``per_class`` timesteps of each class in the grid, in grid order."""
    seen: Counter[str] = Counter()
    out = []
    for t in r.schedule.timesteps:
        name = step_class(r, t)
        if seen[name] < per_class:
            seen[name] += 1
            out.append(t)
    return out


# Counting ---------------------------------------------------------------------------------------
Count = tuple[dict[str, Counter[str]], Counter[str]]  # per-step by class, per-image extras


def count_ours(r: LDRPS, image: torch.Tensor) -> Count:
    """``_restore_one`` on a grid of the first two timesteps of each class; ``_pass`` is called one
    timestep at a time (the same loop body) so that every step is counted on its own.

    A class costs what its last counted step cost; what the first step of a class costs more
    (the observation's VGG features, computed once per image at the first guided step) goes to
    the per-image work with the final decodes: per-image work = whole run − Σ steps × their
    class's cost."""
    full_grid = r.schedule.timesteps
    r.schedule.timesteps = representatives(r, per_class=2)
    steps: list[tuple[str, Counter[str]]] = []
    one_pass = r._pass

    def stepwise(z: torch.Tensor, timesteps: list[int], *rest: Any) -> torch.Tensor:
        for t in timesteps:
            before = Counter(counter.by_network)
            z = one_pass(z, [t], *rest)
            steps.append((step_class(r, t), counter.by_network - before))
        return z

    r._pass = stepwise
    try:
        with counting(networks_of(r, VAEEncode(r.vae))) as counter:
            r._restore_one(image, {"seed": 0})
    finally:
        del r._pass
        r.schedule.timesteps = full_grid
    per_class = dict(steps)  # the last step of each class
    extras = Counter(counter.by_network)
    for name, _ in steps:
        extras.subtract(per_class[name])
    if any(flops < 0 for flops in extras.values()):
        raise RuntimeError(f"a step costs less than the last of its class: {extras}")
    return per_class, +extras


def count_whole(r: LDRPS, image: torch.Tensor) -> Counter[str]:
    """``_restore_one`` over the full grid, counted as one (``--check``: slow at 450 steps)."""
    with counting(networks_of(r, VAEEncode(r.vae))) as counter:
        r._restore_one(image, {"seed": 0})
    return counter.by_network


def count_authors(r: LDRPS) -> Count:
    """:func:`authors_step` once per step class and :func:`authors_extras`, on ``r``'s networks."""
    y = torch.zeros(2, 3, r.size, r.size, device=META)  # LL:241: the input, twice
    cond = r._embedding_cache.get(PROMPT) if r.use_text else None
    context = torch.cat([r._uncond, r._uncond if cond is None else cond])  # LL:249, CFG even for ''
    encode = VAEEncode(r.vae)
    r._reset_networks(torch.Generator().manual_seed(0), None)
    latents = torch.zeros(2, r.latent_channels, r.size // 8, r.size // 8, device=META)
    per_class: dict[str, Counter[str]] = {}
    for t in representatives(r):
        with counting(networks_of(r, encode)) as counter:
            authors_step(r, latents, t, context, y, encode)
        per_class[step_class(r, t)] = counter.by_network
    with counting(networks_of(r, encode)) as counter:
        authors_extras(r, y, encode)
    return per_class, counter.by_network


def per_image(count: Count, schedule: dict[str, int]) -> Counter[str]:
    per_class, extras = count
    total = Counter(extras)
    for name, n in schedule.items():
        for network, flops in per_class[name].items():
            total[network] += n * flops
    return total


# Report -----------------------------------------------------------------------------------------
NETWORKS = ("UNet", "VAE decoder", "VAE encoder", "TAESD decoder", "VGG16", "F-PAM", "D_f", "D_g")


def report(preset: str, schedule: dict[str, int], counts: dict[str, Count]) -> tuple[float, ...]:
    images = {name: per_image(count, schedule) for name, count in counts.items()}
    totals = {name: sum(image.values()) / TERA for name, image in images.items()}
    steps = "  ".join(f"{k} {v}" for k, v in schedule.items())
    print(f"\n== {preset}   steps per image: {steps}")
    print(f"{'TFLOP per image':<16}" + "".join(f"{name:>16}" for name in counts)
          + f"{'guided step:':>16}" + "".join(f"{name:>16}" for name in counts))
    for network in NETWORKS:
        if not any(image[network] for image in images.values()):
            continue
        step = [count[0].get("guided", count[0]["guided+quality"])[network] / TERA
                for count in counts.values()]
        print(f"{network:<16}" + "".join(f"{image[network] / TERA:16.1f}" for image in images.values())
              + f"{'':>16}" + "".join(f"{s:16.3f}" for s in step))
    print(f"{'total':<16}" + "".join(f"{v:16.1f}" for v in totals.values()))
    authors = totals["authors"]
    return authors, totals["ours"], authors / totals["ours"], totals["ours taesd"], \
        authors / totals["ours taesd"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS),
                        help="repeatable; default: every preset")
    parser.add_argument("--steps", type=int, default=450, help="DDIM steps of the first pass")
    parser.add_argument("--check", action="store_true",
                        help="also count ours as one whole run over the full grid and compare "
                             "(use with small --steps, e.g. 20: about 1 s per step)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # diffusers' dtype notes on meta models
    torch.set_num_threads(1)
    networks = sd21_on_meta()
    image = torch.rand(3, 256, 256, generator=torch.Generator().manual_seed(0))  # a TAO 256² input
    rows = []
    for preset in args.preset or list(PRESETS):
        start = time.process_time()
        counts: dict[str, Count] = {}
        ours = build_ours(preset, networks, args.steps)
        schedule = schedule_counts(ours)
        counts["authors"] = count_authors(build_ours(preset, networks, args.steps))
        counts["ours"] = count_ours(ours, image)
        counts["ours taesd"] = count_ours(build_ours(preset, networks, args.steps, "taesd"), image)
        rows.append((preset, *report(preset, schedule, counts), time.process_time() - start))
        if args.check:
            whole = count_whole(build_ours(preset, networks, args.steps), image)
            composed = per_image(counts["ours"], schedule)
            print(f"check: ours as one run {sum(whole.values()) / TERA:.3f} TFLOP, per-step × "
                  f"schedule {sum(composed.values()) / TERA:.3f} TFLOP")
            if whole != composed:
                raise RuntimeError(f"{preset}: the whole run and the per-step composition differ")
    print(f"\nSD2.1-base, 512² working size, {args.steps} DDIM steps, TFLOP per image "
          f"(torch.utils.flop_counter formulas, meta device):")
    print(f"{'preset':<16}{'authors':>10}{'ours':>10}{'ratio':>8}{'ours taesd':>12}{'ratio':>8}"
          f"{'cpu s':>8}")
    for preset, authors, ours_total, ratio, taesd_total, taesd_ratio, seconds in rows:
        print(f"{preset:<16}{authors:10.0f}{ours_total:10.0f}{ratio:7.2f}x{taesd_total:12.0f}"
              f"{taesd_ratio:7.2f}x{seconds:8.0f}")


if __name__ == "__main__":
    main()
