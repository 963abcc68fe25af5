/*
 * alloc.c - host allocation through the caller's allocator, with the
 * fault-injection hook the tests use, and small checked-size helpers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int should_fail(const struct lg_alloc *a) {
    struct lg_alloc *m = (struct lg_alloc *)(uintptr_t)a; /* counters are test state */
    if (!a || m->fail_after <= 0)
        return 0;
    if (m->fail_after == 1) {
        if (!m->fail_persist)
            m->fail_after = 0;
        return 1;
    }
    m->fail_after--;
    return 0;
}

void *lg_malloc(const struct lg_alloc *a, size_t size) {
    if (size == 0)
        size = 1;
    if (should_fail(a))
        return NULL;
    if (a && a->user.alloc)
        return a->user.alloc(size, a->user.user);
    return malloc(size);
}

void *lg_calloc(const struct lg_alloc *a, size_t count, size_t size) {
    size_t total;
    void *p;
    if (lg_mul_size(count, size, &total))
        return NULL;
    p = lg_malloc(a, total);
    if (p)
        memset(p, 0, total);
    return p;
}

void *lg_realloc(const struct lg_alloc *a, void *ptr, size_t old_size, size_t new_size) {
    void *p;
    if (!a || !a->user.alloc) {
        if (should_fail(a))
            return NULL;
        return realloc(ptr, new_size ? new_size : 1);
    }
    p = lg_malloc(a, new_size);
    if (!p)
        return NULL;
    if (ptr)
        memcpy(p, ptr, LG_MIN(old_size, new_size));
    lg_free(a, ptr);
    return p;
}

void lg_free(const struct lg_alloc *a, void *ptr) {
    if (!ptr)
        return;
    if (a && a->user.alloc) {
        if (a->user.free)
            a->user.free(ptr, a->user.user);
        return;
    }
    free(ptr);
}

char *lg_strndup(const struct lg_alloc *a, const char *s, size_t n) {
    char *p = lg_malloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *lg_strdup(const struct lg_alloc *a, const char *s) {
    return lg_strndup(a, s, strlen(s));
}

int lg_mul_size(size_t a, size_t b, size_t *out) {
    if (b && a > SIZE_MAX / b)
        return 1;
    *out = a * b;
    return 0;
}

int lg_add_size(size_t a, size_t b, size_t *out) {
    if (a > SIZE_MAX - b)
        return 1;
    *out = a + b;
    return 0;
}

enum llmgpu_status lg_read_file(const struct lg_alloc *a, const struct lg_log *log,
                                const char *path, char **data, size_t *len) {
    FILE *f;
    long size;
    char *buf;
    *data = NULL;
    *len = 0;
    f = fopen(path, "rb");
    if (!f) {
        lg_err(log, "%s: cannot open: %s", path, strerror(errno));
        return LLMGPU_ERR_IO;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        lg_err(log, "%s: cannot determine size: %s", path, strerror(errno));
        fclose(f);
        return LLMGPU_ERR_IO;
    }
    buf = lg_malloc(a, (size_t)size + 1);
    if (!buf) {
        fclose(f);
        lg_err(log, "%s: out of host memory for %ld bytes", path, size);
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    }
    if (size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        lg_err(log, "%s: short read", path);
        lg_free(a, buf);
        fclose(f);
        return LLMGPU_ERR_IO;
    }
    fclose(f);
    buf[size] = '\0';
    *data = buf;
    *len = (size_t)size;
    return LLMGPU_OK;
}
