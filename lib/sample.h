/*
 * sample.h - the GPU sampler's internals, shared with the tests.
 *
 * Owns: turning one logits buffer into drawn token ids (kernels/sample_*.comp).
 * Must not touch: the session's state (it reads the session only through the
 * accessors of forward.h).
 */
#ifndef LG_SAMPLE_H
#define LG_SAMPLE_H

#include "vk/vk.h"

/* Push constants of every sample_*.comp (kernels/sample.glsl Push): std430,
 * thirteen 4-byte scalars, no padding. */
struct lg_sample_push {
    uint32_t n, n_edits, op, pass, k, n_chunks, n_prep, n_draws;
    float inv_temp, rp, inv_rp, top_p, log_min_p;
};
_Static_assert(sizeof(struct lg_sample_push) == 52, "lg_sample_push mirrors sample.glsl Push");

/* One sparse logit edit (kernels/sample.glsl Edit), sorted by id. */
struct lg_sample_edit {
    uint32_t id;
    float bias;
    uint32_t count;
    float sub;
};
_Static_assert(sizeof(struct lg_sample_edit) == 16, "lg_sample_edit mirrors sample.glsl Edit");

/* Most draws one lg_sample_from_buffer call makes (a dispatch's x extent). */
#define LG_SAMPLE_MAX_DRAWS 65535u

/* The uniform number in [0, 1) (24 bits) of draw `index` under `seed`: a
 * counter-based hash (splitmix64 finaliser), so draws need no stored state. */
float lg_sample_uniform(uint64_t seed, uint64_t index);

/* Draw n_draws tokens from logits (f32 [n_vocab], device memory) under params p,
 * one per uniform number u[i] in [0, 1); all draws share the filtered
 * distribution. p NULL: defaults. tokens[i] receives each id.
 * Returns the statuses of llmgpu_session_sample. */
enum llmgpu_status lg_sample_from_buffer(struct llmgpu_context *ctx, const struct lg_buffer *logits,
                                         uint32_t n_vocab, const struct llmgpu_sampler_params *p,
                                         const float *u, uint32_t n_draws, int32_t *tokens);

/* What one draw needs besides the pipelines (buffers, descriptor sets, a command
 * buffer), kept between draws by a session (lg_session_sample_cache). Zeroed
 * memory is an empty cache. */
struct lg_sample_cache {
    int ok;
    VkBuffer logits;          /* the logits buffer the sets bind */
    uint32_t n_vocab, cap_edits, cap_draws;
    struct lg_buffer work, part, state, ebuf, ubuf, res;
    struct lg_dpool pool;
    VkDescriptorSet sets[5];
    struct lg_cmd cmd;
};
/* lg_sample_from_buffer through c, which is made or grown as needed and kept. */
enum llmgpu_status lg_sample_cached(struct llmgpu_context *ctx, struct lg_sample_cache *c,
                                    const struct lg_buffer *logits, uint32_t n_vocab,
                                    const struct llmgpu_sampler_params *p, const float *u,
                                    uint32_t n_draws, int32_t *tokens);
void lg_sample_cache_free(struct llmgpu_context *ctx, struct lg_sample_cache *c);

#endif /* LG_SAMPLE_H */
