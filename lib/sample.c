/*
 * sample.c - sampling on the GPU: llmgpu_session_sample() and the sampler
 * parameters.
 *
 * Owns: the host side of kernels/sample_*.comp (see kernels/sample.glsl for the
 * pipeline): checking the parameters, the sorted list of sparse logit edits (bias
 * and penalties, built from the caller's recent tokens), the uniform number of a
 * draw, and recording the dispatches. Only the drawn id is read back.
 * Must not touch: the session's state; it reads the session through the
 * accessors of forward.h (context, model, logits buffer).
 *
 * The scratch buffers, descriptor sets and command buffer of a draw live in a
 * struct lg_sample_cache: a session keeps one (made at its first sample, grown
 * when a call needs more edits or draws, freed with the session), so a token
 * costs one small command buffer recording and one submit, not six buffer
 * allocations, a descriptor pool and a command buffer; lg_sample_from_buffer
 * (tests, one-off draws) uses a cache of its own for the call. Pipelines are the
 * context's and made once.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "sample.h"

enum { K_PREP, K_SELECT, K_HIST, K_MASS, K_DRAW, K_COUNT };
static const char *const kernel_names[K_COUNT] = {"sample_prep.comp", "sample_select.comp",
                                                  "sample_hist.comp", "sample_mass.comp",
                                                  "sample_draw.comp"};
_Static_assert(K_COUNT == LG_ARRAY_LEN(((struct lg_sample_cache *)0)->sets), "one set a kernel");
#define N_BINDINGS 7  /* kernels/sample.glsl: logits edits uin work part state result */
#define IPT 16        /* sample.glsl IPT */
#define STATE_BYTES 48 /* sample.glsl State */
enum { OP_INIT = 0, OP_COUNT = 1, OP_MASS = 2 };

void llmgpu_sampler_params_init(struct llmgpu_sampler_params *p) {
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->penalty_last_n = 64;
}

/* splitmix64's finaliser (Steele, Lea, Flood 2014), as a counter-based hash. */
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float lg_sample_uniform(uint64_t seed, uint64_t index) {
    return (float)(mix64(seed ^ mix64(index)) >> 40) * 0x1p-24f;
}

static uint32_t wg_size(const struct llmgpu_context *ctx) {
    return ctx->info.type == LLMGPU_DEVICE_TYPE_CPU ? 64 : 256;
}

/* The caller's params over the defaults: only the first struct_size bytes are read. */
static enum llmgpu_status read_params(struct llmgpu_context *ctx,
                                      const struct llmgpu_sampler_params *in,
                                      struct llmgpu_sampler_params *p) {
    llmgpu_sampler_params_init(p);
    if (!in)
        return LLMGPU_OK;
    if (in->struct_size == 0) {
        lg_err(&ctx->log, "sampler params: struct_size is 0 (call llmgpu_sampler_params_init)");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    memcpy(p, in, LG_MIN((size_t)in->struct_size, sizeof *p));
    p->struct_size = sizeof *p;
    return LLMGPU_OK;
}

static enum llmgpu_status check_params(struct llmgpu_context *ctx,
                                       const struct llmgpu_sampler_params *p, uint32_t n_vocab) {
    if (p->flags != 0 || isnan(p->temperature) || isnan(p->top_p) || isnan(p->min_p) ||
        !(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty) ||
        !isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty) ||
        (p->n_bias && (!p->bias_ids || !p->bias_values)) || (p->n_recent && !p->recent)) {
        lg_err(&ctx->log, "sampler params: invalid flags, NaN, non-positive repeat_penalty or "
                          "NULL array");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    for (uint32_t i = 0; i < p->n_bias; i++) {
        if (p->bias_ids[i] < 0 || (uint32_t)p->bias_ids[i] >= n_vocab) {
            lg_err(&ctx->log, "logit bias %u: token %d is outside the vocabulary of %u", i,
                   p->bias_ids[i], n_vocab);
            return LLMGPU_ERR_INVALID_TOKEN;
        }
        if (isnan(p->bias_values[i])) {
            lg_err(&ctx->log, "logit bias %u (token %d) is NaN", i, p->bias_ids[i]);
            return LLMGPU_ERR_INVALID_ARGUMENT;
        }
    }
    for (uint32_t i = 0; i < p->n_recent; i++)
        if (p->recent[i] < 0 || (uint32_t)p->recent[i] >= n_vocab) {
            lg_err(&ctx->log, "recent token %u: %d is outside the vocabulary of %u", i,
                   p->recent[i], n_vocab);
            return LLMGPU_ERR_INVALID_TOKEN;
        }
    return LLMGPU_OK;
}

static int edit_cmp(const void *a, const void *b) {
    uint32_t x = ((const struct lg_sample_edit *)a)->id, y = ((const struct lg_sample_edit *)b)->id;
    return (x > y) - (x < y);
}

/* The sorted, merged edits: one per id with a bias or a count in the penalty window. */
static enum llmgpu_status build_edits(struct llmgpu_context *ctx,
                                      const struct llmgpu_sampler_params *p,
                                      struct lg_sample_edit **out, uint32_t *n_out) {
    int penalties = p->penalty_last_n != 0 &&
                    (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f ||
                     p->presence_penalty != 0.0f);
    uint32_t window = !penalties ? 0
                      : p->penalty_last_n < 0
                          ? p->n_recent
                          : LG_MIN(p->n_recent, (uint32_t)p->penalty_last_n);
    const int32_t *recent = window ? p->recent + (p->n_recent - window) : NULL;
    uint32_t n = p->n_bias + window, m = 0;
    struct lg_sample_edit *e;
    *out = NULL;
    *n_out = 0;
    if (n == 0)
        return LLMGPU_OK;
    e = lg_calloc(&ctx->alloc, n, sizeof *e);
    if (!e)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    for (uint32_t i = 0; i < p->n_bias; i++)
        e[i] = (struct lg_sample_edit){(uint32_t)p->bias_ids[i], p->bias_values[i], 0, 0.0f};
    for (uint32_t i = 0; i < window; i++)
        e[p->n_bias + i] = (struct lg_sample_edit){(uint32_t)recent[i], 0.0f, 1, 0.0f};
    qsort(e, n, sizeof *e, edit_cmp);
    for (uint32_t i = 0; i < n; i++) {
        if (m > 0 && e[m - 1].id == e[i].id) {
            e[m - 1].bias += e[i].bias;
            e[m - 1].count += e[i].count;
        } else {
            e[m++] = e[i];
        }
    }
    /* llama.cpp llama_sampler_penalties_apply: count * freq + (count > 0) * presence */
    for (uint32_t i = 0; i < m; i++)
        if (e[i].count)
            e[i].sub = (float)e[i].count * p->frequency_penalty + p->presence_penalty;
    *out = e;
    *n_out = m;
    return LLMGPU_OK;
}

static enum llmgpu_status get_pipeline(struct llmgpu_context *ctx, int k,
                                       struct lg_pipeline **out) {
    char st[2][48];
    struct lg_pipeline_desc d;
    memset(&d, 0, sizeof d);
    d.kernel = kernel_names[k];
    d.n_bindings = N_BINDINGS;
    d.push_size = sizeof(struct lg_sample_push);
    lg_desc_define(&d, st[0], "WG_SIZE", wg_size(ctx));
    lg_desc_define(&d, st[1], "USE_SUBGROUP", 0);
    return lg_pipeline_get(ctx, &d, out);
}

/* The host-side plan of one call: push constants and which searches run. */
static void make_push(const struct llmgpu_sampler_params *p, uint32_t n_vocab, uint32_t wg,
                      uint32_t n_edits, uint32_t n_draws, struct lg_sample_push *pc,
                      int *topk_search, int *topp_search) {
    int greedy = !(p->temperature > 0.0f);
    memset(pc, 0, sizeof *pc);
    pc->n = n_vocab;
    pc->n_edits = n_edits;
    pc->n_prep = (n_vocab + wg - 1) / wg;
    pc->n_chunks = (n_vocab + wg * IPT - 1) / (wg * IPT);
    pc->n_draws = n_draws;
    pc->rp = p->repeat_penalty;
    pc->inv_rp = 1.0f / p->repeat_penalty;
    if (greedy || p->top_k == 1) {
        pc->k = 1;
    } else if (p->top_k > 0 && (uint32_t)p->top_k < n_vocab) {
        pc->k = (uint32_t)p->top_k;
    }
    pc->inv_temp = greedy ? 1.0f : 1.0f / p->temperature;
    pc->top_p = greedy ? 1.0f : p->top_p;
    pc->log_min_p = greedy || !(p->min_p > 0.0f) ? -INFINITY : logf(LG_MIN(p->min_p, 1.0f));
    *topk_search = pc->k > 1;
    *topp_search = pc->k != 1 && pc->top_p < 1.0f;
}

void lg_sample_cache_free(struct llmgpu_context *ctx, struct lg_sample_cache *c) {
    if (!c)
        return;
    lg_cmd_destroy(ctx, &c->cmd);
    lg_dpool_destroy(ctx, &c->pool);
    lg_buffer_destroy(ctx, &c->res);
    lg_buffer_destroy(ctx, &c->ubuf);
    lg_buffer_destroy(ctx, &c->ebuf);
    lg_buffer_destroy(ctx, &c->state);
    lg_buffer_destroy(ctx, &c->part);
    lg_buffer_destroy(ctx, &c->work);
    memset(c, 0, sizeof *c);
}

/* Make c fit a draw from `logits` (n_vocab) with n_edits edits and n_draws draws:
 * (re)made when it is empty, bound to another logits buffer or vocabulary, or too
 * small; kept as is otherwise. On failure c is left empty. */
static enum llmgpu_status cache_fit(struct llmgpu_context *ctx, struct lg_sample_cache *c,
                                    const struct lg_buffer *logits, uint32_t n_vocab,
                                    uint32_t n_edits, uint32_t n_draws, uint64_t part_words,
                                    struct lg_pipeline *const pl[K_COUNT]) {
    enum llmgpu_status st;
    if (c->ok && c->logits == logits->buf && c->n_vocab == n_vocab && c->cap_edits >= n_edits &&
        c->cap_draws >= n_draws)
        return LLMGPU_OK;
    {
        uint32_t cap_e = LG_MAX(LG_MAX(n_edits, 1u), c->ok ? c->cap_edits : 0u);
        uint32_t cap_d = LG_MAX(n_draws, c->ok ? c->cap_draws : 0u);
        lg_sample_cache_free(ctx, c);
        c->cap_edits = cap_e;
        c->cap_draws = cap_d;
    }
    if ((st = lg_buffer_create(ctx, (VkDeviceSize)n_vocab * 4, LG_MEM_DEVICE, &c->work)) ||
        (st = lg_buffer_create(ctx, part_words * 4, LG_MEM_DEVICE, &c->part)) ||
        (st = lg_buffer_create(ctx, STATE_BYTES, LG_MEM_DEVICE, &c->state)) ||
        (st = lg_buffer_create(ctx, (VkDeviceSize)c->cap_edits * sizeof(struct lg_sample_edit),
                               LG_MEM_UPLOAD, &c->ebuf)) ||
        (st = lg_buffer_create(ctx, (VkDeviceSize)c->cap_draws * 4, LG_MEM_UPLOAD, &c->ubuf)) ||
        (st = lg_buffer_create(ctx, (VkDeviceSize)c->cap_draws * 4, LG_MEM_HOST, &c->res)) ||
        (st = lg_dpool_create(ctx, K_COUNT, &c->pool)))
        goto fail;
    {
        struct lg_binding b[N_BINDINGS] = {{logits, 0, 0},  {&c->ebuf, 0, 0}, {&c->ubuf, 0, 0},
                                           {&c->work, 0, 0}, {&c->part, 0, 0}, {&c->state, 0, 0},
                                           {&c->res, 0, 0}};
        for (int k = 0; k < K_COUNT; k++)
            if ((st = lg_dset_create(ctx, &c->pool, pl[k], b, N_BINDINGS, &c->sets[k])))
                goto fail;
    }
    if ((st = lg_cmd_create(ctx, &c->cmd)))
        goto fail;
    c->logits = logits->buf;
    c->n_vocab = n_vocab;
    c->ok = 1;
    return LLMGPU_OK;
fail:
    lg_sample_cache_free(ctx, c);
    return st;
}

enum llmgpu_status lg_sample_cached(struct llmgpu_context *ctx, struct lg_sample_cache *c,
                                    const struct lg_buffer *logits, uint32_t n_vocab,
                                    const struct llmgpu_sampler_params *in, const float *u,
                                    uint32_t n_draws, int32_t *tokens) {
    struct llmgpu_sampler_params p;
    struct lg_sample_edit *edits = NULL;
    uint32_t n_edits = 0, wg;
    struct lg_sample_push pc;
    int topk_search, topp_search;
    struct lg_pipeline *pl[K_COUNT];
    enum llmgpu_status st;
    VkCommandBuffer cb;

    if (!ctx || !c || !logits || !u || !tokens || n_vocab == 0 || n_draws == 0 ||
        n_draws > LG_SAMPLE_MAX_DRAWS)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (atomic_load(&ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST;
    st = read_params(ctx, in, &p);
    if (st == LLMGPU_OK)
        st = check_params(ctx, &p, n_vocab);
    if (st == LLMGPU_OK)
        st = build_edits(ctx, &p, &edits, &n_edits);
    if (st != LLMGPU_OK)
        return st;
    wg = wg_size(ctx);
    make_push(&p, n_vocab, wg, n_edits, n_draws, &pc, &topk_search, &topp_search);

    for (int k = 0; k < K_COUNT && st == LLMGPU_OK; k++)
        st = get_pipeline(ctx, k, &pl[k]);
    if (st == LLMGPU_OK)
        st = cache_fit(ctx, c, logits, n_vocab, n_edits, n_draws,
                       LG_MAX((uint64_t)pc.n_prep, (uint64_t)pc.n_chunks * 32), pl);
    if (st != LLMGPU_OK)
        goto done;
    if (n_edits)
        memcpy(c->ebuf.mapped, edits, n_edits * sizeof *edits);
    memcpy(c->ubuf.mapped, u, (size_t)n_draws * 4);
    /* recorded anew each call (a few dozen commands): the plan depends on the params */
    st = lg_cmd_begin(ctx, &c->cmd, 1);
    if (st != LLMGPU_OK)
        goto done;
    cb = c->cmd.cb;

    /* the order of kernels/sample.glsl; one barrier after each dispatch */
    lg_cmd_barrier_transfer(cb);
    lg_cmd_dispatch(cb, pl[K_PREP], c->sets[K_PREP], &pc, pc.n_prep, 1, 1);
    lg_cmd_barrier(cb);
    pc.op = OP_INIT;
    lg_cmd_dispatch(cb, pl[K_SELECT], c->sets[K_SELECT], &pc, 1, 1, 1);
    lg_cmd_barrier(cb);
    for (int search = 0; search < 2; search++) {
        if (!(search == 0 ? topk_search : topp_search))
            continue;
        pc.op = search == 0 ? OP_COUNT : OP_MASS;
        for (pc.pass = 0; pc.pass < 8; pc.pass++) {
            lg_cmd_dispatch(cb, pl[K_HIST], c->sets[K_HIST], &pc, pc.n_chunks, 1, 1);
            lg_cmd_barrier(cb);
            lg_cmd_dispatch(cb, pl[K_SELECT], c->sets[K_SELECT], &pc, 1, 1, 1);
            lg_cmd_barrier(cb);
        }
    }
    lg_cmd_dispatch(cb, pl[K_MASS], c->sets[K_MASS], &pc, pc.n_chunks, 1, 1);
    lg_cmd_barrier(cb);
    lg_cmd_dispatch(cb, pl[K_DRAW], c->sets[K_DRAW], &pc, n_draws, 1, 1);
    {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT,
                             0, 1, &mb, 0, NULL, 0, NULL);
    }
    st = lg_cmd_end(ctx, &c->cmd);
    if (st == LLMGPU_OK)
        st = lg_cmd_submit_wait(ctx, &c->cmd);
    if (st == LLMGPU_OK) {
        const uint32_t *r = c->res.mapped;
        for (uint32_t i = 0; i < n_draws; i++) {
            if (r[i] >= n_vocab) {
                lg_err(&ctx->log, "nothing to sample: every token is banned");
                st = LLMGPU_ERR_INVALID_ARGUMENT;
                break;
            }
            tokens[i] = (int32_t)r[i];
        }
    }
done:
    lg_free(&ctx->alloc, edits);
    return st;
}

enum llmgpu_status lg_sample_from_buffer(struct llmgpu_context *ctx, const struct lg_buffer *logits,
                                         uint32_t n_vocab, const struct llmgpu_sampler_params *in,
                                         const float *u, uint32_t n_draws, int32_t *tokens) {
    struct lg_sample_cache c;
    enum llmgpu_status st;
    memset(&c, 0, sizeof c);
    st = lg_sample_cached(ctx, &c, logits, n_vocab, in, u, n_draws, tokens);
    if (ctx)
        lg_sample_cache_free(ctx, &c);
    return st;
}

enum llmgpu_status llmgpu_session_sample(struct llmgpu_session *s,
                                         const struct llmgpu_sampler_params *params,
                                         int32_t *token) {
    struct llmgpu_sampler_params p;
    struct llmgpu_context *ctx;
    enum llmgpu_status st;
    float u;
    if (!s || !token)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    ctx = lg_session_context(s);
    if (atomic_load(&ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST; /* before the logits check: loss outranks misuse */
    if (!lg_session_has_logits(s)) {
        lg_err(&ctx->log, "nothing to sample: no token has been evaluated");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    st = read_params(ctx, params, &p);
    if (st != LLMGPU_OK)
        return st;
    /* the draw's number: (seed, position), so no sampler state is stored */
    u = lg_sample_uniform(p.seed, llmgpu_session_position(s));
    return lg_sample_cached(ctx, lg_session_sample_cache(s), lg_session_logits_buffer(s),
                            lg_session_model(s)->cfg.n_vocab, &p, &u, 1, token);
}
