/*
 * tok_gguf.c - an lg_tokenizer from GGUF metadata (tokenizer.ggml.* or an
 * embedded tokenizer.huggingface.json).
 *
 * The GGUF vocabulary is translated into the tokenizer.json /
 * tokenizer_config.json documents that transformers' converters would have
 * produced for the same model, and handed to lg_tok_load_ex: one encoder, one
 * set of semantics, and the parity of the HF path carries over. See
 * tok_gguf.h for what is read.
 *
 * Owns: the GGUF -> tokenizer.json translation, including the SentencePiece
 * merges derived from scores. Must not touch: the encoder/decoder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "tokenizer/tok_gguf.h"
#include "tokenizer/tok_internal.h"

#define SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's meta space */

/* Token types of llama.cpp's llama_token_type / gguf token_type. */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* Regexes of llama.cpp's pre-tokenizer types, as the Hugging Face files spell them. */
static const char llama3_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct vocab {
    uint64_t n;
    const char **s;   /* into the mapping */
    uint64_t *len;
    int32_t *type;
    float *score;
    int32_t *map;     /* open addressing over ids, -1 empty */
    uint64_t cap;
};

static int32_t vocab_get(const struct vocab *v, const char *s, uint64_t n) {
    uint64_t mask = v->cap - 1, h = lg_tok_hash(s, (size_t)n) & mask;
    while (v->map[h] >= 0) {
        int32_t id = v->map[h];
        if (v->len[id] == n && memcmp(v->s[id], s, (size_t)n) == 0)
            return id;
        h = (h + 1) & mask;
    }
    return -1;
}

static void vocab_free(const struct lg_alloc *a, struct vocab *v) {
    lg_free(a, v->s);
    lg_free(a, v->len);
    lg_free(a, v->type);
    lg_free(a, v->score);
    lg_free(a, v->map);
}

/* A NUL-terminated copy of token id (NUL bytes inside cannot be JSON keys here). */
static char *tok_str(const struct vocab *v, uint64_t id, char *buf, size_t size) {
    if (v->len[id] + 1 > size || memchr(v->s[id], 0, (size_t)v->len[id]))
        return NULL;
    memcpy(buf, v->s[id], (size_t)v->len[id]);
    buf[v->len[id]] = '\0';
    return buf;
}

struct merge {
    float score;
    int32_t id, l, r;
};

static int cmp_merge(const void *x, const void *y) {
    const struct merge *a = x, *b = y;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    if (a->l != b->l)
        return a->l < b->l ? -1 : 1;
    return (a->r > b->r) - (a->r < b->r);
}

static const struct lg_gguf_kv *str_arr(const struct lg_gguf *g, const char *key) {
    const struct lg_gguf_kv *kv = lg_gguf_find_kv(g, key);
    return kv && kv->type == LG_GGUF_ARRAY && kv->arr_type == LG_GGUF_STRING ? kv : NULL;
}

static const struct lg_gguf_kv *num_arr(const struct lg_gguf *g, const char *key) {
    const struct lg_gguf_kv *kv = lg_gguf_find_kv(g, key);
    return kv && kv->type == LG_GGUF_ARRAY && kv->arr_type != LG_GGUF_STRING ? kv : NULL;
}

static int get_flag(const struct lg_gguf *g, const char *key, int dflt) {
    int b;
    return lg_gguf_get_bool(lg_gguf_find_kv(g, key), &b) == 1 ? b : dflt;
}

static int32_t get_id(const struct lg_gguf *g, const char *key, uint64_t n) {
    uint64_t v;
    return lg_gguf_get_u64(lg_gguf_find_kv(g, key), &v) == 1 && v < n ? (int32_t)v : -1;
}

/* SentencePiece merges from scores (transformers' SentencePieceExtractor.extract). */
static enum llmgpu_status spm_merges(const struct lg_alloc *a, const struct vocab *v,
                                     cJSON *merges) {
    struct merge *m = NULL;
    uint64_t n = 0, cap = 0, id, k, i;
    char lb[1024], rb[1024];
    enum llmgpu_status st = LLMGPU_OK;
    for (id = 0; id < v->n; id++) {
        const char *s = v->s[id];
        for (k = 1; k < v->len[id]; k++) {
            int32_t l, r;
            if (((unsigned char)s[k] & 0xC0) == 0x80)
                continue; /* inside a character */
            if ((l = vocab_get(v, s, k)) < 0 || (r = vocab_get(v, s + k, v->len[id] - k)) < 0)
                continue;
            if (n == cap) {
                uint64_t nc = cap ? cap * 2 : 4096;
                struct merge *p = lg_realloc(a, m, (size_t)cap * sizeof *m, (size_t)nc * sizeof *m);
                if (!p) {
                    st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
                    goto out;
                }
                m = p;
                cap = nc;
            }
            m[n].score = v->score[id];
            m[n].id = (int32_t)id;
            m[n].l = l;
            m[n].r = r;
            n++;
        }
    }
    if (n)
        qsort(m, (size_t)n, sizeof *m, cmp_merge);
    for (i = 0; i < n; i++) {
        const char *ls = tok_str(v, (uint64_t)m[i].l, lb, sizeof lb);
        const char *rs = tok_str(v, (uint64_t)m[i].r, rb, sizeof rb);
        cJSON *pair;
        if (!ls || !rs)
            continue;
        pair = cJSON_CreateArray();
        if (!pair || !cJSON_AddItemToArray(merges, pair) ||
            !cJSON_AddItemToArray(pair, cJSON_CreateString(ls)) ||
            !cJSON_AddItemToArray(pair, cJSON_CreateString(rs))) {
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            goto out;
        }
    }
out:
    lg_free(a, m);
    return st;
}

static cJSON *obj_type(const char *type) {
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *replace(const char *pat, const char *content) {
    cJSON *o = obj_type("Replace"), *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "String", pat);
    cJSON_AddItemToObject(o, "pattern", p);
    cJSON_AddStringToObject(o, "content", content);
    return o;
}

static cJSON *bytelevel(int use_regex) {
    cJSON *o = obj_type("ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", 0);
    cJSON_AddBoolToObject(o, "trim_offsets", 0);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

static enum llmgpu_status from_ggml(const struct lg_alloc *a, const struct lg_log *log,
                                    const struct lg_gguf *g, uint32_t opts,
                                    struct lg_tokenizer **out) {
    const struct lg_gguf_kv *model_kv = lg_gguf_find_kv(g, "tokenizer.ggml.model");
    const struct lg_gguf_kv *toks = str_arr(g, "tokenizer.ggml.tokens");
    const struct lg_gguf_kv *types = num_arr(g, "tokenizer.ggml.token_type");
    const struct lg_gguf_kv *scores = num_arr(g, "tokenizer.ggml.scores");
    const struct lg_gguf_kv *mkv = str_arr(g, "tokenizer.ggml.merges");
    const struct lg_gguf_kv *pre_kv = lg_gguf_find_kv(g, "tokenizer.ggml.pre");
    const struct lg_gguf_kv *ct = lg_gguf_find_kv(g, "tokenizer.chat_template");
    struct vocab v;
    enum llmgpu_status st = LLMGPU_OK;
    cJSON *root = NULL, *cfg = NULL, *model, *vocab, *added, *merges, *x, *seq;
    char *json = NULL, *cfg_json = NULL, buf[1024];
    const char *pre = pre_kv && pre_kv->type == LG_GGUF_STRING ? pre_kv->str : "default";
    int spm, bos, eos, unk;
    uint64_t i;

    memset(&v, 0, sizeof v);
    if (!model_kv || model_kv->type != LG_GGUF_STRING) {
        lg_err(log, "%s: no tokenizer: tokenizer.ggml.model is %s", g->path,
               model_kv ? "not a string" : "missing");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (strcmp(model_kv->str, "llama") == 0)
        spm = 1;
    else if (strcmp(model_kv->str, "gpt2") == 0)
        spm = 0;
    else {
        lg_err(log, "%s: tokenizer.ggml.model \"%.60s\" is not supported (supported: llama, gpt2)",
               g->path, model_kv->str);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (!toks || toks->arr_n == 0 || toks->arr_n > LG_CFG_MAX_VOCAB) {
        lg_err(log, "%s: tokenizer.ggml.tokens is missing, empty, not a string array or longer "
               "than %u", g->path, LG_CFG_MAX_VOCAB);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if ((types && types->arr_n != toks->arr_n) || (scores && scores->arr_n != toks->arr_n)) {
        lg_err(log, "%s: tokenizer.ggml.token_type/scores have %llu/%llu entries for %llu tokens",
               g->path, (unsigned long long)(types ? types->arr_n : 0),
               (unsigned long long)(scores ? scores->arr_n : 0), (unsigned long long)toks->arr_n);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (!spm && !mkv) {
        lg_err(log, "%s: tokenizer.ggml.model gpt2 without tokenizer.ggml.merges", g->path);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    v.n = toks->arr_n;
    v.cap = 16;
    while (v.cap < 2 * v.n)
        v.cap <<= 1;
    v.s = lg_calloc(a, (size_t)v.n, sizeof *v.s);
    v.len = lg_calloc(a, (size_t)v.n, sizeof *v.len);
    v.type = lg_calloc(a, (size_t)v.n, sizeof *v.type);
    v.score = lg_calloc(a, (size_t)v.n, sizeof *v.score);
    v.map = lg_malloc(a, (size_t)v.cap * sizeof *v.map);
    if (!v.s || !v.len || !v.type || !v.score || !v.map)
        goto err_oom;
    memset(v.map, 0xFF, (size_t)v.cap * sizeof *v.map);
    lg_gguf_arr_strings(toks, v.s, v.len);
    for (i = 0; i < v.n; i++) {
        uint64_t h;
        v.type[i] = types ? (int32_t)lg_gguf_arr_i64(types, i) : TT_NORMAL;
        v.score[i] = scores ? (float)lg_gguf_arr_f64(scores, i) : -(float)i;
        if (vocab_get(&v, v.s[i], v.len[i]) >= 0)
            continue; /* a repeated string keeps its first id */
        h = lg_tok_hash(v.s[i], (size_t)v.len[i]) & (v.cap - 1);
        while (v.map[h] >= 0)
            h = (h + 1) & (v.cap - 1);
        v.map[h] = (int32_t)i;
    }
    bos = get_id(g, "tokenizer.ggml.bos_token_id", v.n);
    eos = get_id(g, "tokenizer.ggml.eos_token_id", v.n);
    unk = get_id(g, "tokenizer.ggml.unknown_token_id", v.n);
    if (unk < 0 && spm)
        for (i = 0; i < v.n && unk < 0; i++)
            if (v.type[i] == TT_UNKNOWN)
                unk = (int32_t)i;

    if (!(root = cJSON_CreateObject()) || !(cfg = cJSON_CreateObject()))
        goto err_oom;
    cJSON_AddStringToObject(root, "version", "1.0");
    added = cJSON_AddArrayToObject(root, "added_tokens");
    model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    vocab = cJSON_AddObjectToObject(model, "vocab");
    merges = cJSON_AddArrayToObject(model, "merges");
    if (!added || !model || !vocab || !merges)
        goto err_oom;
    for (i = 0; i < v.n; i++) {
        const char *s = tok_str(&v, i, buf, sizeof buf);
        if (!s || vocab_get(&v, v.s[i], v.len[i]) != (int32_t)i) {
            lg_dbg(log, "%s: token %llu is repeated, too long or holds NUL: skipped", g->path,
                   (unsigned long long)i);
            continue;
        }
        if (!cJSON_AddItemToObject(vocab, s, cJSON_CreateNumber((double)i)))
            goto err_oom;
        if (v.type[i] == TT_CONTROL || v.type[i] == TT_USER ||
            (v.type[i] == TT_UNKNOWN && spm)) {
            x = cJSON_CreateObject();
            if (!x || !cJSON_AddItemToArray(added, x))
                goto err_oom;
            cJSON_AddNumberToObject(x, "id", (double)i);
            cJSON_AddStringToObject(x, "content", s);
            cJSON_AddBoolToObject(x, "single_word", 0);
            cJSON_AddBoolToObject(x, "lstrip", 0);
            cJSON_AddBoolToObject(x, "rstrip", 0);
            cJSON_AddBoolToObject(x, "normalized", 0);
            cJSON_AddBoolToObject(x, "special", v.type[i] != TT_USER);
        }
    }
    if (spm) {
        int space_prefix = get_flag(g, "tokenizer.ggml.add_space_prefix", 1);
        if ((st = spm_merges(a, &v, merges)) != LLMGPU_OK)
            goto out;
        cJSON_AddBoolToObject(model, "byte_fallback", 1);
        cJSON_AddBoolToObject(model, "fuse_unk", 1);
        if (unk >= 0 && tok_str(&v, (uint64_t)unk, buf, sizeof buf))
            cJSON_AddStringToObject(model, "unk_token", buf);
        x = cJSON_AddObjectToObject(root, "normalizer");
        cJSON_AddStringToObject(x, "type", "Sequence");
        seq = cJSON_AddArrayToObject(x, "normalizers");
        if (space_prefix) {
            cJSON *p = obj_type("Prepend");
            cJSON_AddStringToObject(p, "prepend", SPACE);
            cJSON_AddItemToArray(seq, p);
        }
        cJSON_AddItemToArray(seq, replace(" ", SPACE));
        cJSON_AddNullToObject(root, "pre_tokenizer");
        x = cJSON_AddObjectToObject(root, "decoder");
        cJSON_AddStringToObject(x, "type", "Sequence");
        seq = cJSON_AddArrayToObject(x, "decoders");
        cJSON_AddItemToArray(seq, replace(SPACE, " "));
        cJSON_AddItemToArray(seq, obj_type("ByteFallback"));
        cJSON_AddItemToArray(seq, obj_type("Fuse"));
        if (space_prefix) {
            cJSON *p = obj_type("Strip");
            cJSON_AddStringToObject(p, "content", " ");
            cJSON_AddNumberToObject(p, "start", 1);
            cJSON_AddNumberToObject(p, "stop", 0);
            cJSON_AddItemToArray(seq, p);
        }
    } else {
        const char *re = NULL;
        int ignore_merges = 0, nfc = 0;
        const char **mp;
        uint64_t *ml;
        if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3")) {
            re = llama3_re;
            ignore_merges = 1;
        } else if (!strcmp(pre, "qwen2")) {
            re = qwen2_re;
            nfc = 1;
        } else if (strcmp(pre, "gpt2") && strcmp(pre, "default")) {
            lg_err(log, "%s: tokenizer.ggml.pre \"%.60s\" is not supported (supported: "
                   "llama-bpe, qwen2, gpt2, default)", g->path, pre);
            st = LLMGPU_ERR_BAD_TOKENIZER;
            goto out;
        }
        mp = lg_calloc(a, (size_t)mkv->arr_n + 1, sizeof *mp);
        ml = lg_calloc(a, (size_t)mkv->arr_n + 1, sizeof *ml);
        if (!mp || !ml) {
            lg_free(a, mp);
            lg_free(a, ml);
            goto err_oom;
        }
        lg_gguf_arr_strings(mkv, mp, ml);
        for (i = 0; i < mkv->arr_n; i++) {
            if (ml[i] + 1 > sizeof buf || memchr(mp[i], 0, (size_t)ml[i]))
                continue;
            memcpy(buf, mp[i], (size_t)ml[i]);
            buf[ml[i]] = '\0';
            if (!cJSON_AddItemToArray(merges, cJSON_CreateString(buf))) {
                lg_free(a, mp);
                lg_free(a, ml);
                goto err_oom;
            }
        }
        lg_free(a, mp);
        lg_free(a, ml);
        cJSON_AddBoolToObject(model, "ignore_merges", ignore_merges);
        if (nfc)
            cJSON_AddItemToObject(root, "normalizer", obj_type("NFC"));
        else
            cJSON_AddNullToObject(root, "normalizer");
        if (re) {
            cJSON *sp = obj_type("Split"), *pat = cJSON_CreateObject();
            x = cJSON_AddObjectToObject(root, "pre_tokenizer");
            cJSON_AddStringToObject(x, "type", "Sequence");
            seq = cJSON_AddArrayToObject(x, "pretokenizers");
            cJSON_AddStringToObject(pat, "Regex", re);
            cJSON_AddItemToObject(sp, "pattern", pat);
            cJSON_AddStringToObject(sp, "behavior", "Isolated");
            cJSON_AddBoolToObject(sp, "invert", 0);
            cJSON_AddItemToArray(seq, sp);
            cJSON_AddItemToArray(seq, bytelevel(0));
        } else {
            cJSON_AddItemToObject(root, "pre_tokenizer", bytelevel(1));
        }
        cJSON_AddItemToObject(root, "decoder", bytelevel(1));
    }
    cJSON_AddNullToObject(root, "post_processor");

    /* tokenizer_config.json: special ids and what encode() adds */
    if (bos >= 0 && tok_str(&v, (uint64_t)bos, buf, sizeof buf))
        cJSON_AddStringToObject(cfg, "bos_token", buf);
    if (eos >= 0 && tok_str(&v, (uint64_t)eos, buf, sizeof buf))
        cJSON_AddStringToObject(cfg, "eos_token", buf);
    if (spm) {
        /* transformers 5 rebuilds a LlamaTokenizer's pipeline (Metaspace, no normalizer); a
         * GGUF does not record "legacy": llama.cpp prepends the space to every text
         * fragment, also after special tokens, which is legacy's prepend_scheme "always" */
        cJSON_AddStringToObject(cfg, "tokenizer_class", "LlamaTokenizer");
        cJSON_AddBoolToObject(cfg, "legacy", 1);
        cJSON_AddBoolToObject(cfg, "add_prefix_space",
                              get_flag(g, "tokenizer.ggml.add_space_prefix", 1));
    }
    /* llama.cpp's defaults when the keys are absent: add BOS for "llama", not for "gpt2" */
    cJSON_AddBoolToObject(cfg, "add_bos_token", get_flag(g, "tokenizer.ggml.add_bos_token", spm));
    cJSON_AddBoolToObject(cfg, "add_eos_token", get_flag(g, "tokenizer.ggml.add_eos_token", 0));
    if (ct && ct->type == LG_GGUF_STRING)
        cJSON_AddStringToObject(cfg, "chat_template", ct->str);

    json = cJSON_PrintUnformatted(root);
    cfg_json = cJSON_PrintUnformatted(cfg);
    if (!json || !cfg_json)
        goto err_oom;
    {
        /* eos ids for generation: eos, then end-of-turn */
        char gen[96];
        int32_t eot = get_id(g, "tokenizer.ggml.eot_token_id", v.n);
        if (eos >= 0 && eot >= 0 && eot != eos)
            snprintf(gen, sizeof gen, "{\"eos_token_id\": [%d, %d]}", (int)eos, (int)eot);
        else if (eos >= 0 || eot >= 0)
            snprintf(gen, sizeof gen, "{\"eos_token_id\": %d}", (int)(eos >= 0 ? eos : eot));
        else
            snprintf(gen, sizeof gen, "{}");
        st = lg_tok_load_ex(a, log, json, strlen(json), cfg_json, strlen(cfg_json), gen,
                            strlen(gen), opts, out);
    }
    goto out;

err_oom:
    lg_err(log, "%s: out of host memory building the tokenizer", g->path);
    st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
out:
    cJSON_free(json);
    cJSON_free(cfg_json);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    vocab_free(a, &v);
    return st;
}

enum llmgpu_status lg_tok_load_gguf(const struct lg_alloc *a, const struct lg_log *log,
                                    const struct lg_gguf *g, uint32_t opts,
                                    struct lg_tokenizer **out) {
    const struct lg_gguf_kv *hf, *hc, *ids;
    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!g)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    hf = opts & LG_TOK_GGUF_IGNORE_HF ? NULL : lg_gguf_find_kv(g, "tokenizer.huggingface.json");
    opts &= ~LG_TOK_GGUF_IGNORE_HF;
    if (hf && hf->type == LG_GGUF_STRING) {
        char gen[512];
        size_t n = 0;
        uint64_t i;
        hc = lg_gguf_find_kv(g, "llmgpu.tokenizer_config");
        if (hc && hc->type != LG_GGUF_STRING)
            hc = NULL;
        /* generation eos ids: llmgpu.eos_token_ids, else tokenizer.ggml.eos_token_id */
        ids = num_arr(g, "llmgpu.eos_token_ids");
        n = (size_t)snprintf(gen, sizeof gen, "{\"eos_token_id\": [");
        if (ids) {
            for (i = 0; i < ids->arr_n && i < LG_MAX_EOS && n < sizeof gen - 32; i++)
                n += (size_t)snprintf(gen + n, sizeof gen - n, "%s%lld", i ? ", " : "",
                                      (long long)lg_gguf_arr_i64(ids, i));
        } else {
            uint64_t e;
            if (lg_gguf_get_u64(lg_gguf_find_kv(g, "tokenizer.ggml.eos_token_id"), &e) == 1 &&
                e < INT32_MAX)
                n += (size_t)snprintf(gen + n, sizeof gen - n, "%llu", (unsigned long long)e);
        }
        snprintf(gen + n, sizeof gen - n, "]}");
        return lg_tok_load_ex(a, log, hf->str, (size_t)hf->str_len, hc ? hc->str : NULL,
                              hc ? (size_t)hc->str_len : 0, gen, strlen(gen), opts, out);
    }
    return from_ggml(a, log, g, opts, out);
}
