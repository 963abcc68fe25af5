/*
 * gguf.c - parse and validate a GGUF file (versions 2 and 3), and read the
 * hyper-parameters and tensors of a Llama-family model from it.
 *
 * Format (ggml docs/gguf.md), all little-endian:
 *   u32 magic "GGUF" (bytes 47 47 55 46), u32 version (1 had u32 counts and is
 *   refused; 2 and 3 are identical for little-endian files),
 *   u64 tensor_count, u64 metadata_kv_count,
 *   metadata_kv_count times: string key, u32 value type, value
 *     (string = u64 length + bytes, no NUL; array = u32 element type,
 *      u64 count, elements; the other types are fixed-size scalars),
 *   tensor_count times: string name, u32 n_dims, u64 ne[n_dims] (innermost
 *     first), u32 ggml type, u64 offset relative to the data section,
 *   padding to general.alignment (default 32), the data section.
 * A tensor's bytes are ne[0]/block * type_size per row times the other dims.
 *
 * Owns: every count, size and offset check of that format (STYLE rule 29):
 * each field is checked against the bytes left in the file before it is used
 * or sizes an allocation, and every message names the file, the key or
 * tensor, and the absolute byte offset. Also the GGUF tensor names of the
 * architecture roles and the Q/K row permutation of llama.cpp's converter.
 * Must not touch: the GPU, the tokenizer.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/gguf.h"
#include "model/quant.h"

/* ---- ggml types ---- */

struct ggml_type_desc {
    const char *name;
    uint32_t blck, size; /* size 0: known but unsupported here */
};

/* Names of every type ggml has defined (ggml.h enum ggml_type); sizes only for ours. */
static const struct ggml_type_desc ggml_types[] = {
    [0] = {"F32", 1, 4},      [1] = {"F16", 1, 2},      [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 0, 0},     [4] = {"Q4_2 (removed)", 0, 0}, [5] = {"Q4_3 (removed)", 0, 0},
    [6] = {"Q5_0", 0, 0},     [7] = {"Q5_1", 0, 0},     [8] = {"Q8_0", 32, 34},
    [9] = {"Q8_1", 0, 0},     [10] = {"Q2_K", 0, 0},    [11] = {"Q3_K", 0, 0},
    [12] = {"Q4_K", 256, 144}, [13] = {"Q5_K", 0, 0},   [14] = {"Q6_K", 256, 210},
    [15] = {"Q8_K", 0, 0},    [16] = {"IQ2_XXS", 0, 0}, [17] = {"IQ2_XS", 0, 0},
    [18] = {"IQ3_XXS", 0, 0}, [19] = {"IQ1_S", 0, 0},   [20] = {"IQ4_NL", 0, 0},
    [21] = {"IQ3_S", 0, 0},   [22] = {"IQ2_S", 0, 0},   [23] = {"IQ4_XS", 0, 0},
    [24] = {"I8", 0, 0},      [25] = {"I16", 0, 0},     [26] = {"I32", 0, 0},
    [27] = {"I64", 0, 0},     [28] = {"F64", 0, 0},     [29] = {"IQ1_M", 0, 0},
    [30] = {"BF16", 1, 2},    [31] = {"Q4_0_4_4 (removed)", 0, 0},
    [32] = {"Q4_0_4_8 (removed)", 0, 0}, [33] = {"Q4_0_8_8 (removed)", 0, 0},
    [34] = {"TQ1_0", 0, 0},   [35] = {"TQ2_0", 0, 0},   [36] = {"IQ4_NL_4_4 (removed)", 0, 0},
    [37] = {"IQ4_NL_4_8 (removed)", 0, 0}, [38] = {"IQ4_NL_8_8 (removed)", 0, 0},
    [39] = {"MXFP4", 0, 0},
};

uint32_t lg_ggml_block_size(uint32_t t) {
    return t < LG_ARRAY_LEN(ggml_types) ? ggml_types[t].blck : 0;
}
uint32_t lg_ggml_type_size(uint32_t t) {
    return t < LG_ARRAY_LEN(ggml_types) ? ggml_types[t].size : 0;
}
const char *lg_ggml_type_name(uint32_t t) {
    return t < LG_ARRAY_LEN(ggml_types) && ggml_types[t].name ? ggml_types[t].name : "?";
}
int lg_ggml_type_supported(uint32_t t) {
    return lg_ggml_type_size(t) != 0;
}
int lg_ggml_to_dtype(uint32_t t, enum lg_dtype *out) {
    switch (t) {
    case LG_GGML_F32: *out = LG_DTYPE_F32; return 0;
    case LG_GGML_F16: *out = LG_DTYPE_F16; return 0;
    case LG_GGML_BF16: *out = LG_DTYPE_BF16; return 0;
    default: return -1;
    }
}

void lg_gguf_row_to_f32(uint32_t t, const void *row, size_t n, float *out) {
    const unsigned char *p = row;
    enum lg_dtype dt;
    size_t b, i;
    if (lg_ggml_to_dtype(t, &dt) == 0) {
        lg_convert_to_f32(dt, row, out, n);
        return;
    }
    switch (t) {
    case LG_GGML_Q8_0:
        for (b = 0; b < n / LG_QK; b++, p += 34) {
            float d = lg_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
            for (i = 0; i < LG_QK; i++)
                out[b * LG_QK + i] = (float)(int8_t)p[2 + i] * d;
        }
        break;
    case LG_GGML_Q4_0:
        for (b = 0; b < n / LG_QK; b++, p += 18) {
            float d = lg_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
            for (i = 0; i < LG_QK / 2; i++) {
                out[b * LG_QK + i] = (float)((p[2 + i] & 15) - 8) * d;
                out[b * LG_QK + i + 16] = (float)((p[2 + i] >> 4) - 8) * d;
            }
        }
        break;
    case LG_GGML_Q4_K: lg_dequantize_q4_k(p, n, out); break;
    case LG_GGML_Q6_K: lg_dequantize_q6_k(p, n, out); break;
    default: memset(out, 0, n * sizeof *out); break; /* the parser refuses other types */
    }
}

static const char *const vtype_names[LG_GGUF_VTYPE_COUNT] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL",  "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
};
static const uint8_t vtype_size[LG_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *lg_gguf_vtype_name(uint32_t t) {
    return t < LG_GGUF_VTYPE_COUNT ? vtype_names[t] : "?";
}

/* ---- a bounds-checked cursor over the file ---- */

struct cur {
    const unsigned char *p;
    uint64_t len, pos;
    const struct lg_log *log;
    const char *what;
};

static uint64_t rd_le(const unsigned char *p, unsigned n) {
    uint64_t v = 0;
    unsigned i;
    for (i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t left(const struct cur *c) {
    return c->len - c->pos;
}

/* Read an n-byte little-endian integer; ctx describes it for the message. */
static enum llmgpu_status rd(struct cur *c, unsigned n, uint64_t *out, const char *ctx,
                             const char *name) {
    if (left(c) < n) {
        lg_err(c->log, "%s: truncated at byte %llu: %s%s%.200s%s needs %u bytes, %llu left "
               "(file size %llu)", c->what, (unsigned long long)c->pos, ctx,
               name ? " of \"" : "", name ? name : "", name ? "\"" : "", n,
               (unsigned long long)left(c), (unsigned long long)c->len);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    *out = rd_le(c->p + c->pos, n);
    c->pos += n;
    return LLMGPU_OK;
}

/* A GGUF string: u64 length then bytes; *s points into the file. */
static enum llmgpu_status rd_str(struct cur *c, uint64_t cap, const char *ctx, const char *name,
                                 const unsigned char **s, uint64_t *n) {
    uint64_t at = c->pos, len;
    enum llmgpu_status st;
    if ((st = rd(c, 8, &len, ctx, name)) != LLMGPU_OK)
        return st;
    if (len > left(c)) {
        lg_err(c->log, "%s: %s%s%.200s%s at byte %llu: length %llu runs past the end of the "
               "file (%llu bytes left, file size %llu)", c->what, ctx, name ? " of \"" : "",
               name ? name : "", name ? "\"" : "", (unsigned long long)at,
               (unsigned long long)len, (unsigned long long)left(c), (unsigned long long)c->len);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (len > cap) {
        lg_err(c->log, "%s: %s%s%.200s%s at byte %llu: length %llu exceeds the limit of %llu",
               c->what, ctx, name ? " of \"" : "", name ? name : "", name ? "\"" : "",
               (unsigned long long)at, (unsigned long long)len, (unsigned long long)cap);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    *s = c->p + c->pos;
    *n = len;
    c->pos += len;
    return LLMGPU_OK;
}

/* ---- lifetime ---- */

void lg_gguf_close(struct lg_gguf *g) {
    const struct lg_alloc *a;
    uint64_t i;
    if (!g)
        return;
    a = g->alloc;
    for (i = 0; g->kv && i < g->n_kv; i++) {
        lg_free(a, g->kv[i].key);
        lg_free(a, g->kv[i].str);
    }
    lg_free(a, g->kv);
    for (i = 0; g->tensors && i < g->n_tensors; i++)
        lg_free(a, g->tensors[i].name);
    lg_free(a, g->tensors);
    for (i = 0; g->parts && i + 1 < g->n_parts; i++)
        lg_gguf_close(g->parts[i]);
    lg_free(a, g->parts);
    if (g->mapped && g->base)
        munmap((void *)(uintptr_t)g->base, (size_t)g->size);
    lg_free(a, g->path);
    lg_free(a, g);
}

static int cmp_kv_key(const void *x, const void *y) {
    const struct lg_gguf_kv *const *a = x, *const *b = y;
    return strcmp((*a)->key, (*b)->key);
}

static int cmp_tensor_name(const void *x, const void *y) {
    const struct lg_gguf_tensor *a = x, *b = y;
    return strcmp(a->name, b->name);
}

static int cmp_tensor_off(const void *x, const void *y) {
    const struct lg_gguf_tensor *const *a = x, *const *b = y;
    if ((*a)->file_offset != (*b)->file_offset)
        return (*a)->file_offset < (*b)->file_offset ? -1 : 1;
    return (*a)->nbytes < (*b)->nbytes ? -1 : (*a)->nbytes > (*b)->nbytes;
}

/* ---- metadata ---- */

static enum llmgpu_status parse_kv(const struct lg_alloc *a, struct cur *c, struct lg_gguf_kv *kv) {
    const unsigned char *s;
    uint64_t n, t, v, i, at = c->pos;
    enum llmgpu_status st;

    kv->offset = at;
    if ((st = rd_str(c, LG_GGUF_MAX_KEY, "metadata key", NULL, &s, &n)) != LLMGPU_OK)
        return st;
    if (n == 0) {
        lg_err(c->log, "%s: metadata key at byte %llu is empty", c->what, (unsigned long long)at);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (memchr(s, 0, (size_t)n)) {
        lg_err(c->log, "%s: metadata key at byte %llu contains a NUL byte", c->what,
               (unsigned long long)at);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    /* n <= LG_GGUF_MAX_KEY and within the file */
    if (!(kv->key = lg_strndup(a, (const char *)s, (size_t)n)))
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    at = c->pos;
    if ((st = rd(c, 4, &t, "value type", kv->key)) != LLMGPU_OK)
        return st;
    kv->type = (uint32_t)t;
    if (t >= LG_GGUF_VTYPE_COUNT) {
        lg_err(c->log, "%s: key \"%.200s\": unknown value type %llu at byte %llu", c->what,
               kv->key, (unsigned long long)t, (unsigned long long)at);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    at = c->pos;
    if (t == LG_GGUF_STRING) {
        if ((st = rd_str(c, LG_GGUF_MAX_STRING, "string value", kv->key, &s, &n)) != LLMGPU_OK)
            return st;
        if (!(kv->str = lg_malloc(a, (size_t)n + 1)))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        memcpy(kv->str, s, (size_t)n);
        kv->str[n] = '\0';
        kv->str_len = n;
        return LLMGPU_OK;
    }
    if (t == LG_GGUF_ARRAY) {
        uint64_t et, cnt, min_size;
        if ((st = rd(c, 4, &et, "array element type", kv->key)) != LLMGPU_OK)
            return st;
        if (et == LG_GGUF_ARRAY) {
            lg_err(c->log, "%s: key \"%.200s\": nested array at byte %llu is not supported",
                   c->what, kv->key, (unsigned long long)at);
            return LLMGPU_ERR_UNSUPPORTED_MODEL;
        }
        if (et >= LG_GGUF_VTYPE_COUNT) {
            lg_err(c->log, "%s: key \"%.200s\": unknown array element type %llu at byte %llu",
                   c->what, kv->key, (unsigned long long)et, (unsigned long long)at);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        at = c->pos;
        if ((st = rd(c, 8, &cnt, "array length", kv->key)) != LLMGPU_OK)
            return st;
        min_size = et == LG_GGUF_STRING ? 8 : vtype_size[et];
        if (cnt > left(c) / min_size) {
            lg_err(c->log, "%s: key \"%.200s\": array of %llu %s at byte %llu needs at least "
                   "%llu bytes per element but only %llu bytes are left (file size %llu)",
                   c->what, kv->key, (unsigned long long)cnt, vtype_names[et],
                   (unsigned long long)at, (unsigned long long)min_size,
                   (unsigned long long)left(c), (unsigned long long)c->len);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        if (cnt > LG_GGUF_MAX_ARRAY) {
            lg_err(c->log, "%s: key \"%.200s\": array of %llu elements at byte %llu exceeds the "
                   "limit of %llu", c->what, kv->key, (unsigned long long)cnt,
                   (unsigned long long)at, (unsigned long long)LG_GGUF_MAX_ARRAY);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        kv->arr_type = (uint32_t)et;
        kv->arr_n = cnt;
        kv->arr = c->p + c->pos;
        kv->arr_offset = c->pos;
        if (et != LG_GGUF_STRING) {
            if (et == LG_GGUF_BOOL) {
                for (i = 0; i < cnt; i++)
                    if (c->p[c->pos + i] > 1) {
                        lg_err(c->log, "%s: key \"%.200s\": element %llu at byte %llu is a BOOL "
                               "of value %u (must be 0 or 1)", c->what, kv->key,
                               (unsigned long long)i, (unsigned long long)(c->pos + i),
                               c->p[c->pos + i]);
                        return LLMGPU_ERR_BAD_MODEL_FILE;
                    }
            }
            c->pos += cnt * min_size; /* checked above */
            return LLMGPU_OK;
        }
        for (i = 0; i < cnt; i++) {
            /* the common case inline; rd_str formats the message of a failure */
            if (left(c) >= 8) {
                n = rd_le(c->p + c->pos, 8);
                if (n <= left(c) - 8 && n <= LG_GGUF_MAX_STRING) {
                    c->pos += 8 + n;
                    continue;
                }
            }
            {
                char ctx[64];
                snprintf(ctx, sizeof ctx, "string %llu of array", (unsigned long long)i);
                if ((st = rd_str(c, LG_GGUF_MAX_STRING, ctx, kv->key, &s, &n)) != LLMGPU_OK)
                    return st;
            }
        }
        return LLMGPU_OK;
    }
    if ((st = rd(c, vtype_size[t], &v, "value", kv->key)) != LLMGPU_OK)
        return st;
    kv->u = v;
    switch (t) {
    case LG_GGUF_I8: kv->i = (int8_t)v; break;
    case LG_GGUF_I16: kv->i = (int16_t)v; break;
    case LG_GGUF_I32: kv->i = (int32_t)v; break;
    case LG_GGUF_I64: kv->i = (int64_t)v; break;
    case LG_GGUF_F32: {
        uint32_t b = (uint32_t)v;
        float f;
        memcpy(&f, &b, 4);
        kv->f = f;
        break;
    }
    case LG_GGUF_F64: memcpy(&kv->f, &v, 8); break;
    case LG_GGUF_BOOL:
        if (v > 1) {
            lg_err(c->log, "%s: key \"%.200s\": BOOL at byte %llu has value %llu (must be 0 or "
                   "1)", c->what, kv->key, (unsigned long long)at, (unsigned long long)v);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        /* fall through */
    default: kv->i = (int64_t)v; break;
    }
    if (t == LG_GGUF_I8 || t == LG_GGUF_I16 || t == LG_GGUF_I32 || t == LG_GGUF_I64)
        kv->u = (uint64_t)kv->i;
    return LLMGPU_OK;
}

/* ---- tensor infos ---- */

static enum llmgpu_status parse_tensor_info(const struct lg_alloc *a, struct cur *c,
                                            struct lg_gguf_tensor *t, uint64_t *rel_off) {
    const unsigned char *s;
    uint64_t n, nd, v, ty, at = c->pos, i, ne0_blocks;
    enum llmgpu_status st;
    uint32_t blck, tsize;

    t->info_offset = at;
    if ((st = rd_str(c, LG_GGUF_MAX_NAME, "tensor name", NULL, &s, &n)) != LLMGPU_OK)
        return st;
    if (n == 0 || memchr(s, 0, (size_t)n)) {
        lg_err(c->log, "%s: tensor name at byte %llu is %s", c->what, (unsigned long long)at,
               n == 0 ? "empty" : "holding a NUL byte");
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (!(t->name = lg_strndup(a, (const char *)s, (size_t)n)))
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    at = c->pos;
    if ((st = rd(c, 4, &nd, "n_dims", t->name)) != LLMGPU_OK)
        return st;
    if (nd == 0 || nd > LG_MAX_DIMS) {
        lg_err(c->log, "%s: tensor \"%.200s\": n_dims %llu at byte %llu (must be 1..%d)",
               c->what, t->name, (unsigned long long)nd, (unsigned long long)at, LG_MAX_DIMS);
        return nd > LG_MAX_DIMS ? LLMGPU_ERR_UNSUPPORTED_MODEL : LLMGPU_ERR_BAD_MODEL_FILE;
    }
    t->n_dims = (uint32_t)nd;
    t->n_elements = 1;
    for (i = 0; i < LG_MAX_DIMS; i++)
        t->ne[i] = t->shape[i] = 1;
    for (i = 0; i < nd; i++) {
        at = c->pos;
        if ((st = rd(c, 8, &v, "dimension", t->name)) != LLMGPU_OK)
            return st;
        /* ggml keeps element counts in int64; 2^62 leaves room for byte sizes */
        if (v == 0 || v > (1ull << 62) / t->n_elements) {
            lg_err(c->log, "%s: tensor \"%.200s\": ne[%llu] = %llu at byte %llu is %s", c->what,
                   t->name, (unsigned long long)i, (unsigned long long)v, (unsigned long long)at,
                   v == 0 ? "zero" : "too large (element count overflows 2^62)");
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        t->ne[i] = v;
        t->shape[nd - 1 - i] = v;
        t->n_elements *= v;
    }
    at = c->pos;
    if ((st = rd(c, 4, &ty, "type", t->name)) != LLMGPU_OK)
        return st;
    t->type = (uint32_t)ty;
    if (!lg_ggml_type_supported(t->type)) {
        if (ty < LG_ARRAY_LEN(ggml_types) && ggml_types[ty].name)
            lg_err(c->log, "%s: tensor \"%.200s\" at byte %llu has type %s (%llu); supported: "
                   "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K", c->what, t->name,
                   (unsigned long long)at, ggml_types[ty].name, (unsigned long long)ty);
        else
            lg_err(c->log, "%s: tensor \"%.200s\" at byte %llu has unknown ggml type %llu",
                   c->what, t->name, (unsigned long long)at, (unsigned long long)ty);
        return LLMGPU_ERR_UNSUPPORTED_MODEL;
    }
    blck = lg_ggml_block_size(t->type);
    tsize = lg_ggml_type_size(t->type);
    if (t->ne[0] % blck != 0) {
        lg_err(c->log, "%s: tensor \"%.200s\" (info at byte %llu): row length ne[0] = %llu is "
               "not a multiple of %s's block of %u", c->what, t->name,
               (unsigned long long)t->info_offset, (unsigned long long)t->ne[0],
               lg_ggml_type_name(t->type), blck);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    /* ne[0] >= 1 and a multiple of blck >= 1, so ne0_blocks, n_rows >= 1; tsize >= 1 for a
     * supported type. The byte size can still reach 2^64 (an F32 row of ne[0] = 2^62 is
     * exactly 2^64 bytes and wrapped to a row_bytes of 0), so check before multiplying. */
    ne0_blocks = t->ne[0] / blck;
    t->n_rows = t->n_elements / t->ne[0];
    if (ne0_blocks > UINT64_MAX / tsize || t->n_rows > UINT64_MAX / (ne0_blocks * tsize)) {
        lg_err(c->log, "%s: tensor \"%.200s\" (info at byte %llu): %llu %s elements (ne[0] = "
               "%llu) need 2^64 bytes or more", c->what, t->name,
               (unsigned long long)t->info_offset, (unsigned long long)t->n_elements,
               lg_ggml_type_name(t->type), (unsigned long long)t->ne[0]);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    t->row_bytes = ne0_blocks * tsize;
    t->nbytes = t->n_rows * t->row_bytes;
    if ((st = rd(c, 8, rel_off, "data offset", t->name)) != LLMGPU_OK)
        return st;
    return LLMGPU_OK;
}

enum llmgpu_status lg_gguf_parse(const struct lg_alloc *a, const struct lg_log *log,
                                 const char *what, const void *buf, uint64_t len,
                                 struct lg_gguf **out) {
    struct cur c;
    struct lg_gguf *g = NULL;
    enum llmgpu_status st = LLMGPU_OK;
    uint64_t magic = 0, ver = 0, n_t = 0, n_kv = 0, i, data_len;
    uint64_t *rel = NULL;
    const struct lg_gguf_kv **kv_sorted = NULL;
    const struct lg_gguf_tensor **by_off = NULL;

    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!what)
        what = "gguf";
    c.p = buf;
    c.len = len;
    c.pos = 0;
    c.log = log;
    c.what = what;

    if (len < 24) {
        lg_err(log, "%s: truncated: %llu bytes, shorter than the 24-byte GGUF header", what,
               (unsigned long long)len);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    rd(&c, 4, &magic, "magic", NULL);
    if (magic != 0x46554747u) {
        lg_err(log, "%s: bad magic at byte 0 (%02x %02x %02x %02x, expected \"GGUF\"): not a "
               "GGUF file", what, c.p[0], c.p[1], c.p[2], c.p[3]);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    rd(&c, 4, &ver, "version", NULL);
    if (ver == 1) {
        lg_err(log, "%s: GGUF version 1 (at byte 4) is not supported (re-convert with a "
               "current llama.cpp: versions 2 and 3 are)", what);
        return LLMGPU_ERR_UNSUPPORTED_MODEL;
    }
    if (ver != 2 && ver != 3) {
        if ((ver & 0xffff) == 0 && ver != 0)
            lg_err(log, "%s: GGUF version %llu at byte 4 looks big-endian; only little-endian "
                   "files are supported", what, (unsigned long long)ver);
        else
            lg_err(log, "%s: unknown GGUF version %llu at byte 4 (supported: 2, 3)", what,
                   (unsigned long long)ver);
        return LLMGPU_ERR_UNSUPPORTED_MODEL;
    }
    rd(&c, 8, &n_t, "tensor count", NULL);
    rd(&c, 8, &n_kv, "metadata count", NULL);
    /* a key/value takes at least 8+1+4+1 bytes, a tensor info 8+1+4+8+4+8 */
    if (n_kv > left(&c) / 14 || n_kv > LG_GGUF_MAX_KV) {
        lg_err(log, "%s: metadata_kv_count %llu at byte 16 is more than the %llu bytes after the "
               "header can hold (file size %llu; limit %u)", what, (unsigned long long)n_kv,
               (unsigned long long)left(&c), (unsigned long long)len, LG_GGUF_MAX_KV);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (n_t > left(&c) / 33 || n_t > LG_GGUF_MAX_TENSORS) {
        lg_err(log, "%s: tensor_count %llu at byte 8 is more than the %llu bytes after the "
               "header can hold (file size %llu; limit %u)", what, (unsigned long long)n_t,
               (unsigned long long)left(&c), (unsigned long long)len, LG_GGUF_MAX_TENSORS);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }

    g = lg_calloc(a, 1, sizeof *g);
    if (!g)
        goto err_oom;
    g->alloc = a;
    g->base = buf;
    g->size = len;
    g->version = (uint32_t)ver;
    g->alignment = 32;
    if (!(g->path = lg_strdup(a, what)))
        goto err_oom;
    if (n_kv && !(g->kv = lg_calloc(a, (size_t)n_kv, sizeof *g->kv)))
        goto err_oom;
    for (i = 0; i < n_kv; i++) {
        g->n_kv = i + 1;
        if ((st = parse_kv(a, &c, &g->kv[i])) != LLMGPU_OK)
            goto err;
    }
    if (n_kv > 1) {
        if (!(kv_sorted = lg_calloc(a, (size_t)n_kv, sizeof *kv_sorted)))
            goto err_oom;
        for (i = 0; i < n_kv; i++)
            kv_sorted[i] = &g->kv[i];
        qsort(kv_sorted, (size_t)n_kv, sizeof *kv_sorted, cmp_kv_key);
        for (i = 1; i < n_kv; i++)
            if (strcmp(kv_sorted[i - 1]->key, kv_sorted[i]->key) == 0) {
                lg_err(log, "%s: metadata key \"%.200s\" appears twice (at bytes %llu and %llu)",
                       what, kv_sorted[i]->key, (unsigned long long)kv_sorted[i - 1]->offset,
                       (unsigned long long)kv_sorted[i]->offset);
                st = LLMGPU_ERR_BAD_MODEL_FILE;
                goto err;
            }
    }
    {
        const struct lg_gguf_kv *al = lg_gguf_find_kv(g, "general.alignment");
        if (al) {
            if (al->type != LG_GGUF_U32 || al->u == 0 || (al->u & (al->u - 1)) != 0 ||
                al->u > LG_GGUF_MAX_ALIGN) {
                lg_err(log, "%s: general.alignment (key at byte %llu) must be a UINT32 power of "
                       "two up to %u; it is %s %llu", what, (unsigned long long)al->offset,
                       LG_GGUF_MAX_ALIGN, lg_gguf_vtype_name(al->type), (unsigned long long)al->u);
                st = LLMGPU_ERR_BAD_MODEL_FILE;
                goto err;
            }
            g->alignment = (uint32_t)al->u;
        }
    }

    /* tensor infos; n_t was bounded by the bytes left after the header */
    if (n_t > left(&c) / 33) {
        lg_err(log, "%s: tensor_count %llu (at byte 8): the %llu bytes after the metadata "
               "(from byte %llu) cannot hold that many tensor infos", what,
               (unsigned long long)n_t, (unsigned long long)left(&c), (unsigned long long)c.pos);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto err;
    }
    if (n_t) {
        if (!(g->tensors = lg_calloc(a, (size_t)n_t, sizeof *g->tensors)) ||
            !(rel = lg_calloc(a, (size_t)n_t, sizeof *rel)))
            goto err_oom;
    }
    for (i = 0; i < n_t; i++) {
        g->n_tensors = i + 1;
        if ((st = parse_tensor_info(a, &c, &g->tensors[i], &rel[i])) != LLMGPU_OK)
            goto err;
    }
    g->data_offset = LG_ALIGN_UP(c.pos, (uint64_t)g->alignment);
    if (n_t == 0 && g->data_offset > len)
        g->data_offset = len; /* no data section needed */
    if (g->data_offset > len) {
        lg_err(log, "%s: the data section would start at byte %llu (tensor infos end at %llu, "
               "alignment %u), past the end of the file (%llu bytes)", what,
               (unsigned long long)g->data_offset, (unsigned long long)c.pos, g->alignment,
               (unsigned long long)len);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto err;
    }
    data_len = len - g->data_offset;
    for (i = 0; i < n_t; i++) {
        struct lg_gguf_tensor *t = &g->tensors[i];
        if (rel[i] % g->alignment != 0) {
            lg_err(log, "%s: tensor \"%.200s\" (info at byte %llu): data offset %llu is not a "
                   "multiple of the alignment %u", what, t->name,
                   (unsigned long long)t->info_offset, (unsigned long long)rel[i], g->alignment);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto err;
        }
        if (rel[i] > data_len || t->nbytes > data_len - rel[i]) {
            lg_err(log, "%s: tensor \"%.200s\" (info at byte %llu): %llu bytes of %s at data "
                   "offset %llu (file byte %llu) run past the end of the data section (%llu "
                   "bytes from byte %llu; file size %llu)", what, t->name,
                   (unsigned long long)t->info_offset, (unsigned long long)t->nbytes,
                   lg_ggml_type_name(t->type), (unsigned long long)rel[i],
                   (unsigned long long)(g->data_offset + rel[i]), (unsigned long long)data_len,
                   (unsigned long long)g->data_offset, (unsigned long long)len);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto err;
        }
        t->file_offset = g->data_offset + rel[i];
        t->data = c.p + t->file_offset;
    }
    if (n_t > 1) {
        if (!(by_off = lg_calloc(a, (size_t)n_t, sizeof *by_off)))
            goto err_oom;
        for (i = 0; i < n_t; i++)
            by_off[i] = &g->tensors[i];
        qsort(by_off, (size_t)n_t, sizeof *by_off, cmp_tensor_off);
        for (i = 1; i < n_t; i++) {
            const struct lg_gguf_tensor *p = by_off[i - 1], *q = by_off[i];
            if (q->file_offset < p->file_offset + p->nbytes) {
                lg_err(log, "%s: tensors \"%.200s\" (bytes %llu..%llu) and \"%.200s\" (bytes "
                       "%llu..%llu) overlap", what, p->name, (unsigned long long)p->file_offset,
                       (unsigned long long)(p->file_offset + p->nbytes), q->name,
                       (unsigned long long)q->file_offset,
                       (unsigned long long)(q->file_offset + q->nbytes));
                st = LLMGPU_ERR_BAD_MODEL_FILE;
                goto err;
            }
        }
        qsort(g->tensors, (size_t)n_t, sizeof *g->tensors, cmp_tensor_name);
        for (i = 1; i < n_t; i++)
            if (strcmp(g->tensors[i - 1].name, g->tensors[i].name) == 0) {
                lg_err(log, "%s: tensor \"%.200s\" appears twice (infos at bytes %llu and %llu)",
                       what, g->tensors[i].name, (unsigned long long)g->tensors[i - 1].info_offset,
                       (unsigned long long)g->tensors[i].info_offset);
                st = LLMGPU_ERR_BAD_MODEL_FILE;
                goto err;
            }
    }
    lg_free(a, by_off);
    lg_free(a, kv_sorted);
    lg_free(a, rel);
    lg_dbg(log, "%s: GGUF v%u, %llu keys, %llu tensors, data at byte %llu", what, g->version,
           (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors,
           (unsigned long long)g->data_offset);
    *out = g;
    return LLMGPU_OK;

err_oom:
    lg_err(log, "%s: out of host memory", what);
    st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
err:
    lg_free(a, by_off);
    lg_free(a, kv_sorted);
    lg_free(a, rel);
    lg_gguf_close(g);
    return st;
}

enum llmgpu_status lg_gguf_open(const struct lg_alloc *a, const struct lg_log *log,
                                const char *path, struct lg_gguf **out) {
    struct stat sb;
    void *m;
    int fd;
    enum llmgpu_status st;

    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!path || !path[0]) {
        lg_err(log, "GGUF file: no path given");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lg_err(log, "%s: cannot open: %s", path, strerror(errno));
        return LLMGPU_ERR_IO;
    }
    if (fstat(fd, &sb) != 0) {
        lg_err(log, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return LLMGPU_ERR_IO;
    }
    if (!S_ISREG(sb.st_mode)) {
        lg_err(log, "%s: not a regular file", path);
        close(fd);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (sb.st_size < 24) {
        lg_err(log, "%s: truncated: %lld bytes, shorter than the 24-byte GGUF header", path,
               (long long)sb.st_size);
        close(fd);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        lg_err(log, "%s: cannot mmap %lld bytes: %s", path, (long long)sb.st_size,
               strerror(errno));
        return LLMGPU_ERR_IO;
    }
    st = lg_gguf_parse(a, log, path, m, (uint64_t)sb.st_size, out);
    if (st != LLMGPU_OK) {
        munmap(m, (size_t)sb.st_size);
        return st;
    }
    (*out)->mapped = 1;
    return LLMGPU_OK;
}

/* ---- split files (llama.cpp gguf-split) ---- */

/* A split key as an integer: 1 found, 0 absent, -1 wrong type (message logged). */
static int split_key(const struct lg_gguf *g, const struct lg_log *log, const char *key,
                     uint64_t *v) {
    const struct lg_gguf_kv *kv = lg_gguf_find_kv(g, key);
    int r = lg_gguf_get_u64(kv, v);
    if (r < 0)
        lg_err(log, "%s: metadata key \"%s\" (at byte %llu) is %s; expected a non-negative "
               "integer", g->path, key, (unsigned long long)kv->offset,
               lg_gguf_vtype_name(kv->type));
    return r;
}

static int cmp_tensor_ptr_name(const void *x, const void *y) {
    const struct lg_gguf_tensor *const *a = x, *const *b = y;
    return strcmp((*a)->name, (*b)->name);
}

/* Open parts 2..n of the set whose first part is g (split.count n > 1) and merge their
 * tensors into g->tensors. */
static enum llmgpu_status open_split(const struct lg_alloc *a, const struct lg_log *log,
                                     struct lg_gguf *g, uint64_t n) {
    static const char pat[] = "-00001-of-";
    const char *path = g->path;
    size_t len = strlen(path), plen;
    char want_tail[40], *ppath = NULL;
    uint64_t total = g->n_tensors, want_total = 0, v, i, k;
    int have_total;
    struct lg_gguf_tensor *all = NULL;
    const struct lg_gguf_tensor **by_name = NULL;
    enum llmgpu_status st = LLMGPU_OK;

    if (n > 99999) {
        lg_err(log, "%s: split.count %llu is more than the 99999 parts a name can number",
               path, (unsigned long long)n);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    snprintf(want_tail, sizeof want_tail, "-00001-of-%05llu.gguf", (unsigned long long)n);
    if (len < strlen(want_tail) || strcmp(path + len - strlen(want_tail), want_tail) != 0) {
        lg_err(log, "%s: split.count is %llu but the file name does not end in \"%s\" "
               "(llama.cpp's gguf-split names parts NAME%sNNNNN.gguf)", path,
               (unsigned long long)n, want_tail, pat);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    plen = len - strlen(want_tail);
    have_total = split_key(g, log, "split.tensors.count", &want_total);
    if (have_total < 0)
        return LLMGPU_ERR_BAD_MODEL_FILE;
    if (!(g->parts = lg_calloc(a, (size_t)n - 1, sizeof *g->parts)) ||
        !(ppath = lg_malloc(a, len + 1)))
        goto oom;
    g->n_parts = 1;
    for (k = 1; k < n; k++) {
        struct lg_gguf *p = NULL;
        uint64_t no = 0, cnt = 0;
        memcpy(ppath, path, plen);
        snprintf(ppath + plen, len + 1 - plen, "-%05llu-of-%05llu.gguf",
                 (unsigned long long)(k + 1), (unsigned long long)n);
        if (access(ppath, F_OK) != 0) {
            lg_err(log, "%s: split part %llu of %llu is missing: %s: %s", path,
                   (unsigned long long)(k + 1), (unsigned long long)n, ppath, strerror(errno));
            st = LLMGPU_ERR_IO;
            goto out;
        }
        if ((st = lg_gguf_open(a, log, ppath, &p)) != LLMGPU_OK)
            goto out;
        g->parts[k - 1] = p;
        g->n_parts = (uint32_t)(k + 1);
        if (split_key(p, log, "split.count", &cnt) != 1 || cnt != n ||
            split_key(p, log, "split.no", &no) != 1 || no != k) {
            lg_err(log, "%s: expected split part %llu of %llu (split.no %llu, split.count "
                   "%llu); it says split.no %llu, split.count %llu", ppath,
                   (unsigned long long)(k + 1), (unsigned long long)n, (unsigned long long)k,
                   (unsigned long long)n, (unsigned long long)no, (unsigned long long)cnt);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto out;
        }
        if (have_total == 0 && split_key(p, log, "split.tensors.count", &v) == 1)
            want_total = v, have_total = 1;
        total += p->n_tensors; /* each bounded by its file's size */
    }
    /* one table over all parts, names moved from the parts (their tables keep NULLs) */
    if (!(all = lg_calloc(a, (size_t)total, sizeof *all)) ||
        !(by_name = lg_calloc(a, (size_t)total, sizeof *by_name)))
        goto oom;
    for (i = 0; i < g->n_tensors; i++)
        all[i] = g->tensors[i];
    v = g->n_tensors;
    for (k = 1; k < n; k++) {
        struct lg_gguf *p = g->parts[k - 1];
        for (i = 0; i < p->n_tensors; i++) {
            all[v] = p->tensors[i];
            all[v].part = (uint32_t)k;
            p->tensors[i].name = NULL;
            v++;
        }
    }
    for (i = 0; i < total; i++)
        by_name[i] = &all[i];
    qsort(by_name, (size_t)total, sizeof *by_name, cmp_tensor_ptr_name);
    for (i = 1; i < total; i++)
        if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0) {
            const struct lg_gguf_tensor *x = by_name[i - 1], *y = by_name[i];
            lg_err(log, "%s: tensor \"%.200s\" is in split parts %u and %u (each tensor must be "
                   "in exactly one)", path, x->name, LG_MIN(x->part, y->part) + 1,
                   LG_MAX(x->part, y->part) + 1);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            break;
        }
    if (st == LLMGPU_OK && have_total && total != want_total) {
        lg_err(log, "%s: the %llu parts hold %llu tensors; split.tensors.count says %llu", path,
               (unsigned long long)n, (unsigned long long)total,
               (unsigned long long)want_total);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
    }
    qsort(all, (size_t)total, sizeof *all, cmp_tensor_name);
    lg_free(a, g->tensors);
    g->tensors = all;
    g->n_tensors = total;
    all = NULL;
    if (st == LLMGPU_OK)
        lg_dbg(log, "%s: split set of %llu files, %llu tensors", path, (unsigned long long)n,
               (unsigned long long)total);
    goto out;
oom:
    lg_err(log, "%s: out of host memory", path);
    st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
out:
    lg_free(a, all);
    lg_free(a, by_name);
    lg_free(a, ppath);
    return st;
}

enum llmgpu_status lg_gguf_open_model(const struct lg_alloc *a, const struct lg_log *log,
                                      const char *path, struct lg_gguf **out) {
    struct lg_gguf *g = NULL;
    enum llmgpu_status st;
    uint64_t n = 1, no = 0;
    int r;

    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if ((st = lg_gguf_open(a, log, path, &g)) != LLMGPU_OK)
        return st;
    g->n_parts = 1;
    if ((r = split_key(g, log, "split.count", &n)) < 0 ||
        split_key(g, log, "split.no", &no) < 0) {
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto err;
    }
    if (r == 1 && n == 0) {
        lg_err(log, "%s: split.count is 0", path);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto err;
    }
    if (no != 0) {
        lg_err(log, "%s: this is part %llu of a split set of %llu files; load the first part "
               "(NAME-00001-of-%05llu.gguf), which opens the others", path,
               (unsigned long long)(no + 1), (unsigned long long)n, (unsigned long long)n);
        st = LLMGPU_ERR_INVALID_ARGUMENT;
        goto err;
    }
    if (n > 1 && (st = open_split(a, log, g, n)) != LLMGPU_OK)
        goto err;
    if ((st = lg_gguf_model_config(g, log)) != LLMGPU_OK)
        goto err;
    *out = g;
    return LLMGPU_OK;
err:
    lg_gguf_close(g);
    return st;
}

/* ---- lookups ---- */

const struct lg_gguf_kv *lg_gguf_find_kv(const struct lg_gguf *g, const char *key) {
    uint64_t i;
    if (!g || !key)
        return NULL;
    for (i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0)
            return &g->kv[i];
    return NULL;
}

const struct lg_gguf_tensor *lg_gguf_find_tensor(const struct lg_gguf *g, const char *name) {
    struct lg_gguf_tensor key;
    if (!g || !name || g->n_tensors == 0)
        return NULL;
    memset(&key, 0, sizeof key);
    key.name = (char *)(uintptr_t)name;
    return bsearch(&key, g->tensors, (size_t)g->n_tensors, sizeof key, cmp_tensor_name);
}

static int is_int_type(uint32_t t) {
    return t <= LG_GGUF_I32 || t == LG_GGUF_U64 || t == LG_GGUF_I64;
}
static int is_signed_type(uint32_t t) {
    return t == LG_GGUF_I8 || t == LG_GGUF_I16 || t == LG_GGUF_I32 || t == LG_GGUF_I64;
}

int lg_gguf_get_u64(const struct lg_gguf_kv *kv, uint64_t *out) {
    if (!kv)
        return 0;
    if (!is_int_type(kv->type) || (is_signed_type(kv->type) && kv->i < 0))
        return -1;
    *out = kv->u;
    return 1;
}

int lg_gguf_get_f64(const struct lg_gguf_kv *kv, double *out) {
    if (!kv)
        return 0;
    if (kv->type == LG_GGUF_F32 || kv->type == LG_GGUF_F64)
        *out = kv->f;
    else if (is_signed_type(kv->type))
        *out = (double)kv->i;
    else if (is_int_type(kv->type))
        *out = (double)kv->u;
    else
        return -1;
    return 1;
}

int lg_gguf_get_bool(const struct lg_gguf_kv *kv, int *out) {
    if (!kv)
        return 0;
    if (kv->type != LG_GGUF_BOOL)
        return -1;
    *out = (int)kv->u;
    return 1;
}

static uint64_t arr_raw(const struct lg_gguf_kv *kv, uint64_t i) {
    unsigned n = vtype_size[kv->arr_type];
    return rd_le(kv->arr + i * n, n);
}

int64_t lg_gguf_arr_i64(const struct lg_gguf_kv *kv, uint64_t i) {
    uint64_t v = arr_raw(kv, i);
    switch (kv->arr_type) {
    case LG_GGUF_I8: return (int8_t)v;
    case LG_GGUF_I16: return (int16_t)v;
    case LG_GGUF_I32: return (int32_t)v;
    case LG_GGUF_F32: case LG_GGUF_F64: {
        /* an untrusted float: clamp before converting (out of range would be UB); NaN is 0 */
        double d = lg_gguf_arr_f64(kv, i);
        if (!(d == d))
            return 0;
        if (d >= 9.2e18)
            return INT64_MAX;
        if (d <= -9.2e18)
            return INT64_MIN;
        return (int64_t)d;
    }
    default: return (int64_t)v;
    }
}

double lg_gguf_arr_f64(const struct lg_gguf_kv *kv, uint64_t i) {
    uint64_t v = arr_raw(kv, i);
    if (kv->arr_type == LG_GGUF_F32) {
        uint32_t b = (uint32_t)v;
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    if (kv->arr_type == LG_GGUF_F64) {
        double d;
        memcpy(&d, &v, 8);
        return d;
    }
    if (is_signed_type(kv->arr_type))
        return (double)lg_gguf_arr_i64(kv, i);
    return (double)v;
}

int lg_gguf_arr_strings(const struct lg_gguf_kv *kv, const char **ptrs, uint64_t *lens) {
    const unsigned char *p;
    uint64_t i, n;
    if (!kv || kv->type != LG_GGUF_ARRAY || kv->arr_type != LG_GGUF_STRING)
        return -1;
    p = kv->arr;
    for (i = 0; i < kv->arr_n; i++) { /* every length was checked by the parser */
        n = rd_le(p, 8);
        ptrs[i] = (const char *)p + 8;
        lens[i] = n;
        p += 8 + n;
    }
    return 0;
}

/* ---- Llama-family models ---- */

/* llama.cpp's tensor names (llama-arch.cpp LLM_TENSOR_NAMES, "blk.%d." per layer). */
static const char *const gguf_names[LG_T_COUNT] = {
    [LG_T_TOK_EMBD] = "token_embd.weight",
    [LG_T_OUT_NORM] = "output_norm.weight",
    [LG_T_LM_HEAD] = "output.weight",
    [LG_T_ATTN_NORM] = "attn_norm.weight",
    [LG_T_WQ] = "attn_q.weight",
    [LG_T_WK] = "attn_k.weight",
    [LG_T_WV] = "attn_v.weight",
    [LG_T_BQ] = "attn_q.bias",
    [LG_T_BK] = "attn_k.bias",
    [LG_T_BV] = "attn_v.bias",
    [LG_T_WO] = "attn_output.weight",
    [LG_T_FFN_NORM] = "ffn_norm.weight",
    [LG_T_GATE] = "ffn_gate.weight",
    [LG_T_UP] = "ffn_up.weight",
    [LG_T_DOWN] = "ffn_down.weight",
};

int lg_gguf_tensor_name(const struct lg_model_config *cfg, enum lg_tensor_role r, uint32_t layer,
                        char *buf, size_t size) {
    int n;
    if (!cfg || (unsigned)r >= LG_T_COUNT || !lg_arch_has_role(cfg, r) || !buf || size == 0)
        return 0;
    if (lg_arch_is_per_layer(r))
        n = snprintf(buf, size, "blk.%u.%s", (unsigned)layer, gguf_names[r]);
    else
        n = snprintf(buf, size, "%s", gguf_names[r]);
    return n >= 0 && (size_t)n < size;
}

const struct lg_gguf_tensor *lg_gguf_tensor_role(const struct lg_gguf *g, enum lg_tensor_role r,
                                                 uint32_t layer) {
    char name[128];
    if (!g || !lg_gguf_tensor_name(&g->cfg, r, layer, name, sizeof name))
        return NULL;
    return lg_gguf_find_tensor(g, name);
}

int lg_gguf_role_permuted(const struct lg_gguf *g, enum lg_tensor_role r) {
    return g && g->qk_permuted && (r == LG_T_WQ || r == LG_T_WK);
}

struct mctx {
    const struct lg_gguf *g;
    const struct lg_log *log;
    const char *arch; /* "llama" */
};

/* An unsigned integer key "<arch>.<suffix>" (or an absolute key when suffix starts with
 * '!'): required or default dflt, within [lo, hi]. */
static enum llmgpu_status key_u32(const struct mctx *m, const char *suffix, int required,
                                  uint32_t dflt, uint32_t lo, uint32_t hi, uint32_t *out) {
    char key[160];
    const struct lg_gguf_kv *kv;
    uint64_t v;
    int r;
    if (suffix[0] == '!')
        snprintf(key, sizeof key, "%s", suffix + 1);
    else
        snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
    kv = lg_gguf_find_kv(m->g, key);
    r = lg_gguf_get_u64(kv, &v);
    if (r == 0) {
        if (required) {
            lg_err(m->log, "%s: metadata key \"%s\" is missing", m->g->path, key);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        *out = dflt;
        return LLMGPU_OK;
    }
    if (r < 0 || v < lo || v > hi) {
        if (r < 0)
            lg_err(m->log, "%s: metadata key \"%s\" (at byte %llu) is %s; expected an unsigned "
                   "integer", m->g->path, key, (unsigned long long)kv->offset,
                   lg_gguf_vtype_name(kv->type));
        else
            lg_err(m->log, "%s: metadata key \"%s\" (at byte %llu) = %llu is outside [%u, %u]",
                   m->g->path, key, (unsigned long long)kv->offset, (unsigned long long)v, lo,
                   hi);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    *out = (uint32_t)v;
    return LLMGPU_OK;
}

static enum llmgpu_status key_float(const struct mctx *m, const char *suffix, int required,
                                    double dflt, double lo_excl, double hi, float *out) {
    char key[160];
    const struct lg_gguf_kv *kv;
    double v;
    float f;
    int r;
    snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
    kv = lg_gguf_find_kv(m->g, key);
    r = lg_gguf_get_f64(kv, &v);
    if (r == 0) {
        if (required) {
            lg_err(m->log, "%s: metadata key \"%s\" is missing", m->g->path, key);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        *out = (float)dflt;
        return LLMGPU_OK;
    }
    f = (float)v;
    if (r < 0 || !isfinite(v) || !((double)f > lo_excl) || (double)f > hi) {
        lg_err(m->log, "%s: metadata key \"%s\" (at byte %llu) %s", m->g->path, key,
               (unsigned long long)kv->offset,
               r < 0 ? "is not a number" : "is out of range");
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    *out = f;
    return LLMGPU_OK;
}

/* Llama 3 frequency factors as convert_hf_to_gguf computes them (float32 freqs). */
static double llama3_factor(uint32_t i, uint32_t hd, double theta, double factor, double lo,
                            double hi, double orig) {
    float freq = (float)(1.0 / pow(theta, (double)(float)(2.0 * i) / hd));
    double wavelen = 2 * M_PI / freq, lw = orig / lo, hw = orig / hi, smooth;
    if (wavelen < hw)
        return 1;
    if (wavelen > lw)
        return factor;
    smooth = (orig / wavelen - lo) / (hi - lo);
    return 1 / ((1 - smooth) / factor + smooth);
}

static enum llmgpu_status fit_rope_freqs(const struct mctx *m, struct lg_model_config *cfg,
                                         const struct lg_gguf_tensor *t) {
    uint32_t n = cfg->head_dim / 2, i, orig = 8192;
    float v, vmax = 0;
    int all_one = 1, ok = 1;
    enum llmgpu_status st;
    if (t->type != LG_GGML_F32 || t->n_elements != n) {
        lg_err(m->log, "%s: rope_freqs.weight (info at byte %llu) must be F32 with head_dim/2 = "
               "%u elements; it is %s with %llu", m->g->path,
               (unsigned long long)t->info_offset, n, lg_ggml_type_name(t->type),
               (unsigned long long)t->n_elements);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    for (i = 0; i < n; i++) {
        memcpy(&v, (const char *)t->data + 4 * i, 4);
        if (!isfinite(v) || v <= 0) {
            lg_err(m->log, "%s: rope_freqs.weight[%u] (byte %llu) is not a positive number",
                   m->g->path, i, (unsigned long long)(t->file_offset + 4 * i));
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        all_one &= v == 1.0f;
        vmax = LG_MAX(vmax, v);
    }
    if (all_one)
        return LLMGPU_OK;
    if ((st = key_u32(m, "rope.scaling.original_context_length", 0, 8192, 1, LG_CFG_MAX_CTX,
                      &orig)) != LLMGPU_OK)
        return st;
    for (i = 0; i < n && ok; i++) {
        double want = llama3_factor(i, cfg->head_dim, cfg->rope_theta, vmax, 1.0, 4.0, orig);
        memcpy(&v, (const char *)t->data + 4 * i, 4);
        ok = fabs(want - v) <= 1e-4 * want;
    }
    if (!ok) {
        lg_err(m->log, "%s: rope_freqs.weight (at byte %llu) does not match Llama 3 rope scaling "
               "with factor %g, low/high_freq_factor 1/4, original context %u; other frequency "
               "factors are not supported", m->g->path, (unsigned long long)t->file_offset,
               (double)vmax, orig);
        return LLMGPU_ERR_UNSUPPORTED_MODEL;
    }
    cfg->rope_scaling = LG_ROPE_SCALING_LLAMA3;
    cfg->rope_factor = vmax;
    cfg->rope_low_freq_factor = 1.0f;
    cfg->rope_high_freq_factor = 4.0f;
    cfg->rope_orig_ctx = orig;
    return LLMGPU_OK;
}

static enum llmgpu_status check_tensor_shapes(const struct mctx *m, struct lg_model_config *cfg) {
    uint32_t r, l, nd, d;
    uint64_t shape[2];
    char name[128];
    for (r = 0; r < LG_T_COUNT; r++) {
        uint32_t nl = lg_arch_is_per_layer((enum lg_tensor_role)r) ? cfg->n_layer : 1;
        for (l = 0; l < nl; l++) {
            const struct lg_gguf_tensor *t;
            int ok;
            if (!lg_gguf_tensor_name(cfg, (enum lg_tensor_role)r, l, name, sizeof name))
                continue;
            t = lg_gguf_find_tensor(m->g, name);
            if (!t) {
                lg_err(m->log, "%s: tensor \"%s\" is missing", m->g->path, name);
                return LLMGPU_ERR_BAD_MODEL_FILE;
            }
            lg_arch_tensor_shape(cfg, (enum lg_tensor_role)r, &nd, shape);
            ok = t->n_dims == nd;
            for (d = 0; ok && d < nd; d++)
                ok = t->shape[d] == shape[d];
            if (!ok) {
                lg_err(m->log, "%s: tensor \"%s\" (info at byte %llu) has ne [%llu, %llu, %llu, "
                       "%llu] (%u dims), expected PyTorch shape [%llu%s%llu] i.e. ne [%llu%s%llu]",
                       m->g->path, name, (unsigned long long)t->info_offset,
                       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                       (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], t->n_dims,
                       (unsigned long long)shape[0], nd == 2 ? ", " : "",
                       nd == 2 ? (unsigned long long)shape[1] : 0ull,
                       nd == 2 ? (unsigned long long)shape[1] : (unsigned long long)shape[0],
                       nd == 2 ? ", " : "", nd == 2 ? (unsigned long long)shape[0] : 0ull);
                return LLMGPU_ERR_BAD_MODEL_FILE;
            }
            if (nd == 1 && t->type != LG_GGML_F32 && t->type != LG_GGML_F16 &&
                t->type != LG_GGML_BF16) {
                lg_err(m->log, "%s: tensor \"%s\" (info at byte %llu) is a vector of type %s; "
                       "norms and biases must be F32, F16 or BF16", m->g->path, name,
                       (unsigned long long)t->info_offset, lg_ggml_type_name(t->type));
                return LLMGPU_ERR_UNSUPPORTED_MODEL;
            }
        }
    }
    return LLMGPU_OK;
}

enum llmgpu_status lg_gguf_model_config(struct lg_gguf *g, const struct lg_log *log) {
    struct lg_model_config *cfg = &g->cfg;
    const struct lg_gguf_kv *kv;
    const struct lg_gguf_tensor *emb, *t;
    const struct lg_arch_desc *d;
    struct mctx m = {g, log, NULL};
    enum llmgpu_status st;
    uint32_t key_len = 0, val_len = 0, rope_dim = 0;
    uint64_t v;

    memset(cfg, 0, sizeof *cfg);
    g->qk_permuted = 0;
    g->rope_freqs = NULL;
    kv = lg_gguf_find_kv(g, "general.architecture");
    if (!kv || kv->type != LG_GGUF_STRING) {
        lg_err(log, "%s: metadata key \"general.architecture\" is %s; expected a string",
               g->path, kv ? lg_gguf_vtype_name(kv->type) : "missing");
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    m.arch = kv->str;
    if (strcmp(kv->str, "llama") == 0) {
        cfg->arch = LG_ARCH_LLAMA;
        g->qk_permuted = 1;
    } else if (strcmp(kv->str, "qwen2") == 0) {
        cfg->arch = LG_ARCH_QWEN2;
    } else {
        lg_err(log, "%s: general.architecture \"%.100s\" (key at byte %llu) is not supported "
               "(supported: llama, which includes Mistral, and qwen2)", g->path, kv->str,
               (unsigned long long)kv->offset);
        return LLMGPU_ERR_UNSUPPORTED_MODEL;
    }
    d = lg_arch_get(cfg->arch);
    if (cfg->arch == LG_ARCH_LLAMA) {
        /* llama.cpp converts MistralForCausalLM as "llama"; a sliding window says Mistral */
        uint32_t sw = 0;
        if ((st = key_u32(&m, "attention.sliding_window", 0, 0, 0, LG_CFG_MAX_CTX, &sw)))
            return st;
        if (sw) {
            cfg->arch = LG_ARCH_MISTRAL;
            d = lg_arch_get(cfg->arch);
        }
    }
    snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s", d->hf_class);

    if ((st = key_u32(&m, "embedding_length", 1, 0, 1, LG_CFG_MAX_EMBD, &cfg->n_embd)) ||
        (st = key_u32(&m, "feed_forward_length", 1, 0, 1, LG_CFG_MAX_FF, &cfg->n_ff)) ||
        (st = key_u32(&m, "block_count", 1, 0, 1, LG_CFG_MAX_LAYER, &cfg->n_layer)) ||
        (st = key_u32(&m, "attention.head_count", 1, 0, 1, LG_CFG_MAX_HEAD, &cfg->n_head)) ||
        (st = key_u32(&m, "attention.head_count_kv", 0, cfg->n_head, 1, LG_CFG_MAX_HEAD,
                      &cfg->n_kv_head)) ||
        (st = key_u32(&m, "context_length", 0, d->default_ctx, 1, LG_CFG_MAX_CTX,
                      &cfg->n_ctx_train)) ||
        (st = key_u32(&m, "attention.key_length", 0, 0, 1, LG_CFG_MAX_HEAD_DIM, &key_len)) ||
        (st = key_u32(&m, "attention.value_length", 0, 0, 1, LG_CFG_MAX_HEAD_DIM, &val_len)) ||
        (st = key_u32(&m, "rope.dimension_count", 0, 0, 1, LG_CFG_MAX_HEAD_DIM, &rope_dim)) ||
        (st = key_u32(&m, "attention.sliding_window", 0, 0, 0, LG_CFG_MAX_CTX,
                      &cfg->sliding_window)) ||
        (st = key_float(&m, "attention.layer_norm_rms_epsilon", 1, 0, 0, 1, &cfg->rms_norm_eps)) ||
        (st = key_float(&m, "rope.freq_base", 0, 10000.0, 0, 1e12, &cfg->rope_theta)))
        return st;
    if (key_len) {
        cfg->head_dim = key_len;
    } else {
        if (cfg->n_embd % cfg->n_head != 0) {
            lg_err(log, "%s: embedding_length %u is not divisible by head_count %u (and no "
                   "attention.key_length is given)", g->path, cfg->n_embd, cfg->n_head);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        cfg->head_dim = cfg->n_embd / cfg->n_head;
    }
    if (val_len && val_len != cfg->head_dim) {
        lg_err(log, "%s: attention.value_length %u differs from key_length %u: not supported",
               g->path, val_len, cfg->head_dim);
        return LLMGPU_ERR_UNSUPPORTED_MODEL;
    }
    if (cfg->head_dim % 2 != 0 || cfg->head_dim > LG_CFG_MAX_HEAD_DIM) {
        lg_err(log, "%s: head dimension %u must be even and at most %u", g->path, cfg->head_dim,
               LG_CFG_MAX_HEAD_DIM);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (rope_dim && rope_dim != cfg->head_dim) {
        lg_err(log, "%s: rope.dimension_count %u differs from the head dimension %u (partial "
               "rotary embeddings are not supported)", g->path, rope_dim, cfg->head_dim);
        return LLMGPU_ERR_UNSUPPORTED_MODEL;
    }
    if (cfg->n_kv_head > cfg->n_head || cfg->n_head % cfg->n_kv_head != 0) {
        lg_err(log, "%s: attention.head_count_kv %u does not divide head_count %u", g->path,
               cfg->n_kv_head, cfg->n_head);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }

    /* rope scaling */
    cfg->rope_scaling = LG_ROPE_SCALING_NONE;
    cfg->rope_factor = 1.0f;
    {
        char key[160];
        snprintf(key, sizeof key, "%s.rope.scaling.type", m.arch);
        kv = lg_gguf_find_kv(g, key);
        if (kv && kv->type != LG_GGUF_STRING) {
            lg_err(log, "%s: %s (at byte %llu) is not a string", g->path, key,
                   (unsigned long long)kv->offset);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        if (kv && strcmp(kv->str, "linear") == 0) {
            cfg->rope_scaling = LG_ROPE_SCALING_LINEAR;
            if ((st = key_float(&m, "rope.scaling.factor", 1, 0, 0, 1e6, &cfg->rope_factor)))
                return st;
        } else if (kv && strcmp(kv->str, "none") != 0) {
            lg_err(log, "%s: rope scaling type \"%.100s\" (at byte %llu) is not supported "
                   "(supported: none, linear, and Llama 3 rope_freqs)", g->path, kv->str,
                   (unsigned long long)kv->offset);
            return LLMGPU_ERR_UNSUPPORTED_MODEL;
        } else if (!kv) {
            float f = 0;
            snprintf(key, sizeof key, "%s.rope.scale_linear", m.arch); /* older files */
            if (lg_gguf_find_kv(g, key)) {
                if ((st = key_float(&m, "rope.scale_linear", 1, 0, 0, 1e6, &f)))
                    return st;
                if (f != 1.0f) {
                    cfg->rope_scaling = LG_ROPE_SCALING_LINEAR;
                    cfg->rope_factor = f;
                }
            }
        }
    }
    if ((t = lg_gguf_find_tensor(g, "rope_freqs.weight")) != NULL) {
        if (cfg->rope_scaling != LG_ROPE_SCALING_NONE) {
            lg_err(log, "%s: both rope_freqs.weight and a rope scaling type: not supported",
                   g->path);
            return LLMGPU_ERR_UNSUPPORTED_MODEL;
        }
        if ((st = fit_rope_freqs(&m, cfg, t)) != LLMGPU_OK)
            return st;
        g->rope_freqs = t;
    }

    /* vocabulary: <arch>.vocab_size, else the tokenizer's, else the embedding's rows */
    emb = lg_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2) {
        lg_err(log, "%s: tensor \"token_embd.weight\" is %s", g->path,
               emb ? "not a matrix" : "missing");
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (emb->ne[1] < 1 || emb->ne[1] > LG_CFG_MAX_VOCAB) {
        lg_err(log, "%s: token_embd.weight has %llu rows; at most %u are supported", g->path,
               (unsigned long long)emb->ne[1], LG_CFG_MAX_VOCAB);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if ((st = key_u32(&m, "vocab_size", 0, (uint32_t)emb->ne[1], 1, LG_CFG_MAX_VOCAB,
                      &cfg->n_vocab)))
        return st;
    kv = lg_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (kv && kv->type == LG_GGUF_ARRAY && kv->arr_n != cfg->n_vocab)
        lg_dbg(log, "%s: tokenizer.ggml.tokens has %llu tokens, the model %u rows", g->path,
               (unsigned long long)kv->arr_n, cfg->n_vocab);

    cfg->tie_word_embeddings = lg_gguf_find_tensor(g, "output.weight") == NULL;
    cfg->qkv_bias = cfg->arch == LG_ARCH_QWEN2;
    if (cfg->arch == LG_ARCH_QWEN2 && !lg_gguf_find_tensor(g, "blk.0.attn_q.bias"))
        cfg->qkv_bias = 0;

    cfg->bos_id = -1;
    cfg->n_eos = 0;
    kv = lg_gguf_find_kv(g, "tokenizer.ggml.bos_token_id");
    if (lg_gguf_get_u64(kv, &v) == 1 && v < cfg->n_vocab)
        cfg->bos_id = (int32_t)v;
    kv = lg_gguf_find_kv(g, "tokenizer.ggml.eos_token_id");
    if (lg_gguf_get_u64(kv, &v) == 1 && v < cfg->n_vocab)
        cfg->eos_ids[cfg->n_eos++] = (int32_t)v;
    kv = lg_gguf_find_kv(g, "tokenizer.ggml.eot_token_id");
    if (lg_gguf_get_u64(kv, &v) == 1 && v < cfg->n_vocab &&
        (cfg->n_eos == 0 || cfg->eos_ids[0] != (int32_t)v))
        cfg->eos_ids[cfg->n_eos++] = (int32_t)v;

    if ((st = check_tensor_shapes(&m, cfg)) != LLMGPU_OK)
        return st;
    lg_dbg(log, "%s: %s, %u layers, n_embd %u, %u heads (%u kv), head_dim %u, vocab %u%s",
           g->path, m.arch, cfg->n_layer, cfg->n_embd, cfg->n_head, cfg->n_kv_head,
           cfg->head_dim, cfg->n_vocab, g->qk_permuted ? ", Q/K rows permuted" : "");
    return LLMGPU_OK;
}
