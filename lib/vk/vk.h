/*
 * vk.h - the Vulkan runtime shared by the library: the context (instance,
 * device, queue, limits), buffers, the kernel compiler and its caches,
 * pipelines, descriptor sets and command recording.
 *
 * Must not know about models: everything here is generic compute plumbing.
 */
#ifndef LG_VK_H
#define LG_VK_H

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <vulkan/vulkan.h>

#include "internal.h"

/* Optional device capabilities found at context creation. */
struct lg_vk_caps {
    int fp16;             /* shaderFloat16 */
    int int8;             /* shaderInt8 */
    int storage16;        /* storageBuffer16BitAccess */
    int storage8;         /* storageBuffer8BitAccess */
    int int_dot;          /* shaderIntegerDotProduct (Vulkan 1.3) */
    int int_dot_accel;    /* its 4x8-bit packed signed accumulating form is accelerated */
    int coopmat_nv;       /* VK_NV_cooperative_matrix */
    int coopmat_khr;      /* VK_KHR_cooperative_matrix */
    int memory_budget;    /* VK_EXT_memory_budget */
    int exec_props;       /* VK_KHR_pipeline_executable_properties (pipelineExecutableInfo);
                           * enabled, and used, with LLMGPU_CONTEXT_FLAG_PROFILE only */
    int subgroup_arith;   /* subgroup arithmetic in compute shaders */
    int subgroup_shuffle; /* subgroup shuffles in compute shaders */
    int subgroup_size_control;
    uint32_t subgroup_size;
    uint32_t min_subgroup_size, max_subgroup_size;
};

struct lg_pipeline;

struct llmgpu_context {
    struct lg_log log;
    struct lg_alloc alloc;
    uint32_t flags;
    char *cache_dir; /* NULL: no disk cache */

    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;
    struct lg_vk_caps caps;
    struct llmgpu_device_info info;
    uint64_t max_binding;        /* usable bytes per storage-buffer binding */
    uint64_t max_alloc;          /* bytes per VkDeviceMemory */
    uint64_t device_limit;       /* device-local bytes we allow ourselves */
    float timestamp_period;      /* ns per tick; 0 without timestamps */

    pthread_mutex_t queue_lock;  /* vkQueueSubmit is externally synchronised */
    pthread_mutex_t cache_lock;  /* pipelines list and VkPipelineCache */
    VkPipelineCache pipeline_cache;
    struct lg_pipeline *pipelines; /* created pipelines, reused by key */

    _Atomic uint64_t device_bytes;   /* device-local bytes allocated now */
    _Atomic uint64_t validation_errors;
    _Atomic int lost;                /* VK_ERROR_DEVICE_LOST seen */
    /* Test hook (experimental, internal): when > 0 it counts down on every queue
     * submission, and the submission that brings it to 0 is not made but reports
     * VK_ERROR_DEVICE_LOST, as a driver reset would. */
    _Atomic int inject_lost;

    /* statistics of the kernel compiler */
    _Atomic uint64_t kc_compiled, kc_cache_hits;
    _Atomic uint64_t kc_compile_ns;
};

/* Turn a VkResult into a status, logging what failed; marks the context lost
 * on VK_ERROR_DEVICE_LOST. */
enum llmgpu_status lg_vk_check(struct llmgpu_context *ctx, VkResult r, const char *what);
const char *lg_vk_result_string(VkResult r);
/* vkQueueSubmit under the queue lock, through the device-loss test hook. */
VkResult lg_vk_queue_submit(struct llmgpu_context *ctx, const VkSubmitInfo *si, VkFence fence);
/* Tests only (reached through libllmgpu.a, never exported): the next queue
 * submission of ctx reports VK_ERROR_DEVICE_LOST. */
void lg_test_inject_device_lost(struct llmgpu_context *ctx);
uint64_t lg_now_ns(void);

/* ---- buffers (buffer.c) ---- */

enum lg_mem_kind {
    LG_MEM_DEVICE = 0,   /* device-local; filled by staging copies or kernels */
    LG_MEM_HOST = 1,     /* host-visible, coherent, cached when possible: readback and staging */
    LG_MEM_UPLOAD = 2,   /* host-visible, device-local when the device has it: small per-step inputs */
};

struct lg_buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *mapped;        /* host-visible kinds only */
    enum lg_mem_kind kind;
    int device_local;
};

enum llmgpu_status lg_buffer_create(struct llmgpu_context *ctx, VkDeviceSize size,
                                    enum lg_mem_kind kind, struct lg_buffer *out);
void lg_buffer_destroy(struct llmgpu_context *ctx, struct lg_buffer *b);
/* Copy host data into a device buffer through a staging buffer. */
enum llmgpu_status lg_buffer_upload(struct llmgpu_context *ctx, struct lg_buffer *dst,
                                    VkDeviceSize offset, const void *src, VkDeviceSize size);
/* Copy device data to the host through a staging buffer. */
enum llmgpu_status lg_buffer_download(struct llmgpu_context *ctx, const struct lg_buffer *src,
                                      VkDeviceSize offset, void *dst, VkDeviceSize size);

/* A staging uploader: fill chunks of a host-visible ring and copy them on the
 * queue, so a load streams through bounded host memory. */
struct lg_uploader {
    struct llmgpu_context *ctx;
    struct lg_buffer staging;
    VkDeviceSize used;
    VkCommandPool pool;
    VkCommandBuffer cb;
    VkFence fence;
    int recording;
};
enum llmgpu_status lg_uploader_init(struct llmgpu_context *ctx, VkDeviceSize staging_size,
                                    struct lg_uploader *u);
/* Reserve size bytes of staging memory to be copied into dst at offset when
 * flushed; *ptr receives where to write them. size <= staging size. */
enum llmgpu_status lg_uploader_reserve(struct lg_uploader *u, struct lg_buffer *dst,
                                       VkDeviceSize offset, VkDeviceSize size, void **ptr);
enum llmgpu_status lg_uploader_flush(struct lg_uploader *u);
void lg_uploader_free(struct lg_uploader *u);

/* ---- kernel compiler and caches (kernel.c) ---- */

/* Compile kernels/<name> with "NAME=VALUE" (or "NAME") defines into SPIR-V,
 * through the on-disk cache. *words is allocated with lg_malloc(&ctx->alloc). */
enum llmgpu_status lg_kc_compile(struct llmgpu_context *ctx, const char *name,
                                 const char *const *defines, uint32_t n_defines,
                                 uint32_t **words, size_t *n_words);
/* Source of an embedded kernel or include, NULL if unknown. */
const char *lg_kc_source(const char *name, size_t *len);
void lg_kc_cache_path(const struct llmgpu_context *ctx, const char *name,
                      const char *const *defines, uint32_t n_defines, char *buf, size_t size);
enum llmgpu_status lg_pipeline_cache_load(struct llmgpu_context *ctx);
void lg_pipeline_cache_save(struct llmgpu_context *ctx);

/* ---- pipelines, descriptors, commands (pipeline.c) ---- */

#define LG_MAX_BINDINGS 12
#define LG_MAX_DEFINES 32
#define LG_MAX_SPEC 16

struct lg_pipeline_desc {
    const char *kernel;                 /* e.g. "rms_norm.comp" */
    const char *defines[LG_MAX_DEFINES]; /* "NAME=VALUE" */
    uint32_t n_defines;
    uint32_t spec[LG_MAX_SPEC];         /* uint32 specialisation constants, ids 0.. */
    uint32_t n_spec;
    uint32_t n_bindings;                /* storage buffers at set 0, bindings 0.. */
    uint32_t push_size;                 /* bytes of push constants, <= 128 */
    uint32_t required_subgroup_size;    /* 0: the driver's choice */
};

struct lg_pipeline {
    struct lg_pipeline *next;
    uint64_t key[2];
    char name[64];
    VkPipeline pipe;
    VkPipelineLayout layout;
    VkDescriptorSetLayout dsl;
    uint32_t n_bindings;
    uint32_t push_size;
};

/* A pipeline for desc, created once per context and reused (the context owns it). */
enum llmgpu_status lg_pipeline_get(struct llmgpu_context *ctx, const struct lg_pipeline_desc *d,
                                   struct lg_pipeline **out);
void lg_pipelines_destroy(struct llmgpu_context *ctx);
/* Whether pipelines capture the driver's statistics: a profiling context
 * (LLMGPU_CONTEXT_FLAG_PROFILE) on a device with VK_KHR_pipeline_executable_properties. */
static inline int lg_vk_capture_stats(const struct llmgpu_context *ctx) {
    return (ctx->flags & LLMGPU_CONTEXT_FLAG_PROFILE) && ctx->caps.exec_props;
}
/* Print the driver's statistics of p's executables (one line each) to f; nothing
 * without lg_vk_capture_stats. */
void lg_pipeline_print_stats(struct llmgpu_context *ctx, const struct lg_pipeline *p, FILE *f);
/* Append a define "NAME=VALUE" with an integer value (copied into storage that
 * lives as long as d: pass a char buffer of at least 48 bytes per define). */
void lg_desc_define(struct lg_pipeline_desc *d, char *storage, const char *name, long value);

/* One binding: a range of a buffer. range 0 means the whole buffer from offset. */
struct lg_binding {
    const struct lg_buffer *buf;
    VkDeviceSize offset;
    VkDeviceSize range;
};

struct lg_dpool {
    VkDescriptorPool pool;
};
enum llmgpu_status lg_dpool_create(struct llmgpu_context *ctx, uint32_t max_sets,
                                   struct lg_dpool *out);
void lg_dpool_destroy(struct llmgpu_context *ctx, struct lg_dpool *p);
enum llmgpu_status lg_dset_create(struct llmgpu_context *ctx, struct lg_dpool *pool,
                                  const struct lg_pipeline *p, const struct lg_binding *b,
                                  uint32_t n, VkDescriptorSet *out);

struct lg_cmd {
    VkCommandPool pool;
    VkCommandBuffer cb;
    VkFence fence;
};
enum llmgpu_status lg_cmd_create(struct llmgpu_context *ctx, struct lg_cmd *out);
void lg_cmd_destroy(struct llmgpu_context *ctx, struct lg_cmd *c);
enum llmgpu_status lg_cmd_begin(struct llmgpu_context *ctx, struct lg_cmd *c, int one_time);
enum llmgpu_status lg_cmd_end(struct llmgpu_context *ctx, struct lg_cmd *c);
/* Wait until the queue is idle, safely against other threads' submits. */
void lg_vk_wait_idle(struct llmgpu_context *ctx);
/* Submit and wait for completion. */
enum llmgpu_status lg_cmd_submit_wait(struct llmgpu_context *ctx, struct lg_cmd *c);
/* Record one dispatch; push may be NULL when the pipeline has none. */
void lg_cmd_dispatch(VkCommandBuffer cb, const struct lg_pipeline *p, VkDescriptorSet set,
                     const void *push, uint32_t gx, uint32_t gy, uint32_t gz);
/* Make earlier shader writes visible to later shader reads and writes. */
void lg_cmd_barrier(VkCommandBuffer cb);
/* Make transfer writes visible to shaders, and shader writes to transfers. */
void lg_cmd_barrier_transfer(VkCommandBuffer cb);

/* ---- device selection (device.c) ---- */
/* The process's VkInstance (with the validation layer when validation): made by the
 * first call, kept until the process ends; never destroy it. */
enum llmgpu_status lg_vk_instance_get(const struct lg_log *log, int validation,
                                      VkInstance *out);
void lg_vk_fill_info(VkPhysicalDevice pd, uint32_t index, struct llmgpu_device_info *info,
                     struct lg_vk_caps *caps);
/* Rank of a device type for the default choice: higher is preferred. */
int lg_vk_type_rank(enum llmgpu_device_type t);
enum llmgpu_status lg_vk_context_init(struct llmgpu_context *ctx,
                                      const struct llmgpu_context_params *p);
void lg_vk_context_destroy(struct llmgpu_context *ctx);

#endif /* LG_VK_H */
