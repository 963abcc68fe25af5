/*
 * quant_ref.c - ggml's reference block quantizers, transcribed (see
 * quant_ref.h). Plain loops, no attempt at speed.
 */
#include "quant_ref.h"

#include "ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float fp32_from_bits(uint32_t w) {
    float f;
    memcpy(&f, &w, 4);
    return f;
}
static uint32_t fp32_to_bits(float f) {
    uint32_t w;
    memcpy(&w, &f, 4);
    return w;
}

/* ggml-impl.h ggml_compute_fp32_to_fp16 (from FP16 by Marat Dukhan). */
uint16_t qref_fp32_to_fp16(float f) {
    const float scale_to_inf = 0x1.0p+112f;
    const float scale_to_zero = 0x1.0p-110f;
    float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
    const uint32_t w = fp32_to_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & UINT32_C(0x80000000);
    uint32_t bias = shl1_w & UINT32_C(0xFF000000);
    if (bias < UINT32_C(0x71000000))
        bias = UINT32_C(0x71000000);
    base = fp32_from_bits((bias >> 1) + UINT32_C(0x07800000)) + base;
    {
        const uint32_t bits = fp32_to_bits(base);
        const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
        const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
        const uint32_t nonsign = exp_bits + mantissa_bits;
        return (uint16_t)((sign >> 16) | (shl1_w > UINT32_C(0xFF000000) ? 0x7E00 : nonsign));
    }
}

/* ggml-impl.h ggml_compute_fp16_to_fp32. */
float qref_fp16_to_fp32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & UINT32_C(0x80000000);
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = UINT32_C(0xE0) << 23;
    const float exp_scale = 0x1.0p-112f;
    const float normalized_value = fp32_from_bits((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = UINT32_C(126) << 23;
    const float magic_bias = 0.5f;
    const float denormalized_value = fp32_from_bits((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = UINT32_C(1) << 27;
    const uint32_t result =
        sign | (two_w < denormalized_cutoff ? fp32_to_bits(denormalized_value)
                                            : fp32_to_bits(normalized_value));
    return fp32_from_bits(result);
}

/* (int8_t)f for a float f, defined for non-finite f (see quant_ref.h). */
static int8_t to_i8(float f) {
    if (!isfinite(f) || fabsf(f) >= 128.0f)
        return 0;
    return (int8_t)f;
}

void qref_quantize_row_q8_0(const float *x, struct qref_block_q8_0 *y, size_t k) {
    const size_t nb = k / QREF_QK;
    for (size_t i = 0; i < nb; i++) {
        float amax = 0.0f; /* absolute max */
        for (int j = 0; j < QREF_QK; j++) {
            const float v = x[i * QREF_QK + j];
            amax = amax > fabsf(v) ? amax : fabsf(v);
        }
        {
            const float d = amax / ((1 << 7) - 1);
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            y[i].d = qref_fp32_to_fp16(d);
            for (int j = 0; j < QREF_QK; ++j) {
                const float x0 = x[i * QREF_QK + j] * id;
                y[i].qs[j] = to_i8(roundf(x0));
            }
        }
    }
}

void qref_quantize_row_q4_0(const float *x, struct qref_block_q4_0 *y, size_t k) {
    const int qk = QREF_QK;
    const size_t nb = k / QREF_QK;
    for (size_t i = 0; i < nb; i++) {
        float amax = 0.0f; /* absolute max */
        float max = 0.0f;
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        {
            const float d = max / -8;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            y[i].d = qref_fp32_to_fp16(d);
            for (int j = 0; j < qk / 2; ++j) {
                const float x0 = x[i * qk + 0 + j] * id;
                const float x1 = x[i * qk + qk / 2 + j] * id;
                const int8_t c0 = to_i8(x0 + 8.5f), c1 = to_i8(x1 + 8.5f);
                const uint8_t xi0 = (uint8_t)(c0 < 15 ? c0 : 15);
                const uint8_t xi1 = (uint8_t)(c1 < 15 ? c1 : 15);
                y[i].qs[j] = xi0;
                y[i].qs[j] |= (uint8_t)(xi1 << 4);
            }
        }
    }
}

void qref_dequantize_row_q8_0(const struct qref_block_q8_0 *x, float *y, size_t k) {
    const size_t nb = k / QREF_QK;
    for (size_t i = 0; i < nb; i++) {
        const float d = qref_fp16_to_fp32(x[i].d);
        for (int j = 0; j < QREF_QK; ++j)
            y[i * QREF_QK + j] = x[i].qs[j] * d;
    }
}

void qref_dequantize_row_q4_0(const struct qref_block_q4_0 *x, float *y, size_t k) {
    const int qk = QREF_QK;
    const size_t nb = k / QREF_QK;
    for (size_t i = 0; i < nb; i++) {
        const float d = qref_fp16_to_fp32(x[i].d);
        for (int j = 0; j < qk / 2; ++j) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[i * qk + j + 0] = x0 * d;
            y[i * qk + j + qk / 2] = x1 * d;
        }
    }
}

/* ---- q4_K ---- */

#define QREF_MAX(a, b) ((a) > (b) ? (a) : (b))
#define QREF_MIN(a, b) ((a) < (b) ? (a) : (b))

/* ggml's nearest_int: round half to even through the float adder. */
static int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              int use_mad) {
    float min = x[0];
    float max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i)
            L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)QREF_MAX(0, QREF_MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        float w = weights[i];
        best_error += w * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = QREF_MAX(0, QREF_MIN(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                float w = weights[i];
                cur_error += w * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i)
                    L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

void qref_quantize_row_q4_K(const float *x, struct qref_block_q4_K *y, size_t k) {
    const size_t nb = k / QREF_QK_K;
    uint8_t L[QREF_QK_K];
    uint8_t Laux[32];
    float weights[32];
    float mins[QREF_QK_K / 32];
    float scales[QREF_QK_K / 32];
    for (size_t i = 0; i < nb; i++) {
        float max_scale = 0;
        float max_min = 0;
        for (int j = 0; j < QREF_QK_K / 32; ++j) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; ++l)
                sum_x2 += x[32 * j + l] * x[32 * j + l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; ++l)
                weights[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                         -1.f, 0.1f, 20, 0);
            float scale = scales[j];
            if (scale > max_scale)
                max_scale = scale;
            float min = mins[j];
            if (min > max_min)
                max_min = min;
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < QREF_QK_K / 32; ++j) {
            uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
            uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
            ls = QREF_MIN(63, ls);
            lm = QREF_MIN(63, lm);
            if (j < 4) {
                y[i].scales[j] = ls;
                y[i].scales[j + 4] = lm;
            } else {
                y[i].scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                y[i].scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
                y[i].scales[j - 0] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        y[i].d = qref_fp32_to_fp16(max_scale / 63.f);
        y[i].dmin = qref_fp32_to_fp16(max_min / 63.f);
        uint8_t sc, m;
        for (int j = 0; j < QREF_QK_K / 32; ++j) {
            get_scale_min_k4(j, y[i].scales, &sc, &m);
            const float d = qref_fp16_to_fp32(y[i].d) * sc;
            if (!d)
                continue;
            const float dm = qref_fp16_to_fp32(y[i].dmin) * m;
            for (int ii = 0; ii < 32; ++ii) {
                int l = nearest_int((x[32 * j + ii] + dm) / d);
                l = QREF_MAX(0, QREF_MIN(15, l));
                L[32 * j + ii] = (uint8_t)l;
            }
        }
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QREF_QK_K; j += 64) {
            for (int l = 0; l < 32; ++l)
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
        x += QREF_QK_K;
    }
}

void qref_dequantize_row_q4_K(const struct qref_block_q4_K *x, float *y, size_t k) {
    const size_t nb = k / QREF_QK_K;
    for (size_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        const float d = qref_fp16_to_fp32(x[i].d);
        const float min = qref_fp16_to_fp32(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < QREF_QK_K; j += 64) {
            get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc;
            const float m1 = min * m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc;
            const float m2 = min * m;
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

void qref_roundtrip_q4_K(float *x, size_t k) {
    struct qref_block_q4_K *b = malloc((k / QREF_QK_K) * sizeof *b);
    if (!b)
        abort();
    qref_quantize_row_q4_K(x, b, k);
    qref_dequantize_row_q4_K(b, x, k);
    free(b);
}

void qref_roundtrip_q8_0(float *x, size_t k) {
    struct qref_block_q8_0 *b = malloc((k / QREF_QK) * sizeof *b);
    if (!b)
        abort();
    qref_quantize_row_q8_0(x, b, k);
    qref_dequantize_row_q8_0(b, x, k);
    free(b);
}

void qref_roundtrip_q4_0(float *x, size_t k) {
    struct qref_block_q4_0 *b = malloc((k / QREF_QK) * sizeof *b);
    if (!b)
        abort();
    qref_quantize_row_q4_0(x, b, k);
    qref_dequantize_row_q4_0(b, x, k);
    free(b);
}

static void quantize_matrix(enum llmgpu_weight_type wt, float *w, size_t rows, size_t n_in) {
    if (wt == LLMGPU_WEIGHT_TYPE_Q4_K && n_in % 256 == 0)
        qref_roundtrip_q4_K(w, rows * n_in);
    else if (wt == LLMGPU_WEIGHT_TYPE_Q6_K && n_in % 256 == 0)
        qref_roundtrip_q6_K(w, rows * n_in);
    else if (n_in % 32 == 0 && (wt == LLMGPU_WEIGHT_TYPE_Q8_0 || wt == LLMGPU_WEIGHT_TYPE_Q6_K))
        qref_roundtrip_q8_0(w, rows * n_in);
    else if (n_in % 32 == 0)
        qref_roundtrip_q4_0(w, rows * n_in);
}

void qref_quantize_model(struct ref_model *m, enum llmgpu_weight_type wt, int lm_head_too) {
    const struct lg_model_config *c = &m->cfg;
    size_t E = c->n_embd, Q = (size_t)c->n_head * c->head_dim,
           KV = (size_t)c->n_kv_head * c->head_dim, F = c->n_ff;
    for (size_t l = 0; l < c->n_layer; l++) {
        quantize_matrix(wt, m->w.wq + l * Q * E, Q, E);
        quantize_matrix(wt, m->w.wk + l * KV * E, KV, E);
        quantize_matrix(wt, m->w.wv + l * KV * E, KV, E);
        quantize_matrix(wt, m->w.w1 + l * F * E, F, E);
        quantize_matrix(wt, m->w.w3 + l * F * E, F, E);
        quantize_matrix(wt, m->w.wo + l * E * Q, E, Q);
        quantize_matrix(wt, m->w.w2 + l * E * F, E, F);
    }
    if (lm_head_too && m->w.wcls != m->w.token_embedding)
        quantize_matrix(wt, m->w.wcls, c->n_vocab, E);
}

/* ---- q6_K ---- */

/* make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL): weights x^2. */
static float make_qx_quants_rmse1(int n, int nmax, const float *x, int8_t *L) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) { /* GROUP_MAX_EPS: all zero */
        for (int i = 0; i < n; ++i)
            L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = QREF_MAX(-nmax, QREF_MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = QREF_MAX(-nmax, QREF_MIN(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + QREF_MAX(-nmax, QREF_MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

void qref_quantize_row_q6_K(const float *x, struct qref_block_q6_K *y, size_t k) {
    const size_t nb = k / QREF_QK_K;
    int8_t L[QREF_QK_K];
    float scales[QREF_QK_K / 16];
    for (size_t i = 0; i < nb; i++) {
        float max_scale = 0;
        float max_abs_scale = 0;
        for (int ib = 0; ib < QREF_QK_K / 16; ++ib) {
            const float scale = make_qx_quants_rmse1(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < 1e-15f) {
            memset(&y[i], 0, sizeof(y[i]));
            y[i].d = qref_fp32_to_fp16(0.f);
            x += QREF_QK_K;
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = qref_fp32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QREF_QK_K / 16; ++ib)
            y[i].scales[ib] = (int8_t)QREF_MIN(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QREF_QK_K / 16; ++j) {
            float d = qref_fp16_to_fp32(y[i].d) * y[i].scales[j];
            if (!d)
                continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = QREF_MAX(-32, QREF_MIN(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql;
        uint8_t *qh = y[i].qh;
        for (int j = 0; j < QREF_QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
        x += QREF_QK_K;
    }
}

void qref_dequantize_row_q6_K(const struct qref_block_q6_K *x, float *y, size_t k) {
    const size_t nb = k / QREF_QK_K;
    for (size_t i = 0; i < nb; i++) {
        const float d = qref_fp16_to_fp32(x[i].d);
        const uint8_t *ql = x[i].ql;
        const uint8_t *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < QREF_QK_K; n += 128) {
            for (int l = 0; l < 32; ++l) {
                int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

void qref_roundtrip_q6_K(float *x, size_t k) {
    struct qref_block_q6_K *b = malloc((k / QREF_QK_K) * sizeof *b);
    if (!b)
        abort();
    qref_quantize_row_q6_K(x, b, k);
    qref_dequantize_row_q6_K(b, x, k);
    free(b);
}
