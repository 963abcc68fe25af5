/*
 * log.c - the log sink: level filter and the caller's callback.
 * Owns message formatting; never writes to stdout/stderr itself.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

void lg_vlogf(const struct lg_log *log, enum llmgpu_log_level level, const char *fmt,
              va_list ap) {
    char buf[2048];
    if (!log || !log->fn || level < log->min || level >= LLMGPU_LOG_LEVEL_NONE)
        return;
    vsnprintf(buf, sizeof buf, fmt, ap);
    log->fn(level, buf, log->user);
}

void lg_logf(const struct lg_log *log, enum llmgpu_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lg_vlogf(log, level, fmt, ap);
    va_end(ap);
}

#ifdef LLMGPU_DEBUG
/* The one place the library may abort: a broken invariant of its own in a debug build. */
void lg_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "llmgpu: assertion failed: %s (%s:%d)\n", expr, file, line); /* LLMGPU_ALLOW: debug-only assert */
    abort(); /* LLMGPU_ALLOW: debug-only assert */
}
#endif
