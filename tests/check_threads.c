/*
 * check_threads.c - several sessions of one model used from several threads at
 * once (the header's rules: the model and context are shared, a session belongs
 * to one thread at a time). Four threads generate greedily, each in its own
 * session, concurrently; every thread's tokens must equal those of the same
 * generation run alone, one after another. Another thread cancels a running
 * generation through the token callback (an atomic flag the callback reads).
 *
 * The context runs with the validation layer where it is installed, so its
 * thread-safety checker sees every queue use: the library waits for the queue
 * under the same lock as its submits (lg_vk_wait_idle), which is what made the
 * checker quiet. Sessions are created before the threads start and freed after.
 * A third test does what the header allows around running generations: another
 * model loaded (quantized to q8_0 on the loader's worker threads, its kernels
 * compiled) on the same context, and sessions of the shared model created and
 * freed, all while two threads generate; every result must equal its solo run.
 * Tagged "gpu" and "threads" (make check-tsan runs the latter under TSan).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define NV 300
#define N_THREADS 4
#define N_GEN 16

static struct tu_log tlog;
static struct llmgpu_context *g_ctx;
static struct llmgpu_model *g_model;

static void setup(void) {
    char dir[512];
    struct llmgpu_model_params mp;
    tu_log_clear(&tlog);
    g_ctx = tu_context(&tlog, NULL); /* with the validation layer where installed */
    tu_mkmodel(dir, sizeof dir,
               "--arch llama --dtype f32 --layers 2 --hidden 32 --heads 4 --kv-heads 2 --ff 64 "
               "--vocab %d --ctx 256 --seed 61", NV);
    llmgpu_model_params_init(&mp);
    mp.weight_type = LLMGPU_WEIGHT_TYPE_F32;
    ck_assert_int_eq(llmgpu_model_load(g_ctx, dir, &mp, &g_model), LLMGPU_OK);
}

static void teardown(void) {
    llmgpu_model_free(g_model);
    tu_context_free(g_ctx); /* fails on any validation error, threading ones included */
}

struct job {
    int index;
    struct llmgpu_session *s;
    int32_t prompt[8];
    int32_t tokens[N_GEN];
    int n_tokens;
    enum llmgpu_status st;
    struct llmgpu_generate_result res;
    /* cancellation */
    atomic_int *cancel;
    atomic_int seen;
    uint32_t max_tokens;
};

static int collect(int32_t token, const char *text, size_t len, void *user) {
    struct job *j = user;
    (void)text;
    (void)len;
    if (j->n_tokens < N_GEN)
        j->tokens[j->n_tokens++] = token;
    atomic_fetch_add(&j->seen, 1);
    return j->cancel ? atomic_load(j->cancel) : 0;
}

/* The generation of one thread, in its own session. */
static void *run_job(void *arg) {
    struct job *j = arg;
    struct llmgpu_generate_params gp;
    llmgpu_generate_params_init(&gp);
    gp.max_tokens = j->max_tokens;
    gp.flags = LLMGPU_GENERATE_FLAG_IGNORE_EOG;
    gp.on_token = collect;
    gp.user = j;
    j->res.struct_size = sizeof j->res;
    j->st = llmgpu_generate(j->s, j->prompt, 8, &gp, &j->res);
    return NULL;
}

static struct llmgpu_session *new_session(void) {
    struct llmgpu_session_params sp;
    struct llmgpu_session *s = NULL;
    llmgpu_session_params_init(&sp);
    sp.n_ctx = 160;
    ck_assert_int_eq(llmgpu_session_create(g_model, &sp, &s), LLMGPU_OK);
    return s;
}

static void init_job(struct job *j, int index) {
    memset(j, 0, sizeof *j);
    j->index = index;
    j->prompt[0] = 1;
    for (int i = 1; i < 8; i++)
        j->prompt[i] = (int32_t)((index * 131 + i * 7919 + 13) % NV);
    j->max_tokens = N_GEN;
    atomic_init(&j->seen, 0);
    j->s = new_session();
}

START_TEST(concurrent_sessions_match_sequential) {
    struct job seq[N_THREADS], par[N_THREADS];
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        init_job(&seq[i], i);
        run_job(&seq[i]);
        llmgpu_session_free(seq[i].s);
        ck_assert_int_eq(seq[i].st, LLMGPU_OK);
        ck_assert_int_eq(seq[i].n_tokens, N_GEN);
    }
    /* the prompts differ, so do the generations (the test would not see a mix-up
     * otherwise) */
    ck_assert(memcmp(seq[0].tokens, seq[1].tokens, sizeof seq[0].tokens) != 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N_THREADS; i++) {
            init_job(&par[i], i);
            ck_assert_int_eq(pthread_create(&th[i], NULL, run_job, &par[i]), 0);
        }
        for (int i = 0; i < N_THREADS; i++)
            ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        for (int i = 0; i < N_THREADS; i++)
            llmgpu_session_free(par[i].s);
        for (int i = 0; i < N_THREADS; i++) {
            ck_assert_msg(par[i].st == LLMGPU_OK, "thread %d: %s\n%s", i,
                          llmgpu_status_name(par[i].st), tlog.text);
            ck_assert_int_eq(par[i].n_tokens, N_GEN);
            ck_assert_msg(!memcmp(par[i].tokens, seq[i].tokens, sizeof seq[i].tokens),
                          "round %d thread %d: tokens differ from the sequential run", round, i);
        }
    }
    ck_assert_msg(tlog.errors == 0, "errors logged:\n%s", tlog.text);
}
END_TEST

START_TEST(cancel_from_another_thread) {
    struct job j;
    pthread_t th;
    atomic_int cancel;
    struct timespec ts = {0, 1000000};
    atomic_init(&cancel, 0);
    init_job(&j, 7);
    j.cancel = &cancel;
    j.max_tokens = 0; /* until the context is full: 152 tokens unless cancelled */
    ck_assert_int_eq(pthread_create(&th, NULL, run_job, &j), 0);
    while (atomic_load(&j.seen) < 3)
        nanosleep(&ts, NULL);
    atomic_store(&cancel, 1);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    llmgpu_session_free(j.s);
    ck_assert_int_eq(j.st, LLMGPU_OK);
    ck_assert_int_eq(j.res.stop_reason, LLMGPU_STOP_REASON_CALLBACK);
    ck_assert_uint_ge(j.res.n_generated, 3);
    ck_assert_uint_lt(j.res.n_generated, 152);
    ck_assert_uint_eq(j.res.n_generated, (uint32_t)atomic_load(&j.seen));
    ck_assert_msg(tlog.errors == 0, "errors logged:\n%s", tlog.text);
}
END_TEST

/* Another model of its own shape (so its kernels are compiled while others run),
 * loaded as q8_0 by the quantizer's threads, used for one generation, freed. */
struct other_job {
    char dir[512];
    int32_t tokens[N_GEN];
    int n_tokens;
    enum llmgpu_status st;
    char what[64];
    uint64_t weight_bytes; /* llmgpu_model_info's, read after the load */
    atomic_int done;
};

static int collect_other(int32_t token, const char *text, size_t len, void *user) {
    struct other_job *o = user;
    (void)text;
    (void)len;
    if (o->n_tokens < N_GEN)
        o->tokens[o->n_tokens++] = token;
    return 0;
}

static void *run_other(void *arg) {
    struct other_job *o = arg;
    struct llmgpu_model_params mp;
    struct llmgpu_session_params sp;
    struct llmgpu_generate_params gp;
    struct llmgpu_model *m = NULL;
    struct llmgpu_session *s = NULL;
    const int32_t prompt[4] = {1, 17, 93, 211};
    o->n_tokens = 0;
    llmgpu_model_params_init(&mp);
    mp.weight_type = LLMGPU_WEIGHT_TYPE_Q8_0;
    snprintf(o->what, sizeof o->what, "load");
    o->st = llmgpu_model_load(g_ctx, o->dir, &mp, &m);
    if (o->st != LLMGPU_OK) {
        atomic_store(&o->done, 1);
        return NULL;
    }
    {
        struct llmgpu_model_info mi = {.struct_size = sizeof mi};
        llmgpu_model_info(m, &mi);
        o->weight_bytes = mi.weight_bytes;
    }
    llmgpu_session_params_init(&sp);
    sp.n_ctx = 64;
    snprintf(o->what, sizeof o->what, "session");
    o->st = llmgpu_session_create(m, &sp, &s);
    if (o->st == LLMGPU_OK) {
        llmgpu_generate_params_init(&gp);
        gp.max_tokens = N_GEN;
        gp.flags = LLMGPU_GENERATE_FLAG_IGNORE_EOG;
        gp.on_token = collect_other;
        gp.user = o;
        snprintf(o->what, sizeof o->what, "generate");
        o->st = llmgpu_generate(s, prompt, 4, &gp, NULL);
    }
    llmgpu_session_free(s);
    llmgpu_model_free(m);
    atomic_store(&o->done, 1);
    return NULL;
}

/* Sessions of the shared model created, used for one decode step and freed, at
 * least `rounds` times and until the other model's job is done (so device memory
 * is allocated and freed while it loads). */
struct churn_job {
    int rounds;
    enum llmgpu_status st;
    atomic_int *other_done;
};

static void *run_churn(void *arg) {
    struct churn_job *c = arg;
    struct llmgpu_session_params sp;
    const int32_t tok = 5;
    llmgpu_session_params_init(&sp);
    sp.n_ctx = 32;
    for (int i = 0; (i < c->rounds || !atomic_load(c->other_done)) && c->st == LLMGPU_OK; i++) {
        struct llmgpu_session *s = NULL;
        c->st = llmgpu_session_create(g_model, &sp, &s);
        if (c->st == LLMGPU_OK)
            c->st = llmgpu_session_prefill(s, &tok, 1);
        llmgpu_session_free(s);
    }
    return NULL;
}

START_TEST(load_and_create_while_generating) {
    struct job seq[2], par[2];
    struct other_job other, other_solo;
    struct churn_job churn = {4, LLMGPU_OK, NULL};
    pthread_t th[2], th_other, th_churn;
    memset(&other, 0, sizeof other);
    tu_mkmodel(other.dir, sizeof other.dir,
               "--arch qwen2 --dtype f16 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ff 96 "
               "--vocab %d --ctx 128 --seed 62", NV);
    atomic_init(&other.done, 0);
    churn.other_done = &other.done;
    other_solo = other;
    for (int i = 0; i < 2; i++) {
        init_job(&seq[i], i);
        run_job(&seq[i]);
        llmgpu_session_free(seq[i].s);
        ck_assert_int_eq(seq[i].st, LLMGPU_OK);
        init_job(&par[i], i);
    }
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, run_job, &par[i]), 0);
    ck_assert_int_eq(pthread_create(&th_other, NULL, run_other, &other), 0);
    ck_assert_int_eq(pthread_create(&th_churn, NULL, run_churn, &churn), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(pthread_join(th_other, NULL), 0);
    ck_assert_int_eq(pthread_join(th_churn, NULL), 0);
    for (int i = 0; i < 2; i++) {
        llmgpu_session_free(par[i].s);
        ck_assert_msg(par[i].st == LLMGPU_OK, "thread %d: %s\n%s", i,
                      llmgpu_status_name(par[i].st), tlog.text);
        ck_assert_int_eq(par[i].n_tokens, N_GEN);
        ck_assert_msg(!memcmp(par[i].tokens, seq[i].tokens, sizeof seq[i].tokens),
                      "thread %d: tokens differ from the sequential run", i);
    }
    ck_assert_msg(other.st == LLMGPU_OK, "other model, %s: %s\n%s", other.what,
                  llmgpu_status_name(other.st), tlog.text);
    ck_assert_msg(churn.st == LLMGPU_OK, "session churn: %s\n%s", llmgpu_status_name(churn.st),
                  tlog.text);
    /* the other model alone, now that nothing else runs */
    run_other(&other_solo);
    ck_assert_int_eq(other_solo.st, LLMGPU_OK);
    ck_assert_int_eq(other.n_tokens, N_GEN);
    ck_assert_msg(!memcmp(other.tokens, other_solo.tokens, sizeof other.tokens),
                  "the model loaded during the generations generates differently alone");
    /* its weight_bytes count its own buffers, not what other threads allocated or
     * freed meanwhile */
    ck_assert_msg(other.weight_bytes == other_solo.weight_bytes,
                  "weight_bytes %llu while sessions came and went, %llu alone",
                  (unsigned long long)other.weight_bytes,
                  (unsigned long long)other_solo.weight_bytes);
    ck_assert_msg(tlog.errors == 0, "errors logged:\n%s", tlog.text);
}
END_TEST

Suite *threads_suite(void) {
    Suite *s = suite_create("threads");
    TCase *core = tcase_create("Core");
    tcase_set_tags(core, "gpu threads"); /* "threads": make check-tsan */
    tcase_add_unchecked_fixture(core, setup, teardown);
    tcase_add_test(core, concurrent_sessions_match_sequential);
    tcase_add_test(core, cancel_from_another_thread);
    tcase_add_test(core, load_and_create_while_generating);
    tcase_set_timeout(core, 600);
    suite_add_tcase(s, core);
    return s;
}
