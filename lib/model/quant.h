/*
 * quant.h - CPU quantizers and dequantizers of the block weight formats, with
 * ggml's block semantics (ggml-quants.c quantize_row_q8_0_ref,
 * quantize_row_q4_0_ref, dequantize_row_*), writing the GPU layout that
 * upload.c documents: a row's quantized values and its f16 block scales go to
 * two separate arrays.
 *
 * Owns: the arithmetic of one row. Must not touch: Vulkan, files, threads.
 */
#ifndef LG_QUANT_H
#define LG_QUANT_H

#include <stddef.h>
#include <stdint.h>

#define LG_QK 32 /* values per block of q8_0 and q4_0 */

/*
 * q8_0: per block of 32, d = amax / 127 (f32), q = roundf(x / d) (ties away
 * from zero, via x * (1/d) as ggml computes it), stored scale f16(d) (round to
 * nearest even). x = f16(d) * q. A block whose 1/d is not finite (amax below
 * ~1.5e-36: its f16 scale is 0 anyway) gets q = 0.
 *   x: n values (n % 32 == 0); qs: n int8; d: n/32 f16 bit patterns.
 */
void lg_quantize_q8_0(const float *x, size_t n, int8_t *qs, uint16_t *d);
void lg_dequantize_q8_0(const int8_t *qs, const uint16_t *d, size_t n, float *y);

/*
 * q4_0: per block of 32, m = the value of largest magnitude (the first one on
 * ties), d = m / -8, q = min(15, trunc(x * (1/d) + 8.5)) in 0..15 (0 where 1/d
 * is not finite). x = f16(d) * (q - 8).
 * Packed two per byte in order: byte j holds value 2j in its low nibble and
 * value 2j+1 in its high nibble (ggml's block_q4_0 instead pairs j with j+16).
 *   qs: n/2 bytes; d: n/32 f16 bit patterns.
 */
void lg_quantize_q4_0(const float *x, size_t n, uint8_t *qs, uint16_t *d);
void lg_dequantize_q4_0(const uint8_t *qs, const uint16_t *d, size_t n, float *y);

/*
 * q4_K: ggml's block_q4_K, 144 bytes per super-block of 256 values, kept as
 * ggml lays it out (so GGUF data can be copied as is): f16 d, f16 dmin,
 * 12 bytes of 6-bit scale sc[j] and min m[j] of the 8 sub-blocks of 32
 * (j < 4: sc = b[j] & 63, m = b[j+4] & 63; j >= 4: sc = (b[j+4] & 15) |
 * (b[j-4] >> 6) << 4, m = (b[j+4] >> 4) | (b[j] >> 6) << 4), then 128 bytes
 * of 4-bit values: byte 32i + l holds value 64i + l in its low nibble and
 * 64i + 32 + l in its high nibble. x = f16(d) sc q - f16(dmin) m.
 * Quantized as ggml's quantize_row_q4_K_ref (no importance matrix): per
 * sub-block a weighted least-squares fit of scale and min over 21 candidate
 * grids (make_qkx2_quants, weights rms + |x|), the 6-bit scales and mins
 * relative to the super-block's largest, then every value requantized with
 * the rounded scales. n % 256 == 0; blocks: n/256 * 144 bytes.
 */
#define LG_QK_K 256
#define LG_Q4_K_BLOCK 144
void lg_quantize_q4_k(const float *x, size_t n, uint8_t *blocks);
void lg_dequantize_q4_k(const uint8_t *blocks, size_t n, float *y);

/*
 * q4_g: GPTQ/AWQ 4-bit weights repacked for the GPU (upload.c's layout),
 * exactly: the checkpoint's integer values, integer zero points and f16
 * scales, nothing requantized. For outputs [r0, r0 + n) of a Linear of K
 * inputs and N outputs with NG groups (K % 8 == 0, N % 8 == 0):
 *   vals   n rows of K/8 little-endian words, word w of a row holding
 *          values 8w .. 8w + 7 in nibbles 0..7 (as q4_0);
 *   pairs  n rows of NG (scale, zero) f16 pairs: the scale's bits as stored,
 *          the zero point as an f16 integer (0..16, exact);
 * so that w[o][k] = scale (q - zero) with the group g = k / G.
 * Sources (unaligned, as mapped): qweight, qzeros (int32) and scales (f16) as
 * model.h's struct lg_qlinear describes for GPTQ (awq 0) and AWQ (awq 1);
 * zero_minus_one (GPTQ v1): the stored zero is zero - 1, read back as
 * stored + 1 without wrapping (a stored 15 is 16), as AutoGPTQ dequantizes.
 */
void lg_q4g_repack(int awq, int zero_minus_one, uint32_t K, uint32_t N, uint32_t NG,
                   const void *qweight, const void *qzeros, const void *scales, uint32_t r0,
                   uint32_t n, uint32_t *vals, uint16_t *pairs);

#endif /* LG_QUANT_H */
