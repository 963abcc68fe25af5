/*
 * check_gptq.c - GPTQ and AWQ checkpoints: quantization_config parsing, the
 * loader's repacking into q4_g (exact integers and scales), the q4_g mat-vec
 * and GEMM kernels against C on dequantized weights, whole tiny checkpoints
 * (written by tests/tools/mkgptq.py) run against the C reference forward pass
 * on the weights tests/ref/gptq_ref.c dequantizes from the files, and clean
 * errors for malformed or unsupported ones.
 *
 * Tolerances:
 *   repack   exact: every value nibble, zero point and scale bit pattern.
 *   kernels  NMSE <= 1e-10 against ref_matvec/ref_matmul on the dequantized
 *            weights (the GPU sums scale (sum q x - zero sum x) per 16-value
 *            unit: the same products in another order).
 *   forward  logits NMSE < 1e-5 against the reference at every step, as
 *            check_forward.c (what differs is the GPU's f16 KV cache and
 *            summation order); greedy tokens equal wherever the reference's
 *            top-2 margin is >= 0.05.
 * Config/Repack/Errors are CPU-only; Kernels and Forward are tagged "gpu".
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "model/quant.h"
#include "ref/ref.h"
#include "testutil.h"
#include "tu_mm.h"

static struct tu_log tlog;

/* ---- quantization_config ---- */

static enum llmgpu_status qparse(const char *qc, struct lg_quant_config *q) {
    char json[1024];
    struct lg_log log = {tu_log_fn, &tlog, LLMGPU_LOG_LEVEL_DEBUG};
    if (qc)
        snprintf(json, sizeof json, "{\"hidden_size\": 64, \"quantization_config\": %s}", qc);
    else
        snprintf(json, sizeof json, "{\"hidden_size\": 64}");
    tu_log_clear(&tlog);
    return lg_quant_config_parse(NULL, &log, json, strlen(json), "config.json", q);
}

START_TEST(config_accepts_gptq_and_awq) {
    struct lg_quant_config q;
    ck_assert_int_eq(qparse(NULL, &q), LLMGPU_OK);
    ck_assert_int_eq(q.method, LG_QUANT_NONE);
    ck_assert_int_eq(qparse("{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 128, "
                            "\"desc_act\": false, \"sym\": true}", &q), LLMGPU_OK);
    ck_assert_int_eq(q.method, LG_QUANT_GPTQ);
    ck_assert_int_eq(q.group_size, 128);
    ck_assert_int_eq(q.sym, 1);
    ck_assert_int_eq(q.zero_minus_one, 1); /* no checkpoint_format: v1 */
    ck_assert_int_eq(qparse("{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": -1, "
                            "\"sym\": false, \"checkpoint_format\": \"gptq_v2\"}", &q), LLMGPU_OK);
    ck_assert_int_eq(q.group_size, -1);
    ck_assert_int_eq(q.sym, 0);
    ck_assert_int_eq(q.zero_minus_one, 0);
    ck_assert_int_eq(qparse("{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 64, "
                            "\"zero_point\": true, \"version\": \"GEMM\"}", &q), LLMGPU_OK);
    ck_assert_int_eq(q.method, LG_QUANT_AWQ);
    ck_assert_int_eq(q.group_size, 64);
    ck_assert_int_eq(q.zero_minus_one, 0);
    /* AutoAWQ's older key names */
    ck_assert_int_eq(qparse("{\"quant_method\": \"awq\", \"w_bit\": 4, \"q_group_size\": 32}", &q),
                     LLMGPU_OK);
    ck_assert_int_eq(q.group_size, 32);
}
END_TEST

static const struct {
    const char *qc;
    enum llmgpu_status st;
    const char *msg; /* must appear in the log */
} bad_configs[] = {
    {"{\"quant_method\": \"gptq\", \"bits\": 8, \"group_size\": 128}", LLMGPU_ERR_UNSUPPORTED_MODEL,
     "8 bits"},
    {"{\"quant_method\": \"awq\", \"bits\": 3}", LLMGPU_ERR_UNSUPPORTED_MODEL, "3 bits"},
    {"{\"quant_method\": \"bitsandbytes\", \"load_in_4bit\": true}", LLMGPU_ERR_UNSUPPORTED_MODEL,
     "\"bitsandbytes\""},
    {"{\"bits\": 4}", LLMGPU_ERR_BAD_MODEL_FILE, "quant_method"},
    {"[1, 2]", LLMGPU_ERR_BAD_MODEL_FILE, "expected an object"},
    {"{\"quant_method\": \"gptq\"}", LLMGPU_ERR_BAD_MODEL_FILE, "bits"},
    {"{\"quant_method\": \"gptq\", \"bits\": \"4\"}", LLMGPU_ERR_BAD_MODEL_FILE, "bits"},
    {"{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 0}", LLMGPU_ERR_BAD_MODEL_FILE,
     "group_size 0"},
    {"{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 24}",
     LLMGPU_ERR_UNSUPPORTED_MODEL, "group_size 24"},
    {"{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": -2}", LLMGPU_ERR_BAD_MODEL_FILE,
     "group_size"},
    {"{\"quant_method\": \"gptq\", \"bits\": 4, \"sym\": 1}", LLMGPU_ERR_BAD_MODEL_FILE, "sym"},
    {"{\"quant_method\": \"gptq\", \"bits\": 4, \"checkpoint_format\": \"marlin\"}",
     LLMGPU_ERR_UNSUPPORTED_MODEL, "marlin"},
    {"{\"quant_method\": \"awq\", \"bits\": 4, \"version\": \"gemv\"}",
     LLMGPU_ERR_UNSUPPORTED_MODEL, "gemv"},
    {"{\"quant_method\": \"awq\", \"bits\": 4, \"zero_point\": false}",
     LLMGPU_ERR_UNSUPPORTED_MODEL, "zero_point"},
    {"{\"quant_method\": \"gptq\", \"bits\": 4, \"lm_head\": true}", LLMGPU_ERR_UNSUPPORTED_MODEL,
     "lm_head"},
};

START_TEST(config_refuses_clearly) {
    struct lg_quant_config q;
    enum llmgpu_status st = qparse(bad_configs[_i].qc, &q);
    ck_assert_msg(st == bad_configs[_i].st, "%s: status %d, expected %d", bad_configs[_i].qc,
                  (int)st, (int)bad_configs[_i].st);
    ck_assert_msg(strstr(tlog.text, bad_configs[_i].msg) != NULL, "%s: log lacks \"%s\": %s",
                  bad_configs[_i].qc, bad_configs[_i].msg, tlog.text);
    ck_assert_int_eq(q.method, LG_QUANT_NONE);
}
END_TEST

/* ---- the repacking, exact ---- */

/* q [n][k], zeros [g][n] as integers; pack them as GPTQ / AWQ store them. */
static void pack(int awq, int v1, const uint8_t *q, const uint8_t *z, uint32_t N, uint32_t K,
                 uint32_t NG, uint32_t *qweight, uint32_t *qzeros) {
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    if (!awq) {
        memset(qweight, 0, (size_t)K / 8 * N * 4);
        for (uint32_t n = 0; n < N; n++)
            for (uint32_t k = 0; k < K; k++)
                qweight[(k / 8) * N + n] |= (uint32_t)q[n * K + k] << (4 * (k % 8));
        memset(qzeros, 0, (size_t)NG * N / 8 * 4);
        for (uint32_t g = 0; g < NG; g++)
            for (uint32_t n = 0; n < N; n++)
                qzeros[g * (N / 8) + n / 8] |= (uint32_t)(z[g * N + n] - v1) << (4 * (n % 8));
        return;
    }
    for (uint32_t k = 0; k < K; k++)
        for (uint32_t c = 0; c < N / 8; c++) {
            uint32_t w = 0;
            for (int p = 0; p < 8; p++)
                w |= (uint32_t)q[(c * 8 + (uint32_t)order[p]) * K + k] << (4 * p);
            qweight[k * (N / 8) + c] = w;
        }
    for (uint32_t g = 0; g < NG; g++)
        for (uint32_t c = 0; c < N / 8; c++) {
            uint32_t w = 0;
            for (int p = 0; p < 8; p++)
                w |= (uint32_t)z[g * N + c * 8 + (uint32_t)order[p]] << (4 * p);
            qzeros[g * (N / 8) + c] = w;
        }
}

START_TEST(repack_is_exact) {
    /* _i: 0 GPTQ v1, 1 GPTQ v2, 2 AWQ; N 24 outputs, K 48 inputs, G 32: 2 groups, the
     * second partial; rows repacked in two calls [0, 7) and [7, 24) */
    const int awq = _i == 2, v1 = _i == 0;
    enum { N = 24, K = 48, G = 32, NG = 2 };
    uint8_t q[N * K], z[NG * N];
    uint16_t sc[NG * N], pairs[N * NG * 2];
    uint32_t qweight[N * K / 8], qzeros[NG * N / 8], vals[N * K / 8];
    struct ref_rng rng;
    ref_rng_seed(&rng, 77 + (uint64_t)_i);
    for (int i = 0; i < N * K; i++)
        q[i] = (uint8_t)(ref_rng_u64(&rng) % 16);
    for (int i = 0; i < NG * N; i++) {
        /* v1 stores zero - 1: zeros 1..16 (16 is stored 15); otherwise 0..15 */
        z[i] = (uint8_t)(ref_rng_u64(&rng) % 16 + (unsigned)v1);
        sc[i] = lg_f32_to_f16(ref_rng_normal(&rng) * 0.01f);
    }
    z[5] = v1 ? 16 : 15;
    z[N + 3] = v1 ? 1 : 0;
    pack(awq, v1, q, z, N, K, NG, qweight, qzeros);
    lg_q4g_repack(awq, v1, K, N, NG, qweight, qzeros, sc, 0, 7, vals, pairs);
    lg_q4g_repack(awq, v1, K, N, NG, qweight, qzeros, sc, 7, N - 7, vals + 7 * K / 8,
                  pairs + 7 * NG * 2);
    for (uint32_t n = 0; n < N; n++) {
        for (uint32_t k = 0; k < K; k++) {
            uint32_t got = (vals[n * K / 8 + k / 8] >> (4 * (k % 8))) & 15;
            ck_assert_msg(got == q[n * K + k], "row %u value %u: %u, expected %u", n, k, got,
                          q[n * K + k]);
        }
        for (uint32_t g = 0; g < NG; g++) {
            ck_assert_uint_eq(pairs[(n * NG + g) * 2], sc[g * N + n]);
            ck_assert_msg(lg_f16_to_f32(pairs[(n * NG + g) * 2 + 1]) == (float)z[g * N + n],
                          "row %u group %u: zero %g, expected %u", n, g,
                          (double)lg_f16_to_f32(pairs[(n * NG + g) * 2 + 1]), z[g * N + n]);
        }
    }
}
END_TEST

/* ---- kernels on q4_g ---- */

static struct llmgpu_context *g_ctx;
static void gpu_setup(void) {
    tu_log_clear(&tlog);
    g_ctx = tu_context(&tlog, NULL);
}
static void gpu_teardown(void) {
    tu_context_free(g_ctx);
}

enum { KF_BIAS = TU_MM_BIAS, KF_ACC = TU_MM_ACC, KF_GATE_UP = TU_MM_GATE_UP, KF_NORM = TU_MM_NORM,
       KF_GEMM = TU_MM_GEMM };
#define KEPS 1e-5f

/* A random q4_g shard of rows x K in groups of G (upload.c's layout) and its
 * dequantized weights w (rows, K). */
static void *make_shard(uint32_t rows, uint32_t K, uint32_t G, uint64_t seed, float *w,
                        size_t *bytes) {
    uint32_t NG = (K + G - 1) / G;
    size_t vb = (size_t)rows * K / 2;
    uint8_t *buf = calloc(vb + (size_t)rows * NG * 4, 1);
    uint16_t *pairs = (uint16_t *)(buf + vb);
    struct ref_rng rng;
    ref_rng_seed(&rng, seed);
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t g = 0; g < NG; g++) {
            pairs[(r * NG + g) * 2] =
                lg_f32_to_f16((0.5f + ref_rng_uniform(&rng)) * 0.4f / sqrtf((float)K));
            pairs[(r * NG + g) * 2 + 1] = lg_f32_to_f16((float)(ref_rng_u64(&rng) % 17));
        }
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t k = 0; k < K; k++) {
            uint32_t q = (uint32_t)(ref_rng_u64(&rng) % 16), g = k / G;
            buf[((size_t)r * K + k) / 2] |= (uint8_t)(q << (4 * (k % 2)));
            w[(size_t)r * K + k] = lg_f16_to_f32(pairs[(r * NG + g) * 2]) *
                                   ((float)q - lg_f16_to_f32(pairs[(r * NG + g) * 2 + 1]));
        }
    *bytes = vb + (size_t)rows * NG * 4;
    return buf;
}

/* y[t, y_col + r] (+)= op(W x[x_row + t]); the NMSE of y against C on the dequantized W (U)
 * (with idot, on x rounded as matvec.comp's IDOT rounds it). */
static double run_mm(uint32_t rows, uint32_t K, uint32_t G, uint32_t n_tok, unsigned f,
                     int idot) {
    struct llmgpu_context *ctx = g_ctx;
    const uint32_t x_row = 1, y_col = 3, ld_y = rows + 5;
    size_t nw = (size_t)rows * K, ny = (size_t)n_tok * ld_y, nx = (size_t)(n_tok + x_row) * K;
    size_t wbytes, ubytes;
    float *w = malloc(nw * 4), *u = malloc(nw * 4), *x = malloc(nx * 4);
    float *bias = malloc(rows * 4), *nrm = malloc(K * 4), *y = malloc(ny * 4);
    float *yg = malloc(ny * 4);
    void *wq = make_shard(rows, K, G, rows * 7u + K + f, w, &wbytes);
    void *uq = make_shard(rows, K, G, rows * 11u + K + f, u, &ubytes);
    struct tu_mm_opts mo = tu_mm_opts(LG_WTYPE_Q4_G, K, f);
    struct lg_mm_push pc = {0, rows, ld_y, n_tok, x_row, y_col};
    struct ref_rng rng;
    double e;
    ref_rng_seed(&rng, rows * 31u + K + f);
    ref_fill_normal(&rng, x, nx, 0.0f, 1.0f);
    ref_fill_normal(&rng, bias, rows, 0.0f, 1.0f);
    ref_fill_normal(&rng, nrm, K, 1.0f, 0.25f);
    ref_fill_normal(&rng, y, ny, 0.0f, 1.0f);
    mo.eps = KEPS;
    mo.group = G;
    mo.idot = idot;
    {
        struct tu_mm_io io = {.w = wq, .w_bytes = wbytes, .u = uq, .u_bytes = ubytes, .x = x,
                              .n_x = nx, .bias = bias, .n_bias = rows, .norm = nrm, .n_norm = K,
                              .y = y, .n_y = ny, .y_out = yg};
        tu_mm_run(ctx, &tlog, &mo, &io, &pc);
    }

    tu_mm_expect(&mo, &pc, x, w, u, bias, nrm, idot, y);
    e = ref_nmse(yg, y, ny);
    free(wq);
    free(uq);
    free(w);
    free(u);
    free(x);
    free(bias);
    free(nrm);
    free(y);
    free(yg);
    return e;
}

static const struct {
    const char *name;
    unsigned flags;
    uint32_t n_tok;
} mm_cases[] = {
    {"matvec", 0, 1},
    {"matvec bias accumulate", KF_BIAS | KF_ACC, 2},
    {"matvec norm", KF_NORM, 3},
    {"matvec gate_up norm", KF_GATE_UP | KF_NORM, 1},
    {"gemm", KF_GEMM, 37},
    {"gemm bias accumulate", KF_GEMM | KF_BIAS | KF_ACC, 70},
};

/* Shapes: rows odd (the pairs' offset depends on the shard's row count); K 96
 * in groups of 64 (the last group partial) and of 96 (group_size -1), K 2048
 * in groups of 128 (every invocation loops) and of 32. */
START_TEST(kernels_match_dequantized_reference) {
    static const uint32_t shapes[][3] = {{37, 96, 64}, {5, 96, 96}, {130, 2048, 128},
                                         {19, 512, 32}};
    for (int sh = 0; sh < 4; sh++) {
        double e = run_mm(shapes[sh][0], shapes[sh][1], shapes[sh][2], mm_cases[_i].n_tok,
                          mm_cases[_i].flags, 0);
        fprintf(stderr, "# q4_g %s %ux%u group %u: NMSE %.3g\n", mm_cases[_i].name, shapes[sh][0],
                shapes[sh][1], shapes[sh][2], e);
        ck_assert_msg(e <= 1e-10, "q4_g %s %ux%u group %u: NMSE %.3g", mm_cases[_i].name,
                      shapes[sh][0], shapes[sh][1], shapes[sh][2], e);
    }
}
END_TEST

/* The mat-vec cases (mm_cases[0..3]) with integer dot products (matvec.comp IDOT):
 * against the reference on x rounded as the kernel rounds it, bounded as
 * tests/check_quant.c's matvec_modes_match_reference explains (a rare rounding
 * boundary may flip). */
START_TEST(int_dot_kernels_match_reference) {
    static const uint32_t shapes[][3] = {{37, 96, 64}, {5, 96, 96}, {130, 2048, 128},
                                         {19, 512, 32}};
    if (!g_ctx->caps.int_dot) {
        fprintf(stderr, "# no shaderIntegerDotProduct: IDOT not tested\n");
        return;
    }
    for (int sh = 0; sh < 4; sh++) {
        double e = run_mm(shapes[sh][0], shapes[sh][1], shapes[sh][2], mm_cases[_i].n_tok,
                          mm_cases[_i].flags, 1);
        fprintf(stderr, "# q4_g idot %s %ux%u group %u: NMSE %.3g\n", mm_cases[_i].name,
                shapes[sh][0], shapes[sh][1], shapes[sh][2], e);
        ck_assert_msg(e <= 1e-6, "q4_g idot %s %ux%u group %u: NMSE %.3g", mm_cases[_i].name,
                      shapes[sh][0], shapes[sh][1], shapes[sh][2], e);
    }
}
END_TEST

/* ---- whole checkpoints ---- */

struct variant {
    const char *name;
    const char *args; /* mkgptq.py arguments */
};

#define TINY "--layers 2 --hidden 64 --heads 4 --kv-heads 2 --ff 128 --vocab 300 --ctx 128"
static const struct variant variants[] = {
    {"gptq_sym_g32_v1", "--method gptq --group 32 -- " TINY " --seed 41"},
    {"gptq_asym_g32_v1", "--method gptq --group 32 --asym -- " TINY " --seed 42"},
    {"gptq_asym_g128_v2", "--method gptq --group 128 --asym --format gptq_v2 -- --layers 2 "
                          "--hidden 128 --heads 4 --kv-heads 2 --ff 256 --vocab 300 --ctx 128 "
                          "--seed 43"},
    {"gptq_sym_rowgroup", "--method gptq --group -1 -- " TINY " --seed 44"},
    {"awq_g32", "--method awq --group 32 -- " TINY " --seed 45"},
    {"awq_g64_qwen2_tied", "--method awq --group 64 -- --arch qwen2 --layers 2 --hidden 64 "
                           "--heads 4 --kv-heads 2 --ff 128 --vocab 300 --ctx 128 --tie "
                           "--seed 46"},
};

static void make_ckpt(const char *name, const char *args, char *dir, size_t size) {
    char cmd[1024], script[512];
    tu_tmp_path(name, dir, size);
    tu_data_path("tools/mkgptq.py", script, sizeof script);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && python3 '%s' --out '%s' %s >/dev/null", dir, script,
             dir, args);
    ck_assert_msg(tu_run(cmd) == 0, "mkgptq failed: %s", cmd);
}

/* Prefill a prompt (chunks of n_batch), then greedy steps, against the reference. */
static void compare(struct llmgpu_context *ctx, const char *dir, const char *name,
                    enum llmgpu_weight_type wt, uint32_t n_batch, uint32_t min_shards,
                    double tol) {
    struct lg_checkpoint *ck = NULL;
    struct ref_model rm;
    struct ref_state rs;
    struct llmgpu_model *m = NULL;
    struct llmgpu_model_params mp;
    struct llmgpu_session *s;
    struct llmgpu_session_params sp;
    int32_t prompt[20];
    float *lg, *lr;
    size_t nv;
    int pos = 0, n_prompt = 20, n_gen = 16, agree = 0;
    double worst = 0.0;
    enum llmgpu_status st;

    ck_assert_int_eq(lg_ckpt_open(NULL, NULL, dir, &ck), LLMGPU_OK);
    ck_assert_int_ne(ck->quant.method, LG_QUANT_NONE);
    ck_assert_int_eq(ref_model_from_ckpt(ck, &rm), 0);
    ck_assert_int_eq(ref_state_alloc(&rm, 64, &rs), 0);
    llmgpu_model_params_init(&mp);
    mp.weight_type = wt;
    st = llmgpu_model_load(ctx, dir, &mp, &m);
    ck_assert_msg(st == LLMGPU_OK, "load %s: %s\n%s", dir, llmgpu_status_string(st), tlog.text);
    ck_assert_int_eq(m->layers[0].wqkv.type, LG_WTYPE_Q4_G);
    ck_assert_int_eq(m->layers[1].down.type, LG_WTYPE_Q4_G);
    ck_assert_int_ne(m->tok_embd.type, LG_WTYPE_Q4_G);
    ck_assert_uint_ge(m->layers[0].wqkv.n_shards, min_shards);
    ck_assert_uint_ge(m->layers[1].gate.n_shards, min_shards);
    llmgpu_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.n_batch = n_batch;
    st = llmgpu_session_create(m, &sp, &s);
    ck_assert_msg(st == LLMGPU_OK, "session %s: %s\n%s", dir, llmgpu_status_string(st), tlog.text);
    nv = ck->cfg.n_vocab;
    lg = malloc(nv * sizeof *lg);
    lr = malloc(nv * sizeof *lr);
    for (int i = 0; i < n_prompt; i++)
        prompt[i] = (int32_t)((i * 7919 + 13) % (int)nv);
    ck_assert_int_eq(llmgpu_session_prefill(s, prompt, (size_t)n_prompt), LLMGPU_OK);
    for (; pos < n_prompt; pos++)
        ck_assert_int_eq(ref_forward(&rm, &rs, prompt[pos], pos, lr), 0);
    for (int step = 0; step <= n_gen; step++) {
        size_t n = nv;
        int32_t tok;
        double e;
        ck_assert_int_eq(llmgpu_session_logits(s, lg, &n), LLMGPU_OK);
        e = tu_nmse(lg, lr, nv);
        worst = e > worst ? e : worst;
        ck_assert_msg(e < tol, "%s (n_batch %u) step %d: logits NMSE %.3g", name, n_batch, step,
                      e);
        ck_assert_int_eq(llmgpu_session_sample_greedy(s, &tok), LLMGPU_OK);
        if (ref_top2_margin(lr, (int)nv) >= 0.05f) {
            ck_assert_msg(tok == ref_argmax(lr, (int)nv), "%s step %d: GPU %d, reference %d",
                          name, step, tok, ref_argmax(lr, (int)nv));
            agree++;
        }
        tok = ref_argmax(lr, (int)nv);
        if (step == n_gen)
            break;
        ck_assert_int_eq(llmgpu_session_decode(s, tok), LLMGPU_OK);
        ck_assert_int_eq(ref_forward(&rm, &rs, tok, pos, lr), 0);
        pos++;
    }
    fprintf(stderr, "# %s: worst logits NMSE %.3g, greedy checked %d/%d\n", name, worst, agree,
            n_gen + 1);
    ck_assert_int_gt(agree, n_gen / 2);
    free(lg);
    free(lr);
    llmgpu_session_free(s);
    llmgpu_model_free(m);
    ref_state_free(&rs);
    ref_model_free(&rm);
    lg_ckpt_close(ck);
}

START_TEST(checkpoint_matches_reference) {
    char dir[512];
    make_ckpt(variants[_i].name, variants[_i].args, dir, sizeof dir);
    /* n_batch 7: the prompt runs through the GEMM path in chunks 7, 7, 6 */
    compare(g_ctx, dir, variants[_i].name, LLMGPU_WEIGHT_TYPE_DEFAULT, 7, 1, 1e-5);
}
END_TEST

START_TEST(sharded_and_float_types) {
    /* a 4 KiB binding limit splits every q4_g matrix into row shards (each with
     * its own pairs offset); weight_type f32 applies to the float tensors only */
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx;
    char dir[512];
    make_ckpt("gptq_sharded", "--method gptq --group 32 --asym -- " TINY " --seed 47", dir,
              sizeof dir);
    llmgpu_context_params_init(&cp);
    cp.flags = LLMGPU_CONTEXT_FLAG_NO_DISK_CACHE | LLMGPU_CONTEXT_FLAG_MATVEC_FLOAT_DOT;
    cp.max_binding_size = 4096;
    cp.log_fn = tu_log_fn;
    cp.log_user = &tlog;
    ck_assert_int_eq(llmgpu_context_create(&cp, &ctx), LLMGPU_OK);
    compare(ctx, dir, "gptq_sharded", LLMGPU_WEIGHT_TYPE_F32, 3, 2, 1e-5);
    llmgpu_context_free(ctx);
}
END_TEST

/* LLMGPU_CONTEXT_FLAG_PREFILL_DEQUANT: prefill GEMMs read f16 copies of the q4_g
 * matrices (dequant.comp's GROUP path), in chunks of 7 tokens (the last of 6). */
START_TEST(prefill_dequant_matches_reference) {
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx;
    char dir[512];
    make_ckpt("gptq_dq", "--method gptq --group 32 --asym -- " TINY " --seed 48", dir,
              sizeof dir);
    llmgpu_context_params_init(&cp);
    cp.flags = LLMGPU_CONTEXT_FLAG_NO_DISK_CACHE | LLMGPU_CONTEXT_FLAG_MATVEC_FLOAT_DOT |
               LLMGPU_CONTEXT_FLAG_PREFILL_DEQUANT;
    cp.log_fn = tu_log_fn;
    cp.log_user = &tlog;
    ck_assert_int_eq(llmgpu_context_create(&cp, &ctx), LLMGPU_OK);
    {
        /* the copies are made: 2 (Q/K/V, gate and up ...) x f16 of the largest */
        struct llmgpu_model *m = NULL;
        struct llmgpu_model_params mp;
        uint64_t b;
        llmgpu_model_params_init(&mp);
        ck_assert_int_eq(llmgpu_model_load(ctx, dir, &mp, &m), LLMGPU_OK);
        ck_assert_int_eq(lg_prefill_dq(m, 7, &b), 1);
        ck_assert_uint_gt(b, 0);
        llmgpu_model_free(m);
    }
    compare(ctx, dir, "gptq_dq", LLMGPU_WEIGHT_TYPE_DEFAULT, 7, 1, 1e-5);
    llmgpu_context_free(ctx);
}
END_TEST

/* An asymmetric GPTQ and an AWQ checkpoint decoding through integer dot products
 * (LLMGPU_CONTEXT_FLAG_MATVEC_INT_DOT): x is rounded to int8 per 16 values, so the
 * logits are held to 3e-4 of the unrounded reference instead of 1e-5 (tests/
 * check_quant.c's int-dot forward test measured ~8e-5 for q8_0 and q4_0). */
START_TEST(int_dot_checkpoints_match_reference) {
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx;
    char dir[512];
    if (!g_ctx->caps.int_dot) {
        fprintf(stderr, "# no shaderIntegerDotProduct: int-dot checkpoints not tested\n");
        return;
    }
    llmgpu_context_params_init(&cp);
    cp.flags = LLMGPU_CONTEXT_FLAG_NO_DISK_CACHE | LLMGPU_CONTEXT_FLAG_MATVEC_INT_DOT;
    cp.log_fn = tu_log_fn;
    cp.log_user = &tlog;
    ck_assert_int_eq(llmgpu_context_create(&cp, &ctx), LLMGPU_OK);
    for (int v = 1; v <= 4; v += 3) { /* gptq_asym_g32_v1, awq_g32 */
        make_ckpt(variants[v].name, variants[v].args, dir, sizeof dir);
        compare(ctx, dir, variants[v].name, LLMGPU_WEIGHT_TYPE_DEFAULT, 7, 1, 3e-4);
    }
    llmgpu_context_free(ctx);
}
END_TEST

START_TEST(quantized_weight_type_refused) {
    char dir[512];
    struct llmgpu_model_params mp;
    struct llmgpu_model *m = NULL;
    make_ckpt("awq_refuse", "--method awq --group 32 -- " TINY " --seed 48", dir, sizeof dir);
    llmgpu_model_params_init(&mp);
    mp.weight_type = LLMGPU_WEIGHT_TYPE_Q8_0;
    tu_log_clear(&tlog);
    ck_assert_int_eq(llmgpu_model_load(g_ctx, dir, &mp, &m), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(tlog.text, "AWQ checkpoint") != NULL, "%s", tlog.text);
}
END_TEST

/* ---- malformed checkpoints (CPU: lg_ckpt_open) ---- */

static const struct {
    const char *bad;
    const char *method;
    enum llmgpu_status st;
    const char *msg;
} bad_ckpts[] = {
    {"bits8", "gptq", LLMGPU_ERR_UNSUPPORTED_MODEL, "8 bits"},
    {"qzeros-shape", "gptq", LLMGPU_ERR_BAD_MODEL_FILE, "layers.1.mlp.down_proj.qzeros"},
    {"qweight-dtype", "awq", LLMGPU_ERR_BAD_MODEL_FILE, "layers.0.self_attn.k_proj.qweight"},
    {"permuted-gidx", "gptq", LLMGPU_ERR_UNSUPPORTED_MODEL, "desc_act"},
    {"no-method", "gptq", LLMGPU_ERR_BAD_MODEL_FILE, "quant_method"},
    {"method-string", "gptq", LLMGPU_ERR_UNSUPPORTED_MODEL, "bitsandbytes"},
    {"group-0", "gptq", LLMGPU_ERR_BAD_MODEL_FILE, "group_size"},
    {"awq-gemv", "awq", LLMGPU_ERR_UNSUPPORTED_MODEL, "gemv"},
    {"bias-nonzero", "gptq", LLMGPU_ERR_UNSUPPORTED_MODEL, "o_proj.bias"},
};

START_TEST(malformed_checkpoints_refused) {
    char dir[512], args[256], name[64];
    struct lg_checkpoint *ck = NULL;
    struct lg_log log = {tu_log_fn, &tlog, LLMGPU_LOG_LEVEL_DEBUG};
    enum llmgpu_status st;
    snprintf(name, sizeof name, "bad_%s", bad_ckpts[_i].bad);
    snprintf(args, sizeof args, "--method %s --group 32 --bad %s -- --layers 2 --hidden 64 "
             "--heads 4 --kv-heads 2 --ff 128 --vocab 300", bad_ckpts[_i].method,
             bad_ckpts[_i].bad);
    make_ckpt(name, args, dir, sizeof dir);
    tu_log_clear(&tlog);
    st = lg_ckpt_open(NULL, &log, dir, &ck);
    ck_assert_msg(st == bad_ckpts[_i].st, "%s: status %d, expected %d\n%s", bad_ckpts[_i].bad,
                  (int)st, (int)bad_ckpts[_i].st, tlog.text);
    ck_assert_ptr_null(ck);
    ck_assert_msg(strstr(tlog.text, bad_ckpts[_i].msg) != NULL, "%s: log lacks \"%s\": %s",
                  bad_ckpts[_i].bad, bad_ckpts[_i].msg, tlog.text);
}
END_TEST

START_TEST(good_checkpoint_tables) {
    /* the table a valid checkpoint gives: quantized roles through lg_ckpt_qlinear only */
    char dir[512];
    struct lg_checkpoint *ck = NULL;
    const struct lg_qlinear *q;
    make_ckpt("gptq_table", "--method gptq --group 32 -- " TINY " --seed 49", dir, sizeof dir);
    ck_assert_int_eq(lg_ckpt_open(NULL, NULL, dir, &ck), LLMGPU_OK);
    ck_assert_int_eq(ck->quant.method, LG_QUANT_GPTQ);
    ck_assert_ptr_null(lg_ckpt_tensor(ck, LG_T_WQ, 0));
    ck_assert_ptr_nonnull(lg_ckpt_tensor(ck, LG_T_TOK_EMBD, 0));
    ck_assert_ptr_null(lg_ckpt_qlinear(ck, LG_T_TOK_EMBD, 0));
    q = lg_ckpt_qlinear(ck, LG_T_DOWN, 1);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(q->rows, 64);
    ck_assert_uint_eq(q->cols, 128);
    ck_assert_uint_eq(q->group, 32);
    ck_assert_uint_eq(q->n_groups, 4);
    ck_assert_int_eq(q->zero_minus_one, 1);
    ck_assert_ptr_nonnull(q->g_idx);
    /* every parameter counted once: 2 layers of (64*64 + 2*32*64 + 64*64 + 3*64*128) + embed
     * 300*64 + lm_head 300*64 + norms 5*64 */
    ck_assert_uint_eq(ck->n_params, 2ull * (4096 + 4096 + 4096 + 3 * 8192) + 2 * 19200 + 5 * 64);
    lg_ckpt_close(ck);
}
END_TEST

START_TEST(gguf_conversion_refused) {
    /* llmgpu_quantize would otherwise write a GGUF file without the projections */
    char dir[512], out[600];
    struct llmgpu_quantize_params qp;
    make_ckpt("gptq_to_gguf", "--method gptq --group 32 -- " TINY " --seed 50", dir, sizeof dir);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    llmgpu_quantize_params_init(&qp);
    qp.log_fn = tu_log_fn;
    qp.log_user = &tlog;
    tu_log_clear(&tlog);
    ck_assert_int_eq(llmgpu_quantize(dir, out, &qp), LLMGPU_ERR_UNSUPPORTED_MODEL);
    ck_assert_msg(strstr(tlog.text, "GPTQ checkpoint cannot be converted") != NULL, "%s",
                  tlog.text);
    ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

Suite *gptq_suite(void) {
    Suite *s = suite_create("gptq");
    TCase *cpu = tcase_create("Config");
    tcase_add_test(cpu, config_accepts_gptq_and_awq);
    tcase_add_loop_test(cpu, config_refuses_clearly, 0,
                        (int)(sizeof bad_configs / sizeof bad_configs[0]));
    tcase_add_loop_test(cpu, repack_is_exact, 0, 3);
    tcase_add_loop_test(cpu, malformed_checkpoints_refused, 0,
                        (int)(sizeof bad_ckpts / sizeof bad_ckpts[0]));
    tcase_add_test(cpu, good_checkpoint_tables);
    tcase_add_test(cpu, gguf_conversion_refused);
    tcase_set_timeout(cpu, 120);
    suite_add_tcase(s, cpu);
    {
        TCase *k = tcase_create("Kernels");
        tcase_set_tags(k, "gpu");
        tcase_add_unchecked_fixture(k, gpu_setup, gpu_teardown);
        tcase_add_loop_test(k, kernels_match_dequantized_reference, 0,
                            (int)(sizeof mm_cases / sizeof mm_cases[0]));
        tcase_add_loop_test(k, int_dot_kernels_match_reference, 0, 4);
        tcase_set_timeout(k, 600);
        suite_add_tcase(s, k);
    }
    {
        TCase *f = tcase_create("Forward");
        tcase_set_tags(f, "gpu");
        tcase_add_unchecked_fixture(f, gpu_setup, gpu_teardown);
        tcase_add_loop_test(f, checkpoint_matches_reference, 0,
                            (int)(sizeof variants / sizeof variants[0]));
        tcase_add_test(f, sharded_and_float_types);
        tcase_add_test(f, prefill_dequant_matches_reference);
        tcase_add_test(f, int_dot_checkpoints_match_reference);
        tcase_add_test(f, quantized_weight_type_refused);
        tcase_set_timeout(f, 600);
        suite_add_tcase(s, f);
    }
    return s;
}
