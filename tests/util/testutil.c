/* testutil.c - see testutil.h. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testmodel.h"
#include "testutil.h"

void tu_log_fn(enum llmgpu_log_level level, const char *msg, void *user) {
    struct tu_log *l = user;
    size_t n = strlen(msg);
    if (level >= LLMGPU_LOG_LEVEL_ERROR)
        l->errors++;
    if (l->len + n + 2 < sizeof l->text) {
        memcpy(l->text + l->len, msg, n);
        l->len += n;
        l->text[l->len++] = '\n';
        l->text[l->len] = '\0';
    }
    if (getenv("LLMGPU_TEST_VERBOSE"))
        fprintf(stderr, "[log %d] %s\n", (int)level, msg);
}

void tu_log_clear(struct tu_log *l) {
    l->len = 0;
    l->text[0] = '\0';
    l->errors = 0;
}

static int validation_wanted(void) {
    const char *v = getenv("LLMGPU_TEST_VALIDATION");
    if (v)
        return strcmp(v, "0") != 0;
    /* On by default where the layer is installed. */
    return access("/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json", R_OK) == 0;
}

struct llmgpu_context *tu_context(struct tu_log *log, const char *cache_dir) {
    static char tmpdir[256];
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx = NULL;
    enum llmgpu_status st;
    llmgpu_context_params_init(&cp);
    cp.log_fn = tu_log_fn;
    cp.log_user = log;
    cp.log_level = LLMGPU_LOG_LEVEL_WARN;
    /* Float dot products in the quantized decode mat-vecs, and the portable f32 prefill
     * GEMM, on every device: the suites hold them to the unrounded C reference (1e-6).
     * Where a GPU accelerates integer dot products or has tensor cores (the H100), the
     * library's default rounds x to int8 or f16 there; the tests of those defaults make
     * contexts of their own. */
    cp.flags = LLMGPU_CONTEXT_FLAG_MATVEC_FLOAT_DOT | LLMGPU_CONTEXT_FLAG_NO_COOPMAT;
    if (validation_wanted())
        cp.flags |= LLMGPU_CONTEXT_FLAG_VALIDATION;
    if (!cache_dir) {
        tu_tmp_path("kcache", tmpdir, sizeof tmpdir);
        cache_dir = tmpdir;
    }
    cp.cache_dir = cache_dir;
    st = llmgpu_context_create(&cp, &ctx);
    ck_assert_msg(st == LLMGPU_OK, "context: %s\n%s", llmgpu_status_string(st), log->text);
    return ctx;
}

void tu_context_free(struct llmgpu_context *ctx) {
    uint64_t errs = llmgpu_context_validation_errors(ctx);
    llmgpu_context_free(ctx);
    ck_assert_msg(errs == 0, "%llu Vulkan validation errors (see log)", (unsigned long long)errs);
}

static const char *join(const char *env, const char *def, const char *rel, char *buf,
                        size_t size) {
    const char *base = getenv(env);
    snprintf(buf, size, "%s/%s", base && *base ? base : def, rel);
    return buf;
}

const char *tu_data_path(const char *rel, char *buf, size_t size) {
    return join("LLMGPU_TEST_DATA", "tests", rel, buf, size);
}

const char *tu_tmp_path(const char *rel, char *buf, size_t size) {
    return join("LLMGPU_TEST_TMP", "/tmp", rel, buf, size);
}

void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        x[i] = lo + (hi - lo) * (float)((s * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1u << 24);
    }
}

double tu_nmse(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

int tu_run(const char *cmd) {
    int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

void tu_mkmodel(char *dir, size_t size, const char *args_fmt, ...) {
    char args[1024];
    va_list ap;
    va_start(ap, args_fmt);
    vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    ck_assert_msg(lgt_mkmodel(args, dir, size) == 0, "mkmodel %s failed", args);
}
