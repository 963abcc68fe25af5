/*
 * quant_ref.h - scalar reference of ggml's block quantization, transcribed
 * from ggml-quants.c (quantize_row_q8_0_ref, quantize_row_q4_0_ref,
 * quantize_row_q4_K_ref with make_qkx2_quants, quantize_row_q6_K_ref with
 * make_qx_quants, dequantize_row_*) with ggml's own block structs and its portable
 * f32 -> f16 conversion (ggml_compute_fp32_to_fp16), so the library's
 * quantizers (lib/model/quant.c, another layout, another f16 conversion) can
 * be checked bit for bit against an independent oracle.
 *
 * One deliberate difference from ggml: its casts of a non-finite float to
 * int8 (reached only when 1/d overflows, i.e. amax below ~1.5e-36) are
 * undefined behaviour; here they give 0, which is what x86 builds of ggml
 * produce (cvttss2si gives 0x80000000, whose low byte is 0).
 */
#ifndef LG_TESTS_QUANT_REF_H
#define LG_TESTS_QUANT_REF_H

#include <stddef.h>
#include <stdint.h>

#include "llmgpu.h"

#define QREF_QK 32

struct qref_block_q8_0 { /* ggml block_q8_0: 34 bytes */
    uint16_t d;
    int8_t qs[QREF_QK];
};
struct qref_block_q4_0 { /* ggml block_q4_0: 18 bytes; qs[j] = q[j] | q[j + 16] << 4 */
    uint16_t d;
    uint8_t qs[QREF_QK / 2];
};

#define QREF_QK_K 256
struct qref_block_q4_K { /* ggml block_q4_K: 144 bytes */
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12]; /* 8 scales and 8 mins, 6 bits each */
    uint8_t qs[QREF_QK_K / 2];
};

struct qref_block_q6_K { /* ggml block_q6_K: 210 bytes */
    uint8_t ql[QREF_QK_K / 2];     /* low 4 bits */
    uint8_t qh[QREF_QK_K / 4];     /* high 2 bits */
    int8_t scales[QREF_QK_K / 16]; /* one a sub-block of 16 */
    uint16_t d;                    /* f16 super-block scale */
};

uint16_t qref_fp32_to_fp16(float f);
float qref_fp16_to_fp32(uint16_t h);

/* k % 32 == 0; y gets k / 32 blocks. */
void qref_quantize_row_q8_0(const float *x, struct qref_block_q8_0 *y, size_t k);
void qref_quantize_row_q4_0(const float *x, struct qref_block_q4_0 *y, size_t k);
void qref_dequantize_row_q8_0(const struct qref_block_q8_0 *x, float *y, size_t k);
void qref_dequantize_row_q4_0(const struct qref_block_q4_0 *x, float *y, size_t k);

/* k % 256 == 0 (quantize_row_q4_K_ref, dequantize_row_q4_K). */
void qref_quantize_row_q4_K(const float *x, struct qref_block_q4_K *y, size_t k);
void qref_dequantize_row_q4_K(const struct qref_block_q4_K *x, float *y, size_t k);

/* k % 256 == 0 (quantize_row_q6_K_ref with make_qx_quants, dequantize_row_q6_K). */
void qref_quantize_row_q6_K(const float *x, struct qref_block_q6_K *y, size_t k);
void qref_dequantize_row_q6_K(const struct qref_block_q6_K *x, float *y, size_t k);

/* Quantize then dequantize k values in place (the weights the GPU sees). */
void qref_roundtrip_q8_0(float *x, size_t k);
void qref_roundtrip_q4_0(float *x, size_t k);
void qref_roundtrip_q4_K(float *x, size_t k);
void qref_roundtrip_q6_K(float *x, size_t k);

/* The reference's weights as llmgpu_model_load at weight type wt leaves them
 * (the rule of lib/model/upload.c pick_type): every projection matrix
 * quantized and dequantized, as q4_K (wt Q4_K) or q6_K (wt Q6_K) when its
 * rows are a multiple of 256 long, else q4_0 (Q4_K, Q4_0) or q8_0 (Q8_0,
 * Q6_K) when they are a multiple of 32, else left as is. The embedding and the LM head are left as
 * is, unless lm_head_too (then an untied LM head is quantized by the same
 * rule: what quantizing it would cost). */
struct ref_model;
void qref_quantize_model(struct ref_model *m, enum llmgpu_weight_type wt, int lm_head_too);

#endif
