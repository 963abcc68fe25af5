/*
 * check_reliability.c - failure paths of the whole load/run chain (issue 10):
 *
 *   HostOOM    every host allocation of context creation, model load (checkpoint,
 *              tokenizer, upload), session creation and generation failing in turn,
 *              transiently and persistently: a clean status, nothing leaked (a counting
 *              allocator in the context params sees every allocation of the library),
 *              device memory given back, and the context still works afterwards.
 *   DeviceOOM  a simulated small GPU (device_memory_limit and ctx->device_limit):
 *              weights or a KV cache that do not fit give OUT_OF_DEVICE_MEMORY with
 *              the bytes in the message, free what they took, and a smaller request
 *              still succeeds. Contexts up to 131072 positions: accepted or refused by
 *              budget, and decoding at position 131070 works.
 *   Limits     a 64 KiB binding limit: weights shard, a KV layer over the limit is
 *              refused cleanly, results equal the unlimited context's.
 *   DeviceLost the test hook lg_test_inject_device_lost() (lib/vk/device.c): loss during
 *              load, prefill and decode gives DEVICE_LOST, every later call on the
 *              context's handles does too, and freeing works.
 *   Tokenizer  (CPU) allocation failures over lg_tok_load_dir on every tiny fixture.
 *
 * GPU tcases are tagged "gpu" (lavapipe in CI); run unforked.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "model/model.h"
#include "testmodel.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

static struct tu_log tlog;

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer and the Vulkan loader: the loader (1.3.239, bookworm; it ignores
 * VK_LOADER_DISABLE_DYNAMIC_LIBRARY_UNLOADING) dlcloses the ICD with every instance,
 * and lavapipe leaves 128 bytes from a realloc behind each time. Once the library is
 * unmapped LSan reports them from "<unknown module>", which no suppression can match.
 * Keeping the driver mapped for the life of the process (RTLD_NODELETE; the loader's
 * dlopen of the same file gets the same handle) makes those frames name
 * libvulkan_lvp.so, which tests/lsan.supp suppresses. The whole test binary benefits:
 * this runs before main. */
__attribute__((constructor)) static void pin_vulkan_driver(void) {
    (void)dlopen("libvulkan_lvp.so", RTLD_NOW | RTLD_NODELETE | RTLD_LOCAL);
}
#endif

/* ---- a counting allocator: live blocks tell leaks in every build, not just ASan ---- */
struct counting {
    _Atomic long live, total;
};
static struct counting cnt;
static void *c_alloc(size_t n, void *user) {
    struct counting *c = user;
    void *p = malloc(n);
    if (p) {
        atomic_fetch_add(&c->live, 1);
        atomic_fetch_add(&c->total, 1);
    }
    return p;
}
static void c_free(void *p, void *user) {
    struct counting *c = user;
    if (p) {
        atomic_fetch_sub(&c->live, 1);
        free(p);
    }
}
static const struct llmgpu_allocator counting_allocator = {c_alloc, c_free, &cnt};

static int validation_available(void) {
    const char *v = getenv("LLMGPU_TEST_VALIDATION");
    if (v)
        return strcmp(v, "0") != 0;
    return access("/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json", R_OK) == 0;
}

static void ctx_params(struct llmgpu_context_params *cp, uint64_t dev_limit, uint64_t binding) {
    static char kdir[512];
    llmgpu_context_params_init(cp);
    cp->log_fn = tu_log_fn;
    cp->log_user = &tlog;
    cp->allocator = &counting_allocator;
    cp->device_memory_limit = dev_limit;
    cp->max_binding_size = binding;
    cp->cache_dir = tu_tmp_path("kcache", kdir, sizeof kdir);
    if (validation_available())
        cp->flags |= LLMGPU_CONTEXT_FLAG_VALIDATION;
}

static struct llmgpu_context *rel_context(uint64_t dev_limit, uint64_t binding) {
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx = NULL;
    enum llmgpu_status st;
    ctx_params(&cp, dev_limit, binding);
    st = llmgpu_context_create(&cp, &ctx);
    ck_assert_msg(st == LLMGPU_OK, "context: %s\n%s", llmgpu_status_name(st), tlog.text);
    return ctx;
}

/* Free and require that every block the library took from the allocator came back. */
static void rel_context_free(struct llmgpu_context *ctx) {
    uint64_t errs = llmgpu_context_validation_errors(ctx);
    llmgpu_context_free(ctx);
    ck_assert_msg(errs == 0, "%llu Vulkan validation errors\n%s", (unsigned long long)errs,
                  tlog.text);
    ck_assert_msg(atomic_load(&cnt.live) == 0, "%ld host blocks leaked", atomic_load(&cnt.live));
}

static void make_model(const char *args, char *dir, size_t size) {
    ck_assert_msg(lgt_mkmodel(args, dir, size) == 0, "mkmodel %s", args);
}

#define TINY "--layers 2 --hidden 32 --heads 4 --kv-heads 2 --ff 48 --vocab 300 --ctx 256"

static struct llmgpu_model *load_ok(struct llmgpu_context *ctx, const char *dir) {
    struct llmgpu_model *m = NULL;
    enum llmgpu_status st = llmgpu_model_load(ctx, dir, NULL, &m);
    ck_assert_msg(st == LLMGPU_OK, "load %s: %s\n%s", dir, llmgpu_status_name(st), tlog.text);
    return m;
}

static struct llmgpu_session *session_ok(struct llmgpu_model *m, uint32_t n_ctx,
                                         uint32_t n_batch) {
    struct llmgpu_session_params sp;
    struct llmgpu_session *s = NULL;
    enum llmgpu_status st;
    llmgpu_session_params_init(&sp);
    sp.n_ctx = n_ctx;
    sp.n_batch = n_batch;
    st = llmgpu_session_create(m, &sp, &s);
    ck_assert_msg(st == LLMGPU_OK, "session: %s\n%s", llmgpu_status_name(st), tlog.text);
    return s;
}

/* Prefill a fixed prompt and decode greedily; the tokens go to out. */
static void generate(struct llmgpu_session *s, int32_t *out, int n) {
    int32_t prompt[9] = {1, 17, 42, 99, 5, 250, 7, 8, 123};
    ck_assert_int_eq(llmgpu_session_prefill(s, prompt, 9), LLMGPU_OK);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(llmgpu_session_sample_greedy(s, &out[i]), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_session_decode(s, out[i]), LLMGPU_OK);
    }
}

static void setup(void) {
    tu_log_clear(&tlog);
    /* unforked, a failed test leaves its blocks behind: count afresh */
    atomic_store(&cnt.live, 0);
}

/* ==== HostOOM ==== */

/* Arm the context's fault injection: the nth host allocation from now fails. */
static void arm(struct llmgpu_context *ctx, int64_t n, int persist) {
    ctx->alloc.fail_after = n;
    ctx->alloc.fail_persist = persist;
}
/* Disarm; 1 when the injected failure was (or, at 1 left and persistent, may have
 * been) reached: a countdown still above 1 proves the call needed fewer than n. */
static int disarm(struct llmgpu_context *ctx) {
    int fired = ctx->alloc.fail_after <= 1;
    ctx->alloc.fail_after = 0;
    ctx->alloc.fail_persist = 0;
    return fired;
}

START_TEST(host_oom_model_load) {
    char dir[512];
    struct llmgpu_context *ctx;
    struct llmgpu_model *m;
    int32_t ref[6], got[6];
    long base;
    int64_t n;
    int persist = _i;
    make_model(TINY " --shards 2 --arch qwen2", dir, sizeof dir);
    ctx = rel_context(0, 0);
    /* the reference: an undisturbed load */
    m = load_ok(ctx, dir);
    {
        struct llmgpu_session *s = session_ok(m, 64, 8);
        generate(s, ref, 6);
        llmgpu_session_free(s);
    }
    llmgpu_model_free(m);
    base = atomic_load(&cnt.live);
    for (n = 1; n < 20000; n++) {
        enum llmgpu_status st;
        int fired;
        tu_log_clear(&tlog);
        m = NULL;
        arm(ctx, n, persist);
        st = llmgpu_model_load(ctx, dir, NULL, &m);
        fired = disarm(ctx);
        if (st == LLMGPU_OK) {
            llmgpu_model_free(m);
            if (!fired)
                break; /* the whole load took fewer than n allocations */
            continue;  /* a failure the loader survived (none today) */
        }
        ck_assert_msg(st == LLMGPU_ERR_OUT_OF_HOST_MEMORY, "n=%lld persist=%d: %s\n%s",
                      (long long)n, persist, llmgpu_status_name(st), tlog.text);
        ck_assert_ptr_null(m);
        ck_assert_msg(atomic_load(&cnt.live) == base, "n=%lld: %ld blocks leaked", (long long)n,
                      atomic_load(&cnt.live) - base);
        ck_assert_uint_eq(atomic_load(&ctx->device_bytes), 0);
    }
    ck_assert_int_gt(n, 20); /* the loop did reach into the loader */
    ck_assert_int_lt(n, 20000);
    /* the context is intact: the model loads and generates the same tokens */
    m = load_ok(ctx, dir);
    {
        struct llmgpu_session *s = session_ok(m, 64, 8);
        generate(s, got, 6);
        ck_assert_int_eq(memcmp(ref, got, sizeof ref), 0);
        llmgpu_session_free(s);
    }
    llmgpu_model_free(m);
    rel_context_free(ctx);
}
END_TEST

START_TEST(host_oom_session) {
    char dir[512];
    struct llmgpu_context *ctx;
    struct llmgpu_model *m;
    uint64_t dev0;
    long base;
    int64_t n;
    int persist = _i;
    make_model(TINY, dir, sizeof dir);
    ctx = rel_context(0, 0);
    m = load_ok(ctx, dir);
    dev0 = atomic_load(&ctx->device_bytes);
    base = atomic_load(&cnt.live);
    /* Each round starts without pipelines (the context creates them on first use and
     * keeps them), so failures inside pipeline creation are reached too. */
    for (n = 1; n < 20000; n++) {
        struct llmgpu_session_params sp;
        struct llmgpu_session *s = NULL;
        enum llmgpu_status st;
        int fired;
        tu_log_clear(&tlog);
        llmgpu_session_params_init(&sp);
        sp.n_ctx = 32;
        sp.n_batch = 4;
        arm(ctx, n, persist);
        st = llmgpu_session_create(m, &sp, &s);
        if (st == LLMGPU_OK) {
            /* generation under the rest of the countdown: any failure is clean */
            int32_t toks[5] = {3, 4, 5, 6, 7}, t;
            st = llmgpu_session_prefill(s, toks, 5);
            if (st == LLMGPU_OK)
                st = llmgpu_session_sample_greedy(s, &t);
            if (st == LLMGPU_OK)
                st = llmgpu_session_decode(s, t);
            fired = disarm(ctx);
            ck_assert_msg(st == LLMGPU_OK || st == LLMGPU_ERR_OUT_OF_HOST_MEMORY,
                          "n=%lld: %s\n%s", (long long)n, llmgpu_status_name(st), tlog.text);
            llmgpu_session_free(s);
            lg_pipelines_destroy(ctx);
            ck_assert_int_eq(atomic_load(&cnt.live), base);
            ck_assert_uint_eq(atomic_load(&ctx->device_bytes), dev0);
            if (!fired && st == LLMGPU_OK)
                break;
            continue;
        }
        disarm(ctx);
        ck_assert_msg(st == LLMGPU_ERR_OUT_OF_HOST_MEMORY, "n=%lld persist=%d: %s\n%s",
                      (long long)n, persist, llmgpu_status_name(st), tlog.text);
        ck_assert_ptr_null(s);
        lg_pipelines_destroy(ctx);
        ck_assert_msg(atomic_load(&cnt.live) == base, "n=%lld: %ld blocks leaked", (long long)n,
                      atomic_load(&cnt.live) - base);
        ck_assert_uint_eq(atomic_load(&ctx->device_bytes), dev0);
    }
    ck_assert_int_gt(n, 3);
    ck_assert_int_lt(n, 20000);
    {
        int32_t out[4];
        struct llmgpu_session *s = session_ok(m, 64, 8);
        generate(s, out, 4);
        llmgpu_session_free(s);
    }
    llmgpu_model_free(m);
    rel_context_free(ctx);
}
END_TEST

/* A caller's allocator that fails its nth call: reaches context creation, before
 * any context exists to hold the fault-injection counter. */
struct failing {
    struct counting c;
    long left;
};
static struct failing fl;
static void *f_alloc(size_t n, void *user) {
    struct failing *f = user;
    if (f->left > 0 && --f->left == 0)
        return NULL;
    return c_alloc(n, &f->c);
}
static void f_free(void *p, void *user) {
    c_free(p, &((struct failing *)user)->c);
}

START_TEST(host_oom_context_create) {
    const struct llmgpu_allocator fa = {f_alloc, f_free, &fl};
    long n;
    for (n = 1; n < 200; n++) {
        struct llmgpu_context_params cp;
        struct llmgpu_context *ctx = NULL;
        enum llmgpu_status st;
        tu_log_clear(&tlog);
        ctx_params(&cp, 0, 0);
        cp.flags &= ~(uint32_t)LLMGPU_CONTEXT_FLAG_VALIDATION; /* speed: many devices */
        cp.allocator = &fa;
        memset(&fl, 0, sizeof fl);
        fl.left = n;
        st = llmgpu_context_create(&cp, &ctx);
        if (st == LLMGPU_OK) {
            llmgpu_context_free(ctx);
            ck_assert_int_eq(atomic_load(&fl.c.live), 0);
            if (fl.left > 0)
                break;
            continue;
        }
        ck_assert_msg(st == LLMGPU_ERR_OUT_OF_HOST_MEMORY, "n=%ld: %s\n%s", n,
                      llmgpu_status_name(st), tlog.text);
        ck_assert_ptr_null(ctx);
        ck_assert_int_eq(atomic_load(&fl.c.live), 0);
    }
    ck_assert_int_gt(n, 1);
    ck_assert_int_lt(n, 200);
}
END_TEST

/* ==== DeviceOOM ==== */

START_TEST(device_oom_model_load) {
    char dir[512], small[512];
    struct llmgpu_context *ctx;
    struct llmgpu_model *m = NULL;
    struct llmgpu_model_info info;
    uint64_t weights, lim;
    enum llmgpu_status st;
    make_model(TINY " --vocab 1000 --ff 96", dir, sizeof dir);
    make_model("--layers 1 --hidden 16 --heads 2 --ff 16 --vocab 280 --ctx 64", small,
               sizeof small);
    /* the weights' size on an unlimited context */
    ctx = rel_context(0, 0);
    m = load_ok(ctx, dir);
    info.struct_size = sizeof info;
    ck_assert_int_eq(llmgpu_model_info(m, &info), LLMGPU_OK);
    weights = info.weight_bytes;
    llmgpu_model_free(m);
    rel_context_free(ctx);
    ck_assert_uint_gt(weights, 100000);

    /* a GPU of half the weights: refused up front, with the bytes */
    ctx = rel_context(weights / 2, 0);
    tu_log_clear(&tlog);
    m = (struct llmgpu_model *)&tlog; /* must be reset to NULL */
    st = llmgpu_model_load(ctx, dir, NULL, &m);
    ck_assert_int_eq(st, LLMGPU_ERR_OUT_OF_DEVICE_MEMORY);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(tlog.text, "out of device memory") && strstr(tlog.text, " bytes"),
                  "%s", tlog.text);
    ck_assert_uint_eq(atomic_load(&ctx->device_bytes), 0);
    /* a smaller model fits on the same context */
    m = load_ok(ctx, small);
    llmgpu_model_free(m);
    ck_assert_uint_eq(atomic_load(&ctx->device_bytes), 0);

    /* limits around the weights' size: the up-front check passes but a buffer late in
     * the load does not fit (alignment, the dummy buffer); everything is given back */
    for (lim = weights - 4096; lim < weights + 4096; lim += 256) {
        ctx->device_limit = lim;
        tu_log_clear(&tlog);
        m = NULL;
        st = llmgpu_model_load(ctx, dir, NULL, &m);
        if (st == LLMGPU_OK) {
            ck_assert_uint_le(atomic_load(&ctx->device_bytes), lim);
            llmgpu_model_free(m);
        } else {
            ck_assert_msg(st == LLMGPU_ERR_OUT_OF_DEVICE_MEMORY, "limit %llu: %s\n%s",
                          (unsigned long long)lim, llmgpu_status_name(st), tlog.text);
            ck_assert_ptr_null(m);
        }
        ck_assert_uint_eq(atomic_load(&ctx->device_bytes), 0);
    }
    rel_context_free(ctx);
}
END_TEST

START_TEST(device_oom_session) {
    char dir[512];
    struct llmgpu_context *ctx;
    struct llmgpu_model *m;
    struct llmgpu_session_params sp;
    struct llmgpu_session *s = NULL;
    uint64_t dev0;
    enum llmgpu_status st;
    int32_t out[4];
    make_model(TINY " --ctx 131072", dir, sizeof dir);
    ctx = rel_context(0, 0);
    m = load_ok(ctx, dir);
    dev0 = atomic_load(&ctx->device_bytes);
    /* room for the weights and 1 MiB. The KV cache grows in pages, so a 131072-position
     * session is created; growing it to all positions (2 x 8 MiB per layer) is refused
     * by budget, with the bytes, and the session stays usable. */
    ctx->device_limit = dev0 + (1u << 20);
    s = session_ok(m, 131072, 64);
    {
        uint64_t dev1 = atomic_load(&ctx->device_bytes);
        int32_t toks[300];
        for (int i = 0; i < 300; i++)
            toks[i] = (i * 37 + 11) % 300;
        tu_log_clear(&tlog);
        ck_assert_int_eq(lg_session_reserve(s, 131072), LLMGPU_ERR_OUT_OF_DEVICE_MEMORY);
        ck_assert_msg(strstr(tlog.text, "out of device memory") && strstr(tlog.text, "bytes"),
                      "%s", tlog.text);
        ck_assert_uint_eq(atomic_load(&ctx->device_bytes), dev1);
        /* a prefill that must grow the cache with no room left: refused, nothing changes */
        ctx->device_limit = dev1;
        ck_assert_int_eq(llmgpu_session_prefill(s, toks, 300), LLMGPU_ERR_OUT_OF_DEVICE_MEMORY);
        ck_assert_uint_eq(llmgpu_session_position(s), 0);
        ck_assert_uint_eq(atomic_load(&ctx->device_bytes), dev1);
        /* with room again the same prefill works */
        ctx->device_limit = dev0 + (1u << 20);
        ck_assert_int_eq(llmgpu_session_prefill(s, toks, 300), LLMGPU_OK);
        ck_assert_uint_eq(llmgpu_session_position(s), 300);
    }
    llmgpu_session_free(s);
    s = NULL;
    ck_assert_uint_eq(atomic_load(&ctx->device_bytes), dev0);
    /* the largest n_ctx the API accepts (2^24): refused cleanly where a KV layer of that
     * length cannot be bound (lavapipe: 128 MiB), or created with one page where it can
     * (the H100: 4 GiB); either way nothing is left allocated */
    llmgpu_session_params_init(&sp);
    sp.n_batch = 64;
    sp.n_ctx = 1u << 24;
    st = llmgpu_session_create(m, &sp, &s);
    ck_assert_msg(st == LLMGPU_OK || st == LLMGPU_ERR_OUT_OF_DEVICE_MEMORY ||
                      st == LLMGPU_ERR_UNSUPPORTED,
                  "%s", llmgpu_status_name(st));
    llmgpu_session_free(s);
    s = NULL;
    ck_assert_uint_eq(atomic_load(&ctx->device_bytes), dev0);
    sp.n_ctx = (1u << 24) + 1;
    ck_assert_int_eq(llmgpu_session_create(m, &sp, &s), LLMGPU_ERR_INVALID_ARGUMENT);
    /* a smaller session fits */
    s = session_ok(m, 256, 16);
    generate(s, out, 4);
    llmgpu_session_free(s);
    ck_assert_uint_eq(atomic_load(&ctx->device_bytes), dev0);

    /* without the limit a 131072-position session is accepted, and decoding at the
     * last positions works (no 32-bit overflow of KV offsets or RoPE positions) */
    ctx->device_limit = UINT64_MAX;
    s = session_ok(m, 131072, 64);
    {
        float lg[300];
        size_t nl = 300;
        int32_t t;
        struct lg_cmd cmd;
        ck_assert_int_eq(lg_session_reserve(s, 131072), LLMGPU_OK);
        /* rows 0..131069 as a restored state would have them: zeros, not the garbage
         * (possibly NaN) of fresh device memory */
        ck_assert_int_eq(lg_cmd_create(ctx, &cmd), LLMGPU_OK);
        ck_assert_int_eq(lg_cmd_begin(ctx, &cmd, 1), LLMGPU_OK);
        for (uint32_t l = 0; l < 2; l++) {
            vkCmdFillBuffer(cmd.cb, lg_session_kcache(s, l)->buf, 0, VK_WHOLE_SIZE, 0);
            vkCmdFillBuffer(cmd.cb, lg_session_vcache(s, l)->buf, 0, VK_WHOLE_SIZE, 0);
        }
        lg_cmd_barrier_transfer(cmd.cb);
        ck_assert_int_eq(lg_cmd_end(ctx, &cmd), LLMGPU_OK);
        ck_assert_int_eq(lg_cmd_submit_wait(ctx, &cmd), LLMGPU_OK);
        lg_cmd_destroy(ctx, &cmd);
        lg_session_set_position(s, 131070);
        ck_assert_uint_eq(llmgpu_session_position(s), 131070);
        ck_assert_int_eq(llmgpu_session_decode(s, 17), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_session_sample_greedy(s, &t), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_session_decode(s, t), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_session_logits(s, lg, &nl), LLMGPU_OK);
        for (size_t i = 0; i < nl; i++)
            ck_assert_msg(lg[i] == lg[i] && lg[i] > -1e30f && lg[i] < 1e30f, "logit %zu: %g", i,
                          (double)lg[i]);
        ck_assert_uint_eq(llmgpu_session_position(s), 131072);
        ck_assert_int_eq(llmgpu_session_decode(s, t), LLMGPU_ERR_CONTEXT_FULL);
    }
    llmgpu_session_free(s);
    llmgpu_model_free(m);
    rel_context_free(ctx);
}
END_TEST

/* ==== Limits ==== */

START_TEST(small_binding_limit) {
    char dir[512];
    struct llmgpu_context *big, *ctx;
    struct llmgpu_model *m;
    struct llmgpu_session_params sp;
    struct llmgpu_session *s = NULL;
    int32_t ref[8], got[8];
    /* embedding 600 x 64 f32 = 150 KiB: three shards under 64 KiB */
    make_model("--layers 2 --hidden 64 --heads 4 --kv-heads 2 --ff 96 --vocab 600 --ctx 4096",
               dir, sizeof dir);
    big = rel_context(0, 0);
    m = load_ok(big, dir);
    s = session_ok(m, 256, 8);
    generate(s, ref, 8);
    llmgpu_session_free(s);
    llmgpu_model_free(m);
    rel_context_free(big);

    ctx = rel_context(0, 65536);
    ck_assert_uint_eq(ctx->max_binding, 65536);
    m = load_ok(ctx, dir);
    ck_assert_uint_ge(m->tok_embd.n_shards, 2);
    /* a KV layer of 4096 x 2 x 16 x 2 bytes = 256 KiB exceeds one binding: refused */
    llmgpu_session_params_init(&sp);
    sp.n_ctx = 4096;
    sp.n_batch = 8;
    tu_log_clear(&tlog);
    ck_assert_int_eq(llmgpu_session_create(m, &sp, &s), LLMGPU_ERR_UNSUPPORTED);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(tlog.text, "exceeds the binding limit"), "%s", tlog.text);
    /* a batch whose scratch exceeds one binding: refused, with advice */
    sp.n_ctx = 256;
    sp.n_batch = 512;
    tu_log_clear(&tlog);
    ck_assert_int_eq(llmgpu_session_create(m, &sp, &s), LLMGPU_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(tlog.text, "n_batch"), "%s", tlog.text);
    ck_assert_uint_eq(atomic_load(&ctx->device_bytes), m->weight_bytes);
    /* what fits gives the unlimited context's tokens */
    s = session_ok(m, 256, 8);
    generate(s, got, 8);
    ck_assert_int_eq(memcmp(ref, got, sizeof ref), 0);
    llmgpu_session_free(s);
    llmgpu_model_free(m);
    rel_context_free(ctx);
}
END_TEST

/* ==== DeviceLost ==== */

/* Every call on a lost context's handles reports the loss; freeing works. */
static void all_lost(struct llmgpu_context *ctx, struct llmgpu_model *m, const char *dir,
                     struct llmgpu_session *s) {
    struct llmgpu_model *m2 = (struct llmgpu_model *)&tlog;
    struct llmgpu_session *s2 = (struct llmgpu_session *)&tlog;
    ck_assert_int_ne(atomic_load(&ctx->lost), 0);
    ck_assert_int_eq(llmgpu_model_load(ctx, dir, NULL, &m2), LLMGPU_ERR_DEVICE_LOST);
    ck_assert_ptr_null(m2);
    if (m) {
        ck_assert_int_eq(llmgpu_session_create(m, NULL, &s2), LLMGPU_ERR_DEVICE_LOST);
        ck_assert_ptr_null(s2);
    }
    if (s) {
        int32_t toks[2] = {1, 2}, t;
        float lg[300];
        size_t nl = 300;
        struct llmgpu_sampler_params spp;
        ck_assert_int_eq(llmgpu_session_prefill(s, toks, 2), LLMGPU_ERR_DEVICE_LOST);
        ck_assert_int_eq(llmgpu_session_decode(s, 1), LLMGPU_ERR_DEVICE_LOST);
        ck_assert_int_eq(llmgpu_session_logits(s, lg, &nl), LLMGPU_ERR_DEVICE_LOST);
        ck_assert_int_eq(llmgpu_session_sample_greedy(s, &t), LLMGPU_ERR_DEVICE_LOST);
        llmgpu_sampler_params_init(&spp);
        ck_assert_int_eq(llmgpu_session_sample(s, &spp, &t), LLMGPU_ERR_DEVICE_LOST);
    }
}

START_TEST(device_lost_on_load) {
    char dir[512];
    struct llmgpu_context *ctx;
    struct llmgpu_model *m = (struct llmgpu_model *)&tlog;
    make_model(TINY, dir, sizeof dir);
    ctx = rel_context(0, 0);
    lg_test_inject_device_lost(ctx);
    tu_log_clear(&tlog);
    ck_assert_int_eq(llmgpu_model_load(ctx, dir, NULL, &m), LLMGPU_ERR_DEVICE_LOST);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(tlog.text, "VK_ERROR_DEVICE_LOST"), "%s", tlog.text);
    ck_assert_uint_eq(atomic_load(&ctx->device_bytes), 0);
    all_lost(ctx, NULL, dir, NULL);
    rel_context_free(ctx);
}
END_TEST

START_TEST(device_lost_on_prefill_or_decode) {
    /* _i 0: the first prefill submission; 1: a decode after a good prefill;
     * 2: the second chunk of a multi-chunk prefill */
    char dir[512];
    struct llmgpu_context *ctx;
    struct llmgpu_model *m;
    struct llmgpu_session *s;
    int32_t toks[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, t;
    make_model(TINY, dir, sizeof dir);
    ctx = rel_context(0, 0);
    m = load_ok(ctx, dir);
    s = session_ok(m, 64, 4);
    tu_log_clear(&tlog);
    if (_i == 0) {
        lg_test_inject_device_lost(ctx);
        ck_assert_int_eq(llmgpu_session_prefill(s, toks, 3), LLMGPU_ERR_DEVICE_LOST);
    } else if (_i == 1) {
        ck_assert_int_eq(llmgpu_session_prefill(s, toks, 3), LLMGPU_OK);
        ck_assert_int_eq(llmgpu_session_sample_greedy(s, &t), LLMGPU_OK);
        lg_test_inject_device_lost(ctx);
        ck_assert_int_eq(llmgpu_session_decode(s, t), LLMGPU_ERR_DEVICE_LOST);
    } else {
        atomic_store(&ctx->inject_lost, 2);
        ck_assert_int_eq(llmgpu_session_prefill(s, toks, 12), LLMGPU_ERR_DEVICE_LOST);
    }
    all_lost(ctx, m, dir, s);
    /* tokenization needs no device and keeps working */
    {
        int32_t ids[16];
        size_t n = 16;
        ck_assert_int_eq(llmgpu_tokenize(m, "hello", 5, 0, ids, &n), LLMGPU_OK);
    }
    llmgpu_session_free(s);
    llmgpu_model_free(m);
    rel_context_free(ctx);
}
END_TEST

/* ==== Tokenizer (CPU) ==== */

START_TEST(tokenizer_alloc_failures) {
    static const char *const names[] = {"bytelevel", "sp", "sp_unk", "misc"};
    char dir[512], rel[128];
    struct counting c = {0, 0};
    const struct lg_alloc base = {{c_alloc, c_free, &c}, 0, 0};
    int persist = _i / 4;
    int64_t n;
    snprintf(rel, sizeof rel, "fixtures/tokenizer/tiny/%s", names[_i % 4]);
    tu_data_path(rel, dir, sizeof dir);
    for (n = 1; n < 100000; n++) {
        struct lg_alloc a = base;
        struct lg_tokenizer *t = NULL;
        enum llmgpu_status st;
        long before = atomic_load(&c.total), used;
        a.fail_after = n;
        a.fail_persist = persist;
        st = lg_tok_load_dir(&a, NULL, dir, &t);
        /* the loader counts down a copy of a: what it took from the allocator tells */
        used = atomic_load(&c.total) - before;
        if (st == LLMGPU_OK) {
            int32_t ids[64];
            size_t k = 64, l = 256;
            char text[256];
            ck_assert_int_eq(lg_tok_encode(t, "Hello, wörld! 12 3", 19, 0, ids, &k), LLMGPU_OK);
            ck_assert_int_eq(lg_tok_decode(t, ids, k, 0, text, &l), LLMGPU_OK);
            lg_tok_free(t);
            ck_assert_int_eq(atomic_load(&c.live), 0);
            if (used < n - 1)
                break; /* the whole load took fewer than n - 1 allocations */
            continue;
        }
        ck_assert_msg(st == LLMGPU_ERR_OUT_OF_HOST_MEMORY, "%s n=%lld: %s", names[_i % 4],
                      (long long)n, llmgpu_status_name(st));
        ck_assert_ptr_null(t);
        ck_assert_msg(atomic_load(&c.live) == 0, "%s n=%lld: %ld blocks leaked", names[_i % 4],
                      (long long)n, atomic_load(&c.live));
    }
    ck_assert_int_gt(n, 10);
    ck_assert_int_lt(n, 100000);
}
END_TEST

Suite *reliability_suite(void) {
    Suite *s = suite_create("reliability");
    TCase *host = tcase_create("HostOOM"), *dev = tcase_create("DeviceOOM");
    TCase *lim = tcase_create("Limits"), *lost = tcase_create("DeviceLost");
    TCase *tok = tcase_create("Tokenizer");
    TCase *gpu[] = {host, dev, lim, lost};
    for (size_t i = 0; i < sizeof gpu / sizeof gpu[0]; i++) {
        tcase_set_tags(gpu[i], "gpu");
        tcase_add_checked_fixture(gpu[i], setup, NULL);
        tcase_set_timeout(gpu[i], 900);
        suite_add_tcase(s, gpu[i]);
    }
    tcase_add_loop_test(host, host_oom_model_load, 0, 2);
    tcase_add_loop_test(host, host_oom_session, 0, 2);
    tcase_add_test(host, host_oom_context_create);
    tcase_add_test(dev, device_oom_model_load);
    tcase_add_test(dev, device_oom_session);
    tcase_add_test(lim, small_binding_limit);
    tcase_add_test(lost, device_lost_on_load);
    tcase_add_loop_test(lost, device_lost_on_prefill_or_decode, 0, 3);
    tcase_add_loop_test(tok, tokenizer_alloc_failures, 0, 8);
    tcase_set_timeout(tok, 300);
    suite_add_tcase(s, tok);
    return s;
}
