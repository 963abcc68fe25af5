/*
 * check_generate.c - llmgpu_generate (lib/generate.c) on a tiny generated model:
 * the tokens equal a hand-written prefill/sample/decode loop, the streamed text
 * equals llmgpu_detokenize, stop strings cut the text exactly where they begin
 * and text that may begin one is held back only while it can, the callback
 * stops generation, multi-turn calls reuse the KV cache, a full context stops
 * it, and bad params are refused. Also llmgpu_session_truncate.
 * Tagged "gpu".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define LG_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

static struct tu_log tlog;
static struct llmgpu_context *g_ctx;
static struct llmgpu_model *g_model;

static int32_t prompt_a[16], prompt_b[16];
static size_t n_a, n_b;

static void setup(void) {
    char dir[512];
    struct llmgpu_model_params mp;
    tu_log_clear(&tlog);
    g_ctx = tu_context(&tlog, NULL);
    tu_data_path("../models/demo", dir, sizeof dir);
    llmgpu_model_params_init(&mp);
    ck_assert_int_eq(llmgpu_model_load(g_ctx, dir, &mp, &g_model), LLMGPU_OK);
    n_a = 16;
    ck_assert_int_eq(llmgpu_tokenize(g_model, "Once upon a time", 16,
                                     LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL, prompt_a, &n_a), LLMGPU_OK);
    n_b = 16;
    ck_assert_int_eq(llmgpu_tokenize(g_model, " The dog said", 13, 0, prompt_b, &n_b), LLMGPU_OK);
}

static void teardown(void) {
    llmgpu_model_free(g_model);
    tu_context_free(g_ctx);
}

static struct llmgpu_session *session(uint32_t n_ctx) {
    struct llmgpu_session_params sp;
    struct llmgpu_session *s;
    llmgpu_session_params_init(&sp);
    sp.n_ctx = n_ctx;
    ck_assert_int_eq(llmgpu_session_create(g_model, &sp, &s), LLMGPU_OK);
    return s;
}


/* What the callback saw. */
struct seen {
    int32_t tokens[256];
    int n_tokens;
    char text[4096];
    size_t len;
    size_t last_len;  /* bytes of the last call */
    int stop_after;   /* return 1 at this many tokens; 0: never */
    int bad_utf8;
};

static int utf8_complete(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] >> 6) != 2)
                return 0;
        i += k;
    }
    return 1;
}

static int on_token(int32_t token, const char *text, size_t len, void *user) {
    struct seen *sn = user;
    ck_assert_ptr_nonnull(text); /* even when len is 0 (an EOS first: no text yet) */
    ck_assert_int_lt(sn->n_tokens, 256);
    ck_assert_uint_lt(sn->len + len, sizeof sn->text);
    sn->tokens[sn->n_tokens++] = token;
    if (!utf8_complete(text, len))
        sn->bad_utf8 = 1;
    memcpy(sn->text + sn->len, text, len);
    sn->len += len;
    sn->last_len = len;
    return sn->stop_after && sn->n_tokens >= sn->stop_after;
}

static enum llmgpu_status gen(struct llmgpu_session *s, const int32_t *p, size_t n,
                              uint32_t max_tokens, const char *const *stop, uint32_t n_stop,
                              struct seen *sn, struct llmgpu_generate_result *r) {
    struct llmgpu_generate_params gp;
    llmgpu_generate_params_init(&gp);
    gp.max_tokens = max_tokens;
    gp.stop = stop;
    gp.n_stop = n_stop;
    gp.on_token = on_token;
    gp.user = sn;
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
    return llmgpu_generate(s, p, n, &gp, r);
}

/* The reference loop: prefill, then greedy sample + decode n times. */
static void manual(struct llmgpu_session *s, const int32_t *p, size_t n, int n_gen, int32_t *out) {
    if (n)
        ck_assert_int_eq(llmgpu_session_prefill(s, p, n), LLMGPU_OK);
    for (int i = 0; i < n_gen; i++) {
        ck_assert_int_eq(llmgpu_session_sample_greedy(s, &out[i]), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_session_decode(s, out[i]), LLMGPU_OK);
    }
}

/* Text the generated tokens add after the prompt, by llmgpu_detokenize. */
static size_t added_text(const int32_t *p, size_t n, const int32_t *g, size_t ng, char *out,
                         size_t cap) {
    int32_t all[512];
    char a[4096];
    size_t la = sizeof a, lb = cap;
    memcpy(all, p, n * sizeof *p);
    memcpy(all + n, g, ng * sizeof *g);
    ck_assert_int_eq(llmgpu_detokenize(g_model, p, n, LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL, a, &la),
                     LLMGPU_OK);
    ck_assert_int_eq(llmgpu_detokenize(g_model, all, n + ng, LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL,
                                       out, &lb),
                     LLMGPU_OK);
    ck_assert_uint_ge(lb, la);
    ck_assert_int_eq(memcmp(a, out, la), 0);
    memmove(out, out + la, lb - la);
    return lb - la;
}

START_TEST(greedy_equals_manual_loop) {
    struct llmgpu_session *s = session(64), *ref = session(64);
    struct llmgpu_generate_result r;
    struct seen sn = {0};
    int32_t want[12];
    char text[4096];
    size_t len;
    ck_assert_int_eq(gen(s, prompt_a, n_a, 12, NULL, 0, &sn, &r), LLMGPU_OK);
    manual(ref, prompt_a, n_a, 12, want);
    ck_assert_int_eq(sn.n_tokens, 12);
    ck_assert_int_eq(memcmp(sn.tokens, want, sizeof want), 0);
    ck_assert_int_eq(r.stop_reason, LLMGPU_STOP_REASON_MAX_TOKENS);
    ck_assert_uint_eq(r.n_prompt, n_a);
    ck_assert_uint_eq(r.n_generated, 12);
    ck_assert(r.prompt_ms >= 0 && r.ttft_ms >= r.prompt_ms && r.decode_ms > 0);
    /* every sampled token was evaluated */
    ck_assert_uint_eq(llmgpu_session_position(s), n_a + 12);
    /* the streamed text is what the tokens add to the prompt's text */
    len = added_text(prompt_a, n_a, want, 12, text, sizeof text);
    ck_assert_uint_gt(len, 0);
    ck_assert_msg(sn.len == len, "stream [%.*s] detok [%.*s]", (int)sn.len, sn.text, (int)len, text);
    ck_assert_int_eq(memcmp(sn.text, text, len), 0);
    ck_assert(!sn.bad_utf8);
    llmgpu_session_free(s);
    llmgpu_session_free(ref);
    /* no params, result or callback: until the context is full */
    s = session(24);
    ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, NULL, NULL), LLMGPU_OK);
    ck_assert_uint_eq(llmgpu_session_position(s), 24);
    llmgpu_session_free(s);
}
END_TEST

START_TEST(stop_strings) {
    struct llmgpu_session *s = session(64);
    struct llmgpu_generate_result r;
    struct seen full = {0}, sn;
    char stop[64], never[64];
    const char *stops[2];
    const char *hit;
    size_t off, sl = 3;
    ck_assert_int_eq(gen(s, prompt_a, n_a, 16, NULL, 0, &full, &r), LLMGPU_OK);
    ck_assert_uint_gt(full.len, 8);
    /* a stop string from the middle of the text: the output ends right before its
     * first occurrence */
    off = full.len / 2;
    while (off > 0 && ((unsigned char)full.text[off] >> 6) == 2)
        off--;
    memcpy(stop, full.text + off, sl);
    stop[sl] = 0;
    while (!utf8_complete(stop, strlen(stop)))
        stop[strlen(stop) - 1] = 0;
    ck_assert_uint_gt(strlen(stop), 0);
    hit = memmem(full.text, full.len, stop, strlen(stop));
    ck_assert_ptr_nonnull(hit);
    stops[0] = "\x01never";
    stops[1] = stop;
    memset(&sn, 0, sizeof sn);
    llmgpu_session_reset(s);
    ck_assert_int_eq(gen(s, prompt_a, n_a, 16, stops, 2, &sn, &r), LLMGPU_OK);
    ck_assert_int_eq(r.stop_reason, LLMGPU_STOP_REASON_STOP_STRING);
    ck_assert_uint_eq(sn.len, (size_t)(hit - full.text));
    ck_assert_int_eq(memcmp(sn.text, full.text, sn.len), 0);
    ck_assert_int_le(sn.n_tokens, 16);
    ck_assert_int_eq(memcmp(sn.tokens, full.tokens, (size_t)sn.n_tokens * 4), 0);
    ck_assert_uint_eq(llmgpu_session_position(s), n_a + r.n_generated);

    /* a stop string whose beginning is the text's end but which never completes:
     * that tail is held back while it could still match, then released by the
     * last token's call, so the text is whole */
    snprintf(never, sizeof never, "%.*s\x02", (int)LG_TEST_MIN(full.len, 4),
             full.text + full.len - LG_TEST_MIN(full.len, 4));
    stops[0] = never;
    memset(&sn, 0, sizeof sn);
    llmgpu_session_reset(s);
    ck_assert_int_eq(gen(s, prompt_a, n_a, 16, stops, 1, &sn, &r), LLMGPU_OK);
    ck_assert_int_eq(r.stop_reason, LLMGPU_STOP_REASON_MAX_TOKENS);
    ck_assert_uint_eq(sn.len, full.len);
    ck_assert_int_eq(memcmp(sn.text, full.text, full.len), 0);
    ck_assert_uint_ge(sn.last_len, strlen(never) - 1);
    ck_assert(!sn.bad_utf8);
    llmgpu_session_free(s);
}
END_TEST

START_TEST(callback_stops) {
    struct llmgpu_session *s = session(64);
    struct llmgpu_generate_result r;
    struct seen sn = {0};
    sn.stop_after = 3;
    ck_assert_int_eq(gen(s, prompt_a, n_a, 16, NULL, 0, &sn, &r), LLMGPU_OK);
    ck_assert_int_eq(r.stop_reason, LLMGPU_STOP_REASON_CALLBACK);
    ck_assert_uint_eq(r.n_generated, 3);
    ck_assert_int_eq(sn.n_tokens, 3);
    ck_assert_uint_eq(llmgpu_session_position(s), n_a + 3);
    llmgpu_session_free(s);
}
END_TEST

START_TEST(multi_turn_reuses_cache) {
    struct llmgpu_session *s = session(64), *ref = session(64);
    struct llmgpu_generate_result r;
    struct seen sn = {0};
    int32_t want[15];
    /* turn 1, then turn 2 appended, then a continuation with no prompt */
    ck_assert_int_eq(gen(s, prompt_a, n_a, 5, NULL, 0, &sn, &r), LLMGPU_OK);
    ck_assert_int_eq(gen(s, prompt_b, n_b, 5, NULL, 0, &sn, &r), LLMGPU_OK);
    ck_assert_uint_eq(r.n_prompt, n_b);
    ck_assert_int_eq(gen(s, NULL, 0, 5, NULL, 0, &sn, &r), LLMGPU_OK);
    ck_assert_uint_eq(r.n_prompt, 0);
    manual(ref, prompt_a, n_a, 5, want);
    manual(ref, prompt_b, n_b, 10, want + 5);
    ck_assert_int_eq(sn.n_tokens, 15);
    ck_assert_int_eq(memcmp(sn.tokens, want, sizeof want), 0);
    ck_assert_uint_eq(llmgpu_session_position(s), llmgpu_session_position(ref));
    llmgpu_session_free(s);
    llmgpu_session_free(ref);
}
END_TEST

START_TEST(eog_and_sampler) {
    struct llmgpu_session *s = session(64);
    struct llmgpu_generate_params gp;
    struct llmgpu_generate_result r = {.struct_size = sizeof r};
    struct llmgpu_sampler_params smp;
    struct seen sn = {0};
    int32_t eos = llmgpu_model_token_eos(g_model);
    float big = 1000.0f;
    ck_assert_int_ge(eos, 0);
    llmgpu_sampler_params_init(&smp);
    smp.temperature = 0;
    smp.bias_ids = &eos;
    smp.bias_values = &big;
    smp.n_bias = 1;
    llmgpu_generate_params_init(&gp);
    gp.sampler = &smp;
    gp.on_token = on_token;
    gp.user = &sn;
    ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, &gp, &r), LLMGPU_OK);
    ck_assert_int_eq(r.stop_reason, LLMGPU_STOP_REASON_EOG);
    ck_assert_uint_eq(r.n_generated, 1);
    ck_assert_int_eq(sn.tokens[0], eos);
    ck_assert_uint_eq(sn.len, 0);
    ck_assert_uint_eq(llmgpu_session_position(s), n_a + 1);
    /* IGNORE_EOG: it goes on to max_tokens */
    gp.flags = LLMGPU_GENERATE_FLAG_IGNORE_EOG;
    gp.max_tokens = 3;
    ck_assert_int_eq(llmgpu_generate(s, NULL, 0, &gp, &r), LLMGPU_OK);
    ck_assert_int_eq(r.stop_reason, LLMGPU_STOP_REASON_MAX_TOKENS);
    ck_assert_uint_eq(r.n_generated, 3);
    /* SPECIAL_TEXT: the EOS token's text is streamed (and searched for stops) */
    {
        char eos_text[64], want[128];
        size_t el = sizeof eos_text;
        ck_assert_int_eq(llmgpu_detokenize(g_model, &eos, 1, 0, eos_text, &el), LLMGPU_OK);
        ck_assert_uint_gt(el, 0);
        snprintf(want, sizeof want, "%.*s%.*s", (int)el, eos_text, (int)el, eos_text);
        memset(&sn, 0, sizeof sn);
        gp.flags = LLMGPU_GENERATE_FLAG_IGNORE_EOG | LLMGPU_GENERATE_FLAG_SPECIAL_TEXT;
        gp.max_tokens = 2;
        ck_assert_int_eq(llmgpu_generate(s, NULL, 0, &gp, &r), LLMGPU_OK);
        ck_assert_uint_eq(sn.len, 2 * el);
        ck_assert_int_eq(memcmp(sn.text, want, 2 * el), 0);
    }
    /* seeded sampling through generate is reproducible */
    {
        struct seen a = {0}, b = {0};
        llmgpu_sampler_params_init(&smp);
        smp.seed = 5;
        smp.temperature = 1.5f;
        gp.flags = 0;
        gp.max_tokens = 8;
        gp.user = &a;
        llmgpu_session_reset(s);
        ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, &gp, &r), LLMGPU_OK);
        gp.user = &b;
        llmgpu_session_reset(s);
        ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, &gp, &r), LLMGPU_OK);
        ck_assert_int_eq(a.n_tokens, b.n_tokens);
        ck_assert_int_eq(memcmp(a.tokens, b.tokens, (size_t)a.n_tokens * 4), 0);
    }
    llmgpu_session_free(s);
}
END_TEST

START_TEST(context_full) {
    struct llmgpu_session *s = session(16);
    struct llmgpu_generate_result r;
    struct seen sn = {0};
    int32_t big[17] = {1};
    ck_assert_int_eq(gen(s, big, 17, 0, NULL, 0, &sn, &r), LLMGPU_ERR_CONTEXT_FULL);
    ck_assert_uint_eq(llmgpu_session_position(s), 0);
    ck_assert_int_eq(gen(s, prompt_a, n_a, 0, NULL, 0, &sn, &r), LLMGPU_OK);
    ck_assert_int_eq(r.stop_reason, LLMGPU_STOP_REASON_CONTEXT_FULL);
    ck_assert_uint_eq(r.n_generated, 16 - n_a);
    ck_assert_uint_eq(llmgpu_session_position(s), 16);
    ck_assert_int_eq(gen(s, NULL, 0, 0, NULL, 0, &sn, &r), LLMGPU_OK);
    ck_assert_int_eq(r.stop_reason, LLMGPU_STOP_REASON_CONTEXT_FULL);
    ck_assert_uint_eq(r.n_generated, 0);
    llmgpu_session_free(s);
}
END_TEST

START_TEST(bad_arguments) {
    struct llmgpu_session *s = session(32);
    struct llmgpu_generate_params gp;
    struct llmgpu_generate_result r = {0};
    const char *empty[1] = {""};
    llmgpu_generate_params_init(&gp);
    ck_assert_uint_eq(gp.struct_size, sizeof gp);
    ck_assert_int_eq(llmgpu_generate(NULL, prompt_a, n_a, &gp, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(llmgpu_generate(s, NULL, 6, &gp, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    /* nothing to continue from */
    ck_assert_int_eq(llmgpu_generate(s, NULL, 0, &gp, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    gp.struct_size = 0;
    ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, &gp, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    llmgpu_generate_params_init(&gp);
    gp.flags = 1u << 30;
    ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, &gp, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    llmgpu_generate_params_init(&gp);
    gp.stop = empty;
    gp.n_stop = 1;
    ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, &gp, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    gp.stop = NULL;
    ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, &gp, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    llmgpu_generate_params_init(&gp);
    ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, &gp, &r), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(llmgpu_session_position(s), 0);
    /* an out-of-vocabulary prompt token: the error, and the result says so */
    {
        int32_t bad[2] = {1, 100000};
        r.struct_size = sizeof r;
        ck_assert_int_eq(llmgpu_generate(s, bad, 2, &gp, &r), LLMGPU_ERR_INVALID_TOKEN);
        ck_assert_int_eq(r.stop_reason, LLMGPU_STOP_REASON_NONE);
    }
    /* a short result struct is filled up to its size */
    {
        struct llmgpu_generate_result small;
        memset(&small, 0xAB, sizeof small);
        small.struct_size = 12;
        gp.max_tokens = 2;
        ck_assert_int_eq(llmgpu_generate(s, prompt_a, n_a, &gp, &small), LLMGPU_OK);
        ck_assert_int_eq(small.stop_reason, LLMGPU_STOP_REASON_MAX_TOKENS);
        ck_assert_uint_eq(small.n_generated, 0xABABABABu);
    }
    llmgpu_session_free(s);
}
END_TEST

START_TEST(truncate) {
    struct llmgpu_session *s = session(64), *ref = session(64);
    struct llmgpu_generate_result r;
    struct seen sn = {0};
    int32_t want[4];
    ck_assert_int_eq(gen(s, prompt_a, n_a, 5, NULL, 0, &sn, &r), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_truncate(s, (uint32_t)n_a + 6), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(llmgpu_session_truncate(s, (uint32_t)n_a + 5), LLMGPU_OK); /* no change */
    ck_assert_int_eq(gen(s, NULL, 0, 1, NULL, 0, &sn, &r), LLMGPU_OK);
    /* back to the prompt, then a different continuation */
    ck_assert_int_eq(llmgpu_session_truncate(s, (uint32_t)n_a), LLMGPU_OK);
    ck_assert_uint_eq(llmgpu_session_position(s), n_a);
    ck_assert_int_eq(llmgpu_generate(s, NULL, 0, NULL, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    memset(&sn, 0, sizeof sn);
    ck_assert_int_eq(gen(s, prompt_b, n_b, 4, NULL, 0, &sn, &r), LLMGPU_OK);
    manual(ref, prompt_a, n_a, 0, want);
    manual(ref, prompt_b, n_b, 4, want);
    ck_assert_int_eq(memcmp(sn.tokens, want, sizeof want), 0);
    ck_assert_int_eq(llmgpu_session_truncate(NULL, 0), LLMGPU_ERR_INVALID_ARGUMENT);
    llmgpu_session_free(s);
    llmgpu_session_free(ref);
}
END_TEST

/* A random tiny model emits byte tokens that are not UTF-8 on their own: the
 * callback still only ever gets complete characters. */
START_TEST(utf8_pieces_from_byte_tokens) {
    char dir[512];
    struct llmgpu_model_params mp;
    struct llmgpu_model *m;
    struct llmgpu_session *s;
    struct llmgpu_generate_params gp;
    struct llmgpu_generate_result r = {.struct_size = sizeof r};
    struct seen sn = {0};
    int32_t p[4] = {1, 200, 300, 250};
    tu_mkmodel(dir, sizeof dir,
               "--arch llama --dtype f32 --layers 1 --hidden 32 --heads 4 --kv-heads 2 --ff 64 "
               "--vocab 320 --ctx 128 --seed 41");
    llmgpu_model_params_init(&mp);
    mp.weight_type = LLMGPU_WEIGHT_TYPE_F32;
    ck_assert_int_eq(llmgpu_model_load(g_ctx, dir, &mp, &m), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_create(m, NULL, &s), LLMGPU_OK);
    llmgpu_generate_params_init(&gp);
    gp.max_tokens = 40;
    gp.flags = LLMGPU_GENERATE_FLAG_IGNORE_EOG;
    gp.on_token = on_token;
    gp.user = &sn;
    ck_assert_int_eq(llmgpu_generate(s, p, 4, &gp, &r), LLMGPU_OK);
    ck_assert_int_eq(sn.n_tokens, 40);
    ck_assert_uint_gt(sn.len, 0);
    ck_assert(!sn.bad_utf8);
    llmgpu_session_free(s);
    llmgpu_model_free(m);
}
END_TEST

START_TEST(memory_and_context_stats) {
    struct llmgpu_session_params sp;
    struct llmgpu_session_memory mem = {.struct_size = sizeof mem};
    struct llmgpu_context_stats before = {.struct_size = sizeof before}, after = before;
    struct llmgpu_model_info mi = {.struct_size = sizeof mi};
    struct llmgpu_session *s;
    uint64_t delta, est;
    llmgpu_session_params_init(&sp);
    sp.n_ctx = 96;
    sp.n_batch = 16;
    ck_assert_int_eq(llmgpu_model_info(g_model, &mi), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_memory(g_model, &sp, &mem), LLMGPU_OK);
    ck_assert_uint_eq(mem.kv_bytes, 2ull * mi.n_layer * 96 * mi.n_kv_head * mi.head_dim * 2);
    ck_assert_int_eq(llmgpu_context_stats(g_ctx, &before), LLMGPU_OK);
    ck_assert_uint_ge(before.device_bytes, mi.weight_bytes);
    ck_assert_uint_gt(before.kernels_compiled + before.kernel_cache_hits, 0);
    ck_assert_int_eq(llmgpu_session_create(g_model, &sp, &s), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_context_stats(g_ctx, &after), LLMGPU_OK);
    /* what the session allocated on the device, within alignment of the formula
     * (the step and result buffers are host-visible, device-local or not) */
    delta = after.device_bytes - before.device_bytes;
    est = mem.kv_bytes + mem.scratch_bytes;
    ck_assert_msg(delta + 16 + 4 * 16 + 16 + 4ull * mi.n_vocab >= est &&
                      delta <= est + (14 + 2ull * mi.n_layer) * 256,
                  "session took %llu device bytes, the formula says %llu",
                  (unsigned long long)delta, (unsigned long long)est);
    llmgpu_session_free(s);
    ck_assert_int_eq(llmgpu_context_stats(g_ctx, &after), LLMGPU_OK);
    ck_assert_uint_eq(after.device_bytes, before.device_bytes);
    /* defaults and errors */
    ck_assert_int_eq(llmgpu_session_memory(g_model, NULL, &mem), LLMGPU_OK);
    ck_assert_uint_eq(mem.kv_bytes, 2ull * mi.n_layer * LG_TEST_MIN(mi.n_ctx_train, 4096) *
                                        mi.n_kv_head * mi.head_dim * 2);
    mem.struct_size = 0;
    ck_assert_int_eq(llmgpu_session_memory(g_model, NULL, &mem), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(llmgpu_context_stats(NULL, &after), LLMGPU_ERR_INVALID_ARGUMENT);
}
END_TEST

Suite *generate_suite(void) {
    Suite *s = suite_create("generate");
    TCase *core = tcase_create("Core");
    tcase_set_tags(core, "gpu");
    /* one TCase: the model is loaded and its kernels compiled once */
    tcase_add_unchecked_fixture(core, setup, teardown);
    tcase_add_test(core, greedy_equals_manual_loop);
    tcase_add_test(core, stop_strings);
    tcase_add_test(core, callback_stops);
    tcase_add_test(core, multi_turn_reuses_cache);
    tcase_add_test(core, eog_and_sampler);
    tcase_add_test(core, context_full);
    tcase_add_test(core, bad_arguments);
    tcase_add_test(core, truncate);
    tcase_add_test(core, utf8_pieces_from_byte_tokens);
    tcase_add_test(core, memory_and_context_stats);
    tcase_set_timeout(core, 600);
    suite_add_tcase(s, core);
    return s;
}
