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
 * q6_K: ggml's block_q6_K, 210 bytes a super-block of 256 values: ql[128]
 * (low 4 bits), qh[64] (high 2 bits), int8 scales[16] (one a sub-block of 16
 * values), f16 d; q in 0..63, x = f16(d) scale[v / 16] (q - 32). In ggml's
 * block, value v = 128h + 32g + l (h < 2, g < 4, l < 32) keeps its low bits in
 * ql[64h + 32(g % 2) + l] (low nibble for g < 2, high nibble for g >= 2) and its
 * high bits in qh[32h + l], bits 2g and 2g + 1.
 * Quantized as ggml's quantize_row_q6_K_ref (no importance matrix): per
 * sub-block of 16 the scale of make_qx_quants(16, 32, rmse_type 1): levels
 * rounded at 19 grids (32 + 0.1 k over the signed max, k = -9..9), keeping the
 * one whose x^2-weighted least-squares scale explains most; the scales as int8
 * relative to the one of largest magnitude (-128 steps, clamped at 127), then
 * every value requantized with the rounded scales. A super-block whose scales
 * are all below 1e-15 is all zero bytes.
 *
 * The GPU layout (upload.c's top comment; 4-byte aligned, which ggml's 210-byte
 * block is not): a super-block's 6-bit values and scales in 208 bytes, and its
 * f16 d in a separate array:
 *   bytes [0, 128)    low 4 bits, in order: value v in byte v/2, nibble v%2
 *   bytes [128, 192)  high 2 bits, in order: value v in byte 128 + v/4, bits 2(v%4)
 *   bytes [192, 208)  the 16 int8 scales
 * n % 256 == 0 everywhere below.
 */
#define LG_Q6_K_BLOCK 210     /* ggml's block_q6_K */
#define LG_Q6_K_GPU_BLOCK 208 /* the GPU layout's part of a super-block without d */
/* ggml blocks: blocks gets n/256 * 210 bytes */
void lg_quantize_q6_k(const float *x, size_t n, uint8_t *blocks);
void lg_dequantize_q6_k(const uint8_t *blocks, size_t n, float *y);
/* The GPU layout: qs gets n/256 * 208 bytes, d n/256 f16 bit patterns. */
void lg_quantize_q6_k_gpu(const float *x, size_t n, uint8_t *qs, uint16_t *d);
void lg_dequantize_q6_k_gpu(const uint8_t *qs, const uint16_t *d, size_t n, float *y);
/*
 * Convert rows of ggml block_q6_K (as a GGUF file stores a Q6_K tensor: a row
 * of cols values is cols/256 blocks of 210 bytes, rows in order, no padding)
 * into the GPU layout: n_rows * cols/256 * 208 bytes to qs and n_rows * cols/256
 * f16 d to d (both row-major). The bits are copied, not requantized.
 *
 * In a shard of R rows (upload.c), a chunk of rows starting at shard row r0
 * goes to qs = buf + r0 * cols/256 * 208 and d = buf + R * cols/256 * 208 +
 * r0 * cols/256 * 2; a whole shard is lg_q6k_repack_rows(src, R, cols, buf,
 * buf + R * cols/256 * 208). cols % 256 == 0. No pointer needs any alignment
 * (d is written bytewise, little-endian).
 */
void lg_q6k_repack_rows(const void *src, uint32_t n_rows, uint32_t cols, uint8_t *qs,
                        void *d);
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

/*
 * ggml's block layouts of q8_0 (f16 d, 32 int8) and q4_0 (f16 d, 16 bytes:
 * byte j = value j | value j+16 << 4) -> the split GPU layout above (values,
 * then scales; q4_0 nibbles 2j | 2j+1 << 4), for one row of n values
 * (n % 32 == 0). blocks need not be aligned. Bit-exact: no value changes.
 */
void lg_q8_0_from_ggml(const uint8_t *blocks, size_t n, int8_t *qs, uint16_t *d);
void lg_q4_0_from_ggml(const uint8_t *blocks, size_t n, uint8_t *qs, uint16_t *d);

#endif /* LG_QUANT_H */
