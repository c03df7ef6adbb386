"""The CPU selective scan against the sequential reference (values and gradients), and dispatch."""

from __future__ import annotations

import pytest
import torch

from restorers.unfoldldm import selective_scan as ss


@pytest.fixture(autouse=True)
def _one_thread():
    """The scan's many small ops slow down badly under thread contention on shared CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _inputs(batch=2, dim=6, groups=2, state=3, length=37, dtype=torch.float64, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return dict(
        u=r(batch, dim, length),
        delta=r(batch, dim, length) * scale,
        A=-(torch.rand(dim, state, generator=g, dtype=dtype) * 4 + 0.1),
        B=r(batch, groups, state, length),
        C=r(batch, groups, state, length),
        D=r(dim),
        delta_bias=r(dim) * 0.3,
        delta_softplus=True,
    )


@pytest.mark.parametrize("length,chunk", [(1, 4), (7, 3), (37, 8), (37, 5), (100, 16), (53, 64), (37, 1)])
def test_chunked_equals_sequential_reference(length, chunk):
    """Lengths not divisible by the chunk (and shorter than it) included."""
    args = _inputs(length=length)
    ref = ss.selective_scan_reference(**args)
    out = ss.selective_scan_chunked(**args, chunk=chunk)
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_stable_with_strong_decay_and_long_chunks():
    """Δ·A down to about −400 per step and chunk sums far below −1e4: log-space factorisations
    overflow here; ours must stay finite and exact."""
    args = _inputs(length=300, scale=30.0)
    args["A"] = args["A"] * 3
    ref = ss.selective_scan_reference(**args)
    out = ss.selective_scan_chunked(**args, chunk=64)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, rtol=1e-10, atol=1e-10)


def test_gradcheck_float64():
    args = _inputs(batch=1, dim=4, groups=2, state=2, length=11)
    names = ["u", "delta", "A", "B", "C", "D", "delta_bias"]
    tensors = [args[n].clone().requires_grad_() for n in names]

    def f(*xs):
        return ss.selective_scan_chunked(*xs, delta_softplus=True, chunk=4)

    assert torch.autograd.gradcheck(f, tensors)


def test_gradients_equal_reference_autograd():
    args = _inputs(length=45)
    names = ["u", "delta", "A", "B", "C", "D", "delta_bias"]
    grads = []
    for fn in (ss.selective_scan_reference, lambda **a: ss.selective_scan_chunked(**a, chunk=7)):
        leaves = {n: args[n].clone().requires_grad_() for n in names}
        out = fn(**leaves, delta_softplus=True)
        weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
        (out * weight).sum().backward()
        grads.append([leaves[n].grad for n in names])
    for name, a, b in zip(names, *grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10), name


def test_float32_long_sequence_error():
    """What the VSS blocks run: float32, L = 32·40, default chunk; ≤ 1e-4 from float64 truth."""
    args = _inputs(batch=1, dim=8, groups=4, state=4, length=1280, dtype=torch.float32)
    ref = ss.selective_scan_reference(**{k: v.double() if torch.is_tensor(v) else v for k, v in args.items()})
    out = ss.selective_scan_chunked(**args)
    assert (out.double() - ref).abs().max() <= 1e-4


def test_dispatch_on_cpu_and_mamba_guard(monkeypatch):
    args = _inputs(length=20)
    monkeypatch.delenv("BENCH_SCAN", raising=False)
    cpu_default = ss.selective_scan_compiled if ss.compiled_available() else ss.selective_scan_chunked
    assert torch.equal(ss.selective_scan(**args), cpu_default(**args))
    assert torch.equal(ss.selective_scan(**args, backend="chunked"), ss.selective_scan_chunked(**args))
    assert torch.equal(ss.selective_scan(**args, backend="reference"), ss.selective_scan_reference(**args))
    with pytest.raises(RuntimeError, match="mamba"):
        ss.selective_scan(**args, backend="mamba")  # CPU tensors: never silently falls back


@pytest.mark.skipif(not (ss.mamba_available() and torch.cuda.is_available()), reason="needs mamba-ssm + CUDA")
def test_mamba_kernel_matches_reference():
    args = _inputs(length=300, dtype=torch.float32)
    cuda = {k: v.cuda() if torch.is_tensor(v) else v for k, v in args.items()}
    out = ss.selective_scan(**cuda, backend="mamba").cpu()
    assert torch.allclose(out, ss.selective_scan_reference(**args), atol=1e-4)


# ------------------------------------------------------------------------------------------------
# Compiled CPU kernel
# ------------------------------------------------------------------------------------------------
needs_kernel = pytest.mark.skipif(
    not ss.compiled_available(), reason="compiled scan kernel unavailable (no C compiler?)"
)
NAMES = ["u", "delta", "A", "B", "C", "D", "delta_bias"]


def _value_and_grads(fn, args):
    leaves = {n: args[n].clone().requires_grad_() for n in NAMES}
    out = fn(**leaves, delta_softplus=True)
    weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * weight).sum().backward()
    return out.detach(), [leaves[n].grad for n in NAMES]


@needs_kernel
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("length", [1, 37, 1000])
def test_compiled_equals_reference_float64(length, groups, threads):
    """Values and gradients of every input (bias and D through the wrapper's autograd); lengths
    not divisible by the kernel's chunk (32) or I/O tile (256); 3 threads split channel blocks."""
    torch.set_num_threads(threads)
    args = _inputs(batch=2, dim=8, groups=groups, state=3, length=length)
    ref, ref_grads = _value_and_grads(ss.selective_scan_reference, args)
    out, grads = _value_and_grads(ss.selective_scan_compiled, args)
    assert (out - ref).abs().max() <= 1e-10
    for name, a, b in zip(NAMES, ref_grads, grads, strict=True):
        assert (a - b).abs().max() <= 1e-10 * max(1.0, a.abs().max().item()), name


@needs_kernel
@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("length", [37, 1000])
def test_compiled_float32_against_float64_reference(length, groups):
    args = _inputs(batch=2, dim=8, groups=groups, state=4, length=length, dtype=torch.float32)
    args64 = {k: v.double() if torch.is_tensor(v) else v for k, v in args.items()}
    ref, ref_grads = _value_and_grads(ss.selective_scan_reference, args64)
    out, grads = _value_and_grads(ss.selective_scan_compiled, args)
    assert out.dtype == torch.float32
    assert (out.double() - ref).abs().max() <= 1e-4
    for name, a, b in zip(NAMES, ref_grads, grads, strict=True):
        assert (a - b.double()).abs().max() <= 1e-4 * max(1.0, a.abs().max().item()), name


@needs_kernel
def test_compiled_strong_decay_stays_finite():
    args = _inputs(length=300, scale=30.0)
    args["A"] = args["A"] * 3
    ref = ss.selective_scan_reference(**args)
    out = ss.selective_scan_compiled(**args)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, rtol=1e-10, atol=1e-10)


@needs_kernel
def test_compiled_propagates_nan():
    """NaN in Δ, u or B must reach the output (training checks the loss for NaN)."""
    for name, index in (("delta", (0, 1, 5)), ("u", (0, 1, 5)), ("B", (0, 0, 1, 5))):
        args = _inputs(length=40, dtype=torch.float32)
        args[name][index] = float("nan")
        out = ss.selective_scan_compiled(**args)
        assert out[0, 1, 5:].isnan().all() and not out[1].isnan().any(), name


@needs_kernel
def test_compiled_empty_sequence():
    args = _inputs(length=0)
    leaves = {n: args[n].clone().requires_grad_() for n in NAMES}
    out = ss.selective_scan_compiled(**leaves, delta_softplus=True)
    assert out.shape == (2, 6, 0)
    out.sum().backward()
    assert torch.equal(leaves["A"].grad, torch.zeros_like(args["A"]))


@needs_kernel
def test_compiled_function_gradcheck_float64():
    from restorers.unfoldldm._scan_compiled import CompiledSelectiveScan

    args = _inputs(batch=2, dim=4, groups=2, state=2, length=40)
    dt = torch.nn.functional.softplus(args["delta"])
    tensors = [t.clone().requires_grad_() for t in (args["u"], dt, args["A"], args["B"], args["C"])]
    assert torch.autograd.gradcheck(CompiledSelectiveScan.apply, tensors)


@needs_kernel
def test_compiled_dispatch_and_env_switch(monkeypatch):
    args = _inputs(length=50)
    compiled = ss.selective_scan_compiled(**args)
    monkeypatch.setenv("BENCH_SCAN", "auto")
    assert torch.equal(ss.selective_scan(**args), compiled)
    assert torch.equal(ss.selective_scan(**args, backend="compiled"), compiled)
    monkeypatch.setenv("BENCH_SCAN", "chunked")
    assert torch.equal(ss.selective_scan(**args), ss.selective_scan_chunked(**args))
    monkeypatch.setenv("BENCH_SCAN", "bogus")
    with pytest.raises(ValueError, match="BENCH_SCAN"):
        ss.selective_scan(**args)


def test_fallback_when_kernel_unavailable(monkeypatch):
    """No compiler / failed build: auto warns once and uses the chunked scan; forcing raises."""
    from restorers.unfoldldm import _scan_compiled

    monkeypatch.setattr(_scan_compiled, "_lib", None)
    monkeypatch.setattr(_scan_compiled, "_error", "RuntimeError: no C compiler found (test)")
    monkeypatch.setattr(ss, "_warned", False)
    monkeypatch.delenv("BENCH_SCAN", raising=False)
    args = _inputs(length=30)
    with pytest.warns(RuntimeWarning, match="no C compiler"):
        out = ss.selective_scan(**args)
    assert torch.equal(out, ss.selective_scan_chunked(**args))
    leaves = {n: args[n].clone().requires_grad_() for n in NAMES}
    ss.selective_scan(**leaves, delta_softplus=True).sum().backward()  # training works too
    assert all(leaves[n].grad is not None for n in NAMES)
    with pytest.raises(RuntimeError, match="unavailable"):
        ss.selective_scan(**args, backend="compiled")
    monkeypatch.setenv("BENCH_SCAN", "compiled")
    with pytest.raises(RuntimeError, match="unavailable"):
        ss.selective_scan(**args)


def test_build_failure_is_reported_not_raised(monkeypatch, tmp_path):
    """A missing compiler makes load() return None with the reason (no exception)."""
    from restorers.unfoldldm import _scan_compiled

    monkeypatch.setattr(_scan_compiled, "_lib", None)
    monkeypatch.setattr(_scan_compiled, "_error", None)
    monkeypatch.setattr(_scan_compiled, "_compiler", lambda: None)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path))
    assert _scan_compiled.load() is None
    assert "no C compiler" in _scan_compiled.load_error()


def test_kernel_builds_in_fresh_cache(monkeypatch, tmp_path):
    """First use compiles into $BENCH_HOME/kernels (skipped without a C compiler)."""
    from restorers.unfoldldm import _scan_compiled

    if _scan_compiled._compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(_scan_compiled, "_lib", None)
    monkeypatch.setattr(_scan_compiled, "_error", None)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path))
    assert _scan_compiled.load() is not None, _scan_compiled.load_error()
    built = list((tmp_path / "kernels").glob("selective_scan-*.so"))
    assert len(built) == 1
