/* testutil.h - shared helpers of the Check suites: GPU test contexts with the
 * validation layer when installed, log capture, paths, deterministic data. */
#ifndef LG_TESTUTIL_H
#define LG_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "llmgpu.h"

/* Log capture: messages are appended (newline-separated) to a fixed buffer. */
struct tu_log {
    char text[16384];
    size_t len;
    int errors;
};
void tu_log_fn(enum llmgpu_log_level level, const char *msg, void *user);
void tu_log_clear(struct tu_log *l);

/* A context for GPU tests: validation layer on when installed (any validation
 * error fails the test at tu_context_free), kernel cache in a private temp dir
 * unless cache_dir is given. */
struct llmgpu_context *tu_context(struct tu_log *log, const char *cache_dir);
void tu_context_free(struct llmgpu_context *ctx);

/* $LLMGPU_TEST_DATA (default "tests") and $LLMGPU_TEST_TMP (default /tmp) joined with rel. */
const char *tu_data_path(const char *rel, char *buf, size_t size);
const char *tu_tmp_path(const char *rel, char *buf, size_t size);

/* Deterministic uniform floats in [lo, hi) from a seed (xorshift64*). */
void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
/* Normalised mean squared error sum((a-b)^2) / sum(b^2). */
double tu_nmse(const float *a, const float *ref, size_t n);
int tu_run(const char *cmd); /* system() returning the exit status */

/* lgt_mkmodel (testmodel.h: tools/mkmodel.py into a fresh temp dir, its path into dir)
 * with the arguments args_fmt formats; fails the test if it fails. */
void tu_mkmodel(char *dir, size_t size, const char *args_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
