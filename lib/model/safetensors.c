/*
 * safetensors.c - parse and validate one safetensors file held in memory.
 *
 * Format (https://github.com/huggingface/safetensors): bytes 0..7 are N, the
 * header length, little-endian u64; bytes 8..8+N-1 are a UTF-8 JSON object
 * (possibly padded with trailing spaces) mapping each tensor name to
 * {"dtype": "F32"|..., "shape": [d0, ...], "data_offsets": [begin, end]} plus
 * an optional "__metadata__" object of strings; bytes 8+N.. are the data
 * section, and [begin, end) is relative to it.
 *
 * Owns: every count, size and offset check of that format (STYLE rule 29):
 * each is checked against the file size before it is used, and each message
 * names the file, the tensor and the absolute byte offset.
 * Must not touch: files (the caller maps them), the architecture.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "model/model.h"

/* safetensors' own limit on the header (MAX_HEADER_SIZE, 100 MB). */
#define LG_ST_MAX_HEADER 100000000ull

void lg_tensor_table_free(const struct lg_alloc *a, struct lg_tensor_table *tab) {
    uint32_t i;
    if (!tab)
        return;
    for (i = 0; i < tab->n; i++)
        lg_free(a, (void *)(uintptr_t)tab->v[i].name);
    lg_free(a, tab->v);
    tab->v = NULL;
    tab->n = tab->cap = 0;
}

static enum llmgpu_status table_reserve(const struct lg_alloc *a, struct lg_tensor_table *tab,
                                        uint64_t extra) {
    uint64_t need = (uint64_t)tab->n + extra;
    uint64_t cap = tab->cap ? tab->cap : 16;
    size_t bytes;
    void *p;
    if (need <= tab->cap)
        return LLMGPU_OK;
    if (need > UINT32_MAX)
        return LLMGPU_ERR_BAD_MODEL_FILE;
    while (cap < need)
        cap *= 2;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    if (lg_mul_size((size_t)cap, sizeof *tab->v, &bytes))
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    p = lg_realloc(a, tab->v, (size_t)tab->cap * sizeof *tab->v, bytes);
    if (!p)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    tab->v = p;
    tab->cap = (uint32_t)cap;
    return LLMGPU_OK;
}

/* A non-negative integer that fits in 53 bits (JSON numbers are doubles in cJSON). */
static int json_u64(const cJSON *v, uint64_t *out) {
    double d;
    if (!cJSON_IsNumber(v))
        return -1;
    d = v->valuedouble;
    if (!isfinite(d) || d < 0 || floor(d) != d || d > 9007199254740992.0)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_begin(const void *x, const void *y) {
    const struct lg_tensor_src *a = x, *b = y;
    if (a->file_offset != b->file_offset)
        return a->file_offset < b->file_offset ? -1 : 1;
    return a->nbytes < b->nbytes ? -1 : a->nbytes > b->nbytes;
}

static int cmp_name(const void *x, const void *y) {
    const struct lg_tensor_src *a = x, *b = y;
    return strcmp(a->name, b->name);
}

/* Parse one tensor entry into *t (name not yet set). */
static enum llmgpu_status parse_entry(const struct lg_log *log, const char *what,
                                      const cJSON *e, uint64_t data_start, uint64_t data_len,
                                      struct lg_tensor_src *t) {
    const char *name = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    const cJSON *d;
    uint64_t begin, end, n = 1, dim, esize;
    uint32_t nd = 0, i;

    if (!cJSON_IsObject(e)) {
        lg_err(log, "%s: header entry \"%.200s\" is not an object", what, name);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (!cJSON_IsString(dt) || !dt->valuestring) {
        lg_err(log, "%s: tensor \"%.200s\": \"dtype\" is missing or not a string", what, name);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (lg_dtype_from_name(dt->valuestring, &t->dtype) != 0) {
        lg_err(log, "%s: tensor \"%.200s\": unknown dtype \"%.40s\"", what, name, dt->valuestring);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (!cJSON_IsArray(shape)) {
        lg_err(log, "%s: tensor \"%.200s\": \"shape\" is missing or not a list", what, name);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    for (i = 0; i < LG_MAX_DIMS; i++)
        t->shape[i] = 1;
    cJSON_ArrayForEach(d, shape) {
        if (json_u64(d, &dim) != 0) {
            lg_err(log, "%s: tensor \"%.200s\": shape[%u] is not a non-negative integer", what,
                   name, nd);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        if (nd >= LG_MAX_DIMS) {
            lg_err(log, "%s: tensor \"%.200s\": more than %d dimensions are not supported", what,
                   name, LG_MAX_DIMS);
            return LLMGPU_ERR_UNSUPPORTED_MODEL;
        }
        t->shape[nd++] = dim;
        if (dim != 0 && n > UINT64_MAX / dim) {
            lg_err(log, "%s: tensor \"%.200s\": element count overflows", what, name);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        n *= dim;
    }
    t->n_dims = nd;
    t->n_elements = n;
    esize = lg_dtype_size(t->dtype);
    if (n > UINT64_MAX / esize) {
        lg_err(log, "%s: tensor \"%.200s\": byte size overflows", what, name);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    t->nbytes = n * esize;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        json_u64(cJSON_GetArrayItem(offs, 0), &begin) != 0 ||
        json_u64(cJSON_GetArrayItem(offs, 1), &end) != 0) {
        lg_err(log, "%s: tensor \"%.200s\": \"data_offsets\" must be a list of two "
               "non-negative integers", what, name);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (end < begin) {
        lg_err(log, "%s: tensor \"%.200s\": data_offsets [%llu, %llu] end before begin", what,
               name, (unsigned long long)begin, (unsigned long long)end);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (end > data_len) {
        lg_err(log, "%s: tensor \"%.200s\": data_offsets [%llu, %llu] (file bytes %llu..%llu) "
               "lie outside the data section of %llu bytes at byte %llu (file size %llu)",
               what, name, (unsigned long long)begin, (unsigned long long)end,
               (unsigned long long)(data_start + begin), (unsigned long long)(data_start + end),
               (unsigned long long)data_len, (unsigned long long)data_start,
               (unsigned long long)(data_start + data_len));
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (end - begin != t->nbytes) {
        lg_err(log, "%s: tensor \"%.200s\" at byte %llu: data_offsets [%llu, %llu] hold %llu "
               "bytes but %s shape of %llu elements needs %llu", what, name,
               (unsigned long long)(data_start + begin), (unsigned long long)begin,
               (unsigned long long)end, (unsigned long long)(end - begin),
               lg_dtype_name(t->dtype), (unsigned long long)n, (unsigned long long)t->nbytes);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    t->file_offset = data_start + begin;
    return LLMGPU_OK;
}

enum llmgpu_status lg_safetensors_parse(const struct lg_alloc *a, const struct lg_log *log,
                                        const char *what, const void *buf, uint64_t len,
                                        uint32_t file, struct lg_tensor_table *tab) {
    const unsigned char *p = buf;
    const char *end = NULL;
    uint64_t hlen = 0, data_start, data_len, i;
    uint32_t n0 = tab->n, n_entries = 0, k;
    enum llmgpu_status st = LLMGPU_OK;
    cJSON *root = NULL;
    const cJSON *e;
    struct lg_tensor_src *sorted = NULL;
    char *hdr = NULL;

    if (!what)
        what = "safetensors";
    if (len == 0) {
        lg_err(log, "%s: empty file", what);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (len < 8) {
        lg_err(log, "%s: truncated: %llu bytes, shorter than the 8-byte header length", what,
               (unsigned long long)len);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    for (i = 0; i < 8; i++)
        hlen |= (uint64_t)p[i] << (8 * i);
    if (hlen > len - 8) {
        lg_err(log, "%s: header length %llu (at byte 0) runs past the end of the file "
               "(%llu bytes)", what, (unsigned long long)hlen, (unsigned long long)len);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (hlen > LG_ST_MAX_HEADER) {
        lg_err(log, "%s: header length %llu (at byte 0) exceeds the format's limit of %llu",
               what, (unsigned long long)hlen, LG_ST_MAX_HEADER);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (hlen < 2 || p[8] != '{') {
        lg_err(log, "%s: header at byte 8 does not start with '{' (not a safetensors file?)",
               what);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    data_start = 8 + hlen;
    data_len = len - data_start;

    /* Parse a NUL-terminated copy: the mapping has no terminator, and cJSON
     * before 1.7.18 (CVE-2023-53154) could read past a non-terminated string.
     * hlen is bounded by the file size and LG_ST_MAX_HEADER. */
    hdr = lg_malloc(a, (size_t)hlen + 1);
    if (!hdr) {
        lg_err(log, "%s: out of host memory for a %llu-byte header", what,
               (unsigned long long)hlen);
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    }
    memcpy(hdr, p + 8, (size_t)hlen);
    hdr[hlen] = '\0';
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t off = 8 + (end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0);
        lg_err(log, "%s: header is not valid JSON (error at byte %zu)", what, off);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto out;
    }
    for (i = 8 + (uint64_t)(end - hdr); i < data_start; i++) {
        if (p[i] != ' ' && p[i] != '\n' && p[i] != '\r' && p[i] != '\t' && p[i] != '\0') {
            lg_err(log, "%s: header has trailing data after the JSON object at byte %llu", what,
                   (unsigned long long)i);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto out;
        }
    }
    if (!cJSON_IsObject(root)) {
        lg_err(log, "%s: header at byte 8 is not a JSON object", what);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto out;
    }

    /* the number of entries is bounded by the header length, checked above */
    cJSON_ArrayForEach(e, root) n_entries++;
    if ((st = table_reserve(a, tab, n_entries)) != LLMGPU_OK) {
        if (st == LLMGPU_ERR_OUT_OF_HOST_MEMORY)
            lg_err(log, "%s: out of host memory for %u tensor entries", what, n_entries);
        else
            lg_err(log, "%s: too many tensors", what);
        goto out;
    }
    cJSON_ArrayForEach(e, root) {
        struct lg_tensor_src t;
        if (!e->string) {
            lg_err(log, "%s: header entry without a name", what);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto out;
        }
        if (strcmp(e->string, "__metadata__") == 0) {
            const cJSON *m;
            if (!cJSON_IsObject(e)) {
                lg_err(log, "%s: \"__metadata__\" is not an object", what);
                st = LLMGPU_ERR_BAD_MODEL_FILE;
                goto out;
            }
            cJSON_ArrayForEach(m, e) {
                if (!cJSON_IsString(m)) {
                    lg_err(log, "%s: \"__metadata__\" value \"%.100s\" is not a string", what,
                           m->string ? m->string : "");
                    st = LLMGPU_ERR_BAD_MODEL_FILE;
                    goto out;
                }
            }
            continue;
        }
        memset(&t, 0, sizeof t);
        if ((st = parse_entry(log, what, e, data_start, data_len, &t)) != LLMGPU_OK)
            goto out;
        t.data = p + t.file_offset;
        t.file = file;
        t.name = lg_strdup(a, e->string);
        if (!t.name) {
            lg_err(log, "%s: out of host memory", what);
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            goto out;
        }
        tab->v[tab->n++] = t;
    }

    /* overlap and duplicate checks on a sorted copy of this file's entries */
    if (tab->n - n0 > 1) {
        uint32_t cnt = tab->n - n0;
        sorted = lg_calloc(a, cnt, sizeof *sorted);
        if (!sorted) {
            lg_err(log, "%s: out of host memory", what);
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            goto out;
        }
        memcpy(sorted, tab->v + n0, (size_t)cnt * sizeof *sorted);
        qsort(sorted, cnt, sizeof *sorted, cmp_begin);
        for (k = 1; k < cnt; k++) {
            const struct lg_tensor_src *prev = &sorted[k - 1], *cur = &sorted[k];
            if (cur->nbytes && prev->nbytes && cur->file_offset < prev->file_offset + prev->nbytes) {
                lg_err(log, "%s: tensors \"%.200s\" (bytes %llu..%llu) and \"%.200s\" (bytes "
                       "%llu..%llu) overlap", what, prev->name,
                       (unsigned long long)prev->file_offset,
                       (unsigned long long)(prev->file_offset + prev->nbytes), cur->name,
                       (unsigned long long)cur->file_offset,
                       (unsigned long long)(cur->file_offset + cur->nbytes));
                st = LLMGPU_ERR_BAD_MODEL_FILE;
                goto out;
            }
            /* zero-size tensors occupy nothing; a later non-empty one is compared with
             * the last non-empty one */
            if (!cur->nbytes)
                sorted[k] = *prev;
        }
        memcpy(sorted, tab->v + n0, (size_t)cnt * sizeof *sorted);
        qsort(sorted, cnt, sizeof *sorted, cmp_name);
        for (k = 1; k < cnt; k++) {
            if (strcmp(sorted[k - 1].name, sorted[k].name) == 0) {
                lg_err(log, "%s: tensor \"%.200s\" appears twice in the header", what,
                       sorted[k].name);
                st = LLMGPU_ERR_BAD_MODEL_FILE;
                goto out;
            }
        }
    }

out:
    lg_free(a, sorted);
    lg_free(a, hdr);
    if (st != LLMGPU_OK) {
        for (k = n0; k < tab->n; k++)
            lg_free(a, (void *)(uintptr_t)tab->v[k].name);
        tab->n = n0;
    }
    cJSON_Delete(root);
    return st;
}
