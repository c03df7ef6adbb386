"""``benchmarks/ldrps_flops.py``: the FLOP count of LD-RPS at SD2.1-base scale on the meta device.

Checks the counting itself (per-network attribution adds up to what FlopCounterMode counts; the
per-step × schedule composition equals counting our ``_restore_one`` as one run) and the
savings it reports against the authors' order, on a 4-step grid (about 30 s of CPU).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

_FILE = Path(__file__).resolve().parents[1] / "benchmarks" / "ldrps_flops.py"
_SPEC = importlib.util.spec_from_file_location("ldrps_flops", _FILE)
flops = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(flops)

TERA = 1e12


@pytest.fixture(scope="module")
def networks():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield flops.sd21_on_meta()
    torch.set_num_threads(threads)


def test_attribution_matches_flop_counter_mode(networks):
    from torch.utils.flop_counter import FlopCounterMode

    from restorers.ldrps.models import VAEDecoder

    parts, _, _ = networks
    decoder = VAEDecoder(parts.vae)

    def decode_and_differentiate():
        x = torch.zeros(2, 4, 64, 64, device="meta", requires_grad=True)
        torch.autograd.grad(decoder(x * 1).sum(), x)  # x * 1: FlopCounterMode can't hook a leaf

    with FlopCounterMode(display=False) as reference:
        decode_and_differentiate()
    with flops.counting({"VAE decoder": decoder, "UNet": parts.unet}) as ours:
        decode_and_differentiate()
    assert dict(ours.by_network) == {"VAE decoder": reference.get_total_flops()}
    assert 9.5 * TERA < reference.get_total_flops() < 10.5 * TERA  # SD's decoder, 512², batch 2


def test_ours_composes_and_saves_against_the_authors(networks):
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    ours = flops.build_ours("lowlight", networks, steps=4)  # grid 751, 501, 251, 1 (+ 251, 1 twice)
    schedule = flops.schedule_counts(ours)
    assert schedule == {"warm-up": 1, "guided": 4, "guided+quality": 3}
    counted = flops.count_ours(ours, image)
    composed = flops.per_image(counted, schedule)
    whole = flops.count_whole(flops.build_ours("lowlight", networks, steps=4), image)
    assert composed == whole  # per-step counts × schedule = the whole run

    authors = flops.count_authors(flops.build_ours("lowlight", networks, steps=4))
    ours_step, authors_step = counted[0]["guided"], authors[0]["guided"]
    assert ours_step["UNet"] == authors_step["UNet"]  # one call of batch 4 = two of batch 2
    assert "VAE encoder" in authors_step and "VAE encoder" not in ours_step
    # F-PAM: the companion's backward in the guidance (0.196 TFLOP at 512²) is not run
    assert authors_step["F-PAM"] - ours_step["F-PAM"] == pytest.approx(0.196 * TERA, rel=0.01)
    # VGG: no backward through F-PAM's target half (0.098) and y's features once per image
    assert authors_step["VGG16"] - ours_step["VGG16"] == pytest.approx(0.197 * TERA, rel=0.01)
    # decoder: the authors differentiate both samples, ours the guided one
    assert authors_step["VAE decoder"] - ours_step["VAE decoder"] == pytest.approx(
        authors_step["VAE decoder"] / 4, rel=0.01)
