/*
 * quant.c - CPU quantizers of the block weight formats (see quant.h): the
 * loader calls them on each chunk of rows while it streams weights to the GPU.
 *
 * Owns: the block arithmetic, bit-exact with ggml's reference quantizers
 * (tests/check_quant.c compares them with tests/ref/quant_ref.c).
 * Must not touch: Vulkan, files, threads.
 */
#include <math.h>
#include <string.h>

#include "model.h"
#include "quant.h"

/* The float -> small integer conversions below are ggml's casts, made total:
 * a non-finite product (only when 1/d overflowed) gives 0 instead of UB. */

/* roundf(v) (halves away from zero) for |v| < 2^23, inline: v - trunc(v) is
 * exact there. */
static float round_away(float v) {
    float t = (float)(int32_t)v;
    float f = v - t;
    return t + (float)((f >= 0.5f) - (f <= -0.5f)); /* branch-free: the sign is random */
}

void lg_quantize_q8_0(const float *x, size_t n, int8_t *qs, uint16_t *d) {
    for (size_t b = 0; b < n / LG_QK; b++) {
        const float *v = x + b * LG_QK;
        float amax = 0.0f;
        for (int j = 0; j < LG_QK; j++) {
            float a = fabsf(v[j]);
            amax = amax > a ? amax : a; /* ggml's MAX(amax, fabsf(v)) */
        }
        {
            const float dv = amax / 127.0f;
            const float id = dv != 0.0f ? 1.0f / dv : 0.0f;
            d[b] = lg_f32_to_f16(dv);
            for (int j = 0; j < LG_QK; j++) {
                float p = v[j] * id; /* |p| <= 127 (+ rounding) unless 1/d overflowed */
                qs[b * LG_QK + j] = (int8_t)(fabsf(p) < 128.0f ? (int)round_away(p) : 0);
            }
        }
    }
}

void lg_dequantize_q8_0(const int8_t *qs, const uint16_t *d, size_t n, float *y) {
    for (size_t b = 0; b < n / LG_QK; b++) {
        const float dv = lg_f16_to_f32(d[b]);
        for (int j = 0; j < LG_QK; j++)
            y[b * LG_QK + j] = (float)qs[b * LG_QK + j] * dv;
    }
}

static int q4_level(float t) {
    /* ggml: MIN(15, (int8_t)(t)) with t = x * id + 8.5, in [0.5, 16.5] when
     * finite; a non-finite t (1/d overflowed) gives 0 */
    if (!isfinite(t) || t < 0.0f)
        return 0;
    return t >= 16.0f ? 15 : (int)t;
}

void lg_quantize_q4_0(const float *x, size_t n, uint8_t *qs, uint16_t *d) {
    for (size_t b = 0; b < n / LG_QK; b++) {
        const float *v = x + b * LG_QK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < LG_QK; j++) {
            if (amax < fabsf(v[j])) {
                amax = fabsf(v[j]);
                max = v[j];
            }
        }
        {
            const float dv = max / -8.0f;
            const float id = dv != 0.0f ? 1.0f / dv : 0.0f;
            d[b] = lg_f32_to_f16(dv);
            for (int j = 0; j < LG_QK / 2; j++) {
                int lo = q4_level(v[2 * j] * id + 8.5f);
                int hi = q4_level(v[2 * j + 1] * id + 8.5f);
                qs[b * (LG_QK / 2) + j] = (uint8_t)(lo | hi << 4);
            }
        }
    }
}

void lg_dequantize_q4_0(const uint8_t *qs, const uint16_t *d, size_t n, float *y) {
    for (size_t b = 0; b < n / LG_QK; b++) {
        const float dv = lg_f16_to_f32(d[b]);
        for (int j = 0; j < LG_QK / 2; j++) {
            uint8_t q = qs[b * (LG_QK / 2) + j];
            y[b * LG_QK + 2 * j] = (float)((int)(q & 15) - 8) * dv;
            y[b * LG_QK + 2 * j + 1] = (float)((int)(q >> 4) - 8) * dv;
        }
    }
}

/* ---- q4_K ---- */

/* Round to nearest, ties to even, for |v| < 2^22, through the float adder:
 * v + 1.5 * 2^23 has the rounded value in its low mantissa bits. Defined for
 * every input (ggml's nearest_int, whose results the quantizer must repeat:
 * +-inf gives -2^22 and NaN 0, which the clamps then map to level 0). */
static int round_even(float v) {
    float t = v + 12582912.0f;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    return (int)(bits & 0x007fffffu) - 0x00400000;
}

static int clamp_int(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/*
 * Fit x ~ scale * L - min_out with L in 0..15 over one sub-block of 32,
 * minimising the w-weighted squared error: start from the plain min/max grid,
 * then try 21 grids (nmax - 1 + 0.1 k, k = 0..20, over max - min) and keep the
 * weighted least-squares (scale, min) of the best. ggml-quants.c
 * make_qkx2_quants(32, 15, x, w, L, &min, Laux, -1, 0.1, 20, false), with its
 * operation order (the result must match bit for bit).
 */
static float fit_scale_min(const float *x, const float *w, uint8_t *L, float *min_out) {
    enum { N = 32, NMAX = 15, NSTEP = 20 };
    uint8_t Lc[N];
    float lo = x[0], hi = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    float iscale, scale, best;
    for (int i = 1; i < N; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0)
        lo = 0;
    if (hi == lo) {
        memset(L, 0, N);
        *min_out = -lo;
        return 0.0f;
    }
    iscale = NMAX / (hi - lo);
    scale = 1 / iscale;
    best = 0;
    for (int i = 0; i < N; i++) {
        float diff;
        L[i] = (uint8_t)clamp_int(round_even(iscale * (x[i] - lo)), 0, NMAX);
        diff = scale * L[i] + lo - x[i];
        best += w[i] * (diff * diff);
    }
    for (int k = 0; k <= NSTEP; k++) {
        float sum_l = 0, sum_l2 = 0, sum_xl = 0, D;
        iscale = (-1.0f + 0.1f * (float)k + NMAX) / (hi - lo);
        for (int i = 0; i < N; i++) {
            int l = clamp_int(round_even(iscale * (x[i] - lo)), 0, NMAX);
            Lc[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float s = (sum_w * sum_xl - sum_x * sum_l) / D;
            float m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            float err = 0;
            if (m > 0) {
                m = 0;
                s = sum_xl / sum_l2;
            }
            for (int i = 0; i < N; i++) {
                float diff = s * Lc[i] + m - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best) {
                memcpy(L, Lc, N);
                best = err;
                scale = s;
                lo = m;
            }
        }
    }
    *min_out = -lo;
    return scale;
}

/* Sub-block j's 6-bit scale and min from the 12 packed bytes. */
static void q4k_scale_min(const uint8_t *b, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = b[j] & 63;
        *m = b[j + 4] & 63;
    } else {
        *sc = (b[j + 4] & 15) | (b[j - 4] >> 6) << 4;
        *m = (b[j + 4] >> 4) | (b[j] >> 6) << 4;
    }
}

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 255);
    p[1] = (uint8_t)(v >> 8);
}
static uint16_t get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

void lg_quantize_q4_k(const float *x, size_t n, uint8_t *blocks) {
    for (size_t sb = 0; sb < n / LG_QK_K; sb++, x += LG_QK_K) {
        uint8_t *blk = blocks + sb * LG_Q4_K_BLOCK, *packed = blk + 4, *qs = blk + 16;
        uint8_t L[LG_QK_K];
        float w[32], scales[8], mins[8], max_scale = 0, max_min = 0, inv_scale, inv_min, d, dm;
        for (int j = 0; j < 8; j++) {
            const float *v = x + 32 * j;
            float ss = 0, rms;
            for (int i = 0; i < 32; i++)
                ss += v[i] * v[i];
            rms = sqrtf(ss / 32);
            for (int i = 0; i < 32; i++)
                w[i] = rms + fabsf(v[i]);
            scales[j] = fit_scale_min(v, w, L + 32 * j, &mins[j]);
            max_scale = scales[j] > max_scale ? scales[j] : max_scale;
            max_min = mins[j] > max_min ? mins[j] : max_min;
        }
        inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        memset(packed, 0, 12);
        for (int j = 0; j < 8; j++) {
            /* ggml stores the rounded value in a uint8_t (wrapping) before MIN(63, .) */
            int ls = (uint8_t)round_even(inv_scale * scales[j]);
            int lm = (uint8_t)round_even(inv_min * mins[j]);
            ls = ls < 63 ? ls : 63;
            lm = lm < 63 ? lm : 63;
            if (j < 4) {
                packed[j] = (uint8_t)ls;
                packed[j + 4] = (uint8_t)lm;
            } else {
                packed[j + 4] = (uint8_t)((ls & 15) | (lm & 15) << 4);
                packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
                packed[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        put_u16(blk, lg_f32_to_f16(max_scale / 63.f));
        put_u16(blk + 2, lg_f32_to_f16(max_min / 63.f));
        d = lg_f16_to_f32(get_u16(blk));
        dm = lg_f16_to_f32(get_u16(blk + 2));
        for (int j = 0; j < 8; j++) {
            int sc, m;
            float ds, mm;
            q4k_scale_min(packed, j, &sc, &m);
            ds = d * (float)sc;
            if (ds == 0.0f)
                continue; /* keeps the fit's levels, as ggml does */
            mm = dm * (float)m;
            for (int i = 0; i < 32; i++)
                L[32 * j + i] = (uint8_t)clamp_int(round_even((x[32 * j + i] + mm) / ds), 0, 15);
        }
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                qs[32 * g + l] = (uint8_t)(L[64 * g + l] | L[64 * g + 32 + l] << 4);
    }
}

void lg_dequantize_q4_k(const uint8_t *blocks, size_t n, float *y) {
    for (size_t sb = 0; sb < n / LG_QK_K; sb++) {
        const uint8_t *blk = blocks + sb * LG_Q4_K_BLOCK, *qs = blk + 16;
        const float d = lg_f16_to_f32(get_u16(blk)), dmin = lg_f16_to_f32(get_u16(blk + 2));
        for (int g = 0; g < 4; g++) {
            int sc0, m0, sc1, m1;
            float d0, d1, n0, n1;
            q4k_scale_min(blk + 4, 2 * g, &sc0, &m0);
            q4k_scale_min(blk + 4, 2 * g + 1, &sc1, &m1);
            d0 = d * (float)sc0;
            n0 = dmin * (float)m0;
            d1 = d * (float)sc1;
            n1 = dmin * (float)m1;
            for (int l = 0; l < 32; l++) {
                y[sb * LG_QK_K + 64 * g + l] = d0 * (float)(qs[32 * g + l] & 15) - n0;
                y[sb * LG_QK_K + 64 * g + 32 + l] = d1 * (float)(qs[32 * g + l] >> 4) - n1;
            }
        }
    }
}

/* ---- q6_K ---- */

#define Q6_NMAX 32 /* levels -32..31, stored + 32 */

/* Level of v on the grid of inverse step is: round half to even, clamped. */
static int q6_level(float is, float v) {
    return clamp_int(round_even(is * v), -Q6_NMAX, Q6_NMAX - 1);
}

/*
 * Scale of one sub-block of 16 and its levels L (0..63): ggml-quants.c
 * make_qx_quants(16, 32, x, L, rmse_type 1, no weights). The grid through the
 * value of largest magnitude (the first on ties) at -32 steps, then 18 grids
 * of -(32 + 0.1 k) steps (k = +-1..9); each gives the weighted (w = x^2)
 * least-squares scale sum w x l / sum w l^2, and the grid that explains most,
 * (sum w x l)^2 / sum w l^2, wins. ggml's operation order (bit for bit).
 */
static float q6_fit(const float *x, int8_t *L) {
    enum { N = 16 };
    float max = 0, amax = 0, sumlx = 0, suml2 = 0, is, scale, best;
    for (int i = 0; i < N; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-15f) { /* ggml's GROUP_MAX_EPS */
        memset(L, 0, N);
        return 0.0f;
    }
    is = (float)-Q6_NMAX / max;
    for (int i = 0; i < N; i++) {
        int l = q6_level(is, x[i]);
        float w = x[i] * x[i];
        L[i] = (int8_t)(l + Q6_NMAX);
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    best = scale * sumlx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0)
            continue;
        is = -((float)Q6_NMAX + 0.1f * (float)k) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < N; i++) {
            int l = q6_level(is, x[i]);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < N; i++)
                L[i] = (int8_t)(q6_level(is, x[i]) + Q6_NMAX);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* One super-block of 256 values into ggml's 210-byte block. */
static void q6k_block(const float *x, uint8_t *blk) {
    uint8_t *ql = blk, *qh = blk + 128;
    int8_t *sc = (int8_t *)(blk + 192);
    int8_t L[LG_QK_K];
    float scales[16], max_scale = 0, max_abs = 0, is, d;
    for (int s = 0; s < 16; s++) {
        scales[s] = q6_fit(x + 16 * s, L + 16 * s);
        if (fabsf(scales[s]) > max_abs) {
            max_abs = fabsf(scales[s]);
            max_scale = scales[s];
        }
    }
    memset(blk, 0, LG_Q6_K_BLOCK);
    if (max_abs < 1e-15f)
        return; /* all zero, d = +0 */
    is = -128.0f / max_scale;
    put_u16(blk + 208, lg_f32_to_f16(1 / is));
    for (int s = 0; s < 16; s++) {
        int v = round_even(is * scales[s]);
        sc[s] = (int8_t)(v < 127 ? v : 127);
    }
    d = lg_f16_to_f32(get_u16(blk + 208));
    for (int s = 0; s < 16; s++) {
        float ds = d * (float)sc[s];
        if (ds == 0.0f)
            continue; /* keeps the fit's levels, as ggml does */
        for (int i = 0; i < 16; i++) {
            int l = clamp_int(round_even(x[16 * s + i] / ds), -32, 31);
            L[16 * s + i] = (int8_t)(l + 32);
        }
    }
    for (int v = 0; v < LG_QK_K; v++) {
        int h = v / 128, g = (v % 128) / 32, l = v % 32;
        uint8_t q = (uint8_t)L[v];
        ql[64 * h + 32 * (g % 2) + l] |= (uint8_t)((q & 15) << (4 * (g / 2)));
        qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * g));
    }
}

/* Level q (0..63) of value v of a ggml block. */
static int q6k_q(const uint8_t *blk, int v) {
    int h = v / 128, g = (v % 128) / 32, l = v % 32;
    int lo = (blk[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 15;
    int hi = (blk[128 + 32 * h + l] >> (2 * g)) & 3;
    return lo | hi << 4;
}

void lg_quantize_q6_k(const float *x, size_t n, uint8_t *blocks) {
    for (size_t b = 0; b < n / LG_QK_K; b++)
        q6k_block(x + b * LG_QK_K, blocks + b * LG_Q6_K_BLOCK);
}

void lg_dequantize_q6_k(const uint8_t *blocks, size_t n, float *y) {
    for (size_t b = 0; b < n / LG_QK_K; b++) {
        const uint8_t *blk = blocks + b * LG_Q6_K_BLOCK;
        const float d = lg_f16_to_f32(get_u16(blk + 208));
        for (int v = 0; v < LG_QK_K; v++)
            y[b * LG_QK_K + v] = d * (float)(int8_t)blk[192 + v / 16] * (float)(q6k_q(blk, v) - 32);
    }
}

/* One ggml block to the GPU layout: 208 bytes to qs, d to d (two bytes). */
static void q6k_to_gpu(const uint8_t *blk, uint8_t *qs, uint8_t *d) {
    memset(qs, 0, 192);
    for (int v = 0; v < LG_QK_K; v++) {
        int q = q6k_q(blk, v);
        qs[v / 2] |= (uint8_t)((q & 15) << (4 * (v % 2)));
        qs[128 + v / 4] |= (uint8_t)((q >> 4) << (2 * (v % 4)));
    }
    memcpy(qs + 192, blk + 192, 16);
    d[0] = blk[208];
    d[1] = blk[209];
}

void lg_quantize_q6_k_gpu(const float *x, size_t n, uint8_t *qs, uint16_t *d) {
    uint8_t blk[LG_Q6_K_BLOCK];
    for (size_t b = 0; b < n / LG_QK_K; b++) {
        uint8_t dd[2];
        q6k_block(x + b * LG_QK_K, blk);
        q6k_to_gpu(blk, qs + b * LG_Q6_K_GPU_BLOCK, dd);
        d[b] = get_u16(dd);
    }
}

void lg_dequantize_q6_k_gpu(const uint8_t *qs, const uint16_t *d, size_t n, float *y) {
    for (size_t b = 0; b < n / LG_QK_K; b++) {
        const uint8_t *q = qs + b * LG_Q6_K_GPU_BLOCK;
        const float dv = lg_f16_to_f32(d[b]);
        for (int v = 0; v < LG_QK_K; v++) {
            int l = ((q[v / 2] >> (4 * (v % 2))) & 15) | ((q[128 + v / 4] >> (2 * (v % 4))) & 3) << 4;
            y[b * LG_QK_K + v] = dv * (float)(int8_t)q[192 + v / 16] * (float)(l - 32);
        }
    }
}

void lg_q6k_repack_rows(const void *src, uint32_t n_rows, uint32_t cols, uint8_t *qs,
                        void *d) {
    size_t nb = (size_t)n_rows * (cols / LG_QK_K);
    const uint8_t *in = src;
    uint8_t *dd = d;
    for (size_t b = 0; b < nb; b++)
        q6k_to_gpu(in + b * LG_Q6_K_BLOCK, qs + b * LG_Q6_K_GPU_BLOCK, dd + 2 * b);
}

/* ---- GPTQ / AWQ repacking ---- */

/* AutoAWQ packs output column 8c + order[p] into nibble p of word c, order =
 * {0, 2, 4, 6, 1, 3, 5, 7}; this is its inverse: the nibble of column 8c + j. */
static const uint8_t awq_nibble_of[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static uint32_t rd_u32(const void *base, size_t i) {
    uint32_t v;
    memcpy(&v, (const char *)base + 4 * i, 4);
    return v;
}

/* Values of outputs [o0, o0 + m) (m <= 8, all in one AWQ word column when
 * awq) of the chunk starting at r0, rows of KW words in vals. GPTQ: m
 * consecutive words of each source row, one cache line, go to m output rows.
 * AWQ: the 8 source words of inputs 8w .. 8w + 7 hold the nibbles of all 8
 * outputs of the column: an 8 x 8 nibble transpose. */
static void repack_vals(int awq, uint32_t KW, uint32_t N, const void *qweight, uint32_t r0,
                        uint32_t o0, uint32_t m, uint32_t *vals) {
    const uint32_t NW = N / 8;
    for (uint32_t w = 0; w < KW; w++) {
        if (!awq) {
            uint32_t v[8];
            memcpy(v, (const char *)qweight + 4 * ((size_t)w * N + o0), 4 * m);
            for (uint32_t i = 0; i < m; i++)
                vals[(size_t)(o0 + i - r0) * KW + w] = v[i];
        } else {
            uint32_t src[8];
            for (uint32_t j = 0; j < 8; j++)
                src[j] = rd_u32(qweight, (size_t)(8 * w + j) * NW + o0 / 8);
            for (uint32_t i = 0; i < m; i++) {
                uint32_t shift = 4u * awq_nibble_of[(o0 + i) % 8], v = 0;
                for (uint32_t j = 0; j < 8; j++)
                    v |= ((src[j] >> shift) & 15u) << (4 * j);
                vals[(size_t)(o0 + i - r0) * KW + w] = v;
            }
        }
    }
}

void lg_q4g_repack(int awq, int zero_minus_one, uint32_t K, uint32_t N, uint32_t NG,
                   const void *qweight, const void *qzeros, const void *scales, uint32_t r0,
                   uint32_t n, uint32_t *vals, uint16_t *pairs) {
    const uint32_t KW = K / 8, NW = N / 8;
    uint16_t zero_f16[17];
    for (uint32_t z = 0; z <= 16; z++)
        zero_f16[z] = lg_f32_to_f16((float)z);
    /* values in runs of up to 8 outputs that share a source word column */
    for (uint32_t o = r0; o < r0 + n;) {
        uint32_t m = LG_MIN(8 - o % 8, r0 + n - o);
        repack_vals(awq, KW, N, qweight, r0, o, m, vals);
        o += m;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t o = r0 + i;
        const uint32_t shift = 4u * (awq ? awq_nibble_of[o % 8] : o % 8);
        uint16_t *pr = pairs + (size_t)i * NG * 2;
        for (uint32_t g = 0; g < NG; g++) {
            uint32_t z = (rd_u32(qzeros, (size_t)g * NW + o / 8) >> shift) & 15u;
            uint16_t s;
            memcpy(&s, (const char *)scales + 2 * ((size_t)g * N + o), 2);
            pr[2 * g] = s;
            pr[2 * g + 1] = zero_f16[z + (zero_minus_one ? 1u : 0u)];
        }
    }
}

/* ---- ggml block layouts -> the split GPU layout ---- */

void lg_q8_0_from_ggml(const uint8_t *blocks, size_t n, int8_t *qs, uint16_t *d) {
    for (size_t b = 0; b < n / LG_QK; b++, blocks += 2 + LG_QK) {
        d[b] = get_u16(blocks);
        memcpy(qs + b * LG_QK, blocks + 2, LG_QK);
    }
}

void lg_q4_0_from_ggml(const uint8_t *blocks, size_t n, uint8_t *qs, uint16_t *d) {
    for (size_t b = 0; b < n / LG_QK; b++, blocks += 2 + LG_QK / 2) {
        const uint8_t *q = blocks + 2;
        uint8_t *o = qs + b * (LG_QK / 2);
        d[b] = get_u16(blocks);
        /* value v is the low nibble of q[v] for v < 16, the high one of q[v - 16] after */
        for (int j = 0; j < LG_QK / 4; j++) {
            o[j] = (uint8_t)((q[2 * j] & 15) | (q[2 * j + 1] & 15) << 4);
            o[j + 8] = (uint8_t)((q[2 * j] >> 4) | (q[2 * j + 1] >> 4) << 4);
        }
    }
}
