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
 * GGUF files (lg_model_upload_gguf) go through the same code, reading each
 * row where the file keeps it (attn_q/attn_k rows of "llama" files through
 * lg_gguf_qk_file_row, so the kernels see Hugging Face's rotate-half order).
 * With weight_type DEFAULT every matrix keeps the file's type ("as stored",
 * gguf_wtype()): F32/F16/BF16 as they are; Q8_0 and Q4_0 repacked from ggml's
 * interleaved blocks into the split layout below (bit-exact); Q4_K copied as
 * is; Q6_K repacked into the q6_K layout below (lg_q6k_repack_rows, bit-exact).
 * The token embedding is gathered by embed.comp, which reads
 * f32/f16/bf16 only: a quantized token_embd (Q4_K_M files have one) is
 * dequantized to f16 at load, and so is the LM head when it is tied to it; an
 * untied quantized output.weight stays quantized (mat-vec reads every type).
 * Q, K and V share one matrix: when the file gives them different types
 * (Q4_K_M: attn_v in Q6_K) the matrix takes f16 if any of them is a float or
 * widened type, else q8_0 (the others requantized from their values; an INFO
 * line says so). Any other weight_type converts as for a checkpoint: block
 * data is dequantized to f32 on the CPU, a row at a time, then converted or
 * quantized.
 *
 * Quantization runs on the CPU's threads, one chunk of rows (one staging
 * fill) at a time: each thread widens a row to f32 and quantizes it straight
 * into the staging memory (values) and a small scale buffer (copied after).
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "model/gguf.h"
#include "quant.h"

#define LG_STAGING_BYTES ((VkDeviceSize)64 << 20)

#define LG_QUANT_MAX_THREADS 32

static int wtype_is_quant(enum lg_wtype t) {
    return t == LG_WTYPE_Q8_0 || t == LG_WTYPE_Q4_0 || t == LG_WTYPE_Q4_K ||
           t == LG_WTYPE_Q6_K;
}

/* Where a weight's values come from: a safetensors tensor (ggml == WSRC_HF) or a
 * GGUF tensor, rows of row_bytes bytes; HF row r is stored as row
 * lg_gguf_qk_file_row(r, perm_hd) when perm_hd != 0, else as row r. */
#define WSRC_HF UINT32_MAX
struct wsrc {
    const char *data;
    uint32_t rows, cols;
    uint64_t row_bytes;
    uint32_t ggml;       /* LG_GGML_* of GGUF data; WSRC_HF */
    enum lg_dtype dtype; /* float data (HF, GGUF F32/F16/BF16); LG_DTYPE_COUNT for blocks */
    uint32_t perm_hd;
};

static const char *src_row(const struct wsrc *w, uint32_t r) {
    uint64_t fr = w->perm_hd ? lg_gguf_qk_file_row(r, w->perm_hd) : r;
    return w->data + fr * w->row_bytes;
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
    const struct lg_checkpoint *ck; /* one of these two is the source */
    const struct lg_gguf *g;
    int said_mix;         /* the GGUF Q/K/V type mix was logged */
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
    const struct wsrc *src;
    uint32_t src_r0; /* source row of chunk row 0 */
    const float *f16_table;
    uint32_t cols, r0, r1;
    uint8_t *qs;
    uint16_t *d;
    float *row;
};

static void *qjob_run(void *arg) {
    const struct qjob *j = arg;
    uint64_t qrow = row_qs_bytes(j->type, j->cols);
    for (uint32_t r = j->r0; r < j->r1; r++) {
        uint8_t *q = j->qs + (size_t)r * qrow;
        uint16_t *d = j->d + (size_t)r * (row_d_bytes(j->type, j->cols) / 2);
        const char *in = src_row(j->src, j->src_r0 + r);
        if (j->src->dtype == LG_DTYPE_COUNT) {
            lg_gguf_row_to_f32(j->src->ggml, in, j->cols, j->row);
        } else if (j->src->dtype == LG_DTYPE_F16) {
            for (uint32_t i = 0; i < j->cols; i++) {
                uint16_t h;
                memcpy(&h, in + 2 * i, 2);
                j->row[i] = j->f16_table[h];
            }
        } else {
            lg_convert_to_f32(j->src->dtype, in, j->row, j->cols);
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
static void quantize_rows(struct upload_state *u, enum lg_wtype type, const struct wsrc *src,
                          uint32_t src_r0, uint32_t cols, uint32_t n, uint8_t *qs, uint16_t *d) {
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
                                src,
                                src_r0,
                                u->f16_table,
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

/* The shard of t that holds row g, and in *n how many rows from g stay in it (at
 * most `most`): the upload loops walk a tensor's rows shard by shard with it. */
static struct lg_wshard *shard_span(struct lg_wtensor *t, uint32_t g, uint64_t most,
                                    uint32_t *n) {
    uint32_t s = 0;
    while (s + 1 < t->n_shards && g >= t->shards[s + 1].row_begin)
        s++;
    *n = (uint32_t)LG_MIN((uint64_t)(t->shards[s].row_begin + t->shards[s].rows - g), most);
    return &t->shards[s];
}

/* upload_rows for a quantized t: per chunk, the values go straight into
 * staging, the scales through u->scales (a second reservation may flush the
 * ring, so the first one is complete before it is made). */
static enum llmgpu_status upload_rows_quant(struct upload_state *u, struct lg_wtensor *t,
                                           uint32_t dst_row, const struct wsrc *src) {
    uint64_t qrow = row_qs_bytes(t->type, t->cols), drow = row_d_bytes(t->type, t->cols);
    uint32_t n_rows = src->rows;
    /* GGUF data already in t's type: repacked (q8_0, q4_0) or copied (q4_K), not requantized */
    int same = (t->type == LG_WTYPE_Q8_0 && src->ggml == LG_GGML_Q8_0) ||
               (t->type == LG_WTYPE_Q4_0 && src->ggml == LG_GGML_Q4_0) ||
               (t->type == LG_WTYPE_Q4_K && src->ggml == LG_GGML_Q4_K) ||
               (t->type == LG_WTYPE_Q6_K && src->ggml == LG_GGML_Q6_K);
    uint64_t chunk_rows = LG_MAX((u->up.staging.size - 64) / (qrow + drow), 1);
    uint32_t r = 0;
    enum llmgpu_status st = quant_scratch(u, t->cols, (size_t)LG_MIN(chunk_rows, n_rows) *
                                                          (t->cols / LG_QK));
    if (st != LLMGPU_OK)
        return st;
    while (r < n_rows) {
        uint32_t g = dst_row + r, n;
        struct lg_wshard *sh = shard_span(t, g, LG_MIN((uint64_t)(n_rows - r), chunk_rows), &n);
        {
            void *ptr;
            st = lg_uploader_reserve(&u->up, &sh->buf, (VkDeviceSize)(g - sh->row_begin) * qrow,
                                     (VkDeviceSize)n * qrow, &ptr);
            if (st != LLMGPU_OK)
                return st;
            if (!same) {
                quantize_rows(u, t->type, src, r, t->cols, n, ptr, u->scales);
            } else {
                for (uint32_t i = 0; i < n; i++) {
                    const uint8_t *in = (const uint8_t *)src_row(src, r + i);
                    uint8_t *q = (uint8_t *)ptr + (size_t)i * qrow;
                    uint16_t *d = u->scales + (size_t)i * (drow / 2);
                    if (t->type == LG_WTYPE_Q8_0)
                        lg_q8_0_from_ggml(in, t->cols, (int8_t *)q, d);
                    else if (t->type == LG_WTYPE_Q4_0)
                        lg_q4_0_from_ggml(in, t->cols, q, d);
                    else if (t->type == LG_WTYPE_Q6_K)
                        lg_q6k_repack_rows(in, 1, t->cols, q, d);
                    else
                        memcpy(q, in, (size_t)qrow);
                }
            }
            if (drow) {
                st = lg_uploader_reserve(&u->up, &sh->buf,
                                         (VkDeviceSize)sh->rows * qrow +
                                             (VkDeviceSize)(g - sh->row_begin) * drow,
                                         (VkDeviceSize)n * drow, &ptr);
                if (st != LLMGPU_OK)
                    return st;
                memcpy(ptr, u->scales, (size_t)n * drow);
            }
            st = progress(u, (uint64_t)n * src->row_bytes);
            if (st != LLMGPU_OK)
                return st;
            r += n;
        }
    }
    return LLMGPU_OK;
}

/* Convert n rows of src from source row r into dst (float type t): in one call when
 * they are contiguous floats, else a row at a time (permuted rows; block data
 * dequantized to f32 in u->rows_f32 first). */
static void convert_rows(struct upload_state *u, enum lg_wtype t, const struct wsrc *src,
                         uint32_t r, uint32_t n, char *dst) {
    size_t ws = (size_t)row_qs_bytes(t, 1);
    if (src->dtype != LG_DTYPE_COUNT && !src->perm_hd) {
        convert(u, t, src->dtype, src_row(src, r), dst, (size_t)n * src->cols);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        char *out = dst + (size_t)i * src->cols * ws;
        if (src->dtype != LG_DTYPE_COUNT) {
            convert(u, t, src->dtype, src_row(src, r + i), out, src->cols);
        } else {
            lg_gguf_row_to_f32(src->ggml, src_row(src, r + i), src->cols, u->rows_f32);
            convert(u, t, LG_DTYPE_F32, u->rows_f32, out, src->cols);
        }
    }
}

/* Copy rows [0, src rows) of a source tensor into t starting at row dst_row. */
static enum llmgpu_status upload_rows(struct upload_state *u, struct lg_wtensor *t,
                                      uint32_t dst_row, const struct wsrc *src) {
    size_t ws;
    uint32_t n_rows = src->rows;
    uint64_t chunk_rows;
    uint32_t r = 0;
    enum llmgpu_status st;
    if (wtype_is_quant(t->type))
        return upload_rows_quant(u, t, dst_row, src);
    if (src->dtype == LG_DTYPE_COUNT && (st = quant_scratch(u, t->cols, 0)) != LLMGPU_OK)
        return st;
    ws = (size_t)row_qs_bytes(t->type, 1);
    chunk_rows = LG_MAX(u->up.staging.size / ((uint64_t)t->cols * ws), 1);
    while (r < n_rows) {
        uint32_t g = dst_row + r, n;
        struct lg_wshard *sh = shard_span(t, g, LG_MIN((uint64_t)(n_rows - r), chunk_rows), &n);
        {
            void *ptr;
            st = lg_uploader_reserve(&u->up, &sh->buf,
                                     (VkDeviceSize)(g - sh->row_begin) * t->cols * ws,
                                     (VkDeviceSize)n * t->cols * ws, &ptr);
            if (st != LLMGPU_OK)
                return st;
            convert_rows(u, t->type, src, r, n, ptr);
            st = progress(u, (uint64_t)n * src->row_bytes);
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
        uint32_t g = dst_row + r, n;
        struct lg_wshard *sh = shard_span(t, g, LG_MIN((uint64_t)(q->rows - r), chunk_rows), &n);
        {
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

/* A small f32 vector (norm weight, bias) at offset `at` floats of dst. */
static enum llmgpu_status upload_vec(struct upload_state *u, struct lg_buffer *dst, size_t at,
                                     const struct wsrc *src) {
    void *ptr;
    uint64_t n = (uint64_t)src->rows * src->cols;
    enum llmgpu_status st = lg_uploader_reserve(&u->up, dst, at * 4, n * 4, &ptr);
    if (st != LLMGPU_OK)
        return st;
    lg_convert_to_f32(src->dtype, src->data, ptr, (size_t)n); /* vectors are float (checked) */
    return progress(u, src->rows * src->row_bytes);
}

static enum llmgpu_status vec_create(struct llmgpu_model *m, size_t n, struct lg_buffer *b) {
    return lg_buffer_create(m->ctx, n * 4, LG_MEM_DEVICE, b);
}

/* The source of role r (layer l), from the checkpoint or the GGUF file; 0 when the
 * model has no such tensor. */
static int get_src(const struct upload_state *u, enum lg_tensor_role r, uint32_t l,
                   struct wsrc *w) {
    memset(w, 0, sizeof *w);
    if (u->ck) {
        const struct lg_tensor_src *t = lg_ckpt_tensor(u->ck, r, l);
        if (!t)
            return 0;
        w->data = t->data;
        w->rows = t->n_dims == 2 ? (uint32_t)t->shape[0] : 1;
        w->cols = (uint32_t)(t->n_elements / w->rows);
        w->row_bytes = (uint64_t)w->cols * lg_dtype_size(t->dtype);
        w->ggml = WSRC_HF;
        w->dtype = t->dtype;
    } else {
        const struct lg_gguf_tensor *t = lg_gguf_tensor_role(u->g, r, l);
        if (!t)
            return 0;
        w->data = t->data;
        w->rows = (uint32_t)t->n_rows; /* shapes were checked against the config */
        w->cols = (uint32_t)t->ne[0];
        w->row_bytes = t->row_bytes;
        w->ggml = t->type;
        if (lg_ggml_to_dtype(t->type, &w->dtype) != 0)
            w->dtype = LG_DTYPE_COUNT;
        w->perm_hd = lg_gguf_role_permuted(u->g, r) ? u->m->cfg.head_dim : 0;
    }
    return 1;
}

/* GGUF Q6_K on the GPU: LG_WTYPE_Q6_K, its blocks repacked (lg_q6k_repack_rows). */
static enum lg_wtype gguf_q6_k_wtype(void) {
    return LG_WTYPE_Q6_K;
}

/* The GPU type of a GGUF tensor with weight_type DEFAULT: the file's own ("as
 * stored"); the token embedding only in a type embed.comp reads (f32/f16/bf16). */
static enum lg_wtype gguf_wtype(uint32_t ggml, enum lg_tensor_role r) {
    switch (ggml) {
    case LG_GGML_F32: return LG_WTYPE_F32;
    case LG_GGML_BF16: return LG_WTYPE_BF16;
    case LG_GGML_F16: return LG_WTYPE_F16;
    default: break;
    }
    if (r == LG_T_TOK_EMBD)
        return LG_WTYPE_F16;
    switch (ggml) {
    case LG_GGML_Q8_0: return LG_WTYPE_Q8_0;
    case LG_GGML_Q4_0: return LG_WTYPE_Q4_0;
    case LG_GGML_Q4_K: return LG_WTYPE_Q4_K;
    case LG_GGML_Q6_K: return gguf_q6_k_wtype();
    default: return LG_WTYPE_F16;
    }
}

static const char *wtype_name(enum lg_wtype t) {
    static const char *const n[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_K", "q6_K",
                                    "q4_g"};
    return (unsigned)t < LG_ARRAY_LEN(n) ? n[t] : "?";
}

/* The GPU type of the matrix of role r (LG_T_WQ: the Q/K/V matrix) in layer l.
 * log != NULL: say why when it differs from what was asked or stored. */
static enum lg_wtype matrix_type(struct upload_state *u, enum lg_tensor_role r, uint32_t l,
                                 const struct lg_log *log, const char *name) {
    struct wsrc w;
    int quantizable = r != LG_T_TOK_EMBD && r != LG_T_LM_HEAD;
    get_src(u, r, l, &w);
    if (!u->g || u->p->weight_type != LLMGPU_WEIGHT_TYPE_DEFAULT)
        return pick_type(u->p->weight_type, w.dtype == LG_DTYPE_COUNT ? LG_DTYPE_F16 : w.dtype,
                         w.cols, quantizable, log, name);
    if (r == LG_T_WQ) {
        struct wsrc wk, wv;
        enum lg_wtype tq, tk, tv;
        int any_float;
        get_src(u, LG_T_WK, l, &wk);
        get_src(u, LG_T_WV, l, &wv);
        tq = gguf_wtype(w.ggml, r);
        tk = gguf_wtype(wk.ggml, r);
        tv = gguf_wtype(wv.ggml, r);
        if (tq == tk && tk == tv)
            return tq;
        any_float = !wtype_is_quant(tq) || !wtype_is_quant(tk) || !wtype_is_quant(tv);
        if (log && !u->said_mix++)
            lg_info(log, "layer %u (and maybe others): Q, K and V are %s, %s and %s in the "
                    "file and share one matrix on the GPU: %s for all three", l, lg_ggml_type_name(w.ggml),
                    lg_ggml_type_name(wk.ggml), lg_ggml_type_name(wv.ggml),
                    any_float ? "f16" : "q8_0");
        return any_float ? LG_WTYPE_F16 : LG_WTYPE_Q8_0;
    }
    if (log && r == LG_T_TOK_EMBD && gguf_wtype(w.ggml, r) != gguf_wtype(w.ggml, LG_T_WO))
        lg_info(log, "%s: %s dequantized to f16 (the embedding gather reads float types)", name,
                lg_ggml_type_name(w.ggml));
    return gguf_wtype(w.ggml, r);
}

/* Bytes the model will take on the device, for the fit check before allocating. */
static int role_is_vec(enum lg_tensor_role r) {
    return r == LG_T_ATTN_NORM || r == LG_T_FFN_NORM || r == LG_T_OUT_NORM || r == LG_T_BQ ||
           r == LG_T_BK || r == LG_T_BV;
}

static uint64_t needed_bytes(struct upload_state *u) {
    const struct lg_model_config *c = &u->m->cfg;
    uint64_t total = 0;
    for (int r = 0; r < LG_T_COUNT; r++) {
        uint32_t layers = lg_arch_is_per_layer((enum lg_tensor_role)r) ? c->n_layer : 1;
        for (uint32_t l = 0; l < layers; l++) {
            struct wsrc w;
            enum lg_tensor_role role = (enum lg_tensor_role)r;
            const struct lg_qlinear *ql = u->ck ? lg_ckpt_qlinear(u->ck, role, l) : NULL;
            if (ql)
                total += (uint64_t)ql->rows * q4g_row_bytes(ql->cols, ql->group);
            if (!get_src(u, role, l, &w))
                continue;
            if (!role_is_vec(role)) {
                /* K and V take the Q/K/V matrix's type */
                enum lg_tensor_role tr = role == LG_T_WK || role == LG_T_WV ? LG_T_WQ : role;
                total += (uint64_t)w.rows * row_bytes(matrix_type(u, tr, l, NULL, NULL), w.cols);
            } else {
                total += (uint64_t)w.cols * 4;
            }
        }
    }
    return total;
}

/* Bytes the sources hold (the progress total) and their element count. */
static void source_totals(const struct upload_state *u, uint64_t *bytes, uint64_t *elements) {
    const struct lg_model_config *c = &u->m->cfg;
    *bytes = *elements = 0;
    for (int r = 0; r < LG_T_COUNT; r++) {
        uint32_t layers = lg_arch_is_per_layer((enum lg_tensor_role)r) ? c->n_layer : 1;
        for (uint32_t l = 0; l < layers; l++) {
            struct wsrc w;
            if (get_src(u, (enum lg_tensor_role)r, l, &w)) {
                *bytes += (uint64_t)w.rows * w.row_bytes;
                *elements += (uint64_t)w.rows * w.cols;
            }
        }
    }
}

/* Create t for role r (layer l) and fill it from its source (row 0 on). */
static enum llmgpu_status upload_matrix(struct upload_state *u, enum lg_tensor_role r,
                                        uint32_t l, const struct lg_log *log, const char *name,
                                        struct lg_wtensor *t) {
    struct wsrc w;
    enum llmgpu_status st;
    get_src(u, r, l, &w);
    st = wtensor_create(u->m, w.rows, w.cols, matrix_type(u, r, l, log, name), t);
    return st == LLMGPU_OK ? upload_rows(u, t, 0, &w) : st;
}

/* A projection of role r (layer l): the GPTQ/AWQ Linear as q4_g, or the float (or
 * GGUF) tensor in the type matrix_type picks. */
static enum llmgpu_status upload_proj(struct upload_state *u, struct lg_wtensor *t,
                                      enum lg_tensor_role r, uint32_t l, const struct lg_log *log,
                                      const char *what) {
    const struct lg_qlinear *q = u->ck ? lg_ckpt_qlinear(u->ck, r, l) : NULL;
    enum llmgpu_status st;
    if (q) {
        st = wtensor_create_g(u->m, q->rows, q->cols, LG_WTYPE_Q4_G, q->group, t);
        return st == LLMGPU_OK ? upload_rows_q4g(u, t, 0, q) : st;
    }
    return upload_matrix(u, r, l, log, what, t);
}

static enum llmgpu_status upload_layer(struct upload_state *u, uint32_t l) {
    struct llmgpu_model *m = u->m;
    const struct lg_model_config *c = &m->cfg;
    struct lg_layer *L = &m->layers[l];
    struct wsrc wq, wk, wv, w;
    const struct lg_checkpoint *ck = u->ck;
    const struct lg_qlinear *qq = ck ? lg_ckpt_qlinear(ck, LG_T_WQ, l) : NULL;
    const struct lg_qlinear *qk = ck ? lg_ckpt_qlinear(ck, LG_T_WK, l) : NULL;
    const struct lg_qlinear *qv = ck ? lg_ckpt_qlinear(ck, LG_T_WV, l) : NULL;
    uint32_t q_rows = c->n_head * c->head_dim, kv_rows = c->n_kv_head * c->head_dim;
    enum llmgpu_status st;
    /* say it once, not per layer; GGUF types vary by layer (matrix_type says each once) */
    const struct lg_log *log = l == 0 || u->g ? &m->ctx->log : NULL;

#define TRY(x)                                                                                   \
    do {                                                                                         \
        st = (x);                                                                                \
        if (st != LLMGPU_OK)                                                                     \
            return st;                                                                           \
    } while (0)
    get_src(u, LG_T_WQ, l, &wq);
    get_src(u, LG_T_WK, l, &wk);
    get_src(u, LG_T_WV, l, &wv);
    TRY(vec_create(m, c->n_embd, &L->attn_norm));
    get_src(u, LG_T_ATTN_NORM, l, &w);
    TRY(upload_vec(u, &L->attn_norm, 0, &w));
    TRY(vec_create(m, c->n_embd, &L->ffn_norm));
    get_src(u, LG_T_FFN_NORM, l, &w);
    TRY(upload_vec(u, &L->ffn_norm, 0, &w));
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
                           matrix_type(u, LG_T_WQ, l, log, "Q/K/V projections"), &L->wqkv));
        TRY(upload_rows(u, &L->wqkv, 0, &wq));
        TRY(upload_rows(u, &L->wqkv, q_rows, &wk));
        TRY(upload_rows(u, &L->wqkv, q_rows + kv_rows, &wv));
    }
    if (c->qkv_bias) {
        TRY(vec_create(m, q_rows + 2 * kv_rows, &L->bqkv));
        get_src(u, LG_T_BQ, l, &w);
        TRY(upload_vec(u, &L->bqkv, 0, &w));
        get_src(u, LG_T_BK, l, &w);
        TRY(upload_vec(u, &L->bqkv, q_rows, &w));
        get_src(u, LG_T_BV, l, &w);
        TRY(upload_vec(u, &L->bqkv, q_rows + kv_rows, &w));
    }
    {
        const struct lg_qlinear *qg = ck ? lg_ckpt_qlinear(ck, LG_T_GATE, l) : NULL;
        const struct lg_qlinear *qu = ck ? lg_ckpt_qlinear(ck, LG_T_UP, l) : NULL;
        /* one fused kernel reads gate and up with one type (matvec.comp GATE_UP) */
        if (!qg != !qu || (qg && qg->group != qu->group)) {
            lg_err(&m->ctx->log, "layer %u: gate_proj and up_proj must both be %s-quantized with "
                   "one group size, or both float", l, lg_quant_method_name(ck->quant.method));
            return LLMGPU_ERR_UNSUPPORTED_MODEL;
        }
        TRY(upload_proj(u, &L->wo, LG_T_WO, l, log, "output projection"));
        TRY(upload_proj(u, &L->gate, LG_T_GATE, l, log, "gate projection"));
        TRY(upload_proj(u, &L->up, LG_T_UP, l, log, "up projection"));
        TRY(upload_proj(u, &L->down, LG_T_DOWN, l, log, "down projection"));
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

static enum llmgpu_weight_type public_type(enum lg_wtype t) {
    switch (t) {
    case LG_WTYPE_F32: return LLMGPU_WEIGHT_TYPE_F32;
    case LG_WTYPE_BF16: return LLMGPU_WEIGHT_TYPE_BF16;
    case LG_WTYPE_Q8_0: return LLMGPU_WEIGHT_TYPE_Q8_0;
    case LG_WTYPE_Q4_0: return LLMGPU_WEIGHT_TYPE_Q4_0;
    case LG_WTYPE_Q4_K: return LLMGPU_WEIGHT_TYPE_Q4_K;
    case LG_WTYPE_Q6_K: return LLMGPU_WEIGHT_TYPE_Q6_K;
    default: return LLMGPU_WEIGHT_TYPE_F16;
    }
}

static enum llmgpu_status upload_all(struct llmgpu_model *m, const struct lg_checkpoint *ck,
                                     const struct lg_gguf *g,
                                     const struct llmgpu_model_params *p) {
    struct llmgpu_context *ctx = m->ctx;
    const struct lg_model_config *c = &m->cfg;
    struct upload_state u;
    enum llmgpu_status st;
    uint64_t need, used = atomic_load(&ctx->device_bytes), avail, n_elements;

    if (ck && ck->quant.method != LG_QUANT_NONE &&
        (p->weight_type == LLMGPU_WEIGHT_TYPE_Q8_0 || p->weight_type == LLMGPU_WEIGHT_TYPE_Q4_0 ||
         p->weight_type == LLMGPU_WEIGHT_TYPE_Q4_K)) {
        lg_err(&ctx->log, "this is a %s checkpoint: its projections load as stored (4-bit); "
               "another quantized weight type cannot be asked for (use the default, or "
               "f16/bf16/f32 for its float tensors)", lg_quant_method_name(ck->quant.method));
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    memset(&u, 0, sizeof u);
    u.m = m;
    u.p = p;
    u.ck = ck;
    u.g = g;
    need = needed_bytes(&u);
    avail = used < ctx->device_limit ? ctx->device_limit - used : 0;
    if (need > avail) {
        lg_err(&ctx->log,
               "out of device memory: the weights need %llu bytes (%.1f MiB), %llu bytes "
               "(%.1f MiB) of %llu are free (a quantized weight type or a smaller model would fit)",
               (unsigned long long)need, (double)need / (1 << 20), (unsigned long long)avail,
               (double)avail / (1 << 20), (unsigned long long)ctx->device_limit);
        return LLMGPU_ERR_OUT_OF_DEVICE_MEMORY;
    }
    source_totals(&u, &u.total, &n_elements);
    if (g && p->weight_type == LLMGPU_WEIGHT_TYPE_DEFAULT) /* report what "as stored" gave */
        m->weight_type = public_type(matrix_type(&u, LG_T_GATE, 0, NULL, NULL));
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
    if (st == LLMGPU_OK)
        st = upload_matrix(&u, LG_T_TOK_EMBD, 0, g ? &ctx->log : NULL, "token_embd",
                           &m->tok_embd);
    for (uint32_t l = 0; l < c->n_layer && st == LLMGPU_OK; l++)
        st = upload_layer(&u, l);
    if (st != LLMGPU_OK)
        goto done;
    st = vec_create(m, c->n_embd, &m->out_norm);
    if (st == LLMGPU_OK) {
        struct wsrc w;
        get_src(&u, LG_T_OUT_NORM, 0, &w);
        st = upload_vec(&u, &m->out_norm, 0, &w);
    }
    if (st != LLMGPU_OK)
        goto done;
    if (c->tie_word_embeddings) {
        m->lm_head = m->tok_embd;
        m->lm_head_tied = 1;
    } else {
        st = upload_matrix(&u, LG_T_LM_HEAD, 0, g ? &ctx->log : NULL, "output (LM head)",
                           &m->lm_head);
        if (st != LLMGPU_OK)
            goto done;
    }
    st = lg_uploader_flush(&u.up);
    if (u.overflows)
        lg_warn(&ctx->log, "%zu weight values overflowed f16 and became inf; load with "
                           "weight_type bf16 or f32 to keep them", u.overflows);
    if (st == LLMGPU_OK && g)
        lg_info(&ctx->log, "%s: GGUF weights on the GPU: token_embd %s, LM head %s, layer 0 "
                "Q/K/V %s, FFN down %s", g->path, wtype_name(m->tok_embd.type),
                wtype_name(m->lm_head.type), wtype_name(m->layers[0].wqkv.type),
                wtype_name(m->layers[0].down.type));
done:
    lg_uploader_free(&u.up);
    lg_free(&ctx->alloc, u.rows_f32);
    lg_free(&ctx->alloc, u.scales);
    lg_free(&ctx->alloc, u.f16_table);
    m->weight_bytes = model_device_bytes(m);
    return st;
}

enum llmgpu_status lg_model_upload(struct llmgpu_model *m, struct lg_checkpoint *ck,
                                   const struct llmgpu_model_params *p) {
    return upload_all(m, ck, NULL, p);
}

enum llmgpu_status lg_model_upload_gguf(struct llmgpu_model *m, const struct lg_gguf *g,
                                        const struct llmgpu_model_params *p) {
    return upload_all(m, NULL, g, p);
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
