/*
 * sample_ref.h - the plain C reference of the GPU sampler (lib/sample.c,
 * kernels/sample_*.comp), written for clarity: a full sort instead of a radix
 * search, double sums, one pass per filter in the documented order.
 *
 * Owns: the semantics of llmgpu_sampler_params (bias -> penalties ->
 * temperature -> top-k -> top-p -> min-p -> softmax -> draw).
 * Must not touch: Vulkan or the library's sampler code (it shares nothing with
 * it but the public params struct).
 */
#ifndef LG_TESTS_SAMPLE_REF_H
#define LG_TESTS_SAMPLE_REF_H

#include <stdint.h>

#include "llmgpu.h"

/* The logits after bias, penalties and temperature, as kernels/sample_prep.comp
 * computes them (bit-identical f32 operations): NaN becomes -inf, +inf the
 * largest finite float, -0 becomes +0. out may not alias logits. */
void sample_ref_transform(const float *logits, int n, const struct llmgpu_sampler_params *p,
                          float *out);

/* The final distribution: probs[i] is the probability of id i after every filter
 * (0 for filtered ids). Returns the number of surviving ids, or 0 when every
 * token is banned. */
int sample_ref_probs(const float *logits, int n, const struct llmgpu_sampler_params *p,
                     double *probs);

/* The token drawn with uniform number u in [0, 1): the lowest id whose running
 * probability (ids in ascending order) exceeds u; -1 when every token is banned. */
int32_t sample_ref_draw(const float *logits, int n, const struct llmgpu_sampler_params *p,
                        float u);

/* The same draw from a distribution sample_ref_probs computed. */
int32_t sample_ref_draw_probs(const double *probs, int n, float u);

#endif
