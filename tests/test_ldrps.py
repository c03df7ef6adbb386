"""LD-RPS on a tiny random SD-like pipeline written by the libraries' own ``save_pretrained``.

The pipeline (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, a CLIP BPE tokenizer from a
hand-made vocabulary, SD2.1-base's scheduler config) is written once per session into a tmp
folder and loaded through the restorer's own loading path. Sizes are tiny (32² images, 4×4
latents, F-PAM width 8, a handful of DDIM steps) and torch runs single-threaded, which is far
faster than two threads on a shared two-core machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from harness.assets.cache import AssetMissingError, import_dir  # noqa: E402
from restorers.ldrps.models import ModelMissingError  # noqa: E402
from restorers.ldrps.restorer import LDRPS  # noqa: E402
from restorers.ldrps.sampler import (  # noqa: E402
    DDIMSchedule,
    clip_quantile,
    recurrence_start,
    timestep_grid,
)
from restorers.ldrps.tiny_pipeline import SD21_SCHEDULER, write_tiny_pipeline  # noqa: E402

CPU = torch.device("cpu")
TINY = dict(size=32, steps=8, fpam_width=8)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_pipeline(tmp_path_factory.mktemp("ldrps") / "tiny")


def _restorer(model: Path, **kwargs) -> LDRPS:
    options = {**TINY, "recurrences": 1, **kwargs}
    restorer = LDRPS(model=str(model), **options)
    restorer.load(CPU)
    return restorer


def _image(seed: int = 0, shape=(1, 3, 32, 32)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 0.4


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(SD21_SCHEDULER)


class TestSampler:
    def test_leading_grid_and_recurrence_start(self):
        grid = timestep_grid(450)
        assert grid[0] == 899 and grid[-1] == 1 and len(grid) == 450
        assert all(a - b == 2 for a, b in zip(grid, grid[1:], strict=False))
        scheduler = _scheduler()
        scheduler.set_timesteps(450)  # SD2.1's config has no timestep_spacing → leading
        assert grid == scheduler.timesteps.tolist()
        start = recurrence_start(450, 0.5)
        assert start == 225 and grid[start] == 449
        assert timestep_grid(450, spacing="trailing")[0] == 999

    def test_clip_is_clamp_without_division(self):
        x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 3
        x[0, 0, 0, 0] = 40.0
        s = torch.quantile(x.reshape(2, -1).abs(), 0.995, dim=1).clamp(1, 100)
        expected = torch.stack([x[i].clamp(-s[i], s[i]) for i in range(2)])
        assert torch.equal(clip_quantile(x), expected)
        small = torch.full((1, 4, 2, 2), 0.3)
        assert torch.equal(clip_quantile(small), small)  # s is clamped to >= 1

    def test_ddim_step_matches_formula_and_diffusers(self):
        scheduler = _scheduler()
        scheduler.set_timesteps(450)
        g = torch.Generator().manual_seed(1)
        z, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
        for threshold in (False, True):
            schedule = DDIMSchedule.from_scheduler(scheduler, 450, threshold=threshold)
            for t in (899, 449, 1):
                z_prev, x0 = schedule.step(z, eps, t)
                a_t = scheduler.alphas_cumprod[t]
                a_prev = scheduler.alphas_cumprod[t - 2] if t > 1 else scheduler.final_alpha_cumprod
                raw = (z - (1 - a_t).sqrt() * eps) / a_t.sqrt()
                x0_formula = clip_quantile(raw) if threshold else raw
                assert torch.allclose(x0, x0_formula, atol=1e-6)
                assert torch.allclose(z_prev, a_prev.sqrt() * x0_formula + (1 - a_prev).sqrt() * eps,
                                      atol=1e-5)
                if not threshold:  # where the maths agree, diffusers gives the same numbers
                    out = scheduler.step(eps, t, z)
                    assert torch.allclose(out.prev_sample, z_prev, atol=1e-6)
                    assert torch.allclose(out.pred_original_sample, x0, atol=1e-6)
        # upstream thresholding divides by s; the reference's patch does not
        from diffusers import DDIMScheduler

        patched = DDIMScheduler.from_config({**SD21_SCHEDULER, "thresholding": True,
                                             "sample_max_value": 100.0,
                                             "dynamic_thresholding_ratio": 0.995})
        patched.set_timesteps(450)
        raw = (z - (1 - patched.alphas_cumprod[899]).sqrt() * eps) / patched.alphas_cumprod[899].sqrt()
        s = torch.quantile(raw.reshape(2, -1).abs(), 0.995, dim=1).clamp(1, 100).view(2, 1, 1, 1)
        upstream = patched.step(eps, 899, z).pred_original_sample
        ours = DDIMSchedule.from_scheduler(patched, 450).predict_x0(z, eps, 899)
        assert torch.allclose(upstream * s, ours, atol=1e-5)
        assert schedule.final_alpha_cumprod == scheduler.alphas_cumprod[0]  # set_alpha_to_one=False


class TestRestorer:
    def test_output_size_recurrence_and_no_backward_above_t1(self, tiny_model, tmp_path):
        restorer = _restorer(tiny_model, preset="lowlight", prompt="the low light",
                             overrides={"exposure_patch": 8}, record=str(tmp_path))
        calls = []
        restorer.unet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
        lq = _image(0, (1, 3, 37, 53))
        out = restorer.restore(lq, {"seed": 5, "sample_id": "a"})
        assert out.shape == lq.shape and 0 <= out.min() and out.max() <= 1
        assert torch.isfinite(out).all()
        # both samples and both CFG branches in one UNet call per step
        assert calls == [4] * restorer.last_stats["steps"]
        record = torch.load(tmp_path / "a.pt", weights_only=False)
        grid = timestep_grid(8)  # ratio 125: 876, 751, …, 1
        assert [s["t"] for s in record["steps"]] == grid + grid[4:]
        start = record["rounds"][1]
        assert start["t_start"] == grid[recurrence_start(8, 0.5)] == 376
        z_end = record["steps"][len(grid) - 1]["z"]
        a = restorer.scheduler.alphas_cumprod[376]
        assert torch.allclose(start["z_start"],
                              a.sqrt() * z_end + (1 - a).sqrt() * record["init"]["renoise"][0], atol=1e-6)
        for step in record["steps"]:  # guidance (and its backward) only below t1
            assert ("guidance" in step["losses"]) == (step["t"] < 700)
            assert "fpam_mse" in step["losses"]  # F-PAM trains at every step
        assert len(restorer.round_outputs) == 2
        assert torch.equal(out[0], restorer.round_outputs[1])

    def test_guided_step_lowers_guidance_loss(self, tiny_model):
        restorer = _restorer(tiny_model, preset="denoise", guidance_step=1.0)
        g = torch.Generator().manual_seed(3)
        x0 = torch.randn(2, 4, 4, 4, generator=g)
        y = torch.rand(1, 3, 32, 32, generator=g)
        gradient, losses = restorer._guide(x0, y, 500, _timer())
        assert gradient is not None and torch.equal(gradient[1], torch.zeros_like(gradient[1]))
        with torch.no_grad():
            before = restorer.guidance_loss(x0[:1], y, 500)
            after = restorer.guidance_loss(x0[:1] + 0.5 * gradient[:1] / gradient.norm(), y, 500)
        assert after < before
        assert restorer._guide(x0, y, 800, _timer())[0] is None  # t >= t1: no guidance

    def test_skipped_backwards_keep_the_output(self, tiny_model, tmp_path):
        """The two backward passes ours skips leave the output unchanged; the full-batch calls the
        reference makes are patched back in and compared.

        * F-PAM's VGG loss with the target's features taken without a graph (no backward through
          the detached half): bit for bit.
        * F-PAM in the guidance with a graph for the guided sample only (its companion runs
          without one): equal to float32 reassociation. oneDNN picks a different convolution
          blocking for batch 1 and batch 2 (~3e-6 on F-PAM's output); running the unchanged code
          with 2 threads instead of 1 moves this output by the same ~3e-6."""
        options = dict(preset="lowlight", prompt="the low light", overrides={"exposure_patch": 8})

        def run(full_fpam: bool, cat_vgg: bool) -> torch.Tensor:
            restorer = _restorer(tiny_model, **options)
            if full_fpam:
                restorer._fpam_guided = restorer.fpam  # F-PAM on the whole batch with a graph
            if cat_vgg:
                calls = []
                restorer.perceptual.features.register_forward_hook(
                    lambda m, a, r: calls.append(a[0].shape[0]))
                restorer.fpam._perceptual = lambda o, x: restorer.perceptual(o, x)  # VGG(cat(o, x))
            out = restorer.restore(_image(6), {"seed": 3})
            assert not cat_vgg or 4 in calls  # the reference's concatenated VGG batch did run
            return out

        ours = run(False, False)
        assert torch.equal(run(False, True), ours)
        reference = run(True, True)
        assert torch.allclose(reference, ours, rtol=0, atol=1e-5)

    def test_fixed_seed_identical_and_no_state_leak(self, tiny_model):
        first = _restorer(tiny_model, recurrences=0)
        a = first.restore(_image(1), {"seed": 11})
        b = first.restore(_image(2), {"seed": 12})
        again = first.restore(_image(1), {"seed": 11})
        assert torch.equal(a, again)  # same seed → same output, after another image
        fresh = _restorer(tiny_model, recurrences=0)
        assert torch.equal(fresh.restore(_image(2), {"seed": 12}), b)  # no optimiser leak
        assert not torch.equal(fresh.restore(_image(1), {"seed": 13}), a)
        carry = _restorer(tiny_model, recurrences=0, carry_optimizers=True)
        carry.restore(_image(1), {"seed": 11})
        assert not torch.equal(carry.restore(_image(2), {"seed": 12}), b)  # the reference's leak

    def test_injected_state_reproduces_trajectory(self, tiny_model, tmp_path):
        recorded = _restorer(tiny_model, record=str(tmp_path / "rec"))
        out = recorded.restore(_image(4), {"seed": 21, "sample_id": "x"})
        replay = _restorer(tiny_model, record=str(tmp_path / "replay"),
                           inject=str(tmp_path / "rec" / "x.pt"))
        again = replay.restore(_image(4), {"seed": 99, "sample_id": "x"})
        assert torch.equal(out, again)
        ref = torch.load(tmp_path / "rec" / "x.pt", weights_only=False)["steps"]
        new = torch.load(tmp_path / "replay" / "x.pt", weights_only=False)["steps"]
        assert len(ref) == len(new) and all(
            torch.equal(p["z"], q["z"]) for p, q in zip(ref, new, strict=True))
        assert not torch.equal(_restorer(tiny_model).restore(_image(4), {"seed": 99}), out)

    def test_force_256_and_output_round(self, tiny_model):
        restorer = _restorer(tiny_model, recurrences=1, output_round=0, force_256=True,
                             truncate_8bit=True, steps=4, prompt="low", text=False)
        calls = []
        restorer.unet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
        out = restorer.restore(_image(0, (1, 3, 256, 256)), {"seed": 1})
        assert set(calls) == {2} and restorer.last_stats["prompt"] == ""  # text off: CFG skipped
        assert out.shape == (1, 3, 256, 256)
        assert torch.equal(out[0], restorer.round_outputs[0])
        assert torch.equal(torch.round(out * 255), out * 255)  # 8-bit levels
        with pytest.raises(ValueError, match="force_256"):
            restorer.restore(_image(0, (1, 3, 40, 40)), {"seed": 1})

    def test_taesd_decoder(self, tiny_model, weights_dir):
        import_dir(weights_dir / "taesd_bf16")
        restorer = _restorer(tiny_model, decoder="taesd", recurrences=0, steps=4, companions=0)
        out = restorer.restore(_image(0), {"seed": 1})
        assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
        assert any(w["file"] == "taesd_decoder.safetensors" for w in restorer.weights)


def test_prompt_sources(tmp_path):
    from restorers.ldrps.models import read_prompts

    (tmp_path / "p.json").write_text('{"1": " a dark room "}')
    (tmp_path / "p.tsv").write_text("1\ta dark room\n2\tsky\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "1.txt").write_text("a dark room\n")
    assert read_prompts(tmp_path / "p.json") == {"1": "a dark room"}
    assert read_prompts(tmp_path / "p.tsv") == {"1": "a dark room", "2": "sky"}
    assert read_prompts(tmp_path / "dir") == {"1": "a dark room"}
    with pytest.raises(ValueError, match="needs a prompt source"):
        LDRPS(text=True)
    with pytest.raises(ValueError, match=r"recurrences must be in \[0, 3\]"):
        LDRPS(recurrences=4)
    with pytest.raises(ValueError, match="output_round=2"):
        LDRPS(recurrences=1, output_round=2)


class TestOffline:
    def test_missing_model_folder_and_hub_id(self, tmp_path):
        with pytest.raises(ModelMissingError, match=r"does not exist.*ldrps\[model=DIR\]"):
            LDRPS(model=str(tmp_path / "nope")).check_assets()
        with pytest.raises(ModelMissingError, match="huggingface-cli download"):
            LDRPS(model="nobody/not-a-model").check_assets()
        with pytest.raises(ModelMissingError, match="lacks"):
            (tmp_path / "partial" / "unet").mkdir(parents=True)
            LDRPS(model=str(tmp_path / "partial")).check_assets()

    def test_missing_captioner(self, tiny_model, tmp_path):
        with pytest.raises(ModelMissingError, match="captioner folder"):
            LDRPS(model=str(tiny_model), captioner=str(tmp_path / "nocap"), **TINY).check_assets()
        with pytest.raises(ModelMissingError, match="captioner 'nobody/captioner'"):
            LDRPS(model=str(tiny_model), captioner="nobody/captioner", **TINY).check_assets()

    def test_missing_vgg_is_a_clear_error(self, tiny_model, tmp_path):
        folder = tmp_path / "novgg"
        shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("perceptual"))
        restorer = LDRPS(model=str(folder), **TINY)
        with pytest.raises(AssetMissingError, match="vgg16-397923af.pth"):
            restorer.check_assets()
        with pytest.raises(AssetMissingError, match="bench assets import"):
            restorer.load(CPU)
        plain = LDRPS(model=str(folder), perceptual=False, **TINY)
        plain.check_assets()
        plain.load(CPU)
        assert plain.perceptual is None and plain.config["perceptual_used"] is False


def _timer():
    from restorers.ldrps.restorer import _Timer

    return _Timer(CPU, False)


def test_cbsd68_colorize_task(with_data):
    from harness.api.task import build_task

    task = build_task("cbsd68-colorize")
    ids = task.sample_ids()
    assert len(ids) == 68
    sample = task.load(ids[0])
    assert sample.lq.shape == sample.gt.shape == (3, 256, 256)
    assert torch.equal(sample.lq[0], sample.lq[1]) and torch.equal(sample.lq[1], sample.lq[2])
    assert not torch.equal(sample.gt[0], sample.gt[1])  # colour GT
    assert task.conventions.ssim_color_space == "yiq" and task.conventions.quantize
