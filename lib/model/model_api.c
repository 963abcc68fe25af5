/*
 * model_api.c - public entry points of models and their tokenizer: load
 * (checkpoint + tokenizer + GPU upload), free, info, tokenize/detokenize.
 *
 * A path is a GGUF file when it is not a directory and starts with the magic
 * "GGUF" (whatever its name); anything else is a Hugging Face directory.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "forward.h"
#include "model/gguf.h"
#include "tokenizer/tok_gguf.h"

/* 1 when path is a regular file (not a directory) that starts with "GGUF". */
static int is_gguf_file(const char *path) {
    struct stat sb;
    unsigned char magic[4];
    FILE *f;
    int ok;
    if (stat(path, &sb) != 0 || S_ISDIR(sb.st_mode) || !(f = fopen(path, "rb")))
        return 0;
    ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    fclose(f);
    return ok;
}

/* The tensors of a GGUF model: their element count. */
static uint64_t gguf_n_params(const struct lg_gguf *g) {
    uint64_t n = 0;
    for (int r = 0; r < LG_T_COUNT; r++) {
        uint32_t layers = lg_arch_is_per_layer((enum lg_tensor_role)r) ? g->cfg.n_layer : 1;
        for (uint32_t l = 0; l < layers; l++) {
            const struct lg_gguf_tensor *t = lg_gguf_tensor_role(g, (enum lg_tensor_role)r, l);
            n += t ? t->n_elements : 0;
        }
    }
    return n;
}

/* llmgpu_model_load of a GGUF file (or the first part of a split set). */
static enum llmgpu_status load_gguf(struct llmgpu_model *m, const char *path,
                                    const struct llmgpu_model_params *p) {
    struct llmgpu_context *ctx = m->ctx;
    struct lg_gguf *g = NULL;
    enum llmgpu_status st = lg_gguf_open_model(&ctx->alloc, &ctx->log, path, &g);
    if (st != LLMGPU_OK)
        return st;
    m->cfg = g->cfg;
    m->n_params = gguf_n_params(g);
    st = lg_tok_load_gguf(&ctx->alloc, &ctx->log, g, 0, &m->tok);
    if (st == LLMGPU_OK && lg_tok_n_vocab(m->tok) > m->cfg.n_vocab)
        lg_warn(&ctx->log, "%s: the tokenizer has %u tokens, the model's vocabulary %u", path,
                lg_tok_n_vocab(m->tok), m->cfg.n_vocab);
    if (st == LLMGPU_OK && !m->vocab_only)
        st = lg_model_upload_gguf(m, g, p);
    lg_gguf_close(g);
    return st;
}

void llmgpu_model_params_init(struct llmgpu_model_params *p) {
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->weight_type = LLMGPU_WEIGHT_TYPE_DEFAULT;
}

enum llmgpu_status llmgpu_model_load(struct llmgpu_context *ctx, const char *path,
                                     const struct llmgpu_model_params *params,
                                     struct llmgpu_model **out) {
    struct llmgpu_model_params p;
    struct llmgpu_model *m;
    struct lg_checkpoint *ck = NULL;
    enum llmgpu_status st;

    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!ctx || !path || (params && params->struct_size == 0))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (atomic_load(&ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST;
    llmgpu_model_params_init(&p);
    if (params)
        memcpy(&p, params, LG_MIN(params->struct_size, (uint32_t)sizeof p));
    p.struct_size = sizeof p;
    if ((p.flags & ~LLMGPU_MODEL_FLAG_VOCAB_ONLY) != 0 ||
        (uint32_t)p.weight_type > LLMGPU_WEIGHT_TYPE_Q6_K) {
        lg_err(&ctx->log, "unknown model flags or unsupported weight type %d",
               (int)p.weight_type);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    m = lg_calloc(&ctx->alloc, 1, sizeof *m);
    if (!m)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    m->ctx = ctx;
    m->weight_type = p.weight_type;
    m->vocab_only = (p.flags & LLMGPU_MODEL_FLAG_VOCAB_ONLY) != 0;
    if (is_gguf_file(path)) {
        st = load_gguf(m, path, &p);
        if (st != LLMGPU_OK)
            goto err;
        *out = m;
        return LLMGPU_OK;
    }
    st = lg_ckpt_open(&ctx->alloc, &ctx->log, path, &ck);
    if (st != LLMGPU_OK)
        goto err;
    m->cfg = ck->cfg;
    m->n_params = ck->n_params;
    st = lg_tok_load_dir(&ctx->alloc, &ctx->log, path, &m->tok);
    if (st != LLMGPU_OK)
        goto err;
    if (lg_tok_n_vocab(m->tok) > m->cfg.n_vocab)
        lg_warn(&ctx->log, "%s: the tokenizer has %u tokens, the model's vocab_size is %u", path,
                lg_tok_n_vocab(m->tok), m->cfg.n_vocab);
    if (!m->vocab_only) {
        st = lg_model_upload(m, ck, &p);
        if (st != LLMGPU_OK)
            goto err;
    }
    lg_ckpt_close(ck);
    *out = m;
    return LLMGPU_OK;
err:
    lg_ckpt_close(ck);
    llmgpu_model_free(m);
    return st;
}

void llmgpu_model_free(struct llmgpu_model *m) {
    struct llmgpu_context *ctx;
    if (!m)
        return;
    ctx = m->ctx;
    LLMGPU_ASSERT(atomic_load(&m->n_sessions) == 0);
    lg_vk_wait_idle(ctx);
    lg_model_release_gpu(m);
    lg_tok_free(m->tok);
    lg_free(&ctx->alloc, m);
}

enum llmgpu_status llmgpu_model_info(const struct llmgpu_model *m, struct llmgpu_model_info *info) {
    struct llmgpu_model_info full;
    uint32_t size;
    if (!m || !info || info->struct_size == 0)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    memset(&full, 0, sizeof full);
    snprintf(full.architecture, sizeof full.architecture, "%s", m->cfg.arch_name);
    full.n_params = m->n_params;
    full.weight_bytes = m->weight_bytes;
    full.weight_type = m->weight_type;
    full.n_vocab = m->cfg.n_vocab;
    full.n_ctx_train = m->cfg.n_ctx_train;
    full.n_embd = m->cfg.n_embd;
    full.n_ff = m->cfg.n_ff;
    full.n_layer = m->cfg.n_layer;
    full.n_head = m->cfg.n_head;
    full.n_kv_head = m->cfg.n_kv_head;
    full.head_dim = m->cfg.head_dim;
    full.sliding_window = m->cfg.sliding_window;
    full.rope_theta = m->cfg.rope_theta;
    full.rms_norm_eps = m->cfg.rms_norm_eps;
    size = LG_MIN(info->struct_size, (uint32_t)sizeof full);
    full.struct_size = size;
    memcpy(info, &full, size);
    return LLMGPU_OK;
}

/* ---- tokenizer ---- */

enum llmgpu_status llmgpu_tokenize(const struct llmgpu_model *m, const char *text, size_t len,
                                   uint32_t flags, int32_t *tokens, size_t *n_inout) {
    if (!m || !n_inout || (!text && len))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    return lg_tok_encode(m->tok, text ? text : "", len, flags, tokens, n_inout);
}

enum llmgpu_status llmgpu_detokenize(const struct llmgpu_model *m, const int32_t *tokens,
                                     size_t n, uint32_t flags, char *text, size_t *len_inout) {
    if (!m || !len_inout || (!tokens && n))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    return lg_tok_decode(m->tok, tokens, n, flags, text, len_inout);
}

enum llmgpu_status llmgpu_token_to_piece(const struct llmgpu_model *m, int32_t token,
                                         char *piece, size_t *len_inout) {
    if (!m || !len_inout)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    return lg_tok_piece(m->tok, token, piece, len_inout);
}

uint32_t llmgpu_model_n_tokens(const struct llmgpu_model *m) {
    return m ? lg_tok_n_vocab(m->tok) : 0;
}

int32_t llmgpu_model_token_bos(const struct llmgpu_model *m) {
    return m ? lg_tok_bos(m->tok) : -1;
}

int32_t llmgpu_model_token_eos(const struct llmgpu_model *m) {
    return m ? lg_tok_eos(m->tok) : -1;
}

int llmgpu_model_token_is_eog(const struct llmgpu_model *m, int32_t token) {
    return m ? lg_tok_is_eog(m->tok, token) : 0;
}
