/*
 * testmodel.c - see testmodel.h. Test-only code: may use stdio, getenv, system.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testmodel.h"

static char log_buf[1 << 16];
static size_t log_len;

static void log_cb(enum llmgpu_log_level level, const char *message, void *user) {
    int n;
    (void)user;
    n = snprintf(log_buf + log_len, sizeof log_buf - log_len, "[%d] %s\n", (int)level, message);
    if (n > 0)
        log_len = LG_MIN(sizeof log_buf - 1, log_len + (size_t)n);
}

struct lg_log lgt_log = {log_cb, NULL, LLMGPU_LOG_LEVEL_DEBUG};

void lgt_log_reset(void) {
    log_len = 0;
    log_buf[0] = '\0';
}

const char *lgt_log_text(void) {
    return log_buf;
}

int lgt_log_has(const char *s, ...) {
    va_list ap;
    int ok = 1;
    va_start(ap, s);
    for (; s; s = va_arg(ap, const char *))
        if (!strstr(log_buf, s))
            ok = 0;
    va_end(ap);
    return ok;
}

int lgt_mkdtemp(const char *tag, char *out, size_t size) {
    const char *tmp = getenv("LLMGPU_TEST_TMP");
    char cmd[1024];
    if (!tmp || !*tmp)
        tmp = "/tmp";
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmp);
    if (system(cmd) != 0)
        return -1;
    if ((size_t)snprintf(out, size, "%s/%s-XXXXXX", tmp, tag) >= size)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

int lgt_mkmodel(const char *args, char *out, size_t size) {
    const char *data = getenv("LLMGPU_TEST_DATA");
    char cmd[2048];
    if (!data || !*data)
        data = "tests";
    if (lgt_mkdtemp("model", out, size) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "python3 '%s/tools/mkmodel.py' --out '%s' %s >/dev/null", data, out,
             args ? args : "");
    return system(cmd) == 0 ? 0 : -1;
}

char *lgt_read(const char *dir, const char *name, size_t *len) {
    char path[1024];
    FILE *f;
    long n;
    char *buf;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

int lgt_write(const char *dir, const char *name, const void *data, size_t len) {
    char path[1024];
    FILE *f;
    int ok;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f)
        return -1;
    ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int lgt_replace(const char *dir, const char *name, const char *from, const char *to) {
    size_t len, lf = strlen(from), lt = strlen(to), at;
    char *s = lgt_read(dir, name, &len), *p, *o;
    int rc = -1;
    if (!s)
        return -1;
    p = memmem(s, len, from, lf); /* binary files (safetensors) too */
    if (p) {
        at = (size_t)(p - s);
        o = malloc(len - lf + lt + 1);
        memcpy(o, s, at);
        memcpy(o + at, to, lt);
        memcpy(o + at + lt, p + lf, len - at - lf);
        rc = lgt_write(dir, name, o, len - lf + lt);
        free(o);
    }
    free(s);
    return rc;
}
