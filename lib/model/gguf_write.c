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
 * Quantized output types (Q8_0, Q4_0, Q4_K, Q6_K) come from the CPU quantizers of
 * lib/model/quant.c (ggml block semantics), repacked into ggml's block
 * layouts by quantize_row(). The token embedding and the LM head stay F16 in
 * quantized files, as at load-time quantization.
 */
#include <errno.h>
#include <limits.h>
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
 * (byte j: value j low, value j+16 high). Q4_K and Q6_K are ggml's layouts already.
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
    case LG_GGML_Q6_K:
        lg_quantize_q6_k(x, (size_t)cols, o);
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

/* ---- tokenizer.ggml.* from tokenizer.json (what convert_hf_to_gguf writes) ---- */

struct gtok {
    int ok;                 /* converted */
    int spm;                /* "llama" (SentencePiece-style) else "gpt2" */
    const char *pre;
    uint32_t n;
    const char **tok;       /* n, NUL-terminated (into the cJSON tree or pads) */
    int32_t *type;
    float *score;
    uint32_t n_merges;
    const char **merge;     /* "l r" strings (owned when merge_owned[i]) */
    char **merge_owned;
    int32_t bos, eos, unk, pad;
    int add_bos, add_eos;
    char *pads;             /* "[PADi]" strings */
    cJSON *root, *cfg;
};

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 31);
}

/* id of string s in the open-addressing table map (cap a power of two), or -1 */
static int32_t map_get(const struct gtok *g, const int32_t *map, uint64_t cap, const char *s) {
    uint64_t h = str_hash(s) & (cap - 1);
    while (map[h] >= 0) {
        if (strcmp(g->tok[map[h]], s) == 0)
            return map[h];
        h = (h + 1) & (cap - 1);
    }
    return -1;
}

static const char *token_content(const cJSON *v) {
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void gtok_free(const struct lg_alloc *a, struct gtok *g) {
    uint32_t i;
    for (i = 0; g->merge_owned && i < g->n_merges; i++)
        lg_free(a, g->merge_owned[i]);
    lg_free(a, g->merge_owned);
    lg_free(a, g->merge);
    lg_free(a, g->tok);
    lg_free(a, g->type);
    lg_free(a, g->score);
    lg_free(a, g->pads);
    cJSON_Delete(g->root);
    cJSON_Delete(g->cfg);
    memset(g, 0, sizeof *g);
}

/* Convert; on any problem the file simply has no tokenizer.ggml.* (a warning). */
static void gtok_build(const struct lg_alloc *a, const struct lg_log *log, const char *path,
                       const char *json, size_t len, const char *cfg_json, size_t cfg_len,
                       struct gtok *g) {
    const cJSON *model, *vocab, *added, *merges, *e, *pre;
    char *pre_txt = NULL, *concat = NULL;
    int32_t *map = NULL, *rank = NULL;
    uint64_t cap = 16, h;
    int64_t maxid = -1;
    uint32_t i;
    const char *unk_s;

    memset(g, 0, sizeof *g);
    g->bos = g->eos = g->unk = g->pad = -1;
    if (!json || !(g->root = cJSON_ParseWithLength(json, len)))
        return;
    if (cfg_json)
        g->cfg = cJSON_ParseWithLength(cfg_json, cfg_len);
    model = cJSON_GetObjectItemCaseSensitive(g->root, "model");
    vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    added = cJSON_GetObjectItemCaseSensitive(g->root, "added_tokens");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        lg_warn(log, "%s: tokenizer.json is not a BPE model; no tokenizer.ggml.* written", path);
        goto fail;
    }
    cJSON_ArrayForEach(e, vocab) if (cJSON_IsNumber(e) && e->valuedouble >= 0 &&
                                     e->valuedouble < LG_CFG_MAX_VOCAB)
        maxid = LG_MAX(maxid, (int64_t)e->valuedouble);
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < LG_CFG_MAX_VOCAB)
            maxid = LG_MAX(maxid, (int64_t)id->valuedouble);
    }
    if (maxid < 0)
        goto fail;
    g->n = (uint32_t)maxid + 1;
    while (cap < 2ull * g->n)
        cap <<= 1;
    g->tok = lg_calloc(a, g->n, sizeof *g->tok);
    g->type = lg_calloc(a, g->n, sizeof *g->type);
    g->score = lg_calloc(a, g->n, sizeof *g->score);
    g->pads = lg_calloc(a, g->n, 16);
    map = lg_malloc(a, (size_t)cap * sizeof *map);
    rank = lg_malloc(a, (size_t)g->n * sizeof *rank);
    if (!g->tok || !g->type || !g->score || !g->pads || !map || !rank)
        goto fail;
    for (i = 0; i < g->n; i++) {
        snprintf(g->pads + 16 * (size_t)i, 16, "[PAD%u]", i);
        g->tok[i] = g->pads + 16 * (size_t)i;
        g->type[i] = 5; /* unused until seen */
        rank[i] = INT32_MAX;
    }
    cJSON_ArrayForEach(e, vocab) if (cJSON_IsNumber(e) && e->valuedouble >= 0 &&
                                     e->valuedouble < g->n) {
        g->tok[(uint32_t)e->valuedouble] = e->string;
        g->type[(uint32_t)e->valuedouble] = 1;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *c = token_content(e);
        if (c && cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < g->n) {
            i = (uint32_t)id->valuedouble;
            g->tok[i] = c;
            g->type[i] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? 3 : 4;
        }
    }
    memset(map, 0xFF, (size_t)cap * sizeof *map);
    for (i = 0; i < g->n; i++) {
        if (map_get(g, map, cap, g->tok[i]) >= 0)
            continue;
        h = str_hash(g->tok[i]) & (cap - 1);
        while (map[h] >= 0)
            h = (h + 1) & (cap - 1);
        map[h] = (int32_t)i;
    }
    pre = cJSON_GetObjectItemCaseSensitive(g->root, "pre_tokenizer");
    pre_txt = pre ? cJSON_PrintUnformatted(pre) : NULL;
    g->spm = !pre_txt || !strstr(pre_txt, "ByteLevel");
    unk_s = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(model, "unk_token"))
                ? cJSON_GetObjectItemCaseSensitive(model, "unk_token")->valuestring
                : NULL;
    if (unk_s)
        g->unk = map_get(g, map, cap, unk_s);
    if (g->unk >= 0)
        g->type[g->unk] = 2;
    g->n_merges = (uint32_t)cJSON_GetArraySize(merges);
    g->merge = lg_calloc(a, g->n_merges + 1, sizeof *g->merge);
    g->merge_owned = lg_calloc(a, g->n_merges + 1, sizeof *g->merge_owned);
    if (!g->merge || !g->merge_owned)
        goto fail;
    i = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *l = NULL, *r = NULL, *sp;
        size_t ll, lr;
        if (cJSON_IsString(e)) {
            g->merge[i] = e->valuestring;
            sp = strchr(e->valuestring, ' ');
            if (!sp)
                goto fail;
            l = e->valuestring;
            ll = (size_t)(sp - l);
            r = sp + 1;
        } else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            l = cJSON_GetArrayItem(e, 0)->valuestring;
            r = cJSON_GetArrayItem(e, 1)->valuestring;
            ll = strlen(l);
            if (!(g->merge_owned[i] = lg_malloc(a, ll + strlen(r) + 2)))
                goto fail;
            snprintf(g->merge_owned[i], ll + strlen(r) + 2, "%s %s", l, r);
            g->merge[i] = g->merge_owned[i];
        } else {
            goto fail;
        }
        if (g->spm) { /* rank of the piece l+r: the first merge producing it */
            int32_t id;
            lr = strlen(r);
            lg_free(a, concat);
            if (!(concat = lg_malloc(a, ll + lr + 1)))
                goto fail;
            memcpy(concat, l, ll);
            memcpy(concat + ll, r, lr + 1);
            id = map_get(g, map, cap, concat);
            if (id >= 0 && rank[id] == INT32_MAX)
                rank[id] = (int32_t)i;
        }
        i++;
    }
    for (i = 0; i < g->n; i++) {
        const char *t = g->tok[i];
        if (g->spm && g->type[i] == 1 && strlen(t) == 6 && !strncmp(t, "<0x", 3) && t[5] == '>')
            g->type[i] = 6;
        /* SentencePiece scores recovered from the merge ranks (see mkgguf.py) */
        g->score[i] = g->type[i] != 1 ? 0.0f
                      : rank[i] != INT32_MAX ? -(float)rank[i]
                                             : -(float)((double)g->n_merges + i);
    }
    if (g->spm) {
        g->pre = "default";
    } else {
        g->pre = strstr(pre_txt, "\\\\p{N}{1,3}") ? "llama-bpe"
                 : strstr(pre_txt, "\\\\p{N}|")   ? "qwen2"
                                                  : "default";
    }
    if (g->cfg) {
        const char *b = token_content(cJSON_GetObjectItemCaseSensitive(g->cfg, "bos_token"));
        const char *eo = token_content(cJSON_GetObjectItemCaseSensitive(g->cfg, "eos_token"));
        const char *pd = token_content(cJSON_GetObjectItemCaseSensitive(g->cfg, "pad_token"));
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(g->cfg, "add_bos_token");
        g->bos = b ? map_get(g, map, cap, b) : -1;
        g->eos = eo ? map_get(g, map, cap, eo) : -1;
        g->pad = pd ? map_get(g, map, cap, pd) : -1;
        if (cJSON_IsBool(ab)) {
            g->add_bos = cJSON_IsTrue(ab);
        } else { /* the post-processor's template */
            char *pp = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(g->root,
                                                                               "post_processor"));
            g->add_bos = g->bos >= 0 && pp && strstr(pp, "TemplateProcessing") &&
                         strstr(pp, g->tok[g->bos]);
            cJSON_free(pp);
        }
        g->add_eos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g->cfg, "add_eos_token"));
    }
    g->ok = 1;
    goto out;
fail:
    lg_warn(log, "%s: tokenizer.json could not be converted to tokenizer.ggml.* metadata (the "
            "file keeps tokenizer.huggingface.json)", path);
    gtok_free(a, g);
out:
    cJSON_free(pre_txt);
    lg_free(a, concat);
    lg_free(a, map);
    lg_free(a, rank);
}

static void kv_arr_hdr(struct w *w, const char *key, uint32_t etype, uint64_t n) {
    kv_key(w, key, LG_GGUF_ARRAY);
    w_u32(w, etype);
    w_u64(w, n);
}

static void gtok_write(struct w *w, const struct gtok *g) {
    uint32_t i;
    if (!g->ok)
        return;
    kv_str(w, "tokenizer.ggml.model", g->spm ? "llama" : "gpt2", g->spm ? 5 : 4);
    kv_str(w, "tokenizer.ggml.pre", g->pre, strlen(g->pre));
    kv_arr_hdr(w, "tokenizer.ggml.tokens", LG_GGUF_STRING, g->n);
    for (i = 0; i < g->n; i++)
        w_str(w, g->tok[i], strlen(g->tok[i]));
    kv_arr_hdr(w, "tokenizer.ggml.token_type", LG_GGUF_I32, g->n);
    for (i = 0; i < g->n; i++)
        w_u32(w, (uint32_t)g->type[i]);
    if (g->spm) {
        kv_arr_hdr(w, "tokenizer.ggml.scores", LG_GGUF_F32, g->n);
        for (i = 0; i < g->n; i++) {
            uint32_t b;
            memcpy(&b, &g->score[i], 4);
            w_u32(w, b);
        }
        kv_key(w, "tokenizer.ggml.add_space_prefix", LG_GGUF_BOOL);
        w_bytes(w, "\1", 1);
    } else {
        kv_arr_hdr(w, "tokenizer.ggml.merges", LG_GGUF_STRING, g->n_merges);
        for (i = 0; i < g->n_merges; i++)
            w_str(w, g->merge[i], strlen(g->merge[i]));
    }
    if (g->unk >= 0)
        kv_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)g->unk);
    if (g->pad >= 0)
        kv_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)g->pad);
    kv_key(w, "tokenizer.ggml.add_bos_token", LG_GGUF_BOOL);
    w_bytes(w, g->add_bos ? "\1" : "\0", 1);
    kv_key(w, "tokenizer.ggml.add_eos_token", LG_GGUF_BOOL);
    w_bytes(w, g->add_eos ? "\1" : "\0", 1);
}

static void write_meta(struct w *w, const struct lg_checkpoint *c, enum lg_gguf_wtype type,
                       const char *arch, const char *name, const char *tok_json,
                       size_t tok_json_len, const char *tok_cfg, size_t tok_cfg_len,
                       const char *chat_template, const struct gtok *gt) {
    const struct lg_model_config *m = &c->cfg;
    uint32_t ftype;
    kv_str(w, "general.architecture", arch, strlen(arch));
    kv_str(w, "general.name", name, strlen(name));
    kv_u32(w, "general.alignment", W_ALIGN);
    /* llama.cpp's llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7,
     * MOSTLY_Q4_K_S 14 (every matrix Q4_K), MOSTLY_Q6_K 18 */
    ftype = type == LG_GGUF_W_F32 ? 0 : type == LG_GGUF_W_F16 ? 1 : type == LG_GGUF_W_Q4_0 ? 2
            : type == LG_GGUF_W_Q8_0 ? 7 : type == LG_GGUF_W_Q6_K ? 18 : 14;
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
    /* the tokenizer's own bos/eos (tokenizer_config.json) when known, else config.json's */
    if (gt->ok && gt->bos >= 0)
        kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)gt->bos);
    else if (m->bos_id >= 0)
        kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)m->bos_id);
    if (gt->ok && gt->eos >= 0)
        kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)gt->eos);
    else if (m->n_eos)
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
    gtok_write(w, gt);
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
    struct gtok gt;
    enum llmgpu_status st = LLMGPU_OK;
    size_t plen;

    if (!c || !path || !path[0])
        return LLMGPU_ERR_INVALID_ARGUMENT;
    m = &c->cfg;
    if (type != LG_GGUF_W_F32 && type != LG_GGUF_W_F16 && type != LG_GGUF_W_Q8_0 &&
        type != LG_GGUF_W_Q4_0 && type != LG_GGUF_W_Q4_K && type != LG_GGUF_W_Q6_K) {
        lg_err(log, "%s: GGUF writer: unknown output type %d", path, (int)type);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    arch = m->arch == LG_ARCH_QWEN2 ? "qwen2" : "llama";
    slash = strrchr(c->dir, '/');
    name = slash && slash[1] ? slash + 1 : c->dir;

    /* the tokenizer as llama.cpp-style readers expect it, beside tokenizer.huggingface.json */
    gtok_build(a, log, path, tok_json, tok_json_len, tok_cfg, tok_cfg_len, &gt);
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
            if (t->type == LG_GGML_Q6_K && t->ne[0] % blck && t->ne[0] % LG_QK == 0) {
                t->type = LG_GGML_Q8_0; /* and Q8_0 for Q6_K, as at load */
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
               chat_template, &gt);
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
               chat_template, &gt);
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
    gtok_free(a, &gt);
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
    case LLMGPU_WEIGHT_TYPE_Q6_K: type = LG_GGUF_W_Q6_K; break;
    default:
        lg_err(&log, "llmgpu_quantize: weight type %d cannot be written (F32, F16, Q8_0, Q4_0, "
               "Q4_K, Q6_K)", (int)p.weight_type);
        return LLMGPU_ERR_INVALID_ARGUMENT;
    }
    if ((st = lg_ckpt_open(&alloc, &log, in_dir, &c)) != LLMGPU_OK)
        return st;
    if (c->quant.method != LG_QUANT_NONE) {
        lg_err(&log, "%s: a %s checkpoint cannot be converted to GGUF (load it directly)", in_dir,
               lg_quant_method_name(c->quant.method));
        st = LLMGPU_ERR_UNSUPPORTED_MODEL;
        goto out;
    }
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
