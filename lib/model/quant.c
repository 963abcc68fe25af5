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
