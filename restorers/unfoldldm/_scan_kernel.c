/* Compiled CPU selective scan (forward and backward), float32 and float64.
 *
 * Plain C, no torch headers: restorers/unfoldldm/_scan_compiled.py compiles this file on first use
 * with the system C compiler (cached under $BENCH_HOME/kernels, keyed by source hash and flags),
 * loads it with ctypes and calls it on the data pointers of contiguous tensors.
 *
 * Layout (mamba-ssm's): u, dt, y, du, ddt (B, D, L); A (D, N); Bm, Cm (B, G, N, L); channel d
 * belongs to group d / (D/G). dt is Δ after bias/softplus. A *task* is one (batch, group,
 * channel block) triple; tasks are independent in the forward and write disjoint outputs in the
 * backward (dA, dB, dC go to per-task partial buffers that the caller sums), so the caller runs
 * task ranges on several threads.
 *
 * Inside a task, time is cut into tiles of `chunk` steps. Each tile of u/dt (and dy) is
 * transposed into a small buffer (time-major, channels innermost) so that the inner loop runs
 * over the channels of the block, contiguous and vectorisable (exp through libmvec with
 * -ffast-math on glibc). The state lives as h[n][e] (state index outer, channel inner).
 * The forward stores the state entering every tile (hs, (B, n_tiles, N, D)); the backward walks
 * the tiles in reverse, recomputes the tile's states from hs, then runs the adjoint
 *     G_t = C_t dy_t + a_{t+1} G_{t+1},   a_t = exp(Δ_t A)
 * and accumulates the gradients. Subnormals are flushed (per thread, flag restored on exit):
 * decaying states pass through the subnormal range where x86 arithmetic is 10-100x slower.
 */
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

int scan_abi_version(void) { return 1; }

#define DEFINE_SCAN(T, SUF, EXP)                                                                    \
    /* Task index → (b, g, e0, width). */                                                          \
    static void task_##SUF(int64_t task, int64_t groups, int64_t per, int64_t nblk, int64_t *b,    \
                           int64_t *g, int64_t *e0, int64_t *w) {                                  \
        int64_t blk = task % nblk, bg = task / nblk;                                                \
        int64_t bw = (per + nblk - 1) / nblk;                                                       \
        *b = bg / groups;                                                                           \
        *g = bg % groups;                                                                           \
        *e0 = blk * bw;                                                                             \
        *w = (blk + 1) * bw < per ? bw : per - blk * bw;                                            \
    }                                                                                               \
                                                                                                    \
    /* Copy x[row e, t0 + tt] (rows of length L) into buf[tt][e] (tt < tl, e < w). */              \
    static void load_tile_##SUF(T *restrict buf, const T *restrict x, int64_t L, int64_t t0,       \
                                int64_t tl, int64_t w) {                                            \
        for (int64_t e = 0; e < w; ++e) {                                                           \
            const T *row = x + e * L + t0;                                                          \
            for (int64_t tt = 0; tt < tl; ++tt) buf[tt * w + e] = row[tt];                          \
        }                                                                                           \
    }                                                                                               \
                                                                                                    \
    static void store_tile_##SUF(T *restrict x, const T *restrict buf, int64_t L, int64_t t0,      \
                                 int64_t tl, int64_t w) {                                           \
        for (int64_t e = 0; e < w; ++e) {                                                           \
            T *row = x + e * L + t0;                                                                \
            for (int64_t tt = 0; tt < tl; ++tt) row[tt] = buf[tt * w + e];                          \
        }                                                                                           \
    }                                                                                               \
                                                                                                    \
    /* Forward for tasks [task0, task1). hs may be NULL (no backward). Returns 0, or -1 when out   \
     * of memory. */                                                                                \
    int scan_fwd_##SUF(const T *u, const T *dt, const T *A, const T *Bm, const T *Cm, T *y, T *hs, \
                       int64_t batch, int64_t dim, int64_t L, int64_t groups, int64_t N,           \
                       int64_t nblk, int64_t chunk, int64_t task0, int64_t task1) {                 \
        (void)batch;                                                                                \
        const int64_t per = dim / groups, n_tiles = (L + chunk - 1) / chunk;                       \
        const int64_t bw = (per + nblk - 1) / nblk;                                                 \
        T *mem = (T *)malloc(sizeof(T) * (size_t)(2 * N * bw + 4 * chunk * bw));                    \
        if (!mem) return -1;                                                                        \
        fpstate_t fp = ftz_on();                                                                    \
        T *h = mem, *At = h + N * bw, *dtb = At + N * bw, *xb = dtb + chunk * bw;                  \
        T *yb = xb + chunk * bw, *ub = yb + chunk * bw;                                             \
        for (int64_t task = task0; task < task1; ++task) {                                          \
            int64_t b, g, e0, w;                                                                    \
            task_##SUF(task, groups, per, nblk, &b, &g, &e0, &w);                                   \
            const int64_t d0 = g * per + e0;                                                        \
            const T *uu = u + (b * dim + d0) * L, *dd = dt + (b * dim + d0) * L;                    \
            const T *BB = Bm + (b * groups + g) * N * L, *CC = Cm + (b * groups + g) * N * L;       \
            T *yy = y + (b * dim + d0) * L;                                                         \
            for (int64_t n = 0; n < N; ++n)                                                         \
                for (int64_t e = 0; e < w; ++e) {                                                   \
                    At[n * w + e] = A[(d0 + e) * N + n];                                            \
                    h[n * w + e] = 0;                                                               \
                }                                                                                   \
            for (int64_t k = 0; k < n_tiles; ++k) {                                                 \
                const int64_t t0 = k * chunk, tl = L - t0 < chunk ? L - t0 : chunk;                 \
                if (hs) {                                                                           \
                    T *hk = hs + ((b * n_tiles + k) * N) * dim + d0;                                \
                    for (int64_t n = 0; n < N; ++n)                                                 \
                        memcpy(hk + n * dim, h + n * w, sizeof(T) * (size_t)w);                     \
                }                                                                                   \
                load_tile_##SUF(dtb, dd, L, t0, tl, w);                                             \
                load_tile_##SUF(ub, uu, L, t0, tl, w);                                              \
                for (int64_t tt = 0; tt < tl; ++tt) {                                               \
                    const T *restrict dtt = dtb + tt * w;                                           \
                    T *restrict xt = xb + tt * w, *restrict yt = yb + tt * w;                       \
                    const T *restrict ut = ub + tt * w;                                             \
                    for (int64_t e = 0; e < w; ++e) {                                               \
                        xt[e] = dtt[e] * ut[e];                                                     \
                        yt[e] = 0;                                                                  \
                    }                                                                               \
                    for (int64_t n = 0; n < N; ++n) {                                               \
                        const T bn = BB[n * L + t0 + tt], cn = CC[n * L + t0 + tt];                 \
                        T *restrict hn = h + n * w;                                                 \
                        const T *restrict an = At + n * w;                                          \
                        for (int64_t e = 0; e < w; ++e) {                                           \
                            T hv = EXP(dtt[e] * an[e]) * hn[e] + xt[e] * bn;                        \
                            hn[e] = hv;                                                             \
                            yt[e] += cn * hv;                                                       \
                        }                                                                           \
                    }                                                                               \
                }                                                                                   \
                store_tile_##SUF(yy, yb, L, t0, tl, w);                                             \
            }                                                                                       \
        }                                                                                           \
        ftz_off(fp);                                                                                \
        free(mem);                                                                                  \
        return 0;                                                                                   \
    }                                                                                               \
                                                                                                    \
    /* Backward for tasks [task0, task1). Writes du, ddt (B, D, L) for the task's channels,        \
     * dA_p (B, D, N) (sum over batch outside), dB_p, dC_p (nblk, B, G, N, L) (sum over blocks     \
     * outside). */                                                                                 \
    int scan_bwd_##SUF(const T *u, const T *dt, const T *A, const T *Bm, const T *Cm, const T *dy, \
                       const T *hs, T *du, T *ddt, T *dA_p, T *dB_p, T *dC_p, int64_t batch,        \
                       int64_t dim, int64_t L, int64_t groups, int64_t N, int64_t nblk,             \
                       int64_t chunk, int64_t task0, int64_t task1) {                               \
        const int64_t per = dim / groups, n_tiles = (L + chunk - 1) / chunk;                       \
        const int64_t bw = (per + nblk - 1) / nblk;                                                 \
        const int64_t nw = N * bw;                                                                  \
        T *mem = (T *)malloc(sizeof(T) * (size_t)(3 * nw + (2 * chunk + 1) * nw + 8 * chunk * bw + \
                                                  2 * bw));                                         \
        if (!mem) return -1;                                                                        \
        fpstate_t fp = ftz_on();                                                                    \
        T *At = mem, *G = At + nw, *dAl = G + nw;                                                  \
        T *S = dAl + nw, *Dc = S + (chunk + 1) * nw;                                                \
        T *dtb = Dc + chunk * nw, *ub = dtb + chunk * bw, *dyb = ub + chunk * bw;                   \
        T *dub = dyb + chunk * bw, *ddtb = dub + chunk * bw, *xb = ddtb + chunk * bw;               \
        T *sgb = xb + chunk * bw, *sga = sgb + bw;                                                  \
        for (int64_t task = task0; task < task1; ++task) {                                          \
            int64_t b, g, e0, w;                                                                    \
            task_##SUF(task, groups, per, nblk, &b, &g, &e0, &w);                                   \
            const int64_t blk = task % nblk, d0 = g * per + e0, wn = N * w;                         \
            const int64_t off = (b * dim + d0) * L;                                                 \
            const T *BB = Bm + (b * groups + g) * N * L, *CC = Cm + (b * groups + g) * N * L;       \
            T *dBB = dB_p + ((blk * batch + b) * groups + g) * N * L;                               \
            T *dCC = dC_p + ((blk * batch + b) * groups + g) * N * L;                               \
            for (int64_t n = 0; n < N; ++n)                                                         \
                for (int64_t e = 0; e < w; ++e) At[n * w + e] = A[(d0 + e) * N + n];               \
            memset(G, 0, sizeof(T) * (size_t)wn);   /* carry a_{t+1} G_{t+1} */                     \
            memset(dAl, 0, sizeof(T) * (size_t)wn);                                                 \
            for (int64_t k = n_tiles - 1; k >= 0; --k) {                                            \
                const int64_t t0 = k * chunk, tl = L - t0 < chunk ? L - t0 : chunk;                 \
                load_tile_##SUF(dtb, dt + off, L, t0, tl, w);                                       \
                load_tile_##SUF(ub, u + off, L, t0, tl, w);                                         \
                load_tile_##SUF(dyb, dy + off, L, t0, tl, w);                                       \
                const T *hk = hs + ((b * n_tiles + k) * N) * dim + d0;                              \
                for (int64_t n = 0; n < N; ++n)                                                     \
                    memcpy(S + n * w, hk + n * dim, sizeof(T) * (size_t)w);                         \
                /* Recompute the tile's states S[tt+1] and decays Dc[tt]. */                       \
                for (int64_t tt = 0; tt < tl; ++tt) {                                               \
                    const T *restrict dtt = dtb + tt * w, *restrict ut = ub + tt * w;               \
                    T *restrict xt = xb + tt * w;                                                   \
                    for (int64_t e = 0; e < w; ++e) xt[e] = dtt[e] * ut[e];                         \
                    for (int64_t n = 0; n < N; ++n) {                                               \
                        const T bn = BB[n * L + t0 + tt];                                           \
                        const T *restrict an = At + n * w, *restrict hp = S + tt * wn + n * w;      \
                        T *restrict hc = S + (tt + 1) * wn + n * w, *restrict ac = Dc + tt * wn + n * w; \
                        for (int64_t e = 0; e < w; ++e) {                                           \
                            T a = EXP(dtt[e] * an[e]);                                              \
                            ac[e] = a;                                                              \
                            hc[e] = a * hp[e] + xt[e] * bn;                                         \
                        }                                                                           \
                    }                                                                               \
                }                                                                                   \
                /* Adjoint, last step of the tile first. */                                        \
                for (int64_t tt = tl - 1; tt >= 0; --tt) {                                          \
                    const int64_t t = t0 + tt;                                                      \
                    const T *restrict dtt = dtb + tt * w, *restrict ut = ub + tt * w;               \
                    const T *restrict dyt = dyb + tt * w, *restrict xt = xb + tt * w;               \
                    for (int64_t e = 0; e < w; ++e) {                                               \
                        sgb[e] = 0;                                                                 \
                        sga[e] = 0;                                                                 \
                    }                                                                               \
                    for (int64_t n = 0; n < N; ++n) {                                               \
                        const T bn = BB[n * L + t], cn = CC[n * L + t];                             \
                        const T *restrict an = At + n * w, *restrict hp = S + tt * wn + n * w;      \
                        const T *restrict hc = S + (tt + 1) * wn + n * w;                           \
                        const T *restrict ac = Dc + tt * wn + n * w;                                \
                        T *restrict gn = G + n * w, *restrict dan = dAl + n * w;                    \
                        T sc = 0, sb = 0;                                                           \
                        for (int64_t e = 0; e < w; ++e) {                                           \
                            T gv = gn[e] + cn * dyt[e];        /* ∂L/∂h_t */                        \
                            T gh = gv * ac[e] * hp[e];         /* ∂L/∂(Δ_t A) */                    \
                            sc += dyt[e] * hc[e];                                                   \
                            sb += gv * xt[e];                                                       \
                            sgb[e] += gv * bn;                                                      \
                            sga[e] += gh * an[e];                                                   \
                            dan[e] += gh * dtt[e];                                                  \
                            gn[e] = gv * ac[e];                /* carry to t-1 */                   \
                        }                                                                           \
                        dCC[n * L + t] = sc;                                                        \
                        dBB[n * L + t] = sb;                                                        \
                    }                                                                               \
                    T *restrict dut = dub + tt * w, *restrict ddtt = ddtb + tt * w;                 \
                    for (int64_t e = 0; e < w; ++e) {                                               \
                        dut[e] = dtt[e] * sgb[e];                                                   \
                        ddtt[e] = sga[e] + ut[e] * sgb[e];                                          \
                    }                                                                               \
                }                                                                                   \
                store_tile_##SUF(du + off, dub, L, t0, tl, w);                                      \
                store_tile_##SUF(ddt + off, ddtb, L, t0, tl, w);                                    \
            }                                                                                       \
            for (int64_t n = 0; n < N; ++n)                                                         \
                for (int64_t e = 0; e < w; ++e) dA_p[(b * dim + d0 + e) * N + n] = dAl[n * w + e];  \
        }                                                                                           \
        ftz_off(fp);                                                                                \
        free(mem);                                                                                  \
        return 0;                                                                                   \
    }

#ifdef NOEXP
#define EXPF(x) (1.0f + (x))
#else
#define EXPF expf
#endif
DEFINE_SCAN(float, f32, EXPF)
DEFINE_SCAN(double, f64, exp)
