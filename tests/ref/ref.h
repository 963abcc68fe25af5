/*
 * ref.h - the plain C f32 reference: scalar ops and a one-token-at-a-time
 * forward pass of Llama, Mistral and Qwen2, written for clarity (llama2.c
 * run.c style), used as an independent oracle by the GPU kernel and forward
 * tests.
 *
 * Owns: the maths of one forward step as Hugging Face transformers defines it
 * (each op names the transformers function it mirrors), a fixed-seed random
 * generator for test inputs, and comparison helpers.
 * Must not touch: Vulkan, the library's GPU code, the checkpoint parser
 * (ref_model_from_ckpt in ckpt.c only copies tensors the loader found).
 *
 * Conventions: every matrix is row-major; a Linear weight W is [out, in] as in
 * PyTorch, so y = W x means y[o] = sum_i W[o*in + i] x[i]. All arithmetic is
 * f32 except the documented reductions of ref_nmse, ref_log_softmax_at and
 * ref_perplexity, which use double. Only ref_*_alloc, ref_model_from_ckpt and
 * ref_golden_load allocate; each has a matching *_free.
 */
#ifndef LG_TESTS_REF_H
#define LG_TESTS_REF_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- Fixed-seed random inputs (never random_device; rule 41) ---- */

/* xorshift64* state; any seed, 0 included, gives a valid stream. */
struct ref_rng {
    uint64_t s;
};
void ref_rng_seed(struct ref_rng *r, uint64_t seed);
uint64_t ref_rng_u64(struct ref_rng *r);
/* Uniform in [0, 1), 24 random bits. */
float ref_rng_uniform(struct ref_rng *r);
/* Standard normal (Box-Muller). */
float ref_rng_normal(struct ref_rng *r);
/* out[i] = mean + std * normal, i < n. */
void ref_fill_normal(struct ref_rng *r, float *out, size_t n, float mean, float std);

/* ---- Ops ---- */

/* LlamaRMSNorm.forward (also Mistral/Qwen2): out = w * (x * rsqrt(mean(x^2) + eps)).
 * The sum of squares is accumulated in f32 in index order, the multiply order is
 * transformers' (normalise first, then weight). out may alias x. */
void ref_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* x rounded as matvec.comp's IDOT (integer dot product) mode rounds it before the
 * dot products: per 16 values, d = max |x| / 127, q = x * (127 / max |x|) rounded
 * half to even, x = d q. A tail of fewer than 16 values is left as it is. */
void ref_round_x_int8(float *x, size_t n);

/* x rounded as an 8-bit KV cache (LLMGPU_KV_TYPE_Q8_0, kernels/rope_kv.comp) stores
 * it: per 32 values, d = max |x| / 127, q = x / d rounded half to even (clamped to
 * +-127), x = f16(d) q. n is a multiple of 32. */
void ref_round_kv_q8(float *x, size_t n);

/* nn.Linear.forward: out[o] = sum_i w[o*n_in + i] * x[i] (+ b[o] when b != NULL).
 * w: (n_out, n_in). out must not alias x. */
void ref_matvec(float *out, const float *x, const float *w, const float *b, int n_in, int n_out);

/* nn.Linear.forward on n_tok rows: out (n_tok, n_out) = x (n_tok, n_in) @ w^T
 * (+ b). The batched (prefill) form the GEMM kernels are checked against. */
void ref_matmul(float *out, const float *x, const float *w, const float *b, int n_tok, int n_in,
                int n_out);

/* RoPE frequencies: inv_freq[i] for i < head_dim/2, as transformers'
 * _compute_default_rope_parameters / _compute_linear_scaling_rope_parameters /
 * _compute_llama3_parameters compute them (in f32, same order of operations). */
struct ref_rope {
    uint32_t head_dim;
    float theta;
    enum lg_rope_scaling scaling;
    float factor;          /* linear, llama3 */
    float low_freq_factor; /* llama3 */
    float high_freq_factor;
    uint32_t orig_ctx;     /* llama3: original_max_position_embeddings */
};
void ref_rope_from_config(struct ref_rope *rope, const struct lg_model_config *cfg);
void ref_rope_inv_freq(const struct ref_rope *rope, float *inv_freq);

/* apply_rotary_pos_emb with rotate_half, for n_heads heads of head_dim at
 * position pos, in place: vec is (n_heads, head_dim); within a head element i
 * pairs with i + head_dim/2 (not 2i, 2i+1: the HF layout, no permutation):
 *   a' = a cos(pos f_i) - b sin(pos f_i),   b' = b cos(pos f_i) + a sin(pos f_i)
 * with f = inv_freq (head_dim/2 values) and the angle rounded to f32 first, as
 * LlamaRotaryEmbedding.forward does. */
void ref_rope_apply(float *vec, int n_heads, int head_dim, int pos, const float *inv_freq);

/* nn.functional.softmax over n values in place (max-subtracted, f32). */
void ref_softmax(float *x, int n);

/* LlamaMLP's act_fn(gate) * up with act_fn = SiLU: hb[i] = gate[i] * sigmoid(gate[i]) * up[i].
 * hb may alias gate. */
void ref_silu_mul(float *hb, const float *gate, const float *up, int n);

/* x[i] += y[i]: the residual connection. */
void ref_add(float *x, const float *y, int n);

/* The KV head a query head reads (repeat_kv in transformers): GQA groups
 * n_head / n_kv_head consecutive query heads per KV head; MQA is n_kv_head 1. */
int ref_kv_head(int head, int n_head, int n_kv_head);

/* First key position a query at pos attends to: transformers' causal mask
 * kv <= q and, with a sliding window W > 0, sliding_window_overlay kv > q - W,
 * i.e. keys in (pos - W, pos], W of them. window 0: full attention (0). */
int ref_attn_first_key(int pos, int window);

/*
 * eager_attention_forward for one query position: for each head h,
 *   att[t] = q_h . k_t * head_dim^-0.5 for t in [ref_attn_first_key(pos, window), pos],
 *   softmax over those t, out_h = sum_t att[t] v_t,
 * where k_t, v_t are the rows of the kv head ref_kv_head(h). Keys outside the
 * window are skipped (transformers adds the dtype's minimum, which gives them
 * weight exactly 0).
 *   out:     (n_head, head_dim)
 *   q:       (n_head, head_dim), RoPE already applied
 *   k_cache: (n_ctx, n_kv_head*head_dim) rows 0..pos filled, RoPE applied
 *   v_cache: (n_ctx, n_kv_head*head_dim)
 *   att:     scratch (n_head, att_stride), att_stride >= pos + 1; on return
 *            att[h*att_stride + t] holds the probabilities (0 outside the window)
 */
void ref_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                   float *att, int att_stride, int n_head, int n_kv_head, int head_dim, int pos,
                   int window);

/* Index of the largest value; the lowest index on ties (torch.argmax). */
int ref_argmax(const float *x, int n);

/* Top-1 minus top-2 of x (n >= 2). */
float ref_top2_margin(const float *x, int n);

/* log softmax(x)[i] computed in double: the per-token log likelihood. */
double ref_log_softmax_at(const float *x, int n, int i);

/* Normalised mean squared error sum((a-b)^2) / sum(b^2) in double, b the
 * reference; 0 when both are all zero, INFINITY when only b is. */
double ref_nmse(const float *a, const float *b, size_t n);

/* ---- GPTQ / AWQ (gptq_ref.c) ---- */

struct lg_checkpoint;
/* The Linear "<base>" (e.g. "model.layers.0.mlp.up_proj") of a GPTQ/AWQ
 * checkpoint dequantized from its qweight/qzeros/scales (g_idx where present)
 * into w (n_out, k_in) f32: w = scale (q - zero). 0, or -1 (logged to stderr)
 * when tensors are missing or of other sizes. */
int ref_dequant_qlinear(const struct lg_checkpoint *ck, const char *base, uint32_t n_out,
                        uint32_t k_in, float *w);

/* ---- Model and forward pass ---- */

/* The weights, f32, llama2.c TransformerWeights layout: per-layer tensors are
 * stacked along a leading n_layer axis. */
struct ref_weights {
    float *token_embedding; /* (n_vocab, n_embd) */
    float *rms_att_weight;  /* (n_layer, n_embd) */
    float *wq;              /* (n_layer, n_head*head_dim, n_embd) */
    float *wk;              /* (n_layer, n_kv_head*head_dim, n_embd) */
    float *wv;              /* (n_layer, n_kv_head*head_dim, n_embd) */
    float *bq;              /* (n_layer, n_head*head_dim); NULL unless qkv_bias */
    float *bk;              /* (n_layer, n_kv_head*head_dim); NULL unless qkv_bias */
    float *bv;              /* (n_layer, n_kv_head*head_dim); NULL unless qkv_bias */
    float *wo;              /* (n_layer, n_embd, n_head*head_dim) */
    float *rms_ffn_weight;  /* (n_layer, n_embd) */
    float *w1;              /* gate_proj (n_layer, n_ff, n_embd) */
    float *w2;              /* down_proj (n_layer, n_embd, n_ff) */
    float *w3;              /* up_proj (n_layer, n_ff, n_embd) */
    float *rms_final_weight; /* (n_embd) */
    float *wcls;            /* lm_head (n_vocab, n_embd); == token_embedding when tied */
};

struct ref_model {
    struct lg_model_config cfg;
    struct ref_weights w;
    float *mem;   /* one block holding every weight */
    size_t n_mem; /* floats in mem */
};

/* Allocate zeroed weights for cfg (biases only when cfg->qkv_bias, wcls aliases
 * the embedding when cfg->tie_word_embeddings). 0 on success, -1 on a bad
 * config or out of memory (m is then empty and safe to free). */
int ref_model_alloc(const struct lg_model_config *cfg, struct ref_model *m);
void ref_model_free(struct ref_model *m);

/* Fill every weight from a fixed-seed generator: matrices normal with std
 * 1/sqrt(in), norms 1 + 0.25 normal, embeddings and biases normal. */
void ref_model_init_random(struct ref_model *m, uint64_t seed);

/* The activations of one step and the KV cache, llama2.c RunState. */
struct ref_state {
    int n_ctx;
    float *x;      /* (n_embd) residual stream */
    float *xb;     /* (max(n_embd, n_head*head_dim)) normed input, then attention output */
    float *xb2;    /* (n_embd) projection output before the residual add */
    float *hb;     /* (n_ff) gate, then silu(gate)*up */
    float *hb2;    /* (n_ff) up */
    float *q;      /* (n_head*head_dim) */
    float *k;      /* (n_kv_head*head_dim) view of the key_cache row being written */
    float *v;      /* (n_kv_head*head_dim) view of the value_cache row being written */
    float *att;    /* (n_head, n_ctx) attention probabilities */
    float *logits; /* (n_vocab) */
    float *key_cache;   /* (n_layer, n_ctx, n_kv_head*head_dim) */
    float *value_cache; /* (n_layer, n_ctx, n_kv_head*head_dim) */
    float *inv_freq;    /* (head_dim/2) RoPE frequencies of the model */
    float *mem;
    int kv_q8;          /* set by the caller: cache rows rounded as ref_round_kv_q8 */
};

int ref_state_alloc(const struct ref_model *m, int n_ctx, struct ref_state *s);
void ref_state_free(struct ref_state *s);

/*
 * One forward step of token at position pos (0-based, < n_ctx): writes this
 * position's K and V into the cache and the next-token logits (n_vocab) into
 * logits (may be s->logits). Positions must be fed in order 0, 1, 2, ...;
 * feeding pos again overwrites it and forgets everything after it.
 * Returns 0, or -1 for a token or position out of range.
 */
int ref_forward(const struct ref_model *m, struct ref_state *s, int token, int pos, float *logits);

/*
 * Mean negative log likelihood (natural log) of tokens[1..n-1], each given all
 * tokens before it, from position 0: what transformers' loss with labels =
 * input_ids gives. Needs s->n_ctx >= n >= 2. Returns 0 or -1.
 */
int ref_perplexity(const struct ref_model *m, struct ref_state *s, const int32_t *tokens, int n,
                   double *mean_nll);

/* ---- Checkpoint adaptor (ckpt.c) ---- */

struct lg_checkpoint;
/* Copy every weight of an opened checkpoint into a new f32 ref_model (f16 and
 * bf16 are widened exactly). 0 on success, -1 on a missing tensor, a shape
 * that disagrees with cfg, or out of memory. */
int ref_model_from_ckpt(const struct lg_checkpoint *ckpt, struct ref_model *m);

/* ---- Golden outputs of transformers (golden.c) ----
 * What tests/tools/make_golden.py wrote for one variant; see
 * tests/fixtures/golden/README.md. */

struct ref_golden_variant {
    const char *name; /* directory under fixtures/golden */
    int optional;     /* made only when the installed transformers supports it */
};
extern const struct ref_golden_variant ref_golden_variants[];
extern const size_t ref_golden_n_variants;

struct ref_golden {
    char dir[512];
    int n_vocab, head_dim;
    int n_prompt, n_gen, n_nll, n_inv;
    int32_t *prompt_ids;    /* (n_prompt) BOS first */
    int32_t *greedy_ids;    /* (n_gen) transformers' greedy continuation */
    double *margins;        /* (n_gen) top-1 minus top-2 logit at each greedy step */
    float *logits;          /* (n_gen, n_vocab) row s: logits choosing greedy_ids[s] */
    int32_t *nll_ids;       /* (n_nll) */
    double nll_mean;        /* mean NLL of nll_ids[1..], natural log */
    double *inv_freq;       /* (n_inv = head_dim/2) rotary_emb.inv_freq; NULL if not recorded */
    double effective_window; /* measured sliding window; -1 when not probed */
};

/* 1 when some variant's golden.json exists under root (fixtures/golden). */
int ref_golden_made(const char *root);
/* Read dir/golden.json and dir/logits_steps.bin. 0, or -1 with a message on
 * stderr (g is then empty). */
int ref_golden_load(const char *dir, struct ref_golden *g);
void ref_golden_free(struct ref_golden *g);

#endif /* LG_TESTS_REF_H */
