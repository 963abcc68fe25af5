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
 *   Q6_K     as Q4_K, in ggml's q6_K (6.5625 bits a weight); rows not a multiple
 *            of 256 (but of 32) become q8_0, the nearest in quality.
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
 *   q6_K  ggml's block_q6_K (210 bytes a super-block of 256) is not 4-byte
 *         aligned, so it is repacked (model/quant.h has the bit order): bytes
 *         [0, R K/256 208): each super-block's 6-bit values and int8 scales in
 *         208 bytes = 13 uvec4, rows in order: 128 bytes of low nibbles (value
 *         v in byte v/2, nibble v%2), 64 bytes of high bit pairs (value v in
 *         byte 128 + v/4, bits 2(v%4)), 16 int8 scales (one a sub-block of 16);
 *         then R K/256 f16 d, row-major. A 32-value unit is one uvec4 of low
 *         bits and one uvec2 of high bits, both contiguous across neighbouring
 *         units. 6.5625 bits a weight, as in GGUF. GGUF Q6_K data is copied
 *         into this layout by lg_q6k_repack_rows (bits moved, not requantized).
 *   q4_g  (GPTQ/AWQ checkpoints, group size G, NG = ceil(K/G) groups a row)
 *         bytes [0, R K/2): the 4-bit values q in 0..15, packed as q4_0's;
 *         then R NG pairs of f16 (scale, zero), row-major (group g of row r
 *         at pair r NG + g, i.e. f16 2 (r NG + g) counted from byte R K/2);
 *         x = scale (q - zero). The zero point is the checkpoint's integer
 *         (0..16: GPTQ v1 stores zero - 1) as an exact f16, the scale the
 *         checkpoint's f16 bits: the GPU computes with exactly the stored
 *         numbers. 4 + 32/G bits a weight (4.25 at G = 128). Repacked while
 *         streaming, a chunk of rows at a time (model/quant.h lg_q4g_repack):
 *         GPTQ's qweight [K/8, N] is transposed word for word, AWQ's [K, N/8]
 *         gathered nibble by nibble. G is the kernels' GROUP define
 *         (lg_wtensor.group); G % 16 == 0, so a 16-value unit is in one group.
 *         Only the projections of a GPTQ/AWQ checkpoint have this type; its
 *         embedding, norms and LM head load as in a float checkpoint.
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
    return t == LG_WTYPE_Q8_0 || t == LG_WTYPE_Q4_0 || t == LG_WTYPE_Q4_K ||
           t == LG_WTYPE_Q6_K;
}

/* Bytes of one row's values, and of its block scales (0 for float types). */
static uint64_t row_qs_bytes(enum lg_wtype t, uint32_t cols) {
    switch (t) {
    case LG_WTYPE_F32: return (uint64_t)cols * 4;
    case LG_WTYPE_Q8_0: return cols;
    case LG_WTYPE_Q4_0: return cols / 2;
    case LG_WTYPE_Q4_K: return (uint64_t)cols / LG_QK_K * LG_Q4_K_BLOCK;
    case LG_WTYPE_Q6_K: return (uint64_t)cols / LG_QK_K * LG_Q6_K_GPU_BLOCK;
    default: return (uint64_t)cols * 2;
    }
}
static uint64_t row_d_bytes(enum lg_wtype t, uint32_t cols) {
    if (t == LG_WTYPE_Q6_K)
        return (uint64_t)cols / LG_QK_K * 2;
    return t == LG_WTYPE_Q8_0 || t == LG_WTYPE_Q4_0 ? (uint64_t)cols / LG_QK * 2 : 0;
}
static uint64_t row_bytes(enum lg_wtype t, uint32_t cols) {
    return row_qs_bytes(t, cols) + row_d_bytes(t, cols);
}

/* Bytes of one q4_g row of cols values in groups of `group`. */
static uint64_t q4g_row_bytes(uint32_t cols, uint32_t group) {
    return (uint64_t)cols / 2 + (uint64_t)(cols + group - 1) / group * 4;
}
static uint64_t wrow_bytes(enum lg_wtype t, uint32_t cols, uint32_t group) {
    return t == LG_WTYPE_Q4_G ? q4g_row_bytes(cols, group) : row_bytes(t, cols);
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
    case LLMGPU_WEIGHT_TYPE_Q6_K:
        if (quantizable && cols % LG_QK_K == 0)
            return LG_WTYPE_Q6_K;
        if (quantizable && cols % LG_QK == 0) {
            if (log)
                lg_info(log, "%s: rows of %u values are not a multiple of %d; q8_0 instead "
                             "of q6_K", name, cols, LG_QK_K);
            return LG_WTYPE_Q8_0;
        }
        return pick_type(LLMGPU_WEIGHT_TYPE_Q8_0, src, cols, quantizable, log, name);
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
    return (uint64_t)t->rows * wrow_bytes(t->type, t->cols, t->group);
}

static uint32_t rows_per_shard(const struct llmgpu_context *ctx, uint32_t cols, enum lg_wtype t,
                               uint32_t group) {
    uint64_t row_bytes_ = wrow_bytes(t, cols, group);
    uint64_t limit = LG_MIN(ctx->max_binding, ctx->max_alloc);
    uint64_t rows = limit / row_bytes_;
    return rows > UINT32_MAX ? UINT32_MAX : (uint32_t)LG_MAX(rows, 1);
}

static enum llmgpu_status wtensor_create_g(struct llmgpu_model *m, uint32_t rows, uint32_t cols,
                                           enum lg_wtype type, uint32_t group,
                                           struct lg_wtensor *t) {
    struct llmgpu_context *ctx = m->ctx;
    uint32_t per = rows_per_shard(ctx, cols, type, group);
    enum llmgpu_status st;
    memset(t, 0, sizeof *t);
    if (wrow_bytes(type, cols, group) > ctx->max_binding) {
        lg_err(&ctx->log, "a weight row of %u values exceeds the device's binding limit", cols);
        return LLMGPU_ERR_UNSUPPORTED;
    }
    t->rows = rows;
    t->cols = cols;
    t->type = type;
    t->group = group;
    t->n_shards = (rows + per - 1) / per;
    t->shards = lg_calloc(&ctx->alloc, t->n_shards, sizeof *t->shards);
    if (!t->shards)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    for (uint32_t s = 0; s < t->n_shards; s++) {
        struct lg_wshard *sh = &t->shards[s];
        sh->row_begin = s * per;
        sh->rows = LG_MIN(per, rows - sh->row_begin);
        st = lg_buffer_create(ctx, (VkDeviceSize)sh->rows * wrow_bytes(type, cols, group),
                              LG_MEM_DEVICE, &sh->buf);
        if (st != LLMGPU_OK)
            return st;
    }
    return LLMGPU_OK;
}

static enum llmgpu_status wtensor_create(struct llmgpu_model *m, uint32_t rows, uint32_t cols,
                                         enum lg_wtype type, struct lg_wtensor *t) {
    return wtensor_create_g(m, rows, cols, type, 0, t);
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
        uint16_t *d = j->d + (size_t)r * (row_d_bytes(j->type, j->cols) / 2);
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
        else if (j->type == LG_WTYPE_Q6_K)
            lg_quantize_q6_k_gpu(j->row, j->cols, q, d);
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

/* One thread's share of a q4_g chunk: outputs [r0, r0 + n) of q. */
struct rjob {
    const struct lg_qlinear *q;
    uint32_t r0, n;
    uint32_t *vals;
    uint16_t *pairs;
};

static void *rjob_run(void *arg) {
    const struct rjob *j = arg;
    const struct lg_qlinear *q = j->q;
    lg_q4g_repack(q->method == LG_QUANT_AWQ, q->zero_minus_one, q->cols, q->rows, q->n_groups,
                  q->qweight->data, q->qzeros->data, q->scales->data, j->r0, j->n, j->vals,
                  j->pairs);
    return NULL;
}

/* Repack outputs [r0, r0 + n) of q on up to u->n_threads threads, as quantize_rows. */
static void repack_rows(struct upload_state *u, const struct lg_qlinear *q, uint32_t r0,
                        uint32_t n, uint32_t *vals, uint16_t *pairs) {
    struct rjob jobs[LG_QUANT_MAX_THREADS];
    pthread_t tid[LG_QUANT_MAX_THREADS];
    int started[LG_QUANT_MAX_THREADS] = {0};
    uint64_t work = (uint64_t)n * q->cols;
    uint32_t nt = u->n_threads;
    while (nt > 1 && work / nt < (1u << 20)) /* a transpose: cheaper than quantizing */
        nt--;
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t a = (uint32_t)((uint64_t)n * i / nt), b = (uint32_t)((uint64_t)n * (i + 1) / nt);
        jobs[i] = (struct rjob){q, r0 + a, b - a, vals + (size_t)a * (q->cols / 8),
                                pairs + (size_t)a * q->n_groups * 2};
    }
    for (uint32_t i = 1; i < nt; i++)
        started[i] = pthread_create(&tid[i], NULL, rjob_run, &jobs[i]) == 0;
    rjob_run(&jobs[0]);
    for (uint32_t i = 1; i < nt; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            rjob_run(&jobs[i]);
    }
}

/* Rows [0, q->rows) of a GPTQ/AWQ Linear into the q4_g tensor t from row
 * dst_row: per chunk, the values straight into staging, the (scale, zero)
 * pairs through u->scales (as upload_rows_quant does with its scales). */
static enum llmgpu_status upload_rows_q4g(struct upload_state *u, struct lg_wtensor *t,
                                          uint32_t dst_row, const struct lg_qlinear *q) {
    uint64_t qrow = (uint64_t)q->cols / 2, drow = (uint64_t)q->n_groups * 4;
    uint64_t src_bytes = q->qweight->nbytes + q->qzeros->nbytes + q->scales->nbytes;
    uint64_t chunk_rows = LG_MAX((u->up.staging.size - 64) / (qrow + drow), 1);
    uint32_t r = 0;
    enum llmgpu_status st =
        quant_scratch(u, 0, (size_t)LG_MIN(chunk_rows, q->rows) * q->n_groups * 2);
    if (st != LLMGPU_OK)
        return st;
    while (r < q->rows) {
        uint32_t g = dst_row + r;
        uint32_t s = 0;
        while (s + 1 < t->n_shards && g >= t->shards[s + 1].row_begin)
            s++;
        {
            struct lg_wshard *sh = &t->shards[s];
            uint32_t in_shard = sh->row_begin + sh->rows - g;
            uint32_t n = (uint32_t)LG_MIN(LG_MIN((uint64_t)(q->rows - r), in_shard), chunk_rows);
            void *ptr;
            st = lg_uploader_reserve(&u->up, &sh->buf, (VkDeviceSize)(g - sh->row_begin) * qrow,
                                     (VkDeviceSize)n * qrow, &ptr);
            if (st != LLMGPU_OK)
                return st;
            repack_rows(u, q, r, n, ptr, u->scales);
            st = lg_uploader_reserve(&u->up, &sh->buf,
                                     (VkDeviceSize)sh->rows * qrow +
                                         (VkDeviceSize)(g - sh->row_begin) * drow,
                                     (VkDeviceSize)n * drow, &ptr);
            if (st != LLMGPU_OK)
                return st;
            memcpy(ptr, u->scales, (size_t)n * drow);
            /* the source bytes of these rows; the shares add up to src_bytes */
            st = progress(u, (r + n) * src_bytes / q->rows - r * src_bytes / q->rows);
            if (st != LLMGPU_OK)
                return st;
            r += n;
        }
    }
    return LLMGPU_OK;
}

/* A projection: its float tensor (of type picked for `want`), or the GPTQ/AWQ
 * Linear q as q4_g. */
static enum llmgpu_status upload_proj(struct upload_state *u, struct lg_wtensor *t,
                                      uint32_t rows, uint32_t cols, const struct lg_tensor_src *f,
                                      const struct lg_qlinear *q, const struct lg_log *log,
                                      const char *what) {
    enum llmgpu_status st;
    if (q) {
        st = wtensor_create_g(u->m, rows, cols, LG_WTYPE_Q4_G, q->group, t);
        return st == LLMGPU_OK ? upload_rows_q4g(u, t, 0, q) : st;
    }
    st = wtensor_create(u->m, rows, cols, pick_type(u->p->weight_type, f->dtype, cols, 1, log, what),
                        t);
    return st == LLMGPU_OK ? upload_rows(u, t, 0, f) : st;
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
            const struct lg_qlinear *ql = lg_ckpt_qlinear(ck, (enum lg_tensor_role)r, l);
            if (ql)
                total += (uint64_t)ql->rows * q4g_row_bytes(ql->cols, ql->group);
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
    const struct lg_qlinear *qq = lg_ckpt_qlinear(ck, LG_T_WQ, l);
    const struct lg_qlinear *qk = lg_ckpt_qlinear(ck, LG_T_WK, l);
    const struct lg_qlinear *qv = lg_ckpt_qlinear(ck, LG_T_WV, l);
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
    if (qq || qk || qv) {
        /* one q4_g matrix: all three quantized (with one group size) or none */
        if (!qq || !qk || !qv || qq->group != qk->group || qq->group != qv->group) {
            lg_err(&m->ctx->log, "layer %u: q_proj, k_proj and v_proj must all be %s-quantized "
                   "with one group size, or all float", l, lg_quant_method_name(ck->quant.method));
            return LLMGPU_ERR_UNSUPPORTED_MODEL;
        }
        TRY(wtensor_create_g(m, q_rows + 2 * kv_rows, c->n_embd, LG_WTYPE_Q4_G, qq->group,
                             &L->wqkv));
        TRY(upload_rows_q4g(u, &L->wqkv, 0, qq));
        TRY(upload_rows_q4g(u, &L->wqkv, q_rows, qk));
        TRY(upload_rows_q4g(u, &L->wqkv, q_rows + kv_rows, qv));
    } else {
        TRY(wtensor_create(m, q_rows + 2 * kv_rows, c->n_embd,
                           pick_type(w, wq->dtype, c->n_embd, 1, log, "Q/K/V projections"),
                           &L->wqkv));
        TRY(upload_rows(u, &L->wqkv, 0, wq));
        TRY(upload_rows(u, &L->wqkv, q_rows, wk));
        TRY(upload_rows(u, &L->wqkv, q_rows + kv_rows, wv));
    }
    if (c->qkv_bias) {
        TRY(vec_create(m, q_rows + 2 * kv_rows, &L->bqkv));
        TRY(upload_vec(u, &L->bqkv, 0, lg_ckpt_tensor(ck, LG_T_BQ, l)));
        TRY(upload_vec(u, &L->bqkv, q_rows, lg_ckpt_tensor(ck, LG_T_BK, l)));
        TRY(upload_vec(u, &L->bqkv, q_rows + kv_rows, lg_ckpt_tensor(ck, LG_T_BV, l)));
    }
    {
        const struct lg_qlinear *qg = lg_ckpt_qlinear(ck, LG_T_GATE, l);
        const struct lg_qlinear *qu = lg_ckpt_qlinear(ck, LG_T_UP, l);
        /* one fused kernel reads gate and up with one type (matvec.comp GATE_UP) */
        if (!qg != !qu || (qg && qg->group != qu->group)) {
            lg_err(&m->ctx->log, "layer %u: gate_proj and up_proj must both be %s-quantized with "
                   "one group size, or both float", l, lg_quant_method_name(ck->quant.method));
            return LLMGPU_ERR_UNSUPPORTED_MODEL;
        }
        TRY(upload_proj(u, &L->wo, c->n_embd, q_rows, lg_ckpt_tensor(ck, LG_T_WO, l),
                        lg_ckpt_qlinear(ck, LG_T_WO, l), log, "output projection"));
        TRY(upload_proj(u, &L->gate, c->n_ff, c->n_embd, lg_ckpt_tensor(ck, LG_T_GATE, l), qg,
                        log, "gate projection"));
        TRY(upload_proj(u, &L->up, c->n_ff, c->n_embd, lg_ckpt_tensor(ck, LG_T_UP, l), qu, log,
                        "up projection"));
        TRY(upload_proj(u, &L->down, c->n_embd, c->n_ff, lg_ckpt_tensor(ck, LG_T_DOWN, l),
                        lg_ckpt_qlinear(ck, LG_T_DOWN, l), log, "down projection"));
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

    if (ck->quant.method != LG_QUANT_NONE &&
        (p->weight_type == LLMGPU_WEIGHT_TYPE_Q8_0 || p->weight_type == LLMGPU_WEIGHT_TYPE_Q4_0 ||
         p->weight_type == LLMGPU_WEIGHT_TYPE_Q4_K)) {
        lg_err(&ctx->log, "this is a %s checkpoint: its projections load as stored (4-bit); "
               "another quantized weight type cannot be asked for (use the default, or "
               "f16/bf16/f32 for its float tensors)", lg_quant_method_name(ck->quant.method));
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
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
