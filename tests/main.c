/*
 * main.c - runs every Check suite (tests/check_<name>.c exports <name>_suite()).
 * Output is TAP plus Check's summary. CK_EXCLUDE_TAGS=gpu skips the GPU suites;
 * the Makefile runs those with CK_FORK=no (a Vulkan device must not cross fork).
 */
#include <check.h>
#include <stdlib.h>

#define LG_SUITE(name) Suite *name##_suite(void);
#include "suites.h"
#undef LG_SUITE

int main(void) {
    SRunner *sr = srunner_create(NULL);
    int failed;
#define LG_SUITE(name) srunner_add_suite(sr, name##_suite());
#include "suites.h"
#undef LG_SUITE
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
