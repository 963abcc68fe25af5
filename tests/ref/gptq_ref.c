/*
 * gptq_ref.c - dequantizes a GPTQ or AWQ Linear of an opened checkpoint to
 * f32, from the stored tensors, for the reference forward pass. Written from
 * the formats' definitions (AutoGPTQ's and AutoAWQ's pack functions, see
 * tests/tools/mkgptq.py's top comment) independently of the loader's
 * repacking (lib/model/quant.c lg_q4g_repack): it reads g_idx for the group
 * of each input where GPTQ has one, and scatters AWQ's nibbles by the pack
 * order instead of gathering by its inverse.
 *
 * Owns: w[n][k] = scale[g][n] * (q[n][k] - zero[g][n]) in f32.
 * Must not touch: the GPU, the loader's validation (the tensors were checked
 * by lg_ckpt_open; shapes are re-checked here only to fail cleanly).
 */
#include "ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

static const struct lg_tensor_src *part(const struct lg_checkpoint *ck, const char *base,
                                        const char *suffix) {
    char name[320];
    snprintf(name, sizeof name, "%s.%s", base, suffix);
    return lg_ckpt_find(ck, name);
}

static int32_t i32_at(const struct lg_tensor_src *t, size_t i) {
    int32_t v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    return v;
}

static float f16_at(const struct lg_tensor_src *t, size_t i) {
    uint16_t h;
    memcpy(&h, (const char *)t->data + 2 * i, 2);
    return lg_f16_to_f32(h);
}

int ref_dequant_qlinear(const struct lg_checkpoint *ck, const char *base, uint32_t n_out,
                        uint32_t k_in, float *w) {
    static const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7}; /* nibble p holds column order[p] */
    const struct lg_tensor_src *qw = part(ck, base, "qweight"), *qz = part(ck, base, "qzeros");
    const struct lg_tensor_src *sc = part(ck, base, "scales"), *gi = part(ck, base, "g_idx");
    const int awq = ck->quant.method == LG_QUANT_AWQ;
    const uint32_t G = ck->quant.group_size > 0 ? (uint32_t)ck->quant.group_size : k_in;
    const uint32_t NG = (k_in + G - 1) / G;
    uint8_t *q = NULL, *z = NULL; /* q [n_out][k_in], z [NG][n_out] */
    if (!qw || !qz || !sc || ck->quant.method == LG_QUANT_NONE)
        return -1;
    q = malloc((size_t)n_out * k_in);
    z = malloc((size_t)NG * n_out);
    if (!q || !z)
        goto fail;
    if (!awq) {
        if (qw->n_elements != (uint64_t)k_in / 8 * n_out)
            goto fail;
        for (uint32_t kw = 0; kw < k_in / 8; kw++)
            for (uint32_t n = 0; n < n_out; n++) {
                uint32_t word = (uint32_t)i32_at(qw, (size_t)kw * n_out + n);
                for (uint32_t j = 0; j < 8; j++)
                    q[(size_t)n * k_in + kw * 8 + j] = (uint8_t)((word >> (4 * j)) & 15);
            }
        for (uint32_t g = 0; g < NG; g++)
            for (uint32_t nw = 0; nw < n_out / 8; nw++) {
                uint32_t word = (uint32_t)i32_at(qz, (size_t)g * (n_out / 8) + nw);
                for (uint32_t j = 0; j < 8; j++)
                    z[(size_t)g * n_out + nw * 8 + j] =
                        (uint8_t)(((word >> (4 * j)) & 15) + (ck->quant.zero_minus_one ? 1 : 0));
            }
    } else {
        if (qw->n_elements != (uint64_t)k_in * (n_out / 8))
            goto fail;
        for (uint32_t k = 0; k < k_in; k++)
            for (uint32_t nw = 0; nw < n_out / 8; nw++) {
                uint32_t word = (uint32_t)i32_at(qw, (size_t)k * (n_out / 8) + nw);
                for (int p = 0; p < 8; p++)
                    q[(size_t)(nw * 8 + (uint32_t)awq_order[p]) * k_in + k] =
                        (uint8_t)((word >> (4 * p)) & 15);
            }
        for (uint32_t g = 0; g < NG; g++)
            for (uint32_t nw = 0; nw < n_out / 8; nw++) {
                uint32_t word = (uint32_t)i32_at(qz, (size_t)g * (n_out / 8) + nw);
                for (int p = 0; p < 8; p++)
                    z[(size_t)g * n_out + nw * 8 + (uint32_t)awq_order[p]] =
                        (uint8_t)((word >> (4 * p)) & 15);
            }
    }
    if (qz->n_elements != (uint64_t)NG * (n_out / 8) || sc->n_elements != (uint64_t)NG * n_out)
        goto fail;
    for (uint32_t n = 0; n < n_out; n++)
        for (uint32_t k = 0; k < k_in; k++) {
            uint32_t g = gi ? (uint32_t)i32_at(gi, k) : k / G;
            if (g >= NG)
                goto fail;
            w[(size_t)n * k_in + k] = f16_at(sc, (size_t)g * n_out + n) *
                                      ((float)q[(size_t)n * k_in + k] - (float)z[(size_t)g * n_out + n]);
        }
    free(q);
    free(z);
    return 0;
fail:
    fprintf(stderr, "ref_dequant_qlinear: %s: missing or malformed tensors\n", base);
    free(q);
    free(z);
    return -1;
}
