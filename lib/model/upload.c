/*
 * upload.c - puts a checkpoint's weights on the GPU: chooses each tensor's
 * type, splits matrices into row shards that fit one binding, concatenates
 * Q/K/V, and streams everything through one bounded staging buffer, converting
 * (or quantizing) while it copies, so host memory beyond the mmapped files
 * stays at the staging size whatever the model size.
 *
 * Weight types (llmgpu_model_params.weight_type):
 *   DEFAULT  f16 for f16 and f32 checkpoints; bf16 checkpoints stay bf16, which
 *            is exact and as fast (a bf16 value outside f16's range would
 *            otherwise become inf).
 *   F16      everything f16 (a warning counts values that overflowed to inf).
 *   BF16/F32 everything in that type.
 *   Q8_0/Q4_0/Q4_K  the projection matrices (Q/K/V, O, gate, up, down) quantized at
 *            load with ggml's block semantics (model/quant.h); the token
 *            embedding and the LM head keep the DEFAULT type. Why: the LM head
 *            writes the logits directly, so its error is not averaged away by
 *            later layers, and the embedding costs no bandwidth in decode (one
 *            row a token) while quantizing it only saves memory. A matrix whose
 *            row length is not a multiple of 32 also keeps the DEFAULT type;
 *            with Q4_K, rows not a multiple of 256 (but of 32) become q4_0, the
 *            same 4.5 bits a weight (an INFO log line names such matrices).
 * Norm weights and biases are always f32 (they are tiny).
 *
 * Layout of a quantized shard of R rows of K values (one buffer, binding 0 of
 * matvec.comp/matmul.comp, read through quant.glsl):
 *   q8_0  bytes [0, R K): the int8 values, row-major (row r at r K);
 *         then R K/32 f16 scales, row-major (block b of row r at r K/32 + b).
 *         8.5 bits a weight.
 *   q4_0  bytes [0, R K/2): 4-bit values q in 0..15 (x = d (q - 8)), row-major,
 *         two a byte in order: byte j of a row holds value 2j in its low nibble
 *         and 2j+1 in its high nibble, so 32-bit word w holds values 8w..8w+7
 *         in nibbles 0..7 (ggml's block_q4_0 pairs j with j+16 instead);
 *         then the f16 scales as for q8_0. 4.5 bits a weight.
 *   q4_K  ggml's block_q4_K unchanged (model/quant.h describes it): 144 bytes
 *         a super-block of 256 values, the row's K/256 blocks in order, rows
 *         in order; no separate scale array. 4.5 bits a weight.
 *   q8_0/q4_0 values and scales are apart so a 16-value unit of either type is one
 *   aligned 16- or 8-byte load and the scales are aligned f16s; the scale
 *   offset R K (resp. R K/2) bytes is known to the kernel from the shard's row
 *   count (push constant n_rows).
 *
 * Quantization runs on the CPU's threads, one chunk of rows (one staging
 * fill) at a time: each thread widens a row to f32 and quantizes it straight
 * into the staging memory (values) and a small scale buffer (copied after).
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "quant.h"

#define LG_STAGING_BYTES ((VkDeviceSize)64 << 20)

#define LG_QUANT_MAX_THREADS 32

static int wtype_is_quant(enum lg_wtype t) {
    return t == LG_WTYPE_Q8_0 || t == LG_WTYPE_Q4_0 || t == LG_WTYPE_Q4_K;
}

/* Bytes of one row's values, and of its block scales (0 for float types). */
static uint64_t row_qs_bytes(enum lg_wtype t, uint32_t cols) {
    switch (t) {
    case LG_WTYPE_F32: return (uint64_t)cols * 4;
    case LG_WTYPE_Q8_0: return cols;
    case LG_WTYPE_Q4_0: return cols / 2;
    case LG_WTYPE_Q4_K: return (uint64_t)cols / LG_QK_K * LG_Q4_K_BLOCK;
    default: return (uint64_t)cols * 2;
    }
}
static uint64_t row_d_bytes(enum lg_wtype t, uint32_t cols) {
    return t == LG_WTYPE_Q8_0 || t == LG_WTYPE_Q4_0 ? (uint64_t)cols / LG_QK * 2 : 0;
}
static uint64_t row_bytes(enum lg_wtype t, uint32_t cols) {
    return row_qs_bytes(t, cols) + row_d_bytes(t, cols);
}

/* The GPU type of a weight matrix: quantized types only for the projection
 * matrices (quantizable) with a row length that is a multiple of 32; the rest
 * keep the default type. log != NULL: say so when a matrix cannot be quantized. */
static enum lg_wtype pick_type(enum llmgpu_weight_type want, enum lg_dtype src, uint32_t cols,
                               int quantizable, const struct lg_log *log, const char *name) {
    switch (want) {
    case LLMGPU_WEIGHT_TYPE_F32: return LG_WTYPE_F32;
    case LLMGPU_WEIGHT_TYPE_BF16: return LG_WTYPE_BF16;
    case LLMGPU_WEIGHT_TYPE_F16: return LG_WTYPE_F16;
    case LLMGPU_WEIGHT_TYPE_Q4_K:
        if (quantizable && cols % LG_QK_K == 0)
            return LG_WTYPE_Q4_K;
        if (quantizable && cols % LG_QK == 0) {
            if (log)
                lg_info(log, "%s: rows of %u values are not a multiple of %d; q4_0 instead "
                             "of q4_K", name, cols, LG_QK_K);
            return LG_WTYPE_Q4_0;
        }
        /* fall through */
    case LLMGPU_WEIGHT_TYPE_Q8_0:
    case LLMGPU_WEIGHT_TYPE_Q4_0:
        if (quantizable && cols % LG_QK == 0)
            return want == LLMGPU_WEIGHT_TYPE_Q8_0 ? LG_WTYPE_Q8_0 : LG_WTYPE_Q4_0;
        if (quantizable && log)
            lg_info(log, "%s: rows of %u values are not a multiple of %d; kept in %s", name,
                    cols, LG_QK, src == LG_DTYPE_BF16 ? "bf16" : "f16");
        return src == LG_DTYPE_BF16 ? LG_WTYPE_BF16 : LG_WTYPE_F16;
    default: return src == LG_DTYPE_BF16 ? LG_WTYPE_BF16 : LG_WTYPE_F16;
    }
}

uint64_t lg_wtensor_bytes(const struct lg_wtensor *t) {
    return (uint64_t)t->rows * row_bytes(t->type, t->cols);
}

static uint32_t rows_per_shard(const struct llmgpu_context *ctx, uint32_t cols, enum lg_wtype t) {
    uint64_t row_bytes_ = row_bytes(t, cols);
    uint64_t limit = LG_MIN(ctx->max_binding, ctx->max_alloc);
    uint64_t rows = limit / row_bytes_;
    return rows > UINT32_MAX ? UINT32_MAX : (uint32_t)LG_MAX(rows, 1);
}

static enum llmgpu_status wtensor_create(struct llmgpu_model *m, uint32_t rows, uint32_t cols,
                                         enum lg_wtype type, struct lg_wtensor *t) {
    struct llmgpu_context *ctx = m->ctx;
    uint32_t per = rows_per_shard(ctx, cols, type);
    enum llmgpu_status st;
    memset(t, 0, sizeof *t);
    if (row_bytes(type, cols) > ctx->max_binding) {
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
        st = lg_buffer_create(ctx, (VkDeviceSize)sh->rows * row_bytes(type, cols),
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
    uint32_t n_threads;   /* quantizer threads, the calling one included */
    float *rows_f32;      /* n_threads rows of scratch_cols floats */
    uint16_t *scales;     /* scales of one chunk: scratch_scales f16s */
    float *f16_table;     /* the 65536 f16 values as f32: widening by lookup */
    size_t scratch_cols, scratch_scales;
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
    default: break; /* quantized types go through upload_rows_quant */
    }
}

/* One thread's share of a chunk: rows [r0, r1) of src (cols values each,
 * dtype) quantized into qs (row_qs bytes a row) and d (cols/32 a row). */
struct qjob {
    enum lg_wtype type;
    enum lg_dtype dtype;
    const float *f16_table;
    const char *src;
    uint32_t cols, r0, r1;
    uint8_t *qs;
    uint16_t *d;
    float *row;
};

static void *qjob_run(void *arg) {
    const struct qjob *j = arg;
    size_t es = lg_dtype_size(j->dtype);
    uint64_t qrow = row_qs_bytes(j->type, j->cols);
    for (uint32_t r = j->r0; r < j->r1; r++) {
        uint8_t *q = j->qs + (size_t)r * qrow;
        uint16_t *d = j->d + (size_t)r * (j->cols / LG_QK);
        const char *in = j->src + (size_t)r * j->cols * es;
        if (j->dtype == LG_DTYPE_F16) {
            for (uint32_t i = 0; i < j->cols; i++) {
                uint16_t h;
                memcpy(&h, in + 2 * i, 2);
                j->row[i] = j->f16_table[h];
            }
        } else {
            lg_convert_to_f32(j->dtype, in, j->row, j->cols);
        }
        if (j->type == LG_WTYPE_Q8_0)
            lg_quantize_q8_0(j->row, j->cols, (int8_t *)q, d);
        else if (j->type == LG_WTYPE_Q4_0)
            lg_quantize_q4_0(j->row, j->cols, q, d);
        else
            lg_quantize_q4_k(j->row, j->cols, q);
    }
    return NULL;
}

/* Quantize n rows on up to u->n_threads threads (fewer for small chunks; the
 * calling thread takes the first share, and any thread that fails to start
 * leaves its share to the calling thread). */
static void quantize_rows(struct upload_state *u, enum lg_wtype type, enum lg_dtype dtype,
                          const void *src, uint32_t cols, uint32_t n, uint8_t *qs, uint16_t *d) {
    struct qjob jobs[LG_QUANT_MAX_THREADS] = {{0}};
    pthread_t tid[LG_QUANT_MAX_THREADS];
    int started[LG_QUANT_MAX_THREADS] = {0};
    uint64_t work = (uint64_t)n * cols;
    uint32_t nt = u->n_threads;
    /* at least 256 K values a thread: below that, starting threads costs more */
    while (nt > 1 && work / nt < (1u << 18))
        nt--;
    for (uint32_t i = 0; i < nt; i++) {
        jobs[i] = (struct qjob){type,
                                dtype,
                                u->f16_table,
                                src,
                                cols,
                                (uint32_t)((uint64_t)n * i / nt),
                                (uint32_t)((uint64_t)n * (i + 1) / nt),
                                qs,
                                d,
                                u->rows_f32 + (size_t)i * u->scratch_cols};
    }
    for (uint32_t i = 1; i < nt; i++)
        started[i] = pthread_create(&tid[i], NULL, qjob_run, &jobs[i]) == 0;
    qjob_run(&jobs[0]);
    for (uint32_t i = 1; i < nt; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            qjob_run(&jobs[i]);
    }
}

/* Grow the quantizer's scratch to rows of cols values and nd scales. */
static enum llmgpu_status quant_scratch(struct upload_state *u, uint32_t cols, size_t nd) {
    const struct lg_alloc *a = &u->m->ctx->alloc;
    if (!u->f16_table) {
        u->f16_table = lg_malloc(a, 65536 * sizeof(float));
        if (!u->f16_table)
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        for (uint32_t h = 0; h < 65536; h++)
            u->f16_table[h] = lg_f16_to_f32((uint16_t)h);
    }
    if (cols > u->scratch_cols) {
        lg_free(a, u->rows_f32);
        u->rows_f32 = lg_calloc(a, (size_t)u->n_threads * cols, sizeof(float));
        u->scratch_cols = u->rows_f32 ? cols : 0;
        if (!u->rows_f32)
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    }
    if (nd > u->scratch_scales) {
        lg_free(a, u->scales);
        u->scales = lg_calloc(a, nd, sizeof(uint16_t));
        u->scratch_scales = u->scales ? nd : 0;
        if (!u->scales)
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    }
    return LLMGPU_OK;
}

/* upload_rows for a quantized t: per chunk, the values go straight into
 * staging, the scales through u->scales (a second reservation may flush the
 * ring, so the first one is complete before it is made). */
static enum llmgpu_status upload_rows_quant(struct upload_state *u, struct lg_wtensor *t,
                                           uint32_t dst_row, const struct lg_tensor_src *src) {
    size_t es = lg_dtype_size(src->dtype);
    uint64_t qrow = row_qs_bytes(t->type, t->cols), drow = row_d_bytes(t->type, t->cols);
    uint32_t n_rows = (uint32_t)src->shape[0];
    uint64_t chunk_rows = LG_MAX((u->up.staging.size - 64) / (qrow + drow), 1);
    uint32_t r = 0;
    enum llmgpu_status st = quant_scratch(u, t->cols, (size_t)LG_MIN(chunk_rows, n_rows) *
                                                          (t->cols / LG_QK));
    if (st != LLMGPU_OK)
        return st;
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
            st = lg_uploader_reserve(&u->up, &sh->buf, (VkDeviceSize)(g - sh->row_begin) * qrow,
                                     (VkDeviceSize)n * qrow, &ptr);
            if (st != LLMGPU_OK)
                return st;
            quantize_rows(u, t->type, src->dtype,
                          (const char *)src->data + (size_t)r * t->cols * es, t->cols, n, ptr,
                          u->scales);
            if (drow) {
                st = lg_uploader_reserve(&u->up, &sh->buf,
                                         (VkDeviceSize)sh->rows * qrow +
                                             (VkDeviceSize)(g - sh->row_begin) * drow,
                                         (VkDeviceSize)n * drow, &ptr);
                if (st != LLMGPU_OK)
                    return st;
                memcpy(ptr, u->scales, (size_t)n * drow);
            }
            st = progress(u, (uint64_t)n * t->cols * es);
            if (st != LLMGPU_OK)
                return st;
            r += n;
        }
    }
    return LLMGPU_OK;
}

/* Copy rows [0, src rows) of a source tensor into t starting at row dst_row. */
static enum llmgpu_status upload_rows(struct upload_state *u, struct lg_wtensor *t,
                                      uint32_t dst_row, const struct lg_tensor_src *src) {
    size_t es = lg_dtype_size(src->dtype), ws;
    uint32_t n_rows = (uint32_t)src->shape[0];
    uint64_t chunk_rows;
    uint32_t r = 0;
    enum llmgpu_status st;
    if (wtype_is_quant(t->type))
        return upload_rows_quant(u, t, dst_row, src);
    ws = (size_t)row_qs_bytes(t->type, 1);
    chunk_rows = LG_MAX(u->up.staging.size / ((uint64_t)t->cols * ws), 1);
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
            if (t->n_dims == 2) {
                uint32_t cols = (uint32_t)t->shape[1];
                int q = r != LG_T_TOK_EMBD && r != LG_T_LM_HEAD;
                total += t->shape[0] *
                         row_bytes(pick_type(p->weight_type, t->dtype, cols, q, NULL, NULL), cols);
            }
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
    const struct lg_log *log = l == 0 ? &m->ctx->log : NULL; /* say it once, not per layer */

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
    TRY(wtensor_create(m, q_rows + 2 * kv_rows, c->n_embd, 
                       pick_type(w, wq->dtype, c->n_embd, 1, log, "Q/K/V projections"), &L->wqkv));
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
        TRY(wtensor_create(m, c->n_embd, q_rows, 
                           pick_type(w, t->dtype, q_rows, 1, log, "output projection"), &L->wo));
        TRY(upload_rows(u, &L->wo, 0, t));
        t = lg_ckpt_tensor(ck, LG_T_GATE, l);
        TRY(wtensor_create(m, c->n_ff, c->n_embd, 
                           pick_type(w, t->dtype, c->n_embd, 1, log, "gate projection"), &L->gate));
        TRY(upload_rows(u, &L->gate, 0, t));
        t = lg_ckpt_tensor(ck, LG_T_UP, l);
        TRY(wtensor_create(m, c->n_ff, c->n_embd, 
                           pick_type(w, t->dtype, c->n_embd, 1, log, "up projection"), &L->up));
        TRY(upload_rows(u, &L->up, 0, t));
        t = lg_ckpt_tensor(ck, LG_T_DOWN, l);
        TRY(wtensor_create(m, c->n_embd, c->n_ff, 
                           pick_type(w, t->dtype, c->n_ff, 1, log, "down projection"), &L->down));
        TRY(upload_rows(u, &L->down, 0, t));
    }
    return LLMGPU_OK;
}

/* Device-local bytes of the model's own buffers, as lg_buffer_create counted them.
 * Not a difference of ctx->device_bytes: other threads' sessions and models
 * allocate and free on the same context while this one loads. */
static uint64_t buffer_bytes(const struct llmgpu_context *ctx, const struct lg_buffer *b) {
    VkMemoryRequirements req;
    if (!b->buf || !b->device_local)
        return 0;
    vkGetBufferMemoryRequirements(ctx->device, b->buf, &req);
    return req.size;
}

static uint64_t wtensor_device_bytes(const struct llmgpu_context *ctx, const struct lg_wtensor *t) {
    uint64_t n = 0;
    for (uint32_t s = 0; t->shards && s < t->n_shards; s++)
        n += buffer_bytes(ctx, &t->shards[s].buf);
    return n;
}

static uint64_t model_device_bytes(const struct llmgpu_model *m) {
    const struct llmgpu_context *ctx = m->ctx;
    uint64_t n = buffer_bytes(ctx, &m->dummy) + buffer_bytes(ctx, &m->out_norm) +
                 wtensor_device_bytes(ctx, &m->tok_embd);
    if (!m->lm_head_tied)
        n += wtensor_device_bytes(ctx, &m->lm_head);
    for (uint32_t l = 0; m->layers && l < m->cfg.n_layer; l++) {
        const struct lg_layer *L = &m->layers[l];
        n += buffer_bytes(ctx, &L->attn_norm) + buffer_bytes(ctx, &L->ffn_norm) +
             buffer_bytes(ctx, &L->bqkv) + wtensor_device_bytes(ctx, &L->wqkv) +
             wtensor_device_bytes(ctx, &L->wo) + wtensor_device_bytes(ctx, &L->gate) +
             wtensor_device_bytes(ctx, &L->up) + wtensor_device_bytes(ctx, &L->down);
    }
    return n;
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
    {
        long nproc = sysconf(_SC_NPROCESSORS_ONLN);
        u.n_threads = nproc < 1 ? 1 : nproc > LG_QUANT_MAX_THREADS ? LG_QUANT_MAX_THREADS
                                                                    : (uint32_t)nproc;
    }
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
        st = wtensor_create(m, c->n_vocab, c->n_embd, 
                            pick_type(p->weight_type, e->dtype, c->n_embd, 0, NULL, NULL),
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
        st = wtensor_create(m, c->n_vocab, c->n_embd, 
                            pick_type(p->weight_type, h->dtype, c->n_embd, 0, NULL, NULL),
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
    lg_free(&ctx->alloc, u.rows_f32);
    lg_free(&ctx->alloc, u.scales);
    lg_free(&ctx->alloc, u.f16_table);
    m->weight_bytes = model_device_bytes(m);
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
