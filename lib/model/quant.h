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
 * q6_K: ggml's block_q6_K, 210 bytes per super-block of 256 values: 128 bytes
 * ql (low 4 bits), 64 bytes qh (high 2 bits), 16 int8 scales (one per 16
 * values), f16 d. Value i of a block (n = i / 128, j = i % 128, g = j / 32,
 * l = j % 32): low bits = nibble g / 2 (low nibble for g < 2) of
 * ql[64 n + 32 (g % 2) + l], high bits = (qh[32 n + l] >> 2 g) & 3,
 * q = low | high << 4 in 0..63, x = f16(d) * scales[i / 16] * (q - 32), computed
 * as ggml's dequantize_row_q6_K does ((d * scale) * (q - 32) in f32).
 * No GPU type yet: the loader widens GGUF Q6_K tensors with this.
 */
#define LG_Q6_K_BLOCK 210
void lg_dequantize_q6_k(const uint8_t *blocks, size_t n, float *y);

/*
 * ggml's block layouts of q8_0 (f16 d, 32 int8) and q4_0 (f16 d, 16 bytes:
 * byte j = value j | value j+16 << 4) -> the split GPU layout above (values,
 * then scales; q4_0 nibbles 2j | 2j+1 << 4), for one row of n values
 * (n % 32 == 0). blocks need not be aligned. Bit-exact: no value changes.
 */
void lg_q8_0_from_ggml(const uint8_t *blocks, size_t n, int8_t *qs, uint16_t *d);
void lg_q4_0_from_ggml(const uint8_t *blocks, size_t n, uint8_t *qs, uint16_t *d);

#endif /* LG_QUANT_H */
