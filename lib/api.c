/*
 * api.c - public entry points for versions, statuses, params and contexts:
 * argument checks, struct_size handling, lifetimes. Model, tokenizer and
 * session entry points live beside their modules (model_api.c, session.c).
 */
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"

unsigned llmgpu_version_number(void) {
    return LLMGPU_VERSION_NUMBER;
}

const char *llmgpu_version_string(void) {
    return LLMGPU_VERSION_STRING;
}

static const struct {
    enum llmgpu_status status;
    const char *name;
    const char *text;
} status_table[] = {
    {LLMGPU_OK, "OK", "success"},
    {LLMGPU_ERR_INVALID_ARGUMENT, "ERR_INVALID_ARGUMENT", "invalid argument"},
    {LLMGPU_ERR_OUT_OF_HOST_MEMORY, "ERR_OUT_OF_HOST_MEMORY", "out of host memory"},
    {LLMGPU_ERR_OUT_OF_DEVICE_MEMORY, "ERR_OUT_OF_DEVICE_MEMORY", "out of device memory"},
    {LLMGPU_ERR_NO_DEVICE, "ERR_NO_DEVICE", "no Vulkan device"},
    {LLMGPU_ERR_DEVICE_LOST, "ERR_DEVICE_LOST", "device lost"},
    {LLMGPU_ERR_VULKAN, "ERR_VULKAN", "Vulkan error"},
    {LLMGPU_ERR_KERNEL_COMPILE, "ERR_KERNEL_COMPILE", "kernel compilation failed"},
    {LLMGPU_ERR_IO, "ERR_IO", "file input/output error"},
    {LLMGPU_ERR_BAD_MODEL_FILE, "ERR_BAD_MODEL_FILE", "malformed model file"},
    {LLMGPU_ERR_UNSUPPORTED_MODEL, "ERR_UNSUPPORTED_MODEL", "unsupported model"},
    {LLMGPU_ERR_CONTEXT_FULL, "ERR_CONTEXT_FULL", "context length exceeded"},
    {LLMGPU_ERR_BUFFER_TOO_SMALL, "ERR_BUFFER_TOO_SMALL", "buffer too small"},
    {LLMGPU_ERR_ABORTED, "ERR_ABORTED", "aborted by callback"},
    {LLMGPU_ERR_UNSUPPORTED, "ERR_UNSUPPORTED", "not supported by this device or build"},
    {LLMGPU_ERR_BAD_TOKENIZER, "ERR_BAD_TOKENIZER", "malformed or unsupported tokenizer"},
    {LLMGPU_ERR_INVALID_TOKEN, "ERR_INVALID_TOKEN", "token id outside the vocabulary"},
};

const char *llmgpu_status_string(enum llmgpu_status status) {
    for (size_t i = 0; i < LG_ARRAY_LEN(status_table); i++)
        if (status_table[i].status == status)
            return status_table[i].text;
    return "unknown status";
}

const char *llmgpu_status_name(enum llmgpu_status status) {
    for (size_t i = 0; i < LG_ARRAY_LEN(status_table); i++)
        if (status_table[i].status == status)
            return status_table[i].name;
    return "UNKNOWN";
}

void llmgpu_context_params_init(struct llmgpu_context_params *p) {
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->device_index = -1;
    p->log_level = LLMGPU_LOG_LEVEL_WARN;
}

/* Copy the caller's params: fields beyond their struct_size keep defaults. */
static int read_context_params(const struct llmgpu_context_params *in,
                               struct llmgpu_context_params *out) {
    llmgpu_context_params_init(out);
    if (!in)
        return 0;
    if (in->struct_size == 0)
        return -1;
    memcpy(out, in, LG_MIN(in->struct_size, (uint32_t)sizeof *out));
    out->struct_size = sizeof *out;
    return 0;
}

enum llmgpu_status llmgpu_devices_list(const struct llmgpu_context_params *params,
                                       struct llmgpu_device_info *infos, uint32_t *count_inout) {
    struct llmgpu_context_params p;
    struct lg_log log;
    VkInstance inst;
    VkPhysicalDevice pds[32];
    uint32_t n = LG_ARRAY_LEN(pds);
    enum llmgpu_status st;
    if (!count_inout || read_context_params(params, &p) != 0)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    log = (struct lg_log){p.log_fn, p.log_user, p.log_level};
    st = lg_vk_instance_get(&log, (p.flags & LLMGPU_CONTEXT_FLAG_VALIDATION) != 0, &inst);
    if (st != LLMGPU_OK)
        return st;
    if (vkEnumeratePhysicalDevices(inst, &n, pds) < 0 || n == 0) {
        lg_err(&log, "no Vulkan device found: install a Vulkan driver (for the CPU: "
                     "mesa-vulkan-drivers)");
        return LLMGPU_ERR_NO_DEVICE;
    }
    if (infos) {
        if (*count_inout < n) {
            *count_inout = n;
            return LLMGPU_ERR_BUFFER_TOO_SMALL;
        }
        for (uint32_t i = 0; i < n; i++) {
            struct llmgpu_device_info full;
            uint32_t size = infos[i].struct_size;
            if (size == 0)
                return LLMGPU_ERR_INVALID_ARGUMENT;
            lg_vk_fill_info(pds[i], i, &full, NULL);
            full.struct_size = LG_MIN(size, (uint32_t)sizeof full);
            memcpy(&infos[i], &full, full.struct_size);
        }
    }
    *count_inout = n;
    return LLMGPU_OK;
}

/* The default kernel cache directory: $XDG_CACHE_HOME/llmgpu or $HOME/.cache/llmgpu. */
static char *default_cache_dir(const struct lg_alloc *a) {
    const char *xdg = getenv("XDG_CACHE_HOME"); /* LLMGPU_ALLOW: agreed default, STYLE.md */
    const char *home = getenv("HOME");          /* LLMGPU_ALLOW: agreed default, STYLE.md */
    const char *base = xdg && xdg[0] == '/' ? xdg : home;
    const char *suffix = xdg && xdg[0] == '/' ? "/llmgpu" : "/.cache/llmgpu";
    char *dir;
    size_t n;
    if (!base || !base[0])
        return NULL;
    n = strlen(base) + strlen(suffix) + 1;
    dir = lg_malloc(a, n);
    if (dir) {
        memcpy(dir, base, strlen(base));
        memcpy(dir + strlen(base), suffix, strlen(suffix) + 1);
    }
    return dir;
}

enum llmgpu_status llmgpu_context_create(const struct llmgpu_context_params *params,
                                         struct llmgpu_context **out) {
    struct llmgpu_context_params p;
    struct llmgpu_context *ctx;
    struct lg_alloc a = {{0}, 0, 0};
    enum llmgpu_status st;

    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (read_context_params(params, &p) != 0)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (p.allocator) {
        if (!p.allocator->alloc || !p.allocator->free)
            return LLMGPU_ERR_INVALID_ARGUMENT;
        a.user = *p.allocator;
    }
    ctx = lg_calloc(&a, 1, sizeof *ctx);
    if (!ctx)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    ctx->alloc = a;
    ctx->log = (struct lg_log){p.log_fn, p.log_user, p.log_level};
    ctx->flags = p.flags;
    pthread_mutex_init(&ctx->queue_lock, NULL);
    pthread_mutex_init(&ctx->cache_lock, NULL);
    if (!(p.flags & LLMGPU_CONTEXT_FLAG_NO_DISK_CACHE)) {
        ctx->cache_dir = p.cache_dir ? lg_strdup(&ctx->alloc, p.cache_dir)
                                     : default_cache_dir(&ctx->alloc);
        if (p.cache_dir && !ctx->cache_dir) {
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            goto err_free_ctx;
        }
    }
    st = lg_vk_context_init(ctx, &p);
    if (st != LLMGPU_OK)
        goto err_free_ctx;
    st = lg_pipeline_cache_load(ctx);
    if (st != LLMGPU_OK)
        goto err_free_ctx;
    *out = ctx;
    return LLMGPU_OK;

err_free_ctx:
    llmgpu_context_free(ctx);
    return st;
}

void llmgpu_context_free(struct llmgpu_context *ctx) {
    struct lg_alloc a;
    if (!ctx)
        return;
    lg_vk_context_destroy(ctx);
    pthread_mutex_destroy(&ctx->queue_lock);
    pthread_mutex_destroy(&ctx->cache_lock);
    a = ctx->alloc;
    lg_free(&a, ctx->cache_dir);
    lg_free(&a, ctx);
}

enum llmgpu_status llmgpu_context_device_info(const struct llmgpu_context *ctx,
                                              struct llmgpu_device_info *info) {
    uint32_t size;
    if (!ctx || !info || info->struct_size == 0)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    size = LG_MIN(info->struct_size, (uint32_t)sizeof *info);
    memcpy(info, &ctx->info, size);
    info->struct_size = size;
    return LLMGPU_OK;
}

uint64_t llmgpu_context_validation_errors(const struct llmgpu_context *ctx) {
    return ctx ? atomic_load(&((struct llmgpu_context *)(uintptr_t)ctx)->validation_errors) : 0;
}
