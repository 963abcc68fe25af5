/* check_vk.c - the Vulkan runtime on whatever device is present (lavapipe in
 * CI): device listing, context errors, buffers, the kernel compiler and its
 * caches, and a kernel run checked against plain C. Tagged "gpu". */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "vk/vk.h"

static struct tu_log tlog;

START_TEST(devices_two_call) {
    struct llmgpu_device_info infos[8];
    uint32_t n = 0, n2;
    ck_assert_int_eq(llmgpu_devices_list(NULL, NULL, &n), LLMGPU_OK);
    ck_assert_uint_ge(n, 1);
    for (int i = 0; i < 8; i++)
        infos[i].struct_size = sizeof infos[i];
    if (n >= 2) {
        n2 = 1;
        ck_assert_int_eq(llmgpu_devices_list(NULL, infos, &n2), LLMGPU_ERR_BUFFER_TOO_SMALL);
        ck_assert_uint_eq(n2, n);
    }
    n2 = 8;
    ck_assert_int_eq(llmgpu_devices_list(NULL, infos, &n2), LLMGPU_OK);
    ck_assert_uint_eq(n2, n);
    ck_assert_uint_eq(infos[0].index, 0);
    ck_assert(strlen(infos[0].name) > 0);
    ck_assert_uint_ge(infos[0].subgroup_size, 1);
    ck_assert_uint_gt(infos[0].max_storage_buffer_range, 0);
    for (uint32_t i = 0; i < n && i < 8; i++) {
        /* accelerated integer dot products are a property of having them */
        if (infos[i].features & LLMGPU_DEVICE_FEATURE_INTEGER_DOT_ACCELERATED)
            ck_assert(infos[i].features & LLMGPU_DEVICE_FEATURE_INTEGER_DOT);
        /* lavapipe emulates them on the CPU (Mesa 22.3 reports none accelerated) */
        if (infos[i].type == LLMGPU_DEVICE_TYPE_CPU && strstr(infos[i].name, "llvmpipe"))
            ck_assert(!(infos[i].features & LLMGPU_DEVICE_FEATURE_INTEGER_DOT_ACCELERATED));
    }
}
END_TEST

START_TEST(context_bad_index) {
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx = (struct llmgpu_context *)&cp;
    tu_log_clear(&tlog);
    llmgpu_context_params_init(&cp);
    cp.device_index = 999;
    cp.log_fn = tu_log_fn;
    cp.log_user = &tlog;
    cp.flags = LLMGPU_CONTEXT_FLAG_NO_DISK_CACHE;
    ck_assert_int_eq(llmgpu_context_create(&cp, &ctx), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(tlog.text, "device_index 999 out of range"));
}
END_TEST

START_TEST(context_info_and_limits) {
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx;
    struct llmgpu_device_info info = {.struct_size = sizeof info};
    llmgpu_context_params_init(&cp);
    cp.flags = LLMGPU_CONTEXT_FLAG_NO_DISK_CACHE;
    cp.max_binding_size = 1 << 20;
    cp.device_memory_limit = 4 << 20;
    ck_assert_int_eq(llmgpu_context_create(&cp, &ctx), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_context_device_info(ctx, &info), LLMGPU_OK);
    ck_assert_uint_eq(ctx->max_binding, 1 << 20);
    ck_assert_uint_eq(ctx->device_limit, 4 << 20);
    {
        struct lg_buffer a, b;
        ck_assert_int_eq(lg_buffer_create(ctx, 3 << 20, LG_MEM_DEVICE, &a), LLMGPU_OK);
        /* over the simulated limit: refused, and the context stays usable */
        ck_assert_int_eq(lg_buffer_create(ctx, 2 << 20, LG_MEM_DEVICE, &b),
                         LLMGPU_ERR_OUT_OF_DEVICE_MEMORY);
        lg_buffer_destroy(ctx, &a);
        ck_assert_int_eq(lg_buffer_create(ctx, 2 << 20, LG_MEM_DEVICE, &b), LLMGPU_OK);
        lg_buffer_destroy(ctx, &b);
        ck_assert_uint_eq(atomic_load(&ctx->device_bytes), 0);
    }
    llmgpu_context_free(ctx);
}
END_TEST

/* Contexts share the process's VkInstance: made once, kept when contexts are freed.
 * The NVIDIA driver refused vkCreateInstance after ~30 instances had been created and
 * destroyed in one process (tests/tools/ctx_loop.py on the H100). Here: two live
 * contexts, then one made after both were freed, all on one instance, and 40 more
 * created and freed in a row. */
START_TEST(contexts_share_one_instance) {
    struct llmgpu_context *a = tu_context(&tlog, NULL), *b = tu_context(&tlog, NULL), *c;
    VkInstance inst = a->instance;
    ck_assert_ptr_nonnull(inst);
    ck_assert_ptr_eq(b->instance, inst);
    ck_assert_ptr_ne(a->device, b->device);
    tu_context_free(a);
    tu_context_free(b);
    c = tu_context(&tlog, NULL);
    ck_assert_ptr_eq(c->instance, inst);
    tu_context_free(c);
    for (int i = 0; i < 40; i++) {
        c = tu_context(&tlog, NULL);
        ck_assert_ptr_eq(c->instance, inst);
        tu_context_free(c);
    }
}
END_TEST

START_TEST(upload_download_awkward) {
    struct llmgpu_context *ctx = tu_context(&tlog, NULL);
    static const size_t sizes[] = {1, 3, 4096, (17u << 20) + 13}; /* last crosses staging chunks */
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        unsigned char *in = malloc(n), *out = malloc(n);
        struct lg_buffer b;
        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)(i * 131 + k);
        ck_assert_int_eq(lg_buffer_create(ctx, n + 8, LG_MEM_DEVICE, &b), LLMGPU_OK);
        ck_assert_int_eq(lg_buffer_upload(ctx, &b, 5, in, n), LLMGPU_OK);
        ck_assert_int_eq(lg_buffer_download(ctx, &b, 5, out, n), LLMGPU_OK);
        ck_assert_msg(memcmp(in, out, n) == 0, "round trip of %zu bytes", n);
        lg_buffer_destroy(ctx, &b);
        free(in);
        free(out);
    }
    tu_context_free(ctx);
}
END_TEST

/* Run add.comp on n elements; returns the max abs error against C. */
static float run_add(struct llmgpu_context *ctx, uint32_t n, uint32_t wg) {
    struct lg_pipeline_desc d = {.kernel = "add.comp", .n_spec = 1, .spec = {wg},
                                 .n_bindings = 3, .push_size = 4};
    struct lg_pipeline *p;
    struct lg_buffer a, b, y;
    struct lg_dpool pool;
    struct lg_cmd cmd;
    VkDescriptorSet set;
    float *ha = malloc(n * 4), *hb = malloc(n * 4), *hy = malloc(n * 4), err = 0;
    tu_fill_uniform(ha, n, 1, -1, 1);
    tu_fill_uniform(hb, n, 2, -1, 1);
    ck_assert_int_eq(lg_pipeline_get(ctx, &d, &p), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_create(ctx, n * 4, LG_MEM_DEVICE, &a), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_create(ctx, n * 4, LG_MEM_DEVICE, &b), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_create(ctx, n * 4, LG_MEM_DEVICE, &y), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_upload(ctx, &a, 0, ha, n * 4), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_upload(ctx, &b, 0, hb, n * 4), LLMGPU_OK);
    ck_assert_int_eq(lg_dpool_create(ctx, 1, &pool), LLMGPU_OK);
    {
        struct lg_binding bind[3] = {{&a, 0, 0}, {&b, 0, 0}, {&y, 0, 0}};
        ck_assert_int_eq(lg_dset_create(ctx, &pool, p, bind, 3, &set), LLMGPU_OK);
    }
    ck_assert_int_eq(lg_cmd_create(ctx, &cmd), LLMGPU_OK);
    ck_assert_int_eq(lg_cmd_begin(ctx, &cmd, 1), LLMGPU_OK);
    lg_cmd_barrier_transfer(cmd.cb);
    lg_cmd_dispatch(cmd.cb, p, set, &n, (n + wg - 1) / wg, 1, 1);
    ck_assert_int_eq(lg_cmd_end(ctx, &cmd), LLMGPU_OK);
    ck_assert_int_eq(lg_cmd_submit_wait(ctx, &cmd), LLMGPU_OK);
    ck_assert_int_eq(lg_buffer_download(ctx, &y, 0, hy, n * 4), LLMGPU_OK);
    for (uint32_t i = 0; i < n; i++) {
        float e = hy[i] - (ha[i] + hb[i]);
        if (e < 0)
            e = -e;
        if (e > err)
            err = e;
    }
    lg_cmd_destroy(ctx, &cmd);
    lg_dpool_destroy(ctx, &pool);
    lg_buffer_destroy(ctx, &a);
    lg_buffer_destroy(ctx, &b);
    lg_buffer_destroy(ctx, &y);
    free(ha);
    free(hb);
    free(hy);
    return err;
}

START_TEST(kernel_matches_c) {
    struct llmgpu_context *ctx = tu_context(&tlog, NULL);
    static const uint32_t sizes[] = {1, 7, 64, 1000, 65537};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ck_assert_float_eq(run_add(ctx, sizes[i], 64), 0.0f);
        ck_assert_float_eq(run_add(ctx, sizes[i], 256), 0.0f);
    }
    tu_context_free(ctx);
}
END_TEST

static void fresh_dir(char *buf, size_t size, const char *name) {
    char cmd[600];
    tu_tmp_path(name, buf, size);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", buf);
    ck_assert_int_eq(tu_run(cmd), 0);
}

START_TEST(cache_miss_hit_corrupt) {
    char dir[400], path[4200];
    const char *defs[] = {"LG_TEST_DEFINE=1"};
    struct llmgpu_context *ctx;
    uint32_t *w1, *w2;
    size_t n1, n2;
    struct stat sb;
    FILE *f;

    fresh_dir(dir, sizeof dir, "kc-test");
    ctx = tu_context(&tlog, dir);
    ck_assert_int_eq(lg_kc_compile(ctx, "add.comp", defs, 1, &w1, &n1), LLMGPU_OK);
    ck_assert_uint_eq(atomic_load(&ctx->kc_compiled), 1);
    ck_assert_uint_eq(atomic_load(&ctx->kc_cache_hits), 0);
    lg_kc_cache_path(ctx, "add.comp", defs, 1, path, sizeof path);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(stat(dir, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 077, 0); /* user-only */
    tu_context_free(ctx);

    /* second context: loaded from disk, not compiled */
    ctx = tu_context(&tlog, dir);
    ck_assert_int_eq(lg_kc_compile(ctx, "add.comp", defs, 1, &w2, &n2), LLMGPU_OK);
    ck_assert_uint_eq(atomic_load(&ctx->kc_compiled), 0);
    ck_assert_uint_eq(atomic_load(&ctx->kc_cache_hits), 1);
    ck_assert_uint_eq(n1, n2);
    ck_assert_int_eq(memcmp(w1, w2, n1 * 4), 0);
    lg_free(&ctx->alloc, w2);

    /* a different define is a different entry */
    {
        const char *other[] = {"LG_TEST_DEFINE=2"};
        char path2[4200];
        lg_kc_cache_path(ctx, "add.comp", other, 1, path2, sizeof path2);
        ck_assert_str_ne(path, path2);
    }

    /* corrupt one payload byte: detected, recompiled, rewritten */
    f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 40, SEEK_SET);
    fputc(0x5A ^ fgetc(f), f);
    fclose(f);
    tu_log_clear(&tlog);
    ck_assert_int_eq(lg_kc_compile(ctx, "add.comp", defs, 1, &w2, &n2), LLMGPU_OK);
    ck_assert_uint_eq(atomic_load(&ctx->kc_compiled), 1);
    ck_assert_ptr_nonnull(strstr(tlog.text, "checksum mismatch"));
    ck_assert_int_eq(memcmp(w1, w2, n1 * 4), 0);
    lg_free(&ctx->alloc, w2);

    /* truncated / foreign file: ignored */
    f = fopen(path, "wb");
    fputs("not a cache file", f);
    fclose(f);
    ck_assert_int_eq(lg_kc_compile(ctx, "add.comp", defs, 1, &w2, &n2), LLMGPU_OK);
    ck_assert_uint_eq(atomic_load(&ctx->kc_compiled), 2);
    ck_assert_int_eq(memcmp(w1, w2, n1 * 4), 0);
    lg_free(&ctx->alloc, w2);
    lg_free(&ctx->alloc, w1);
    tu_context_free(ctx);
}
END_TEST

START_TEST(pipeline_cache_persists) {
    char dir[400], path[600];
    struct llmgpu_context *ctx;
    struct lg_pipeline *p;
    struct lg_pipeline_desc d = {.kernel = "add.comp", .n_spec = 1, .spec = {64},
                                 .n_bindings = 3, .push_size = 4};
    struct stat sb;
    FILE *f;
    fresh_dir(dir, sizeof dir, "pc-test");
    ctx = tu_context(&tlog, dir);
    ck_assert_int_eq(lg_pipeline_get(ctx, &d, &p), LLMGPU_OK);
    snprintf(path, sizeof path, "%s/pipelines-%04x-%08x.bin", dir, ctx->props.vendorID,
             ctx->props.deviceID);
    tu_context_free(ctx);
    ck_assert_int_eq(stat(path, &sb), 0);
    /* garbage in the pipeline cache must be ignored, not handed to the driver */
    f = fopen(path, "r+b");
    fseek(f, 48, SEEK_SET);
    fputc(0xFF, f);
    fclose(f);
    ctx = tu_context(&tlog, dir);
    ck_assert_int_eq(lg_pipeline_get(ctx, &d, &p), LLMGPU_OK);
    ck_assert_uint_eq(run_add(ctx, 100, 64), 0);
    tu_context_free(ctx);
}
END_TEST

START_TEST(compile_errors_reported) {
    struct llmgpu_context *ctx = tu_context(&tlog, NULL);
    const char *bad[] = {"main=broken_entry"};
    uint32_t *w;
    size_t n;
    tu_log_clear(&tlog);
    ck_assert_int_eq(lg_kc_compile(ctx, "no_such_kernel.comp", NULL, 0, &w, &n),
                     LLMGPU_ERR_KERNEL_COMPILE);
    ck_assert_ptr_nonnull(strstr(tlog.text, "no_such_kernel.comp"));
    tu_log_clear(&tlog);
    ck_assert_int_eq(lg_kc_compile(ctx, "add.comp", bad, 1, &w, &n), LLMGPU_ERR_KERNEL_COMPILE);
    ck_assert_ptr_nonnull(strstr(tlog.text, "add.comp"));
    ck_assert_ptr_nonnull(strstr(tlog.text, "main=broken_entry"));
    tu_context_free(ctx);
}
END_TEST

START_TEST(bandwidth_measures) {
    struct llmgpu_context *ctx = tu_context(&tlog, NULL);
    double bps = 0;
    ck_assert_int_eq(llmgpu_context_measure_bandwidth(ctx, &bps), LLMGPU_OK);
    ck_assert(bps > 1e7);
    tu_context_free(ctx);
}
END_TEST

Suite *vk_suite(void) {
    Suite *s = suite_create("vk");
    TCase *core = tcase_create("Core");
    TCase *cache = tcase_create("Cache");
    TCase *errors = tcase_create("Errors");
    tcase_set_tags(core, "gpu");
    tcase_set_tags(cache, "gpu");
    tcase_set_tags(errors, "gpu");
    tcase_add_test(core, devices_two_call);
    tcase_add_test(core, context_info_and_limits);
    tcase_add_test(core, upload_download_awkward);
    tcase_add_test(core, contexts_share_one_instance);
    tcase_add_test(core, kernel_matches_c);
    tcase_add_test(core, bandwidth_measures);
    tcase_add_test(cache, cache_miss_hit_corrupt);
    tcase_add_test(cache, pipeline_cache_persists);
    tcase_add_test(errors, context_bad_index);
    tcase_add_test(errors, compile_errors_reported);
    suite_add_tcase(s, core);
    suite_add_tcase(s, cache);
    suite_add_tcase(s, errors);
    return s;
}
