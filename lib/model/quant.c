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

/* ---- q6_K (dequantization only) ---- */

void lg_dequantize_q6_k(const uint8_t *blocks, size_t n, float *y) {
    for (size_t sb = 0; sb < n / LG_QK_K; sb++) {
        const uint8_t *blk = blocks + sb * LG_Q6_K_BLOCK;
        const uint8_t *ql = blk, *qh = blk + 128;
        const int8_t *sc = (const int8_t *)(const void *)(blk + 192);
        const float d = lg_f16_to_f32(get_u16(blk + 208));
        float *out = y + sb * LG_QK_K;
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, out += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                out[l] = d * (float)sc[is] * (float)q1;
                out[l + 32] = d * (float)sc[is + 2] * (float)q2;
                out[l + 64] = d * (float)sc[is + 4] * (float)q3;
                out[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
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
