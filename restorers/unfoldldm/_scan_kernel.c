/* Compiled CPU selective scan (forward and backward), float32 and float64.
 *
 * Plain C, no torch headers: restorers/unfoldldm/_scan_compiled.py compiles this file on first use
 * with the system C compiler (cached under $BENCH_HOME/kernels, keyed by source hash, flags,
 * compiler and CPU), loads it with ctypes and calls it on the data pointers of contiguous tensors.
 *
 * Layout (mamba-ssm's): u, dt, y, du, ddt (B, D, L); A (D, N); Bm, Cm (B, G, N, L); channel d
 * belongs to group d / (D/G). dt is Δ after bias/softplus (those stay in PyTorch autograd).
 * A *task* is one (batch, group, channel block) triple; tasks are independent in the forward and
 * write disjoint outputs in the backward (dA, dB, dC go to per-task partial buffers that the
 * caller sums), so the caller runs task ranges on several threads.
 *
 * Inside a task, time is read in I/O tiles of `tio` steps: each tile of u, dt (and dy) is
 * transposed into a small buffer (time-major, the block's channels innermost) so that the inner
 * loop runs over channels, contiguous and vectorised, and the strided rows are read in long
 * contiguous runs. The state lives as h[n][e] (state index outer, channel inner).
 *
 * The forward stores the state entering every `chunk`-step chunk (hs, (B, n_chunks, N, D)); the
 * backward walks the chunks in reverse, recomputes the chunk's states and decays from hs, then
 * runs the adjoint
 *     G_t = C_t dy_t + a_{t+1} G_{t+1},   a_t = exp(Δ_t A),
 * accumulating the gradients. Subnormals are flushed (per thread, flag restored on exit):
 * decaying states pass through the subnormal range where x86 arithmetic is 10-100x slower.
 */
#ifndef SCAN_T

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
typedef unsigned int fpstate_t;
static fpstate_t ftz_on(void) {
    fpstate_t old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u); /* FTZ | DAZ */
    return old;
}
static void ftz_off(fpstate_t old) { _mm_setcsr(old); }
#elif defined(__aarch64__)
typedef uint64_t fpstate_t;
static fpstate_t ftz_on(void) {
    uint64_t old;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(old));
    __asm__ __volatile__("msr fpcr, %0" : : "r"(old | (1ull << 24)));
    return old;
}
static void ftz_off(fpstate_t old) { __asm__ __volatile__("msr fpcr, %0" : : "r"(old)); }
#else
typedef int fpstate_t;
static fpstate_t ftz_on(void) { return 0; }
static void ftz_off(fpstate_t old) { (void)old; }
#endif

int scan_abi_version(void) { return 2; }

/* exp for float32, inlined so the channel loop vectorises on any target (no libmvec needed):
 * Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial), relative error
 * ~2 ulp. The argument is clamped to [-87, 88]: below, the true value (< 1.7e-38) is replaced by
 * 1.6e-38, an absolute change no float32 result can see; decays here are exp(Δ·A) ≤ 1. */
static inline float scan_expf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float z = x * 1.44269504088896341f;
    int32_t ki = (int32_t)(z + (z < 0.0f ? -0.5f : 0.5f));
    float k = (float)ki;
    float r = x - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } s;
    s.i = (ki + 127) << 23;
    return p * s.f;
}

#define SCAN_T float
#define SCAN_FN(name) name##_f32
#ifdef SCAN_LIBM_EXPF /* libm's expf (vectorised via glibc's libmvec under -ffast-math) */
#define SCAN_EXP expf
#else
#define SCAN_EXP scan_expf
#endif
#include __FILE__
#undef SCAN_T
#undef SCAN_FN
#undef SCAN_EXP

#define SCAN_T double
#define SCAN_FN(name) name##_f64
#define SCAN_EXP exp
#include __FILE__
#undef SCAN_T
#undef SCAN_FN
#undef SCAN_EXP

#else /* ---- body, included once per element type ------------------------------------------- */

#define T SCAN_T
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* Task index → batch b, group g, first channel e0 (within the group) and width w of the block. */
static void SCAN_FN(task)(int64_t task, int64_t groups, int64_t per, int64_t nblk, int64_t *b,
                          int64_t *g, int64_t *e0, int64_t *w) {
    int64_t blk = task % nblk, bg = task / nblk;
    int64_t bw = (per + nblk - 1) / nblk;
    *b = bg / groups;
    *g = bg % groups;
    *e0 = blk * bw;
    *w = MIN(bw, per - blk * bw);
}

/* buf[tt][e] = x[e * L + t0 + tt] for tt < tl, e < w. */
static void SCAN_FN(load_tile)(T *restrict buf, const T *restrict x, int64_t L, int64_t t0,
                               int64_t tl, int64_t w) {
    for (int64_t s0 = 0; s0 < tl; s0 += 16) { /* 16-step blocks: both sides stay in L1 */
        const int64_t s1 = MIN(tl, s0 + 16);
        for (int64_t e = 0; e < w; ++e) {
            const T *restrict row = x + e * L + t0;
            for (int64_t tt = s0; tt < s1; ++tt) buf[tt * w + e] = row[tt];
        }
    }
}

static void SCAN_FN(store_tile)(T *restrict x, const T *restrict buf, int64_t L, int64_t t0,
                                int64_t tl, int64_t w) {
    for (int64_t s0 = 0; s0 < tl; s0 += 16) {
        const int64_t s1 = MIN(tl, s0 + 16);
        for (int64_t e = 0; e < w; ++e) {
            T *restrict row = x + e * L + t0;
            for (int64_t tt = s0; tt < s1; ++tt) row[tt] = buf[tt * w + e];
        }
    }
}

#ifndef SCAN_IO
#define SCAN_IO 256
#endif
/* Steps per I/O tile: a multiple of the checkpoint chunk, about SCAN_IO. */
static int64_t SCAN_FN(io_tile)(int64_t chunk) { return chunk >= SCAN_IO ? chunk : chunk * (SCAN_IO / chunk); }

/* The step functions take restrict parameters (GCC ignores restrict on block-scope pointers):
 * without it the channel loops need more alias checks than the vectoriser allows. */

/* One forward step t: h ← exp(Δ A) h + Δ u B_t, y_t = Σ_n C_tn h_n. bc = B + t, cc = C + t. */
static inline void SCAN_FN(fwd_step)(int64_t w, int64_t N, int64_t L, const T *restrict dtt,
                                     const T *restrict ut, const T *restrict At, const T *restrict bc,
                                     const T *restrict cc, T *restrict h, T *restrict yt) {
    for (int64_t e = 0; e < w; ++e) yt[e] = 0;
    for (int64_t n = 0; n < N; ++n) {
        const T bn = bc[n * L], cn = cc[n * L];
        T *restrict hn = h + n * w;
        const T *restrict an = At + n * w;
        for (int64_t e = 0; e < w; ++e) {
            T hv = SCAN_EXP(dtt[e] * an[e]) * hn[e] + dtt[e] * ut[e] * bn;
            hn[e] = hv;
            yt[e] += cn * hv;
        }
    }
}

/* Backward recompute of one step: decays ac = exp(Δ A), state hc = ac hp + Δ u B_t. */
static inline void SCAN_FN(recompute_step)(int64_t w, int64_t N, int64_t L, const T *restrict dtt,
                                           const T *restrict ut, const T *restrict At,
                                           const T *restrict bc, const T *restrict hp, T *restrict hc,
                                           T *restrict ac) {
    for (int64_t n = 0; n < N; ++n) {
        const T bn = bc[n * L];
        for (int64_t e = 0; e < w; ++e) {
            T a = SCAN_EXP(dtt[e] * At[n * w + e]);
            ac[n * w + e] = a;
            hc[n * w + e] = a * hp[n * w + e] + dtt[e] * ut[e] * bn;
        }
    }
}

/* One adjoint step t. G holds a_{t+1} G_{t+1} on entry and a_t G_t on exit; dB, dC (+ t) get
 * their values at t, dut/ddtt the input gradients, dA accumulates. */
static inline void SCAN_FN(adjoint_step)(int64_t w, int64_t N, int64_t L, const T *restrict dtt,
                                         const T *restrict ut, const T *restrict dyt,
                                         const T *restrict At, const T *restrict bc,
                                         const T *restrict cc, const T *restrict hp,
                                         const T *restrict hc, const T *restrict ac, T *restrict G,
                                         T *restrict dA, T *restrict sgb, T *restrict sga,
                                         T *restrict db, T *restrict dc, T *restrict dut,
                                         T *restrict ddtt) {
    for (int64_t e = 0; e < w; ++e) {
        sgb[e] = 0;
        sga[e] = 0;
    }
    for (int64_t n = 0; n < N; ++n) {
        const T bn = bc[n * L], cn = cc[n * L];
        const int64_t o = n * w;
        T sc = 0, sb = 0;
        for (int64_t e = 0; e < w; ++e) {
            T gv = G[o + e] + cn * dyt[e];  /* dL/dh_t */
            T gh = gv * ac[o + e] * hp[o + e]; /* dL/d(dt_t A) */
            sc += dyt[e] * hc[o + e];
            sb += gv * dtt[e] * ut[e];
            sgb[e] += gv * bn;
            sga[e] += gh * At[o + e];
            dA[o + e] += gh * dtt[e];
            G[o + e] = gv * ac[o + e]; /* carried to t - 1 */
        }
        dc[n * L] = sc;
        db[n * L] = sb;
    }
    for (int64_t e = 0; e < w; ++e) {
        dut[e] = dtt[e] * sgb[e];
        ddtt[e] = sga[e] + ut[e] * sgb[e];
    }
}

/* Forward for tasks [task0, task1). hs may be NULL (no backward). Returns 0, -1 if out of memory. */
int SCAN_FN(scan_fwd)(const T *u, const T *dt, const T *A, const T *Bm, const T *Cm, T *y, T *hs,
                      int64_t batch, int64_t dim, int64_t L, int64_t groups, int64_t N, int64_t nblk,
                      int64_t chunk, int64_t task0, int64_t task1) {
    (void)batch;
    const int64_t per = dim / groups, n_chunks = (L + chunk - 1) / chunk;
    const int64_t bw = (per + nblk - 1) / nblk, tio = SCAN_FN(io_tile)(chunk);
    T *mem = (T *)malloc(sizeof(T) * (size_t)(2 * N * bw + 3 * tio * bw));
    if (!mem) return -1;
    fpstate_t fp = ftz_on();
    T *h = mem, *At = h + N * bw, *dtb = At + N * bw, *ub = dtb + tio * bw, *yb = ub + tio * bw;
    for (int64_t task = task0; task < task1; ++task) {
        int64_t b, g, e0, w;
        SCAN_FN(task)(task, groups, per, nblk, &b, &g, &e0, &w);
        const int64_t d0 = g * per + e0, off = (b * dim + d0) * L;
        const T *BB = Bm + (b * groups + g) * N * L, *CC = Cm + (b * groups + g) * N * L;
        for (int64_t n = 0; n < N; ++n)
            for (int64_t e = 0; e < w; ++e) {
                At[n * w + e] = A[(d0 + e) * N + n];
                h[n * w + e] = 0;
            }
        for (int64_t t0 = 0; t0 < L; t0 += tio) {
            const int64_t tl = MIN(tio, L - t0);
            SCAN_FN(load_tile)(dtb, dt + off, L, t0, tl, w);
            SCAN_FN(load_tile)(ub, u + off, L, t0, tl, w);
            for (int64_t tt = 0; tt < tl; ++tt) {
                const int64_t t = t0 + tt;
                if (hs && t % chunk == 0) {
                    T *hk = hs + ((b * n_chunks + t / chunk) * N) * dim + d0;
                    for (int64_t n = 0; n < N; ++n) memcpy(hk + n * dim, h + n * w, sizeof(T) * (size_t)w);
                }
                SCAN_FN(fwd_step)(w, N, L, dtb + tt * w, ub + tt * w, At, BB + t, CC + t, h, yb + tt * w);
            }
            SCAN_FN(store_tile)(y + off, yb, L, t0, tl, w);
        }
    }
    ftz_off(fp);
    free(mem);
    return 0;
}

/* Backward for tasks [task0, task1). Writes du, ddt (B, D, L) for the task's channels, dA_p
 * (B, D, N) (the caller sums over batch), dB_p, dC_p (nblk, B, G, N, L) (summed over blocks). */
int SCAN_FN(scan_bwd)(const T *u, const T *dt, const T *A, const T *Bm, const T *Cm, const T *dy,
                      const T *hs, T *du, T *ddt, T *dA_p, T *dB_p, T *dC_p, int64_t batch,
                      int64_t dim, int64_t L, int64_t groups, int64_t N, int64_t nblk, int64_t chunk,
                      int64_t task0, int64_t task1) {
    const int64_t per = dim / groups, n_chunks = (L + chunk - 1) / chunk;
    const int64_t bw = (per + nblk - 1) / nblk, nw = N * bw, tio = SCAN_FN(io_tile)(chunk);
    T *mem = (T *)malloc(sizeof(T) * (size_t)(3 * nw + (2 * chunk + 1) * nw + 5 * tio * bw + 2 * bw));
    if (!mem) return -1;
    fpstate_t fp = ftz_on();
    T *At = mem, *G = At + nw, *dAl = G + nw, *S = dAl + nw, *Dc = S + (chunk + 1) * nw;
    T *dtb = Dc + chunk * nw, *ub = dtb + tio * bw, *dyb = ub + tio * bw, *dub = dyb + tio * bw;
    T *ddtb = dub + tio * bw, *sgb = ddtb + tio * bw, *sga = sgb + bw;
    for (int64_t task = task0; task < task1; ++task) {
        int64_t b, g, e0, w;
        SCAN_FN(task)(task, groups, per, nblk, &b, &g, &e0, &w);
        const int64_t blk = task % nblk, d0 = g * per + e0, wn = N * w, off = (b * dim + d0) * L;
        const T *BB = Bm + (b * groups + g) * N * L, *CC = Cm + (b * groups + g) * N * L;
        T *dBB = dB_p + ((blk * batch + b) * groups + g) * N * L;
        T *dCC = dC_p + ((blk * batch + b) * groups + g) * N * L;
        for (int64_t n = 0; n < N; ++n)
            for (int64_t e = 0; e < w; ++e) At[n * w + e] = A[(d0 + e) * N + n];
        memset(G, 0, sizeof(T) * (size_t)wn); /* a_{t+1} G_{t+1}, carried backwards */
        memset(dAl, 0, sizeof(T) * (size_t)wn);
        for (int64_t t0 = ((L - 1) / tio) * tio; t0 >= 0; t0 -= tio) {
            const int64_t tl = MIN(tio, L - t0);
            SCAN_FN(load_tile)(dtb, dt + off, L, t0, tl, w);
            SCAN_FN(load_tile)(ub, u + off, L, t0, tl, w);
            SCAN_FN(load_tile)(dyb, dy + off, L, t0, tl, w);
            for (int64_t c0 = ((tl - 1) / chunk) * chunk; c0 >= 0; c0 -= chunk) {
                const int64_t cl = MIN(chunk, tl - c0);
                const T *hk = hs + ((b * n_chunks + (t0 + c0) / chunk) * N) * dim + d0;
                for (int64_t n = 0; n < N; ++n) memcpy(S + n * w, hk + n * dim, sizeof(T) * (size_t)w);
                /* Recompute the chunk's states S[s+1] and decays Dc[s]. */
                for (int64_t s = 0; s < cl; ++s) {
                    const int64_t tt = c0 + s;
                    SCAN_FN(recompute_step)(w, N, L, dtb + tt * w, ub + tt * w, At, BB + t0 + tt,
                                            S + s * wn, S + (s + 1) * wn, Dc + s * wn);
                }
                /* Adjoint, last step first. */
                for (int64_t s = cl - 1; s >= 0; --s) {
                    const int64_t tt = c0 + s, t = t0 + tt;
                    SCAN_FN(adjoint_step)(w, N, L, dtb + tt * w, ub + tt * w, dyb + tt * w, At, BB + t,
                                          CC + t, S + s * wn, S + (s + 1) * wn, Dc + s * wn, G, dAl,
                                          sgb, sga, dBB + t, dCC + t, dub + tt * w, ddtb + tt * w);
                }
            }
            SCAN_FN(store_tile)(du + off, dub, L, t0, tl, w);
            SCAN_FN(store_tile)(ddt + off, ddtb, L, t0, tl, w);
        }
        for (int64_t n = 0; n < N; ++n)
            for (int64_t e = 0; e < w; ++e) dA_p[(b * dim + d0 + e) * N + n] = dAl[n * w + e];
    }
    ftz_off(fp);
    free(mem);
    return 0;
}

#undef T
#undef MIN

#endif
