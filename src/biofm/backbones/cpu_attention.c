/* Packed (variable-length) self-attention for CPUs with AVX-512, head width 16.
 *
 * biofm.backbones.native compiles this file on first use (cc -O3 -march=native
 * -fopenmp) and calls it through ctypes; without a compiler or AVX-512 biofm keeps
 * PyTorch's kernel. Why it exists: at the head width of ESM-2 8M (16) PyTorch's
 * CPU flash-attention kernel reaches about a quarter of the machine's matmul peak
 * (its blocked GEMMs have an inner dimension of 16 and its softmax runs between
 * them), and attention is a third of a training step. Here a head's 16 values
 * are one 512-bit register, so every inner product of a block of 8 queries with
 * 16 keys is 16 broadcast FMAs on keys held in registers.
 *
 * Layout: q, k, v, o, dq, dk, dv are (N, H, 16) fp32, C-contiguous; segment s
 * holds rows cu[s] .. cu[s+1]-1 and attends only to itself (causal or not).
 * lse (N, H) is the log2-sum-exp of each row's scaled scores, saved by the forward
 * for the backward. Each (segment, head) pair is computed by one thread, start to
 * end, so results do not depend on the number of threads or their schedule.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__AVX512F__)
#error "biofm's CPU attention kernel needs AVX-512F"
#endif

#define HD 16 /* head width */
#define R 8   /* query rows per block */
#define LOG2E 1.4426950408889634f

/* 2^x for x <= 0 (scores minus their maximum), relative error ~1e-7; lanes below
 * -125 (masked keys: -inf) give exactly 0, never a denormal. */
static inline __m512 exp2_ps(__m512 x) {
    __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-125.f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-125.f));
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_mul_ps(_mm512_sub_ps(x, n), _mm512_set1_ps(0.69314718055994531f));
    __m512 p = _mm512_set1_ps(1.f / 5040.f); /* e^f, |f| <= 0.347: Taylor, degree 7 */
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 720.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 120.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 24.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 6.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
    return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
}

/* lanes jt + l with jt + l < limit */
static inline __mmask16 lanes_below(int limit, int jt) {
    int n = limit - jt;
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* t[d * Lp + j] = x[j * rs + d]; columns L .. Lp-1 zero */
static void transpose(const float *x, float *t, int L, int Lp, long rs) {
    for (int j = 0; j < L; j++) {
        const float *xj = x + (long)j * rs;
        for (int d = 0; d < HD; d++) t[(long)d * Lp + j] = xj[d];
    }
    for (int d = 0; d < HD; d++)
        for (int j = L; j < Lp; j++) t[(long)d * Lp + j] = 0.f;
}

/* rows of a block, scaled; rows nr .. R-1 zero */
static void load_rows(const float *x, float out[R][HD], int nr, long rs, float scale) {
    for (int r = 0; r < R; r++)
        for (int d = 0; d < HD; d++) out[r][d] = r < nr ? x[(long)r * rs + d] * scale : 0.f;
}

/* S[r][jt..jt+15] = sum_d a[r][d] * t[d][jt..jt+15] for the R rows, lanes at or
 * beyond each row's key limit set to -inf; the 16 key columns stay in registers. */
static inline void scores_tile(const float a[R][HD], const float *t, int Lp, int jt,
                               const int limit[R], __m512 out[R]) {
    __m512 kt[HD];
#pragma GCC unroll 16
    for (int d = 0; d < HD; d++) kt[d] = _mm512_load_ps(t + (long)d * Lp + jt);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        __m512 acc = _mm512_mul_ps(_mm512_set1_ps(a[r][0]), kt[0]);
#pragma GCC unroll 15
        for (int d = 1; d < HD; d++) acc = _mm512_fmadd_ps(_mm512_set1_ps(a[r][d]), kt[d], acc);
        out[r] = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), lanes_below(limit[r], jt), acc);
    }
}

/* acc[r] = sum_j w[r][j] x_j over keys j < kend: the R rows of weights w (row stride
 * Lp) times the 16-wide rows x_j (stride rs); one load of x_j serves all R rows */
static inline void weighted_rows(const float *w, int Lp, const float *x, long rs, int kend,
                                 __m512 acc[R]) {
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int j = 0; j < kend; j++) {
        const __m512 xj = _mm512_loadu_ps(x + (long)j * rs);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(w[(long)r * Lp + j]), xj, acc[r]);
    }
}

typedef struct {
    int seg, len;
} item_t;

static int by_length_desc(const void *a, const void *b) {
    const item_t *x = a, *y = b;
    return y->len - x->len;
}

/* (segment, head) work items, longest segments first (they take longest) */
static item_t *work_items(const int32_t *cu, int nseg, int *longest) {
    item_t *items = malloc(sizeof(item_t) * (size_t)(nseg > 0 ? nseg : 1));
    *longest = 0;
    for (int s = 0; s < nseg; s++) {
        items[s].seg = s;
        items[s].len = cu[s + 1] - cu[s];
        if (items[s].len > *longest) *longest = items[s].len;
    }
    qsort(items, (size_t)nseg, sizeof(item_t), by_length_desc);
    return items;
}

static void *scratch(size_t floats) {
    size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes > 0 ? bytes : 64);
}

static void forward_one(const float *q, const float *k, const float *v, float *o, float *lse,
                        int L, int H, int causal, float scale, float *Kt, float *P) {
    const long rs = (long)H * HD;
    const int Lp = (L + 15) & ~15;
    transpose(k, Kt, L, Lp, rs);
    for (int i0 = 0; i0 < L; i0 += R) {
        const int nr = L - i0 < R ? L - i0 : R;
        float Qb[R][HD] __attribute__((aligned(64)));
        load_rows(q + (long)i0 * rs, Qb, nr, rs, scale * LOG2E);
        const int kend = causal ? (i0 + R < L ? i0 + R : L) : L;
        const int kp = (kend + 15) & ~15;
        int limit[R];
        for (int r = 0; r < R; r++) limit[r] = causal ? (i0 + r + 1 < kend ? i0 + r + 1 : kend) : kend;
        __m512 mx[R];
        for (int r = 0; r < R; r++) mx[r] = _mm512_set1_ps(-INFINITY);
        for (int jt = 0; jt < kp; jt += 16) {
            __m512 s[R];
            scores_tile(Qb, Kt, Lp, jt, limit, s);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                _mm512_store_ps(P + (long)r * Lp + jt, s[r]);
                mx[r] = _mm512_max_ps(mx[r], s[r]);
            }
        }
        float inv[R];
        for (int r = 0; r < R; r++) {
            float *row = P + (long)r * Lp;
            if (r >= nr) { /* padding rows: no weight */
                memset(row, 0, sizeof(float) * (size_t)kp);
                inv[r] = 0.f;
                continue;
            }
            const float m = _mm512_reduce_max_ps(mx[r]);
            const __m512 mv = _mm512_set1_ps(m);
            __m512 sum = _mm512_setzero_ps();
            for (int jt = 0; jt < kp; jt += 16) {
                __m512 p = exp2_ps(_mm512_sub_ps(_mm512_load_ps(row + jt), mv));
                _mm512_store_ps(row + jt, p);
                sum = _mm512_add_ps(sum, p);
            }
            const float l = _mm512_reduce_add_ps(sum);
            inv[r] = 1.f / l;
            lse[(long)(i0 + r) * H] = m + log2f(l);
        }
        __m512 acc[R];
        weighted_rows(P, Lp, v, rs, kend, acc);
        for (int r = 0; r < nr; r++)
            _mm512_storeu_ps(o + (long)(i0 + r) * rs, _mm512_mul_ps(acc[r], _mm512_set1_ps(inv[r])));
    }
}

/* 0 when cu holds nseg + 1 offsets rising from 0 to n, else -1 (nothing is computed) */
int biofm_check_offsets(const int32_t *cu, int nseg, long n) {
    if (nseg < 0 || cu[0] != 0 || cu[nseg] != n) return -1;
    for (int s = 0; s < nseg; s++)
        if (cu[s + 1] < cu[s]) return -1;
    return 0;
}

/* o = softmax(scale * q k^T) v per segment and head; lse saved for the backward */
void biofm_attention_forward(const float *q, const float *k, const float *v, float *o, float *lse,
                             const int32_t *cu, int nseg, int H, int causal, float scale,
                             int threads) {
    int longest;
    item_t *items = work_items(cu, nseg, &longest);
    const int Lp = (longest + 15) & ~15;
    const long n_items = (long)nseg * H;
#pragma omp parallel num_threads(threads)
    {
        float *Kt = scratch((size_t)HD * Lp), *P = scratch((size_t)R * Lp);
#pragma omp for schedule(dynamic, 1)
        for (long it = 0; it < n_items; it++) {
            const item_t seg = items[it / H];
            const int h = (int)(it % H);
            const long off = ((long)cu[seg.seg] * H + h) * HD;
            forward_one(q + off, k + off, v + off, o + off, lse + (long)cu[seg.seg] * H + h,
                        seg.len, H, causal, scale, Kt, P);
        }
        free(Kt);
        free(P);
    }
    free(items);
}

static void backward_one(const float *q, const float *k, const float *v, const float *o,
                         const float *dout, const float *lse, float *dq, float *dk, float *dv,
                         int L, int H, int causal, float scale, float *Kt, float *Vt, float *P,
                         float *dS, float *dK, float *dV) {
    const long rs = (long)H * HD;
    const int Lp = (L + 15) & ~15;
    transpose(k, Kt, L, Lp, rs);
    transpose(v, Vt, L, Lp, rs);
    memset(dK, 0, sizeof(float) * (size_t)(Lp + 1) * HD);
    memset(dV, 0, sizeof(float) * (size_t)(Lp + 1) * HD);
    for (int i0 = 0; i0 < L; i0 += R) {
        const int nr = L - i0 < R ? L - i0 : R;
        float Qs[R][HD] __attribute__((aligned(64))), Qr[R][HD] __attribute__((aligned(64)));
        float dO[R][HD] __attribute__((aligned(64)));
        load_rows(q + (long)i0 * rs, Qs, nr, rs, scale * LOG2E);
        load_rows(q + (long)i0 * rs, Qr, nr, rs, 1.f);
        load_rows(dout + (long)i0 * rs, dO, nr, rs, 1.f);
        __m512 lse_r[R], D_r[R];
        for (int r = 0; r < R; r++) {
            if (r < nr) {
                const __m512 Or = _mm512_loadu_ps(o + (long)(i0 + r) * rs);
                D_r[r] = _mm512_set1_ps(_mm512_reduce_add_ps(_mm512_mul_ps(Or, _mm512_load_ps(dO[r]))));
                lse_r[r] = _mm512_set1_ps(lse[(long)(i0 + r) * H]);
            } else {
                D_r[r] = _mm512_setzero_ps();
                lse_r[r] = _mm512_set1_ps(INFINITY); /* P = 0 */
            }
        }
        const int kend = causal ? (i0 + R < L ? i0 + R : L) : L;
        const int kp = (kend + 15) & ~15;
        int limit[R];
        for (int r = 0; r < R; r++) limit[r] = causal ? (i0 + r + 1 < kend ? i0 + r + 1 : kend) : kend;
        /* P = exp2(S - lse), then dS = P * (dO v^T - D) */
        for (int jt = 0; jt < kp; jt += 16) {
            __m512 s[R];
            scores_tile(Qs, Kt, Lp, jt, limit, s);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
                _mm512_store_ps(P + (long)r * Lp + jt, exp2_ps(_mm512_sub_ps(s[r], lse_r[r])));
        }
        const int none[R] = {kp, kp, kp, kp, kp, kp, kp, kp};
        for (int jt = 0; jt < kp; jt += 16) {
            __m512 dp[R];
            scores_tile(dO, Vt, Lp, jt, none, dp);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const __m512 p = _mm512_load_ps(P + (long)r * Lp + jt);
                _mm512_store_ps(dS + (long)r * Lp + jt, _mm512_mul_ps(p, _mm512_sub_ps(dp[r], D_r[r])));
            }
        }
        /* dq rows of the block: sum_j dS k_j */
        __m512 acc[R];
        weighted_rows(dS, Lp, k, rs, kend, acc);
        for (int r = 0; r < nr; r++)
            _mm512_storeu_ps(dq + (long)(i0 + r) * rs, _mm512_mul_ps(acc[r], _mm512_set1_ps(scale)));
        /* dk_j += sum_r dS q_r, dv_j += sum_r P dO_r: two keys at a time, even and odd
         * rows in separate chains (the FMAs' latency) */
        __m512 qv[R], ov[R];
        for (int r = 0; r < R; r++) {
            qv[r] = _mm512_load_ps(Qr[r]);
            ov[r] = _mm512_load_ps(dO[r]);
        }
        for (int j = 0; j < kend; j += 2) { /* dK, dV have a spare row for odd kend */
            __m512 ka[2][2], va[2][2];
#pragma GCC unroll 2
            for (int u = 0; u < 2; u++) {
                ka[u][0] = _mm512_load_ps(dK + (long)(j + u) * HD);
                va[u][0] = _mm512_load_ps(dV + (long)(j + u) * HD);
                ka[u][1] = _mm512_setzero_ps();
                va[u][1] = _mm512_setzero_ps();
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
#pragma GCC unroll 2
                for (int u = 0; u < 2; u++) {
                    ka[u][r & 1] = _mm512_fmadd_ps(_mm512_set1_ps(dS[(long)r * Lp + j + u]), qv[r], ka[u][r & 1]);
                    va[u][r & 1] = _mm512_fmadd_ps(_mm512_set1_ps(P[(long)r * Lp + j + u]), ov[r], va[u][r & 1]);
                }
            }
#pragma GCC unroll 2
            for (int u = 0; u < 2; u++) {
                _mm512_store_ps(dK + (long)(j + u) * HD, _mm512_add_ps(ka[u][0], ka[u][1]));
                _mm512_store_ps(dV + (long)(j + u) * HD, _mm512_add_ps(va[u][0], va[u][1]));
            }
        }
    }
    const __m512 sv = _mm512_set1_ps(scale);
    for (int j = 0; j < L; j++) {
        _mm512_storeu_ps(dk + (long)j * rs, _mm512_mul_ps(_mm512_load_ps(dK + (long)j * HD), sv));
        _mm512_storeu_ps(dv + (long)j * rs, _mm512_load_ps(dV + (long)j * HD));
    }
}

/* gradients of biofm_attention_forward: dq, dk, dv from dout, with o and lse saved */
void biofm_attention_backward(const float *q, const float *k, const float *v, const float *o,
                              const float *dout, const float *lse, float *dq, float *dk, float *dv,
                              const int32_t *cu, int nseg, int H, int causal, float scale,
                              int threads) {
    int longest;
    item_t *items = work_items(cu, nseg, &longest);
    const int Lp = (longest + 15) & ~15;
    const long n_items = (long)nseg * H;
#pragma omp parallel num_threads(threads)
    {
        float *Kt = scratch((size_t)HD * Lp), *Vt = scratch((size_t)HD * Lp);
        float *P = scratch((size_t)R * Lp), *dS = scratch((size_t)R * Lp);
        float *dK = scratch((size_t)(Lp + 1) * HD), *dV = scratch((size_t)(Lp + 1) * HD);
#pragma omp for schedule(dynamic, 1)
        for (long it = 0; it < n_items; it++) {
            const item_t seg = items[it / H];
            const int h = (int)(it % H);
            const long off = ((long)cu[seg.seg] * H + h) * HD;
            backward_one(q + off, k + off, v + off, o + off, dout + off,
                         lse + (long)cu[seg.seg] * H + h, dq + off, dk + off, dv + off,
                         seg.len, H, causal, scale, Kt, Vt, P, dS, dK, dV);
        }
        free(Kt); free(Vt); free(P); free(dS); free(dK); free(dV);
    }
    free(items);
}

/* Rotary positions (rotate-half convention of ESM-2 / GPT-NeoX) on 16-wide heads:
 * y = x * cos + [-x2, x1] * sin per head, x and y (rows, H, 16), cos and sin
 * (rows, 16); one pass over memory where the unfused form takes six. */
void biofm_rotary_forward(const float *x, const float *cos, const float *sin, float *y,
                          long rows, int H, int threads) {
    const __m512i swap = _mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
    const __m512 sign = _mm512_set_ps(1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long t = 0; t < rows; t++) {
        const __m512 c = _mm512_loadu_ps(cos + t * HD);
        const __m512 s = _mm512_mul_ps(_mm512_loadu_ps(sin + t * HD), sign);
        for (int h = 0; h < H; h++) {
            const long off = (t * H + h) * HD;
            const __m512 v = _mm512_loadu_ps(x + off);
            const __m512 r = _mm512_permutexvar_ps(swap, v); /* [x2, x1] */
            _mm512_storeu_ps(y + off, _mm512_fmadd_ps(r, s, _mm512_mul_ps(v, c)));
        }
    }
}

/* its gradient: dx = g * cos + [u2, -u1] with u = g * sin */
void biofm_rotary_backward(const float *g, const float *cos, const float *sin, float *dx,
                           long rows, int H, int threads) {
    const __m512i swap = _mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
    const __m512 sign = _mm512_set_ps(-1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1, 1);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long t = 0; t < rows; t++) {
        const __m512 c = _mm512_loadu_ps(cos + t * HD);
        const __m512 s = _mm512_loadu_ps(sin + t * HD);
        for (int h = 0; h < H; h++) {
            const long off = (t * H + h) * HD;
            const __m512 v = _mm512_loadu_ps(g + off);
            const __m512 u = _mm512_permutexvar_ps(swap, _mm512_mul_ps(v, s)); /* [u2, u1] */
            _mm512_storeu_ps(dx + off, _mm512_fmadd_ps(u, sign, _mm512_mul_ps(v, c)));
        }
    }
}
