/*
 * checkpoint.c - open a Hugging Face model directory: config.json,
 * generation_config.json, model.safetensors or the shards of
 * model.safetensors.index.json; mmap them and validate the tensor table
 * against the architecture.
 *
 * Owns: file mapping, shard-name safety (no escape from the directory), the
 * sorted tensor table and lookup, and the required-tensor/shape check; for a
 * GPTQ/AWQ checkpoint (config.json "quantization_config") the check of each
 * quantized projection's qweight/qzeros/scales/g_idx (struct lg_qlinear).
 * Must not touch: the GPU, conversions (the uploader calls lg_convert_*).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "model/model.h"

static char *path_join(const struct lg_alloc *a, const char *dir, const char *name) {
    size_t ld = strlen(dir), ln = strlen(name), total;
    char *p;
    if (lg_add_size(ld, ln, &total) || lg_add_size(total, 2, &total))
        return NULL;
    p = lg_malloc(a, total);
    if (!p)
        return NULL;
    memcpy(p, dir, ld);
    p[ld] = '/';
    memcpy(p + ld + 1, name, ln + 1);
    return p;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Map dir/name read-only into f. */
static enum llmgpu_status map_file(const struct lg_alloc *a, const struct lg_log *log,
                                   const char *dir, const char *name, struct lg_mapped_file *f) {
    enum llmgpu_status st = LLMGPU_OK;
    struct stat sb;
    void *m;
    int fd = -1;

    memset(f, 0, sizeof *f);
    f->name = lg_strdup(a, name);
    f->path = path_join(a, dir, name);
    if (!f->name || !f->path) {
        lg_err(log, "%s: out of host memory", name);
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto err_free;
    }
    fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lg_err(log, "%s: cannot open: %s", f->path, strerror(errno));
        st = LLMGPU_ERR_IO;
        goto err_free;
    }
    if (fstat(fd, &sb) != 0) {
        lg_err(log, "%s: cannot stat: %s", f->path, strerror(errno));
        st = LLMGPU_ERR_IO;
        goto err_close;
    }
    if (!S_ISREG(sb.st_mode)) {
        lg_err(log, "%s: not a regular file", f->path);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto err_close;
    }
    if (sb.st_size == 0) {
        lg_err(log, "%s: empty file", f->path);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto err_close;
    }
    m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        lg_err(log, "%s: cannot mmap %lld bytes: %s", f->path, (long long)sb.st_size,
               strerror(errno));
        st = LLMGPU_ERR_IO;
        goto err_close;
    }
    f->base = m;
    f->size = (uint64_t)sb.st_size;
    close(fd);
    return LLMGPU_OK;

err_close:
    close(fd);
err_free:
    lg_free(a, f->name);
    lg_free(a, f->path);
    f->name = f->path = NULL;
    return st;
}

static void unmap_file(const struct lg_alloc *a, struct lg_mapped_file *f) {
    if (f->base)
        munmap((void *)(uintptr_t)f->base, (size_t)f->size);
    lg_free(a, f->name);
    lg_free(a, f->path);
    memset(f, 0, sizeof *f);
}

void lg_ckpt_close(struct lg_checkpoint *c) {
    const struct lg_alloc *a;
    uint32_t i;
    if (!c)
        return;
    a = c->alloc;
    for (i = 0; c->files && i < c->n_files; i++)
        unmap_file(a, &c->files[i]);
    lg_free(a, c->files);
    lg_tensor_table_free(a, &c->tensors);
    lg_free(a, c->qlin);
    lg_free(a, c->dir);
    lg_free(a, c);
}

static int cmp_name(const void *x, const void *y) {
    const struct lg_tensor_src *a = x, *b = y;
    return strcmp(a->name, b->name);
}

const struct lg_tensor_src *lg_ckpt_find(const struct lg_checkpoint *c, const char *name) {
    struct lg_tensor_src key;
    if (!c || !name || c->tensors.n == 0)
        return NULL;
    memset(&key, 0, sizeof key);
    key.name = name;
    return bsearch(&key, c->tensors.v, c->tensors.n, sizeof key, cmp_name);
}

const struct lg_tensor_src *lg_ckpt_tensor(const struct lg_checkpoint *c, enum lg_tensor_role r,
                                           uint32_t layer) {
    char name[256];
    if (!c || !lg_arch_tensor_name(&c->cfg, r, layer, name, sizeof name) ||
        lg_ckpt_qlinear(c, r, layer))
        return NULL;
    return lg_ckpt_find(c, name);
}

static int is_projection(enum lg_tensor_role r) {
    return r == LG_T_WQ || r == LG_T_WK || r == LG_T_WV || r == LG_T_WO || r == LG_T_GATE ||
           r == LG_T_UP || r == LG_T_DOWN;
}

const struct lg_qlinear *lg_ckpt_qlinear(const struct lg_checkpoint *c, enum lg_tensor_role r,
                                         uint32_t layer) {
    const struct lg_qlinear *q;
    if (!c || !c->qlin || !is_projection(r) || layer >= c->cfg.n_layer)
        return NULL;
    q = &c->qlin[(size_t)r * c->cfg.n_layer + layer];
    return q->rows ? q : NULL;
}

/* "[a, b]" of a tensor's shape, for messages. */
static const char *shape_str(const struct lg_tensor_src *t, char *buf, size_t size) {
    int pos = 0;
    buf[0] = '\0';
    pos += snprintf(buf, size, "[");
    for (uint32_t d = 0; d < t->n_dims && pos < (int)size - 24; d++)
        pos += snprintf(buf + pos, size - (size_t)pos, "%s%llu", d ? ", " : "",
                        (unsigned long long)t->shape[d]);
    snprintf(buf + pos, size - (size_t)pos, "]");
    return buf;
}

/* One quantized tensor "<base>.<suffix>": present, dtype dt, shape [d0, d1]. */
static enum llmgpu_status check_qpart(const struct lg_log *log, const struct lg_checkpoint *c,
                                      const char *where, const char *base, const char *suffix,
                                      enum lg_dtype dt, uint64_t d0, uint64_t d1, int n_dims,
                                      const struct lg_tensor_src **out) {
    char name[300], got[96];
    const struct lg_tensor_src *t;
    snprintf(name, sizeof name, "%s.%s", base, suffix);
    t = lg_ckpt_find(c, name);
    *out = t;
    if (!t) {
        lg_err(log, "%s: %s tensor \"%s\" is missing", where,
               lg_quant_method_name(c->quant.method), name);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (t->dtype != dt) {
        lg_err(log, "%s: tensor \"%s\" has dtype %s, expected %s", c->files[t->file].path, name,
               lg_dtype_name(t->dtype), lg_dtype_name(dt));
        return dt == LG_DTYPE_F16 ? LLMGPU_ERR_UNSUPPORTED_MODEL : LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (t->n_dims != (uint32_t)n_dims || t->shape[0] != d0 || (n_dims == 2 && t->shape[1] != d1)) {
        if (n_dims == 2)
            lg_err(log, "%s: tensor \"%s\" has shape %s, expected [%llu, %llu] (%s, %u-bit, group "
                   "size %d)", c->files[t->file].path, name, shape_str(t, got, sizeof got),
                   (unsigned long long)d0, (unsigned long long)d1,
                   lg_quant_method_name(c->quant.method), c->quant.bits, c->quant.group_size);
        else
            lg_err(log, "%s: tensor \"%s\" has shape %s, expected [%llu]",
                   c->files[t->file].path, name, shape_str(t, got, sizeof got),
                   (unsigned long long)d0);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    return LLMGPU_OK;
}

/*
 * The projection of role r, layer l, of a GPTQ/AWQ checkpoint, whose float
 * name is wname ("....q_proj.weight"): when "<base>.qweight" exists, check its
 * tensors into *q (rows == 0 otherwise: the role is a float .weight).
 */
static enum llmgpu_status check_qlinear(const struct lg_log *log, struct lg_checkpoint *c,
                                        const char *where, enum lg_tensor_role r, const char *wname,
                                        struct lg_qlinear *q) {
    const struct lg_quant_config *qc = &c->quant;
    char base[256], name[300];
    size_t n = strlen(wname);
    uint64_t shape[2], N, K, G, NG;
    uint32_t nd;
    const struct lg_tensor_src *b;
    enum llmgpu_status st;

    memset(q, 0, sizeof *q);
    if (n < 7 || n - 7 >= sizeof base || strcmp(wname + n - 7, ".weight") != 0)
        return LLMGPU_OK;
    memcpy(base, wname, n - 7);
    base[n - 7] = '\0';
    snprintf(name, sizeof name, "%s.qweight", base);
    if (!lg_ckpt_find(c, name))
        return LLMGPU_OK; /* not quantized (modules_to_not_convert): a float .weight */
    lg_arch_tensor_shape(&c->cfg, r, &nd, shape);
    N = shape[0];
    K = shape[1];
    G = qc->group_size > 0 ? (uint64_t)qc->group_size : K;
    NG = (K + G - 1) / G;
    if (K % 16 != 0 || N % 8 != 0) {
        lg_err(log, "%s: %s: a %s Linear of %llu inputs and %llu outputs is not supported (inputs "
               "must be a multiple of 16, outputs of 8)", where, base,
               lg_quant_method_name(qc->method), (unsigned long long)K, (unsigned long long)N);
        return LLMGPU_ERR_UNSUPPORTED_MODEL;
    }
    q->method = qc->method;
    q->rows = (uint32_t)N;
    q->cols = (uint32_t)K;
    q->group = (uint32_t)G;
    q->n_groups = (uint32_t)NG;
    q->zero_minus_one = qc->method == LG_QUANT_GPTQ && qc->zero_minus_one;
    if (qc->method == LG_QUANT_GPTQ)
        st = check_qpart(log, c, where, base, "qweight", LG_DTYPE_I32, K / 8, N, 2, &q->qweight);
    else
        st = check_qpart(log, c, where, base, "qweight", LG_DTYPE_I32, K, N / 8, 2, &q->qweight);
    if (st == LLMGPU_OK)
        st = check_qpart(log, c, where, base, "qzeros", LG_DTYPE_I32, NG, N / 8, 2, &q->qzeros);
    if (st == LLMGPU_OK)
        st = check_qpart(log, c, where, base, "scales", LG_DTYPE_F16, NG, N, 2, &q->scales);
    if (st != LLMGPU_OK)
        goto fail;
    snprintf(name, sizeof name, "%s.g_idx", base);
    if (qc->method == LG_QUANT_GPTQ && lg_ckpt_find(c, name)) {
        if ((st = check_qpart(log, c, where, base, "g_idx", LG_DTYPE_I32, K, 0, 1, &q->g_idx)))
            goto fail;
        for (uint64_t k = 0; k < K; k++) {
            int32_t g;
            memcpy(&g, (const char *)q->g_idx->data + 4 * k, 4);
            if ((uint64_t)(int64_t)g != k / G) {
                lg_err(log, "%s: %s: g_idx[%llu] is %d, not %llu: act-order (desc_act) with "
                       "permuted groups is not supported; quantize with desc_act false, or with "
                       "static_groups", c->files[q->g_idx->file].path, base,
                       (unsigned long long)k, (int)g, (unsigned long long)(k / G));
                st = LLMGPU_ERR_UNSUPPORTED_MODEL;
                goto fail;
            }
        }
    } else if (qc->desc_act) {
        lg_err(log, "%s: %s: desc_act is true but there is no g_idx tensor", where, base);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto fail;
    }
    /* A bias the architecture has no place for: all zeros (AutoGPTQ writes such)
     * is dropped; anything else would change the model. */
    snprintf(name, sizeof name, "%s.bias", base);
    b = lg_ckpt_find(c, name);
    if (b && !(c->cfg.qkv_bias && (r == LG_T_WQ || r == LG_T_WK || r == LG_T_WV))) {
        float v = 0.0f;
        int nonzero = b->n_dims != 1 || b->shape[0] != N || !lg_dtype_is_weight(b->dtype);
        for (uint64_t i = 0; !nonzero && i < N; i++) {
            lg_convert_to_f32(b->dtype, (const char *)b->data + i * lg_dtype_size(b->dtype), &v, 1);
            nonzero = v != 0.0f;
        }
        if (nonzero) {
            lg_err(log, "%s: %s: a bias on this projection is not supported by %s models",
                   c->files[b->file].path, name, c->cfg.arch_name);
            st = LLMGPU_ERR_UNSUPPORTED_MODEL;
            goto fail;
        }
    }
    return LLMGPU_OK;
fail:
    memset(q, 0, sizeof *q);
    return st;
}

/*
 * A shard name from the index must name a file inside dir: not empty, not
 * absolute, no ".." component, and its real path (symlinks resolved) inside
 * dir's real path. Exception: the Hugging Face hub cache keeps files in
 * <repo>/snapshots/<rev>/ as symlinks into <repo>/blobs/, which is allowed.
 */
static enum llmgpu_status check_shard_name(const struct lg_log *log, const char *index_name,
                                           const char *dir, const char *name) {
    char rdir[PATH_MAX], rfile[PATH_MAX], blobs[PATH_MAX], full[PATH_MAX];
    const char *s;
    size_t ld;
    char *slash;

    if (name[0] == '\0') {
        lg_err(log, "%s: empty shard file name in weight_map", index_name);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (name[0] == '/') {
        lg_err(log, "%s: shard \"%.200s\" is an absolute path; shards must be inside the model "
               "directory", index_name, name);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    for (s = name; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 2 && s[0] == '.' && s[1] == '.') {
            lg_err(log, "%s: shard \"%.200s\" contains \"..\"; shards must be inside the model "
                   "directory", index_name, name);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        s += n;
        if (*s == '/')
            s++;
    }
    if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, name) >= sizeof full) {
        lg_err(log, "%s: shard path \"%.200s\" is too long", index_name, name);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (!realpath(dir, rdir)) {
        lg_err(log, "%s: cannot resolve: %s", dir, strerror(errno));
        return LLMGPU_ERR_IO;
    }
    if (!realpath(full, rfile)) {
        if (errno == ENOENT)
            lg_err(log, "%s: shard \"%.200s\" named in the index is missing (%s)", index_name,
                   name, full);
        else
            lg_err(log, "%s: shard \"%.200s\": cannot resolve %s: %s", index_name, name, full,
                   strerror(errno));
        return LLMGPU_ERR_IO;
    }
    ld = strlen(rdir);
    if (strncmp(rfile, rdir, ld) == 0 && (rfile[ld] == '/' || (ld == 1 && rdir[0] == '/')))
        return LLMGPU_OK;
    /* hub cache: rdir = <repo>/snapshots/<rev>, blobs in <repo>/blobs/ */
    memcpy(blobs, rdir, ld + 1);
    slash = strrchr(blobs, '/');
    if (slash && slash != blobs) {
        *slash = '\0';
        slash = strrchr(blobs, '/');
        if (slash && strcmp(slash, "/snapshots") == 0 &&
            (size_t)(slash - blobs) + sizeof "/blobs/" <= sizeof blobs) {
            memcpy(slash, "/blobs/", sizeof "/blobs/");
            if (strncmp(rfile, blobs, strlen(blobs)) == 0)
                return LLMGPU_OK;
        }
    }
    lg_err(log, "%s: shard \"%.200s\" resolves to %s, outside the model directory %s",
           index_name, name, rfile, rdir);
    return LLMGPU_ERR_BAD_MODEL_FILE;
}

/* Read model.safetensors.index.json: the distinct shard names in order of first
 * appearance (*names, *n_names; strings point into *root). */
static enum llmgpu_status read_index(const struct lg_alloc *a, const struct lg_log *log,
                                     const char *dir, const char *index_name, cJSON **root_out,
                                     const char ***names, uint32_t *n_names) {
    enum llmgpu_status st;
    char *path = NULL, *json = NULL;
    size_t len = 0;
    uint32_t n = 0, cnt = 0, i;
    const cJSON *wm, *e;
    cJSON *root = NULL;
    const char **v = NULL;

    *root_out = NULL;
    *names = NULL;
    *n_names = 0;
    path = path_join(a, dir, index_name);
    if (!path) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto out;
    }
    if ((st = lg_read_file(a, log, path, &json, &len)) != LLMGPU_OK)
        goto out;
    index_name = path; /* messages name the full path from here on */
    if ((st = lg_json_parse_object(a, log, index_name, json, len, &root)) != LLMGPU_OK)
        goto out;
    wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        lg_err(log, "%s: field \"weight_map\" is %s; expected an object", index_name,
               wm ? lg_json_type_name(wm) : "missing");
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto out;
    }
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !e->valuestring) {
            lg_err(log, "%s: weight_map[\"%.200s\"] is %s; expected a file name", index_name,
                   e->string ? e->string : "", lg_json_type_name(e));
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto out;
        }
        cnt++;
    }
    if (cnt == 0) {
        lg_err(log, "%s: weight_map is empty", index_name);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto out;
    }
    v = lg_calloc(a, cnt, sizeof *v); /* cnt is bounded by the file's size */
    if (!v) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto out;
    }
    cJSON_ArrayForEach(e, wm) {
        for (i = 0; i < n; i++)
            if (strcmp(v[i], e->valuestring) == 0)
                break;
        if (i == n) {
            if ((st = check_shard_name(log, index_name, dir, e->valuestring)) != LLMGPU_OK)
                goto out;
            v[n++] = e->valuestring;
        }
    }
    *root_out = root;
    *names = v;
    *n_names = n;
    root = NULL;
    v = NULL;
out:
    if (st == LLMGPU_ERR_OUT_OF_HOST_MEMORY)
        lg_err(log, "%s: out of host memory", index_name);
    lg_free(a, v);
    cJSON_Delete(root);
    lg_free(a, json);
    lg_free(a, path);
    return st;
}

/* Every tensor the architecture needs: present, float dtype, expected shape. */
static enum llmgpu_status check_tensors(const struct lg_log *log, struct lg_checkpoint *c,
                                        const char *where) {
    const struct lg_model_config *cfg = &c->cfg;
    char name[256];
    uint64_t shape[2];
    uint32_t nd, layer, r, d;

    c->n_params = 0;
    c->weight_bytes = 0;
    for (r = 0; r < LG_T_COUNT; r++) {
        uint32_t n_layers = lg_arch_is_per_layer((enum lg_tensor_role)r) ? cfg->n_layer : 1;
        for (layer = 0; layer < n_layers; layer++) {
            const struct lg_tensor_src *t;
            int ok;
            if (!lg_arch_tensor_name(cfg, (enum lg_tensor_role)r, layer, name, sizeof name))
                continue;
            if (c->qlin && is_projection((enum lg_tensor_role)r)) {
                struct lg_qlinear *q = &c->qlin[(size_t)r * cfg->n_layer + layer];
                enum llmgpu_status st = check_qlinear(log, c, where, (enum lg_tensor_role)r,
                                                      name, q);
                if (st != LLMGPU_OK)
                    return st;
                if (q->rows) {
                    c->n_params += (uint64_t)q->rows * q->cols;
                    c->weight_bytes += q->qweight->nbytes + q->qzeros->nbytes + q->scales->nbytes;
                    continue;
                }
            }
            t = lg_ckpt_find(c, name);
            if (!t) {
                lg_err(log, "%s: tensor \"%s\" is missing%s", where, name,
                       r == LG_T_LM_HEAD ? " (tie_word_embeddings is false)" : "");
                return LLMGPU_ERR_BAD_MODEL_FILE;
            }
            if (!lg_dtype_is_weight(t->dtype)) {
                lg_err(log, "%s: tensor \"%s\" at byte %llu has dtype %s; weights must be F32, "
                       "F16 or BF16", c->files[t->file].path, name,
                       (unsigned long long)t->file_offset, lg_dtype_name(t->dtype));
                return LLMGPU_ERR_UNSUPPORTED_MODEL;
            }
            lg_arch_tensor_shape(cfg, (enum lg_tensor_role)r, &nd, shape);
            ok = t->n_dims == nd;
            for (d = 0; ok && d < nd; d++)
                ok = t->shape[d] == shape[d];
            if (!ok) {
                char got[96];
                int pos = 0;
                got[0] = '\0';
                for (d = 0; d < t->n_dims && pos < (int)sizeof got - 24; d++)
                    pos += snprintf(got + pos, sizeof got - (size_t)pos, "%s%llu", d ? ", " : "",
                                    (unsigned long long)t->shape[d]);
                if (nd == 2)
                    lg_err(log, "%s: tensor \"%s\" has shape [%s], expected [%llu, %llu]",
                           c->files[t->file].path, name, got, (unsigned long long)shape[0],
                           (unsigned long long)shape[1]);
                else
                    lg_err(log, "%s: tensor \"%s\" has shape [%s], expected [%llu]",
                           c->files[t->file].path, name, got, (unsigned long long)shape[0]);
                return LLMGPU_ERR_BAD_MODEL_FILE;
            }
            c->n_params += t->n_elements;
            c->weight_bytes += t->nbytes;
        }
    }
    return LLMGPU_OK;
}

enum llmgpu_status lg_ckpt_open(const struct lg_alloc *a, const struct lg_log *log,
                                const char *dir, struct lg_checkpoint **out) {
    static const char index_name[] = "model.safetensors.index.json";
    struct lg_checkpoint *c = NULL;
    enum llmgpu_status st;
    char *path = NULL, *json = NULL;
    size_t len = 0;
    cJSON *index = NULL;
    const char **shards = NULL;
    const char *single = "model.safetensors";
    char *where = NULL; /* full path of the index or the single file, for messages */
    uint32_t n_shards = 1, i;

    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!dir || !dir[0]) {
        lg_err(log, "model directory: no path given");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    c = lg_calloc(a, 1, sizeof *c);
    if (!c || !(c->dir = lg_strdup(a, dir))) {
        lg_free(a, c);
        lg_err(log, "%s: out of host memory", dir);
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    }
    c->alloc = a;

    /* config.json */
    if (!(path = path_join(a, dir, "config.json"))) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto err_oom;
    }
    if ((st = lg_read_file(a, log, path, &json, &len)) != LLMGPU_OK)
        goto err;
    if ((st = lg_config_parse(a, log, json, len, path, &c->cfg)) != LLMGPU_OK)
        goto err;
    if ((st = lg_quant_config_parse(a, log, json, len, path, &c->quant)) != LLMGPU_OK)
        goto err;
    lg_free(a, json);
    lg_free(a, path);
    json = NULL;

    /* generation_config.json (optional): extra EOS ids */
    if (!(path = path_join(a, dir, "generation_config.json"))) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto err_oom;
    }
    if (file_exists(path)) {
        if ((st = lg_read_file(a, log, path, &json, &len)) != LLMGPU_OK)
            goto err;
        if ((st = lg_generation_config_parse(a, log, json, len, path, &c->cfg)) != LLMGPU_OK)
            goto err;
        lg_free(a, json);
        json = NULL;
    }
    lg_free(a, path);

    /* which safetensors files */
    if (!(path = path_join(a, dir, index_name))) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto err_oom;
    }
    if (file_exists(path)) {
        if ((st = read_index(a, log, dir, index_name, &index, &shards, &n_shards)) != LLMGPU_OK)
            goto err;
    } else {
        lg_free(a, path);
        if (!(path = path_join(a, dir, single))) {
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            goto err_oom;
        }
        if (!file_exists(path)) {
            static const char *const others[] = {"pytorch_model.bin",
                                                 "pytorch_model.bin.index.json",
                                                 "consolidated.safetensors", "model.gguf"};
            lg_free(a, path);
            path = NULL;
            for (i = 0; i < LG_ARRAY_LEN(others); i++) {
                if (!(path = path_join(a, dir, others[i]))) {
                    st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
                    goto err_oom;
                }
                if (file_exists(path)) {
                    if (strcmp(others[i], "model.gguf") == 0)
                        lg_err(log, "%s: has model.gguf but no model.safetensors or %s; to load "
                               "the GGUF file, pass its path (%s)", dir, index_name, path);
                    else
                        lg_err(log, "%s: has %s but no model.safetensors or %s; only Hugging "
                               "Face safetensors checkpoints are supported (convert it with "
                               "transformers' save_pretrained(safe_serialization=True))",
                               dir, others[i], index_name);
                    st = LLMGPU_ERR_UNSUPPORTED_MODEL;
                    goto err;
                }
                lg_free(a, path);
                path = NULL;
            }
            lg_err(log, "%s: neither model.safetensors nor %s is there", dir, index_name);
            st = LLMGPU_ERR_IO;
            goto err;
        }
        shards = &single;
    }
    where = path;
    path = NULL;

    c->files = lg_calloc(a, n_shards, sizeof *c->files);
    if (!c->files) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto err_oom;
    }
    for (i = 0; i < n_shards; i++) {
        if ((st = map_file(a, log, dir, shards[i], &c->files[i])) != LLMGPU_OK)
            goto err;
        c->n_files++;
        if ((st = lg_safetensors_parse(a, log, c->files[i].path, c->files[i].base,
                                       c->files[i].size, i, &c->tensors)) != LLMGPU_OK)
            goto err;
    }

    /* one sorted table over all files; a name in two shards is an error */
    if (c->tensors.n > 1)
        qsort(c->tensors.v, c->tensors.n, sizeof *c->tensors.v, cmp_name);
    for (i = 1; i < c->tensors.n; i++) {
        const struct lg_tensor_src *x = &c->tensors.v[i - 1], *y = &c->tensors.v[i];
        if (strcmp(x->name, y->name) == 0) {
            lg_err(log, "%s: tensor \"%.200s\" is in both %s and %s", where, x->name,
                   c->files[x->file].name, c->files[y->file].name);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto err;
        }
    }

    /* the index must say where each tensor really is */
    if (index) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(index, "weight_map")) {
            const struct lg_tensor_src *t = lg_ckpt_find(c, e->string);
            if (!t) {
                lg_err(log, "%s: tensor \"%.200s\" is listed in weight_map but is not in %s",
                       where, e->string, e->valuestring);
                st = LLMGPU_ERR_BAD_MODEL_FILE;
                goto err;
            }
            if (strcmp(c->files[t->file].name, e->valuestring) != 0) {
                lg_err(log, "%s: tensor \"%.200s\" is listed in %s but is in %s", where,
                       e->string, e->valuestring, c->files[t->file].name);
                st = LLMGPU_ERR_BAD_MODEL_FILE;
                goto err;
            }
        }
    }

    if (c->quant.method != LG_QUANT_NONE &&
        !(c->qlin = lg_calloc(a, (size_t)LG_T_COUNT * c->cfg.n_layer, sizeof *c->qlin))) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto err_oom;
    }
    if ((st = check_tensors(log, c, where)) != LLMGPU_OK)
        goto err;

    if (index)
        lg_free(a, (void *)shards);
    cJSON_Delete(index);
    lg_free(a, where);
    lg_dbg(log, "%s: %s, %u layers, %u tensors in %u file(s), %llu parameters", dir,
           c->cfg.arch_name, c->cfg.n_layer, c->tensors.n, c->n_files,
           (unsigned long long)c->n_params);
    *out = c;
    return LLMGPU_OK;

err_oom:
    lg_err(log, "%s: out of host memory", dir);
err:
    if (index)
        lg_free(a, (void *)shards);
    cJSON_Delete(index);
    lg_free(a, where);
    lg_free(a, json);
    lg_free(a, path);
    lg_ckpt_close(c);
    return st;
}
