/*
 * quant_ref.c - ggml's reference block quantizers, transcribed (see
 * quant_ref.h). Plain loops, no attempt at speed.
 */
#include "quant_ref.h"

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
