/*
 * forward.h - the model on the GPU and the session that runs it.
 *
 * A weight matrix lives in row shards (lg_wtensor) so no binding exceeds the
 * device's maxStorageBufferRange (or the caller's max_binding_size). Q, K and V
 * are concatenated at load into one [(NH + 2 NKV) HD, E] matrix (one mat-vec
 * instead of three); gate and up stay separate matrices that one fused kernel
 * reads together (matvec.comp GATE_UP).
 */
#ifndef LG_FORWARD_H
#define LG_FORWARD_H

#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "vk/vk.h"

/* Element type of a weight on the GPU: the WTYPE define of the kernels. The
 * block types' layouts are in upload.c's top comment. */
enum lg_wtype {
    LG_WTYPE_F32 = 0,
    LG_WTYPE_F16 = 1,
    LG_WTYPE_BF16 = 2,
    LG_WTYPE_Q8_0 = 3,
    LG_WTYPE_Q4_0 = 4,
    LG_WTYPE_Q4_K = 5,
    LG_WTYPE_Q6_K = 6,
    LG_WTYPE_Q4_G = 7  /* GPTQ/AWQ 4-bit, per-group f16 scale and zero point */
};

/* A block-quantized type (kernels/quant.glsl WQUANT). */
static inline int lg_wtype_is_block(enum lg_wtype t) {
    return t >= LG_WTYPE_Q8_0 && t <= LG_WTYPE_Q4_G;
}

/* Bytes of one KV-cache row (one position's K, or V, of every KV head) of a session
 * whose cache is q8 (kernels/common.glsl KV_Q8: W int8 values, then W / 32 f16 scales,
 * padded to 16 bytes) or f16. */
static inline uint64_t lg_kv_row_bytes(uint32_t n_kv_head, uint32_t head_dim, int q8) {
    uint64_t w = (uint64_t)n_kv_head * head_dim;
    return q8 ? (w + w / 16 + 15) / 16 * 16 : w * 2;
}

/* Queries a workgroup of the prefill attention (attn.comp's BQ define; its grid is
 * (n_head, CEIL(n_tok, BQ))): 16, or 8 past head_dim 128 so its tiles fit 32 KiB of
 * shared memory. */
static inline uint32_t lg_attn_bq(uint32_t head_dim) {
    return head_dim > 128 ? 8 : 16;
}

/* Decode attention (attn_split.comp): workgroup size (keys a block), the fewest keys a
 * split takes, query heads a workgroup (the largest divisor of n_head / n_kv_head up to
 * LG_ATTN_SPLIT_GQ_MAX: they share one KV head, so its rows are read once for all of
 * them; on the H100, TinyLlama, 4 was the best compromise: 8 is 8 % faster at 16,384
 * keys and 6 % slower at 512, bench/RESULTS.md), and splits a head
 * group (about 1024 workgroups in all, 1 to 64 a group, no more than n_ctx can fill).
 * The partial states take lg_attn_split_part_floats() floats. */
#ifndef LG_ATTN_SPLIT_WG /* build knobs, for measuring alternatives */
#define LG_ATTN_SPLIT_WG 256u
#endif
#ifndef LG_ATTN_SPLIT_MIN_LEN
#define LG_ATTN_SPLIT_MIN_LEN 128u
#endif
#ifndef LG_ATTN_SPLIT_TARGET
#define LG_ATTN_SPLIT_TARGET 1024u
#endif
/* The most splits a head group (the kernel's NSP: its combination reduces 64 a head). */
#define LG_ATTN_SPLIT_MAX 64u
/* The largest head_dim it takes: a dim quad an invocation (sessions refuse larger). */
#define LG_ATTN_SPLIT_MAX_HD (4u * LG_ATTN_SPLIT_WG)
#ifndef LG_ATTN_SPLIT_GQ_MAX
#define LG_ATTN_SPLIT_GQ_MAX 4u
#endif
static inline uint32_t lg_attn_split_gq(uint32_t n_head, uint32_t n_kv_head) {
    uint32_t g = n_head / n_kv_head, q = LG_ATTN_SPLIT_GQ_MAX;
    while (g % q)
        q--;
    return q;
}
static inline uint32_t lg_attn_split_n(uint32_t n_head, uint32_t n_kv_head, uint32_t n_ctx) {
    uint32_t s = LG_ATTN_SPLIT_TARGET / (n_head / lg_attn_split_gq(n_head, n_kv_head));
    uint32_t most = (n_ctx + LG_ATTN_SPLIT_MIN_LEN - 1) / LG_ATTN_SPLIT_MIN_LEN;
    s = s > LG_ATTN_SPLIT_MAX ? LG_ATTN_SPLIT_MAX : s;
    s = s > most ? most : s;
    return s < 1 ? 1 : s;
}
static inline uint64_t lg_attn_split_part_floats(uint32_t n_head, uint32_t n_kv_head,
                                                 uint32_t head_dim, uint32_t n_ctx) {
    return (uint64_t)n_head * lg_attn_split_n(n_head, n_kv_head, n_ctx) *
           ((head_dim + 3) / 4 * 4 + 2);
}

/* A tile configuration of the tensor-core prefill GEMM (matmul_cm.comp's BM BN BK NSG
 * WR DB defines; its top comment says what each means), and the shared memory it takes. */
struct lg_cm_cfg {
    uint32_t bm, bn, bk, nsg, wr, db;
};
static inline uint32_t lg_cm_shared_bytes(const struct lg_cm_cfg *c) {
    return (c->db + 1) * (c->bm + c->bn) * (c->bk + 8) * 2;
}

struct lg_wshard {
    struct lg_buffer buf;
    uint32_t row_begin, rows;
};

struct lg_wtensor {
    uint32_t rows, cols;
    enum lg_wtype type;
    uint32_t n_shards;
    struct lg_wshard *shards;
    uint32_t group;  /* LG_WTYPE_Q4_G: values a group (the GROUP define); else 0 */
};

struct lg_layer {
    struct lg_buffer attn_norm, ffn_norm; /* f32 [E] */
    struct lg_wtensor wqkv;               /* [(NH + 2 NKV) HD, E] */
    struct lg_buffer bqkv;                /* f32 [(NH + 2 NKV) HD]; Qwen2 only */
    struct lg_wtensor wo;                 /* [E, NH HD] */
    struct lg_wtensor gate, up;           /* [F, E] */
    struct lg_wtensor down;               /* [E, F] */
};

struct llmgpu_model {
    struct llmgpu_context *ctx;
    struct lg_model_config cfg;
    struct lg_tokenizer *tok;
    enum llmgpu_weight_type weight_type; /* as requested (resolved default) */
    int vocab_only;
    struct lg_wtensor tok_embd;          /* [V, E] */
    struct lg_wtensor lm_head;           /* [V, E]; shares tok_embd's shards when tied */
    int lm_head_tied;
    struct lg_buffer out_norm;           /* f32 [E] */
    struct lg_layer *layers;
    struct lg_buffer dummy;              /* bound where a kernel has nothing to read */
    uint64_t n_params, weight_bytes;
    _Atomic int n_sessions;
};

/* The per-step block every forward kernel reads (common.glsl STEP_BLOCK):
 * std430, 16 bytes then n_batch token ids. */
struct lg_step {
    uint32_t pos0;
    uint32_t n_tok;
    uint32_t pad[2];
};
_Static_assert(sizeof(struct lg_step) == 16, "lg_step mirrors STEP_BLOCK");

/* Push constants of matvec.comp and matmul.comp (std430: six uints). */
struct lg_mm_push {
    uint32_t row_begin, n_rows, ld_y, n_tok, x_row, y_col;
};
_Static_assert(sizeof(struct lg_mm_push) == 24, "lg_mm_push mirrors matvec.comp");

/* Session internals other modules may use (sampler): the context, the model,
 * the logits buffer (f32 [n_vocab], valid after a step), and whether it holds
 * logits of an evaluated token. */
struct llmgpu_session;
struct llmgpu_context *lg_session_context(const struct llmgpu_session *s);
const struct llmgpu_model *lg_session_model(const struct llmgpu_session *s);
const struct lg_buffer *lg_session_logits_buffer(const struct llmgpu_session *s);
/* The session's sampler scratch (sample.c), kept between llmgpu_session_sample calls. */
struct lg_sample_cache *lg_session_sample_cache(struct llmgpu_session *s);
int lg_session_has_logits(const struct llmgpu_session *s);
/* Whether the session's KV cache is 8-bit (LLMGPU_KV_TYPE_Q8_0). */
int lg_session_kv_q8(const struct llmgpu_session *s);
/* The KV cache of layer l: n_ctx rows of lg_kv_row_bytes() each (f16, or q8 when
 * lg_session_kv_q8); positions [0, position) are valid. */
const struct lg_buffer *lg_session_kcache(const struct llmgpu_session *s, uint32_t l);
const struct lg_buffer *lg_session_vcache(const struct llmgpu_session *s, uint32_t l);
/* Make the KV cache hold at least n positions (it grows in pages up to n_ctx);
 * call before writing rows through lg_session_kcache/vcache. */
enum llmgpu_status lg_session_reserve(struct llmgpu_session *s, uint32_t n);
/* Set the position after the caller filled the KV cache (state load); the
 * session then has no logits until the next step. Reserve first: the position
 * is clamped to what the cache holds. */
void lg_session_set_position(struct llmgpu_session *s, uint32_t pos);
/* Dequantized prefill (session.c): whether the prefill GEMMs of a session of n_batch on
 * m read f16 copies of its block-quantized matrices; *bytes: the scratch those copies
 * take (0 with none). */
int lg_prefill_dq(const struct llmgpu_model *m, uint32_t n_batch, uint64_t *bytes);
/* Whether sessions of n_batch on m keep an f16 copy of the prefill norm's output (n_batch
 * x n_embd f16s of scratch) for the tensor-core GEMMs (lib/session.c, lg_prefill_xh). */
int lg_prefill_xh(const struct llmgpu_model *m, uint32_t n_batch);

enum llmgpu_status lg_model_upload(struct llmgpu_model *m, struct lg_checkpoint *ck,
                                   const struct llmgpu_model_params *p);
/* The same from a GGUF file (after lg_gguf_open_model); see upload.c. */
struct lg_gguf;
enum llmgpu_status lg_model_upload_gguf(struct llmgpu_model *m, const struct lg_gguf *g,
                                        const struct llmgpu_model_params *p);
void lg_model_release_gpu(struct llmgpu_model *m);
uint64_t lg_wtensor_bytes(const struct lg_wtensor *t);

#endif /* LG_FORWARD_H */
