/*
 * forward.c - the reference forward pass: one token at a time through a
 * Llama / Mistral / Qwen2 decoder, f32, the step order and buffer names of
 * llama2.c run.c forward(), each step named after the transformers module it
 * mirrors (LlamaDecoderLayer, LlamaAttention, LlamaMLP, ...).
 *
 * Owns: struct ref_model / ref_state memory and the order of the ops.
 * Must not touch: the arithmetic of single ops (ops.c), files (ckpt.c).
 */
#include "ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Dimensions used everywhere below, from the config. */
struct dims {
    size_t n_vocab, n_embd, n_ff, n_layer, n_head, n_kv_head, head_dim;
    size_t q_dim;  /* n_head * head_dim */
    size_t kv_dim; /* n_kv_head * head_dim */
};

static int get_dims(const struct lg_model_config *c, struct dims *d) {
    if (c->n_vocab == 0 || c->n_embd == 0 || c->n_ff == 0 || c->n_layer == 0 || c->n_head == 0 ||
        c->n_kv_head == 0 || c->head_dim == 0 || c->head_dim % 2 != 0 ||
        c->n_head % c->n_kv_head != 0)
        return -1;
    d->n_vocab = c->n_vocab;
    d->n_embd = c->n_embd;
    d->n_ff = c->n_ff;
    d->n_layer = c->n_layer;
    d->n_head = c->n_head;
    d->n_kv_head = c->n_kv_head;
    d->head_dim = c->head_dim;
    d->q_dim = d->n_head * d->head_dim;
    d->kv_dim = d->n_kv_head * d->head_dim;
    return 0;
}

/* Hand out n floats from a bump pointer. */
static float *take(float **p, size_t n) {
    float *r = *p;
    *p += n;
    return r;
}

int ref_model_alloc(const struct lg_model_config *cfg, struct ref_model *m) {
    struct dims d;
    memset(m, 0, sizeof *m);
    if (get_dims(cfg, &d) != 0)
        return -1;
    m->cfg = *cfg;
    size_t L = d.n_layer;
    size_t n = d.n_vocab * d.n_embd               /* token_embedding */
               + L * d.n_embd * 2                 /* rms_att_weight, rms_ffn_weight */
               + L * d.q_dim * d.n_embd * 2       /* wq, wo */
               + L * d.kv_dim * d.n_embd * 2      /* wk, wv */
               + L * d.n_ff * d.n_embd * 3        /* w1, w2, w3 */
               + d.n_embd                         /* rms_final_weight */
               + (cfg->tie_word_embeddings ? 0 : d.n_vocab * d.n_embd) /* wcls */
               + (cfg->qkv_bias ? L * (d.q_dim + 2 * d.kv_dim) : 0);   /* bq, bk, bv */
    m->mem = calloc(n, sizeof(float));
    if (!m->mem)
        return -1;
    m->n_mem = n;

    float *p = m->mem;
    struct ref_weights *w = &m->w;
    w->token_embedding = take(&p, d.n_vocab * d.n_embd);
    w->rms_att_weight = take(&p, L * d.n_embd);
    w->wq = take(&p, L * d.q_dim * d.n_embd);
    w->wk = take(&p, L * d.kv_dim * d.n_embd);
    w->wv = take(&p, L * d.kv_dim * d.n_embd);
    if (cfg->qkv_bias) {
        w->bq = take(&p, L * d.q_dim);
        w->bk = take(&p, L * d.kv_dim);
        w->bv = take(&p, L * d.kv_dim);
    }
    w->wo = take(&p, L * d.n_embd * d.q_dim);
    w->rms_ffn_weight = take(&p, L * d.n_embd);
    w->w1 = take(&p, L * d.n_ff * d.n_embd);
    w->w2 = take(&p, L * d.n_embd * d.n_ff);
    w->w3 = take(&p, L * d.n_ff * d.n_embd);
    w->rms_final_weight = take(&p, d.n_embd);
    w->wcls = cfg->tie_word_embeddings ? w->token_embedding : take(&p, d.n_vocab * d.n_embd);
    LLMGPU_ASSERT((size_t)(p - m->mem) == n);
    return 0;
}

void ref_model_free(struct ref_model *m) {
    free(m->mem);
    memset(m, 0, sizeof *m);
}

void ref_model_init_random(struct ref_model *m, uint64_t seed) {
    struct dims d;
    struct ref_rng r;
    struct ref_weights *w = &m->w;
    if (get_dims(&m->cfg, &d) != 0)
        return;
    ref_rng_seed(&r, seed);
    size_t L = d.n_layer;
    float s_embd = 1.0f / sqrtf((float)d.n_embd), s_q = 1.0f / sqrtf((float)d.q_dim);
    float s_ff = 1.0f / sqrtf((float)d.n_ff);
    ref_fill_normal(&r, w->token_embedding, d.n_vocab * d.n_embd, 0.0f, 1.0f);
    ref_fill_normal(&r, w->rms_att_weight, L * d.n_embd, 1.0f, 0.25f);
    ref_fill_normal(&r, w->wq, L * d.q_dim * d.n_embd, 0.0f, 1.5f * s_embd);
    ref_fill_normal(&r, w->wk, L * d.kv_dim * d.n_embd, 0.0f, 1.5f * s_embd);
    ref_fill_normal(&r, w->wv, L * d.kv_dim * d.n_embd, 0.0f, s_embd);
    if (w->bq) {
        ref_fill_normal(&r, w->bq, L * d.q_dim, 0.0f, 0.5f);
        ref_fill_normal(&r, w->bk, L * d.kv_dim, 0.0f, 0.5f);
        ref_fill_normal(&r, w->bv, L * d.kv_dim, 0.0f, 0.5f);
    }
    ref_fill_normal(&r, w->wo, L * d.n_embd * d.q_dim, 0.0f, s_q);
    ref_fill_normal(&r, w->rms_ffn_weight, L * d.n_embd, 1.0f, 0.25f);
    ref_fill_normal(&r, w->w1, L * d.n_ff * d.n_embd, 0.0f, s_embd);
    ref_fill_normal(&r, w->w2, L * d.n_embd * d.n_ff, 0.0f, s_ff);
    ref_fill_normal(&r, w->w3, L * d.n_ff * d.n_embd, 0.0f, s_embd);
    ref_fill_normal(&r, w->rms_final_weight, d.n_embd, 1.0f, 0.25f);
    if (w->wcls != w->token_embedding)
        ref_fill_normal(&r, w->wcls, d.n_vocab * d.n_embd, 0.0f, 6.0f * s_embd);
}

int ref_state_alloc(const struct ref_model *m, int n_ctx, struct ref_state *s) {
    struct dims d;
    memset(s, 0, sizeof *s);
    if (get_dims(&m->cfg, &d) != 0 || n_ctx <= 0)
        return -1;
    size_t C = (size_t)n_ctx;
    size_t xb_dim = d.q_dim > d.n_embd ? d.q_dim : d.n_embd;
    size_t n = d.n_embd * 2 + xb_dim + d.n_ff * 2 + d.q_dim + d.n_head * C + d.n_vocab +
               2 * d.n_layer * C * d.kv_dim + d.head_dim / 2;
    s->mem = calloc(n, sizeof(float));
    if (!s->mem)
        return -1;
    float *p = s->mem;
    s->n_ctx = n_ctx;
    s->x = take(&p, d.n_embd);
    s->xb = take(&p, xb_dim);
    s->xb2 = take(&p, d.n_embd);
    s->hb = take(&p, d.n_ff);
    s->hb2 = take(&p, d.n_ff);
    s->q = take(&p, d.q_dim);
    s->att = take(&p, d.n_head * C);
    s->logits = take(&p, d.n_vocab);
    s->key_cache = take(&p, d.n_layer * C * d.kv_dim);
    s->value_cache = take(&p, d.n_layer * C * d.kv_dim);
    s->inv_freq = take(&p, d.head_dim / 2);
    LLMGPU_ASSERT((size_t)(p - s->mem) == n);

    struct ref_rope rope;
    ref_rope_from_config(&rope, &m->cfg);
    ref_rope_inv_freq(&rope, s->inv_freq);
    return 0;
}

void ref_state_free(struct ref_state *s) {
    free(s->mem);
    memset(s, 0, sizeof *s);
}

int ref_forward(const struct ref_model *m, struct ref_state *s, int token, int pos, float *logits) {
    const struct lg_model_config *c = &m->cfg;
    const struct ref_weights *w = &m->w;
    struct dims d;
    if (get_dims(c, &d) != 0 || token < 0 || (size_t)token >= d.n_vocab || pos < 0 ||
        pos >= s->n_ctx)
        return -1;
    const int dim = (int)d.n_embd, ff = (int)d.n_ff, q_dim = (int)d.q_dim;
    const int kv_dim = (int)d.kv_dim, head_dim = (int)d.head_dim;
    const size_t C = (size_t)s->n_ctx;
    float *x = s->x;

    /* embed_tokens: x = token_embedding[token] */
    memcpy(x, w->token_embedding + (size_t)token * d.n_embd, d.n_embd * sizeof *x);

    for (size_t l = 0; l < d.n_layer; l++) {
        /* ---- LlamaDecoderLayer: x = x + self_attn(input_layernorm(x)) ---- */
        ref_rmsnorm(s->xb, x, w->rms_att_weight + l * d.n_embd, dim, c->rms_norm_eps);

        /* q_proj, k_proj, v_proj (+ Qwen2 biases); K and V go straight to this
         * position's row of the cache: (n_layer, n_ctx, kv_dim) */
        size_t loff = l * C * d.kv_dim;
        s->k = s->key_cache + loff + (size_t)pos * d.kv_dim;
        s->v = s->value_cache + loff + (size_t)pos * d.kv_dim;
        ref_matvec(s->q, s->xb, w->wq + l * d.q_dim * d.n_embd, w->bq ? w->bq + l * d.q_dim : NULL,
                   dim, q_dim);
        ref_matvec(s->k, s->xb, w->wk + l * d.kv_dim * d.n_embd,
                   w->bk ? w->bk + l * d.kv_dim : NULL, dim, kv_dim);
        ref_matvec(s->v, s->xb, w->wv + l * d.kv_dim * d.n_embd,
                   w->bv ? w->bv + l * d.kv_dim : NULL, dim, kv_dim);

        /* apply_rotary_pos_emb on q (n_head, head_dim) and k (n_kv_head, head_dim) */
        ref_rope_apply(s->q, (int)d.n_head, head_dim, pos, s->inv_freq);
        ref_rope_apply(s->k, (int)d.n_kv_head, head_dim, pos, s->inv_freq);
        if (s->kv_q8) {
            ref_round_kv_q8(s->k, d.kv_dim);
            ref_round_kv_q8(s->v, d.kv_dim);
        }

        /* eager_attention_forward over positions 0..pos (Mistral: the last
         * sliding_window of them) -> xb (n_head*head_dim) */
        ref_attention(s->xb, s->q, s->key_cache + loff, s->value_cache + loff, s->att, s->n_ctx,
                      (int)d.n_head, (int)d.n_kv_head, head_dim, pos, (int)c->sliding_window);

        /* o_proj and the residual add */
        ref_matvec(s->xb2, s->xb, w->wo + l * d.n_embd * d.q_dim, NULL, q_dim, dim);
        ref_add(x, s->xb2, dim);

        /* ---- x = x + mlp(post_attention_layernorm(x)) ---- */
        ref_rmsnorm(s->xb, x, w->rms_ffn_weight + l * d.n_embd, dim, c->rms_norm_eps);

        /* LlamaMLP: down_proj(silu(gate_proj(xb)) * up_proj(xb)) */
        ref_matvec(s->hb, s->xb, w->w1 + l * d.n_ff * d.n_embd, NULL, dim, ff);
        ref_matvec(s->hb2, s->xb, w->w3 + l * d.n_ff * d.n_embd, NULL, dim, ff);
        ref_silu_mul(s->hb, s->hb, s->hb2, ff);
        ref_matvec(s->xb2, s->hb, w->w2 + l * d.n_embd * d.n_ff, NULL, ff, dim);
        ref_add(x, s->xb2, dim);
    }

    /* norm, then lm_head (the embedding when tied) */
    ref_rmsnorm(x, x, w->rms_final_weight, dim, c->rms_norm_eps);
    ref_matvec(logits, x, w->wcls, NULL, dim, (int)d.n_vocab);
    return 0;
}

int ref_perplexity(const struct ref_model *m, struct ref_state *s, const int32_t *tokens, int n,
                   double *mean_nll) {
    /* CrossEntropy over shifted logits: logits at position i predict tokens[i+1] */
    if (n < 2 || n > s->n_ctx)
        return -1;
    double sum = 0.0;
    for (int i = 0; i + 1 < n; i++) {
        if (ref_forward(m, s, tokens[i], i, s->logits) != 0 || tokens[i + 1] < 0 ||
            (uint32_t)tokens[i + 1] >= m->cfg.n_vocab)
            return -1;
        sum -= ref_log_softmax_at(s->logits, (int)m->cfg.n_vocab, tokens[i + 1]);
    }
    *mean_nll = sum / (double)(n - 1);
    return 0;
}
