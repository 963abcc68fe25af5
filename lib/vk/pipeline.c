/*
 * pipeline.c - compute pipelines (created once per context and kernel
 * configuration, then shared), descriptor pools and sets, command buffers,
 * dispatch and barrier helpers.
 */
#include <stdio.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "vk/vk.h"

void lg_desc_define(struct lg_pipeline_desc *d, char *storage, const char *name, long value) {
    LLMGPU_ASSERT(d->n_defines < LG_MAX_DEFINES);
    snprintf(storage, 48, "%s=%ld", name, value);
    d->defines[d->n_defines++] = storage;
}

static void desc_key(const struct lg_pipeline_desc *d, uint64_t key[2]) {
    XXH3_state_t st;
    XXH128_hash_t h;
    XXH3_128bits_reset(&st);
    XXH3_128bits_update(&st, d->kernel, strlen(d->kernel) + 1);
    for (uint32_t i = 0; i < d->n_defines; i++)
        XXH3_128bits_update(&st, d->defines[i], strlen(d->defines[i]) + 1);
    XXH3_128bits_update(&st, d->spec, d->n_spec * sizeof d->spec[0]);
    XXH3_128bits_update(&st, &d->n_spec, sizeof d->n_spec);
    XXH3_128bits_update(&st, &d->n_bindings, sizeof d->n_bindings);
    XXH3_128bits_update(&st, &d->push_size, sizeof d->push_size);
    XXH3_128bits_update(&st, &d->required_subgroup_size, sizeof d->required_subgroup_size);
    h = XXH3_128bits_digest(&st);
    key[0] = h.low64;
    key[1] = h.high64;
}

static void destroy_one(struct llmgpu_context *ctx, struct lg_pipeline *p) {
    if (p->pipe)
        vkDestroyPipeline(ctx->device, p->pipe, NULL);
    if (p->layout)
        vkDestroyPipelineLayout(ctx->device, p->layout, NULL);
    if (p->dsl)
        vkDestroyDescriptorSetLayout(ctx->device, p->dsl, NULL);
    lg_free(&ctx->alloc, p);
}

static enum llmgpu_status create_pipeline(struct llmgpu_context *ctx,
                                          const struct lg_pipeline_desc *d,
                                          struct lg_pipeline *p) {
    VkDescriptorSetLayoutBinding b[LG_MAX_BINDINGS];
    VkSpecializationMapEntry map[LG_MAX_SPEC];
    uint32_t *words = NULL;
    size_t n_words = 0;
    VkShaderModule module = VK_NULL_HANDLE;
    enum llmgpu_status st;

    if (d->n_bindings > LG_MAX_BINDINGS || d->n_spec > LG_MAX_SPEC || d->push_size > 128)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < d->n_bindings; i++) {
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                              .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1,
                                              .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    }
    {
        VkDescriptorSetLayoutCreateInfo ci = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
            .bindingCount = d->n_bindings,
            .pBindings = b};
        st = lg_vk_check(ctx, vkCreateDescriptorSetLayout(ctx->device, &ci, NULL, &p->dsl),
                         "vkCreateDescriptorSetLayout");
        if (st != LLMGPU_OK)
            return st;
    }
    {
        VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
                                  .offset = 0,
                                  .size = d->push_size};
        VkPipelineLayoutCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                         .setLayoutCount = 1,
                                         .pSetLayouts = &p->dsl,
                                         .pushConstantRangeCount = d->push_size ? 1 : 0,
                                         .pPushConstantRanges = &pr};
        st = lg_vk_check(ctx, vkCreatePipelineLayout(ctx->device, &ci, NULL, &p->layout),
                         "vkCreatePipelineLayout");
        if (st != LLMGPU_OK)
            return st;
    }
    st = lg_kc_compile(ctx, d->kernel, d->defines, d->n_defines, &words, &n_words);
    if (st != LLMGPU_OK)
        return st;
    {
        VkShaderModuleCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                       .codeSize = n_words * 4,
                                       .pCode = words};
        st = lg_vk_check(ctx, vkCreateShaderModule(ctx->device, &ci, NULL, &module),
                         "vkCreateShaderModule");
        lg_free(&ctx->alloc, words);
        if (st != LLMGPU_OK)
            return st;
    }
    for (uint32_t i = 0; i < d->n_spec; i++)
        map[i] = (VkSpecializationMapEntry){.constantID = i,
                                            .offset = i * 4,
                                            .size = 4};
    {
        VkSpecializationInfo si = {.mapEntryCount = d->n_spec,
                                   .pMapEntries = map,
                                   .dataSize = d->n_spec * 4,
                                   .pData = d->spec};
        VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rss = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
            .requiredSubgroupSize = d->required_subgroup_size};
        int want_size = d->required_subgroup_size && ctx->caps.subgroup_size_control;
        VkComputePipelineCreateInfo ci = {
            .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            .flags = lg_vk_capture_stats(ctx) ? VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR : 0,
            .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                      .pNext = want_size ? &rss : NULL,
                      .flags = want_size
                                   ? VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT
                                   : 0,
                      .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                      .module = module,
                      .pName = "main",
                      .pSpecializationInfo = d->n_spec ? &si : NULL},
            .layout = p->layout};
        st = lg_vk_check(ctx,
                         vkCreateComputePipelines(ctx->device, ctx->pipeline_cache, 1, &ci, NULL,
                                                  &p->pipe),
                         d->kernel);
    }
    vkDestroyShaderModule(ctx->device, module, NULL);
    return st;
}

void lg_pipeline_print_stats(struct llmgpu_context *ctx, const struct lg_pipeline *p, FILE *f) {
    PFN_vkGetPipelineExecutablePropertiesKHR get_props;
    PFN_vkGetPipelineExecutableStatisticsKHR get_stats;
    VkPipelineExecutablePropertiesKHR props[4];
    uint32_t n = LG_ARRAY_LEN(props);
    VkPipelineInfoKHR pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = p->pipe};

    if (!lg_vk_capture_stats(ctx))
        return;
    get_props = (PFN_vkGetPipelineExecutablePropertiesKHR)vkGetDeviceProcAddr(
        ctx->device, "vkGetPipelineExecutablePropertiesKHR");
    get_stats = (PFN_vkGetPipelineExecutableStatisticsKHR)vkGetDeviceProcAddr(
        ctx->device, "vkGetPipelineExecutableStatisticsKHR");
    if (!get_props || !get_stats)
        return;
    for (uint32_t i = 0; i < n; i++)
        props[i] = (VkPipelineExecutablePropertiesKHR){
            .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR};
    if (get_props(ctx->device, &pi, &n, props) < 0)
        return;
    for (uint32_t i = 0; i < n; i++) {
        VkPipelineExecutableStatisticKHR st[32];
        uint32_t ns = LG_ARRAY_LEN(st);
        VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                          .pipeline = p->pipe,
                                          .executableIndex = i};
        for (uint32_t j = 0; j < ns; j++)
            st[j] = (VkPipelineExecutableStatisticKHR){
                .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR};
        if (get_stats(ctx->device, &ei, &ns, st) < 0)
            continue;
        fprintf(f, "  [%s %s]", props[i].name, p->name);
        for (uint32_t j = 0; j < ns; j++) {
            switch (st[j].format) {
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
                fprintf(f, " %s=%u;", st[j].name, (unsigned)st[j].value.b32);
                break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
                fprintf(f, " %s=%lld;", st[j].name, (long long)st[j].value.i64);
                break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
                fprintf(f, " %s=%llu;", st[j].name, (unsigned long long)st[j].value.u64);
                break;
            default:
                fprintf(f, " %s=%g;", st[j].name, st[j].value.f64);
                break;
            }
        }
        fprintf(f, "\n");
    }
}

enum llmgpu_status lg_pipeline_get(struct llmgpu_context *ctx, const struct lg_pipeline_desc *d,
                                   struct lg_pipeline **out) {
    uint64_t key[2];
    struct lg_pipeline *p;
    enum llmgpu_status st;

    *out = NULL;
    if (atomic_load(&ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST;
    desc_key(d, key);
    /* Creation happens under the lock: simple, and compiles are cached anyway. */
    pthread_mutex_lock(&ctx->cache_lock);
    for (p = ctx->pipelines; p; p = p->next)
        if (p->key[0] == key[0] && p->key[1] == key[1])
            break;
    if (p) {
        pthread_mutex_unlock(&ctx->cache_lock);
        *out = p;
        return LLMGPU_OK;
    }
    p = lg_calloc(&ctx->alloc, 1, sizeof *p);
    if (!p) {
        pthread_mutex_unlock(&ctx->cache_lock);
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    }
    memcpy(p->key, key, sizeof key);
    snprintf(p->name, sizeof p->name, "%s", d->kernel);
    p->n_bindings = d->n_bindings;
    p->push_size = d->push_size;
    st = create_pipeline(ctx, d, p);
    if (st != LLMGPU_OK) {
        destroy_one(ctx, p);
        pthread_mutex_unlock(&ctx->cache_lock);
        return st;
    }
    p->next = ctx->pipelines;
    ctx->pipelines = p;
    pthread_mutex_unlock(&ctx->cache_lock);
    *out = p;
    return LLMGPU_OK;
}

void lg_pipelines_destroy(struct llmgpu_context *ctx) {
    struct lg_pipeline *p = ctx->pipelines, *next;
    for (; p; p = next) {
        next = p->next;
        destroy_one(ctx, p);
    }
    ctx->pipelines = NULL;
}

/* ---- descriptors ---- */

enum llmgpu_status lg_dpool_create(struct llmgpu_context *ctx, uint32_t max_sets,
                                   struct lg_dpool *out) {
    VkDescriptorPoolSize size = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                 .descriptorCount = max_sets * LG_MAX_BINDINGS};
    VkDescriptorPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .maxSets = max_sets,
                                     .poolSizeCount = 1,
                                     .pPoolSizes = &size};
    out->pool = VK_NULL_HANDLE;
    return lg_vk_check(ctx, vkCreateDescriptorPool(ctx->device, &ci, NULL, &out->pool),
                       "vkCreateDescriptorPool");
}

void lg_dpool_destroy(struct llmgpu_context *ctx, struct lg_dpool *p) {
    if (p && p->pool)
        vkDestroyDescriptorPool(ctx->device, p->pool, NULL);
    if (p)
        p->pool = VK_NULL_HANDLE;
}

enum llmgpu_status lg_dset_create(struct llmgpu_context *ctx, struct lg_dpool *pool,
                                  const struct lg_pipeline *p, const struct lg_binding *b,
                                  uint32_t n, VkDescriptorSet *out) {
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = pool->pool,
                                      .descriptorSetCount = 1,
                                      .pSetLayouts = &p->dsl};
    VkDescriptorBufferInfo bi[LG_MAX_BINDINGS];
    VkWriteDescriptorSet w[LG_MAX_BINDINGS];
    enum llmgpu_status st;
    if (n != p->n_bindings) {
        lg_err(&ctx->log, "internal: %s takes %u bindings, got %u", p->name, p->n_bindings, n);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    st = lg_vk_check(ctx, vkAllocateDescriptorSets(ctx->device, &ai, out),
                     "vkAllocateDescriptorSets");
    if (st != LLMGPU_OK)
        return st;
    for (uint32_t i = 0; i < n; i++) {
        VkDeviceSize range = b[i].range ? b[i].range : b[i].buf->size - b[i].offset;
        if (range > ctx->max_binding) {
            lg_err(&ctx->log, "internal: binding %u of %s spans %llu bytes, over the %llu limit",
                   i, p->name, (unsigned long long)range, (unsigned long long)ctx->max_binding);
            return LLMGPU_ERR_INVALID_ARGUMENT;
        }
        bi[i] = (VkDescriptorBufferInfo){.buffer = b[i].buf->buf,
                                         .offset = b[i].offset,
                                         .range = range};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                      .dstSet = *out,
                                      .dstBinding = i,
                                      .descriptorCount = 1,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = &bi[i]};
    }
    vkUpdateDescriptorSets(ctx->device, n, w, 0, NULL);
    return LLMGPU_OK;
}

/* ---- command buffers ---- */

enum llmgpu_status lg_cmd_create(struct llmgpu_context *ctx, struct lg_cmd *out) {
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = ctx->queue_family};
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    enum llmgpu_status st;
    memset(out, 0, sizeof *out);
    st = lg_vk_check(ctx, vkCreateCommandPool(ctx->device, &pci, NULL, &out->pool),
                     "vkCreateCommandPool");
    if (st != LLMGPU_OK)
        return st;
    cai.commandPool = out->pool;
    st = lg_vk_check(ctx, vkAllocateCommandBuffers(ctx->device, &cai, &out->cb),
                     "vkAllocateCommandBuffers");
    if (st == LLMGPU_OK)
        st = lg_vk_check(ctx, vkCreateFence(ctx->device, &fci, NULL, &out->fence),
                         "vkCreateFence");
    if (st != LLMGPU_OK)
        lg_cmd_destroy(ctx, out);
    return st;
}

void lg_cmd_destroy(struct llmgpu_context *ctx, struct lg_cmd *c) {
    if (c->fence)
        vkDestroyFence(ctx->device, c->fence, NULL);
    if (c->pool)
        vkDestroyCommandPool(ctx->device, c->pool, NULL);
    memset(c, 0, sizeof *c);
}

enum llmgpu_status lg_cmd_begin(struct llmgpu_context *ctx, struct lg_cmd *c, int one_time) {
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = one_time ? VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT : 0};
    return lg_vk_check(ctx, vkBeginCommandBuffer(c->cb, &bi), "vkBeginCommandBuffer");
}

enum llmgpu_status lg_cmd_end(struct llmgpu_context *ctx, struct lg_cmd *c) {
    return lg_vk_check(ctx, vkEndCommandBuffer(c->cb), "vkEndCommandBuffer");
}

enum llmgpu_status lg_cmd_submit_wait(struct llmgpu_context *ctx, struct lg_cmd *c) {
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &c->cb};
    enum llmgpu_status st;
    VkResult r;
    if (atomic_load(&ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST;
    r = lg_vk_queue_submit(ctx, &si, c->fence);
    st = lg_vk_check(ctx, r, "vkQueueSubmit");
    if (st != LLMGPU_OK)
        return st;
    st = lg_vk_check(ctx, vkWaitForFences(ctx->device, 1, &c->fence, VK_TRUE, UINT64_MAX),
                     "vkWaitForFences");
    if (st != LLMGPU_OK)
        return st;
    return lg_vk_check(ctx, vkResetFences(ctx->device, 1, &c->fence), "vkResetFences");
}

void lg_cmd_dispatch(VkCommandBuffer cb, const struct lg_pipeline *p, VkDescriptorSet set,
                     const void *push, uint32_t gx, uint32_t gy, uint32_t gz) {
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    if (push && p->push_size)
        vkCmdPushConstants(cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p->push_size, push);
    vkCmdDispatch(cb, gx, gy, gz);
}

void lg_cmd_barrier(VkCommandBuffer cb) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

void lg_cmd_barrier_transfer(VkCommandBuffer cb) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_READ_BIT |
                                           VK_ACCESS_TRANSFER_WRITE_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0,
                         1, &mb, 0, NULL, 0, NULL);
}

void lg_vk_wait_idle(struct llmgpu_context *ctx) {
    /* vkDeviceWaitIdle would need every queue externally synchronised against other
     * threads' submits; waiting on our one queue under its lock is equivalent here. */
    pthread_mutex_lock(&ctx->queue_lock);
    vkQueueWaitIdle(ctx->queue);
    pthread_mutex_unlock(&ctx->queue_lock);
}
