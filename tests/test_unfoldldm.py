"""UnfoldLDM (tiny config): operators, schedule, init identities, phases, losses, I/O, training."""

from __future__ import annotations

import math

import pytest
import torch

from harness.api.checkpoints import write_checkpoint
from harness.api.options import OptionError, declared_options, validate_options
from restorers.unfoldldm.drldm import DiffusionSchedule
from restorers.unfoldldm.losses import isda_loss
from restorers.unfoldldm.mgda import MGDA, DecomposedEstimator, Operators, kron_adjoint, kron_apply
from restorers.unfoldldm.ocformer import DRA
from restorers.unfoldldm.restorer import UnfoldLDM, model_complexity

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _pair(size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    gt = torch.nn.functional.avg_pool2d(torch.rand(1, 3, size, size, generator=g), 3, 1, 1)
    lq = (0.6 * gt + 0.03 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1)
    return lq, gt


# MGDA ---------------------------------------------------------------------------------------------
def test_decomposed_operator_equals_explicit_kronecker_matrix():
    """(Dx)_c = W_c X_c M_c is (Mᵀ⊗W) on column-major vec(X), i.e. kron(W, Mᵀ) on row-major flatten."""
    g = torch.Generator().manual_seed(1)
    H, W_ = 4, 5
    W = torch.randn(1, 3, H, H, generator=g, dtype=torch.float64)
    M = torch.randn(1, 3, W_, W_, generator=g, dtype=torch.float64)
    x = torch.randn(1, 3, H, W_, generator=g, dtype=torch.float64)
    out = kron_apply(W, M, x)
    for c in range(3):
        col_major = torch.kron(M[0, c].T.contiguous(), W[0, c]) @ x[0, c].T.reshape(-1)
        assert torch.allclose(out[0, c].T.reshape(-1), col_major, atol=1e-12)
        row_major = torch.kron(W[0, c], M[0, c].T.contiguous()) @ x[0, c].reshape(-1)
        assert torch.allclose(out[0, c].reshape(-1), row_major, atol=1e-12)
    K = torch.kron(W[0, 0], M[0, 0].T.contiguous())
    r = torch.randn(1, 3, H, W_, generator=g, dtype=torch.float64)
    assert torch.allclose(kron_adjoint(W, M, r)[0, 0].reshape(-1), K.T @ r[0, 0].reshape(-1), atol=1e-12)


def test_decomposed_adjoint_identity_with_predicted_w_m_gain():
    est = DecomposedEstimator(width=4, token_dim=4).double()
    torch.nn.init.normal_(est.gain.weight)  # a non-trivial per-channel gain
    features = torch.randn(2, 4, 9, 7, dtype=torch.float64)
    ops = Operators(None, est(features))
    x, r = torch.randn(2, 3, 9, 7, dtype=torch.float64), torch.randn(2, 3, 9, 7, dtype=torch.float64)
    lhs, rhs = (ops.D_d(x) * r).sum(), (x * ops.Dt_d(r)).sum()
    assert abs(lhs - rhs) / abs(lhs) < 1e-10
    W, M, _ = ops.decomposed
    assert torch.allclose(W.sum(-1), torch.ones(2, 3, 9, dtype=torch.float64))  # row-stochastic mixing


def test_identities_at_initialisation():
    """A_D = A_Dᵀ = I (so g_h = x − y); gain 1; λ = σ(−2); DRA's prior branch and FiLM are 0."""
    mgda = MGDA(4, 4, 4, stages=3, granularity="holistic").double()
    x, y = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    out = mgda(x, y, 0)
    assert torch.allclose(out.r_h, x - y, atol=1e-12)
    assert torch.allclose(out.v, x - 0.5 * (x - y), atol=1e-12)  # ρ_h = 0.5 when alone
    est = DecomposedEstimator(4, 4)
    _, _, gain = est(torch.randn(1, 4, 8, 8))
    assert torch.allclose(gain, torch.ones_like(gain))
    assert math.isclose(torch.sigmoid(est.lambda_w).item(), 1 / (1 + math.e**2), rel_tol=1e-6)
    dra = DRA(8, 2, prior_dim=16)
    feats, z = torch.randn(1, 8, 8, 8), torch.randn(1, 4, 16)
    assert torch.allclose(dra(feats, z), dra(feats, None), atol=1e-6)


# DR-LDM -------------------------------------------------------------------------------------------
def test_schedule_constants_for_t3():
    s = DiffusionSchedule(3)
    assert torch.allclose(s.betas, torch.tensor([0.1000, 0.4298, 0.9900]), atol=1e-4)
    assert torch.allclose(s.alphas_cumprod, torch.tensor([0.9000, 0.5132, 0.00513]), atol=1e-4)
    assert torch.allclose(s.coef1, torch.tensor([1.0, 0.8376, 0.7128]), atol=1e-4)
    assert torch.allclose(s.coef2, torch.tensor([0.0, 0.1551, 0.0489]), atol=1e-4)
    assert math.isclose(s.sqrt_alphas_cumprod[2].item(), 0.0716, abs_tol=1e-4)


# Restorer -----------------------------------------------------------------------------------------
def _restorer(**kw):
    r = UnfoldLDM(config="tiny", random_init=True, **kw)
    r.load(CPU)
    return r


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 16, 24)])
def test_any_size_round_trip(shape):
    out = _restorer().restore(torch.rand(*shape), {"seed": 0})
    assert out.shape == shape and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_eval_deterministic_given_seed():
    r, x = _restorer(), torch.rand(1, 3, 24, 24)
    a = r.restore(x, {"generator": torch.Generator().manual_seed(7)})
    b = r.restore(x, {"generator": torch.Generator().manual_seed(7)})
    c = r.restore(x, {"generator": torch.Generator().manual_seed(8)})
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # the prior noise reaches the output (PDR gate)
    zero = _restorer(prior_noise="zero")
    zero.net.load_state_dict(r.net.state_dict())
    assert torch.equal(zero.restore(x, {"seed": 1}), zero.restore(x, {"seed": 2}))


def test_output_stage_and_tiles():
    r, x = _restorer(), torch.rand(1, 3, 40, 48)
    trace = r.net(x, noise=lambda shape, like: torch.zeros(shape))
    first = _restorer(output_stage=1, prior_noise="zero")
    first.net.load_state_dict(r.net.state_dict())
    assert torch.allclose(first.restore(x), trace.outputs[0].clamp(0, 1), atol=1e-6)
    tiled = _restorer(tile=32, tile_overlap=8, prior_noise="zero")
    tiled.net.load_state_dict(r.net.state_dict())
    out = tiled.restore(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    big_tile = _restorer(tile=64, prior_noise="zero")
    big_tile.net.load_state_dict(r.net.state_dict())
    assert torch.equal(big_tile.restore(x), _zero_copy(r).restore(x))


def _zero_copy(r):
    z = _restorer(prior_noise="zero")
    z.net.load_state_dict(r.net.state_dict())
    return z


def test_ablation_switches_change_the_network():
    full = sum(p.numel() for p in UnfoldLDM(config="tiny").net.parameters())
    x = torch.rand(1, 3, 16, 16)
    for kw, part in [
        ({"prior": False}, "drldm"),
        ({"mgda": "holistic"}, None),
        ({"mgda": "decomposed"}, None),
        ({"vss": False}, None),
        ({"n_tokens": 1}, None),
        ({"n_tokens": 16}, None),
        ({"stages": 1}, None),
    ]:
        r = _restorer(**kw)
        assert sum(p.numel() for p in r.net.parameters()) != full or kw == {"stages": 1}
        assert r.restore(x).shape == x.shape
        if part:
            assert part not in r.train_modules()
    assert _restorer(mgda="decomposed").net.gradient.use_h is False
    assert _restorer(stages=1).net.stages == 1


def test_options_are_declared_and_validated():
    specs = declared_options(UnfoldLDM)
    assert {
        "config",
        "checkpoint",
        "phase",
        "init",
        "stages",
        "prior",
        "mgda",
        "vss",
        "output_stage",
        "tile",
        "tile_overlap",
    } <= set(specs)
    assert "ablation" in specs["prior"].help
    with pytest.raises(OptionError):
        validate_options("restorer", "unfoldldm", specs, {"config": "huge"})
    with pytest.raises(OptionError):
        validate_options("restorer", "unfoldldm", specs, {"stages": 6})
    with pytest.raises(ValueError, match="checkpoint"):
        UnfoldLDM(config="tiny").load(CPU)  # no silent random weights


def test_model_complexity_counts_inference_parameters():
    c = model_complexity("tiny")
    net = UnfoldLDM(config="tiny").net
    assert c["params_train"] == sum(p.numel() for p in net.parameters())
    assert c["params"] == c["params_train"] - sum(p.numel() for p in net.prior.e_clean.parameters())
    assert c["macs_256"] > 1e9


# Training -----------------------------------------------------------------------------------------
def _grads(module):
    return [p.grad for p in module.parameters()]


def test_isda_covers_stages_two_to_k_only():
    r = UnfoldLDM(config="tiny", phase=1)
    r.setup_training(CPU)
    lq, gt = _pair()
    trace = r.net(lq, gt=gt, mode="phase1")
    manual = torch.stack([s.r_h.abs().mean() + s.r_d.abs().mean() for s in trace.gradient[1:]]).mean()
    assert torch.allclose(isda_loss(trace.gradient, trace.inputs, trace.outputs, lq), manual)
    # Stage 1's residuals do not enter: at init A_D = I and x_0 = y, so r_h^{(1)} = 0 exactly.
    assert trace.gradient[0].r_h.abs().max() == 0 and manual > 0
    one = UnfoldLDM(config="tiny", phase=1, stages=1)
    one.setup_training(CPU)
    assert one.training_step(lq, gt, 0, 10)["isda"] == 0
    # Through ISDA alone gradients reach MGDA's holistic operators.
    isda_loss(trace.gradient, trace.inputs, trace.outputs, lq).backward()
    assert r.net.gradient.op_D.out.weight.grad.abs().sum() > 0


def test_phase_one_and_training_need_ground_truth():
    r = UnfoldLDM(config="tiny", phase=1)
    lq, _ = _pair()
    with pytest.raises(ValueError, match="ground truth"):
        r.net(lq, mode="phase1")
    with pytest.raises(ValueError, match="ground truth"):
        r.net(lq, mode="phase2")
    assert len(r.net(lq, mode="eval").z_hat) == 3  # eval: one generated prior per stage, no GT


def test_phase_two_freezes_e_clean_and_warms_up_diffusion_only():
    r = UnfoldLDM(config="tiny", phase=2)
    r.setup_training(CPU)
    prior = r.net.prior
    trainable = {id(p) for g in r.parameter_groups() for p in g["params"]}
    assert not any(id(p) in trainable for p in prior.e_clean.parameters())
    assert all(id(p) in trainable for p in prior.e_cond.parameters())
    lq, gt = _pair()
    warm = r.training_step(lq, gt, step=10, total_steps=100)  # first 25%: diffusion only
    assert set(warm) == {"loss", "diffusion"}
    warm["loss"].backward()
    assert all(g is None for g in _grads(prior.e_clean))
    assert all(g is None for g in _grads(r.net.proximal)) and all(g is None for g in _grads(r.net.gradient))
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(prior.e_cond))
    for p in r.net.parameters():
        p.grad = None
    joint = r.training_step(lq, gt, step=30, total_steps=100)
    assert {"loss", "l1", "isda", "diffusion"} <= set(joint)
    joint["loss"].backward()
    assert all(g is None for g in _grads(prior.e_clean))
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(r.net.proximal))
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(prior.denoiser))


def test_tiny_model_overfits_one_pair():
    torch.manual_seed(0)
    r = UnfoldLDM(config="tiny", phase=1)
    r.setup_training(CPU)
    opt = torch.optim.AdamW(r.parameter_groups(), lr=3e-3, weight_decay=0)
    lq, gt = _pair(16)
    first = None
    for step in range(40):
        losses = r.training_step(lq, gt, step, 40)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        first = first if first is not None else losses["l1"].item()
    assert losses["l1"].item() * 5 <= first, (first, losses["l1"].item())


def test_checkpoint_round_trip_and_phase_two_init(tmp_path):
    r = UnfoldLDM(config="tiny", phase=1)
    r.setup_training(CPU)
    with torch.no_grad():
        for p in r.net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "phase1.pt"
    write_checkpoint(
        path,
        restorer="unfoldldm",
        config=r.config,
        model=r.state_dict(),
        ema=None,
        training=None,
        provenance={"test": True},
    )
    loaded = UnfoldLDM(config="tiny", checkpoint=str(path))
    loaded.load(CPU)
    assert loaded.weights and loaded.weights[-1]["sha256"]
    x = torch.rand(1, 3, 24, 24)
    r.net.eval()
    meta = lambda: {"generator": torch.Generator().manual_seed(3)}  # noqa: E731
    reference = r.restore(x, meta())
    assert torch.equal(loaded.restore(x, meta()), reference)
    phase2 = UnfoldLDM(config="tiny", phase=2, init=str(path))
    phase2.setup_training(CPU)
    for a, b in zip(phase2.net.parameters(), r.net.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):
        UnfoldLDM(config="tiny", prior=False, checkpoint=str(path)).load(CPU)  # networks differ


# Plug-and-play host ---------------------------------------------------------------------------------
def test_dgunet_pnp_swaps_parts_and_trains():
    from restorers.unfoldldm.dgunet import DGUGradient, DGUNetPnP, ProxCNN
    from restorers.unfoldldm.ocformer import OCFormer

    plain = DGUNetPnP(config="tiny")
    assert isinstance(plain.net.gradient, DGUGradient) and isinstance(plain.net.proximal, ProxCNN)
    assert plain.net.prior is None
    swapped = DGUNetPnP(config="tiny", gradient="mgda", prior=True, proximal="ocformer")
    assert isinstance(swapped.net.gradient, MGDA) and isinstance(swapped.net.proximal, OCFormer)
    assert set(swapped.train_modules()) == {"mgda", "drldm", "ocformer"}
    torch.manual_seed(0)
    plain.setup_training(CPU)
    opt = torch.optim.AdamW(plain.parameter_groups(), lr=3e-3)
    lq, gt = _pair(16)
    losses = [plain.training_step(lq, gt, s, 40) for s in range(1)]
    for step in range(40):
        out = plain.training_step(lq, gt, step, 40)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["l1"].item() * 3 <= losses[0]["l1"].item()
    swapped.setup_training(CPU)
    swapped.training_step(lq, gt, 30, 40)["loss"].backward()
    plain.net.eval()
    assert plain.restore(torch.rand(1, 3, 21, 19)).shape == (1, 3, 21, 19)


def test_ss2d_four_directions_map_back_consistently():
    """Transposing the image swaps the row- and column-major scans: SS2D(xᵀ) equals SS2D′(x)ᵀ, where
    SS2D′ has directions (0,1,2,3) → (1,0,3,2) and a transposed depthwise kernel. Checks every
    flip/transpose on the way into and out of the scan."""
    from restorers.unfoldldm.vss import SS2D

    ss = SS2D(4, d_state=2).double()
    swapped = SS2D(4, d_state=2).double()
    perm = [1, 0, 3, 2]
    state = ss.state_dict()
    new = dict(state)
    d_in = ss.d_inner
    for key in ("x_proj_weight", "dt_projs_weight", "dt_projs_bias"):
        new[key] = state[key][perm]
    new["A_logs"] = state["A_logs"].reshape(4, d_in, -1)[perm].reshape(4 * d_in, -1)
    new["Ds"] = state["Ds"].reshape(4, d_in)[perm].reshape(-1)
    new["conv2d.weight"] = state["conv2d.weight"].transpose(2, 3)
    swapped.load_state_dict(new)
    x = torch.randn(1, 5, 7, 4, dtype=torch.float64)
    assert torch.allclose(ss(x.transpose(1, 2)), swapped(x).transpose(1, 2), atol=1e-10)


# identity_init ------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["tiny", "small"])
def test_identity_init_returns_the_input(config):
    x = torch.rand(1, 3, 37, 53)  # odd size: the reflect padding and the crop are on the path
    plain = UnfoldLDM(config=config, random_init=True)
    plain.load(CPU)
    assert (plain.restore(x, {"seed": 0}) - x).abs().max() > 0.05  # the paper init does not
    r = UnfoldLDM(config=config, random_init=True, identity_init=True)
    r.load(CPU)
    # Exact, not approximate: every correction is a product with an exact 0 (OCFormer's zeroed
    # last conv, ρ^d = 0, and the holistic residual A_D(y) − y = (y + 0) − y = 0), and
    # y + 0 = y in IEEE float32, so no rounding enters. Each stage's output is y too.
    assert torch.equal(r.restore(x, {"seed": 0}), x)
    crop = x[..., :32, :48]
    assert all(torch.equal(out, crop) for out in r.net(crop).outputs)
    tiled = UnfoldLDM(config=config, random_init=True, identity_init=True, tile=32, tile_overlap=8)
    tiled.load(CPU)
    # Tiles overlap up to 4 times: (a + a + a) / 3 may round by an ulp (2⁻²⁴ relative, ≤ 6e-8 on [0,1]).
    assert torch.allclose(tiled.restore(x, {"seed": 0}), x, rtol=0, atol=2.0**-22)


def test_identity_init_changes_only_initial_values():
    a = UnfoldLDM(config="tiny", identity_init=True)
    b = UnfoldLDM(config="tiny")
    changed = {
        name
        for (name, p), (_, q) in zip(a.net.named_parameters(), b.net.named_parameters(), strict=True)
        if not torch.equal(p, q)
    }
    zeroed = {"gradient.rho_d", "proximal.output.weight"}
    assert zeroed <= changed  # plus whatever the random stream draws differently after them
    assert all(not a.net.get_parameter(n).any() for n in zeroed)
    assert {k: v.shape for k, v in a.net.state_dict().items()} == {
        k: v.shape for k, v in b.net.state_dict().items()
    }


def test_identity_init_trains_every_parameter():
    """One AdamW update moves the zero layers off zero; from the second update on the gradient
    reaches every parameter except the DRA prior temperature τ', which sits behind two zero-init
    layers in series (the last conv, then the paper's zero-init V_p) and gets it from the third."""
    r = UnfoldLDM(config="tiny", phase=1, identity_init=True)
    r.setup_training(CPU)
    opt = torch.optim.AdamW(r.parameter_groups(), lr=1e-3, weight_decay=1e-4)
    lq, gt = _pair(16)
    trainable = [(n, p) for n, p in r.net.named_parameters() if p.requires_grad]
    silent = []
    for step in range(3):
        opt.zero_grad(set_to_none=True)
        losses = r.training_step(lq, gt, step, 10)
        if step == 0:  # starts from the input: L1 is the input's own error
            assert torch.isclose(losses["l1"], torch.nn.functional.l1_loss(lq, gt))
        losses["loss"].backward()
        silent.append({n for n, p in trainable if p.grad is None or not p.grad.any()})
        opt.step()
    assert "proximal.output.weight" not in silent[0] and "gradient.rho_d" not in silent[0]
    assert "proximal.embed.weight" in silent[0]  # behind the zero conv at the first update
    assert silent[1] and all(n.endswith("dra.prior_temperature") for n in silent[1])
    assert silent[2] == set()


def test_identity_init_is_recorded_and_a_checkpoint_loads_either_way(tmp_path):
    from harness.api.checkpoints import read_checkpoint
    from harness.api.items import parse_restorer
    from harness.run.plan import RestorerItem, restorer_spec

    def spec(text):  # as `bench train -r TEXT` resolves it; its config goes into the checkpoint
        name, options, _ = parse_restorer(text)
        return restorer_spec(RestorerItem(name, options))

    assert spec("unfoldldm[config=tiny,identity_init=true]").config["identity_init"] is True
    assert spec("unfoldldm[config=tiny]").config["identity_init"] is False
    r = UnfoldLDM(config="tiny", phase=1, identity_init=True)
    with torch.no_grad():
        for p in r.net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "identity.pt"
    config = spec("unfoldldm[config=tiny,phase=1,identity_init=true]").config
    write_checkpoint(
        path,
        restorer="unfoldldm",
        config=config,
        model=r.state_dict(),
        ema=None,
        training=None,
        provenance={},
    )
    assert read_checkpoint(path).config["identity_init"] is True
    x = torch.rand(1, 3, 24, 24)
    outs = []
    for identity_init in (True, False):
        loaded = UnfoldLDM(config="tiny", checkpoint=str(path), identity_init=identity_init)
        loaded.load(CPU)
        outs.append(loaded.restore(x, {"seed": 3}))
    assert torch.equal(*outs)
