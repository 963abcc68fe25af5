/*
 * kernel.c - the runtime kernel compiler and its two caches.
 *
 * Sources in kernels/ are embedded at build time (lg_embedded_kernels). A
 * kernel is compiled by shaderc with "NAME=VALUE" defines (model dimensions,
 * element types); #include "x.glsl" resolves from the same table.
 *
 * SPIR-V disk cache: <cache_dir>/spv/<key>.spv where key = XXH3-128 of
 * (format version, shaderc version, target environment, device identity,
 * kernel name, its source, every embedded include, the defines). A file holds
 * a header (magic, word count, XXH3-128 of the payload) and the SPIR-V; a file
 * that does not verify is ignored and replaced, never trusted.
 *
 * VkPipelineCache: <cache_dir>/pipelines-<vendor>-<device>.bin, loaded only if
 * our checksum and the driver's header (vendorID, deviceID, pipelineCacheUUID)
 * match this device.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shaderc/shaderc.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "vk/kernels_embedded.h"
#include "vk/vk.h"

#ifndef LG_SHADERC_VERSION
#define LG_SHADERC_VERSION "unknown"
#endif

#define SPV_MAGIC "LGSPV\0\0\1"
#define PCACHE_MAGIC "LGPCH\0\0\1"

struct lg_cache_header {
    char magic[8];
    uint64_t payload_bytes;
    uint64_t hash_lo, hash_hi; /* XXH3-128 of the payload */
};
_Static_assert(sizeof(struct lg_cache_header) == 32, "cache header layout");

const char *lg_kc_source(const char *name, size_t *len) {
    for (const struct lg_embedded_file *f = lg_embedded_kernels; f->name; f++)
        if (strcmp(f->name, name) == 0) {
            if (len)
                *len = f->len;
            return f->data;
        }
    return NULL;
}

/* Vulkan 1.2 / SPIR-V 1.5 everywhere: SPIR-V 1.6 turns local_size_x_id into
 * LocalSizeId, which needs maintenance4; 1.5 has everything the kernels use. */
static uint32_t target_env_version(const struct llmgpu_context *ctx) {
    (void)ctx;
    return shaderc_env_version_vulkan_1_2;
}

static XXH128_hash_t kernel_key(const struct llmgpu_context *ctx, const char *name,
                                const char *const *defines, uint32_t n_defines) {
    XXH3_state_t st;
    uint32_t ident[4] = {ctx->props.vendorID, ctx->props.deviceID, ctx->props.driverVersion,
                         target_env_version(ctx)};
    const char *src = lg_kc_source(name, NULL);
    XXH3_128bits_reset(&st);
    XXH3_128bits_update(&st, "llmgpu-kc-1", 12);
    XXH3_128bits_update(&st, LG_SHADERC_VERSION, sizeof LG_SHADERC_VERSION);
    XXH3_128bits_update(&st, ident, sizeof ident);
    XXH3_128bits_update(&st, name, strlen(name) + 1);
    if (src)
        XXH3_128bits_update(&st, src, strlen(src) + 1);
    /* Includes are few and small: hash them all rather than resolve them. */
    for (const struct lg_embedded_file *f = lg_embedded_kernels; f->name; f++) {
        size_t n = strlen(f->name);
        if (n > 5 && strcmp(f->name + n - 5, ".glsl") == 0) {
            XXH3_128bits_update(&st, f->name, n + 1);
            XXH3_128bits_update(&st, f->data, f->len + 1);
        }
    }
    for (uint32_t i = 0; i < n_defines; i++)
        XXH3_128bits_update(&st, defines[i], strlen(defines[i]) + 1);
    return XXH3_128bits_digest(&st);
}

void lg_kc_cache_path(const struct llmgpu_context *ctx, const char *name,
                      const char *const *defines, uint32_t n_defines, char *buf, size_t size) {
    XXH128_hash_t k = kernel_key(ctx, name, defines, n_defines);
    snprintf(buf, size, "%s/spv/%016llx%016llx.spv", ctx->cache_dir ? ctx->cache_dir : ".",
             (unsigned long long)k.high64, (unsigned long long)k.low64);
}

/* mkdir -p with user-only permissions. */
static int make_dirs(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -1;
            tmp[i] = c;
        }
    }
    return 0;
}

/* Read a cache file; returns a verified payload or NULL. */
static void *read_cache_file(struct llmgpu_context *ctx, const char *path, const char *magic,
                             size_t *bytes) {
    struct lg_cache_header h;
    void *payload = NULL;
    XXH128_hash_t hash;
    struct stat sb;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    if (fstat(fileno(f), &sb) != 0 || fread(&h, sizeof h, 1, f) != 1 ||
        memcmp(h.magic, magic, 8) != 0 ||
        h.payload_bytes != (uint64_t)sb.st_size - sizeof h || h.payload_bytes == 0 ||
        h.payload_bytes > ((uint64_t)256 << 20)) {
        lg_warn(&ctx->log, "kernel cache: ignoring malformed %s", path);
        goto done;
    }
    payload = lg_malloc(&ctx->alloc, (size_t)h.payload_bytes);
    if (!payload || fread(payload, 1, (size_t)h.payload_bytes, f) != h.payload_bytes)
        goto fail;
    hash = XXH3_128bits(payload, (size_t)h.payload_bytes);
    if (hash.low64 != h.hash_lo || hash.high64 != h.hash_hi) {
        lg_warn(&ctx->log, "kernel cache: checksum mismatch in %s, recompiling", path);
        goto fail;
    }
    *bytes = (size_t)h.payload_bytes;
    goto done;
fail:
    lg_free(&ctx->alloc, payload);
    payload = NULL;
done:
    fclose(f);
    return payload;
}

/* Write atomically: a temporary file renamed over the target. */
static void write_cache_file(struct llmgpu_context *ctx, const char *path, const char *magic,
                             const void *payload, size_t bytes) {
    char tmp[4200], dir[4096];
    struct lg_cache_header h;
    XXH128_hash_t hash = XXH3_128bits(payload, bytes);
    const char *slash = strrchr(path, '/');
    int fd;
    FILE *f;
    if (slash && (size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        if (make_dirs(dir) != 0) {
            lg_warn(&ctx->log, "kernel cache: cannot create %s: %s", dir, strerror(errno));
            return;
        }
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "wb"))) {
        if (fd >= 0)
            close(fd);
        lg_warn(&ctx->log, "kernel cache: cannot write %s: %s", tmp, strerror(errno));
        return;
    }
    memcpy(h.magic, magic, 8);
    h.payload_bytes = bytes;
    h.hash_lo = hash.low64;
    h.hash_hi = hash.high64;
    if (fwrite(&h, sizeof h, 1, f) != 1 || fwrite(payload, 1, bytes, f) != bytes) {
        fclose(f);
        unlink(tmp);
        return;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

/* ---- shaderc ---- */

/* What include_resolve answers when it cannot allocate: shaderc dereferences the
 * result, so NULL would crash it. An empty source_name is shaderc's "include failed";
 * compile_spirv recognises the message and reports OUT_OF_HOST_MEMORY. */
#define LG_INCLUDE_OOM "llmgpu: out of host memory resolving an include"
static shaderc_include_result include_oom = {"", 0, LG_INCLUDE_OOM, sizeof LG_INCLUDE_OOM - 1,
                                             NULL};

static shaderc_include_result *include_resolve(void *user, const char *requested, int type,
                                               const char *requesting, size_t depth) {
    static const char not_found[] = "include not found among the embedded kernels";
    shaderc_include_result *r;
    struct llmgpu_context *ctx = user;
    size_t len = 0;
    const char *src = lg_kc_source(requested, &len);
    (void)type;
    (void)requesting;
    (void)depth;
    r = lg_calloc(&ctx->alloc, 1, sizeof *r);
    if (!r)
        return &include_oom;
    if (src) {
        r->source_name = requested;
        r->source_name_length = strlen(requested);
        r->content = src;
        r->content_length = len;
    } else {
        r->source_name = "";
        r->content = not_found;
        r->content_length = sizeof not_found - 1;
    }
    r->user_data = ctx;
    return r;
}

static void include_release(void *user, shaderc_include_result *r) {
    struct llmgpu_context *ctx = user;
    if (r != &include_oom)
        lg_free(&ctx->alloc, r);
}

static enum llmgpu_status compile_spirv(struct llmgpu_context *ctx, const char *name,
                                        const char *src, size_t len, const char *const *defines,
                                        uint32_t n_defines, uint32_t **words, size_t *n_words) {
    shaderc_compiler_t comp = shaderc_compiler_initialize();
    shaderc_compile_options_t opt = comp ? shaderc_compile_options_initialize() : NULL;
    shaderc_compilation_result_t res = NULL;
    enum llmgpu_status st = LLMGPU_ERR_KERNEL_COMPILE;
    uint64_t t0 = lg_now_ns();

    if (!comp || !opt) {
        lg_err(&ctx->log, "shaderc: cannot initialise the compiler");
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    shaderc_compile_options_set_source_language(opt, shaderc_source_language_glsl);
    shaderc_compile_options_set_target_env(opt, shaderc_target_env_vulkan,
                                           target_env_version(ctx));
    shaderc_compile_options_set_target_spirv(opt, shaderc_spirv_version_1_5);
    shaderc_compile_options_set_optimization_level(opt, shaderc_optimization_level_performance);
    shaderc_compile_options_set_include_callbacks(opt, include_resolve, include_release, ctx);
    for (uint32_t i = 0; i < n_defines; i++) {
        const char *eq = strchr(defines[i], '=');
        if (eq)
            shaderc_compile_options_add_macro_definition(opt, defines[i],
                                                         (size_t)(eq - defines[i]), eq + 1,
                                                         strlen(eq + 1));
        else
            shaderc_compile_options_add_macro_definition(opt, defines[i], strlen(defines[i]),
                                                         "1", 1);
    }
    res = shaderc_compile_into_spv(comp, src, len, shaderc_compute_shader, name, "main", opt);
    if (!res || shaderc_result_get_compilation_status(res) != shaderc_compilation_status_success) {
        char defs[1024] = "";
        size_t at = 0;
        for (uint32_t i = 0; i < n_defines && at < sizeof defs; i++)
            at += (size_t)snprintf(defs + at, sizeof defs - at, "%s%s", i ? " " : "", defines[i]);
        lg_err(&ctx->log, "kernel %s failed to compile (defines: %s): %s", name, defs,
               res ? shaderc_result_get_error_message(res) : "no result");
        if (!res || strstr(shaderc_result_get_error_message(res), LG_INCLUDE_OOM))
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    {
        size_t bytes = shaderc_result_get_length(res);
        *words = lg_malloc(&ctx->alloc, bytes);
        if (!*words) {
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            goto done;
        }
        memcpy(*words, shaderc_result_get_bytes(res), bytes);
        *n_words = bytes / 4;
    }
    atomic_fetch_add(&ctx->kc_compiled, 1);
    atomic_fetch_add(&ctx->kc_compile_ns, lg_now_ns() - t0);
    st = LLMGPU_OK;
done:
    if (res)
        shaderc_result_release(res);
    if (opt)
        shaderc_compile_options_release(opt);
    if (comp)
        shaderc_compiler_release(comp);
    return st;
}

enum llmgpu_status lg_kc_compile(struct llmgpu_context *ctx, const char *name,
                                 const char *const *defines, uint32_t n_defines,
                                 uint32_t **words, size_t *n_words) {
    char path[4200];
    size_t len = 0, bytes = 0;
    const char *src = lg_kc_source(name, &len);
    enum llmgpu_status st;
    void *cached;

    *words = NULL;
    *n_words = 0;
    if (!src) {
        lg_err(&ctx->log, "kernel %s is not among the embedded kernels", name);
        return LLMGPU_ERR_KERNEL_COMPILE;
    }
    if (ctx->cache_dir) {
        lg_kc_cache_path(ctx, name, defines, n_defines, path, sizeof path);
        cached = read_cache_file(ctx, path, SPV_MAGIC, &bytes);
        if (cached && bytes % 4 == 0 && ((const uint32_t *)cached)[0] == 0x07230203u) {
            *words = cached;
            *n_words = bytes / 4;
            atomic_fetch_add(&ctx->kc_cache_hits, 1);
            return LLMGPU_OK;
        }
        lg_free(&ctx->alloc, cached);
    }
    st = compile_spirv(ctx, name, src, len, defines, n_defines, words, n_words);
    if (st == LLMGPU_OK && ctx->cache_dir)
        write_cache_file(ctx, path, SPV_MAGIC, *words, *n_words * 4);
    return st;
}

/* ---- VkPipelineCache persistence ---- */

static void pcache_path(const struct llmgpu_context *ctx, char *buf, size_t size) {
    snprintf(buf, size, "%s/pipelines-%04x-%08x.bin", ctx->cache_dir, ctx->props.vendorID,
             ctx->props.deviceID);
}

enum llmgpu_status lg_pipeline_cache_load(struct llmgpu_context *ctx) {
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    void *data = NULL;
    size_t bytes = 0;
    char path[4200];
    enum llmgpu_status st;
    if (ctx->cache_dir) {
        pcache_path(ctx, path, sizeof path);
        data = read_cache_file(ctx, path, PCACHE_MAGIC, &bytes);
        /* The driver's own header: length, version, vendor, device, UUID. */
        if (data) {
            const uint32_t *h = data;
            if (bytes < 32 || h[0] < 32 || h[1] != VK_PIPELINE_CACHE_HEADER_VERSION_ONE ||
                h[2] != ctx->props.vendorID || h[3] != ctx->props.deviceID ||
                memcmp(h + 4, ctx->props.pipelineCacheUUID, VK_UUID_SIZE) != 0) {
                lg_info(&ctx->log, "pipeline cache %s is for another device or driver", path);
                lg_free(&ctx->alloc, data);
                data = NULL;
                bytes = 0;
            }
        }
    }
    ci.initialDataSize = bytes;
    ci.pInitialData = data;
    st = lg_vk_check(ctx, vkCreatePipelineCache(ctx->device, &ci, NULL, &ctx->pipeline_cache),
                     "vkCreatePipelineCache");
    lg_free(&ctx->alloc, data);
    return st;
}

void lg_pipeline_cache_save(struct llmgpu_context *ctx) {
    size_t bytes = 0;
    void *data;
    char path[4200];
    if (!ctx->cache_dir || !ctx->pipeline_cache)
        return;
    if (vkGetPipelineCacheData(ctx->device, ctx->pipeline_cache, &bytes, NULL) != VK_SUCCESS ||
        bytes == 0)
        return;
    data = lg_malloc(&ctx->alloc, bytes);
    if (!data)
        return;
    if (vkGetPipelineCacheData(ctx->device, ctx->pipeline_cache, &bytes, data) == VK_SUCCESS) {
        pcache_path(ctx, path, sizeof path);
        write_cache_file(ctx, path, PCACHE_MAGIC, data, bytes);
    }
    lg_free(&ctx->alloc, data);
}
