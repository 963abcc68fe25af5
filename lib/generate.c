/*
 * generate.c - the generation loop (llmgpu_generate), session telemetry
 * (llmgpu_session_stats) and llmgpu_session_truncate.
 *
 * Owns: the loop prefill -> (sample -> text -> callback -> decode)*, the
 * streaming text with stop strings held back until they cannot match, the stop
 * reasons and timings. Must not touch: the session's internals; it goes through
 * the public session calls and the accessors of forward.h.
 *
 * One step's host work between two GPU steps is the streaming detokenizer
 * (fixed size, no allocation once the buffers have grown), a memmem over at
 * most the longest stop string plus one token's text, and the callback.
 */
#include <string.h>

#include "forward.h"

void llmgpu_generate_params_init(struct llmgpu_generate_params *p) {
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
}

#define KNOWN_FLAGS (LLMGPU_GENERATE_FLAG_IGNORE_EOG | LLMGPU_GENERATE_FLAG_SPECIAL_TEXT)

/* A growable byte buffer on the context's allocator. */
struct gbuf {
    const struct lg_alloc *a;
    char *p;
    size_t len, cap;
};

static int gbuf_reserve(struct gbuf *b, size_t extra) {
    size_t need, cap;
    char *np;
    if (lg_add_size(b->len, extra, &need))
        return -1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    np = lg_realloc(b->a, b->p, b->cap, cap);
    if (!np)
        return -1;
    b->p = np;
    b->cap = cap;
    return 0;
}

/* The loop's state. txt holds the last emitted bytes (at most max_stop - 1 of
 * them, so a stop string across the boundary is found) followed by the bytes not
 * yet emitted; emitted is where the latter begin. */
struct gen {
    struct llmgpu_session *s;
    const struct llmgpu_model *m;
    struct llmgpu_context *ctx;
    struct llmgpu_generate_params p;
    struct lg_tok_stream stream;
    struct gbuf txt, piece;
    size_t emitted, max_stop;
    uint64_t cb_ns; /* time spent in the callback, kept out of decode_ms */
};

/* Append the text token id adds (or the stream's flushed tail when id < 0). */
static enum llmgpu_status push_text(struct gen *g, int32_t id) {
    const struct lg_tokenizer *t = g->m->tok;
    size_t need = 0, n;
    enum llmgpu_status st;
    st = id >= 0 ? lg_tok_stream_push(t, &g->stream, id, NULL, &need)
                 : lg_tok_stream_flush(t, &g->stream, NULL, &need);
    if (st != LLMGPU_OK)
        return st;
    if (need > g->piece.cap) {
        g->piece.len = 0;
        if (gbuf_reserve(&g->piece, need))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    }
    n = g->piece.cap;
    st = id >= 0 ? lg_tok_stream_push(t, &g->stream, id, g->piece.p, &n)
                 : lg_tok_stream_flush(t, &g->stream, g->piece.p, &n);
    if (st != LLMGPU_OK || n == 0) /* nothing to add; txt.p may still be NULL */
        return st;
    if (gbuf_reserve(&g->txt, n))
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    memcpy(g->txt.p + g->txt.len, g->piece.p, n);
    g->txt.len += n;
    return LLMGPU_OK;
}

/* Earliest start of a stop string in txt that ends after the emitted bytes, or
 * SIZE_MAX. A stop string never starts inside the emitted bytes: those were held
 * back while they could begin one. */
static size_t find_stop(const struct gen *g) {
    size_t best = SIZE_MAX;
    for (uint32_t i = 0; i < g->p.n_stop; i++) {
        const char *stop = g->p.stop[i];
        size_t sl = strlen(stop), from = g->emitted >= sl ? g->emitted - sl + 1 : 0;
        const char *hit;
        if (g->txt.len < from + sl)
            continue;
        hit = memmem(g->txt.p + from, g->txt.len - from, stop, sl);
        if (hit && (size_t)(hit - g->txt.p) < best)
            best = (size_t)(hit - g->txt.p);
    }
    return best;
}

/* Bytes at the end of the unemitted text that could begin a stop string. */
static size_t held_back(const struct gen *g) {
    size_t pending = g->txt.len - g->emitted, h = 0;
    for (uint32_t i = 0; i < g->p.n_stop; i++) {
        const char *stop = g->p.stop[i];
        size_t sl = strlen(stop);
        for (size_t k = LG_MIN(sl - 1, pending); k > h; k--) {
            if (!memcmp(g->txt.p + g->txt.len - k, stop, k)) {
                h = k;
                break;
            }
        }
    }
    return h;
}

/* Hand txt[emitted, end) to the callback for token; returns its verdict. Keeps
 * only the last max_stop - 1 emitted bytes afterwards. */
static int emit(struct gen *g, int32_t token, size_t end) {
    int r = 0;
    if (g->p.on_token) {
        uint64_t t0 = lg_now_ns();
        /* txt.p is NULL until the first text: the callback gets "" then, never NULL */
        r = g->p.on_token(token, g->txt.p ? g->txt.p + g->emitted : "", end - g->emitted,
                          g->p.user);
        g->cb_ns += lg_now_ns() - t0;
    }
    g->emitted = end;
    if (g->emitted + 1 > g->max_stop) {
        size_t drop = g->emitted + 1 - g->max_stop;
        memmove(g->txt.p, g->txt.p + drop, g->txt.len - drop);
        g->txt.len -= drop;
        g->emitted -= drop;
    }
    return r;
}

static enum llmgpu_status read_params(struct llmgpu_context *ctx,
                                      const struct llmgpu_generate_params *in,
                                      struct llmgpu_generate_params *p) {
    llmgpu_generate_params_init(p);
    if (!in)
        return LLMGPU_OK;
    if (in->struct_size == 0) {
        lg_err(&ctx->log, "generate params: struct_size is 0 (call llmgpu_generate_params_init)");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    memcpy(p, in, LG_MIN((size_t)in->struct_size, sizeof *p));
    p->struct_size = sizeof *p;
    if (p->flags & ~(uint32_t)KNOWN_FLAGS) {
        lg_err(&ctx->log, "generate params: unknown flags 0x%x", p->flags);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    if (p->n_stop && !p->stop) {
        lg_err(&ctx->log, "generate params: n_stop %u but stop is NULL", p->n_stop);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    for (uint32_t i = 0; i < p->n_stop; i++) {
        if (!p->stop[i] || !p->stop[i][0]) {
            lg_err(&ctx->log, "generate params: stop string %u is NULL or empty", i);
            return LLMGPU_ERR_INVALID_ARGUMENT;
        }
    }
    if (p->sampler && p->sampler->struct_size == 0) {
        lg_err(&ctx->log, "generate params: sampler struct_size is 0");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    return LLMGPU_OK;
}

static double ms_since(uint64_t t0, uint64_t minus_ns) {
    uint64_t d = lg_now_ns() - t0;
    return (double)(d > minus_ns ? d - minus_ns : 0) * 1e-6;
}

enum llmgpu_status llmgpu_generate(struct llmgpu_session *s, const int32_t *prompt,
                                   size_t n_prompt, const struct llmgpu_generate_params *params,
                                   struct llmgpu_generate_result *result) {
    struct gen g;
    struct llmgpu_generate_result res;
    struct llmgpu_sampler_params sp;
    int32_t *recent = NULL;
    size_t n_recent = 0, cap_recent = 0;
    uint32_t n_ctx, budget;
    uint64_t t_start, t_first = 0;
    enum llmgpu_status st;

    if (!s || (!prompt && n_prompt))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    memset(&g, 0, sizeof g);
    memset(&res, 0, sizeof res);
    g.s = s;
    g.m = lg_session_model(s);
    g.ctx = lg_session_context(s);
    g.txt.a = g.piece.a = &g.ctx->alloc;
    st = read_params(g.ctx, params, &g.p);
    if (st != LLMGPU_OK)
        return st;
    if (result && result->struct_size == 0) {
        lg_err(&g.ctx->log, "generate result: struct_size is 0");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    if (!n_prompt && !lg_session_has_logits(s)) {
        lg_err(&g.ctx->log, "generate: empty prompt and no evaluated token to continue from");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    n_ctx = llmgpu_session_n_ctx(s);
    if (n_prompt > n_ctx - llmgpu_session_position(s)) {
        lg_err(&g.ctx->log, "generate: a prompt of %zu tokens does not fit (position %u, n_ctx %u)",
               n_prompt, llmgpu_session_position(s), n_ctx);
        return LLMGPU_ERR_CONTEXT_FULL;
    }
    g.max_stop = 1;
    for (uint32_t i = 0; i < g.p.n_stop; i++)
        g.max_stop = LG_MAX(g.max_stop, strlen(g.p.stop[i]));

    /* Tokens the penalties see: the caller's history, the prompt, then each new one. */
    budget = n_ctx - llmgpu_session_position(s) - (uint32_t)n_prompt;
    if (g.p.max_tokens && g.p.max_tokens < budget)
        budget = g.p.max_tokens;
    if (g.p.sampler) {
        memset(&sp, 0, sizeof sp);
        memcpy(&sp, g.p.sampler, LG_MIN((size_t)g.p.sampler->struct_size, sizeof sp));
        if (sp.n_recent && !sp.recent) {
            lg_err(&g.ctx->log, "generate: sampler n_recent %u but recent is NULL", sp.n_recent);
            return LLMGPU_ERR_INVALID_ARGUMENT;
        }
        cap_recent = (size_t)sp.n_recent + n_prompt + budget;
        recent = lg_calloc(&g.ctx->alloc, cap_recent ? cap_recent : 1, sizeof *recent);
        if (!recent)
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        if (sp.n_recent)
            memcpy(recent, sp.recent, sp.n_recent * sizeof *recent);
        if (n_prompt)
            memcpy(recent + sp.n_recent, prompt, n_prompt * sizeof *recent);
        n_recent = sp.n_recent + n_prompt;
        sp.recent = recent;
    }
    /* The text continues what precedes: no first-token strip of the stream. */
    lg_tok_stream_init_flags(&g.stream, (g.p.flags & LLMGPU_GENERATE_FLAG_SPECIAL_TEXT)
                                            ? 0 : LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL);
    g.stream.n_tokens = 1;
    g.stream.stripping = 1;
    g.stream.strip_left = 0;

    t_start = lg_now_ns();
    if (n_prompt) {
        st = llmgpu_session_prefill(s, prompt, n_prompt);
        res.n_prompt = (uint32_t)n_prompt;
        if (st != LLMGPU_OK)
            goto done;
    }
    res.prompt_ms = ms_since(t_start, 0);
    for (;;) {
        int32_t tok;
        int last = 0, eog;
        size_t end, stop_at;
        if (llmgpu_session_position(s) >= n_ctx) {
            res.stop_reason = LLMGPU_STOP_REASON_CONTEXT_FULL;
            break;
        }
        if (g.p.max_tokens && res.n_generated >= g.p.max_tokens) {
            res.stop_reason = LLMGPU_STOP_REASON_MAX_TOKENS;
            break;
        }
        if (recent) {
            sp.n_recent = (uint32_t)n_recent;
            st = llmgpu_session_sample(s, &sp, &tok);
        } else {
            st = llmgpu_session_sample_greedy(s, &tok);
        }
        if (st != LLMGPU_OK)
            goto done;
        if (res.n_generated++ == 0) {
            t_first = lg_now_ns();
            res.ttft_ms = (double)(t_first - t_start) * 1e-6;
        }
        if (recent)
            recent[n_recent++] = tok;
        /* what ends generation after this token */
        eog = !(g.p.flags & LLMGPU_GENERATE_FLAG_IGNORE_EOG) && llmgpu_model_token_is_eog(g.m, tok);
        if (eog) {
            res.stop_reason = LLMGPU_STOP_REASON_EOG;
            last = 1;
        } else {
            st = push_text(&g, tok);
            if (st != LLMGPU_OK)
                goto done;
        }
        if ((g.p.max_tokens && res.n_generated >= g.p.max_tokens) ||
            llmgpu_session_position(s) + 1 >= n_ctx) {
            res.stop_reason = (g.p.max_tokens && res.n_generated >= g.p.max_tokens)
                                  ? LLMGPU_STOP_REASON_MAX_TOKENS
                                  : LLMGPU_STOP_REASON_CONTEXT_FULL;
            last = 1;
        }
        stop_at = g.p.n_stop ? find_stop(&g) : SIZE_MAX;
        if (stop_at != SIZE_MAX) {
            res.stop_reason = LLMGPU_STOP_REASON_STOP_STRING;
            last = 1;
            end = LG_MAX(stop_at, g.emitted);
        } else {
            if (last) {
                st = push_text(&g, -1);
                if (st != LLMGPU_OK)
                    goto done;
                /* the flushed tail may complete a stop string */
                stop_at = g.p.n_stop ? find_stop(&g) : SIZE_MAX;
                if (stop_at != SIZE_MAX)
                    res.stop_reason = LLMGPU_STOP_REASON_STOP_STRING;
            }
            end = stop_at != SIZE_MAX ? LG_MAX(stop_at, g.emitted)
                  : last              ? g.txt.len
                                      : g.txt.len - held_back(&g);
        }
        if (emit(&g, tok, end) && !last) {
            res.stop_reason = LLMGPU_STOP_REASON_CALLBACK;
            last = 1;
        }
        /* every sampled token enters the session, so it holds the whole text and
         * has logits to continue from */
        st = llmgpu_session_decode(s, tok);
        if (st != LLMGPU_OK)
            goto done;
        if (last)
            break;
    }
done:
    if (t_first)
        res.decode_ms = ms_since(t_first, g.cb_ns);
    if (st != LLMGPU_OK)
        res.stop_reason = LLMGPU_STOP_REASON_NONE;
    if (result) {
        uint32_t size = LG_MIN(result->struct_size, (uint32_t)sizeof res);
        res.struct_size = size;
        memcpy(result, &res, size);
    }
    lg_free(&g.ctx->alloc, recent);
    lg_free(&g.ctx->alloc, g.txt.p);
    lg_free(&g.ctx->alloc, g.piece.p);
    return st;
}

enum llmgpu_status llmgpu_session_truncate(struct llmgpu_session *s, uint32_t position) {
    if (!s)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (position > llmgpu_session_position(s)) {
        lg_err(&lg_session_context(s)->log, "truncate: position %u beyond the session's %u",
               position, llmgpu_session_position(s));
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    if (position < llmgpu_session_position(s))
        lg_session_set_position(s, position);
    return LLMGPU_OK;
}

/* ---- telemetry ---- */

/* The formula below mirrors session.c's create_buffers() and make_rope_table();
 * check_generate's memory_and_context_stats compares it with what a session
 * really allocates. */

enum llmgpu_status llmgpu_session_memory(const struct llmgpu_model *model,
                                         const struct llmgpu_session_params *params,
                                         struct llmgpu_session_memory *out) {
    struct llmgpu_session_params p;
    struct llmgpu_session_memory full;
    const struct lg_model_config *c;
    uint64_t B, E, HD, NH, NKV, F, n_ctx, part;
    uint32_t size;
    if (!model || !out || out->struct_size == 0 || (params && params->struct_size == 0))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    c = &model->cfg;
    llmgpu_session_params_init(&p);
    if (params)
        memcpy(&p, params, LG_MIN(params->struct_size, (uint32_t)sizeof p));
    n_ctx = p.n_ctx ? p.n_ctx : LG_MIN(c->n_ctx_train, 4096u);
    B = LG_MIN(p.n_batch ? p.n_batch : 512u, n_ctx);
    E = c->n_embd, HD = c->head_dim, NH = c->n_head, NKV = c->n_kv_head, F = c->n_ff;
    part = lg_attn_split_part_floats(c->n_head, c->n_kv_head, c->head_dim, (uint32_t)n_ctx);
    memset(&full, 0, sizeof full);
    full.kv_bytes = 2 * (uint64_t)c->n_layer * n_ctx *
                    lg_kv_row_bytes(c->n_kv_head, c->head_dim, p.kv_type == LLMGPU_KV_TYPE_Q8_0);
    full.scratch_bytes = 16 + 4 * B                 /* step block and token ids */
                         + 2 * B * E * 4            /* x, xb */
                         + B * (NH + 2 * NKV) * HD * 4 /* qkv */
                         + 2 * B * NH * HD * 4      /* q, att */
                         + 3 * B * F * 4            /* gate|up, hb */
                         + (uint64_t)c->n_vocab * 8 /* logits, and their host copy */
                         + 16                       /* greedy result */
                         + 4 * part                 /* attention partials */
                         + n_ctx * (HD / 2) * 8;    /* RoPE cos/sin table */
    {
        uint64_t dq;
        (void)lg_prefill_dq(model, (uint32_t)B, &dq);
        full.scratch_bytes += dq; /* f16 copies of quantized matrices for prefill */
        if (lg_prefill_xh(model, (uint32_t)B))
            full.scratch_bytes += B * E * 2; /* the prefill norm's output in f16 */
    }
    size = LG_MIN(out->struct_size, (uint32_t)sizeof full);
    full.struct_size = size;
    memcpy(out, &full, size);
    return LLMGPU_OK;
}

enum llmgpu_status llmgpu_context_stats(const struct llmgpu_context *ctx,
                                        struct llmgpu_context_stats *out) {
    struct llmgpu_context_stats full;
    uint32_t size;
    if (!ctx || !out || out->struct_size == 0)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    memset(&full, 0, sizeof full);
    full.device_bytes = atomic_load(&ctx->device_bytes);
    full.kernels_compiled = atomic_load(&ctx->kc_compiled);
    full.kernel_cache_hits = atomic_load(&ctx->kc_cache_hits);
    full.kernel_compile_ms = (double)atomic_load(&ctx->kc_compile_ns) * 1e-6;
    size = LG_MIN(out->struct_size, (uint32_t)sizeof full);
    full.struct_size = size;
    memcpy(out, &full, size);
    return LLMGPU_OK;
}
