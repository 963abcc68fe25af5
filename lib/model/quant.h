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

#endif /* LG_QUANT_H */
