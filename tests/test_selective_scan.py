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


def test_dispatch_on_cpu_and_mamba_guard():
    args = _inputs(length=20)
    assert torch.equal(ss.selective_scan(**args), ss.selective_scan_chunked(**args))
    assert torch.equal(ss.selective_scan(**args, backend="reference"), ss.selective_scan_reference(**args))
    with pytest.raises(RuntimeError, match="mamba"):
        ss.selective_scan(**args, backend="mamba")  # CPU tensors: never silently falls back


@pytest.mark.skipif(not (ss.mamba_available() and torch.cuda.is_available()), reason="needs mamba-ssm + CUDA")
def test_mamba_kernel_matches_reference():
    args = _inputs(length=300, dtype=torch.float32)
    cuda = {k: v.cuda() if torch.is_tensor(v) else v for k, v in args.items()}
    out = ss.selective_scan(**cuda, backend="mamba").cpu()
    assert torch.allclose(out, ss.selective_scan_reference(**args), atol=1e-4)
