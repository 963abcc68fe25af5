/*
 * buffer.c - device memory: buffers with their own allocation, memory-type
 * choice per use, the device-memory budget (the device's, or the caller's
 * simulated limit), and staging copies in both directions.
 *
 * One VkDeviceMemory per buffer: weights are few and large (hundreds of
 * tensors, far below maxMemoryAllocationCount), and it keeps freeing exact.
 */
#include <string.h>

#include "vk/vk.h"

static int find_type(const struct llmgpu_context *ctx, uint32_t bits, VkMemoryPropertyFlags want,
                     VkMemoryPropertyFlags avoid) {
    for (uint32_t i = 0; i < ctx->mem_props.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = ctx->mem_props.memoryTypes[i].propertyFlags;
        if ((bits & (1u << i)) && (f & want) == want && !(f & avoid))
            return (int)i;
    }
    return -1;
}

static int choose_type(const struct llmgpu_context *ctx, uint32_t bits, enum lg_mem_kind kind) {
    const VkMemoryPropertyFlags dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    const VkMemoryPropertyFlags hv =
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int t = -1;
    switch (kind) {
    case LG_MEM_DEVICE:
        /* Plain device-local first: never spend small BAR heaps on weights. */
        t = find_type(ctx, bits, dl, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
        if (t < 0)
            t = find_type(ctx, bits, dl, 0);
        if (t < 0)
            t = find_type(ctx, bits, 0, 0);
        break;
    case LG_MEM_HOST:
        /* The CPU reads these: cached host memory, never BAR (0.03 GB/s reads). */
        t = find_type(ctx, bits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
        if (t < 0)
            t = find_type(ctx, bits, hv, 0);
        break;
    case LG_MEM_UPLOAD:
        t = find_type(ctx, bits, hv | dl, 0);
        if (t < 0)
            t = find_type(ctx, bits, hv, 0);
        break;
    }
    return t;
}

enum llmgpu_status lg_buffer_create(struct llmgpu_context *ctx, VkDeviceSize size,
                                    enum lg_mem_kind kind, struct lg_buffer *out) {
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                              .size = size ? size : 16,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkMemoryRequirements req;
    enum llmgpu_status st;
    int type;

    memset(out, 0, sizeof *out);
    if (atomic_load(&ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST;
    if (bci.size > ctx->max_alloc) {
        lg_err(&ctx->log, "buffer of %llu bytes exceeds the device's allocation limit of %llu",
               (unsigned long long)bci.size, (unsigned long long)ctx->max_alloc);
        return LLMGPU_ERR_OUT_OF_DEVICE_MEMORY;
    }
    st = lg_vk_check(ctx, vkCreateBuffer(ctx->device, &bci, NULL, &out->buf), "vkCreateBuffer");
    if (st != LLMGPU_OK)
        return st;
    vkGetBufferMemoryRequirements(ctx->device, out->buf, &req);
    type = choose_type(ctx, req.memoryTypeBits, kind);
    if (type < 0) {
        lg_err(&ctx->log, "no suitable memory type for a buffer of kind %d", (int)kind);
        st = LLMGPU_ERR_UNSUPPORTED;
        goto err_destroy_buffer;
    }
    out->device_local = (ctx->mem_props.memoryTypes[type].propertyFlags &
                         VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) != 0;
    if (out->device_local) {
        uint64_t used = atomic_fetch_add(&ctx->device_bytes, req.size) + req.size;
        if (used > ctx->device_limit) {
            atomic_fetch_sub(&ctx->device_bytes, req.size);
            lg_err(&ctx->log,
                   "out of device memory: %llu more bytes needed, %llu of %llu in use",
                   (unsigned long long)req.size, (unsigned long long)(used - req.size),
                   (unsigned long long)ctx->device_limit);
            st = LLMGPU_ERR_OUT_OF_DEVICE_MEMORY;
            goto err_destroy_buffer;
        }
    }
    {
        VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                    .allocationSize = req.size,
                                    .memoryTypeIndex = (uint32_t)type};
        st = lg_vk_check(ctx, vkAllocateMemory(ctx->device, &mai, NULL, &out->mem),
                         "vkAllocateMemory");
        if (st != LLMGPU_OK)
            goto err_unaccount;
    }
    st = lg_vk_check(ctx, vkBindBufferMemory(ctx->device, out->buf, out->mem, 0),
                     "vkBindBufferMemory");
    if (st != LLMGPU_OK)
        goto err_free_memory;
    if (kind != LG_MEM_DEVICE) {
        st = lg_vk_check(ctx, vkMapMemory(ctx->device, out->mem, 0, VK_WHOLE_SIZE, 0, &out->mapped),
                         "vkMapMemory");
        if (st != LLMGPU_OK)
            goto err_free_memory;
    }
    out->size = bci.size;
    out->kind = kind;
    return LLMGPU_OK;

err_free_memory:
    vkFreeMemory(ctx->device, out->mem, NULL);
err_unaccount:
    if (out->device_local)
        atomic_fetch_sub(&ctx->device_bytes, req.size);
err_destroy_buffer:
    vkDestroyBuffer(ctx->device, out->buf, NULL);
    memset(out, 0, sizeof *out);
    return st;
}

void lg_buffer_destroy(struct llmgpu_context *ctx, struct lg_buffer *b) {
    if (!b || !b->buf)
        return;
    if (b->device_local) {
        VkMemoryRequirements req;
        vkGetBufferMemoryRequirements(ctx->device, b->buf, &req);
        atomic_fetch_sub(&ctx->device_bytes, req.size);
    }
    vkDestroyBuffer(ctx->device, b->buf, NULL);
    vkFreeMemory(ctx->device, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

/* ---- staging uploader ---- */

enum llmgpu_status lg_uploader_init(struct llmgpu_context *ctx, VkDeviceSize staging_size,
                                    struct lg_uploader *u) {
    enum llmgpu_status st;
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = ctx->queue_family};
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    memset(u, 0, sizeof *u);
    u->ctx = ctx;
    st = lg_buffer_create(ctx, staging_size, LG_MEM_HOST, &u->staging);
    if (st != LLMGPU_OK)
        return st;
    st = lg_vk_check(ctx, vkCreateCommandPool(ctx->device, &pci, NULL, &u->pool),
                     "vkCreateCommandPool");
    if (st != LLMGPU_OK)
        goto err;
    cai.commandPool = u->pool;
    st = lg_vk_check(ctx, vkAllocateCommandBuffers(ctx->device, &cai, &u->cb),
                     "vkAllocateCommandBuffers");
    if (st != LLMGPU_OK)
        goto err;
    st = lg_vk_check(ctx, vkCreateFence(ctx->device, &fci, NULL, &u->fence), "vkCreateFence");
    if (st != LLMGPU_OK)
        goto err;
    return LLMGPU_OK;
err:
    lg_uploader_free(u);
    return st;
}

enum llmgpu_status lg_uploader_flush(struct lg_uploader *u) {
    struct llmgpu_context *ctx = u->ctx;
    enum llmgpu_status st;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &u->cb};
    VkResult r;
    if (!u->recording)
        return LLMGPU_OK;
    u->recording = 0;
    u->used = 0;
    st = lg_vk_check(ctx, vkEndCommandBuffer(u->cb), "vkEndCommandBuffer");
    if (st != LLMGPU_OK)
        return st;
    r = lg_vk_queue_submit(ctx, &si, u->fence);
    st = lg_vk_check(ctx, r, "vkQueueSubmit (upload)");
    if (st != LLMGPU_OK)
        return st;
    st = lg_vk_check(ctx, vkWaitForFences(ctx->device, 1, &u->fence, VK_TRUE, UINT64_MAX),
                     "vkWaitForFences (upload)");
    if (st != LLMGPU_OK)
        return st;
    return lg_vk_check(ctx, vkResetFences(ctx->device, 1, &u->fence), "vkResetFences");
}

enum llmgpu_status lg_uploader_reserve(struct lg_uploader *u, struct lg_buffer *dst,
                                       VkDeviceSize offset, VkDeviceSize size, void **ptr) {
    struct llmgpu_context *ctx = u->ctx;
    enum llmgpu_status st;
    VkDeviceSize at;
    VkBufferCopy region;
    if (size > u->staging.size || offset + size > dst->size) {
        lg_err(&ctx->log, "internal: upload of %llu bytes does not fit",
               (unsigned long long)size);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    at = LG_ALIGN_UP(u->used, 16);
    if (at + size > u->staging.size) {
        st = lg_uploader_flush(u);
        if (st != LLMGPU_OK)
            return st;
        at = 0;
    }
    if (!u->recording) {
        VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                       .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
        st = lg_vk_check(ctx, vkBeginCommandBuffer(u->cb, &bi), "vkBeginCommandBuffer");
        if (st != LLMGPU_OK)
            return st;
        u->recording = 1;
    }
    region.srcOffset = at;
    region.dstOffset = offset;
    region.size = size ? size : 1;
    if (size)
        vkCmdCopyBuffer(u->cb, u->staging.buf, dst->buf, 1, &region);
    u->used = at + size;
    *ptr = (char *)u->staging.mapped + at;
    return LLMGPU_OK;
}

void lg_uploader_free(struct lg_uploader *u) {
    struct llmgpu_context *ctx = u->ctx;
    if (!ctx)
        return;
    if (u->fence)
        vkDestroyFence(ctx->device, u->fence, NULL);
    if (u->pool)
        vkDestroyCommandPool(ctx->device, u->pool, NULL);
    lg_buffer_destroy(ctx, &u->staging);
    memset(u, 0, sizeof *u);
}

#define LG_STAGING_CHUNK ((VkDeviceSize)16 << 20)

enum llmgpu_status lg_buffer_upload(struct llmgpu_context *ctx, struct lg_buffer *dst,
                                    VkDeviceSize offset, const void *src, VkDeviceSize size) {
    struct lg_uploader u;
    enum llmgpu_status st;
    VkDeviceSize done = 0;
    st = lg_uploader_init(ctx, LG_MIN(size ? size : 16, LG_STAGING_CHUNK), &u);
    if (st != LLMGPU_OK)
        return st;
    while (done < size) {
        VkDeviceSize n = LG_MIN(size - done, u.staging.size);
        void *p;
        st = lg_uploader_reserve(&u, dst, offset + done, n, &p);
        if (st != LLMGPU_OK)
            break;
        memcpy(p, (const char *)src + done, n);
        done += n;
    }
    if (st == LLMGPU_OK)
        st = lg_uploader_flush(&u);
    lg_uploader_free(&u);
    return st;
}

enum llmgpu_status lg_buffer_download(struct llmgpu_context *ctx, const struct lg_buffer *src,
                                      VkDeviceSize offset, void *dst, VkDeviceSize size) {
    struct lg_buffer staging;
    struct lg_cmd cmd;
    enum llmgpu_status st;
    VkBufferCopy region = {.srcOffset = offset, .dstOffset = 0, .size = size};
    if (atomic_load(&ctx->lost))
        return LLMGPU_ERR_DEVICE_LOST; /* a mapped buffer of a lost device holds garbage */
    if (size == 0)
        return LLMGPU_OK;
    if (src->mapped) {
        memcpy(dst, (const char *)src->mapped + offset, size);
        return LLMGPU_OK;
    }
    st = lg_buffer_create(ctx, size, LG_MEM_HOST, &staging);
    if (st != LLMGPU_OK)
        return st;
    st = lg_cmd_create(ctx, &cmd);
    if (st != LLMGPU_OK)
        goto err_staging;
    st = lg_cmd_begin(ctx, &cmd, 1);
    if (st != LLMGPU_OK)
        goto err_cmd;
    lg_cmd_barrier_transfer(cmd.cb);
    vkCmdCopyBuffer(cmd.cb, src->buf, staging.buf, 1, &region);
    st = lg_cmd_end(ctx, &cmd);
    if (st == LLMGPU_OK)
        st = lg_cmd_submit_wait(ctx, &cmd);
    if (st == LLMGPU_OK)
        memcpy(dst, staging.mapped, size);
err_cmd:
    lg_cmd_destroy(ctx, &cmd);
err_staging:
    lg_buffer_destroy(ctx, &staging);
    return st;
}
