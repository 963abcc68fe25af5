/*
 * check_kernels.c - each forward-pass kernel alone against its plain C
 * reference (tests/ref/ops.c), at awkward sizes: 1 row, 1 token, dimensions
 * that are not multiples of the tiles or of 4, odd vocabularies, contexts that
 * cross attention chunks and sliding windows. Inputs come from a fixed-seed
 * generator; f16/bf16 inputs are rounded on the host first so the reference
 * sees exactly what the GPU reads.
 *
 * Tolerances (NMSE against the reference): 1e-10 for f32 arithmetic kernels
 * (only summation order differs), 1e-6 for attention (its K/V cache is f16 on
 * both sides, but the GPU's online softmax orders sums differently), exact for
 * argmax. Tagged "gpu".
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "ref/ref.h"
#include "testutil.h"
#include "tu_mm.h"

static struct tu_log tlog;
static struct llmgpu_context *ctx;

static void setup(void) {
    tu_log_clear(&tlog);
    ctx = tu_context(&tlog, NULL);
}
static void teardown(void) {
    tu_context_free(ctx);
}

/* ---- harness ---- */

static struct lg_buffer buf_f32(const float *x, size_t n) {
    struct lg_buffer b;
    ck_assert_int_eq(lg_buffer_create(ctx, LG_MAX(n, 1) * 4, LG_MEM_DEVICE, &b), LLMGPU_OK);
    if (x && n)
        ck_assert_int_eq(lg_buffer_upload(ctx, &b, 0, x, n * 4), LLMGPU_OK);
    return b;
}

/* Round x to the weight type in place; returns it in that type (*bytes long). */
static void *pack_w(float *x, size_t n, enum lg_wtype t, size_t *bytes) {
    uint16_t *h;
    if (t == LG_WTYPE_F32) {
        *bytes = n * 4;
        return memcpy(malloc(LG_MAX(n, 1) * 4), x, n * 4);
    }
    h = malloc(LG_MAX(n, 1) * 2);
    for (size_t i = 0; i < n; i++) {
        h[i] = t == LG_WTYPE_F16 ? lg_f32_to_f16(x[i]) : lg_f32_to_bf16(x[i]);
        x[i] = t == LG_WTYPE_F16 ? lg_f16_to_f32(h[i]) : lg_bf16_to_f32(h[i]);
    }
    *bytes = n * 2;
    return h;
}

static void fetch(const struct lg_buffer *b, float *out, size_t n) {
    ck_assert_int_eq(lg_buffer_download(ctx, b, 0, out, n * 4), LLMGPU_OK);
}

/* One dispatch of a kernel with storage-buffer bindings, then wait. */
static void run(struct lg_pipeline_desc *d, const struct lg_binding *b, uint32_t n,
                const void *push, uint32_t gx, uint32_t gy) {
    d->n_bindings = n;
    tu_dispatch(ctx, &tlog, d, b, push, gx, gy);
}

static uint32_t wg(void) {
    return ctx->info.type == LLMGPU_DEVICE_TYPE_CPU ? 64 : 256;
}

static void base(struct lg_pipeline_desc *d, char st[][48], const char *kernel, uint32_t push) {
    memset(d, 0, sizeof *d);
    d->kernel = kernel;
    d->push_size = push;
    lg_desc_define(d, st[0], "WG_SIZE", wg());
    lg_desc_define(d, st[1], "USE_SUBGROUP", ctx->caps.subgroup_arith ? 1 : 0);
}

/* ---- mat-vec (decode) and GEMM (prefill) ---- */

enum { F_BIAS = 1, F_ACC = 2, F_NORM = 4, F_GATE_UP = 8 };

/* matmul_cm.comp's configuration for check_mm(2, ...) */
static struct lg_cm_cfg cm_cfg = {64, 64, 32, 8, 32, 0};

static void check_mm(int gemm, enum lg_wtype t, uint32_t K, uint32_t rows, uint32_t T,
                     unsigned flags) {
    const float eps = 1e-5f;
    struct ref_rng rng;
    size_t nw = (size_t)rows * K;
    float *w = malloc(LG_MAX(nw, 1) * 4), *u = malloc(LG_MAX(nw, 1) * 4);
    float *x = malloc((size_t)T * K * 4), *xn = malloc((size_t)T * K * 4);
    float *nw8 = malloc(K * 4), *bias = malloc(rows * 4);
    float *y0 = malloc((size_t)T * rows * 4), *y = malloc((size_t)T * rows * 4);
    float *ref = malloc((size_t)T * rows * 4), *ru = malloc(rows * 4);
    void *wp, *up;
    size_t wbytes, ubytes;
    const unsigned mf = (gemm ? TU_MM_GEMM : 0u) | ((flags & F_BIAS) ? TU_MM_BIAS : 0u) |
                        ((flags & F_ACC) ? TU_MM_ACC : 0u) | ((flags & F_NORM) ? TU_MM_NORM : 0u) |
                        ((flags & F_GATE_UP) ? TU_MM_GATE_UP : 0u);
    struct tu_mm_opts mo = tu_mm_opts(t, K, mf);
    struct lg_mm_push pc = {0, rows, rows, T, 0, 0};
    double e;

    ref_rng_seed(&rng, K * 131 + rows * 7 + T + flags * 1000 + (unsigned)t * 17 + gemm);
    ref_fill_normal(&rng, w, nw, 0, 1.0f / sqrtf((float)K));
    ref_fill_normal(&rng, u, nw, 0, 1.0f / sqrtf((float)K));
    ref_fill_normal(&rng, x, (size_t)T * K, 0, 1);
    if (gemm == 2) /* the tensor-core kernel rounds x to f16: so does the reference */
        for (size_t i = 0; i < (size_t)T * K; i++)
            x[i] = lg_f16_to_f32(lg_f32_to_f16(x[i]));
    ref_fill_normal(&rng, nw8, K, 1, 0.25f);
    ref_fill_normal(&rng, bias, rows, 0, 0.5f);
    ref_fill_normal(&rng, y0, (size_t)T * rows, 0, 1);
    wp = pack_w(w, nw, t, &wbytes);
    up = pack_w(u, nw, t, &ubytes);
    mo.eps = eps;
    if (gemm == 2)
        tu_mm_cm(&mo, &cm_cfg);
    {
        struct tu_mm_io io = {.w = wp, .w_bytes = wbytes, .u = up, .u_bytes = ubytes, .x = x,
                              .n_x = (size_t)T * K, .bias = bias, .n_bias = rows, .norm = nw8,
                              .n_norm = K, .y = y0, .n_y = (size_t)T * rows, .y_out = y};
        tu_mm_run(ctx, &tlog, &mo, &io, &pc);
    }

    for (uint32_t tt = 0; tt < T; tt++) {
        const float *xr = x + (size_t)tt * K;
        if (flags & F_NORM) {
            ref_rmsnorm(xn + (size_t)tt * K, xr, nw8, (int)K, eps);
            xr = xn + (size_t)tt * K;
        }
        ref_matvec(ref + (size_t)tt * rows, xr, w, (flags & F_BIAS) ? bias : NULL, (int)K,
                   (int)rows);
        if (flags & F_GATE_UP) {
            ref_matvec(ru, xr, u, NULL, (int)K, (int)rows);
            ref_silu_mul(ref + (size_t)tt * rows, ref + (size_t)tt * rows, ru, (int)rows);
        }
        if (flags & F_ACC)
            ref_add(ref + (size_t)tt * rows, y0 + (size_t)tt * rows, (int)rows);
    }
    e = ref_nmse(y, ref, (size_t)T * rows);
    ck_assert_msg(e < (gemm == 2 ? 1e-9 : 1e-10),
                  "%s wtype %d K %u rows %u T %u flags %u (cm %ux%u bk %u nsg %u wr %u db %u): "
                  "NMSE %.3g",
                  gemm == 2 ? "matmul_cm" : gemm ? "matmul" : "matvec", t, K, rows, T, flags,
                  cm_cfg.bm, cm_cfg.bn, cm_cfg.bk, cm_cfg.nsg, cm_cfg.wr, cm_cfg.db, e);
    free(wp);
    free(up);
    free(w);
    free(u);
    free(x);
    free(xn);
    free(nw8);
    free(bias);
    free(y0);
    free(y);
    free(ref);
    free(ru);
}

START_TEST(matvec_awkward) {
    static const uint32_t shapes[][2] = {{1, 1}, {3, 5}, {63, 17}, {64, 129}, {260, 33}};
    static const unsigned flag_sets[] = {0, F_BIAS, F_ACC, F_NORM, F_GATE_UP | F_NORM,
                                         F_BIAS | F_NORM | F_ACC};
    /* every flag set for f32; f16 and bf16 (the same code after the load) with two */
    for (int t = 0; t < 3; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t f = 0; f < sizeof flag_sets / sizeof flag_sets[0]; f++)
                if (t == 0 || f == 0 || f == 4)
                    check_mm(0, (enum lg_wtype)t, shapes[s][0], shapes[s][1], s == 2 ? 3 : 1,
                             flag_sets[f]);
}
END_TEST

START_TEST(matmul_awkward) {
    static const uint32_t shapes[][3] = {{1, 1, 2}, {3, 5, 2}, {70, 63, 65}, {64, 129, 130},
                                         {17, 200, 7}};
    static const unsigned flag_sets[] = {0, F_BIAS, F_ACC, F_BIAS | F_ACC};
    for (int t = 0; t < 3; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t f = 0; f < sizeof flag_sets / sizeof flag_sets[0]; f++)
                if (t == 0 || f == 3)
                    check_mm(1, (enum lg_wtype)t, shapes[s][0], shapes[s][1], shapes[s][2],
                             flag_sets[f]);
}
END_TEST

START_TEST(matmul_coopmat_awkward) {
    /* Runs where the device has NV cooperative matrices (the H100), as the session
     * would select it; lavapipe has none and skips. Every configuration (tu_cm_cfgs:
     * tile, K step, subgroups, rows a subgroup, one or two buffers); K 3 and 70 take
     * the scalar path, the others the vector one; y's stride is the row count, so
     * 256 x 256 and 200 x 132 have whole tiles stored straight to y (and, the
     * latter, staged edge tiles beside them) while the other shapes stage every tile. */
    static const uint32_t shapes[][3] = {{16, 16, 16}, {3, 5, 2},     {70, 63, 65},
                                         {64, 129, 130}, {200, 17, 7}, {2048, 96, 77},
                                         {96, 256, 256}, {64, 200, 132}};
    if (!tu_has_coopmat(ctx)) {
        fprintf(stderr, "check_kernels: no VK_NV_cooperative_matrix here: matmul_cm.comp not run\n");
        return;
    }
    for (size_t ci = 0; ci < tu_n_cm_cfgs; ci++) {
        cm_cfg = tu_cm_cfgs[ci];
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (unsigned f = 0; f < 4; f++)
                check_mm(2, LG_WTYPE_F16, shapes[s][0], shapes[s][1], shapes[s][2], f);
    }
}
END_TEST

/* ---- register arrays stay in registers ---- */

/* Function-storage variables of array type in SPIR-V words: what the driver must keep
 * in addressable memory when they are indexed with variables. glslc's optimizer splits
 * an array into scalars once every loop indexing it is unrolled (constant indices), so
 * after it none should remain in the hot kernels. */
static int function_arrays(const uint32_t *w, size_t n) {
    uint32_t bound = n > 3 ? w[3] : 0;
    unsigned char *is_arr = calloc(bound + 1, 1), *ptr_arr = calloc(bound + 1, 1);
    int count = 0;
    ck_assert_ptr_nonnull(is_arr);
    ck_assert_ptr_nonnull(ptr_arr);
    for (size_t i = 5; i < n;) {
        uint32_t len = w[i] >> 16, op = w[i] & 0xffff;
        ck_assert_uint_gt(len, 0);
        ck_assert_uint_le(i + len, n);
        if (op == 28 && len > 1 && w[i + 1] <= bound) /* OpTypeArray */
            is_arr[w[i + 1]] = 1;
        if (op == 32 && len > 3 && w[i + 1] <= bound && w[i + 3] <= bound && w[i + 2] == 7)
            ptr_arr[w[i + 1]] = is_arr[w[i + 3]]; /* OpTypePointer Function */
        if (op == 59 && len > 3 && w[i + 3] == 7 && w[i + 1] <= bound && ptr_arr[w[i + 1]])
            count++; /* OpVariable Function of an array */
        i += len;
    }
    free(is_arr);
    free(ptr_arr);
    return count;
}

/* The kernels of the decode and prefill paths, with the define sets lib/session.c
 * gives them on a GPU, compile to SPIR-V without Function-storage arrays. On the H100
 * one such array (matmul_cm.comp's accumulators, indexed with variables by an epilogue
 * loop that did not unroll) made every tile with more than two accumulators a subgroup
 * run at a quarter of the speed (bench/RESULTS.md, session 9). */
START_TEST(kernels_no_register_arrays) {
    static const char *const sets[][24] = {
        /* decode mat-vec, f16 weights, workgroup rows: the residual add, fused norm + QKV
         * + RoPE, gate/up with the norm */
        {"matvec.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "K=4096", "WTYPE=1", "HAS_BIAS=0",
         "ACCUMULATE=1", "GATE_UP=0", "ROWS=2", "NORM=0", "ROPE_KV=0", "SG_ROWS=0", "RPW=2"},
        {"matvec.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "K=4096", "WTYPE=1", "HAS_BIAS=1",
         "ACCUMULATE=0", "GATE_UP=0", "ROWS=2", "NORM=1", "EPS=1e-5", "ROPE_KV=1", "HD=128",
         "NH=32", "NKV=8", "SG_ROWS=0", "RPW=2"},
        {"matvec.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "K=2048", "WTYPE=1", "HAS_BIAS=0",
         "ACCUMULATE=0", "GATE_UP=1", "ROWS=2", "NORM=1", "EPS=1e-5", "ROPE_KV=0", "SG_ROWS=0",
         "RPW=2"},
        /* decode mat-vec, block types: subgroup rows, integer dot products */
        {"matvec.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "K=4096", "WTYPE=4", "HAS_BIAS=0",
         "ACCUMULATE=0", "GATE_UP=1", "ROWS=2", "NORM=1", "EPS=1e-5", "ROPE_KV=0", "SG_ROWS=1",
         "RPW=16", "IDOT=1", "BLK32=1"},
        {"matvec.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "K=4096", "WTYPE=3", "HAS_BIAS=0",
         "ACCUMULATE=1", "GATE_UP=0", "ROWS=2", "NORM=0", "ROPE_KV=0", "SG_ROWS=1", "RPW=16",
         "IDOT=1"},
        /* decode attention, four query heads a workgroup */
        {"attn_split.comp", "WG_SIZE=128", "USE_SUBGROUP=1", "HD=128", "NH=32", "NKV=8",
         "WINDOW=0", "GQ=4", "NSPLIT=64", "MIN_LEN=128"},
        /* prefill: attention, portable GEMM, tensor-core GEMM (both of session.c's tiles) */
        {"attn.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "HD=128", "NH=32", "NKV=8", "WINDOW=0",
         "BQ=16"},
        {"attn_cm.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "HD=128", "NH=32", "NKV=8",
         "WINDOW=0", "NSG=4"},
        {"matmul.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "K=4096", "WTYPE=1", "HAS_BIAS=1",
         "ACCUMULATE=1", "GATE_UP=0", "ROWS=2", "NORM=0", "ROPE_KV=0"},
        {"matmul_cm.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "K=4096", "WTYPE=1", "HAS_BIAS=0",
         "ACCUMULATE=1", "GATE_UP=0", "ROWS=2", "NORM=0", "ROPE_KV=0", "BM=64", "BN=64", "BK=64",
         "NSG=8", "WR=32", "DB=0"},
        {"matmul_cm.comp", "WG_SIZE=256", "USE_SUBGROUP=1", "K=4096", "WTYPE=4", "HAS_BIAS=1",
         "ACCUMULATE=1", "GATE_UP=0", "ROWS=2", "NORM=0", "ROPE_KV=0", "BM=128", "BN=128",
         "BK=32", "NSG=8", "WR=64", "DB=1"},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        uint32_t n_def = 0, *words = NULL;
        size_t n_words = 0;
        int arrays;
        while (n_def + 1 < 24 && sets[i][n_def + 1])
            n_def++;
        ck_assert_msg(lg_kc_compile(ctx, sets[i][0], &sets[i][1], n_def, &words, &n_words) ==
                          LLMGPU_OK,
                      "%s (set %zu) does not compile: %s", sets[i][0], i, tlog.text);
        arrays = function_arrays(words, n_words);
        lg_free(&ctx->alloc, words);
        ck_assert_msg(arrays == 0, "%s (set %zu): %d Function-storage arrays", sets[i][0], i,
                      arrays);
    }
}
END_TEST

/* ---- RMSNorm ---- */

START_TEST(rms_norm_awkward) {
    static const uint32_t ns[] = {1, 7, 64, 2048, 4099};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        uint32_t N = ns[k], T = 3;
        struct ref_rng rng;
        float *x = malloc((size_t)T * N * 4), *w = malloc(N * 4), *y = malloc((size_t)T * N * 4),
              *ref = malloc((size_t)T * N * 4);
        struct lg_buffer bx, bw, by;
        struct lg_pipeline_desc d;
        char st[4][48];
        uint32_t rows[2] = {0, 0};
        ref_rng_seed(&rng, N);
        ref_fill_normal(&rng, x, (size_t)T * N, 0.3f, 2);
        ref_fill_normal(&rng, w, N, 1, 0.3f);
        bx = buf_f32(x, (size_t)T * N);
        bw = buf_f32(w, N);
        by = buf_f32(NULL, (size_t)T * N);
        base(&d, st, "rms_norm.comp", 8);
        lg_desc_define(&d, st[2], "N", N);
        snprintf(st[3], 48, "EPS=%.9e", 1e-6);
        d.defines[d.n_defines++] = st[3];
        {
            struct lg_binding b[3] = {{&bx, 0, 0}, {&bw, 0, 0}, {&by, 0, 0}};
            run(&d, b, 3, rows, T, 1);
        }
        fetch(&by, y, (size_t)T * N);
        for (uint32_t t = 0; t < T; t++)
            ref_rmsnorm(ref + (size_t)t * N, x + (size_t)t * N, w, (int)N, 1e-6f);
        ck_assert_msg(ref_nmse(y, ref, (size_t)T * N) < 1e-10, "rms_norm N %u: %.3g", N,
                      ref_nmse(y, ref, (size_t)T * N));
        lg_buffer_destroy(ctx, &bx);
        lg_buffer_destroy(ctx, &bw);
        lg_buffer_destroy(ctx, &by);
        free(x);
        free(w);
        free(y);
        free(ref);
    }
}
END_TEST

/* ---- attention: decode (split + reduce) and prefill (one pass) ---- */

/* check_attention's prefill kernel: attn.comp (0) or attn_cm.comp (1, tensor cores; it
 * rounds q and the softmax weights to f16 for the products, yet stays within the same
 * bound: NMSE 4e-8 to 9e-8 on the H100) */
static int prefill_cm;

/* decode: attn_split.comp with nsplit splits of at least min_len keys (both 0 for the
 * prefill kernel, attn.comp or attn_cm.comp by prefill_cm) */
static void check_attention(uint32_t HD, uint32_t NH, uint32_t NKV, uint32_t window,
                            uint32_t pos0, uint32_t T, uint32_t nsplit, uint32_t min_len) {
    const int decode = nsplit > 0;
    const uint32_t n_ctx = 320, gq = lg_attn_split_gq(NH, NKV);
    size_t kvn = (size_t)n_ctx * NKV * HD, qn = (size_t)T * NH * HD;
    struct ref_rng rng;
    float *k = malloc(kvn * 4), *v = malloc(kvn * 4), *q = malloc(qn * 4), *o = malloc(qn * 4);
    float *ref = malloc(qn * 4), *att = malloc((size_t)NH * n_ctx * 4);
    uint16_t *kh = malloc(kvn * 2), *vh = malloc(kvn * 2);
    struct lg_buffer bstep, bq, bk, bv, bo, bpart;
    struct lg_pipeline_desc d;
    char st[9][48];
    struct lg_step step = {pos0, T, {0, 0}};
    double e;

    ref_rng_seed(&rng, HD * 1000 + NH * 100 + NKV * 10 + window + pos0 * 7 + T + decode);
    ref_fill_normal(&rng, k, kvn, 0, 1);
    ref_fill_normal(&rng, v, kvn, 0, 1);
    ref_fill_normal(&rng, q, qn, 0, 1);
    for (size_t i = 0; i < kvn; i++) {
        kh[i] = lg_f32_to_f16(k[i]);
        vh[i] = lg_f32_to_f16(v[i]);
        k[i] = lg_f16_to_f32(kh[i]);
        v[i] = lg_f16_to_f32(vh[i]);
        /* the cache past the step's last position is not written yet (it may hold
         * anything); NaN there must not reach o (the reference never reads it) */
        if (i / ((size_t)NKV * HD) > pos0 + T - 1)
            kh[i] = vh[i] = 0x7e00;
    }
    ck_assert_int_eq(lg_buffer_create(ctx, sizeof step + 64, LG_MEM_UPLOAD, &bstep), LLMGPU_OK);
    memcpy(bstep.mapped, &step, sizeof step);
    ck_assert_int_eq(lg_buffer_create(ctx, kvn * 2, LG_MEM_DEVICE, &bk), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_create(ctx, kvn * 2, LG_MEM_DEVICE, &bv), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_upload(ctx, &bk, 0, kh, kvn * 2), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_upload(ctx, &bv, 0, vh, kvn * 2), LLMGPU_OK);
    bq = buf_f32(q, qn);
    bo = buf_f32(NULL, qn);
    bpart = buf_f32(NULL, (size_t)NH * (decode ? nsplit : 1) * ((HD + 3) / 4 * 4 + 2));

    base(&d, st, decode ? "attn_split.comp" : prefill_cm ? "attn_cm.comp" : "attn.comp", 0);
    lg_desc_define(&d, st[2], "HD", HD);
    lg_desc_define(&d, st[3], "NH", NH);
    lg_desc_define(&d, st[4], "NKV", NKV);
    lg_desc_define(&d, st[5], "WINDOW", window);
    if (decode) {
        snprintf(st[0], 48, "WG_SIZE=%u", LG_ATTN_SPLIT_WG);
        lg_desc_define(&d, st[6], "GQ", gq);
        lg_desc_define(&d, st[7], "NSPLIT", nsplit);
        lg_desc_define(&d, st[8], "MIN_LEN", min_len);
        /* counters start at 0; the kernel must leave them at 0 for the next layer */
        uint32_t zero[64] = {0}, cnt[64];
        struct lg_buffer bcnt;
        ck_assert_uint_le(NH, 64);
        ck_assert_int_eq(lg_buffer_create(ctx, NH * 4, LG_MEM_DEVICE, &bcnt), LLMGPU_OK);
        ck_assert_int_eq(lg_buffer_upload(ctx, &bcnt, 0, zero, NH * 4), LLMGPU_OK);
        struct lg_binding b[7] = {{&bstep, 0, 0}, {&bq, 0, 0}, {&bk, 0, 0}, {&bv, 0, 0},
                                  {&bpart, 0, 0}, {&bo, 0, 0}, {&bcnt, 0, 0}};
        run(&d, b, 7, NULL, NH / gq, nsplit);
        ck_assert_int_eq(lg_buffer_download(ctx, &bcnt, 0, cnt, NH * 4), LLMGPU_OK);
        for (uint32_t h = 0; h < NH / gq; h++)
            ck_assert_uint_eq(cnt[h], 0);
        /* a second run on the reset counters must write o again */
        {
            float *zo = calloc(qn, sizeof *zo);
            ck_assert_int_eq(lg_buffer_upload(ctx, &bo, 0, zo, qn * 4), LLMGPU_OK);
            free(zo);
        }
        run(&d, b, 7, NULL, NH / gq, nsplit);
        lg_buffer_destroy(ctx, &bcnt);
    } else {
        struct lg_binding b[5] = {{&bstep, 0, 0}, {&bq, 0, 0}, {&bk, 0, 0}, {&bv, 0, 0},
                                  {&bo, 0, 0}};
        uint32_t bqn = prefill_cm ? 64 : lg_attn_bq(HD);
        if (prefill_cm) {
            d.required_subgroup_size = 32;
            lg_desc_define(&d, st[6], "NSG", 4);
        } else {
            lg_desc_define(&d, st[6], "BQ", bqn);
        }
        run(&d, b, 5, NULL, NH, (T + bqn - 1) / bqn);
    }
    fetch(&bo, o, qn);
    for (uint32_t t = 0; t < T; t++)
        ref_attention(ref + (size_t)t * NH * HD, q + (size_t)t * NH * HD, k, v, att, (int)n_ctx,
                      (int)NH, (int)NKV, (int)HD, (int)(pos0 + t), (int)window);
    e = ref_nmse(o, ref, qn);
    if (prefill_cm && !decode)
        fprintf(stderr, "# attn_cm HD %u NH %u NKV %u pos0 %u T %u: NMSE %.3g\n", HD, NH, NKV,
                pos0, T, e);
    ck_assert_msg(e < 1e-6,
                  "%s HD %u NH %u NKV %u window %u pos0 %u T %u splits %u/%u: NMSE %.3g",
                  decode ? "attn_split" : prefill_cm ? "attn_cm" : "attn", HD, NH, NKV, window,
                  pos0, T, nsplit, min_len, e);
    lg_buffer_destroy(ctx, &bstep);
    lg_buffer_destroy(ctx, &bq);
    lg_buffer_destroy(ctx, &bk);
    lg_buffer_destroy(ctx, &bv);
    lg_buffer_destroy(ctx, &bo);
    lg_buffer_destroy(ctx, &bpart);
    free(k);
    free(v);
    free(q);
    free(o);
    free(ref);
    free(att);
    free(kh);
    free(vh);
}

START_TEST(attention_decode_chunks) {
    /* positions at and across block (256 keys) and split boundaries, and windows */
    static const uint32_t pos[] = {0, 1, 63, 64, 65, 200, 255, 256, 257, 319};
    /* {HD, NH, NKV}: query heads a KV head 2, 4, 1 (HD 20: quads past HD), 8, 6 (GQ 3)
     * and 16 (with LG_ATTN_SPLIT_GQ_MAX 4: several workgroups a KV head) */
    static const uint32_t hd[][3] = {{16, 4, 2}, {20, 4, 1},  {128, 4, 4}, {64, 16, 2},
                                     {16, 12, 2}, {32, 16, 1}};
    for (size_t h = 0; h < sizeof hd / sizeof hd[0]; h++) {
        /* {splits, fewest keys a split}: the library's; one split (two blocks at 319);
         * 5 and 64 splits of a few keys */
        const uint32_t split[][2] = {
            {lg_attn_split_n(hd[h][1], hd[h][2], 320), LG_ATTN_SPLIT_MIN_LEN},
            {1, 1},
            {5, 1},
            {64, 1}};
        for (size_t sp = 0; sp < 4; sp++)
            for (size_t p = 0; p < sizeof pos / sizeof pos[0]; p++) {
                if (sp > 0 && pos[p] != 0 && pos[p] != 65 && pos[p] != 256 && pos[p] != 319)
                    continue; /* the other split counts: fewer positions */
                check_attention(hd[h][0], hd[h][1], hd[h][2], 0, pos[p], 1, split[sp][0],
                                split[sp][1]);
                check_attention(hd[h][0], hd[h][1], hd[h][2], 70, pos[p], 1, split[sp][0],
                                split[sp][1]);
                if (sp == 0)
                    check_attention(hd[h][0], hd[h][1], hd[h][2], 8, pos[p], 1, split[sp][0],
                                    split[sp][1]);
            }
    }
}
END_TEST

START_TEST(attention_prefill) {
    /* {pos0, T, window}: one query; blocks of queries whole and partial; windows
     * shorter than a key tile and across tiles; the cache past pos0 + T - 1 is NaN.
     * HD 16/20 (tiles of 32 keys), 64, 128 (16 keys), 256 (8 keys, 8 queries a block) */
    static const uint32_t cases[][3] = {{0, 1, 0},    {0, 70, 0},    {5, 33, 8},
                                        {100, 130, 0}, {60, 70, 64}, {17, 40, 21}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        check_attention(16, 4, 2, cases[c][2], cases[c][0], cases[c][1], 0, 0);
        check_attention(20, 3, 1, cases[c][2], cases[c][0], cases[c][1], 0, 0);
        check_attention(64, 4, 4, cases[c][2], cases[c][0], cases[c][1], 0, 0);
        check_attention(128, 4, 2, cases[c][2], cases[c][0], cases[c][1], 0, 0);
        check_attention(256, 2, 1, cases[c][2], cases[c][0], cases[c][1], 0, 0);
    }
}
END_TEST

/* attn_cm.comp (where the device has NV cooperative matrices: lavapipe skips): one
 * query; blocks of 64 queries whole and partial; a prompt after cached positions that
 * crosses key tiles of 32 unaligned; GQA and MHA; head sizes 16, 64, 80 and 128; the
 * cache past pos0 + T - 1 is NaN (check_attention). */
START_TEST(attention_prefill_coopmat) {
    static const uint32_t cases[][2] = {{0, 1}, {0, 64}, {0, 70}, {100, 130}, {37, 200}};
    if (!tu_has_coopmat(ctx) || !ctx->caps.subgroup_shuffle) {
        fprintf(stderr, "check_kernels: no VK_NV_cooperative_matrix here: attn_cm.comp not run\n");
        return;
    }
    prefill_cm = 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        check_attention(16, 4, 2, 0, cases[c][0], cases[c][1], 0, 0);
        check_attention(64, 8, 2, 0, cases[c][0], cases[c][1], 0, 0);
        check_attention(80, 3, 3, 0, cases[c][0], cases[c][1], 0, 0);
        check_attention(128, 4, 1, 0, cases[c][0], cases[c][1], 0, 0);
    }
    prefill_cm = 0;
}
END_TEST

/* ---- argmax ---- */

START_TEST(argmax_odd_vocab) {
    static const uint32_t ns[] = {1, 7, 259, 32000, 151937};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        uint32_t n = ns[k], got = 0;
        struct ref_rng rng;
        float *x = malloc(n * 4);
        struct lg_buffer bx, bo;
        struct lg_pipeline_desc d;
        char st[2][48];
        ref_rng_seed(&rng, n);
        ref_fill_normal(&rng, x, n, 0, 1);
        if (n > 10) { /* a tie for the maximum: the lowest index wins */
            x[n / 3] = 100;
            x[n - 1] = 100;
            x[n / 2] = 100;
        }
        bx = buf_f32(x, n);
        bo = buf_f32(NULL, 4);
        base(&d, st, "argmax.comp", 4);
        {
            struct lg_binding b[2] = {{&bx, 0, 0}, {&bo, 0, 0}};
            run(&d, b, 2, &n, 1, 1);
        }
        ck_assert_int_eq(lg_buffer_download(ctx, &bo, 0, &got, 4), LLMGPU_OK);
        ck_assert_int_eq((int)got, ref_argmax(x, (int)n));
        lg_buffer_destroy(ctx, &bx);
        lg_buffer_destroy(ctx, &bo);
        free(x);
    }
}
END_TEST

Suite *kernels_suite(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("Reference");
    tcase_set_tags(tc, "gpu");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, matvec_awkward);
    tcase_add_test(tc, matmul_awkward);
    tcase_add_test(tc, matmul_coopmat_awkward);
    tcase_add_test(tc, rms_norm_awkward);
    tcase_add_test(tc, kernels_no_register_arrays);
    tcase_add_test(tc, attention_decode_chunks);
    tcase_add_test(tc, attention_prefill);
    tcase_add_test(tc, attention_prefill_coopmat);
    tcase_add_test(tc, argmax_odd_vocab);
    suite_add_tcase(s, tc);
    return s;
}
