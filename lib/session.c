/*
 * session.c - a session's GPU state (KV cache, activations, logits) and the
 * forward pass that runs on it.
 *
 * The forward pass reads like llama2.c's forward(): for each layer
 *   xb = rmsnorm(x) ; qkv = Wqkv xb (+ b) ; q, k, v = rope(qkv) -> KV cache
 *   xb2 = attention(q, K, V) ; x += Wo xb2
 *   xb = rmsnorm(x) ; hb = silu(Wg xb) * (Wu xb) ; x += Wd hb
 * then logits = Wlm rmsnorm(x[last]) and the greedy token = argmax(logits).
 * Each step is one dispatch (one per weight shard) with one barrier after it.
 * Decode fuses more: the RMSNorms into the next mat-vec, gate+up+SiLU into one,
 * the residual adds into the output projections, and RoPE plus the KV-cache write
 * into the Q/K/V mat-vec's epilogue (fuse_rope_ok), so a layer is 5 dispatches:
 * qkv, attention (flash decoding, its reduction done by each head's last
 * workgroup), wo, gate_up, down.
 *
 * All buffers and descriptor sets are made at session creation. The decode
 * command buffer (one token) is recorded once and replayed: the token and
 * position travel in the host-visible step buffer. Prefill records a command
 * buffer per chunk of at most n_batch tokens, reusing the same descriptor sets,
 * with the tiled GEMM instead of the mat-vec.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "forward.h"
#include "sample.h"

/* Stages the profiler names; a timestamp is written after each. */
enum stage { ST_EMBED, ST_QKV, ST_ROPE, ST_ATTN, ST_WO, ST_GATE_UP, ST_DOWN, ST_LM_HEAD, ST_COUNT };
static const char *const stage_names[ST_COUNT] = {
    "embed", "norm+qkv", "rope+kv_write", "attention", "wo+residual", "norm+gate_up+silu",
    "ffn_down+residual", "norm+lm_head+argmax"};

/* Timestamps of one command buffer: stamp i closes stage stages[i - 1]. */
struct prof {
    VkQueryPool pool;
    uint32_t n, cap;
    uint8_t *stages;
    /* per stage of the recorded step: weight bytes its mat-vecs read, barriers */
    uint64_t rec_bytes[ST_COUNT], rec_barriers[ST_COUNT];
    uint64_t pend_bytes, pend_barriers; /* since the last stamp */
};

struct llmgpu_session {
    struct llmgpu_model *model;
    struct llmgpu_context *ctx;
    uint32_t n_ctx, n_batch, pos;
    int have_logits;

    /* buffers; shapes use B = n_batch */
    struct lg_buffer step;    /* lg_step + int32 tokens[B]; host-visible */
    struct lg_buffer x;       /* (B, E) residual stream */
    struct lg_buffer xb;      /* (B, E) normed input of a projection */
    struct lg_buffer xh;      /* (B, E) f16: xb rounded, the tensor-core GEMMs' x (xh_on) */
    int xh_on;                /* lg_prefill_xh: the prefill norms write xh too */
    struct lg_buffer qkv;     /* (B, (NH + 2 NKV) HD) */
    struct lg_buffer q;       /* (B, NH HD) roped queries */
    struct lg_buffer att;     /* (B, NH HD) attention output */
    struct lg_buffer gu;      /* (B, 2F) gate and up side by side (prefill) */
    struct lg_buffer hb;      /* (B, F) */
    struct lg_buffer logits;  /* (V) */
    struct lg_buffer logits_host; /* (V) host-visible copy, filled on request */
    struct lg_sample_cache sample_cache; /* llmgpu_session_sample's buffers, made at first use */
    struct lg_buffer result;  /* uint32 greedy token; host-visible */
    struct lg_buffer rope;    /* (n_ctx, HD/2) of (cos, sin) */
    struct lg_buffer part;    /* (NH, splits, HD + 2) flash-decoding partial states */
    struct lg_buffer cnt;     /* uint32 (NH / GQ): splits done per head group; reset by it */
    uint32_t kv_cap;          /* positions the KV cache and rope table hold now */
    int sets_ok;              /* descriptor sets match the current buffers */
    struct lg_buffer *kc, *vc; /* per layer: n_ctx rows of lg_kv_row_bytes() */
    int kv_q8;                 /* the cache is 8-bit (LLMGPU_KV_TYPE_Q8_0) */
    struct lg_buffer dq;       /* f16 copies of block-quantized matrices (lg_prefill_dq) */
    int dq_on;                 /* prefill GEMMs on quantized weights read the copies */
    uint64_t dq_off_b;         /* where the scratch's region B starts (dq_plan) */

    struct lg_dpool pool;
    struct lg_cmd decode_cmd; /* recorded once for one token */
    struct lg_cmd prefill_cmd;
    struct lg_cmd logits_cmd; /* copies logits to logits_host; recorded once */
    int decode_recorded, logits_recorded;
    uint32_t prefill_recorded; /* the chunk size prefill_cmd holds recorded; 0: none */
    struct prof prof_decode, prof_prefill; /* with LLMGPU_CONTEXT_FLAG_PROFILE */
    uint64_t prof_ns[ST_COUNT], prof_count[ST_COUNT], prof_bytes[ST_COUNT],
        prof_barriers[ST_COUNT];

    /* descriptor sets, made once */
    VkDescriptorSet *embed_sets;  /* per tok_embd shard */
    struct layer_sets {
        VkDescriptorSet norm1, rope, attn, norm2, silu, attn_split;
        VkDescriptorSet *qkv, *wo, *gate, *up, *down;  /* per shard, prefill inputs */
        VkDescriptorSet *qkv_dec, *gate_up;             /* per shard, decode: norm fused */
        VkDescriptorSet *qkv_rope; /* per shard, decode: norm, RoPE and KV write fused */
        VkDescriptorSet *dq_deq[5]; /* per shard of a block-quantized matrix (DQ_*): to dq */
        VkDescriptorSet dq_mm[5];   /* its prefill GEMM reading dq */
    } *ls;
    int fuse_rope;                /* decode uses qkv_rope (fuse_rope_ok) */
    VkDescriptorSet argmax;
    VkDescriptorSet *lm_sets;     /* per lm_head shard; final norm fused */
};

/* ---- kernel configuration ---- */

static uint32_t wg_size(const struct llmgpu_context *ctx) {
    return ctx->info.type == LLMGPU_DEVICE_TYPE_CPU ? 64 : 256;
}

static void base_desc(const struct llmgpu_context *ctx, struct lg_pipeline_desc *d,
                      char store[][48], const char *kernel, uint32_t n_bindings,
                      uint32_t push_size) {
    memset(d, 0, sizeof *d);
    d->kernel = kernel;
    d->n_bindings = n_bindings;
    d->push_size = push_size;
    lg_desc_define(d, store[0], "WG_SIZE", wg_size(ctx));
    lg_desc_define(d, store[1], "USE_SUBGROUP", ctx->caps.subgroup_arith ? 1 : 0);
}

enum mm_flags {
    MM_BIAS = 1, MM_ACC = 2, MM_GATE_UP = 4, MM_GEMM = 8, MM_NORM = 16, MM_ROPE = 32,
    MM_CM_BIG = 64, /* matmul_cm.comp's large tile (gemm_flags) */
    MM_XH = 128     /* x is the prefill norm's f16 copy (matmul_cm.comp XF16; gemm_xh) */
};

/* Rows per workgroup of the decode mat-vec (matvec.comp ROWS). */
#ifndef LG_MATVEC_ROWS
#define LG_MATVEC_ROWS 2
#endif

/* Splits a head group of decode attention (attn_split.comp's NSPLIT, its grid's y). */
static uint32_t attn_splits(const struct llmgpu_session *s) {
    return lg_attn_split_n(s->model->cfg.n_head, s->model->cfg.n_kv_head, s->n_ctx);
}

static void define_eps(struct lg_pipeline_desc *d, char *store, float eps) {
    snprintf(store, 48, "EPS=%.9e", (double)eps);
    d->defines[d->n_defines++] = store;
}

/* Prefill GEMMs on tensor cores (matmul_cm.comp) where the device has NV cooperative
 * matrices with f16 and 32-wide subgroups, for f16, q8_0, q4_0, q4_K and q6_K weights
 * (the types its tests cover; GPTQ/AWQ q4_g keeps matmul.comp), unless
 * LLMGPU_CONTEXT_FLAG_NO_COOPMAT asks for the portable matmul.comp. */
static int coopmat_device(const struct llmgpu_context *ctx) {
    return ctx->caps.coopmat_nv && ctx->caps.fp16 && ctx->caps.storage16 &&
           ctx->caps.subgroup_size == 32 && !(ctx->flags & LLMGPU_CONTEXT_FLAG_NO_COOPMAT);
}
static int use_coopmat(const struct llmgpu_context *ctx, const struct lg_wtensor *w) {
    return coopmat_device(ctx) &&
           (w->type == LG_WTYPE_F16 || w->type == LG_WTYPE_Q8_0 || w->type == LG_WTYPE_Q4_0 ||
            w->type == LG_WTYPE_Q4_K || w->type == LG_WTYPE_Q6_K);
}

/* Prefill's RMSNorm writes its output in f16 as well (rms_norm.comp YH), and the
 * tensor-core GEMMs that read it (Q/K/V, gate, up) load that instead of rounding f32 on
 * their way into shared memory (matmul_cm.comp XF16): the same products, from half the
 * bytes and with no conversion on the GEMM's load path, which bounds it (session 9).
 * gemm_bench measured 2-6 % on the large tile (bench/RESULTS.md, sessions 9, 13, 14).
 * Where the device has the tensor-core path; n_embd % 32 == 0 keeps those GEMMs on
 * their vector-load path for every tile (K % BK). A build knob, LG_XH=0, turns it off
 * (measurements). */
#ifndef LG_XH
#define LG_XH 1
#endif
int lg_prefill_xh(const struct llmgpu_model *m, uint32_t n_batch) {
    const struct llmgpu_context *ctx = m->ctx;
    return LG_XH && ctx && !m->vocab_only && n_batch >= 2 && m->cfg.n_embd % 32 == 0 &&
           coopmat_device(ctx);
}

/* Tile configurations of matmul_cm.comp. Small: 64 x 64 tiles, K in steps of 64, 8
 * subgroups of 32 rows x 16 tokens, one shared buffer. Large: 128 x 128 tiles, K in
 * steps of 32, 8 subgroups of 64 rows x 32 tokens, two shared buffers. Measured on the
 * H100 (tests/tools/gemm_bench.c, 512 tokens, bench/RESULTS.md session 9): the large
 * tile runs the 7B shapes (K >= 4096) at 137-142 TFLOP/s against the small one's
 * 106-114, but with too few tiles to fill the GPU (TinyLlama's down projection: 64 of
 * them) the small one is faster (108 against 72). With K = 2048 the large tile wins
 * where there are many tiles: 11264x2048 125 against 109 (session 14), and TinyLlama's
 * gate and up GEMMs (176 large tiles each, recorded side by side) took 4.76 ms of a
 * 512-token prefill instead of 5.34 (pp512 +3.5 %), although either alone measured in
 * isolation prefers the small tile (88 against 98).
 * So a GEMM takes the large tile when K >= LG_CM_BIG_K, the prompt has at least
 * LG_CM_BIG_TOK tokens and there are at least LG_CM_BIG_TILES large tiles; otherwise
 * the small one. LG_CM_BM, _BN, _BK, _NSG, _WR and _DB force the small tile's shape,
 * and LG_CM_BIG_K=0xffffffff turns the large one off (build-time knobs for
 * measurements). A configuration that needs more shared memory than the device has,
 * or a K step that does not divide K (block types need it; f16 would take the scalar
 * path), falls back to BK 32, one buffer. */
#ifndef LG_CM_BM
#define LG_CM_BM 64
#endif
#ifndef LG_CM_BN
#define LG_CM_BN 64
#endif
#ifndef LG_CM_BK
#define LG_CM_BK 64
#endif
#ifndef LG_CM_NSG
#define LG_CM_NSG 8
#endif
#ifndef LG_CM_WR
#define LG_CM_WR 32
#endif
#ifndef LG_CM_DB
#define LG_CM_DB 0
#endif
#ifndef LG_CM_BIG_K
#define LG_CM_BIG_K 2048u
#endif
#ifndef LG_CM_BIG_TOK
#define LG_CM_BIG_TOK 256u
#endif
#ifndef LG_CM_BIG_TILES
#define LG_CM_BIG_TILES 96u
#endif

/* The flags a product of n_tok tokens on w adds: none for one token (a mat-vec), else
 * MM_GEMM, and MM_CM_BIG where it takes the large tile (above). rec_mm and
 * record_step's pipeline creation both ask here, so they agree on the pipeline. */
static unsigned gemm_flags(const struct llmgpu_context *ctx, const struct lg_wtensor *w,
                           uint32_t n_tok) {
    uint32_t rows = w->n_shards ? w->shards[0].rows : w->rows;
    if (n_tok <= 1)
        return 0;
    if (!use_coopmat(ctx, w) || w->cols < LG_CM_BIG_K || n_tok < LG_CM_BIG_TOK ||
        (uint64_t)((rows + 127) / 128) * ((n_tok + 127) / 128) < LG_CM_BIG_TILES)
        return MM_GEMM;
    return MM_GEMM | MM_CM_BIG;
}

static void cm_config(const struct llmgpu_context *ctx, const struct lg_wtensor *w, int big,
                      struct lg_cm_cfg *c) {
    const struct lg_cm_cfg small = {LG_CM_BM, LG_CM_BN, LG_CM_BK, LG_CM_NSG, LG_CM_WR, LG_CM_DB};
    const struct lg_cm_cfg large = {128, 128, 32, 8, 64, 1};
    *c = big ? large : small;
    if (lg_cm_shared_bytes(c) > ctx->props.limits.maxComputeSharedMemorySize || w->cols % c->bk) {
        *c = small;
        c->bk = 32;
        c->db = 0;
    }
}

/* ---- dequantized prefill ----
 * A prefill GEMM on block-quantized weights can dequantize as it loads (matmul_cm.comp,
 * matmul.comp: the weights' bytes are read once, but the dequantization sits on the
 * GEMM's load path) or read an f16 copy that dequant.comp wrote before. On the H100
 * the tensor-core GEMM is bound by the latency of its loads, not their bytes
 * (bench/RESULTS.md, session 9), and the copy is faster at every chunk size measured,
 * 4 to 512 tokens: at 512, 1.4-1.6x on q4_0, q4_K and q6_K, 1.7-1.9x on q8_0
 * (bench/RESULTS.md, session 13). The products are the same: matmul_cm.comp rounds
 * dequantized values to f16 before its products either way. But the copies' scratch
 * (two layer matrices in f16: 270 MB on Llama-2-7B) would take a 7B session's scratch
 * past issue 10's budget of 5 % of the weights (check_memory.c), so they are opt-in:
 * LLMGPU_CONTEXT_FLAG_PREFILL_DEQUANT turns them on, on every device (the portable
 * GEMM then reads f16-rounded weights); LLMGPU_CONTEXT_FLAG_NO_PREFILL_DEQUANT wins
 * over it. Copies in row chunks of bounded size would fit the budget; not done yet.
 * The copies live in one scratch buffer per session, in two regions: A holds a layer's
 * Q/K/V matrix, later its gate and up side by side; B its Wo, later its down matrix.
 * Each matrix is copied while the GEMM before it runs (the previous layer's down GEMM
 * for Q/K/V; layer 0's beside its norm), into the region that GEMM does not read, so
 * the memory-bound copies overlap the compute-bound GEMMs and add no barrier (3-4 %
 * faster on the H100 than one region written in the interval just before each GEMM,
 * beside the norms, RoPE and SiLU: commit c075dee's LG_DQ_OVERLAP=0). A matrix whose f16
 * copy would exceed the binding limit turns the path off. */
enum { DQ_QKV, DQ_WO, DQ_GATE, DQ_UP, DQ_DOWN, DQ_N };

static const struct lg_wtensor *dq_w(const struct lg_layer *L, int i) {
    return i == DQ_QKV ? &L->wqkv : i == DQ_WO ? &L->wo : i == DQ_GATE ? &L->gate
                                              : i == DQ_UP ? &L->up : &L->down;
}
/* Bytes of w's f16 copy; 0 for weights that are not block-quantized. */
static uint64_t dq_bytes(const struct lg_wtensor *w) {
    return lg_wtype_is_block(w->type) ? (uint64_t)w->rows * w->cols * 2 : 0;
}
#define DQ_ALIGN(x) (((x) + 255) & ~(uint64_t)255) /* binding offsets */
/* Where matrix i's copy starts in the scratch, region B starting at off_b. */
static uint64_t dq_off(const struct lg_layer *L, int i, uint64_t off_b) {
    return i == DQ_UP ? DQ_ALIGN(dq_bytes(&L->gate)) : i == DQ_WO || i == DQ_DOWN ? off_b : 0;
}

/* The flags of matrix i's prefill GEMM (those record_step passes for it). */
static unsigned dq_mm_flags(const struct lg_model_config *c, int i) {
    return i == DQ_QKV ? (c->qkv_bias ? MM_BIAS : 0) : i == DQ_WO || i == DQ_DOWN ? MM_ACC : 0;
}

/* Whether the prefill GEMM on w (the matrix it multiplies: the weights or their f16
 * copy) reads x from xh; and the flag matrix i's GEMM adds for it: the ones whose x is
 * the norm's output. */
static int gemm_xh(const struct llmgpu_session *s, const struct lg_wtensor *w) {
    return s->xh_on && use_coopmat(s->ctx, w);
}
static unsigned xh_flag(const struct llmgpu_session *s, int i, const struct lg_wtensor *w) {
    return (i == DQ_QKV || i == DQ_GATE || i == DQ_UP) && gemm_xh(s, w) ? MM_XH : 0;
}

/* Whether sessions of n_batch on m make the copies; if so, the scratch's bytes and
 * region B's offset (else 0 and 0): the copies need the flag, block-quantized
 * matrices, chunks that take the GEMM path, and each copy within one binding. */
static int dq_plan(const struct llmgpu_model *m, uint32_t n_batch, uint64_t *bytes,
                   uint64_t *off_b) {
    const struct llmgpu_context *ctx = m->ctx;
    uint64_t a = 0, b = 0;
    *bytes = *off_b = 0;
    if (!ctx || !(ctx->flags & LLMGPU_CONTEXT_FLAG_PREFILL_DEQUANT) ||
        (ctx->flags & LLMGPU_CONTEXT_FLAG_NO_PREFILL_DEQUANT) || m->vocab_only || n_batch < 2)
        return 0;
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        const struct lg_layer *L = &m->layers[l];
        for (int i = 0; i < DQ_N; i++) {
            uint64_t n = dq_bytes(dq_w(L, i)), end = dq_off(L, i, 0) + n;
            if (n > ctx->max_binding)
                return 0;
            if (i == DQ_WO || i == DQ_DOWN)
                b = LG_MAX(b, end);
            else
                a = LG_MAX(a, end);
        }
    }
    if (a + b == 0)
        return 0;
    *off_b = DQ_ALIGN(a);
    *bytes = *off_b + b;
    return 1;
}

int lg_prefill_dq(const struct llmgpu_model *m, uint32_t n_batch, uint64_t *bytes) {
    uint64_t off_b;
    return dq_plan(m, n_batch, bytes, &off_b);
}

/* Matrix w read from the session's f16 copy: one shard of all its rows. */
static void dq_view(const struct llmgpu_session *s, const struct lg_wtensor *w,
                    struct lg_wshard *sh, struct lg_wtensor *v) {
    memset(sh, 0, sizeof *sh);
    sh->buf = s->dq;
    sh->rows = w->rows;
    *v = (struct lg_wtensor){w->rows, w->cols, LG_WTYPE_F16, 1, sh, 0};
}

/* Rows per workgroup of the decode mat-vec. With subgroup arithmetic, block-quantized
 * weights use matvec.comp's SG_ROWS mode (a subgroup per LG_MATVEC_ROWS rows, lanes
 * splitting K: no workgroup barrier per row, more bytes per lane); float weights keep
 * the workgroup-per-rows mode that PLATFORM.md measured at 88-101 % of the streaming
 * rate. LLMGPU_CONTEXT_FLAG_MATVEC_SUBGROUP (all types) or _WORKGROUP (none)
 * override, for measurements. */
static int mv_subgroup_rows(const struct llmgpu_context *ctx, const struct lg_wtensor *w) {
    if (!ctx->caps.subgroup_arith || ctx->caps.subgroup_size == 0 ||
        wg_size(ctx) % ctx->caps.subgroup_size ||
        (ctx->flags & LLMGPU_CONTEXT_FLAG_MATVEC_WORKGROUP))
        return 0;
    if (ctx->flags & LLMGPU_CONTEXT_FLAG_MATVEC_SUBGROUP)
        return 1;
    return lg_wtype_is_block(w->type);
}
/* Workgroup size of the subgroup-row mat-vecs on GPUs (a build-time knob for
 * measurements; wg_size() on CPU devices and in workgroup mode). */
#ifndef LG_MATVEC_SG_WG
#define LG_MATVEC_SG_WG 256
#endif
static uint32_t mv_wg_size(const struct llmgpu_context *ctx, const struct lg_wtensor *w) {
    uint32_t n = LG_MATVEC_SG_WG;
    if (!mv_subgroup_rows(ctx, w) || ctx->info.type == LLMGPU_DEVICE_TYPE_CPU ||
        n % ctx->caps.subgroup_size || n > ctx->props.limits.maxComputeWorkGroupSize[0])
        return wg_size(ctx);
    return n;
}
static uint32_t mv_rows_per_wg(const struct llmgpu_context *ctx, const struct lg_wtensor *w) {
    if (!mv_subgroup_rows(ctx, w))
        return LG_MATVEC_ROWS;
    return LG_MATVEC_ROWS * (mv_wg_size(ctx, w) / ctx->caps.subgroup_size);
}

/* Integer dot products for this decode mat-vec (matvec.comp IDOT): asked for
 * (LLMGPU_CONTEXT_FLAG_MATVEC_INT_DOT) or accelerated by the device, not refused
 * (LLMGPU_CONTEXT_FLAG_MATVEC_FLOAT_DOT), supported, an int8 or nibble type, and x's
 * int8 copy (K bytes, K / 4 bytes of f32 scales, as many of int sums for the nibble
 * types) plus the reduction scratch fit in shared memory. */
static int mv_int_dot(const struct llmgpu_context *ctx, const struct lg_wtensor *w) {
    uint64_t shared;
    int want = (ctx->flags & LLMGPU_CONTEXT_FLAG_MATVEC_INT_DOT) || ctx->caps.int_dot_accel;
    if (!want || (ctx->flags & LLMGPU_CONTEXT_FLAG_MATVEC_FLOAT_DOT) || !ctx->caps.int_dot ||
        (w->type != LG_WTYPE_Q8_0 && w->type != LG_WTYPE_Q4_0 && w->type != LG_WTYPE_Q4_K &&
         w->type != LG_WTYPE_Q4_G) ||
        w->cols % 16)
        return 0;
    shared = (uint64_t)w->cols + (uint64_t)w->cols / 16 * (w->type == LG_WTYPE_Q8_0 ? 4 : 8) +
             4ull * mv_wg_size(ctx, w) * (mv_subgroup_rows(ctx, w) ? 1 : 2 * LG_MATVEC_ROWS);
    return shared <= ctx->props.limits.maxComputeSharedMemorySize;
}

/* q4_0 integer-dot mat-vecs take a whole 32-value block a lane a step (matvec.comp
 * BLK32): 6-7 % faster decode on the H100 than 16-value units (bench/RESULTS.md,
 * session 8; q8_0 gained nothing measurable, so it keeps its units). A build knob:
 * 0 restores the 16-value units, for measurements. */
#ifndef LG_MATVEC_BLK32
#define LG_MATVEC_BLK32 1
#endif

static enum llmgpu_status mm_pipeline(struct llmgpu_session *s, const struct lg_wtensor *w,
                                      unsigned flags, struct lg_pipeline **out) {
    char st[25][48];
    struct lg_pipeline_desc d;
    int cm = (flags & MM_GEMM) && use_coopmat(s->ctx, w);
    base_desc(s->ctx, &d, st,
              cm ? "matmul_cm.comp" : (flags & MM_GEMM) ? "matmul.comp" : "matvec.comp",
              (flags & MM_ROPE) ? 10 : (flags & MM_NORM) ? 6 : (flags & MM_GATE_UP) ? 5 : 4,
              sizeof(struct lg_mm_push));
    if (cm) {
        struct lg_cm_cfg c;
        cm_config(s->ctx, w, (flags & MM_CM_BIG) != 0, &c);
        d.required_subgroup_size = 32;
        lg_desc_define(&d, st[18], "BM", c.bm);
        lg_desc_define(&d, st[19], "BN", c.bn);
        lg_desc_define(&d, st[20], "BK", c.bk);
        lg_desc_define(&d, st[21], "NSG", c.nsg);
        lg_desc_define(&d, st[22], "WR", c.wr);
        lg_desc_define(&d, st[23], "DB", c.db);
        if (flags & MM_XH)
            lg_desc_define(&d, st[24], "XF16", 1);
    }
    lg_desc_define(&d, st[2], "K", w->cols);
    lg_desc_define(&d, st[3], "WTYPE", w->type);
    lg_desc_define(&d, st[4], "HAS_BIAS", (flags & MM_BIAS) != 0);
    lg_desc_define(&d, st[5], "ACCUMULATE", (flags & MM_ACC) != 0);
    lg_desc_define(&d, st[6], "GATE_UP", (flags & MM_GATE_UP) != 0);
    lg_desc_define(&d, st[7], "ROWS", LG_MATVEC_ROWS);
    lg_desc_define(&d, st[8], "NORM", (flags & MM_NORM) != 0);
    if (flags & MM_NORM)
        define_eps(&d, st[9], s->model->cfg.rms_norm_eps);
    lg_desc_define(&d, st[10], "ROPE_KV", (flags & MM_ROPE) != 0);
    if (!(flags & MM_GEMM)) {
        int sg = mv_subgroup_rows(s->ctx, w);
        snprintf(st[0], sizeof st[0], "WG_SIZE=%u", mv_wg_size(s->ctx, w)); /* base_desc's */
        lg_desc_define(&d, st[14], "SG_ROWS", sg);
        lg_desc_define(&d, st[15], "RPW", mv_rows_per_wg(s->ctx, w));
        if (mv_int_dot(s->ctx, w)) {
            lg_desc_define(&d, st[17], "IDOT", 1);
            if (LG_MATVEC_BLK32 && w->type == LG_WTYPE_Q4_0)
                lg_desc_define(&d, st[18], "BLK32", 1);
        }
    }
    if (flags & MM_ROPE) {
        lg_desc_define(&d, st[11], "HD", s->model->cfg.head_dim);
        lg_desc_define(&d, st[12], "NH", s->model->cfg.n_head);
        lg_desc_define(&d, st[13], "NKV", s->model->cfg.n_kv_head);
    }
    if (w->type == LG_WTYPE_Q4_G)
        lg_desc_define(&d, st[16], "GROUP", w->group);
    return lg_pipeline_get(s->ctx, &d, out);
}

static enum llmgpu_status norm_pipeline(struct llmgpu_session *s, struct lg_pipeline **out) {
    char st[5][48];
    struct lg_pipeline_desc d;
    base_desc(s->ctx, &d, st, "rms_norm.comp", s->xh_on ? 4 : 3, 8);
    lg_desc_define(&d, st[2], "N", s->model->cfg.n_embd);
    define_eps(&d, st[3], s->model->cfg.rms_norm_eps);
    if (s->xh_on)
        lg_desc_define(&d, st[4], "YH", 1);
    return lg_pipeline_get(s->ctx, &d, out);
}

static enum llmgpu_status dq_pipeline(struct llmgpu_session *s, const struct lg_wtensor *w,
                                      struct lg_pipeline **out) {
    char st[6][48];
    struct lg_pipeline_desc d;
    base_desc(s->ctx, &d, st, "dequant.comp", 2, 8);
    lg_desc_define(&d, st[2], "K", w->cols);
    lg_desc_define(&d, st[3], "WTYPE", w->type);
    lg_desc_define(&d, st[4], "F16ARITH", s->ctx->caps.fp16 != 0);
    if (w->type == LG_WTYPE_Q4_G)
        lg_desc_define(&d, st[5], "GROUP", w->group);
    return lg_pipeline_get(s->ctx, &d, out);
}

/* Prefill attention on tensor cores (attn_cm.comp) where the prefill GEMMs use them
 * (NV cooperative matrices, f16, 32-wide subgroups) and the model has no sliding
 * window and a head size of at most 128, a multiple of 16; attn.comp otherwise. On the
 * H100 it takes the 512-token prefill attention from 10.8 to 3.7 ms on 7B, 3.0 to 1.5
 * ms on TinyLlama (bench/RESULTS.md, session 9). LG_ATTN_CM=0 (a build knob, for
 * measurements) keeps attn.comp. */
#ifndef LG_ATTN_CM
#define LG_ATTN_CM 1
#endif
#ifndef LG_ATTN_CM_NSG
#define LG_ATTN_CM_NSG 4 /* subgroups (of 16 queries) a workgroup: 1, 2 or 4 */
#endif
static int use_attn_cm(const struct llmgpu_session *s) {
    const struct llmgpu_context *ctx = s->ctx;
    const struct lg_model_config *c = &s->model->cfg;
    uint32_t hd = c->head_dim, ldk = (hd + 8) / 8;
    /* attn_cm.comp's shared arrays (key tiles of 32): kvs (K and V tiles, rows of ldk
     * uvec4s), ss (16 x 32 floats a subgroup), ps (16 rows of 5 uvec4s a subgroup) */
    uint64_t shared = 2ull * 32 * ldk * 16 + LG_ATTN_CM_NSG * 16 * 32 * 4 +
                      LG_ATTN_CM_NSG * 16 * 5 * 16;
    return LG_ATTN_CM && ctx->caps.coopmat_nv && ctx->caps.fp16 && ctx->caps.storage16 &&
           ctx->caps.subgroup_size == 32 && ctx->caps.subgroup_shuffle &&
           !(ctx->flags & LLMGPU_CONTEXT_FLAG_NO_COOPMAT) && c->sliding_window == 0 &&
           hd % 16 == 0 && hd <= 128 && shared <= ctx->props.limits.maxComputeSharedMemorySize;
}
/* Queries a workgroup of prefill attention. */
static uint32_t attn_bq(const struct llmgpu_session *s) {
    return use_attn_cm(s) ? 16 * LG_ATTN_CM_NSG : lg_attn_bq(s->model->cfg.head_dim);
}

/* Heads a workgroup of rope_kv.comp: as many as its invocations hold (each takes one of
 * a head's HD/2 pairs), so that a 64-wide head no longer leaves 224 of 256 invocations
 * idle (TinyLlama's 512-token prefill: RoPE 0.48 ms of 12.0 before); one with the q8
 * cache, whose blocks go through shared memory a head at a time. */
static uint32_t rope_hpw(const struct llmgpu_session *s) {
    uint32_t half = s->model->cfg.head_dim / 2, wg = wg_size(s->ctx);
    return s->kv_q8 || half == 0 || half >= wg ? 1 : wg / half;
}

static enum llmgpu_status attn_pipeline(struct llmgpu_session *s, const char *kernel,
                                        uint32_t n_bindings, struct lg_pipeline **out) {
    const struct lg_model_config *c = &s->model->cfg;
    char st[12][48];
    struct lg_pipeline_desc d;
    int cm = !strcmp(kernel, "attn.comp") && use_attn_cm(s);
    base_desc(s->ctx, &d, st, cm ? "attn_cm.comp" : kernel, n_bindings, 0);
    lg_desc_define(&d, st[2], "HD", c->head_dim);
    lg_desc_define(&d, st[3], "NH", c->n_head);
    lg_desc_define(&d, st[4], "NKV", c->n_kv_head);
    lg_desc_define(&d, st[5], "WINDOW", c->sliding_window);
    if (cm) {
        d.required_subgroup_size = 32;
        lg_desc_define(&d, st[6], "NSG", LG_ATTN_CM_NSG);
    } else if (!strcmp(kernel, "attn.comp")) {
        lg_desc_define(&d, st[6], "BQ", lg_attn_bq(c->head_dim));
    } else if (!strcmp(kernel, "rope_kv.comp")) {
        lg_desc_define(&d, st[6], "HPW", rope_hpw(s));
    }
    if (!strcmp(kernel, "attn_split.comp")) { /* a block of keys a workgroup: defines[0] */
        snprintf(st[0], sizeof st[0], "WG_SIZE=%u", LG_ATTN_SPLIT_WG);
        lg_desc_define(&d, st[6], "GQ", lg_attn_split_gq(c->n_head, c->n_kv_head));
        lg_desc_define(&d, st[7], "NSPLIT", attn_splits(s));
        lg_desc_define(&d, st[8], "MIN_LEN", LG_ATTN_SPLIT_MIN_LEN);
#ifdef LG_ATTN_SPLIT_CU /* build knob: splits a step of the combination (kernel: 16) */
        lg_desc_define(&d, st[9], "CU", LG_ATTN_SPLIT_CU);
#elif defined(LG_ATTN_SPLIT_K16) /* build knob: f16 K rows by 16-byte loads */
        lg_desc_define(&d, st[9], "K16", LG_ATTN_SPLIT_K16);
#endif
    }
    if (s->kv_q8) {
        lg_desc_define(&d, st[10], "KV_Q8", 1);
        lg_desc_define(&d, st[11], "KV_RS", (long)lg_kv_row_bytes(c->n_kv_head, c->head_dim, 1));
    }
    return lg_pipeline_get(s->ctx, &d, out);
}

static enum llmgpu_status embed_pipeline(struct llmgpu_session *s, struct lg_pipeline **out) {
    char st[4][48];
    struct lg_pipeline_desc d;
    base_desc(s->ctx, &d, st, "embed.comp", 3, 8);
    lg_desc_define(&d, st[2], "N_EMBD", s->model->cfg.n_embd);
    lg_desc_define(&d, st[3], "WTYPE", s->model->tok_embd.type);
    return lg_pipeline_get(s->ctx, &d, out);
}

static enum llmgpu_status silu_pipeline(struct llmgpu_session *s, struct lg_pipeline **out) {
    char st[3][48];
    struct lg_pipeline_desc d;
    base_desc(s->ctx, &d, st, "silu_mul.comp", 2, 4);
    lg_desc_define(&d, st[2], "F", s->model->cfg.n_ff);
    return lg_pipeline_get(s->ctx, &d, out);
}

static enum llmgpu_status argmax_pipeline(struct llmgpu_session *s, struct lg_pipeline **out) {
    char st[2][48];
    struct lg_pipeline_desc d;
    base_desc(s->ctx, &d, st, "argmax.comp", 2, 4);
    return lg_pipeline_get(s->ctx, &d, out);
}

/* ---- rope table, as transformers' LlamaRotaryEmbedding computes it ---- */

static void rope_inv_freq(const struct lg_model_config *c, float *inv) {
    uint32_t half = c->head_dim / 2;
    for (uint32_t i = 0; i < half; i++) {
        /* 1 / base^(2i/d), in f32 like torch */
        float e = (float)(2 * i) / (float)c->head_dim;
        inv[i] = 1.0f / (float)pow((double)c->rope_theta, (double)e);
    }
    if (c->rope_scaling == LG_ROPE_SCALING_LINEAR) {
        for (uint32_t i = 0; i < half; i++)
            inv[i] /= c->rope_factor;
    } else if (c->rope_scaling == LG_ROPE_SCALING_LLAMA3) {
        /* _compute_llama3_parameters */
        float old = (float)c->rope_orig_ctx;
        float low_wl = old / c->rope_low_freq_factor, high_wl = old / c->rope_high_freq_factor;
        for (uint32_t i = 0; i < half; i++) {
            float wl = 2.0f * (float)M_PI / inv[i];
            float f = wl > low_wl ? inv[i] / c->rope_factor : inv[i];
            if (!(wl < high_wl) && !(wl > low_wl)) {
                float sm = (old / wl - c->rope_low_freq_factor) /
                           (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1.0f - sm) * f / c->rope_factor + sm * f;
            }
            inv[i] = f;
        }
    }
}

static enum llmgpu_status make_rope_table(struct llmgpu_session *s) {
    const struct lg_model_config *c = &s->model->cfg;
    uint32_t half = c->head_dim / 2;
    size_t n = (size_t)s->kv_cap * half;
    float *inv = lg_malloc(&s->ctx->alloc, half * sizeof(float));
    float *tab = lg_malloc(&s->ctx->alloc, n * 2 * sizeof(float));
    enum llmgpu_status st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    if (inv && tab) {
        rope_inv_freq(c, inv);
        for (uint32_t p = 0; p < s->kv_cap; p++)
            for (uint32_t i = 0; i < half; i++) {
                float ang = (float)p * inv[i];
                tab[((size_t)p * half + i) * 2] = (float)cos((double)ang);
                tab[((size_t)p * half + i) * 2 + 1] = (float)sin((double)ang);
            }
        struct lg_buffer nb;
        st = lg_buffer_create(s->ctx, n * 8, LG_MEM_DEVICE, &nb);
        if (st == LLMGPU_OK)
            st = lg_buffer_upload(s->ctx, &nb, 0, tab, n * 8);
        if (st == LLMGPU_OK) {
            lg_buffer_destroy(s->ctx, &s->rope);
            s->rope = nb;
        } else {
            lg_buffer_destroy(s->ctx, &nb);
        }
    }
    lg_free(&s->ctx->alloc, inv);
    lg_free(&s->ctx->alloc, tab);
    return st;
}

/* ---- creation ---- */

#define LG_KV_PAGE 256u /* positions per KV-cache page */

void llmgpu_session_params_init(struct llmgpu_session_params *p) {
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
}

static enum llmgpu_status dset(struct llmgpu_session *s, struct lg_pipeline *p,
                               const struct lg_binding *b, uint32_t n, VkDescriptorSet *out) {
    return lg_dset_create(s->ctx, &s->pool, p, b, n, out);
}

/* Descriptor sets of one matrix: one per shard, x read from `in`, y written to `out`. */
static enum llmgpu_status mm_sets(struct llmgpu_session *s, const struct lg_wtensor *w,
                                  const struct lg_buffer *in, const struct lg_buffer *bias,
                                  const struct lg_buffer *out, const struct lg_wtensor *up,
                                  const struct lg_buffer *norm_w, VkDescriptorSet **sets) {
    struct lg_pipeline *p;
    enum llmgpu_status st =
        mm_pipeline(s, w, (up ? MM_GATE_UP : 0) | (norm_w ? MM_NORM : 0), &p);
    if (st != LLMGPU_OK)
        return st;
    *sets = lg_calloc(&s->ctx->alloc, w->n_shards, sizeof **sets);
    if (!*sets)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    for (uint32_t i = 0; i < w->n_shards; i++) {
        struct lg_binding b[6] = {{&w->shards[i].buf, 0, 0},
                                  {in, 0, 0},
                                  {bias && bias->buf ? bias : &s->model->dummy, 0, 0},
                                  {out, 0, 0},
                                  {up ? &up->shards[i].buf : &s->model->dummy, 0, 0},
                                  {norm_w ? norm_w : &s->model->dummy, 0, 0}};
        st = dset(s, p, b, norm_w ? 6 : up ? 5 : 4, &(*sets)[i]);
        if (st != LLMGPU_OK)
            return st;
    }
    return LLMGPU_OK;
}

/* Decode's Q/K/V mat-vec can apply RoPE and write the KV cache itself
 * (matvec.comp ROPE_KV) when every shard of every layer's [Q; K; V] starts and
 * ends on a head boundary, so a workgroup's rotate-half pair of rows lies in
 * one shard. LLMGPU_CONTEXT_FLAG_NO_FUSE_ROPE turns it off (to compare; the tests do). */
static int fuse_rope_ok(const struct llmgpu_model *m) {
    uint32_t hd = m->cfg.head_dim;
    if ((m->ctx->flags & LLMGPU_CONTEXT_FLAG_NO_FUSE_ROPE) || LG_MATVEC_ROWS != 2 || hd % 2)
        return 0;
    for (uint32_t l = 0; l < m->cfg.n_layer; l++)
        for (uint32_t i = 0; i < m->layers[l].wqkv.n_shards; i++) {
            const struct lg_wshard *sh = &m->layers[l].wqkv.shards[i];
            if (sh->row_begin % hd || sh->rows % hd)
                return 0;
        }
    return 1;
}

/* The fused decode Q/K/V sets of layer l: matvec.comp's bindings 0-5 as for
 * qkv_dec, y = q, then step, rope table, and the layer's K and V caches. */
static enum llmgpu_status rope_sets(struct llmgpu_session *s, uint32_t l, VkDescriptorSet **sets) {
    const struct lg_layer *L = &s->model->layers[l];
    const struct lg_wtensor *w = &L->wqkv;
    struct lg_pipeline *p;
    enum llmgpu_status st = mm_pipeline(s, w, MM_NORM | MM_ROPE, &p);
    if (st != LLMGPU_OK)
        return st;
    *sets = lg_calloc(&s->ctx->alloc, w->n_shards, sizeof **sets);
    if (!*sets)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    for (uint32_t i = 0; i < w->n_shards; i++) {
        struct lg_binding b[10] = {{&w->shards[i].buf, 0, 0},
                                   {&s->x, 0, 0},
                                   {L->bqkv.buf ? &L->bqkv : &s->model->dummy, 0, 0},
                                   {&s->q, 0, 0},
                                   {&s->model->dummy, 0, 0},
                                   {&L->attn_norm, 0, 0},
                                   {&s->step, 0, 0},
                                   {&s->rope, 0, 0},
                                   {&s->kc[l], 0, 0},
                                   {&s->vc[l], 0, 0}};
        st = dset(s, p, b, 10, &(*sets)[i]);
        if (st != LLMGPU_OK)
            return st;
    }
    return LLMGPU_OK;
}

static uint32_t shards_total(const struct llmgpu_model *m) {
    uint32_t n = m->tok_embd.n_shards + m->lm_head.n_shards;
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        const struct lg_layer *L = &m->layers[l];
        n += 3 * L->wqkv.n_shards + L->wo.n_shards + 3 * L->gate.n_shards + L->down.n_shards;
    }
    return n;
}

/* Layer l's sets of the dequantized prefill (lg_prefill_dq): for each block-quantized
 * matrix, dequant.comp's per shard (shard -> its rows of the copy) and the GEMM's on
 * the copy, with the inputs and outputs of the matrix's own prefill sets. */
static enum llmgpu_status dq_sets(struct llmgpu_session *s, uint32_t l) {
    const struct lg_layer *L = &s->model->layers[l];
    struct layer_sets *S = &s->ls[l];
    const struct lg_buffer *in[DQ_N] = {&s->xb, &s->att, &s->xb, &s->xb, &s->hb};
    const struct lg_buffer *out[DQ_N] = {&s->qkv, &s->x, &s->gu, &s->gu, &s->x};
    enum llmgpu_status st;
    for (int i = 0; i < DQ_N; i++) {
        const struct lg_wtensor *w = dq_w(L, i);
        const struct lg_buffer *bias = i == DQ_QKV && L->bqkv.buf ? &L->bqkv : &s->model->dummy;
        struct lg_wshard sh;
        struct lg_wtensor v;
        struct lg_pipeline *p;
        unsigned xh;
        if (!dq_bytes(w))
            continue;
        st = dq_pipeline(s, w, &p);
        if (st != LLMGPU_OK)
            return st;
        S->dq_deq[i] = lg_calloc(&s->ctx->alloc, w->n_shards, sizeof *S->dq_deq[i]);
        if (!S->dq_deq[i])
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        for (uint32_t j = 0; j < w->n_shards; j++) {
            struct lg_binding b[2] = {{&w->shards[j].buf, 0, 0},
                                      {&s->dq, dq_off(L, i, s->dq_off_b), dq_bytes(w)}};
            st = dset(s, p, b, 2, &S->dq_deq[i][j]);
            if (st != LLMGPU_OK)
                return st;
        }
        dq_view(s, w, &sh, &v);
        xh = xh_flag(s, i, &v);
        st = mm_pipeline(s, &v,
                         dq_mm_flags(&s->model->cfg, i) | xh | gemm_flags(s->ctx, &v, s->n_batch),
                         &p);
        if (st == LLMGPU_OK) {
            struct lg_binding b[4] = {{&s->dq, dq_off(L, i, s->dq_off_b), dq_bytes(w)},
                                      {xh ? &s->xh : in[i], 0, 0},
                                      {bias, 0, 0},
                                      {out[i], 0, 0}};
            st = dset(s, p, b, 4, &S->dq_mm[i]);
        }
        if (st != LLMGPU_OK)
            return st;
    }
    return LLMGPU_OK;
}

static enum llmgpu_status create_sets(struct llmgpu_session *s) {
    const struct llmgpu_model *m = s->model;
    const struct lg_model_config *c = &m->cfg;
    struct lg_pipeline *p_embed, *p_norm, *p_rope, *p_attn, *p_silu, *p_argmax, *p_split;
    enum llmgpu_status st;
    uint32_t max_sets = shards_total(m) + 8 * c->n_layer + 4;
    if (s->dq_on) /* dq_sets: at most a set per shard and one more per matrix */
        max_sets += shards_total(m) + DQ_N * c->n_layer;

#define TRY(x)                                                                                   \
    do {                                                                                         \
        st = (x);                                                                                \
        if (st != LLMGPU_OK)                                                                     \
            return st;                                                                           \
    } while (0)
    TRY(lg_dpool_create(s->ctx, max_sets, &s->pool));
    TRY(embed_pipeline(s, &p_embed));
    TRY(norm_pipeline(s, &p_norm));
    TRY(attn_pipeline(s, "rope_kv.comp", 6, &p_rope));
    TRY(attn_pipeline(s, "attn.comp", 5, &p_attn));
    TRY(attn_pipeline(s, "attn_split.comp", 7, &p_split));
    TRY(silu_pipeline(s, &p_silu));
    TRY(argmax_pipeline(s, &p_argmax));

    s->embed_sets = lg_calloc(&s->ctx->alloc, m->tok_embd.n_shards, sizeof *s->embed_sets);
    s->ls = lg_calloc(&s->ctx->alloc, c->n_layer, sizeof *s->ls);
    if (!s->embed_sets || !s->ls)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    for (uint32_t i = 0; i < m->tok_embd.n_shards; i++) {
        struct lg_binding b[3] = {{&s->step, 0, 0}, {&m->tok_embd.shards[i].buf, 0, 0},
                                  {&s->x, 0, 0}};
        TRY(dset(s, p_embed, b, 3, &s->embed_sets[i]));
    }
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const struct lg_layer *L = &m->layers[l];
        struct layer_sets *S = &s->ls[l];
        {
            struct lg_binding b[4] = {{&s->x, 0, 0}, {&L->attn_norm, 0, 0}, {&s->xb, 0, 0},
                                      {&s->xh, 0, 0}};
            TRY(dset(s, p_norm, b, s->xh_on ? 4 : 3, &S->norm1));
            b[1].buf = &L->ffn_norm;
            TRY(dset(s, p_norm, b, s->xh_on ? 4 : 3, &S->norm2));
        }
        TRY(mm_sets(s, &L->wqkv, gemm_xh(s, &L->wqkv) ? &s->xh : &s->xb, &L->bqkv, &s->qkv, NULL,
                    NULL, &S->qkv));
        TRY(mm_sets(s, &L->wqkv, &s->x, &L->bqkv, &s->qkv, NULL, &L->attn_norm, &S->qkv_dec));
        if (s->fuse_rope)
            TRY(rope_sets(s, l, &S->qkv_rope));
        {
            struct lg_binding b[6] = {{&s->step, 0, 0}, {&s->qkv, 0, 0}, {&s->rope, 0, 0},
                                      {&s->q, 0, 0},    {&s->kc[l], 0, 0}, {&s->vc[l], 0, 0}};
            TRY(dset(s, p_rope, b, 6, &S->rope));
        }
        {
            struct lg_binding b[7] = {{&s->step, 0, 0}, {&s->q, 0, 0}, {&s->kc[l], 0, 0},
                                      {&s->vc[l], 0, 0}, {&s->att, 0, 0}, {&s->att, 0, 0},
                                      {&s->cnt, 0, 0}};
            TRY(dset(s, p_attn, b, 5, &S->attn));
            b[4].buf = &s->part;
            TRY(dset(s, p_split, b, 7, &S->attn_split));
        }
        TRY(mm_sets(s, &L->wo, &s->att, NULL, &s->x, NULL, NULL, &S->wo));
        TRY(mm_sets(s, &L->gate, gemm_xh(s, &L->gate) ? &s->xh : &s->xb, NULL, &s->gu, NULL, NULL,
                    &S->gate));
        TRY(mm_sets(s, &L->up, gemm_xh(s, &L->up) ? &s->xh : &s->xb, NULL, &s->gu, NULL, NULL,
                    &S->up));
        TRY(mm_sets(s, &L->gate, &s->x, NULL, &s->hb, &L->up, &L->ffn_norm, &S->gate_up));
        {
            struct lg_binding b[2] = {{&s->gu, 0, 0}, {&s->hb, 0, 0}};
            TRY(dset(s, p_silu, b, 2, &S->silu));
        }
        TRY(mm_sets(s, &L->down, &s->hb, NULL, &s->x, NULL, NULL, &S->down));
        if (s->dq_on)
            TRY(dq_sets(s, l));
    }
    TRY(mm_sets(s, &m->lm_head, &s->x, NULL, &s->logits, NULL, &m->out_norm, &s->lm_sets));
    {
        struct lg_binding b[2] = {{&s->logits, 0, 0}, {&s->result, 0, 0}};
        TRY(dset(s, p_argmax, b, 2, &s->argmax));
    }
    return LLMGPU_OK;
}

/* Free the descriptor sets (the pool and the per-shard arrays). */
static void destroy_sets(struct llmgpu_session *s) {
    const struct lg_alloc *a = &s->ctx->alloc;
    lg_dpool_destroy(s->ctx, &s->pool);
    if (s->ls) {
        for (uint32_t l = 0; l < s->model->cfg.n_layer; l++) {
            struct layer_sets *S = &s->ls[l];
            lg_free(a, S->qkv);
            lg_free(a, S->wo);
            lg_free(a, S->gate);
            lg_free(a, S->up);
            lg_free(a, S->gate_up);
            lg_free(a, S->qkv_dec);
            lg_free(a, S->qkv_rope);
            lg_free(a, S->down);
            for (int i = 0; i < DQ_N; i++)
                lg_free(a, S->dq_deq[i]);
        }
        lg_free(a, s->ls);
    }
    lg_free(a, s->embed_sets);
    lg_free(a, s->lm_sets);
    s->ls = NULL;
    s->embed_sets = s->lm_sets = NULL;
    s->sets_ok = 0;
    s->decode_recorded = 0; /* the recordings name these sets */
    s->prefill_recorded = 0;
}

/*
 * The KV cache grows in pages of LG_KV_PAGE positions, doubling, up to n_ctx:
 * a session costs what it uses. Growing allocates the new per-layer buffers
 * (and the rope table and attention partials sized by capacity), copies the
 * valid rows [0, pos), then frees the old ones; descriptor sets are remade and
 * the decode command buffer re-recorded. On failure the session keeps its old
 * buffers and stays usable.
 */
static enum llmgpu_status grow_kv(struct llmgpu_session *s, uint32_t need) {
    const struct lg_model_config *c = &s->model->cfg;
    struct llmgpu_context *ctx = s->ctx;
    uint64_t row = lg_kv_row_bytes(c->n_kv_head, c->head_dim, s->kv_q8);
    uint32_t cap = s->kv_cap ? s->kv_cap : LG_KV_PAGE, old_cap = s->kv_cap;
    struct lg_buffer *nk = NULL, *nv = NULL;
    enum llmgpu_status st = LLMGPU_OK;

    if (need <= s->kv_cap)
        return LLMGPU_OK;
    while (cap < need)
        cap *= 2;
    cap = LG_MIN(LG_ALIGN_UP(cap, LG_KV_PAGE), s->n_ctx);
    nk = lg_calloc(&ctx->alloc, c->n_layer, sizeof *nk);
    nv = lg_calloc(&ctx->alloc, c->n_layer, sizeof *nv);
    if (!nk || !nv) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto fail;
    }
    for (uint32_t l = 0; l < c->n_layer && st == LLMGPU_OK; l++) {
        st = lg_buffer_create(ctx, cap * row, LG_MEM_DEVICE, &nk[l]);
        if (st == LLMGPU_OK)
            st = lg_buffer_create(ctx, cap * row, LG_MEM_DEVICE, &nv[l]);
    }
    if (st != LLMGPU_OK)
        goto fail;
    if (s->pos > 0 && s->kv_cap > 0) {
        struct lg_cmd cmd;
        VkBufferCopy region = {0, 0, (VkDeviceSize)LG_MIN(s->pos, s->kv_cap) * row};
        st = lg_cmd_create(ctx, &cmd);
        if (st == LLMGPU_OK)
            st = lg_cmd_begin(ctx, &cmd, 1);
        if (st == LLMGPU_OK) {
            lg_cmd_barrier_transfer(cmd.cb);
            for (uint32_t l = 0; l < c->n_layer; l++) {
                vkCmdCopyBuffer(cmd.cb, s->kc[l].buf, nk[l].buf, 1, &region);
                vkCmdCopyBuffer(cmd.cb, s->vc[l].buf, nv[l].buf, 1, &region);
            }
            lg_cmd_barrier_transfer(cmd.cb);
            st = lg_cmd_end(ctx, &cmd);
        }
        if (st == LLMGPU_OK)
            st = lg_cmd_submit_wait(ctx, &cmd);
        lg_cmd_destroy(ctx, &cmd);
        if (st != LLMGPU_OK)
            goto fail;
    }
    s->kv_cap = cap;
    st = make_rope_table(s); /* replaces the table only on success */
    if (st != LLMGPU_OK) {
        s->kv_cap = old_cap;
        goto fail;
    }
    lg_vk_wait_idle(ctx); /* nothing may still use the old buffers */
    destroy_sets(s);
    for (uint32_t l = 0; l < c->n_layer; l++) {
        lg_buffer_destroy(ctx, &s->kc[l]);
        lg_buffer_destroy(ctx, &s->vc[l]);
        s->kc[l] = nk[l];
        s->vc[l] = nv[l];
    }
    lg_free(&ctx->alloc, nk);
    lg_free(&ctx->alloc, nv);
    lg_dbg(&ctx->log, "KV cache grown to %u of %u positions", cap, s->n_ctx);
    return LLMGPU_OK;
fail:
    for (uint32_t l = 0; nk && nv && l < c->n_layer; l++) {
        lg_buffer_destroy(ctx, &nk[l]);
        lg_buffer_destroy(ctx, &nv[l]);
    }
    lg_free(&ctx->alloc, nk);
    lg_free(&ctx->alloc, nv);
    return st;
}

static enum llmgpu_status create_buffers(struct llmgpu_session *s) {
    const struct lg_model_config *c = &s->model->cfg;
    uint64_t B = s->n_batch, E = c->n_embd, HD = c->head_dim;
    uint64_t qkv_w = (uint64_t)(c->n_head + 2 * c->n_kv_head) * HD;
    uint64_t kv_bytes = (uint64_t)s->n_ctx * lg_kv_row_bytes(c->n_kv_head, c->head_dim, s->kv_q8);
    enum llmgpu_status st;
    struct {
        struct lg_buffer *b;
        uint64_t bytes;
        enum lg_mem_kind kind;
    } bufs[] = {
        {&s->step, sizeof(struct lg_step) + B * 4, LG_MEM_UPLOAD},
        {&s->x, B * E * 4, LG_MEM_DEVICE},
        {&s->xb, B * E * 4, LG_MEM_DEVICE},
        {&s->qkv, B * qkv_w * 4, LG_MEM_DEVICE},
        {&s->q, B * c->n_head * HD * 4, LG_MEM_DEVICE},
        {&s->att, B * c->n_head * HD * 4, LG_MEM_DEVICE},
        {&s->gu, B * 2 * (uint64_t)c->n_ff * 4, LG_MEM_DEVICE},
        {&s->hb, B * c->n_ff * 4, LG_MEM_DEVICE},
        {&s->logits, (uint64_t)c->n_vocab * 4, LG_MEM_DEVICE},
        {&s->logits_host, (uint64_t)c->n_vocab * 4, LG_MEM_HOST},
        {&s->result, 16, LG_MEM_HOST},
        {&s->cnt, (uint64_t)c->n_head * 4, LG_MEM_DEVICE},
        {&s->part, 4 * lg_attn_split_part_floats(c->n_head, c->n_kv_head, HD, s->n_ctx),
         LG_MEM_DEVICE},
        {&s->xh, 0, LG_MEM_DEVICE},
        {&s->dq, 0, LG_MEM_DEVICE},
    };
    s->xh_on = lg_prefill_xh(s->model, s->n_batch);
    if (s->xh_on)
        bufs[LG_ARRAY_LEN(bufs) - 2].bytes = B * E * 2;
    s->dq_on = dq_plan(s->model, s->n_batch, &bufs[LG_ARRAY_LEN(bufs) - 1].bytes, &s->dq_off_b);
    if (s->dq_on)
        lg_dbg(&s->ctx->log, "prefill GEMMs read f16 copies of the quantized weights "
                             "(a scratch of %llu bytes)",
               (unsigned long long)bufs[LG_ARRAY_LEN(bufs) - 1].bytes);
    for (size_t i = 0; i < LG_ARRAY_LEN(bufs); i++) {
        if (bufs[i].bytes == 0)
            continue; /* dq where no prefill reads copies, xh where none reads f16 x */
        /* dq is bound a matrix at a time (dq_plan keeps each within the limit) */
        if (bufs[i].b != &s->dq && bufs[i].bytes > s->ctx->max_binding) {
            lg_err(&s->ctx->log, "session buffer of %llu bytes exceeds the binding limit; "
                                 "use a smaller n_batch",
                   (unsigned long long)bufs[i].bytes);
            return LLMGPU_ERR_UNSUPPORTED;
        }
        st = lg_buffer_create(s->ctx, bufs[i].bytes, bufs[i].kind, bufs[i].b);
        if (st != LLMGPU_OK)
            return st;
    }
    { /* attn_split.comp's counters start at 0 (and it leaves them at 0) */
        uint32_t *z = lg_calloc(&s->ctx->alloc, c->n_head, 4);
        if (!z)
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        st = lg_buffer_upload(s->ctx, &s->cnt, 0, z, (uint64_t)c->n_head * 4);
        lg_free(&s->ctx->alloc, z);
        if (st != LLMGPU_OK)
            return st;
    }
    if (kv_bytes > s->ctx->max_binding) {
        lg_err(&s->ctx->log, "a KV-cache layer of %llu bytes exceeds the binding limit of %llu; "
                             "use a smaller context",
               (unsigned long long)kv_bytes, (unsigned long long)s->ctx->max_binding);
        return LLMGPU_ERR_UNSUPPORTED;
    }
    s->kc = lg_calloc(&s->ctx->alloc, c->n_layer, sizeof *s->kc);
    s->vc = lg_calloc(&s->ctx->alloc, c->n_layer, sizeof *s->vc);
    if (!s->kc || !s->vc)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    return grow_kv(s, LG_MIN(s->n_ctx, LG_KV_PAGE));
}

static enum llmgpu_status prof_create(struct llmgpu_session *s, struct prof *pf) {
    VkQueryPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                .queryType = VK_QUERY_TYPE_TIMESTAMP};
    pf->cap = 8 * s->model->cfg.n_layer + 8;
    ci.queryCount = pf->cap;
    pf->stages = lg_calloc(&s->ctx->alloc, pf->cap, 1);
    if (!pf->stages)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    return lg_vk_check(s->ctx, vkCreateQueryPool(s->ctx->device, &ci, NULL, &pf->pool),
                       "vkCreateQueryPool");
}

static void prof_destroy(struct llmgpu_session *s, struct prof *pf) {
    if (pf->pool)
        vkDestroyQueryPool(s->ctx->device, pf->pool, NULL);
    lg_free(&s->ctx->alloc, pf->stages);
    memset(pf, 0, sizeof *pf);
}

void llmgpu_session_free(struct llmgpu_session *s) {
    struct llmgpu_context *ctx;
    const struct lg_alloc *a;
    if (!s)
        return;
    ctx = s->ctx;
    a = &ctx->alloc;
    lg_vk_wait_idle(ctx);
    lg_cmd_destroy(ctx, &s->decode_cmd);
    lg_cmd_destroy(ctx, &s->prefill_cmd);
    lg_cmd_destroy(ctx, &s->logits_cmd);
    lg_sample_cache_free(ctx, &s->sample_cache);
    prof_destroy(s, &s->prof_decode);
    prof_destroy(s, &s->prof_prefill);
    destroy_sets(s);
    for (uint32_t l = 0; l < s->model->cfg.n_layer; l++) {
        if (s->kc)
            lg_buffer_destroy(ctx, &s->kc[l]);
        if (s->vc)
            lg_buffer_destroy(ctx, &s->vc[l]);
    }
    lg_free(a, s->kc);
    lg_free(a, s->vc);
    {
        struct lg_buffer *bufs[] = {&s->step, &s->x,      &s->xb,     &s->qkv,  &s->q,
                                    &s->att,  &s->gu,     &s->hb,     &s->logits, &s->result,
                                    &s->rope, &s->part, &s->logits_host, &s->cnt, &s->dq,
                                    &s->xh};
        for (size_t i = 0; i < LG_ARRAY_LEN(bufs); i++)
            lg_buffer_destroy(ctx, bufs[i]);
    }
    atomic_fetch_sub(&s->model->n_sessions, 1);
    lg_free(a, s);
}

enum llmgpu_status llmgpu_session_create(struct llmgpu_model *model,
                                         const struct llmgpu_session_params *params,
                                         struct llmgpu_session **out) {
    struct llmgpu_session_params p;
    struct llmgpu_session *s;
    struct llmgpu_context *ctx;
    enum llmgpu_status st;
    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!model || (params && params->struct_size == 0))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    ctx = model->ctx;
    if (model->vocab_only) {
        lg_err(&ctx->log, "the model was loaded vocab-only: it has no weights for a session");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    if (atomic_load(&ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST;
    llmgpu_session_params_init(&p);
    if (params)
        memcpy(&p, params, LG_MIN(params->struct_size, (uint32_t)sizeof p));
    if (p.flags != 0)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (p.kv_type != LLMGPU_KV_TYPE_DEFAULT && p.kv_type != LLMGPU_KV_TYPE_F16 &&
        p.kv_type != LLMGPU_KV_TYPE_Q8_0) {
        lg_err(&ctx->log, "unknown KV-cache type %d", (int)p.kv_type);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    if (p.kv_type == LLMGPU_KV_TYPE_Q8_0 && model->cfg.head_dim % 32) {
        lg_err(&ctx->log, "a q8_0 KV cache needs a head_dim that is a multiple of 32 (it is %u)",
               model->cfg.head_dim);
        return LLMGPU_ERR_UNSUPPORTED;
    }
    if (p.n_ctx == 0)
        p.n_ctx = LG_MIN(model->cfg.n_ctx_train, 4096u);
    if (p.n_batch == 0)
        p.n_batch = 512;
    if (p.n_ctx > model->cfg.n_ctx_train) {
        lg_warn(&ctx->log, "n_ctx %u is beyond the model's trained context of %u", p.n_ctx,
                model->cfg.n_ctx_train);
    }
    if (p.n_ctx > (1u << 24) || p.n_batch > 8192) {
        lg_err(&ctx->log, "n_ctx %u or n_batch %u out of range", p.n_ctx, p.n_batch);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    if (model->cfg.head_dim > LG_ATTN_SPLIT_MAX_HD) { /* attn_split.comp: a dim quad a lane */
        lg_err(&ctx->log, "head_dim %u: decode attention supports at most %u", model->cfg.head_dim,
               LG_ATTN_SPLIT_MAX_HD);
        return LLMGPU_ERR_UNSUPPORTED;
    }
    s = lg_calloc(&ctx->alloc, 1, sizeof *s);
    if (!s)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    s->model = model;
    s->ctx = ctx;
    s->n_ctx = p.n_ctx;
    s->n_batch = LG_MIN(p.n_batch, p.n_ctx);
    s->kv_q8 = p.kv_type == LLMGPU_KV_TYPE_Q8_0;
    /* the fused epilogue writes a row a workgroup; a q8 block needs 32 of them */
    s->fuse_rope = !s->kv_q8 && fuse_rope_ok(model);
    lg_dbg(&ctx->log, "KV cache %s; decode %s RoPE and the KV-cache write into the Q/K/V mat-vec",
           s->kv_q8 ? "q8_0" : "f16", s->fuse_rope ? "fuses" : "does not fuse");
    atomic_fetch_add(&model->n_sessions, 1);
    st = create_buffers(s);
    if (st == LLMGPU_OK)
        st = create_sets(s);
    if (st == LLMGPU_OK)
        s->sets_ok = 1;
    if (st == LLMGPU_OK)
        st = lg_cmd_create(ctx, &s->decode_cmd);
    if (st == LLMGPU_OK)
        st = lg_cmd_create(ctx, &s->prefill_cmd);
    if (st == LLMGPU_OK)
        st = lg_cmd_create(ctx, &s->logits_cmd);
    if (st == LLMGPU_OK && (ctx->flags & LLMGPU_CONTEXT_FLAG_PROFILE) && ctx->timestamp_period > 0) {
        st = prof_create(s, &s->prof_decode);
        if (st == LLMGPU_OK)
            st = prof_create(s, &s->prof_prefill);
    }
    if (st != LLMGPU_OK) {
        llmgpu_session_free(s);
        return st;
    }
    *out = s;
    return LLMGPU_OK;
}

/* ---- recording ---- */

static void rec_mm(struct llmgpu_session *s, VkCommandBuffer cb, const struct lg_wtensor *w,
                   VkDescriptorSet *sets, unsigned flags, uint32_t n_tok, uint32_t x_row,
                   uint32_t ld_y, uint32_t y_col) {
    struct lg_pipeline *p;
    int gemm = n_tok > 1 && !(flags & MM_GATE_UP);
    uint32_t rpw = mv_rows_per_wg(s->ctx, w);
    struct lg_cm_cfg cm = {0, 0, 0, 0, 0, 0};
    if (gemm)
        flags |= gemm_flags(s->ctx, w, n_tok);
    if (mm_pipeline(s, w, flags, &p) != LLMGPU_OK)
        return; /* created in create_sets or record_step; cannot fail here */
    if (gemm && use_coopmat(s->ctx, w))
        cm_config(s->ctx, w, (flags & MM_CM_BIG) != 0, &cm);
    for (uint32_t i = 0; i < w->n_shards; i++) {
        struct lg_mm_push pc = {w->shards[i].row_begin, w->shards[i].rows, ld_y, n_tok, x_row,
                                y_col};
        if (gemm && cm.bm) /* matmul_cm.comp: token tiles along x */
            lg_cmd_dispatch(cb, p, sets[i], &pc, (n_tok + cm.bn - 1) / cm.bn,
                            (pc.n_rows + cm.bm - 1) / cm.bm, 1);
        else if (gemm)
            lg_cmd_dispatch(cb, p, sets[i], &pc, (pc.n_rows + 63) / 64, (n_tok + 63) / 64, 1);
        else
            lg_cmd_dispatch(cb, p, sets[i], &pc, (pc.n_rows + rpw - 1) / rpw, n_tok, 1);
    }
}

/* Does a prefill chunk of T tokens read w from the f16 copy? */
static int dq_on(const struct llmgpu_session *s, const struct lg_wtensor *w, uint32_t T) {
    return T > 1 && s->dq_on && dq_bytes(w) != 0;
}

/* Matrix i of layer l into the copy, where this chunk reads it from there (nothing
 * for l past the last layer). */
static void rec_dq(struct llmgpu_session *s, VkCommandBuffer cb, uint32_t l, int i, uint32_t T) {
    const struct lg_wtensor *w;
    uint32_t wg = wg_size(s->ctx);
    struct lg_pipeline *p;
    if (l >= s->model->cfg.n_layer)
        return;
    w = dq_w(&s->model->layers[l], i);
    if (!dq_on(s, w, T) || dq_pipeline(s, w, &p) != LLMGPU_OK)
        return; /* made in create_sets; cannot fail here */
    for (uint32_t j = 0; j < w->n_shards; j++) {
        uint32_t push[2] = {w->shards[j].row_begin, w->shards[j].rows};
        uint64_t n = (uint64_t)push[1] * (w->cols / 16), groups = (n + wg - 1) / wg;
        uint32_t gx = (uint32_t)LG_MIN(groups, 65535u);
        lg_cmd_dispatch(cb, p, s->ls[l].dq_deq[i][j], push, gx,
                        (uint32_t)((groups + gx - 1) / gx), 1);
    }
}

/* The prefill GEMM of matrix i of layer l (y's row stride ld_y, first column y_col):
 * on the copy or on the weights. */
static void rec_gemm(struct llmgpu_session *s, VkCommandBuffer cb, uint32_t l, int i,
                     VkDescriptorSet *sets, uint32_t T, uint32_t ld_y, uint32_t y_col) {
    const struct lg_wtensor *w = dq_w(&s->model->layers[l], i);
    unsigned flags = dq_mm_flags(&s->model->cfg, i);
    if (dq_on(s, w, T)) {
        struct lg_wshard sh;
        struct lg_wtensor v;
        dq_view(s, w, &sh, &v);
        rec_mm(s, cb, &v, &s->ls[l].dq_mm[i], flags | xh_flag(s, i, &v), T, 0, ld_y, y_col);
    } else {
        rec_mm(s, cb, w, sets, flags | xh_flag(s, i, w), T, 0, ld_y, y_col);
    }
}

static void stamp(struct llmgpu_session *s, struct prof *pf, VkCommandBuffer cb,
                  enum stage closes) {
    if (!pf || !pf->pool || pf->n >= pf->cap)
        return;
    if (pf->n > 0) {
        pf->stages[pf->n - 1] = (uint8_t)closes;
        pf->rec_bytes[closes] += pf->pend_bytes;
        pf->rec_barriers[closes] += pf->pend_barriers;
    }
    pf->pend_bytes = pf->pend_barriers = 0;
    vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pf->pool, pf->n++);
    (void)s;
}

/* A barrier between dispatches, counted for the profile. */
static void bar(struct prof *pf, VkCommandBuffer cb) {
    lg_cmd_barrier(cb);
    if (pf && pf->pool)
        pf->pend_barriers++;
}

/* Bytes of a weight matrix on the GPU (every shard, scales included), counted for the
 * profile as read by the mat-vec or GEMM about to be recorded. */
static void wread(struct prof *pf, const struct lg_wtensor *w) {
    for (uint32_t i = 0; pf && pf->pool && i < w->n_shards; i++)
        pf->pend_bytes += w->shards[i].buf.size;
}

/* Record one step of T tokens. T == 1 is the decode path: mat-vecs with the
 * RMSNorm fused in, and flash-decoding attention; T > 1 is prefill: norm
 * dispatches, tiled GEMMs and the one-pass attention. Every pipeline was made
 * by create_sets or is made here before recording starts, so recording itself
 * cannot fail halfway. */
static enum llmgpu_status record_step(struct llmgpu_session *s, VkCommandBuffer cb,
                                      uint32_t T, struct prof *pf) {
    const struct llmgpu_model *m = s->model;
    const struct lg_model_config *c = &m->cfg;
    struct lg_pipeline *p_embed, *p_norm, *p_rope, *p_attn, *p_silu, *p_argmax, *p_split;
    uint32_t wg = wg_size(s->ctx);
    uint32_t qkv_w = (c->n_head + 2 * c->n_kv_head) * c->head_dim;
    enum llmgpu_status st;
    TRY(embed_pipeline(s, &p_embed));
    TRY(norm_pipeline(s, &p_norm));
    TRY(attn_pipeline(s, "rope_kv.comp", 6, &p_rope));
    TRY(attn_pipeline(s, "attn.comp", 5, &p_attn));
    TRY(attn_pipeline(s, "attn_split.comp", 7, &p_split));
    TRY(silu_pipeline(s, &p_silu));
    TRY(argmax_pipeline(s, &p_argmax));
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const struct lg_layer *L = &m->layers[l];
        struct lg_pipeline *p;
        unsigned qkv_norm = T > 1 ? 0 : MM_NORM;
        TRY(mm_pipeline(s, &L->wqkv,
                        (c->qkv_bias ? MM_BIAS : 0) | qkv_norm | gemm_flags(s->ctx, &L->wqkv, T) |
                            (T > 1 ? xh_flag(s, DQ_QKV, &L->wqkv) : 0),
                        &p));
        if (T == 1 && s->fuse_rope)
            TRY(mm_pipeline(s, &L->wqkv, (c->qkv_bias ? MM_BIAS : 0) | MM_NORM | MM_ROPE, &p));
        TRY(mm_pipeline(s, &L->wo, MM_ACC | gemm_flags(s->ctx, &L->wo, T), &p));
        TRY(mm_pipeline(s, &L->down, MM_ACC | gemm_flags(s->ctx, &L->down, T), &p));
        if (T > 1) {
            TRY(mm_pipeline(s, &L->gate,
                            gemm_flags(s->ctx, &L->gate, T) | xh_flag(s, DQ_GATE, &L->gate), &p));
            TRY(mm_pipeline(s, &L->up, gemm_flags(s->ctx, &L->up, T) | xh_flag(s, DQ_UP, &L->up),
                            &p));
            for (int i = 0; i < DQ_N; i++) {
                const struct lg_wtensor *w = dq_w(L, i);
                struct lg_wshard sh;
                struct lg_wtensor v;
                if (!dq_on(s, w, T))
                    continue;
                dq_view(s, w, &sh, &v);
                TRY(dq_pipeline(s, w, &p));
                TRY(mm_pipeline(s, &v, dq_mm_flags(c, i) | xh_flag(s, i, &v) | gemm_flags(s->ctx, &v, T),
                                &p));
            }
        } else {
            TRY(mm_pipeline(s, &L->gate, MM_GATE_UP | MM_NORM, &p));
        }
    }
    {
        struct lg_pipeline *p;
        TRY(mm_pipeline(s, &m->lm_head, MM_NORM, &p));
    }

    if (pf && pf->pool) {
        vkCmdResetQueryPool(cb, pf->pool, 0, pf->cap);
        pf->n = 0;
        memset(pf->rec_bytes, 0, sizeof pf->rec_bytes);
        memset(pf->rec_barriers, 0, sizeof pf->rec_barriers);
    }
    lg_cmd_barrier_transfer(cb); /* host writes of the step buffer are visible at submit */
    stamp(s, pf, cb, ST_EMBED);
    for (uint32_t i = 0; i < m->tok_embd.n_shards; i++) {
        uint32_t push[2] = {m->tok_embd.shards[i].row_begin, m->tok_embd.shards[i].rows};
        lg_cmd_dispatch(cb, p_embed, s->embed_sets[i], push, (c->n_embd + wg - 1) / wg, T, 1);
    }
    bar(pf, cb);
    stamp(s, pf, cb, ST_EMBED);
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const struct lg_layer *L = &m->layers[l];
        struct layer_sets *S = &s->ls[l];
        uint32_t rows[2] = {0, 0};
        unsigned bias = c->qkv_bias ? MM_BIAS : 0;
        /* qkv = Wqkv rmsnorm(x) (+ b) */
        if (T > 1) {
            lg_cmd_dispatch(cb, p_norm, S->norm1, rows, T, 1, 1);
            if (l == 0) /* later layers' copies ride on the down GEMM before */
                rec_dq(s, cb, l, DQ_QKV, T);
            bar(pf, cb);
            wread(pf, &L->wqkv);
            rec_gemm(s, cb, l, DQ_QKV, S->qkv, T, qkv_w, 0);
            rec_dq(s, cb, l, DQ_WO, T);
        } else if (s->fuse_rope) {
            /* q, k, v = rope(Wqkv rmsnorm(x) (+ b)); k and v into the cache */
            wread(pf, &L->wqkv);
            rec_mm(s, cb, &L->wqkv, S->qkv_rope, bias | MM_NORM | MM_ROPE, 1, 0,
                   c->n_head * c->head_dim, 0);
        } else {
            wread(pf, &L->wqkv);
            rec_mm(s, cb, &L->wqkv, S->qkv_dec, bias | MM_NORM, 1, 0, qkv_w, 0);
        }
        bar(pf, cb);
        stamp(s, pf, cb, ST_QKV);
        if (T > 1 || !s->fuse_rope) {
            /* q, k, v = rope(qkv); k and v into the cache */
            uint32_t hpw = rope_hpw(s);
            lg_cmd_dispatch(cb, p_rope, S->rope, NULL, T, (c->n_head + c->n_kv_head + hpw - 1) / hpw,
                            1);
            bar(pf, cb);
            stamp(s, pf, cb, ST_ROPE);
        }
        /* att = softmax(q K^T / sqrt(d)) V */
        if (T > 1) {
            uint32_t bq = attn_bq(s);
            lg_cmd_dispatch(cb, p_attn, S->attn, NULL, c->n_head, (T + bq - 1) / bq, 1);
        } else {
            lg_cmd_dispatch(cb, p_split, S->attn_split, NULL,
                            c->n_head / lg_attn_split_gq(c->n_head, c->n_kv_head), attn_splits(s),
                            1);
        }
        bar(pf, cb);
        stamp(s, pf, cb, ST_ATTN);
        /* x += Wo att */
        wread(pf, &L->wo);
        if (T > 1) {
            rec_gemm(s, cb, l, DQ_WO, S->wo, T, c->n_embd, 0);
            rec_dq(s, cb, l, DQ_GATE, T);
            rec_dq(s, cb, l, DQ_UP, T);
        } else
            rec_mm(s, cb, &L->wo, S->wo, MM_ACC, T, 0, c->n_embd, 0);
        bar(pf, cb);
        stamp(s, pf, cb, ST_WO);
        /* hb = silu(Wg rmsnorm(x)) * (Wu rmsnorm(x)) */
        if (T > 1) {
            uint32_t n = c->n_ff * T;
            lg_cmd_dispatch(cb, p_norm, S->norm2, rows, T, 1, 1);
            bar(pf, cb);
            wread(pf, &L->gate);
            wread(pf, &L->up);
            rec_gemm(s, cb, l, DQ_GATE, S->gate, T, 2 * c->n_ff, 0);
            rec_gemm(s, cb, l, DQ_UP, S->up, T, 2 * c->n_ff, c->n_ff);
            rec_dq(s, cb, l, DQ_DOWN, T);
            bar(pf, cb);
            lg_cmd_dispatch(cb, p_silu, S->silu, &T, (n + wg - 1) / wg, 1, 1);
        } else {
            wread(pf, &L->gate);
            wread(pf, &L->up);
            rec_mm(s, cb, &L->gate, S->gate_up, MM_GATE_UP | MM_NORM, 1, 0, c->n_ff, 0);
        }
        bar(pf, cb);
        stamp(s, pf, cb, ST_GATE_UP);
        /* x += Wd hb */
        wread(pf, &L->down);
        if (T > 1) {
            rec_gemm(s, cb, l, DQ_DOWN, S->down, T, c->n_embd, 0);
            rec_dq(s, cb, l + 1, DQ_QKV, T);
        } else
            rec_mm(s, cb, &L->down, S->down, MM_ACC, T, 0, c->n_embd, 0);
        bar(pf, cb);
        stamp(s, pf, cb, ST_DOWN);
    }
    /* logits = Wlm rmsnorm(x[T - 1]); token = argmax(logits) */
    wread(pf, &m->lm_head);
    rec_mm(s, cb, &m->lm_head, s->lm_sets, MM_NORM, 1, T - 1, c->n_vocab, 0);
    bar(pf, cb);
    lg_cmd_dispatch(cb, p_argmax, s->argmax, &c->n_vocab, 1, 1, 1);
    stamp(s, pf, cb, ST_LM_HEAD);
    {
        /* make the host-visible result readable by the CPU after the fence */
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_HOST_READ_BIT |
                                               VK_ACCESS_TRANSFER_READ_BIT};
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                             VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1,
                             &mb, 0, NULL, 0, NULL);
    }
    return LLMGPU_OK;
#undef TRY
}

/* ---- running ---- */

static enum llmgpu_status check_tokens(struct llmgpu_session *s, const int32_t *tokens,
                                       size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= s->model->cfg.n_vocab) {
            lg_err(&s->ctx->log, "token %d at index %zu is outside the vocabulary of %u",
                   tokens[i], i, s->model->cfg.n_vocab);
            return LLMGPU_ERR_INVALID_TOKEN;
        }
    return LLMGPU_OK;
}

static void write_step(struct llmgpu_session *s, const int32_t *tokens, uint32_t n) {
    struct lg_step st = {s->pos, n, {0, 0}};
    memcpy(s->step.mapped, &st, sizeof st);
    memcpy((char *)s->step.mapped + sizeof st, tokens, (size_t)n * 4);
}

static void collect_profile(struct llmgpu_session *s, struct prof *pf) {
    uint64_t t[ST_COUNT * 1024];
    if (!pf->pool || pf->n < 2 || pf->n > LG_ARRAY_LEN(t))
        return;
    if (vkGetQueryPoolResults(s->ctx->device, pf->pool, 0, pf->n, pf->n * sizeof t[0], t,
                              sizeof t[0], VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) !=
        VK_SUCCESS)
        return;
    for (uint32_t i = 1; i < pf->n; i++) {
        enum stage st = (enum stage)pf->stages[i - 1];
        s->prof_ns[st] += (uint64_t)((double)(t[i] - t[i - 1]) * s->ctx->timestamp_period);
        s->prof_count[st]++;
    }
    for (uint32_t i = 0; i < ST_COUNT; i++) {
        s->prof_bytes[i] += pf->rec_bytes[i];
        s->prof_barriers[i] += pf->rec_barriers[i];
    }
    /* attention reads the K and V rows of every cached position up to the step's last,
     * in every layer (s->pos is past the step already) */
    s->prof_bytes[ST_ATTN] +=
        (uint64_t)s->model->cfg.n_layer * s->pos * 2 *
        lg_kv_row_bytes(s->model->cfg.n_kv_head, s->model->cfg.head_dim, s->kv_q8);
}

static enum llmgpu_status run_chunk(struct llmgpu_session *s, const int32_t *tokens, uint32_t n) {
    enum llmgpu_status st;
    struct lg_cmd *cmd;
    if (n == 1) {
        cmd = &s->decode_cmd;
        if (!s->decode_recorded) {
            st = lg_cmd_begin(s->ctx, cmd, 0);
            if (st == LLMGPU_OK)
                st = record_step(s, cmd->cb, 1, &s->prof_decode);
            if (st == LLMGPU_OK)
                st = lg_cmd_end(s->ctx, cmd);
            if (st != LLMGPU_OK)
                return st;
            s->decode_recorded = 1;
        }
    } else {
        /* A recording depends on the chunk size and the sets only (positions come from
         * the step buffer), so the last one is kept: a long prompt's full chunks, and a
         * benchmark's repetitions, skip recording some hundreds of commands. */
        cmd = &s->prefill_cmd;
        if (s->prefill_recorded != n) {
            s->prefill_recorded = 0;
            st = lg_cmd_begin(s->ctx, cmd, 0);
            if (st == LLMGPU_OK)
                st = record_step(s, cmd->cb, n, &s->prof_prefill);
            if (st == LLMGPU_OK)
                st = lg_cmd_end(s->ctx, cmd);
            if (st != LLMGPU_OK)
                return st;
            s->prefill_recorded = n;
        }
    }
    write_step(s, tokens, n);
    st = lg_cmd_submit_wait(s->ctx, cmd);
    if (st != LLMGPU_OK) {
        s->have_logits = 0;
        return st;
    }
    s->pos += n;
    s->have_logits = 1;
    collect_profile(s, n == 1 ? &s->prof_decode : &s->prof_prefill);
    return LLMGPU_OK;
}

enum llmgpu_status llmgpu_session_prefill(struct llmgpu_session *s, const int32_t *tokens,
                                          size_t n) {
    enum llmgpu_status st;
    if (!s || (!tokens && n))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (atomic_load(&s->ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST;
    if (n == 0)
        return LLMGPU_OK;
    if (n > s->n_ctx - s->pos) {
        lg_err(&s->ctx->log, "context full: %zu tokens do not fit after position %u of %u", n,
               s->pos, s->n_ctx);
        return LLMGPU_ERR_CONTEXT_FULL;
    }
    st = check_tokens(s, tokens, n);
    if (st != LLMGPU_OK)
        return st;
    st = grow_kv(s, s->pos + (uint32_t)n);
    if (st != LLMGPU_OK)
        return st;
    if (!s->sets_ok) {
        destroy_sets(s);
        st = create_sets(s);
        if (st != LLMGPU_OK)
            return st;
        s->sets_ok = 1;
    }
    for (size_t i = 0; i < n; i += s->n_batch) {
        uint32_t k = (uint32_t)LG_MIN((size_t)s->n_batch, n - i);
        st = run_chunk(s, tokens + i, k);
        if (st != LLMGPU_OK)
            return st;
    }
    return LLMGPU_OK;
}

enum llmgpu_status llmgpu_session_decode(struct llmgpu_session *s, int32_t token) {
    return llmgpu_session_prefill(s, &token, 1);
}

enum llmgpu_status llmgpu_session_logits(struct llmgpu_session *s, float *logits,
                                         size_t *n_inout) {
    size_t n;
    if (!s || !n_inout)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (atomic_load(&s->ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST;
    n = s->model->cfg.n_vocab;
    if (!logits) {
        *n_inout = n;
        return LLMGPU_OK;
    }
    if (*n_inout < n) {
        *n_inout = n;
        return LLMGPU_ERR_BUFFER_TOO_SMALL;
    }
    if (!s->have_logits) {
        lg_err(&s->ctx->log, "no logits: nothing has been evaluated since the last reset");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    *n_inout = n;
    if (!s->logits_recorded) {
        VkBufferCopy region = {0, 0, n * 4};
        enum llmgpu_status st = lg_cmd_begin(s->ctx, &s->logits_cmd, 0);
        if (st != LLMGPU_OK)
            return st;
        lg_cmd_barrier_transfer(s->logits_cmd.cb);
        vkCmdCopyBuffer(s->logits_cmd.cb, s->logits.buf, s->logits_host.buf, 1, &region);
        {
            VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                  .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                                  .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
            vkCmdPipelineBarrier(s->logits_cmd.cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                                 VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
        }
        st = lg_cmd_end(s->ctx, &s->logits_cmd);
        if (st != LLMGPU_OK)
            return st;
        s->logits_recorded = 1;
    }
    {
        enum llmgpu_status st = lg_cmd_submit_wait(s->ctx, &s->logits_cmd);
        if (st != LLMGPU_OK)
            return st;
    }
    memcpy(logits, s->logits_host.mapped, n * 4);
    return LLMGPU_OK;
}

enum llmgpu_status llmgpu_session_sample_greedy(struct llmgpu_session *s, int32_t *token) {
    if (!s || !token)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (atomic_load(&s->ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST; /* the result buffer holds garbage */
    if (!s->have_logits) {
        lg_err(&s->ctx->log, "nothing to sample: no token has been evaluated");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    memcpy(token, s->result.mapped, 4);
    return LLMGPU_OK;
}

enum llmgpu_status llmgpu_session_reset(struct llmgpu_session *s) {
    if (!s)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    s->pos = 0;
    s->have_logits = 0;
    return LLMGPU_OK;
}

uint32_t llmgpu_session_position(const struct llmgpu_session *s) {
    return s ? s->pos : 0;
}

uint32_t llmgpu_session_n_ctx(const struct llmgpu_session *s) {
    return s ? s->n_ctx : 0;
}

struct llmgpu_context *lg_session_context(const struct llmgpu_session *s) {
    return s->ctx;
}

const struct llmgpu_model *lg_session_model(const struct llmgpu_session *s) {
    return s->model;
}

struct lg_sample_cache *lg_session_sample_cache(struct llmgpu_session *s) {
    return &s->sample_cache;
}

const struct lg_buffer *lg_session_logits_buffer(const struct llmgpu_session *s) {
    return &s->logits;
}

int lg_session_has_logits(const struct llmgpu_session *s) {
    return s->have_logits;
}

enum llmgpu_status llmgpu_session_profile(const struct llmgpu_session *s,
                                          struct llmgpu_profile_entry *entries,
                                          uint32_t *n_inout) {
    if (!s || !n_inout)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (!s->prof_decode.pool)
        return LLMGPU_ERR_UNSUPPORTED;
    if (entries && *n_inout < ST_COUNT) {
        *n_inout = ST_COUNT;
        return LLMGPU_ERR_BUFFER_TOO_SMALL;
    }
    *n_inout = ST_COUNT;
    for (uint32_t i = 0; entries && i < ST_COUNT; i++) {
        entries[i].name = stage_names[i];
        entries[i].ns = s->prof_ns[i];
        entries[i].count = s->prof_count[i];
        entries[i].bytes = s->prof_bytes[i];
        entries[i].barriers = s->prof_barriers[i];
    }
    return LLMGPU_OK;
}

enum llmgpu_status llmgpu_session_profile_reset(struct llmgpu_session *s) {
    if (!s)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    memset(s->prof_ns, 0, sizeof s->prof_ns);
    memset(s->prof_count, 0, sizeof s->prof_count);
    memset(s->prof_bytes, 0, sizeof s->prof_bytes);
    memset(s->prof_barriers, 0, sizeof s->prof_barriers);
    return LLMGPU_OK;
}

int lg_session_kv_q8(const struct llmgpu_session *s) {
    return s->kv_q8;
}

const struct lg_buffer *lg_session_kcache(const struct llmgpu_session *s, uint32_t l) {
    return &s->kc[l];
}

const struct lg_buffer *lg_session_vcache(const struct llmgpu_session *s, uint32_t l) {
    return &s->vc[l];
}

void lg_session_set_position(struct llmgpu_session *s, uint32_t pos) {
    s->pos = LG_MIN(pos, s->kv_cap); /* rows past the capacity do not exist */
    s->have_logits = 0;
}

enum llmgpu_status lg_session_reserve(struct llmgpu_session *s, uint32_t n) {
    if (n > s->n_ctx)
        return LLMGPU_ERR_CONTEXT_FULL;
    return grow_kv(s, n);
}
