/*
 * gguf_write.c - write a Hugging Face checkpoint as a GGUF v3 file that
 * llama.cpp-style readers and our own reader (gguf.c) open.
 *
 * Layout written: header, metadata, tensor infos, zero padding to 32, then
 * each tensor's data at a multiple of 32. Names, keys and conventions follow
 * llama.cpp's convert_hf_to_gguf.py: architecture "llama" for Llama and
 * Mistral (attn_q/attn_k rows permuted for interleaved RoPE, see
 * lg_gguf_qk_hf_row), "qwen2" for Qwen2 (no permutation); norms, biases and
 * rope_freqs in F32; Llama 3 rope scaling as the rope_freqs tensor.
 *
 * Owns: the byte layout of what we write. Must not touch: the GPU, the
 * tokenizer internals (the tokenizer travels as its tokenizer.json text).
 *
 * Quantized output types (Q8_0, Q4_0, Q4_K) come from the CPU quantizers of
 * lib/model/quant.c (ggml block semantics), repacked into ggml's block
 * layouts by quantize_row(). The token embedding and the LM head stay F16 in
 * quantized files, as at load-time quantization.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "model/gguf.h"
#include "model/quant.h"

#define W_ALIGN 32u

struct w {
    FILE *f;          /* NULL: only count */
    uint64_t pos;
    uint64_t n_kv;
    int err;
};

static void w_bytes(struct w *w, const void *p, size_t n) {
    if (w->f && !w->err && n && fwrite(p, 1, n, w->f) != n)
        w->err = errno ? errno : EIO;
    w->pos += n;
}
static void w_u32(struct w *w, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    w_bytes(w, b, 4);
}
static void w_u64(struct w *w, uint64_t v) {
    w_u32(w, (uint32_t)v);
    w_u32(w, (uint32_t)(v >> 32));
}
static void w_str(struct w *w, const char *s, size_t n) {
    w_u64(w, n);
    w_bytes(w, s, n);
}
static void w_pad(struct w *w) {
    static const unsigned char z[W_ALIGN];
    w_bytes(w, z, (size_t)(LG_ALIGN_UP(w->pos, W_ALIGN) - w->pos));
}
static void kv_key(struct w *w, const char *key, uint32_t type) {
    w_str(w, key, strlen(key));
    w_u32(w, type);
    w->n_kv++;
}
static void kv_u32(struct w *w, const char *key, uint32_t v) {
    kv_key(w, key, LG_GGUF_U32);
    w_u32(w, v);
}
static void kv_f32(struct w *w, const char *key, float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    kv_key(w, key, LG_GGUF_F32);
    w_u32(w, b);
}
static void kv_str(struct w *w, const char *key, const char *s, size_t n) {
    kv_key(w, key, LG_GGUF_STRING);
    w_str(w, s, n);
}
static void kv_arch_u32(struct w *w, const char *arch, const char *suffix, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    kv_u32(w, key, v);
}
static void kv_arch_f32(struct w *w, const char *arch, const char *suffix, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    kv_f32(w, key, v);
}

/* One output tensor. */
struct wt {
    char name[96];
    const struct lg_tensor_src *src; /* NULL: rope_freqs (values in extra) */
    int permute;                     /* rows in interleaved-RoPE order */
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[2];
    uint64_t nbytes, offset;
};

/*
 * The quantizers (lib/model/quant.c, ggml's block semantics) into ggml's block
 * layouts: `cols` f32 values of one row into cols / block blocks of `type`.
 * quant.c keeps q8_0/q4_0 scales and values in separate arrays (the GPU
 * layout) and packs q4_0 nibbles as value 2j | value 2j+1 << 4; GGUF wants
 * interleaved blocks (f16 d, then the values) with ggml's q4_0 nibble order
 * (byte j: value j low, value j+16 high). Q4_K is ggml's layout already.
 * scratch: cols bytes + cols / 16 bytes. Returns 0, or -1 for another type.
 */
static int quantize_row(uint32_t type, const float *x, uint64_t cols, void *out, void *scratch) {
    unsigned char *o = out, *qs = scratch;
    uint16_t *d = (uint16_t *)(void *)(qs + cols);
    uint64_t b, j;
    switch (type) {
    case LG_GGML_Q8_0:
        lg_quantize_q8_0(x, (size_t)cols, (int8_t *)qs, d);
        for (b = 0; b < cols / LG_QK; b++, o += 34) {
            o[0] = (unsigned char)d[b];
            o[1] = (unsigned char)(d[b] >> 8);
            memcpy(o + 2, qs + b * LG_QK, LG_QK);
        }
        return 0;
    case LG_GGML_Q4_0:
        lg_quantize_q4_0(x, (size_t)cols, qs, d);
        for (b = 0; b < cols / LG_QK; b++, o += 18) {
            const unsigned char *q = qs + b * (LG_QK / 2);
            o[0] = (unsigned char)d[b];
            o[1] = (unsigned char)(d[b] >> 8);
            for (j = 0; j < LG_QK / 2; j++) {
                unsigned lo = (q[j / 2] >> (4 * (j & 1))) & 15;
                unsigned hi = (q[(j + 16) / 2] >> (4 * ((j + 16) & 1))) & 15;
                o[2 + j] = (unsigned char)(lo | hi << 4);
            }
        }
        return 0;
    case LG_GGML_Q4_K:
        lg_quantize_q4_k(x, (size_t)cols, o);
        return 0;
    default:
        return -1;
    }
}

static uint32_t out_type(enum lg_gguf_wtype type, const struct lg_tensor_src *t,
                         enum lg_tensor_role r) {
    if (t->n_dims == 1)
        return LG_GGML_F32;
    if (type == LG_GGUF_W_F32 || type == LG_GGUF_W_F16)
        return (uint32_t)type;
    /* quantized files keep the embedding and the LM head in F16 (upload's choice) */
    if (r == LG_T_TOK_EMBD || r == LG_T_LM_HEAD)
        return LG_GGML_F16;
    return (uint32_t)type;
}

/* Llama 3 frequency factors (convert_hf_to_gguf LlamaModel, float32 freqs). */
static float llama3_factor(const struct lg_model_config *c, uint32_t i) {
    float freq = (float)(1.0 / pow(c->rope_theta, (double)(float)(2.0 * i) / c->head_dim));
    double orig = c->rope_orig_ctx, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
    double wavelen = 2 * M_PI / freq, smooth;
    if (wavelen < orig / hi)
        return 1.0f;
    if (wavelen > orig / lo)
        return c->rope_factor;
    smooth = (orig / wavelen - lo) / (hi - lo);
    return (float)(1 / ((1 - smooth) / c->rope_factor + smooth));
}

static void write_meta(struct w *w, const struct lg_checkpoint *c, enum lg_gguf_wtype type,
                       const char *arch, const char *name, const char *tok_json,
                       size_t tok_json_len, const char *tok_cfg, size_t tok_cfg_len,
                       const char *chat_template) {
    const struct lg_model_config *m = &c->cfg;
    uint32_t ftype;
    kv_str(w, "general.architecture", arch, strlen(arch));
    kv_str(w, "general.name", name, strlen(name));
    kv_u32(w, "general.alignment", W_ALIGN);
    /* llama.cpp's llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7,
     * MOSTLY_Q4_K_S 14 (every matrix Q4_K) */
    ftype = type == LG_GGUF_W_F32 ? 0 : type == LG_GGUF_W_F16 ? 1 : type == LG_GGUF_W_Q4_0 ? 2
            : type == LG_GGUF_W_Q8_0 ? 7 : 14;
    kv_u32(w, "general.file_type", ftype);
    kv_u32(w, "general.quantization_version", 2);
    kv_arch_u32(w, arch, "context_length", m->n_ctx_train);
    kv_arch_u32(w, arch, "embedding_length", m->n_embd);
    kv_arch_u32(w, arch, "block_count", m->n_layer);
    kv_arch_u32(w, arch, "feed_forward_length", m->n_ff);
    kv_arch_u32(w, arch, "attention.head_count", m->n_head);
    kv_arch_u32(w, arch, "attention.head_count_kv", m->n_kv_head);
    kv_arch_f32(w, arch, "attention.layer_norm_rms_epsilon", m->rms_norm_eps);
    kv_arch_f32(w, arch, "rope.freq_base", m->rope_theta);
    kv_arch_u32(w, arch, "rope.dimension_count", m->head_dim);
    kv_arch_u32(w, arch, "vocab_size", m->n_vocab);
    if (m->head_dim * m->n_head != m->n_embd) {
        kv_arch_u32(w, arch, "attention.key_length", m->head_dim);
        kv_arch_u32(w, arch, "attention.value_length", m->head_dim);
    }
    if (m->sliding_window)
        kv_arch_u32(w, arch, "attention.sliding_window", m->sliding_window);
    if (m->rope_scaling == LG_ROPE_SCALING_LINEAR) {
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        kv_str(w, key, "linear", 6);
        kv_arch_f32(w, arch, "rope.scaling.factor", m->rope_factor);
    } else if (m->rope_scaling == LG_ROPE_SCALING_LLAMA3) {
        kv_arch_u32(w, arch, "rope.scaling.original_context_length", m->rope_orig_ctx);
    }
    if (m->bos_id >= 0)
        kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)m->bos_id);
    if (m->n_eos)
        kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)m->eos_ids[0]);
    if (m->n_eos > 1) {
        uint32_t i;
        kv_key(w, "llmgpu.eos_token_ids", LG_GGUF_ARRAY);
        w_u32(w, LG_GGUF_I32);
        w_u64(w, m->n_eos);
        for (i = 0; i < m->n_eos; i++)
            w_u32(w, (uint32_t)m->eos_ids[i]);
    }
    if (tok_json)
        kv_str(w, "tokenizer.huggingface.json", tok_json, tok_json_len);
    if (tok_cfg)
        kv_str(w, "llmgpu.tokenizer_config", tok_cfg, tok_cfg_len);
    if (chat_template)
        kv_str(w, "tokenizer.chat_template", chat_template, strlen(chat_template));
}

static void write_infos(struct w *w, const struct wt *t, uint32_t n) {
    uint32_t i, d;
    for (i = 0; i < n; i++) {
        w_str(w, t[i].name, strlen(t[i].name));
        w_u32(w, t[i].n_dims);
        for (d = 0; d < t[i].n_dims; d++)
            w_u64(w, t[i].ne[d]);
        w_u32(w, t[i].type);
        w_u64(w, t[i].offset);
    }
}

enum llmgpu_status lg_gguf_write(const struct lg_alloc *a, const struct lg_log *log,
                                 const struct lg_checkpoint *c, enum lg_gguf_wtype type,
                                 const char *tok_json, size_t tok_json_len,
                                 const char *tok_cfg, size_t tok_cfg_len, const char *path) {
    const struct lg_model_config *m;
    const char *arch, *name, *slash;
    char *tmp = NULL, *chat_template = NULL;
    struct wt *tv = NULL;
    uint32_t n_t = 0, cap, r, l, i;
    uint64_t off = 0, row, max_cols = 0;
    struct w w;
    float *frow = NULL;
    void *orow = NULL, *scratch = NULL;
    enum llmgpu_status st = LLMGPU_OK;
    size_t plen;

    if (!c || !path || !path[0])
        return LLMGPU_ERR_INVALID_ARGUMENT;
    m = &c->cfg;
    if (type != LG_GGUF_W_F32 && type != LG_GGUF_W_F16 && type != LG_GGUF_W_Q8_0 &&
        type != LG_GGUF_W_Q4_0 && type != LG_GGUF_W_Q4_K) {
        lg_err(log, "%s: GGUF writer: unknown output type %d", path, (int)type);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    arch = m->arch == LG_ARCH_QWEN2 ? "qwen2" : "llama";
    slash = strrchr(c->dir, '/');
    name = slash && slash[1] ? slash + 1 : c->dir;

    /* the chat template travels as tokenizer.chat_template too (other readers use it) */
    if (tok_cfg) {
        cJSON *root = cJSON_ParseWithLength(tok_cfg, tok_cfg_len);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
        if (cJSON_IsString(ct) && ct->valuestring)
            chat_template = lg_strdup(a, ct->valuestring);
        cJSON_Delete(root);
    }

    cap = LG_T_COUNT * m->n_layer + 8;
    if (!(tv = lg_calloc(a, cap, sizeof *tv)))
        goto err_oom;
    for (r = 0; r < LG_T_COUNT; r++) {
        uint32_t nl = lg_arch_is_per_layer((enum lg_tensor_role)r) ? m->n_layer : 1;
        for (l = 0; l < nl; l++) {
            const struct lg_tensor_src *s = lg_ckpt_tensor(c, (enum lg_tensor_role)r, l);
            struct wt *t = &tv[n_t];
            uint32_t blck;
            if (!s)
                continue;
            lg_gguf_tensor_name(m, (enum lg_tensor_role)r, l, t->name, sizeof t->name);
            t->src = s;
            t->permute = m->arch != LG_ARCH_QWEN2 && (r == LG_T_WQ || r == LG_T_WK);
            t->type = out_type(type, s, (enum lg_tensor_role)r);
            t->n_dims = s->n_dims;
            t->ne[0] = s->n_dims == 2 ? s->shape[1] : s->shape[0];
            t->ne[1] = s->n_dims == 2 ? s->shape[0] : 1;
            blck = lg_ggml_block_size(t->type);
            if (t->type == LG_GGML_Q4_K && t->ne[0] % blck && t->ne[0] % LG_QK == 0) {
                /* as the load-time quantizer does: Q4_0 for rows not a multiple of 256 */
                t->type = LG_GGML_Q4_0;
                blck = LG_QK;
            }
            if (t->ne[0] % blck) { /* a row that cannot be blocked stays F16 */
                lg_warn(log, "%s: %s: row of %llu values is not a multiple of %u; written as F16",
                        path, t->name, (unsigned long long)t->ne[0], blck);
                t->type = LG_GGML_F16;
                blck = 1;
            }
            t->nbytes = t->ne[0] / blck * lg_ggml_type_size(t->type) * t->ne[1];
            t->offset = off;
            off = LG_ALIGN_UP(off + t->nbytes, W_ALIGN);
            max_cols = LG_MAX(max_cols, t->ne[0]);
            n_t++;
        }
    }
    if (m->rope_scaling == LG_ROPE_SCALING_LLAMA3) {
        struct wt *t = &tv[n_t++];
        snprintf(t->name, sizeof t->name, "rope_freqs.weight");
        t->type = LG_GGML_F32;
        t->n_dims = 1;
        t->ne[0] = m->head_dim / 2;
        t->ne[1] = 1;
        t->nbytes = 4ull * t->ne[0];
        t->offset = off;
        off = LG_ALIGN_UP(off + t->nbytes, W_ALIGN);
    }
    if (!(frow = lg_calloc(a, (size_t)max_cols, sizeof *frow)) ||
        !(orow = lg_calloc(a, (size_t)max_cols, 4)) ||
        !(scratch = lg_calloc(a, (size_t)max_cols / 4 + 16, 8))) /* 2 * max_cols bytes */
        goto err_oom;

    plen = strlen(path);
    if (!(tmp = lg_malloc(a, plen + 5)))
        goto err_oom;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    /* count the keys, then write */
    memset(&w, 0, sizeof w);
    write_meta(&w, c, type, arch, name, tok_json, tok_json_len, tok_cfg, tok_cfg_len,
               chat_template);
    {
        uint64_t n_kv = w.n_kv;
        memset(&w, 0, sizeof w);
        if (!(w.f = fopen(tmp, "wb"))) {
            lg_err(log, "%s: cannot create: %s", tmp, strerror(errno));
            st = LLMGPU_ERR_IO;
            goto out;
        }
        w_bytes(&w, "GGUF", 4);
        w_u32(&w, 3);
        w_u64(&w, n_t);
        w_u64(&w, n_kv);
    }
    write_meta(&w, c, type, arch, name, tok_json, tok_json_len, tok_cfg, tok_cfg_len,
               chat_template);
    write_infos(&w, tv, n_t);
    w_pad(&w);
    {
        uint64_t data0 = w.pos;
        for (i = 0; i < n_t && !w.err; i++) {
            const struct wt *t = &tv[i];
            size_t esz;
            if (w.pos - data0 != t->offset)
                w_pad(&w);
            LLMGPU_ASSERT(w.pos - data0 == t->offset);
            if (!t->src) { /* rope_freqs */
                uint32_t k;
                for (k = 0; k < t->ne[0]; k++)
                    frow[k] = llama3_factor(m, k);
                w_bytes(&w, frow, 4 * (size_t)t->ne[0]);
                continue;
            }
            esz = lg_dtype_size(t->src->dtype);
            for (row = 0; row < t->ne[1]; row++) {
                uint64_t src_row = t->permute ? lg_gguf_qk_hf_row(row, m->head_dim) : row;
                const char *p = (const char *)t->src->data + src_row * t->ne[0] * esz;
                size_t n = (size_t)t->ne[0];
                if (t->type == LG_GGML_F32) {
                    lg_convert_to_f32(t->src->dtype, p, frow, n);
                    w_bytes(&w, frow, 4 * n);
                } else if (t->type == LG_GGML_F16) {
                    if (lg_convert_to_f16(t->src->dtype, p, orow, n))
                        lg_warn(log, "%s: %s row %llu: values beyond f16 range became inf",
                                path, t->name, (unsigned long long)row);
                    w_bytes(&w, orow, 2 * n);
                } else {
                    lg_convert_to_f32(t->src->dtype, p, frow, n);
                    if (quantize_row(t->type, frow, n, orow, scratch) != 0) {
                        st = LLMGPU_ERR_UNSUPPORTED_MODEL;
                        goto out;
                    }
                    w_bytes(&w, orow, (size_t)(t->nbytes / t->ne[1]));
                }
            }
        }
    }
    if (!w.err && fflush(w.f) != 0)
        w.err = errno ? errno : EIO;
    if (w.err) {
        lg_err(log, "%s: write failed at byte %llu: %s", tmp, (unsigned long long)w.pos,
               strerror(w.err));
        st = LLMGPU_ERR_IO;
        goto out;
    }
    if (fclose(w.f) != 0) {
        w.f = NULL;
        lg_err(log, "%s: close failed: %s", tmp, strerror(errno));
        st = LLMGPU_ERR_IO;
        goto out;
    }
    w.f = NULL;
    if (rename(tmp, path) != 0) {
        lg_err(log, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        st = LLMGPU_ERR_IO;
        goto out;
    }
    lg_info(log, "%s: wrote GGUF v3, %u tensors, %llu bytes", path, n_t,
            (unsigned long long)w.pos);
    goto done;

err_oom:
    lg_err(log, "%s: out of host memory", path);
    st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    goto done;
out:
    if (w.f) {
        fclose(w.f);
        remove(tmp);
    } else if (st != LLMGPU_OK && tmp) {
        remove(tmp);
    }
done:
    lg_free(a, tmp);
    lg_free(a, frow);
    lg_free(a, orow);
    lg_free(a, scratch);
    lg_free(a, tv);
    lg_free(a, chat_template);
    return st;
}

/* ---- public entry point (llmgpu.h) ---- */

LLMGPU_API void llmgpu_quantize_params_init(struct llmgpu_quantize_params *p) {
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->weight_type = LLMGPU_WEIGHT_TYPE_DEFAULT;
    p->log_level = LLMGPU_LOG_LEVEL_WARN;
}

/* Read dir/name when it exists (NULL, 0 otherwise); IO errors other than absence fail. */
static enum llmgpu_status read_opt(const struct lg_alloc *a, const struct lg_log *log,
                                   const char *dir, const char *name, char **data, size_t *len) {
    char path[4096];
    FILE *f;
    *data = NULL;
    *len = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if (!(f = fopen(path, "rb")))
        return LLMGPU_OK;
    fclose(f);
    return lg_read_file(a, log, path, data, len);
}

LLMGPU_API enum llmgpu_status llmgpu_quantize(const char *in_dir, const char *out_path,
                                              const struct llmgpu_quantize_params *params) {
    struct llmgpu_quantize_params p;
    struct lg_alloc alloc;
    struct lg_log log;
    struct lg_checkpoint *c = NULL;
    enum lg_gguf_wtype type;
    enum llmgpu_status st;
    char *tj = NULL, *tc = NULL;
    size_t tjl = 0, tcl = 0;

    llmgpu_quantize_params_init(&p);
    if (params) {
        if (params->struct_size == 0)
            return LLMGPU_ERR_INVALID_ARGUMENT;
        memcpy(&p, params, LG_MIN(params->struct_size, (uint32_t)sizeof p));
        p.struct_size = sizeof p;
    }
    memset(&alloc, 0, sizeof alloc);
    if (p.allocator)
        alloc.user = *p.allocator;
    log.fn = p.log_fn;
    log.user = p.log_user;
    log.min = p.log_level;
    if (!in_dir || !out_path || !in_dir[0] || !out_path[0]) {
        lg_err(&log, "llmgpu_quantize: input directory and output path are required");
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    switch (p.weight_type) {
    case LLMGPU_WEIGHT_TYPE_F32: type = LG_GGUF_W_F32; break;
    case LLMGPU_WEIGHT_TYPE_DEFAULT:
    case LLMGPU_WEIGHT_TYPE_F16: type = LG_GGUF_W_F16; break;
    case LLMGPU_WEIGHT_TYPE_Q8_0: type = LG_GGUF_W_Q8_0; break;
    case LLMGPU_WEIGHT_TYPE_Q4_0: type = LG_GGUF_W_Q4_0; break;
    case LLMGPU_WEIGHT_TYPE_Q4_K: type = LG_GGUF_W_Q4_K; break;
    default:
        lg_err(&log, "llmgpu_quantize: weight type %d cannot be written (F32, F16, Q8_0, Q4_0, "
               "Q4_K)", (int)p.weight_type);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    if ((st = lg_ckpt_open(&alloc, &log, in_dir, &c)) != LLMGPU_OK)
        return st;
    if ((st = read_opt(&alloc, &log, in_dir, "tokenizer.json", &tj, &tjl)) != LLMGPU_OK ||
        (st = read_opt(&alloc, &log, in_dir, "tokenizer_config.json", &tc, &tcl)) != LLMGPU_OK)
        goto out;
    if (!tj)
        lg_warn(&log, "%s: no tokenizer.json; the GGUF file will have no tokenizer", in_dir);
    st = lg_gguf_write(&alloc, &log, c, type, tj, tjl, tc, tcl, out_path);
out:
    lg_free(&alloc, tj);
    lg_free(&alloc, tc);
    lg_ckpt_close(c);
    return st;
}
