"""Selective scan (the S6 recurrence inside every VSS/SS2D block of MGDA), on CPU and CUDA.

The recurrence, per channel ``d`` and state ``n`` (Gu & Dao, Mamba, Alg. 2)::

    Δ_t   = softplus(δ_t + bias)              (optional bias / softplus, as mamba-ssm)
    h_t   = exp(Δ_t A_{dn}) · h_{t-1} + Δ_t B_{tn} u_t
    y_t   = Σ_n C_{tn} h_{tn} + D_d u_t

Four implementations, one semantics (mamba-ssm's ``selective_scan_fn`` argument layout:
``u, delta (B,D,L)``, ``A (D,N)``, ``B, C (B,G,N,L)`` with ``D % G == 0``, ``D (D,)``):

* :func:`selective_scan_reference`: the plain sequential loop over time steps (the algorithm of
  mamba-ssm's ``selective_scan_ref``, written from the paper's recurrence). The ground truth the
  others are tested against, and the baseline of ``benchmarks/scan.py``.
* :class:`~restorers.unfoldldm._scan_compiled.CompiledSelectiveScan`: the CPU default, a compiled
  kernel (``_scan_kernel.c``, plain C compiled on first use with the system C compiler, cached
  under ``$BENCH_HOME/kernels``, called through ctypes). It runs the recurrence step by step with
  the channels of a group innermost (vectorised, an inlined polynomial ``expf``), on
  ``torch.get_num_threads()`` threads over (batch, group, channel block) tasks; the forward saves
  the state entering every 32-step chunk and the backward recomputes the states inside each chunk
  and runs the adjoint ``g_t = a_{t+1} g_{t+1} + C_t dy_t`` (memory ``O(B·D·N·L/32)`` saved).
  Why compiled: in the chunked PyTorch path below, the Python-level loop over chunk positions
  (each step a handful of small vectorised ops with their dispatch and memory round-trips)
  dominates; fused in one pass the scan is bound by its ``D·L·N`` exps (≈25-100× faster than the
  loop forward at 256², see ``benchmarks/scan.py``). float32 and float64.
* :class:`ChunkedSelectiveScan`: the pure-PyTorch CPU path, used when the kernel cannot be built
  (no C compiler: a warning says why, once) or when forced. ``L`` is cut
  into ``n_c`` chunks of length ``T`` (``T ≈ √L``); every chunk runs the *exact* recurrence in
  parallel with all others (a Python loop over the ``T`` positions, each step a vectorised op on
  ``(B, D, n_c, N)``); the chunk-entry states then come from a short scan across chunks whose
  decays are exact blocked cumulative products ``Π_t exp(Δ_t A) = exp(A Σ_t Δ_t)``. Nothing is
  ever divided by a decay and no ``exp`` has a positive argument, so it cannot overflow
  (unlike the log-space factorisation ``exp(cum_t)·exp(−cum_r)``); underflow to 0 is the exact
  limit. Backward is the adjoint recurrence ``g_t = a_{t+1} g_{t+1} + C_t dy_t`` with the same
  chunk structure, recomputing states from the saved chunk-entry states (memory
  ``O(B·D·n_c·N)`` saved, ``O(B·D·L·N / groups)`` transient), so CPU training uses it too.
  Also the path for non-CPU tensors without mamba-ssm (it is device-agnostic).
* ``mamba_ssm.selective_scan_fn`` (guarded import) when it imports **and** the tensors are on CUDA.

:func:`selective_scan` dispatches. ``backend="auto"`` (default): CUDA tensors → mamba-ssm if it
imports, else chunked; CPU tensors → compiled if it builds, else chunked. ``backend=`` forces
``"compiled"`` (raises if the kernel is unavailable), ``"chunked"``, ``"reference"`` or
``"mamba"``. The environment variable ``BENCH_SCAN=auto|compiled|chunked`` sets what ``"auto"``
means for CPU tensors (``chunked``: never build the kernel; ``compiled``: raise instead of
falling back); explicit ``backend=`` arguments win. In every path Δ's bias and softplus, the
``D·u`` skip and dtype casts are PyTorch ops outside the kernel (autograd handles them).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Literal

import torch
import torch.nn.functional as F

try:  # CUDA kernel; not installable on every machine (needs nvcc / a matching wheel).
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _mamba_scan_fn
except Exception:  # ImportError, or a broken CUDA extension raising OSError/RuntimeError
    _mamba_scan_fn = None

#: Transient memory bound (elements) of one chunk group in the backward pass.
_BACKWARD_BUDGET = 1 << 26

Backend = Literal["auto", "compiled", "chunked", "reference", "mamba"]
_ENV = "BENCH_SCAN"
_warned = False


def mamba_available() -> bool:
    """Whether ``mamba_ssm.selective_scan_fn`` imported (it still needs CUDA tensors)."""
    return _mamba_scan_fn is not None


def compiled_available() -> bool:
    """Whether the compiled CPU kernel is usable (builds it on the first call)."""
    from restorers.unfoldldm import _scan_compiled

    return _scan_compiled.load() is not None


def _cpu_backend(backend: str) -> str:
    """Resolve ``"auto"`` for CPU tensors: ``BENCH_SCAN``, then the compiled kernel if it builds."""
    global _warned
    if backend == "auto":
        env = os.environ.get(_ENV, "auto").strip().lower() or "auto"
        if env not in ("auto", "compiled", "chunked"):
            raise ValueError(f"{_ENV}={env!r}: expected auto, compiled or chunked")
        if env == "chunked":
            return "chunked"
        backend = "compiled" if env == "compiled" else "auto"
    if backend == "compiled":
        if not compiled_available():
            from restorers.unfoldldm import _scan_compiled

            raise RuntimeError(f"compiled selective scan unavailable: {_scan_compiled.load_error()}")
        return "compiled"
    if compiled_available():
        return "compiled"
    if not _warned:
        from restorers.unfoldldm import _scan_compiled

        _warned = True
        warnings.warn(
            f"compiled CPU selective scan unavailable ({_scan_compiled.load_error()}); using the slower "
            f"chunked PyTorch scan",
            RuntimeWarning,
            stacklevel=3,
        )
    return "chunked"


def _prepare_delta(
    delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool
) -> torch.Tensor:
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    return F.softplus(delta) if delta_softplus else delta


# ------------------------------------------------------------------------------------------------
# Sequential reference
# ------------------------------------------------------------------------------------------------
def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """The recurrence as written, one time step after the other (slow; autograd-differentiable).

    Args:
        u: input ``(B, D, L)``.
        delta: step sizes before bias/softplus ``(B, D, L)``.
        A: state matrix (diagonal) ``(D, N)``, normally negative.
        B: input projections ``(B, G, N, L)``; channel ``d`` uses group ``d // (D/G)``.
        C: output projections ``(B, G, N, L)``.
        D: skip ``(D,)``.
        delta_bias: ``(D,)`` added to ``delta`` before the softplus.
        delta_softplus: apply softplus to ``delta``.
    """
    batch, dim, length = u.shape
    groups = B.shape[1]
    dt = _prepare_delta(delta, delta_bias, delta_softplus)
    Bx = B.repeat_interleave(dim // groups, dim=1)  # (B, D, N, L)
    Cx = C.repeat_interleave(dim // groups, dim=1)
    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, :, t, None] * A)  # (B, D, N)
        h = decay * h + (dt[:, :, t] * u[:, :, t])[..., None] * Bx[..., t]
        ys.append((h * Cx[..., t]).sum(-1))  # (B, D)
    y = torch.stack(ys, dim=-1)
    return y if D is None else y + D[:, None] * u


# ------------------------------------------------------------------------------------------------
# Chunked CPU scan
# ------------------------------------------------------------------------------------------------
def default_chunk(length: int) -> int:
    """``T ≈ √L`` balances the two Python loops (T in-chunk steps, L/T cross-chunk steps)."""
    return max(1, min(length, 1 << max(0, round(math.log2(max(length, 1)) / 2))))


def _to_chunks(x: torch.Tensor, chunk: int, n_chunks: int) -> torch.Tensor:
    """(..., L) → (T, ..., n_c), zero-padded at the end (Δ = 0 there: decay 1, input 0)."""
    pad = chunk * n_chunks - x.shape[-1]
    if pad:
        x = F.pad(x, (0, pad))
    x = x.reshape(*x.shape[:-1], n_chunks, chunk)
    return x.movedim(-1, 0).contiguous()


def _from_chunks(x: torch.Tensor, length: int) -> torch.Tensor:
    """(T, ..., n_c) → (..., L)."""
    x = x.movedim(0, -1)
    return x.reshape(*x.shape[:-2], -1)[..., :length]


def _projections_to_chunks(x: torch.Tensor, chunk: int, n_chunks: int) -> torch.Tensor:
    """B or C: (B, G, N, L) → (T, B, G, 1, n_c, N) in one copy (the 1 broadcasts over channels)."""
    pad = chunk * n_chunks - x.shape[-1]
    if pad:
        x = F.pad(x, (0, pad))
    x = x.reshape(*x.shape[:-1], n_chunks, chunk)  # (B, G, N, n_c, T)
    return x.permute(4, 0, 1, 3, 2).contiguous().unsqueeze(3)


class ChunkedSelectiveScan(torch.autograd.Function):
    """``y = scan(u, Δ, A, B, C)`` without the skip (added outside with autograd).

    Layout inside: ``G`` groups of ``E = D/G`` channels; per-step tensors ``(B, G, E, n_c, N)``.
    """

    @staticmethod
    def _shapes(u, A, B, chunk):
        batch, dim, length = u.shape
        groups, n_state = B.shape[1], A.shape[1]
        chunk = chunk or default_chunk(length)
        n_chunks = -(-length // chunk)
        return batch, dim, length, groups, dim // groups, n_state, chunk, n_chunks

    @staticmethod
    def forward(ctx, u, dt, A, B, C, chunk: int | None = None):  # noqa: D401
        batch, dim, length, groups, per, n_state, chunk, n_c = ChunkedSelectiveScan._shapes(u, A, B, chunk)
        dt_c = _to_chunks(dt.reshape(batch, groups, per, length), chunk, n_c)  # (T,B,G,E,n_c)
        du_c = _to_chunks((dt * u).reshape(batch, groups, per, length), chunk, n_c)
        B_c, C_c = _projections_to_chunks(B, chunk, n_c), _projections_to_chunks(C, chunk, n_c)
        A_g = A.reshape(groups, per, 1, n_state)  # (G,E,1,N)

        # Pass 1: every chunk from a zero state → chunk-end local states S_c. The decays are kept
        # for pass 2 when they fit the memory budget (2 of pass 2's 5 element-ops saved).
        h = u.new_zeros(batch, groups, per, n_c, n_state)
        keep = chunk * h.numel() <= _BACKWARD_BUDGET
        decays = u.new_empty(chunk, *h.shape) if keep else None
        decay = torch.empty_like(h)
        for t in range(chunk):
            step_decay = decays[t] if keep else decay
            torch.mul(dt_c[t, ..., None], A_g, out=step_decay)
            step_decay.exp_()
            h.mul_(step_decay).addcmul_(du_c[t, ..., None], B_c[t])
        # Cross-chunk scan: h_in[c] = exp(A ΣΔ_{c-1}) h_in[c-1] + S[c-1].
        chunk_decay = torch.exp(dt_c.sum(0)[..., None] * A_g)  # (B,G,E,n_c,N)
        h_in = torch.zeros_like(h)
        for c in range(1, n_c):
            h_in[..., c, :] = chunk_decay[..., c - 1, :] * h_in[..., c - 1, :] + h[..., c - 1, :]
        # Pass 2: the exact recurrence from the true entry states, with outputs.
        h = h_in.clone()
        y_c = u.new_empty(chunk, batch, groups, per, n_c)
        for t in range(chunk):
            if keep:
                step_decay = decays[t]
            else:
                step_decay = torch.mul(dt_c[t, ..., None], A_g, out=decay).exp_()
            h.mul_(step_decay).addcmul_(du_c[t, ..., None], B_c[t])
            torch.linalg.vecdot(h, C_c[t], out=y_c[t])
        del decays
        ctx.save_for_backward(u, dt, A, B, C, h_in)
        ctx.chunk = chunk
        return _from_chunks(y_c, length).reshape(batch, dim, length)

    @staticmethod
    def backward(ctx, dy):
        with _FlushDenormals():
            return ChunkedSelectiveScan._backward(ctx, dy)

    @staticmethod
    def _backward(ctx, dy):
        u, dt, A, B, C, h_in = ctx.saved_tensors
        batch, dim, length, groups, per, n_state, chunk, n_c = ChunkedSelectiveScan._shapes(
            u, A, B, ctx.chunk
        )
        dt_c = _to_chunks(dt.reshape(batch, groups, per, length), chunk, n_c)  # (T,B,G,E,n_c)
        u_c = _to_chunks(u.reshape(batch, groups, per, length), chunk, n_c)
        du_c = dt_c * u_c
        dy_c = _to_chunks(dy.contiguous().reshape(batch, groups, per, length), chunk, n_c)
        B_c, C_c = _projections_to_chunks(B, chunk, n_c), _projections_to_chunks(C, chunk, n_c)
        A_g = A.reshape(groups, per, 1, n_state)
        # Decay that multiplies g_{t+1} in g_t = a_{t+1} g_{t+1} + C_t dy_t, per chunk position:
        # a_{t+1} lies in the same chunk except at t = T-1 (handled by the cross-chunk carry).
        shape = (batch, groups, per, n_c, n_state)
        decay = u.new_empty(shape)

        # Pass 1 (reverse, zero start): chunk-start local adjoints g_loc[first] of every chunk.
        g = u.new_zeros(shape)
        for t in range(chunk - 1, -1, -1):
            if t < chunk - 1:
                torch.mul(dt_c[t + 1, ..., None], A_g, out=decay)
                decay.exp_()
                g.mul_(decay)
            g.addcmul_(dy_c[t, ..., None], C_c[t])
        # Cross-chunk reverse scan of the carry κ_c = a_{first(c+1)} g_{first(c+1)}, which enters
        # chunk c at its last position: g_t = g_loc_t + (Π_{s=t+1..end} a_s) κ_c.
        first_decay = torch.exp(dt_c[0][..., None] * A_g)  # a_first(c)
        inner_decay = torch.exp(dt_c[1:].sum(0)[..., None] * A_g) if chunk > 1 else torch.ones_like(g)
        carry = torch.zeros_like(g)
        for c in range(n_c - 2, -1, -1):
            g_first_next = g[..., c + 1, :] + inner_decay[..., c + 1, :] * carry[..., c + 1, :]
            carry[..., c, :] = first_decay[..., c + 1, :] * g_first_next

        # Pass 2, in groups of chunks (bounded memory): recompute the states forward, then walk back.
        d_dt = torch.zeros_like(dt_c)
        d_u = torch.zeros_like(u_c)
        d_B = u.new_zeros(chunk, batch, groups, n_c, n_state)
        d_C = u.new_zeros(chunk, batch, groups, n_c, n_state)
        d_A = u.new_zeros(groups, per, n_state)
        per_chunk = chunk * batch * dim * n_state
        step = max(1, min(n_c, _BACKWARD_BUDGET // max(per_chunk, 1)))
        for c0 in range(0, n_c, step):
            sl = slice(c0, min(n_c, c0 + step))
            dt_s, du_s, B_s, C_s = dt_c[..., sl], du_c[..., sl], B_c[..., sl, :], C_c[..., sl, :]
            states = u.new_empty(chunk + 1, *h_in[..., sl, :].shape)
            decays = u.new_empty(chunk, *h_in[..., sl, :].shape)
            states[0] = h_in[..., sl, :]
            for t in range(chunk):
                torch.mul(dt_s[t, ..., None], A_g, out=decays[t])
                decays[t].exp_()
                torch.addcmul(du_s[t, ..., None] * B_s[t], states[t], decays[t], out=states[t + 1])
            g = carry[..., sl, :].clone()
            for t in range(chunk - 1, -1, -1):
                if t < chunk - 1:
                    g.mul_(decays[t + 1])
                g.addcmul_(dy_c[t][..., sl, None], C_s[t])
                # g is now ∂L/∂h_t.  h_t = a_t h_{t-1} + Δ_t u_t B_t ;  y_t = <C_t, h_t>.
                d_C[t, ..., sl, :] = (dy_c[t][..., sl, None] * states[t + 1]).sum(2)
                gh = g * states[t] * decays[t]  # ∂L/∂(Δ_t A)
                d_A += (gh * dt_s[t, ..., None]).sum((0, 3))
                gB = torch.linalg.vecdot(g, B_s[t])  # (B,G,E,n)
                d_dt[t, ..., sl] = (gh * A_g).sum(-1) + gB * u_c[t][..., sl]
                d_u[t, ..., sl] = gB * dt_s[t]
                d_B[t, ..., sl, :] = (g * du_s[t, ..., None]).sum(2)
        unchunk = lambda x: _from_chunks(x, length).reshape(batch, dim, length)  # noqa: E731
        # (T,B,G,n_c,N) → (B,G,N,L)
        d_B = _from_chunks(d_B.movedim(-1, 3), length)
        d_C = _from_chunks(d_C.movedim(-1, 3), length)
        return unchunk(d_u), unchunk(d_dt), d_A.reshape(dim, n_state), d_B, d_C, None


class _FlushDenormals:
    """Flush float subnormals to zero while the scan runs.

    States decay geometrically (``h ← a·h`` with ``a < 1``) wherever the input is ~0 (padding,
    flat regions), so they pass through the subnormal range, where x86 arithmetic is 10-100×
    slower: measured here, one 256² scan took 0.2 s or 7 s depending on the data. Flushing
    changes values below 1e-38 only. PyTorch has no getter for the flag; it is restored to
    ``False``, PyTorch's default.
    """

    def __enter__(self) -> None:
        self.active = torch.set_flush_denormal(True)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            torch.set_flush_denormal(False)


def _operands(u, delta, A, B, C, delta_bias, delta_softplus, dtype):
    """``(u, Δ after bias/softplus, A, B, C)`` in ``dtype``, contiguous: what both CPU scans take."""
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    dt = _prepare_delta(delta, None if delta_bias is None else delta_bias.to(dtype), delta_softplus)
    return [t.contiguous() for t in (u, dt, A, B, C)]


def _with_skip(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, out_dtype) -> torch.Tensor:
    return (y if D is None else y + D.to(y.dtype)[:, None] * u).to(out_dtype)


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk: int | None = None,
) -> torch.Tensor:
    """Our chunked scan (any device; the CPU path). Same arguments as the reference, plus
    ``chunk`` (default ``≈√L``)."""
    # Half-precision inputs (autocast) are scanned in float32: the state is a long product of decays.
    operands = _operands(u, delta, A, B, C, delta_bias, delta_softplus,
                         torch.promote_types(u.dtype, torch.float32))
    with _FlushDenormals():
        y = ChunkedSelectiveScan.apply(*operands, chunk)
    return _with_skip(y, operands[0], D, u.dtype)


def selective_scan_compiled(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """The compiled CPU kernel (raises if it cannot be built). Same arguments as the reference;
    float64 inputs stay float64, others are scanned in float32."""
    from restorers.unfoldldm import _scan_compiled

    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    operands = _operands(u, delta, A, B, C, delta_bias, delta_softplus, dtype)
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        y = _scan_compiled.CompiledSelectiveScan.apply(*operands)
    else:  # inference: no states kept for a backward
        y = _scan_compiled.scan_forward(*operands, keep_states=False)[0]
    return _with_skip(y, operands[0], D, u.dtype)


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    backend: Backend = "auto",
    chunk: int | None = None,
) -> torch.Tensor:
    """Dispatch: mamba-ssm's kernel for CUDA tensors when it imports; on CPU the compiled kernel when
    it builds (``BENCH_SCAN`` can switch that, see the module docstring); else the chunked scan.

    ``backend`` forces ``"compiled"``, ``"chunked"``, ``"reference"`` or ``"mamba"``
    (``"mamba"``/``"compiled"`` raise when unavailable or on the wrong device, instead of silently
    falling back). ``chunk`` only concerns the chunked scan.
    """
    if u.device.type == "meta":  # shape-only runs (model_complexity): the scan is counted analytically
        return torch.empty_like(u)
    use_mamba = backend == "mamba" or (backend == "auto" and _mamba_scan_fn is not None and u.is_cuda)
    if use_mamba:
        if _mamba_scan_fn is None or not u.is_cuda:
            raise RuntimeError("backend='mamba' needs mamba-ssm installed and CUDA tensors")
        # As VMamba calls it: float32 operands (autocast may hand us half types), output cast back.
        f32 = [t.float().contiguous() for t in (u, delta, A, B, C)]
        y = _mamba_scan_fn(
            *f32,
            None if D is None else D.float(),
            None,
            None if delta_bias is None else delta_bias.float(),
            delta_softplus,
        )
        return y.to(u.dtype)
    if backend == "reference":
        return selective_scan_reference(u, delta, A, B, C, D, delta_bias, delta_softplus)
    if backend == "compiled" and u.device.type != "cpu":
        raise RuntimeError("backend='compiled' needs CPU tensors")
    if u.device.type == "cpu" and backend in ("auto", "compiled"):
        if _cpu_backend(backend) == "compiled":
            return selective_scan_compiled(u, delta, A, B, C, D, delta_bias, delta_softplus)
    return selective_scan_chunked(u, delta, A, B, C, D, delta_bias, delta_softplus, chunk)
