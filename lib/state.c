/*
 * state.c - saving and loading a session's KV cache (llmgpu_session_save/load):
 * a prompt cache, so a long system prompt is evaluated once.
 *
 * Owns: the state file format below. Must not touch: the session's internals;
 * it reads and writes the KV cache through the accessors of forward.h.
 *
 * File format, version 1 (all integers little-endian; the library runs on
 * little-endian hosts only):
 *   offset  size  field
 *   0       8     magic "LLMGPUKV"
 *   8       4     format version (1)
 *   12      4     library version that wrote it (LLMGPU_VERSION_NUMBER; informative)
 *   16      16    model identity: XXH3-128 of the hyper-parameters, the weight type,
 *                 and the GPU bytes of the final norm and of the first rows of the
 *                 embedding and LM head (model_identity())
 *   32      4     n_layer
 *   36      4     n_kv_head
 *   40      4     head_dim
 *   44      4     KV element type (1: f16, 2: q8_0)
 *   48      4     n_ctx of the session that saved it (informative)
 *   52      4     position: rows stored per layer, <= n_ctx
 *   56      8     reserved, zero
 *   64      ...   for each layer l: K rows [0, position), then V rows [0, position);
 *                 a row is n_kv_head * head_dim f16 values, or in q8_0 the GPU's
 *                 row (lg_kv_row_bytes: int8 values, f16 scales, zero padding)
 *   end-8   8     XXH3-64 of every byte before it
 * The logits are not stored: after a load the session has none until it
 * evaluates a token.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "forward.h"

#define STATE_MAGIC "LLMGPUKV"
#define STATE_VERSION 1u
#define STATE_KV_F16 1u
#define STATE_KV_Q8_0 2u
#define HEADER_BYTES 64u

struct state_header {
    char magic[8];
    uint32_t version;
    uint32_t lib_version;
    uint64_t model_id[2];
    uint32_t n_layer, n_kv_head, head_dim, kv_type;
    uint32_t n_ctx, position;
    uint64_t reserved;
};
_Static_assert(sizeof(struct state_header) == HEADER_BYTES, "state header is 64 bytes");

/* Up to `want` leading bytes of a weight tensor's first shard, as on the GPU. */
static enum llmgpu_status hash_tensor_head(struct llmgpu_context *ctx, const struct lg_wtensor *t,
                                           XXH3_state_t *h, void *tmp, size_t want) {
    size_t n;
    enum llmgpu_status st;
    if (!t->n_shards)
        return LLMGPU_OK;
    n = (size_t)LG_MIN((VkDeviceSize)want, t->shards[0].buf.size);
    st = lg_buffer_download(ctx, &t->shards[0].buf, 0, tmp, n);
    if (st == LLMGPU_OK)
        XXH3_128bits_update(h, tmp, n);
    return st;
}

/* The model identity of the header (see the format above). */
static enum llmgpu_status model_identity(struct llmgpu_context *ctx, const struct llmgpu_model *m,
                                         uint64_t id[2]) {
    const struct lg_model_config *c = &m->cfg;
    XXH3_state_t h;
    XXH128_hash_t r;
    enum { HEAD = 4096 };
    unsigned char *tmp;
    uint32_t dims[] = {(uint32_t)c->arch, c->n_vocab, c->n_embd, c->n_ff, c->n_layer, c->n_head,
                       c->n_kv_head, c->head_dim, c->sliding_window, (uint32_t)c->rope_scaling,
                       c->rope_orig_ctx, (uint32_t)c->tie_word_embeddings,
                       (uint32_t)c->qkv_bias, (uint32_t)m->weight_type};
    float f[] = {c->rms_norm_eps, c->rope_theta, c->rope_factor, c->rope_low_freq_factor,
                 c->rope_high_freq_factor};
    enum llmgpu_status st;
    size_t norm = (size_t)LG_MIN(m->out_norm.size, (VkDeviceSize)HEAD);
    tmp = lg_malloc(&ctx->alloc, HEAD);
    if (!tmp)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    XXH3_128bits_reset(&h);
    XXH3_128bits_update(&h, c->arch_name, strnlen(c->arch_name, sizeof c->arch_name));
    XXH3_128bits_update(&h, dims, sizeof dims);
    XXH3_128bits_update(&h, f, sizeof f);
    st = lg_buffer_download(ctx, &m->out_norm, 0, tmp, norm);
    if (st == LLMGPU_OK) {
        XXH3_128bits_update(&h, tmp, norm);
        st = hash_tensor_head(ctx, &m->tok_embd, &h, tmp, HEAD);
    }
    if (st == LLMGPU_OK)
        st = hash_tensor_head(ctx, &m->lm_head, &h, tmp, HEAD);
    lg_free(&ctx->alloc, tmp);
    r = XXH3_128bits_digest(&h);
    id[0] = r.low64;
    id[1] = r.high64;
    return st;
}

/* Bytes of one layer's K (or V) rows [0, position) in the session's element type. */
static uint64_t layer_bytes(const struct llmgpu_session *s, uint32_t position) {
    const struct lg_model_config *c = &lg_session_model(s)->cfg;
    return (uint64_t)position * lg_kv_row_bytes(c->n_kv_head, c->head_dim, lg_session_kv_q8(s));
}

static uint32_t kv_type(const struct llmgpu_session *s) {
    return lg_session_kv_q8(s) ? STATE_KV_Q8_0 : STATE_KV_F16;
}

enum llmgpu_status llmgpu_session_save(struct llmgpu_session *s, const char *path) {
    struct llmgpu_context *ctx;
    const struct llmgpu_model *m;
    struct state_header hd;
    XXH3_state_t h;
    uint64_t sum, lb;
    unsigned char *buf = NULL;
    char tmp_path[4096];
    FILE *f = NULL;
    enum llmgpu_status st;
    if (!s || !path)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    ctx = lg_session_context(s);
    m = lg_session_model(s);
    memset(&hd, 0, sizeof hd);
    memcpy(hd.magic, STATE_MAGIC, 8);
    hd.version = STATE_VERSION;
    hd.lib_version = LLMGPU_VERSION_NUMBER;
    hd.n_layer = m->cfg.n_layer;
    hd.n_kv_head = m->cfg.n_kv_head;
    hd.head_dim = m->cfg.head_dim;
    hd.kv_type = kv_type(s);
    hd.n_ctx = llmgpu_session_n_ctx(s);
    hd.position = llmgpu_session_position(s);
    st = model_identity(ctx, m, hd.model_id);
    if (st != LLMGPU_OK)
        return st;
    lb = layer_bytes(s, hd.position);
    if (lb > SIZE_MAX)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    if ((size_t)snprintf(tmp_path, sizeof tmp_path, "%s.tmp", path) >= sizeof tmp_path) {
        lg_err(&ctx->log, "session save: path too long");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    buf = lg_malloc(&ctx->alloc, lb ? (size_t)lb : 1);
    if (!buf)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    f = fopen(tmp_path, "wb");
    if (!f) {
        lg_err(&ctx->log, "session save: cannot create %s: %s", tmp_path, strerror(errno));
        st = LLMGPU_ERR_IO;
        goto err_free_buf;
    }
    XXH3_64bits_reset(&h);
    XXH3_64bits_update(&h, &hd, sizeof hd);
    if (fwrite(&hd, sizeof hd, 1, f) != 1)
        goto err_write;
    for (uint32_t l = 0; l < hd.n_layer; l++) {
        for (int kv = 0; kv < 2; kv++) {
            const struct lg_buffer *b = kv ? lg_session_vcache(s, l) : lg_session_kcache(s, l);
            st = lg_buffer_download(ctx, b, 0, buf, lb);
            if (st != LLMGPU_OK)
                goto err_close;
            XXH3_64bits_update(&h, buf, (size_t)lb);
            if (lb && fwrite(buf, (size_t)lb, 1, f) != 1)
                goto err_write;
        }
    }
    sum = XXH3_64bits_digest(&h);
    if (fwrite(&sum, sizeof sum, 1, f) != 1)
        goto err_write;
    if (fclose(f) != 0) {
        f = NULL;
        goto err_write;
    }
    f = NULL;
    if (rename(tmp_path, path) != 0) {
        lg_err(&ctx->log, "session save: cannot rename %s to %s: %s", tmp_path, path,
               strerror(errno));
        st = LLMGPU_ERR_IO;
        goto err_remove;
    }
    lg_free(&ctx->alloc, buf);
    return LLMGPU_OK;

err_write:
    lg_err(&ctx->log, "session save: cannot write %s: %s", tmp_path, strerror(errno));
    st = LLMGPU_ERR_IO;
err_close:
    if (f)
        fclose(f);
err_remove:
    remove(tmp_path);
err_free_buf:
    lg_free(&ctx->alloc, buf);
    return st;
}

/* Check a header against the model and the loading session; BAD_MODEL_FILE for a
 * malformed or foreign file, CONTEXT_FULL when it does not fit the session. */
static enum llmgpu_status check_header(struct llmgpu_session *s, const char *path,
                                       const struct state_header *hd, uint64_t file_size) {
    struct llmgpu_context *ctx = lg_session_context(s);
    const struct llmgpu_model *m = lg_session_model(s);
    uint64_t id[2], want;
    enum llmgpu_status st;
    if (memcmp(hd->magic, STATE_MAGIC, 8) != 0) {
        lg_err(&ctx->log, "%s: not a session state file (bad magic at offset 0)", path);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (hd->version != STATE_VERSION) {
        lg_err(&ctx->log, "%s: state format version %u, this library reads %u (offset 8)", path,
               hd->version, STATE_VERSION);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (hd->n_layer != m->cfg.n_layer || hd->n_kv_head != m->cfg.n_kv_head ||
        hd->head_dim != m->cfg.head_dim || hd->kv_type != kv_type(s)) {
        lg_err(&ctx->log, "%s: saved for n_layer %u, n_kv_head %u, head_dim %u, kv type %u; the "
                          "model and session have %u, %u, %u, %u (offset 32; kv type 1 is f16, "
                          "2 q8_0)",
               path, hd->n_layer, hd->n_kv_head, hd->head_dim, hd->kv_type, m->cfg.n_layer,
               m->cfg.n_kv_head, m->cfg.head_dim, kv_type(s));
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (hd->position > hd->n_ctx || hd->reserved != 0) {
        lg_err(&ctx->log, "%s: position %u beyond the saved n_ctx %u, or reserved bytes set "
                          "(offset 48)",
               path, hd->position, hd->n_ctx);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    want = HEADER_BYTES + 2 * (uint64_t)hd->n_layer * layer_bytes(s, hd->position) + 8;
    if (file_size != want) {
        lg_err(&ctx->log, "%s: %llu bytes, the header needs %llu (truncated or padded)", path,
               (unsigned long long)file_size, (unsigned long long)want);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    st = model_identity(ctx, m, id);
    if (st != LLMGPU_OK)
        return st;
    if (id[0] != hd->model_id[0] || id[1] != hd->model_id[1]) {
        lg_err(&ctx->log, "%s: saved from a different model (identity at offset 16 differs)", path);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (hd->position > llmgpu_session_n_ctx(s)) {
        lg_err(&ctx->log, "%s: %u positions do not fit the session's n_ctx %u", path, hd->position,
               llmgpu_session_n_ctx(s));
        return LLMGPU_ERR_CONTEXT_FULL;
    }
    return LLMGPU_OK;
}

enum llmgpu_status llmgpu_session_load(struct llmgpu_session *s, const char *path) {
    struct llmgpu_context *ctx;
    struct state_header hd;
    struct stat sb;
    unsigned char *data = NULL;
    uint64_t lb, sum;
    size_t n;
    FILE *f;
    enum llmgpu_status st;
    if (!s || !path)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    ctx = lg_session_context(s);
    f = fopen(path, "rb");
    if (!f) {
        lg_err(&ctx->log, "session load: cannot open %s: %s", path, strerror(errno));
        return LLMGPU_ERR_IO;
    }
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        lg_err(&ctx->log, "session load: %s is not a regular file", path);
        st = LLMGPU_ERR_IO;
        goto done;
    }
    if (fread(&hd, sizeof hd, 1, f) != 1) {
        lg_err(&ctx->log, "%s: %lld bytes, shorter than the %u-byte header", path,
               (long long)sb.st_size, HEADER_BYTES);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto done;
    }
    st = check_header(s, path, &hd, (uint64_t)sb.st_size);
    if (st != LLMGPU_OK)
        goto done;
    /* Read and verify everything before the session is touched. */
    if ((uint64_t)sb.st_size - HEADER_BYTES > SIZE_MAX) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    n = (size_t)sb.st_size - HEADER_BYTES;
    data = lg_malloc(&ctx->alloc, n);
    if (!data) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    if (fread(data, 1, n, f) != n) {
        lg_err(&ctx->log, "%s: read error or file shrank while loading", path);
        st = LLMGPU_ERR_IO;
        goto done;
    }
    {
        XXH3_state_t h;
        XXH3_64bits_reset(&h);
        XXH3_64bits_update(&h, &hd, sizeof hd);
        XXH3_64bits_update(&h, data, n - 8);
        memcpy(&sum, data + n - 8, 8);
        if (XXH3_64bits_digest(&h) != sum) {
            lg_err(&ctx->log, "%s: checksum mismatch (offset %llu): the file is corrupt", path,
                   (unsigned long long)sb.st_size - 8);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto done;
        }
    }
    /* the KV cache grows in pages: make room for the saved rows (on failure the
     * session keeps its old cache and is unchanged) */
    st = lg_session_reserve(s, hd.position);
    if (st != LLMGPU_OK)
        goto done;
    lb = layer_bytes(s, hd.position);
    for (uint32_t l = 0; l < hd.n_layer && st == LLMGPU_OK; l++) {
        for (int kv = 0; kv < 2 && st == LLMGPU_OK; kv++) {
            /* the accessors hand out const buffers; their contents are the session's
             * and writing rows [0, position) is what set_position expects */
            struct lg_buffer *b =
                (struct lg_buffer *)(uintptr_t)(kv ? lg_session_vcache(s, l) : lg_session_kcache(s, l));
            st = lg_buffer_upload(ctx, b, 0, data + (2 * (uint64_t)l + (uint64_t)kv) * lb, lb);
        }
    }
    if (st != LLMGPU_OK) {
        /* part of the cache was overwritten: nothing in it can be trusted */
        llmgpu_session_reset(s);
        goto done;
    }
    lg_session_set_position(s, hd.position);
done:
    lg_free(&ctx->alloc, data);
    fclose(f);
    return st;
}
