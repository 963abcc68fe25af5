/*
 * llmgpu.c - the command-line tool: info, generate, tokenize, detokenize,
 * perplexity, bench. A thin layer over the public API; environment variables
 * are mapped onto params here (the library itself reads none):
 *   LLMGPU_DEVICE     device index (see 'llmgpu info')
 *   LLMGPU_CACHE_DIR  kernel cache directory
 *   LLMGPU_LOG        debug|info|warn|error (default warn)
 *   LLMGPU_VALIDATE   1: enable the Vulkan validation layer
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmgpu.h"

#ifndef LLMGPU_DEFAULT_MODEL
#define LLMGPU_DEFAULT_MODEL "models/demo"
#endif

static double now_s(void) __attribute__((unused));
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_log(enum llmgpu_log_level level, const char *msg, void *user) {
    static const char *names[] = {"debug", "info", "warning", "error"};
    (void)user;
    fprintf(stderr, "llmgpu: %s: %s\n", names[level < 4 ? level : 3], msg);
}

static void context_params_from_env(struct llmgpu_context_params *cp) {
    const char *dev = getenv("LLMGPU_DEVICE");
    const char *cache = getenv("LLMGPU_CACHE_DIR");
    const char *lvl = getenv("LLMGPU_LOG");
    const char *val = getenv("LLMGPU_VALIDATE");
    llmgpu_context_params_init(cp);
    cp->log_fn = on_log;
    if (dev && *dev)
        cp->device_index = atoi(dev);
    if (cache && *cache)
        cp->cache_dir = cache;
    if (lvl) {
        if (!strcmp(lvl, "debug"))
            cp->log_level = LLMGPU_LOG_LEVEL_DEBUG;
        else if (!strcmp(lvl, "info"))
            cp->log_level = LLMGPU_LOG_LEVEL_INFO;
        else if (!strcmp(lvl, "error"))
            cp->log_level = LLMGPU_LOG_LEVEL_ERROR;
    }
    if (val && !strcmp(val, "1"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_VALIDATION;
}

static int fail(const char *what, enum llmgpu_status st) {
    fprintf(stderr, "llmgpu: %s: %s (%s)\n", what, llmgpu_status_string(st),
            llmgpu_status_name(st));
    return 1;
}

static const char *type_name(enum llmgpu_device_type t) {
    switch (t) {
    case LLMGPU_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case LLMGPU_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case LLMGPU_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case LLMGPU_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

static void print_device(const struct llmgpu_device_info *d, int chosen) {
    static const struct { uint32_t bit; const char *name; } feats[] = {
        {LLMGPU_DEVICE_FEATURE_FP16, "fp16"},
        {LLMGPU_DEVICE_FEATURE_INT8, "int8"},
        {LLMGPU_DEVICE_FEATURE_STORAGE_16BIT, "storage16"},
        {LLMGPU_DEVICE_FEATURE_STORAGE_8BIT, "storage8"},
        {LLMGPU_DEVICE_FEATURE_INTEGER_DOT, "int-dot"},
        {LLMGPU_DEVICE_FEATURE_COOPMAT_NV, "coopmat-nv"},
        {LLMGPU_DEVICE_FEATURE_COOPMAT_KHR, "coopmat-khr"},
        {LLMGPU_DEVICE_FEATURE_MEMORY_BUDGET, "memory-budget"},
        {LLMGPU_DEVICE_FEATURE_SUBGROUP_ARITH, "subgroup-arith"},
        {LLMGPU_DEVICE_FEATURE_SUBGROUP_SIZE_CONTROL, "subgroup-size-control"},
    };
    printf("%c %u: %s (%s, Vulkan %u.%u)\n", chosen ? '*' : ' ', d->index, d->name,
           type_name(d->type), (d->api_version >> 22) & 0x7f, (d->api_version >> 12) & 0x3ff);
    printf("     driver: %s\n", d->driver_name);
    printf("     device-local memory: %.1f GiB, subgroup size %u, shared memory %u KiB\n",
           (double)d->device_local_bytes / (1u << 30), d->subgroup_size,
           d->max_shared_memory / 1024);
    printf("     max storage buffer range: %.1f MiB, max allocation: %.1f MiB\n",
           (double)d->max_storage_buffer_range / (1u << 20),
           (double)d->max_allocation_size / (1u << 20));
    printf("     features:");
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
        if (d->features & feats[i].bit)
            printf(" %s", feats[i].name);
    printf("\n");
}

static int cmd_info(int argc, char **argv) {
    struct llmgpu_context_params cp;
    struct llmgpu_device_info devs[16], chosen;
    struct llmgpu_context *ctx;
    uint32_t n = 16;
    int bandwidth = 0;
    enum llmgpu_status st;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--bandwidth"))
            bandwidth = 1;
        else {
            fprintf(stderr, "usage: llmgpu info [--bandwidth]\n");
            return 2;
        }
    }
    context_params_from_env(&cp);
    for (int i = 0; i < 16; i++)
        devs[i].struct_size = sizeof devs[i];
    printf("libllmgpu %s\n", llmgpu_version_string());
    st = llmgpu_devices_list(&cp, devs, &n);
    if (st != LLMGPU_OK)
        return fail("listing Vulkan devices", st);
    st = llmgpu_context_create(&cp, &ctx);
    if (st != LLMGPU_OK)
        return fail("creating a context", st);
    chosen.struct_size = sizeof chosen;
    llmgpu_context_device_info(ctx, &chosen);
    printf("Vulkan devices (* = chosen; set LLMGPU_DEVICE=N to choose):\n");
    for (uint32_t i = 0; i < n; i++)
        print_device(&devs[i], devs[i].index == chosen.index);
    if (bandwidth) {
        double bps;
        st = llmgpu_context_measure_bandwidth(ctx, &bps);
        if (st != LLMGPU_OK) {
            llmgpu_context_free(ctx);
            return fail("measuring bandwidth", st);
        }
        printf("streaming read bandwidth: %.1f GB/s\n", bps / 1e9);
    }
    llmgpu_context_free(ctx);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: llmgpu COMMAND [OPTIONS]\n"
            "commands:\n"
            "  info [--bandwidth]              list Vulkan devices and the one chosen\n"
            "environment: LLMGPU_DEVICE=N, LLMGPU_CACHE_DIR=DIR, LLMGPU_LOG=debug|info|warn|error,\n"
            "             LLMGPU_VALIDATE=1\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("libllmgpu %s\n", llmgpu_version_string());
        return 0;
    }
    if (!strcmp(argv[1], "info"))
        return cmd_info(argc - 2, argv + 2);
    fprintf(stderr, "llmgpu: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
