/*
 * upload.c - puts a checkpoint's weights on the GPU: chooses each tensor's
 * type, splits matrices into row shards that fit one binding, concatenates
 * Q/K/V, and streams everything through one bounded staging buffer, converting
 * while it copies (so host memory beyond the mmapped files stays at the
 * staging size whatever the model size).
 *
 * Weight types (llmgpu_model_params.weight_type):
 *   DEFAULT  f16 for f16 and f32 checkpoints; bf16 checkpoints stay bf16, which
 *            is exact and as fast (a bf16 value outside f16's range would
 *            otherwise become inf).
 *   F16      everything f16 (a warning counts values that overflowed to inf).
 *   BF16/F32 everything in that type.
 * Norm weights and biases are always f32 (they are tiny).
 */
#include <string.h>

#include "forward.h"

#define LG_STAGING_BYTES ((VkDeviceSize)64 << 20)

static size_t wtype_size(enum lg_wtype t) {
    return t == LG_WTYPE_F32 ? 4 : 2;
}

static enum lg_wtype pick_type(enum llmgpu_weight_type want, enum lg_dtype src) {
    switch (want) {
    case LLMGPU_WEIGHT_TYPE_F32: return LG_WTYPE_F32;
    case LLMGPU_WEIGHT_TYPE_BF16: return LG_WTYPE_BF16;
    case LLMGPU_WEIGHT_TYPE_F16: return LG_WTYPE_F16;
    default: return src == LG_DTYPE_BF16 ? LG_WTYPE_BF16 : LG_WTYPE_F16;
    }
}

uint64_t lg_wtensor_bytes(const struct lg_wtensor *t) {
    return (uint64_t)t->rows * t->cols * wtype_size(t->type);
}

static uint32_t rows_per_shard(const struct llmgpu_context *ctx, uint32_t cols, enum lg_wtype t) {
    uint64_t row_bytes = (uint64_t)cols * wtype_size(t);
    uint64_t limit = LG_MIN(ctx->max_binding, ctx->max_alloc);
    uint64_t rows = limit / row_bytes;
    return rows > UINT32_MAX ? UINT32_MAX : (uint32_t)LG_MAX(rows, 1);
}

static enum llmgpu_status wtensor_create(struct llmgpu_model *m, uint32_t rows, uint32_t cols,
                                         enum lg_wtype type, struct lg_wtensor *t) {
    struct llmgpu_context *ctx = m->ctx;
    uint32_t per = rows_per_shard(ctx, cols, type);
    enum llmgpu_status st;
    memset(t, 0, sizeof *t);
    if ((uint64_t)cols * wtype_size(type) > ctx->max_binding) {
        lg_err(&ctx->log, "a weight row of %u values exceeds the device's binding limit", cols);
        return LLMGPU_ERR_UNSUPPORTED;
    }
    t->rows = rows;
    t->cols = cols;
    t->type = type;
    t->n_shards = (rows + per - 1) / per;
    t->shards = lg_calloc(&ctx->alloc, t->n_shards, sizeof *t->shards);
    if (!t->shards)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    for (uint32_t s = 0; s < t->n_shards; s++) {
        struct lg_wshard *sh = &t->shards[s];
        sh->row_begin = s * per;
        sh->rows = LG_MIN(per, rows - sh->row_begin);
        st = lg_buffer_create(ctx, (VkDeviceSize)sh->rows * cols * wtype_size(type),
                              LG_MEM_DEVICE, &sh->buf);
        if (st != LLMGPU_OK)
            return st;
    }
    return LLMGPU_OK;
}

static void wtensor_destroy(struct llmgpu_context *ctx, struct lg_wtensor *t) {
    for (uint32_t s = 0; t->shards && s < t->n_shards; s++)
        lg_buffer_destroy(ctx, &t->shards[s].buf);
    lg_free(&ctx->alloc, t->shards);
    memset(t, 0, sizeof *t);
}

struct upload_state {
    struct llmgpu_model *m;
    struct lg_uploader up;
    const struct llmgpu_model_params *p;
    uint64_t done, total;
    size_t overflows;
};

static enum llmgpu_status progress(struct upload_state *u, uint64_t bytes) {
    u->done += bytes;
    if (u->p->progress_fn && u->p->progress_fn(u->done, u->total, u->p->progress_user)) {
        lg_err(&u->m->ctx->log, "load aborted by the progress callback");
        return LLMGPU_ERR_ABORTED;
    }
    return LLMGPU_OK;
}

/* Convert n values of src (any float dtype) into dst of type t. */
static void convert(struct upload_state *u, enum lg_wtype t, enum lg_dtype src, const void *in,
                    void *dst, size_t n) {
    switch (t) {
    case LG_WTYPE_F32: lg_convert_to_f32(src, in, dst, n); break;
    case LG_WTYPE_F16: u->overflows += lg_convert_to_f16(src, in, dst, n); break;
    case LG_WTYPE_BF16: lg_convert_to_bf16(src, in, dst, n); break;
    }
}

/* Copy rows [0, src rows) of a source tensor into t starting at row dst_row. */
static enum llmgpu_status upload_rows(struct upload_state *u, struct lg_wtensor *t,
                                      uint32_t dst_row, const struct lg_tensor_src *src) {
    size_t es = lg_dtype_size(src->dtype), ws = wtype_size(t->type);
    uint32_t n_rows = (uint32_t)src->shape[0];
    uint64_t chunk_rows = LG_MAX(u->up.staging.size / ((uint64_t)t->cols * ws), 1);
    uint32_t r = 0;
    enum llmgpu_status st;
    while (r < n_rows) {
        uint32_t g = dst_row + r;
        uint32_t s = 0;
        while (s + 1 < t->n_shards && g >= t->shards[s + 1].row_begin)
            s++;
        {
            struct lg_wshard *sh = &t->shards[s];
            uint32_t in_shard = sh->row_begin + sh->rows - g;
            uint32_t n = (uint32_t)LG_MIN(LG_MIN((uint64_t)(n_rows - r), in_shard), chunk_rows);
            void *ptr;
            st = lg_uploader_reserve(&u->up, &sh->buf,
                                     (VkDeviceSize)(g - sh->row_begin) * t->cols * ws,
                                     (VkDeviceSize)n * t->cols * ws, &ptr);
            if (st != LLMGPU_OK)
                return st;
            convert(u, t->type, src->dtype, (const char *)src->data + (size_t)r * t->cols * es,
                    ptr, (size_t)n * t->cols);
            st = progress(u, (uint64_t)n * t->cols * es);
            if (st != LLMGPU_OK)
                return st;
            r += n;
        }
    }
    return LLMGPU_OK;
}

/* A small f32 vector (norm weight, bias) at offset `at` floats of dst. */
static enum llmgpu_status upload_vec(struct upload_state *u, struct lg_buffer *dst, size_t at,
                                     const struct lg_tensor_src *src) {
    void *ptr;
    enum llmgpu_status st =
        lg_uploader_reserve(&u->up, dst, at * 4, src->n_elements * 4, &ptr);
    if (st != LLMGPU_OK)
        return st;
    lg_convert_to_f32(src->dtype, src->data, ptr, (size_t)src->n_elements);
    return progress(u, src->nbytes);
}

static enum llmgpu_status vec_create(struct llmgpu_model *m, size_t n, struct lg_buffer *b) {
    return lg_buffer_create(m->ctx, n * 4, LG_MEM_DEVICE, b);
}

/* Bytes the model will take on the device, for the fit check before allocating. */
static uint64_t needed_bytes(const struct llmgpu_model *m, const struct lg_checkpoint *ck,
                             const struct llmgpu_model_params *p) {
    const struct lg_model_config *c = &m->cfg;
    uint64_t total = 0;
    for (int r = 0; r < LG_T_COUNT; r++) {
        uint32_t layers = lg_arch_is_per_layer((enum lg_tensor_role)r) ? c->n_layer : 1;
        for (uint32_t l = 0; l < layers; l++) {
            const struct lg_tensor_src *t = lg_ckpt_tensor(ck, (enum lg_tensor_role)r, l);
            if (!t)
                continue;
            if (t->n_dims == 2)
                total += t->n_elements * wtype_size(pick_type(p->weight_type, t->dtype));
            else
                total += t->n_elements * 4;
        }
    }
    return total;
}

static enum llmgpu_status upload_layer(struct upload_state *u, struct lg_checkpoint *ck,
                                       uint32_t l) {
    struct llmgpu_model *m = u->m;
    const struct lg_model_config *c = &m->cfg;
    struct lg_layer *L = &m->layers[l];
    const struct lg_tensor_src *wq = lg_ckpt_tensor(ck, LG_T_WQ, l);
    const struct lg_tensor_src *wk = lg_ckpt_tensor(ck, LG_T_WK, l);
    const struct lg_tensor_src *wv = lg_ckpt_tensor(ck, LG_T_WV, l);
    uint32_t q_rows = c->n_head * c->head_dim, kv_rows = c->n_kv_head * c->head_dim;
    enum llmgpu_status st;
    enum llmgpu_weight_type w = u->p->weight_type;

#define TRY(x)                                                                                   \
    do {                                                                                         \
        st = (x);                                                                                \
        if (st != LLMGPU_OK)                                                                     \
            return st;                                                                           \
    } while (0)
    TRY(vec_create(m, c->n_embd, &L->attn_norm));
    TRY(upload_vec(u, &L->attn_norm, 0, lg_ckpt_tensor(ck, LG_T_ATTN_NORM, l)));
    TRY(vec_create(m, c->n_embd, &L->ffn_norm));
    TRY(upload_vec(u, &L->ffn_norm, 0, lg_ckpt_tensor(ck, LG_T_FFN_NORM, l)));
    TRY(wtensor_create(m, q_rows + 2 * kv_rows, c->n_embd, pick_type(w, wq->dtype), &L->wqkv));
    TRY(upload_rows(u, &L->wqkv, 0, wq));
    TRY(upload_rows(u, &L->wqkv, q_rows, wk));
    TRY(upload_rows(u, &L->wqkv, q_rows + kv_rows, wv));
    if (c->qkv_bias) {
        TRY(vec_create(m, q_rows + 2 * kv_rows, &L->bqkv));
        TRY(upload_vec(u, &L->bqkv, 0, lg_ckpt_tensor(ck, LG_T_BQ, l)));
        TRY(upload_vec(u, &L->bqkv, q_rows, lg_ckpt_tensor(ck, LG_T_BK, l)));
        TRY(upload_vec(u, &L->bqkv, q_rows + kv_rows, lg_ckpt_tensor(ck, LG_T_BV, l)));
    }
    {
        const struct lg_tensor_src *t = lg_ckpt_tensor(ck, LG_T_WO, l);
        TRY(wtensor_create(m, c->n_embd, q_rows, pick_type(w, t->dtype), &L->wo));
        TRY(upload_rows(u, &L->wo, 0, t));
        t = lg_ckpt_tensor(ck, LG_T_GATE, l);
        TRY(wtensor_create(m, c->n_ff, c->n_embd, pick_type(w, t->dtype), &L->gate));
        TRY(upload_rows(u, &L->gate, 0, t));
        t = lg_ckpt_tensor(ck, LG_T_UP, l);
        TRY(wtensor_create(m, c->n_ff, c->n_embd, pick_type(w, t->dtype), &L->up));
        TRY(upload_rows(u, &L->up, 0, t));
        t = lg_ckpt_tensor(ck, LG_T_DOWN, l);
        TRY(wtensor_create(m, c->n_embd, c->n_ff, pick_type(w, t->dtype), &L->down));
        TRY(upload_rows(u, &L->down, 0, t));
    }
    return LLMGPU_OK;
}

enum llmgpu_status lg_model_upload(struct llmgpu_model *m, struct lg_checkpoint *ck,
                                   const struct llmgpu_model_params *p) {
    struct llmgpu_context *ctx = m->ctx;
    const struct lg_model_config *c = &m->cfg;
    struct upload_state u;
    enum llmgpu_status st;
    uint64_t need = needed_bytes(m, ck, p), used = atomic_load(&ctx->device_bytes);
    uint64_t avail = used < ctx->device_limit ? ctx->device_limit - used : 0;

    if (need > avail) {
        lg_err(&ctx->log,
               "out of device memory: the weights need %llu bytes (%.1f MiB), %llu bytes "
               "(%.1f MiB) of %llu are free (a quantized weight type or a smaller model would fit)",
               (unsigned long long)need, (double)need / (1 << 20), (unsigned long long)avail,
               (double)avail / (1 << 20), (unsigned long long)ctx->device_limit);
        return LLMGPU_ERR_OUT_OF_DEVICE_MEMORY;
    }
    memset(&u, 0, sizeof u);
    u.m = m;
    u.p = p;
    u.total = ck->weight_bytes;
    m->layers = lg_calloc(&ctx->alloc, c->n_layer, sizeof *m->layers);
    if (!m->layers)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    /* Staging is host-visible memory that counts against the device budget where it is
     * device-local (UMA, lavapipe): never more than the weights themselves (any one row
     * or vector fits, as each is part of them). */
    st = lg_uploader_init(ctx, LG_MIN(LG_STAGING_BYTES, LG_MAX(need, (uint64_t)16)), &u.up);
    if (st != LLMGPU_OK)
        return st;
    st = lg_buffer_create(ctx, 256, LG_MEM_DEVICE, &m->dummy);
    if (st != LLMGPU_OK)
        goto done;
    {
        const struct lg_tensor_src *e = lg_ckpt_tensor(ck, LG_T_TOK_EMBD, 0);
        st = wtensor_create(m, c->n_vocab, c->n_embd, pick_type(p->weight_type, e->dtype),
                            &m->tok_embd);
        if (st == LLMGPU_OK)
            st = upload_rows(&u, &m->tok_embd, 0, e);
        if (st != LLMGPU_OK)
            goto done;
    }
    for (uint32_t l = 0; l < c->n_layer && st == LLMGPU_OK; l++)
        st = upload_layer(&u, ck, l);
    if (st != LLMGPU_OK)
        goto done;
    st = vec_create(m, c->n_embd, &m->out_norm);
    if (st == LLMGPU_OK)
        st = upload_vec(&u, &m->out_norm, 0, lg_ckpt_tensor(ck, LG_T_OUT_NORM, 0));
    if (st != LLMGPU_OK)
        goto done;
    if (c->tie_word_embeddings) {
        m->lm_head = m->tok_embd;
        m->lm_head_tied = 1;
    } else {
        const struct lg_tensor_src *h = lg_ckpt_tensor(ck, LG_T_LM_HEAD, 0);
        st = wtensor_create(m, c->n_vocab, c->n_embd, pick_type(p->weight_type, h->dtype),
                            &m->lm_head);
        if (st == LLMGPU_OK)
            st = upload_rows(&u, &m->lm_head, 0, h);
        if (st != LLMGPU_OK)
            goto done;
    }
    st = lg_uploader_flush(&u.up);
    if (u.overflows)
        lg_warn(&ctx->log, "%zu weight values overflowed f16 and became inf; load with "
                           "weight_type bf16 or f32 to keep them", u.overflows);
done:
    lg_uploader_free(&u.up);
    m->weight_bytes = atomic_load(&ctx->device_bytes) - used;
    return st;
}

void lg_model_release_gpu(struct llmgpu_model *m) {
    struct llmgpu_context *ctx = m->ctx;
    if (m->layers) {
        for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
            struct lg_layer *L = &m->layers[l];
            lg_buffer_destroy(ctx, &L->attn_norm);
            lg_buffer_destroy(ctx, &L->ffn_norm);
            lg_buffer_destroy(ctx, &L->bqkv);
            wtensor_destroy(ctx, &L->wqkv);
            wtensor_destroy(ctx, &L->wo);
            wtensor_destroy(ctx, &L->gate);
            wtensor_destroy(ctx, &L->up);
            wtensor_destroy(ctx, &L->down);
        }
        lg_free(&ctx->alloc, m->layers);
        m->layers = NULL;
    }
    if (!m->lm_head_tied)
        wtensor_destroy(ctx, &m->lm_head);
    wtensor_destroy(ctx, &m->tok_embd);
    lg_buffer_destroy(ctx, &m->out_norm);
    lg_buffer_destroy(ctx, &m->dummy);
}
