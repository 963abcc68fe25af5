/*
 * check_sampler.c - the GPU sampler (lib/sample.c, kernels/sample_*.comp) against
 * the plain C reference (tests/ref/sample_ref.c).
 *
 * Logits are uploaded into a buffer and sampled through lg_sample_from_buffer, so
 * the tests control them exactly; one test goes through a session of a tiny
 * generated model (llmgpu_session_sample).
 * Core: the GPU draws the reference's token for the same uniform number, over
 * vocabularies of 50 to 152064 with every filter, penalties and bias, ties
 * included. The GPU sums masses in f32, so where u falls within about
 * 5e-6 * log2(n) of a boundary of the reference's (double) running sum the
 * neighbour may be drawn; such draws are accepted if the reference draws the
 * same token within that distance, and must stay rare (1 of 768 draws at 152064
 * on lavapipe, none at smaller sizes). Stats: chi-square of 20000 draws at fixed logits against the
 * reference's probabilities (p > 0.001). Edges: temperature 0 and top-k 1 are the
 * argmax, filters at their "off" values change nothing, all-but-one banned.
 * Tagged "gpu".
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "ref/ref.h"
#include "ref/sample_ref.h"
#include "sample.h"
#include "testutil.h"

static struct tu_log tlog;
static struct llmgpu_context *g_ctx;

static void setup(void) {
    tu_log_clear(&tlog);
    g_ctx = tu_context(&tlog, NULL);
}
static void teardown(void) {
    tu_context_free(g_ctx);
}

/* Logits on the GPU for lg_sample_from_buffer. */
static struct lg_buffer upload(const float *x, uint32_t n) {
    struct lg_buffer b;
    ck_assert_int_eq(lg_buffer_create(g_ctx, (VkDeviceSize)n * 4, LG_MEM_DEVICE, &b), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_upload(g_ctx, &b, 0, x, (VkDeviceSize)n * 4), LLMGPU_OK);
    return b;
}

static void normal_logits(float *x, uint32_t n, uint64_t seed, float scale) {
    struct ref_rng r;
    ref_rng_seed(&r, seed);
    ref_fill_normal(&r, x, n, 0.0f, scale);
}

static void draw(const struct lg_buffer *b, uint32_t n, const struct llmgpu_sampler_params *p,
                 const float *u, uint32_t n_draws, int32_t *tok) {
    enum llmgpu_status st = lg_sample_from_buffer(g_ctx, b, n, p, u, n_draws, tok);
    ck_assert_msg(st == LLMGPU_OK, "sample: %s\n%s", llmgpu_status_string(st), tlog.text);
}

static int32_t argmax(const float *x, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

/* ---- Core: the GPU against the reference ---- */

struct pset {
    const char *name;
    float temperature, top_p, min_p, repeat, freq, presence;
    int32_t top_k;
    int penalties_and_bias;
};

static const struct pset psets[] = {
    {"defaults", 0.8f, 0.95f, 0.05f, 1.0f, 0.0f, 0.0f, 40, 0},
    {"temp only", 1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0, 0},
    {"top-p alone", 1.3f, 0.9f, 0.0f, 1.0f, 0.0f, 0.0f, 0, 0},
    {"top-k 100 top-p 0.5", 0.7f, 0.5f, 0.0f, 1.0f, 0.0f, 0.0f, 100, 0},
    {"min-p alone", 1.0f, 1.0f, 0.2f, 1.0f, 0.0f, 0.0f, 0, 0},
    {"top-k 7", 2.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 7, 0},
    {"everything", 0.9f, 0.8f, 0.02f, 1.3f, 0.2f, 0.5f, 60, 1},
    {"greedy with penalties", 0.0f, 0.9f, 0.1f, 1.5f, 0.5f, 1.0f, 40, 1},
};

static void fill_params(const struct pset *ps, uint32_t n, int32_t *ids, float *vals,
                        int32_t *recent, struct llmgpu_sampler_params *p) {
    llmgpu_sampler_params_init(p);
    p->temperature = ps->temperature;
    p->top_k = ps->top_k;
    p->top_p = ps->top_p;
    p->min_p = ps->min_p;
    p->repeat_penalty = ps->repeat;
    p->frequency_penalty = ps->freq;
    p->presence_penalty = ps->presence;
    if (!ps->penalties_and_bias)
        return;
    /* bias: a ban, a boost, a duplicate id; recent: repeats, some beyond the window */
    ids[0] = 3, vals[0] = -INFINITY;
    ids[1] = (int32_t)(n / 2), vals[1] = 2.5f;
    ids[2] = (int32_t)(n - 1), vals[2] = 1.0f;
    ids[3] = (int32_t)(n / 2), vals[3] = 0.5f;
    p->bias_ids = ids;
    p->bias_values = vals;
    p->n_bias = 4;
    for (int i = 0; i < 80; i++)
        recent[i] = (int32_t)(((uint32_t)i * 2654435761u) % (i < 40 ? 16u : n));
    p->recent = recent;
    p->n_recent = 80;
    p->penalty_last_n = 64;
}

static void compare_with_ref(uint32_t n, const float *x, const char *what) {
    enum { ND = 96 };
    struct lg_buffer b = upload(x, n);
    float u[ND];
    int32_t tok[ND], ids[4], recent[80];
    float vals[4];
    float delta = 5e-6f * log2f((float)n); /* about the f32 error of the running sums */
    int n_near = 0;
    double *probs = malloc(n * sizeof *probs);
    for (int i = 0; i < ND; i++)
        u[i] = i == 0 ? 0.0f : i == 1 ? 0.99999994f : lg_sample_uniform(1234 + n, (uint64_t)i);
    for (size_t s = 0; s < LG_ARRAY_LEN(psets); s++) {
        struct llmgpu_sampler_params p;
        fill_params(&psets[s], n, ids, vals, recent, &p);
        draw(&b, n, &p, u, ND, tok);
        ck_assert_int_gt(sample_ref_probs(x, (int)n, &p, probs), 0);
        for (int i = 0; i < ND; i++) {
            int32_t r = sample_ref_draw_probs(probs, (int)n, u[i]), lo, hi;
            if (tok[i] == r)
                continue;
            /* f32 running sums over a large vocabulary: the draw is monotone in u,
             * so accept the GPU's token if the reference draws it within delta */
            lo = sample_ref_draw_probs(probs, (int)n, fmaxf(u[i] - delta, 0.0f));
            hi = sample_ref_draw_probs(probs, (int)n, fminf(u[i] + delta, 0.99999994f));
            ck_assert_msg(tok[i] >= lo && tok[i] <= hi,
                          "%s, n %u, %s, u %.9g: GPU %d, reference %d (%d..%d within %g)", what,
                          n, psets[s].name, (double)u[i], tok[i], r, lo, hi, (double)delta);
            n_near++;
        }
    }
    ck_assert_msg(n_near <= (int)(ND * LG_ARRAY_LEN(psets) / 32), "%s, n %u: %d near-boundary draws",
                  what, n, n_near);
    lg_buffer_destroy(g_ctx, &b);
    free(probs);
}

START_TEST(gpu_matches_reference) {
    static const uint32_t sizes[] = {50, 1000, 5003, 32000, 152064};
    uint32_t n = sizes[_i];
    float *x = malloc(n * sizeof *x);
    normal_logits(x, n, 100 + n, 2.0f);
    compare_with_ref(n, x, "normal logits");
    free(x);
}
END_TEST

START_TEST(gpu_matches_reference_ties) {
    /* logits on a coarse grid: many exact ties at every cut */
    static const uint32_t sizes[] = {50, 3001, 20000};
    uint32_t n = sizes[_i];
    float *x = malloc(n * sizeof *x);
    normal_logits(x, n, 200 + n, 1.5f);
    for (uint32_t i = 0; i < n; i++)
        x[i] = roundf(x[i] * 2.0f) * 0.5f;
    x[n / 3] = -0.0f;
    compare_with_ref(n, x, "tied logits");
    free(x);
}
END_TEST

/* ---- Edges ---- */

START_TEST(greedy_is_argmax) {
    uint32_t n = 5003;
    float *x = malloc(n * sizeof *x);
    struct lg_buffer b;
    struct llmgpu_sampler_params p;
    float u[3] = {0.0f, 0.5f, 0.999f};
    int32_t tok[3];
    normal_logits(x, n, 7, 3.0f);
    x[4000] = x[argmax(x, n)];     /* a tie for the max: the lower id wins */
    b = upload(x, n);
    llmgpu_sampler_params_init(&p);
    p.temperature = 0.0f;
    draw(&b, n, &p, u, 3, tok);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tok[i], argmax(x, n));
    llmgpu_sampler_params_init(&p);
    p.top_k = 1;
    p.temperature = 1.7f;
    draw(&b, n, &p, u, 3, tok);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tok[i], argmax(x, n));
    lg_buffer_destroy(g_ctx, &b);
    free(x);
}
END_TEST

START_TEST(filters_off_change_nothing) {
    /* top-p 1 and min-p 0 (and top-k 0) keep every token: the plain softmax */
    enum { N = 3000, ND = 64 };
    float *x = malloc(N * sizeof *x);
    double *probs = malloc(N * sizeof *probs);
    struct lg_buffer b;
    struct llmgpu_sampler_params p, q;
    float u[ND];
    int32_t t1[ND], t2[ND];
    normal_logits(x, N, 8, 1.0f);
    b = upload(x, N);
    for (int i = 0; i < ND; i++)
        u[i] = lg_sample_uniform(5, (uint64_t)i);
    llmgpu_sampler_params_init(&p);
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temperature = 1.0f;
    ck_assert_int_eq(sample_ref_probs(x, N, &p, probs), N);
    q = p;
    q.top_p = 2.0f; /* off by other values */
    q.min_p = -1.0f;
    q.top_k = N;
    draw(&b, N, &p, u, ND, t1);
    draw(&b, N, &q, u, ND, t2);
    for (int i = 0; i < ND; i++) {
        ck_assert_int_eq(t1[i], t2[i]);
        ck_assert_int_eq(t1[i], sample_ref_draw(x, N, &p, u[i]));
    }
    lg_buffer_destroy(g_ctx, &b);
    free(probs);
    free(x);
}
END_TEST

START_TEST(all_but_one_banned) {
    enum { N = 2500 };
    float *x = malloc(N * sizeof *x), *vals = malloc(N * sizeof *vals);
    int32_t *ids = malloc(N * sizeof *ids);
    struct lg_buffer b;
    struct llmgpu_sampler_params p;
    float u[4] = {0.0f, 0.3f, 0.7f, 0.9999f};
    int32_t tok[4];
    uint32_t keep = 1777, n_ids = 0;
    enum llmgpu_status st;
    normal_logits(x, N, 9, 2.0f);
    x[keep] = -50.0f; /* the least likely token is the only one left */
    b = upload(x, N);
    for (uint32_t i = 0; i < N; i++)
        if (i != keep) {
            ids[n_ids] = (int32_t)i;
            vals[n_ids++] = -INFINITY;
        }
    llmgpu_sampler_params_init(&p);
    p.bias_ids = ids;
    p.bias_values = vals;
    p.n_bias = n_ids;
    draw(&b, N, &p, u, 4, tok);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tok[i], (int32_t)keep);
    p.temperature = 0.0f;
    draw(&b, N, &p, u, 4, tok);
    ck_assert_int_eq(tok[0], (int32_t)keep);
    /* every token banned */
    ids[n_ids] = (int32_t)keep;
    vals[n_ids] = -INFINITY;
    p.n_bias = n_ids + 1;
    st = lg_sample_from_buffer(g_ctx, &b, N, &p, u, 1, tok);
    ck_assert_int_eq(st, LLMGPU_ERR_INVALID_ARGUMENT);
    lg_buffer_destroy(g_ctx, &b);
    free(x);
    free(vals);
    free(ids);
}
END_TEST

START_TEST(bad_params) {
    enum { N = 100 };
    float x[N];
    struct lg_buffer b;
    struct llmgpu_sampler_params p;
    float u = 0.5f, nanv = NAN;
    int32_t tok, bad_id = N;
    normal_logits(x, N, 10, 1.0f);
    b = upload(x, N);
    llmgpu_sampler_params_init(&p);
    p.struct_size = 0;
    ck_assert_int_eq(lg_sample_from_buffer(g_ctx, &b, N, &p, &u, 1, &tok),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    llmgpu_sampler_params_init(&p);
    p.bias_ids = &bad_id;
    p.bias_values = &u;
    p.n_bias = 1;
    ck_assert_int_eq(lg_sample_from_buffer(g_ctx, &b, N, &p, &u, 1, &tok),
                     LLMGPU_ERR_INVALID_TOKEN);
    llmgpu_sampler_params_init(&p);
    p.recent = &bad_id;
    p.n_recent = 1;
    p.repeat_penalty = 1.1f;
    ck_assert_int_eq(lg_sample_from_buffer(g_ctx, &b, N, &p, &u, 1, &tok),
                     LLMGPU_ERR_INVALID_TOKEN);
    llmgpu_sampler_params_init(&p);
    p.top_p = nanv;
    ck_assert_int_eq(lg_sample_from_buffer(g_ctx, &b, N, &p, &u, 1, &tok),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    llmgpu_sampler_params_init(&p);
    p.repeat_penalty = 0.0f;
    ck_assert_int_eq(lg_sample_from_buffer(g_ctx, &b, N, &p, &u, 1, &tok),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    /* an old, shorter struct: the fields past struct_size take their defaults */
    llmgpu_sampler_params_init(&p);
    p.struct_size = (uint32_t)offsetof(struct llmgpu_sampler_params, min_p);
    p.repeat_penalty = 0.0f; /* past struct_size: not read */
    ck_assert_int_eq(lg_sample_from_buffer(g_ctx, &b, N, &p, &u, 1, &tok), LLMGPU_OK);
    lg_buffer_destroy(g_ctx, &b);
    tu_log_clear(&tlog);
}
END_TEST

/* Greedy draws on 6 hand-made logits, with expectations worked by hand from
 * llama.cpp's llama_sampler_penalties_apply. */
static int32_t greedy6(const struct lg_buffer *b, struct llmgpu_sampler_params *p) {
    float u = 0.5f;
    int32_t tok;
    p->temperature = 0.0f;
    draw(b, 6, p, &u, 1, &tok);
    return tok;
}

START_TEST(penalty_semantics) {
    /* ids:          0     1     2     3      4     5 */
    float x[6] = {3.0f, 2.9f, 1.0f, -1.0f, -1.1f, 2.0f};
    struct lg_buffer b = upload(x, 6);
    struct llmgpu_sampler_params p;
    int32_t recent[4], ids[2];
    float vals[2];

    llmgpu_sampler_params_init(&p);
    ck_assert_int_eq(greedy6(&b, &p), 0);
    /* repeat 2 divides a positive logit: 3 -> 1.5 < 2.9 */
    recent[0] = 0;
    p.recent = recent;
    p.n_recent = 1;
    p.repeat_penalty = 2.0f;
    ck_assert_int_eq(greedy6(&b, &p), 1);
    /* and multiplies a negative one: with 0, 1, 2, 5 banned, -1 * 2 = -2 < -1.1 */
    ids[0] = 0, ids[1] = 1;
    vals[0] = vals[1] = -INFINITY;
    recent[0] = 3;
    llmgpu_sampler_params_init(&p);
    p.recent = recent;
    p.n_recent = 1;
    p.repeat_penalty = 2.0f;
    p.bias_ids = ids;
    p.bias_values = vals;
    p.n_bias = 2;
    x[2] = x[5] = -INFINITY; /* through a second buffer */
    {
        struct lg_buffer b2 = upload(x, 6);
        ck_assert_int_eq(greedy6(&b2, &p), 4);
        p.repeat_penalty = 1.0f;
        ck_assert_int_eq(greedy6(&b2, &p), 3);
        lg_buffer_destroy(g_ctx, &b2);
    }
    /* frequency counts repeats, presence does not: 3 - 2 * 0.08 = 2.84 < 2.9 */
    llmgpu_sampler_params_init(&p);
    recent[0] = 0, recent[1] = 0;
    p.recent = recent;
    p.n_recent = 2;
    p.frequency_penalty = 0.08f;
    ck_assert_int_eq(greedy6(&b, &p), 1);
    p.recent = recent + 1; /* seen once: 3 - 0.08 = 2.92 > 2.9 */
    p.n_recent = 1;
    ck_assert_int_eq(greedy6(&b, &p), 0);
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.2f; /* 2.8 < 2.9 */
    ck_assert_int_eq(greedy6(&b, &p), 1);
    /* the window: only the last penalty_last_n tokens count */
    recent[0] = 0, recent[1] = 1, recent[2] = 2, recent[3] = 2;
    llmgpu_sampler_params_init(&p);
    p.recent = recent;
    p.n_recent = 4;
    p.presence_penalty = 10.0f;
    p.penalty_last_n = 2;
    ck_assert_int_eq(greedy6(&b, &p), 0); /* only 2 is penalised */
    p.penalty_last_n = 3;
    ck_assert_int_eq(greedy6(&b, &p), 0); /* 1 and 2 */
    p.penalty_last_n = -1;
    ck_assert_int_eq(greedy6(&b, &p), 5); /* all of recent: 0, 1, 2 */
    p.penalty_last_n = 0;
    ck_assert_int_eq(greedy6(&b, &p), 0); /* off */
    /* a bias lifts a token; repeated ids add up */
    llmgpu_sampler_params_init(&p);
    ids[0] = 4, ids[1] = 4;
    vals[0] = 2.0f, vals[1] = 2.2f; /* -1.1 + 4.2 = 3.1 > 3 */
    p.bias_ids = ids;
    p.bias_values = vals;
    p.n_bias = 2;
    ck_assert_int_eq(greedy6(&b, &p), 4);
    lg_buffer_destroy(g_ctx, &b);
}
END_TEST

/* ---- Stats: chi-square against the reference's distribution ---- */

/* Chi-square critical value at p = 0.001 (Wilson-Hilferty, z = 3.0902). */
static double chi2_crit(int df) {
    double a = 2.0 / (9.0 * df);
    double c = 1.0 - a + 3.0902 * sqrt(a);
    return df * c * c * c;
}

static void chi_square(const float *x, uint32_t n, const struct llmgpu_sampler_params *p,
                       uint64_t seed, const char *what) {
    enum { ND = 20000 };
    struct lg_buffer b = upload(x, n);
    float *u = malloc(ND * sizeof *u);
    int32_t *tok = malloc(ND * sizeof *tok);
    double *probs = malloc(n * sizeof *probs);
    long *count = calloc(n, sizeof *count);
    double chi2 = 0.0, rest_e = 0.0, rest_o = 0.0;
    int df = -1, survivors;
    for (int i = 0; i < ND; i++)
        u[i] = lg_sample_uniform(seed, (uint64_t)i);
    draw(&b, n, p, u, ND, tok);
    survivors = sample_ref_probs(x, (int)n, p, probs);
    ck_assert_int_gt(survivors, 1);
    for (int i = 0; i < ND; i++) {
        ck_assert(tok[i] >= 0 && (uint32_t)tok[i] < n);
        ck_assert_msg(probs[tok[i]] > 0.0, "%s: drew filtered token %d", what, tok[i]);
        count[tok[i]]++;
    }
    /* bins with an expected count below 5 are pooled */
    for (uint32_t i = 0; i < n; i++) {
        double e = probs[i] * ND;
        if (probs[i] <= 0.0)
            continue;
        if (e < 5.0) {
            rest_e += e;
            rest_o += (double)count[i];
            continue;
        }
        chi2 += ((double)count[i] - e) * ((double)count[i] - e) / e;
        df++;
    }
    if (rest_e > 0.0) {
        chi2 += (rest_o - rest_e) * (rest_o - rest_e) / LG_MAX(rest_e, 1e-9);
        df++;
    }
    ck_assert_int_ge(df, 3);
    ck_assert_msg(chi2 < chi2_crit(df), "%s: chi-square %.2f over %d degrees of freedom >= %.2f",
                  what, chi2, df, chi2_crit(df));
    lg_buffer_destroy(g_ctx, &b);
    free(u);
    free(tok);
    free(probs);
    free(count);
}

START_TEST(distribution_chi_square) {
    enum { N = 50 };
    float x[N];
    struct llmgpu_sampler_params p;
    normal_logits(x, N, 11, 1.5f);
    llmgpu_sampler_params_init(&p);
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temperature = 1.0f;
    chi_square(x, N, &p, 21, "plain softmax");
    llmgpu_sampler_params_init(&p);
    p.temperature = 0.9f;
    p.top_k = 30;
    p.top_p = 0.9f;
    p.min_p = 0.02f;
    chi_square(x, N, &p, 22, "top-k 30, top-p 0.9, min-p 0.02");
}
END_TEST

/* ---- Session: llmgpu_session_sample on a tiny model ---- */

START_TEST(session_sample) {
    char dir[512];
    struct llmgpu_model_params mp;
    struct llmgpu_model *m = NULL;
    struct llmgpu_session *s = NULL;
    struct llmgpu_sampler_params p;
    int32_t prompt[5] = {1, 17, 42, 99, 7}, a, b2, g;
    tu_mkmodel(dir, sizeof dir,
               "--arch llama --dtype f32 --layers 1 --hidden 32 --heads 4 --kv-heads 2 --ff 64 "
               "--vocab 300 --ctx 64 --seed 31");
    llmgpu_model_params_init(&mp);
    mp.weight_type = LLMGPU_WEIGHT_TYPE_F32;
    ck_assert_int_eq(llmgpu_model_load(g_ctx, dir, &mp, &m), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_create(m, NULL, &s), LLMGPU_OK);
    llmgpu_sampler_params_init(&p);
    ck_assert_int_eq(llmgpu_session_sample(s, &p, &a), LLMGPU_ERR_INVALID_ARGUMENT); /* no logits */
    ck_assert_int_eq(llmgpu_session_prefill(s, prompt, 5), LLMGPU_OK);
    /* the same seed at the same position: the same token */
    p.seed = 42;
    p.temperature = 1.5f;
    ck_assert_int_eq(llmgpu_session_sample(s, &p, &a), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_sample(s, &p, &b2), LLMGPU_OK);
    ck_assert_int_eq(a, b2);
    ck_assert(a >= 0 && a < 300);
    ck_assert_int_eq(llmgpu_session_sample(s, NULL, &b2), LLMGPU_OK);
    /* temperature 0 is the session's greedy token */
    p.temperature = 0.0f;
    ck_assert_int_eq(llmgpu_session_sample(s, &p, &a), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_sample_greedy(s, &g), LLMGPU_OK);
    ck_assert_int_eq(a, g);
    /* The session keeps its sampler buffers between calls and grows them: 150 bans,
     * then 299 (more edits than any call before: all but token 123), then none again,
     * then a decode step (new logits in the same buffer) and the 299 bans once more. */
    {
        int32_t ids[299];
        float vals[299];
        struct llmgpu_sampler_params q;
        llmgpu_sampler_params_init(&q);
        q.seed = 9;
        q.temperature = 100.0f; /* nearly uniform: the bans decide */
        q.top_k = 0;
        q.top_p = 1.0f;
        q.min_p = 0.0f;
        for (int i = 0; i < 299; i++) {
            ids[i] = i < 123 ? i : i + 1;
            vals[i] = -INFINITY;
        }
        q.bias_ids = ids;
        q.bias_values = vals;
        q.n_bias = 150; /* ids 0..122 and 124..150 */
        ck_assert_int_eq(llmgpu_session_sample(s, &q, &b2), LLMGPU_OK);
        ck_assert(b2 > 150 || b2 == 123);
        q.n_bias = 299;
        ck_assert_int_eq(llmgpu_session_sample(s, &q, &b2), LLMGPU_OK);
        ck_assert_int_eq(b2, 123);
        ck_assert_int_eq(llmgpu_session_sample(s, &p, &a), LLMGPU_OK);
        ck_assert_int_eq(a, g); /* temperature 0, no edits: still the greedy token */
        ck_assert_int_eq(llmgpu_session_decode(s, g), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_session_sample_greedy(s, &g), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_session_sample(s, &p, &a), LLMGPU_OK);
        ck_assert_int_eq(a, g);
        ck_assert_int_eq(llmgpu_session_sample(s, &q, &b2), LLMGPU_OK);
        ck_assert_int_eq(b2, 123);
    }
    ck_assert_int_eq(llmgpu_session_sample(NULL, &p, &a), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(llmgpu_session_sample(s, &p, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    llmgpu_session_free(s);
    llmgpu_model_free(m);
    tu_log_clear(&tlog);
}
END_TEST

START_TEST(uniform_hash) {
    /* deterministic, in [0, 1), and not constant across seeds or indices */
    ck_assert(lg_sample_uniform(1, 2) == lg_sample_uniform(1, 2));
    ck_assert(lg_sample_uniform(1, 2) != lg_sample_uniform(1, 3));
    ck_assert(lg_sample_uniform(1, 2) != lg_sample_uniform(2, 2));
    for (uint64_t i = 0; i < 1000; i++) {
        float u = lg_sample_uniform(i * 7, i);
        ck_assert(u >= 0.0f && u < 1.0f);
    }
}
END_TEST

Suite *sampler_suite(void) {
    Suite *s = suite_create("sampler");
    TCase *core = tcase_create("Core");
    TCase *edges = tcase_create("Edges");
    TCase *stats = tcase_create("Stats");
    TCase *cpu = tcase_create("Hash");
    tcase_set_tags(core, "gpu");
    tcase_set_tags(edges, "gpu");
    tcase_set_tags(stats, "gpu");
    tcase_add_unchecked_fixture(core, setup, teardown);
    tcase_add_unchecked_fixture(edges, setup, teardown);
    tcase_add_unchecked_fixture(stats, setup, teardown);
    tcase_add_loop_test(core, gpu_matches_reference, 0, 5);
    tcase_add_loop_test(core, gpu_matches_reference_ties, 0, 3);
    tcase_add_test(edges, greedy_is_argmax);
    tcase_add_test(edges, filters_off_change_nothing);
    tcase_add_test(edges, all_but_one_banned);
    tcase_add_test(edges, bad_params);
    tcase_add_test(edges, penalty_semantics);
    tcase_add_test(edges, session_sample);
    tcase_add_test(stats, distribution_chi_square);
    tcase_add_test(cpu, uniform_hash);
    tcase_set_timeout(core, 600);
    tcase_set_timeout(stats, 600);
    suite_add_tcase(s, core);
    suite_add_tcase(s, edges);
    suite_add_tcase(s, stats);
    suite_add_tcase(s, cpu);
    return s;
}
