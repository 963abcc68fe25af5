/*
 * bandwidth.c - llmgpu_context_measure_bandwidth: the device's streaming-read
 * rate, the yardstick for "fraction of the memory-bandwidth limit".
 */
#include <string.h>

#include "vk/vk.h"

enum llmgpu_status llmgpu_context_measure_bandwidth(struct llmgpu_context *ctx,
                                                    double *bytes_per_second) {
    struct lg_pipeline_desc d = {.kernel = "bandwidth.comp", .n_spec = 1, .spec = {256},
                                 .n_bindings = 2, .push_size = 8};
    struct lg_pipeline *p;
    struct lg_buffer src = {0}, dst = {0};
    struct lg_dpool pool = {0};
    struct lg_cmd cmd = {0};
    VkDescriptorSet set;
    enum llmgpu_status st;
    uint64_t size, best = UINT64_MAX;
    uint32_t groups, push[2];

    if (!ctx || !bytes_per_second)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *bytes_per_second = 0;
    /* Large enough to dwarf fixed costs on a big GPU, small enough for any binding. */
    size = LG_MIN((uint64_t)1 << 30, ctx->max_binding);
    size = LG_MIN(size, ctx->device_limit / 4) & ~(uint64_t)15;
    if (ctx->info.type == LLMGPU_DEVICE_TYPE_CPU)
        size = LG_MIN(size, (uint64_t)64 << 20);
    groups = ctx->info.type == LLMGPU_DEVICE_TYPE_CPU ? 16 : 4096;
    st = lg_pipeline_get(ctx, &d, &p);
    if (st != LLMGPU_OK)
        return st;
    st = lg_buffer_create(ctx, size, LG_MEM_DEVICE, &src);
    if (st != LLMGPU_OK)
        goto done;
    st = lg_buffer_create(ctx, (uint64_t)groups * 256 * 4, LG_MEM_DEVICE, &dst);
    if (st != LLMGPU_OK)
        goto done;
    st = lg_dpool_create(ctx, 1, &pool);
    if (st != LLMGPU_OK)
        goto done;
    {
        struct lg_binding b[2] = {{&src, 0, 0}, {&dst, 0, 0}};
        st = lg_dset_create(ctx, &pool, p, b, 2, &set);
        if (st != LLMGPU_OK)
            goto done;
    }
    st = lg_cmd_create(ctx, &cmd);
    if (st != LLMGPU_OK)
        goto done;
    push[0] = (uint32_t)(size / 16);
    push[1] = groups * 256;
    /* Rounds of 4 reads: 0.3 s of them (and at least 2) to bring the clocks up, then the
     * fastest of 6 more. The clock of a GPU that waited for the host (a compile, the
     * allocations above, weights quantized on the CPU) needs some tenths of a second of
     * work to ramp up; the 8 rounds this did before (~11 ms on the H100) were measured
     * at half the rate after the CPU had quantized a model. */
    {
        uint64_t start = lg_now_ns();
        for (int round = 0, timed = 0; timed < 6; round++) {
            uint64_t t0, t;
            st = lg_cmd_begin(ctx, &cmd, 1);
            if (st != LLMGPU_OK)
                goto done;
            for (int k = 0; k < 4; k++)
                lg_cmd_dispatch(cmd.cb, p, set, push, groups, 1, 1);
            st = lg_cmd_end(ctx, &cmd);
            if (st != LLMGPU_OK)
                goto done;
            t0 = lg_now_ns();
            st = lg_cmd_submit_wait(ctx, &cmd);
            if (st != LLMGPU_OK)
                goto done;
            t = lg_now_ns() - t0;
            if (round >= 2 && t0 - start >= 300000000u) {
                timed++;
                if (t < best)
                    best = t;
            }
        }
    }
    *bytes_per_second = (double)size * 4 / ((double)best * 1e-9);
done:
    lg_cmd_destroy(ctx, &cmd);
    lg_dpool_destroy(ctx, &pool);
    lg_buffer_destroy(ctx, &dst);
    lg_buffer_destroy(ctx, &src);
    return st;
}
