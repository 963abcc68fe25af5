/* check_api.c - the public API's contract that needs no GPU: versions, status
 * strings, params initialisation and struct_size handling, NULL handling. */
#include <check.h>
#include <string.h>

#include "llmgpu.h"

START_TEST(version_agrees) {
    ck_assert_uint_eq(llmgpu_version_number(), LLMGPU_VERSION_NUMBER);
    ck_assert_str_eq(llmgpu_version_string(), LLMGPU_VERSION_STRING);
    ck_assert_uint_eq(LLMGPU_VERSION_NUMBER, LLMGPU_VERSION_MAJOR * 10000 +
                                                 LLMGPU_VERSION_MINOR * 100 +
                                                 LLMGPU_VERSION_PATCH);
}
END_TEST

START_TEST(status_strings_distinct) {
    static const enum llmgpu_status all[] = {
        LLMGPU_OK, LLMGPU_ERR_INVALID_ARGUMENT, LLMGPU_ERR_OUT_OF_HOST_MEMORY,
        LLMGPU_ERR_OUT_OF_DEVICE_MEMORY, LLMGPU_ERR_NO_DEVICE, LLMGPU_ERR_DEVICE_LOST,
        LLMGPU_ERR_VULKAN, LLMGPU_ERR_KERNEL_COMPILE, LLMGPU_ERR_IO, LLMGPU_ERR_BAD_MODEL_FILE,
        LLMGPU_ERR_UNSUPPORTED_MODEL, LLMGPU_ERR_CONTEXT_FULL, LLMGPU_ERR_BUFFER_TOO_SMALL,
        LLMGPU_ERR_ABORTED, LLMGPU_ERR_UNSUPPORTED, LLMGPU_ERR_BAD_TOKENIZER,
        LLMGPU_ERR_INVALID_TOKEN};
    size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(llmgpu_status_string(all[i]));
        ck_assert_str_ne(llmgpu_status_string(all[i]), "unknown status");
        ck_assert_str_ne(llmgpu_status_name(all[i]), "UNKNOWN");
        /* pinned values: OK is 0, errors negative and dense from -1 */
        ck_assert_int_eq((int)all[i], -(int)i);
        for (size_t j = 0; j < i; j++) {
            ck_assert_str_ne(llmgpu_status_string(all[i]), llmgpu_status_string(all[j]));
            ck_assert_str_ne(llmgpu_status_name(all[i]), llmgpu_status_name(all[j]));
        }
    }
    ck_assert_str_eq(llmgpu_status_string((enum llmgpu_status)-9999), "unknown status");
    ck_assert_str_eq(llmgpu_status_name((enum llmgpu_status)12345), "UNKNOWN");
}
END_TEST

START_TEST(params_init_defaults) {
    struct llmgpu_context_params cp;
    memset(&cp, 0xAB, sizeof cp);
    llmgpu_context_params_init(&cp);
    ck_assert_uint_eq(cp.struct_size, sizeof cp);
    ck_assert_int_eq(cp.device_index, -1);
    ck_assert_int_eq(cp.log_level, LLMGPU_LOG_LEVEL_WARN);
    ck_assert(cp.log_fn == NULL);
    ck_assert_ptr_null(cp.cache_dir);
    ck_assert_uint_eq(cp.flags, 0);
    llmgpu_context_params_init(NULL); /* must not crash */
}
END_TEST

START_TEST(null_handling) {
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx = (struct llmgpu_context *)&cp;
    llmgpu_context_free(NULL);
    ck_assert_int_eq(llmgpu_context_create(NULL, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    llmgpu_context_params_init(&cp);
    cp.struct_size = 0;
    ck_assert_int_eq(llmgpu_context_create(&cp, &ctx), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(ctx);
    ck_assert_int_eq(llmgpu_devices_list(NULL, NULL, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(llmgpu_context_device_info(NULL, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(llmgpu_context_validation_errors(NULL), 0);
}
END_TEST

Suite *api_suite(void) {
    Suite *s = suite_create("api");
    TCase *core = tcase_create("Core");
    TCase *errors = tcase_create("Errors");
    tcase_add_test(core, version_agrees);
    tcase_add_test(core, status_strings_distinct);
    tcase_add_test(core, params_init_defaults);
    tcase_add_test(errors, null_handling);
    suite_add_tcase(s, core);
    suite_add_tcase(s, errors);
    return s;
}
