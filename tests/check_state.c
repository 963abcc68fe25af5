/*
 * check_state.c - llmgpu_session_save / llmgpu_session_load (lib/state.c) on tiny
 * generated models: a loaded session continues exactly like the one that saved
 * it (same logits, same greedy tokens), in a session of another n_ctx; every
 * damaged or foreign file is refused with the session left as it was.
 * Tagged "gpu".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static struct tu_log tlog;
static struct llmgpu_context *g_ctx;
static struct llmgpu_model *g_model, *g_other;

#define NV 300

static struct llmgpu_model *make_model(int seed) {
    char dir[512];
    struct llmgpu_model_params mp;
    struct llmgpu_model *m;
    tu_mkmodel(dir, sizeof dir,
               "--arch llama --dtype f32 --layers 2 --hidden 32 --heads 4 --kv-heads 2 --ff 64 "
               "--vocab %d --ctx 1024 --seed %d", NV, seed);
    llmgpu_model_params_init(&mp);
    mp.weight_type = LLMGPU_WEIGHT_TYPE_F32;
    ck_assert_int_eq(llmgpu_model_load(g_ctx, dir, &mp, &m), LLMGPU_OK);
    return m;
}

static void setup(void) {
    tu_log_clear(&tlog);
    g_ctx = tu_context(&tlog, NULL);
    g_model = make_model(51);
    g_other = make_model(52); /* same dims, other weights */
}

static void teardown(void) {
    llmgpu_model_free(g_other);
    llmgpu_model_free(g_model);
    tu_context_free(g_ctx);
}

static struct llmgpu_session *session(struct llmgpu_model *m, uint32_t n_ctx) {
    struct llmgpu_session_params sp;
    struct llmgpu_session *s;
    llmgpu_session_params_init(&sp);
    sp.n_ctx = n_ctx;
    ck_assert_int_eq(llmgpu_session_create(m, &sp, &s), LLMGPU_OK);
    return s;
}

static int32_t prompt[20];

static void fill_prompt(void) {
    prompt[0] = 1;
    for (int i = 1; i < 20; i++)
        prompt[i] = (int32_t)((i * 7919 + 13) % NV);
}

/* Greedy tokens after evaluating `last`. */
static void continue_greedy(struct llmgpu_session *s, int32_t last, int32_t *out, int n) {
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(llmgpu_session_decode(s, i ? out[i - 1] : last), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_session_sample_greedy(s, &out[i]), LLMGPU_OK);
    }
}

START_TEST(roundtrip_continues_identically) {
    struct llmgpu_session *a = session(g_model, 64), *b = session(g_model, 40);
    char path[512];
    float la[NV], lb[NV];
    size_t n = NV;
    int32_t ta[12], tb[12], tok;
    fill_prompt();
    tu_tmp_path("state_roundtrip.kv", path, sizeof path);
    /* save with all but the last prompt token evaluated */
    ck_assert_int_eq(llmgpu_session_prefill(a, prompt, 19), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_save(a, path), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_load(b, path), LLMGPU_OK);
    ck_assert_uint_eq(llmgpu_session_position(b), 19);
    /* no logits after a load */
    ck_assert_int_eq(llmgpu_session_sample_greedy(b, &tok), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(llmgpu_session_decode(a, prompt[19]), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_decode(b, prompt[19]), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_logits(a, la, &n), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_logits(b, lb, &n), LLMGPU_OK);
    ck_assert_int_eq(memcmp(la, lb, sizeof la), 0);
    ck_assert_int_eq(llmgpu_session_sample_greedy(a, &tok), LLMGPU_OK);
    continue_greedy(a, tok, ta, 12);
    ck_assert_int_eq(llmgpu_session_sample_greedy(b, &tok), LLMGPU_OK);
    continue_greedy(b, tok, tb, 12);
    ck_assert_int_eq(memcmp(ta, tb, sizeof ta), 0);
    /* through llmgpu_generate: the same text as the uninterrupted session */
    {
        struct llmgpu_session *c = session(g_model, 64);
        struct llmgpu_generate_params gp;
        struct llmgpu_generate_result r = {.struct_size = sizeof r};
        llmgpu_generate_params_init(&gp);
        gp.max_tokens = 6;
        ck_assert_int_eq(llmgpu_session_load(c, path), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_generate(c, prompt + 19, 1, &gp, &r), LLMGPU_OK);
        ck_assert_uint_eq(r.n_generated, 6);
        ck_assert_uint_eq(llmgpu_session_position(c), 26);
        llmgpu_session_free(c);
    }
    /* position 0 round-trips too */
    llmgpu_session_reset(a);
    ck_assert_int_eq(llmgpu_session_save(a, path), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_load(b, path), LLMGPU_OK);
    ck_assert_uint_eq(llmgpu_session_position(b), 0);
    llmgpu_session_free(a);
    llmgpu_session_free(b);
}
END_TEST

/* A state longer than a fresh session's first KV page (256 positions): the
 * load grows the cache before writing the rows. */
START_TEST(roundtrip_beyond_first_kv_page) {
    struct llmgpu_session *a = session(g_model, 600), *b = session(g_model, 600);
    char path[512];
    int32_t toks[300];
    float la[NV], lb[NV];
    size_t n = NV;
    for (int i = 0; i < 300; i++)
        toks[i] = (int32_t)((i * 7919 + 13) % NV);
    tu_tmp_path("state_long.kv", path, sizeof path);
    ck_assert_int_eq(llmgpu_session_prefill(a, toks, 299), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_save(a, path), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_load(b, path), LLMGPU_OK);
    ck_assert_uint_eq(llmgpu_session_position(b), 299);
    ck_assert_int_eq(llmgpu_session_decode(a, toks[299]), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_decode(b, toks[299]), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_logits(a, la, &n), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_logits(b, lb, &n), LLMGPU_OK);
    ck_assert_int_eq(memcmp(la, lb, sizeof la), 0);
    llmgpu_session_free(a);
    llmgpu_session_free(b);
    ck_assert_uint_eq(llmgpu_context_validation_errors(g_ctx), 0);
}
END_TEST

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *d;
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    d = malloc(*len + 16);
    ck_assert_uint_eq(fread(d, 1, *len, f), *len);
    fclose(f);
    return d;
}

static void spit(const char *path, const unsigned char *d, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(d, 1, len, f), len);
    fclose(f);
}

/* A load of path into s must fail with want and leave s as it was. */
static void refused(struct llmgpu_session *s, const char *path, enum llmgpu_status want,
                    const char *what) {
    float before[NV], after[NV];
    size_t n = NV;
    uint32_t pos = llmgpu_session_position(s);
    enum llmgpu_status st;
    ck_assert_int_eq(llmgpu_session_logits(s, before, &n), LLMGPU_OK);
    tu_log_clear(&tlog);
    st = llmgpu_session_load(s, path);
    ck_assert_msg(st == want, "%s: %s, wanted %s", what, llmgpu_status_name(st),
                  llmgpu_status_name(want));
    ck_assert_msg(tlog.len > 0, "%s: nothing logged", what);
    ck_assert_uint_eq(llmgpu_session_position(s), pos);
    ck_assert_int_eq(llmgpu_session_logits(s, after, &n), LLMGPU_OK);
    ck_assert_int_eq(memcmp(before, after, sizeof before), 0);
}

START_TEST(damaged_and_foreign_files_refused) {
    struct llmgpu_session *a = session(g_model, 64), *b = session(g_model, 64);
    struct llmgpu_session *small = session(g_model, 8), *other = session(g_other, 64);
    char path[512], bad[512];
    unsigned char *d, *e;
    size_t len;
    uint32_t v;
    fill_prompt();
    tu_tmp_path("state_good.kv", path, sizeof path);
    tu_tmp_path("state_bad.kv", bad, sizeof bad);
    ck_assert_int_eq(llmgpu_session_prefill(a, prompt, 12), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_save(a, path), LLMGPU_OK);
    d = slurp(path, &len);
    e = malloc(len + 16);
    /* b, small and other hold other tokens, with logits, that must survive */
    ck_assert_int_eq(llmgpu_session_prefill(b, prompt + 3, 5), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_prefill(small, prompt + 3, 5), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_session_prefill(other, prompt + 3, 5), LLMGPU_OK);

#define DAMAGE(what, status, body)                                                                 \
    do {                                                                                           \
        size_t elen = len;                                                                         \
        memcpy(e, d, len);                                                                         \
        body;                                                                                      \
        spit(bad, e, elen);                                                                        \
        refused(b, bad, status, what);                                                             \
    } while (0)
    DAMAGE("magic", LLMGPU_ERR_BAD_MODEL_FILE, e[0] ^= 1);
    DAMAGE("format version", LLMGPU_ERR_BAD_MODEL_FILE, e[8] = 2);
    DAMAGE("model identity", LLMGPU_ERR_BAD_MODEL_FILE, e[20] ^= 0x40);
    DAMAGE("n_layer", LLMGPU_ERR_BAD_MODEL_FILE, e[32] = 3);
    DAMAGE("n_kv_head", LLMGPU_ERR_BAD_MODEL_FILE, e[36] = 4);
    DAMAGE("head_dim", LLMGPU_ERR_BAD_MODEL_FILE, e[40] = 16);
    DAMAGE("kv type", LLMGPU_ERR_BAD_MODEL_FILE, e[44] = 2);
    DAMAGE("position beyond its n_ctx", LLMGPU_ERR_BAD_MODEL_FILE,
           (v = 65, memcpy(e + 52, &v, 4)));
    DAMAGE("position changed", LLMGPU_ERR_BAD_MODEL_FILE, (v = 11, memcpy(e + 52, &v, 4)));
    DAMAGE("reserved", LLMGPU_ERR_BAD_MODEL_FILE, e[60] = 1);
    DAMAGE("truncated", LLMGPU_ERR_BAD_MODEL_FILE, elen = len - 9);
    DAMAGE("truncated header", LLMGPU_ERR_BAD_MODEL_FILE, elen = 40);
    DAMAGE("empty", LLMGPU_ERR_BAD_MODEL_FILE, elen = 0);
    DAMAGE("padded", LLMGPU_ERR_BAD_MODEL_FILE, (e[len] = 0, elen = len + 1));
    DAMAGE("a KV byte flipped", LLMGPU_ERR_BAD_MODEL_FILE, e[64 + 101] ^= 0x10);
    DAMAGE("checksum", LLMGPU_ERR_BAD_MODEL_FILE, e[len - 1] ^= 1);
#undef DAMAGE
    /* the intact file: other model, too small a session, a missing file */
    refused(other, path, LLMGPU_ERR_BAD_MODEL_FILE, "other model");
    refused(small, path, LLMGPU_ERR_CONTEXT_FULL, "n_ctx too small");
    tu_tmp_path("state_missing.kv", bad, sizeof bad);
    remove(bad);
    refused(b, bad, LLMGPU_ERR_IO, "missing");
    /* and it still loads */
    ck_assert_int_eq(llmgpu_session_load(b, path), LLMGPU_OK);
    ck_assert_uint_eq(llmgpu_session_position(b), 12);
    /* save errors */
    ck_assert_int_eq(llmgpu_session_save(a, "/nonexistent-dir/x.kv"), LLMGPU_ERR_IO);
    ck_assert_int_eq(llmgpu_session_save(NULL, path), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(llmgpu_session_save(a, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(llmgpu_session_load(NULL, path), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(llmgpu_session_load(a, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    free(d);
    free(e);
    llmgpu_session_free(a);
    llmgpu_session_free(b);
    llmgpu_session_free(small);
    llmgpu_session_free(other);
}
END_TEST

Suite *state_suite(void) {
    Suite *s = suite_create("state");
    TCase *core = tcase_create("Core");
    tcase_set_tags(core, "gpu");
    tcase_add_unchecked_fixture(core, setup, teardown);
    tcase_add_test(core, roundtrip_continues_identically);
    tcase_add_test(core, damaged_and_foreign_files_refused);
    tcase_add_test(core, roundtrip_beyond_first_kv_page);
    tcase_set_timeout(core, 600);
    suite_add_tcase(s, core);
    return s;
}
