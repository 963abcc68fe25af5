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
                float r = roundf(v[j] * id);
                qs[b * LG_QK + j] = (int8_t)(fabsf(r) <= 127.0f ? (int)r : 0);
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
