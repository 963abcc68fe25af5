/*
 * tok_load.c - builds a struct lg_tokenizer from tokenizer.json, tokenizer_config.json and
 * generation_config.json (all parsed with cJSON; a malformed or unsupported file is
 * LLMGPU_ERR_BAD_TOKENIZER with a log line naming the part). Owns the tokenizer's
 * lifetime (load/free) and the small accessors; encoding is tok_encode.c, decoding
 * tok_decode.c.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define LG_TOK_MAX_ID (1 << 24)
#define SP_MARK "\xE2\x96\x81" /* U+2581 */

struct vocab_ent {
    const char *s;
    size_t len;
    int32_t id;
};

/* ---- PCRE2 through the caller's allocator ---- */
static void *pcre_alloc(size_t size, void *data) {
    return lg_malloc(data, size);
}
static void pcre_free(void *p, void *data) {
    lg_free(data, p);
}

/* Oniguruma's Unicode \s (what the tokenizers crate's regexes use) is 0009-000D, 0085 and
 * the Z categories; PCRE2's UCP \s also has U+180E. Rewrite \s and \S to the exact set. */
#define ONIG_SPACE "\\t-\\r\\x{85}\\p{Z}"
static void onig_spaces(const char *pat, size_t len, struct lg_tok_buf *out) {
    size_t i;
    int in_class = 0;
    for (i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char d = pat[++i];
            if (d == 's')
                lg_tok_buf_put(out, in_class ? ONIG_SPACE : "[" ONIG_SPACE "]",
                               strlen(ONIG_SPACE) + (in_class ? 0 : 2));
            else if (d == 'S' && !in_class)
                lg_tok_buf_put(out, "[^" ONIG_SPACE "]", strlen(ONIG_SPACE) + 3);
            else {
                lg_tok_buf_putc(out, c);
                lg_tok_buf_putc(out, d);
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            lg_tok_buf_putc(out, c);
            if (i + 1 < len && pat[i + 1] == '^')
                lg_tok_buf_putc(out, pat[++i]);
            if (i + 1 < len && pat[i + 1] == ']') /* a leading ] is literal */
                lg_tok_buf_putc(out, pat[++i]);
            continue;
        }
        if (c == ']' && in_class)
            in_class = 0;
        lg_tok_buf_putc(out, c);
    }
}

/* NULL on failure with *st set (BAD_TOKENIZER, logged, or OUT_OF_HOST_MEMORY). */
static pcre2_code *compile_re(struct lg_tokenizer *t, const char *pat, size_t len, const char *what,
                              enum llmgpu_status *st) {
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_compile_context *cc;
    pcre2_code *re;
    struct lg_tok_buf b;
    *st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    lg_tok_buf_init(&b, t->a);
    onig_spaces(pat, len, &b);
    if (b.oom || !(cc = pcre2_compile_context_create(t->gctx))) {
        lg_tok_buf_free(&b);
        return NULL;
    }
    /* No PCRE2_NO_UTF_CHECK: the pattern is a tokenizer.json string and may hold invalid
     * UTF-8, on which PCRE2 would read out of bounds; checked, it is compile error. */
    re = pcre2_compile((PCRE2_SPTR)(b.p ? b.p : ""), b.len, PCRE2_UTF | PCRE2_UCP, &err, &off,
                       cc);
    pcre2_compile_context_free(cc);
    lg_tok_buf_free(&b);
    if (!re && err == 121) /* PCRE2 compile error 21: failed to get memory */
        return NULL;
    if (!re) {
        PCRE2_UCHAR msg[160];
        *st = LLMGPU_ERR_BAD_TOKENIZER;
        pcre2_get_error_message(err, msg, sizeof msg);
        lg_err(&t->log, "tokenizer.json: %s: cannot compile regex at offset %zu: %s", what,
               (size_t)off, (const char *)msg);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    return re;
}

/* ---- JSON helpers ---- */
static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* 1/0 for a JSON boolean, def when absent or null. */
static int jbool(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsTrue(v))
        return 1;
    if (cJSON_IsFalse(v))
        return 0;
    return def;
}

static int jint(const cJSON *v, int64_t lo, int64_t hi, int64_t *out) {
    double d;
    if (!cJSON_IsNumber(v))
        return -1;
    d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

/* A special-token entry of tokenizer_config.json: "text" or {"content": "text", ...}. */
static const char *token_content(const cJSON *v) {
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsObject(v))
        return jstr(v, "content");
    return NULL;
}

/* A string pattern {"String": s} or {"Regex": r}: returns s or r, *is_re set. */
static const char *pattern_of(const cJSON *o, int *is_re) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *s;
    if (!cJSON_IsObject(p))
        return NULL;
    if ((s = jstr(p, "String"))) {
        *is_re = 0;
        return s;
    }
    if ((s = jstr(p, "Regex"))) {
        *is_re = 1;
        return s;
    }
    return NULL;
}

static char *dupstr(struct lg_tokenizer *t, const char *s, size_t *len) {
    *len = strlen(s);
    return lg_strndup(t->a, s, *len);
}

static enum lg_prepend_scheme prepend_scheme(const cJSON *o) {
    const char *s = jstr(o, "prepend_scheme");
    if (s && !strcmp(s, "first"))
        return LG_PREPEND_FIRST;
    if (s && !strcmp(s, "never"))
        return LG_PREPEND_NEVER;
    if (s)
        return LG_PREPEND_ALWAYS;
    return jbool(o, "add_prefix_space", 1) ? LG_PREPEND_ALWAYS : LG_PREPEND_NEVER;
}

/* ---- vocabulary maps ---- */
int32_t lg_tok_vocab_get(const struct lg_tokenizer *t, const char *s, size_t n) {
    size_t mask = t->vmap_cap - 1, i = (size_t)lg_tok_hash(s, n) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t id = t->vmap[i];
        if (id < 0)
            return -1;
        if (t->vtok_len[id] == n && !memcmp(t->text_pool + t->vtok_off[id], s, n))
            return id;
    }
}

int32_t lg_tok_added_get(const struct lg_tokenizer *t, const char *s, size_t n) {
    size_t mask, i;
    if (!t->amap_cap)
        return -1;
    mask = t->amap_cap - 1;
    for (i = (size_t)lg_tok_hash(s, n) & mask;; i = (i + 1) & mask) {
        int32_t k = t->amap[i];
        if (k < 0)
            return -1;
        if (t->added[k].len == n && !memcmp(t->added[k].content, s, n))
            return k;
    }
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

/* ---- model ---- */
static enum llmgpu_status load_vocab(struct lg_tokenizer *t, const cJSON *model,
                                     const cJSON *added_tokens) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *e;
    int64_t maxid = -1, v;
    size_t pool = 0, i, nv = 0;
    if (!cJSON_IsObject(vocab)) {
        lg_err(&t->log, "tokenizer.json: model.vocab missing or not an object");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    cJSON_ArrayForEach(e, vocab) {
        if (jint(e, 0, LG_TOK_MAX_ID - 1, &v)) {
            lg_err(&t->log,
                   "tokenizer.json: model.vocab[\"%.40s\"]: id is not an integer in [0, %d)",
                   e->string ? e->string : "", LG_TOK_MAX_ID);
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        maxid = LG_MAX(maxid, v);
        pool += strlen(e->string) + 1;
        nv++;
    }
    cJSON_ArrayForEach(e, added_tokens) {
        const char *c = jstr(e, "content");
        if (!c || jint(cJSON_GetObjectItemCaseSensitive(e, "id"), 0, LG_TOK_MAX_ID - 1, &v)) {
            lg_err(&t->log, "tokenizer.json: added_tokens: entry without content or valid id");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        maxid = LG_MAX(maxid, v);
        pool += strlen(c) + 1;
    }
    if (maxid < 0) {
        lg_err(&t->log, "tokenizer.json: empty vocabulary");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (pool >= UINT32_MAX / 2) { /* offsets are 32-bit */
        lg_err(&t->log, "tokenizer.json: vocabulary strings too large (%zu bytes)", pool);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    t->n_vocab = (uint32_t)maxid + 1;
    t->tok_off = lg_malloc(t->a, t->n_vocab * sizeof *t->tok_off);
    t->tok_len = lg_calloc(t->a, t->n_vocab, sizeof *t->tok_len);
    t->vtok_off = lg_malloc(t->a, t->n_vocab * sizeof *t->vtok_off);
    t->vtok_len = lg_calloc(t->a, t->n_vocab, sizeof *t->vtok_len);
    t->is_special = lg_calloc(t->a, t->n_vocab, 1);
    t->text_pool = lg_malloc(t->a, pool + 1);
    t->vmap_cap = pow2_at_least(nv * 2 + 1);
    t->vmap = lg_malloc(t->a, t->vmap_cap * sizeof *t->vmap);
    if (!t->tok_off || !t->tok_len || !t->vtok_off || !t->vtok_len || !t->is_special ||
        !t->text_pool || !t->vmap)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    memset(t->tok_off, 0xFF, t->n_vocab * sizeof *t->tok_off);
    memset(t->vtok_off, 0xFF, t->n_vocab * sizeof *t->vtok_off);
    memset(t->vmap, 0xFF, t->vmap_cap * sizeof *t->vmap);
    cJSON_ArrayForEach(e, vocab) {
        size_t n = strlen(e->string), mask = t->vmap_cap - 1, h;
        int32_t id = (int32_t)e->valuedouble;
        if (t->vtok_off[id] != UINT32_MAX) {
            lg_err(&t->log, "tokenizer.json: model.vocab: id %d used twice", id);
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        memcpy(t->text_pool + t->text_pool_len, e->string, n + 1);
        t->vtok_off[id] = t->tok_off[id] = (uint32_t)t->text_pool_len;
        t->vtok_len[id] = t->tok_len[id] = (uint32_t)n;
        t->text_pool_len += n + 1;
        for (h = (size_t)lg_tok_hash(e->string, n) & mask; t->vmap[h] >= 0; h = (h + 1) & mask)
            ;
        t->vmap[h] = id;
    }
    for (i = 0; i < LG_ARRAY_LEN(t->char_id); i++) {
        char u[3];
        size_t n = 0;
        if (i < 0x80) {
            u[n++] = (char)i;
        } else {
            u[n++] = (char)(0xC0 | (i >> 6));
            u[n++] = (char)(0x80 | (i & 0x3F));
        }
        t->char_id[i] = lg_tok_vocab_get(t, u, n);
    }
    t->sp_id = lg_tok_vocab_get(t, SP_MARK, 3);
    for (i = 0; i < 256; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", (unsigned)i);
        t->byte_id[i] = lg_tok_vocab_get(t, name, 6);
    }
    return LLMGPU_OK;
}

static int merge_insert(struct lg_tokenizer *t, int32_t l, int32_t r, uint32_t rank, int32_t id) {
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    size_t mask = t->merges_cap - 1;
    size_t h = (size_t)lg_tok_hash64(key) & mask;
    for (; t->merges[h].key && t->merges[h].key != key; h = (h + 1) & mask)
        ;
    t->merges[h].key = key; /* a repeated pair keeps its last rank, as a Rust HashMap collect */
    t->merges[h].rank = rank;
    t->merges[h].id = id;
    return 0;
}

static enum llmgpu_status load_merges(struct lg_tokenizer *t, const cJSON *model) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *m;
    size_t n, rank = 0;
    struct lg_tok_buf cat;
    enum llmgpu_status st = LLMGPU_OK;
    if (!merges || cJSON_IsNull(merges))
        n = 0;
    else if (!cJSON_IsArray(merges)) {
        lg_err(&t->log, "tokenizer.json: model.merges is not an array");
        return LLMGPU_ERR_BAD_TOKENIZER;
    } else
        n = (size_t)cJSON_GetArraySize(merges);
    t->merges_cap = pow2_at_least(n * 2 + 1);
    t->merges = lg_calloc(t->a, t->merges_cap, sizeof *t->merges);
    t->merge_side = lg_calloc(t->a, t->n_vocab, 1);
    if (!t->merges || !t->merge_side)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    lg_tok_buf_init(&cat, t->a);
    cJSON_ArrayForEach(m, merges) {
        const char *ls, *rs, *sp;
        size_t ll, rl;
        int32_t l, r, id;
        if (cJSON_IsString(m)) {
            ls = m->valuestring;
            sp = strchr(ls, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                lg_err(&t->log,
                       "tokenizer.json: model.merges[%zu] \"%.40s\" is not two tokens "
                       "separated by one space",
                       rank, ls);
                st = LLMGPU_ERR_BAD_TOKENIZER;
                goto out;
            }
            ll = (size_t)(sp - ls);
            rs = sp + 1;
            rl = strlen(rs);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            ls = cJSON_GetArrayItem(m, 0)->valuestring;
            rs = cJSON_GetArrayItem(m, 1)->valuestring;
            ll = strlen(ls);
            rl = strlen(rs);
        } else {
            lg_err(&t->log,
                   "tokenizer.json: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", rank);
            st = LLMGPU_ERR_BAD_TOKENIZER;
            goto out;
        }
        l = lg_tok_vocab_get(t, ls, ll);
        r = lg_tok_vocab_get(t, rs, rl);
        cat.len = 0;
        lg_tok_buf_put(&cat, ls, ll);
        lg_tok_buf_put(&cat, rs, rl);
        if (cat.oom) {
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            goto out;
        }
        id = lg_tok_vocab_get(t, cat.p ? cat.p : "", cat.len);
        if (l < 0 || r < 0 || id < 0) {
            lg_err(&t->log,
                   "tokenizer.json: model.merges[%zu] (\"%.40s\" + \"%.40s\"): %s not in "
                   "the vocabulary",
                   rank, ls, rs, id < 0 && l >= 0 && r >= 0 ? "result" : "token");
            st = LLMGPU_ERR_BAD_TOKENIZER;
            goto out;
        }
        merge_insert(t, l, r, (uint32_t)rank, id);
        t->merge_side[l] |= 1;
        t->merge_side[r] |= 2;
        rank++;
    }
out:
    lg_tok_buf_free(&cat);
    return st;
}

/* Whether no vocabulary string contains a character other than U+2581 followed by U+2581.
 * Then no merge can join a word to a following "▁...", and BPE on a whole SentencePiece
 * text equals BPE on its pieces cut before each run of U+2581 (an exact speed-up). */
static int sp_split_safe(const struct lg_tokenizer *t) {
    uint32_t id;
    for (id = 0; id < t->n_vocab; id++) {
        const char *s = t->text_pool + t->vtok_off[id], *p;
        size_t n = t->vtok_len[id];
        if (t->vtok_off[id] == UINT32_MAX)
            continue;
        for (p = s; (p = memmem(p, n - (size_t)(p - s), SP_MARK, 3)) != NULL; p += 3)
            if (p > s && !(p - s >= 3 && !memcmp(p - 3, SP_MARK, 3)))
                return 0;
    }
    return 1;
}

static enum llmgpu_status load_model(struct lg_tokenizer *t, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const char *type, *s;
    enum llmgpu_status st;
    if (!cJSON_IsObject(model)) {
        lg_err(&t->log, "tokenizer.json: no \"model\" object");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    type = jstr(model, "type");
    if (type ? strcmp(type, "BPE") != 0 : !cJSON_GetObjectItemCaseSensitive(model, "merges")) {
        lg_err(&t->log, "tokenizer.json: model type \"%s\" is not supported (only BPE)",
               type ? type : "(untagged)");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added)) {
        lg_err(&t->log, "tokenizer.json: added_tokens is not an array");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (!cJSON_IsArray(added))
        added = NULL;
    if ((st = load_vocab(t, model, added)))
        return st;
    if ((st = load_merges(t, model)))
        return st;
    {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(model, "dropout");
        if (cJSON_IsNumber(d) && d->valuedouble != 0.0) {
            lg_err(&t->log, "tokenizer.json: BPE dropout is not supported");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
    }
    if (((s = jstr(model, "continuing_subword_prefix")) && *s) ||
        ((s = jstr(model, "end_of_word_suffix")) && *s)) {
        lg_err(&t->log,
               "tokenizer.json: BPE continuing_subword_prefix/end_of_word_suffix \"%s\" "
               "is not supported",
               s);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    t->sp_split = sp_split_safe(t);
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->unk_id = -1;
    if ((s = jstr(model, "unk_token"))) {
        t->unk_id = lg_tok_vocab_get(t, s, strlen(s));
        if (t->unk_id < 0)
            lg_warn(&t->log, "tokenizer.json: unk_token \"%.40s\" is not in the vocabulary", s);
    }
    return LLMGPU_OK;
}

/* ---- normalizer ---- */
static enum llmgpu_status load_norm(struct lg_tokenizer *t, const cJSON *n, int depth) {
    enum llmgpu_status st = LLMGPU_OK;
    const char *type;
    struct lg_norm *x;
    if (!n || cJSON_IsNull(n))
        return LLMGPU_OK;
    type = cJSON_IsObject(n) ? jstr(n, "type") : NULL;
    if (!type) {
        lg_err(&t->log, "tokenizer.json: normalizer without a type");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *e;
        if (!cJSON_IsArray(list) || depth > 4) {
            lg_err(&t->log, "tokenizer.json: normalizer Sequence without a normalizers list");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        cJSON_ArrayForEach(e, list) {
            if ((st = load_norm(t, e, depth + 1)))
                return st;
        }
        return LLMGPU_OK;
    }
    if (t->n_norm >= LG_TOK_MAX_NORM) {
        lg_err(&t->log, "tokenizer.json: more than %d normalizers", LG_TOK_MAX_NORM);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    x = &t->norm[t->n_norm];
    memset(x, 0, sizeof *x);
    t->n_norm++; /* counted at once so that lg_tok_free() sees a half-built entry */
    if (!strcmp(type, "NFC"))
        x->kind = LG_NORM_NFC;
    else if (!strcmp(type, "NFD"))
        x->kind = LG_NORM_NFD;
    else if (!strcmp(type, "NFKC"))
        x->kind = LG_NORM_NFKC;
    else if (!strcmp(type, "NFKD"))
        x->kind = LG_NORM_NFKD;
    else if (!strcmp(type, "Lowercase"))
        x->kind = LG_NORM_LOWERCASE;
    else if (!strcmp(type, "Strip")) {
        x->kind = LG_NORM_STRIP;
        x->left = jbool(n, "strip_left", 0);
        x->right = jbool(n, "strip_right", 0);
    } else if (!strcmp(type, "Prepend")) {
        const char *p = jstr(n, "prepend");
        x->kind = LG_NORM_PREPEND;
        if (!p) {
            lg_err(&t->log, "tokenizer.json: normalizer Prepend without prepend");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        if (!(x->s1 = dupstr(t, p, &x->s1_len)))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    } else if (!strcmp(type, "Replace")) {
        int is_re = 0;
        const char *p = pattern_of(n, &is_re), *c = jstr(n, "content");
        x->kind = LG_NORM_REPLACE;
        if (!p || !c) {
            lg_err(&t->log, "tokenizer.json: normalizer Replace without pattern/content");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        if (!(x->s1 = dupstr(t, p, &x->s1_len)) || !(x->s2 = dupstr(t, c, &x->s2_len)))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        if (is_re && !(x->re = compile_re(t, p, x->s1_len, "normalizer Replace", &st)))
            return st;
    } else {
        lg_err(&t->log, "tokenizer.json: normalizer \"%s\" is not supported", type);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    return LLMGPU_OK;
}

/* ---- pre-tokenizer ---- */
static enum llmgpu_status load_pre(struct lg_tokenizer *t, const cJSON *n, int depth) {
    enum llmgpu_status st = LLMGPU_OK;
    const char *type;
    struct lg_pre *x;
    if (!n || cJSON_IsNull(n))
        return LLMGPU_OK;
    type = cJSON_IsObject(n) ? jstr(n, "type") : NULL;
    if (!type) {
        lg_err(&t->log, "tokenizer.json: pre_tokenizer without a type");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "pretokenizers"), *e;
        if (!cJSON_IsArray(list) || depth > 4) {
            lg_err(&t->log, "tokenizer.json: pre_tokenizer Sequence without a pretokenizers list");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        cJSON_ArrayForEach(e, list) {
            if ((st = load_pre(t, e, depth + 1)))
                return st;
        }
        return LLMGPU_OK;
    }
    if (t->n_pre >= LG_TOK_MAX_PRE) {
        lg_err(&t->log, "tokenizer.json: more than %d pre-tokenizers", LG_TOK_MAX_PRE);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    x = &t->pre[t->n_pre];
    memset(x, 0, sizeof *x);
    t->n_pre++; /* counted at once so that lg_tok_free() sees a half-built entry */
    if (!strcmp(type, "Split")) {
        int is_re = 0;
        const char *p = pattern_of(n, &is_re), *b = jstr(n, "behavior");
        x->kind = LG_PRE_SPLIT;
        if (!p || !b) {
            lg_err(&t->log, "tokenizer.json: pre_tokenizer Split without pattern/behavior");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        if (!strcmp(b, "Removed"))
            x->behavior = LG_SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated"))
            x->behavior = LG_SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious"))
            x->behavior = LG_SPLIT_MERGED_WITH_PREVIOUS;
        else if (!strcmp(b, "MergedWithNext"))
            x->behavior = LG_SPLIT_MERGED_WITH_NEXT;
        else if (!strcmp(b, "Contiguous"))
            x->behavior = LG_SPLIT_CONTIGUOUS;
        else {
            lg_err(&t->log, "tokenizer.json: pre_tokenizer Split behavior \"%s\" is not supported",
                   b);
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        x->invert = jbool(n, "invert", 0);
        if (!(x->s1 = dupstr(t, p, &x->s1_len)))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        if (is_re && !(x->re = compile_re(t, p, x->s1_len, "pre_tokenizer Split", &st)))
            return st;
        if (!is_re && x->s1_len == 0) {
            lg_err(&t->log, "tokenizer.json: pre_tokenizer Split with an empty pattern");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
    } else if (!strcmp(type, "ByteLevel")) {
        static const char gpt2[] =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
            "\\s+(?!\\S)|\\s+";
        x->kind = LG_PRE_BYTELEVEL;
        x->add_prefix_space = jbool(n, "add_prefix_space", 1);
        x->use_regex = jbool(n, "use_regex", 1);
        if (x->use_regex && !(x->re = compile_re(t, gpt2, sizeof gpt2 - 1, "ByteLevel", &st)))
            return st;
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(n, "replacement");
        x->kind = LG_PRE_METASPACE;
        if (!r || !*r) {
            lg_err(&t->log, "tokenizer.json: pre_tokenizer Metaspace without replacement");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        if (!(x->s1 = dupstr(t, r, &x->s1_len)))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        x->prepend = prepend_scheme(n);
        x->split = jbool(n, "split", 1);
    } else if (!strcmp(type, "Digits")) {
        x->kind = LG_PRE_DIGITS;
        x->individual_digits = jbool(n, "individual_digits", 0);
    } else if (!strcmp(type, "WhitespaceSplit")) {
        x->kind = LG_PRE_WSPLIT;
    } else {
        lg_err(&t->log, "tokenizer.json: pre_tokenizer \"%s\" is not supported", type);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    return LLMGPU_OK;
}

/* ---- decoder ---- */
static enum llmgpu_status load_dec(struct lg_tokenizer *t, const cJSON *n, int depth) {
    enum llmgpu_status st = LLMGPU_OK;
    const char *type;
    struct lg_dec *x;
    if (!n || cJSON_IsNull(n))
        return LLMGPU_OK;
    type = cJSON_IsObject(n) ? jstr(n, "type") : NULL;
    if (!type) {
        lg_err(&t->log, "tokenizer.json: decoder without a type");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "decoders"), *e;
        if (!cJSON_IsArray(list) || depth > 4) {
            lg_err(&t->log, "tokenizer.json: decoder Sequence without a decoders list");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        cJSON_ArrayForEach(e, list) {
            if ((st = load_dec(t, e, depth + 1)))
                return st;
        }
        return LLMGPU_OK;
    }
    if (t->n_dec >= LG_TOK_MAX_DEC) {
        lg_err(&t->log, "tokenizer.json: more than %d decoders", LG_TOK_MAX_DEC);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    x = &t->dec[t->n_dec];
    memset(x, 0, sizeof *x);
    t->n_dec++; /* counted at once so that lg_tok_free() sees a half-built entry */
    if (!strcmp(type, "ByteLevel"))
        x->kind = LG_DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback"))
        x->kind = LG_DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse"))
        x->kind = LG_DEC_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(n, "replacement");
        x->kind = LG_DEC_METASPACE;
        if (!r || !*r) {
            lg_err(&t->log, "tokenizer.json: decoder Metaspace without replacement");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        if (!(x->s1 = dupstr(t, r, &x->s1_len)))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        x->prepend = prepend_scheme(n);
    } else if (!strcmp(type, "Strip")) {
        const char *c = jstr(n, "content");
        int64_t v;
        x->kind = LG_DEC_STRIP;
        if (!c || !*c) {
            lg_err(&t->log, "tokenizer.json: decoder Strip without content");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        if (!(x->s1 = dupstr(t, c, &x->s1_len)))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        x->start =
            jint(cJSON_GetObjectItemCaseSensitive(n, "start"), 0, 1 << 20, &v) ? 0 : (uint32_t)v;
        x->stop =
            jint(cJSON_GetObjectItemCaseSensitive(n, "stop"), 0, 1 << 20, &v) ? 0 : (uint32_t)v;
    } else if (!strcmp(type, "Replace")) {
        int is_re = 0;
        const char *p = pattern_of(n, &is_re), *c = jstr(n, "content");
        x->kind = LG_DEC_REPLACE;
        if (!p || !c) {
            lg_err(&t->log, "tokenizer.json: decoder Replace without pattern/content");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        if (!(x->s1 = dupstr(t, p, &x->s1_len)) || !(x->s2 = dupstr(t, c, &x->s2_len)))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        if (is_re && !(x->re = compile_re(t, p, x->s1_len, "decoder Replace", &st)))
            return st;
        if (!is_re && x->s1_len == 0) {
            lg_err(&t->log, "tokenizer.json: decoder Replace with an empty pattern");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
    } else {
        lg_err(&t->log, "tokenizer.json: decoder \"%s\" is not supported", type);
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    return LLMGPU_OK;
}

/* ---- post-processor: the single-sequence template ---- */
static enum llmgpu_status tmpl_push(struct lg_tokenizer *t, int32_t id) {
    if (t->n_tmpl >= LG_ARRAY_LEN(t->tmpl)) {
        lg_err(&t->log, "tokenizer.json: post_processor template too long");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    t->tmpl[t->n_tmpl++] = id;
    return LLMGPU_OK;
}

static enum llmgpu_status load_post(struct lg_tokenizer *t, const cJSON *n, int depth) {
    const char *type;
    if (!n || cJSON_IsNull(n))
        return LLMGPU_OK;
    type = cJSON_IsObject(n) ? jstr(n, "type") : NULL;
    if (!type) {
        lg_err(&t->log, "tokenizer.json: post_processor without a type");
        return LLMGPU_ERR_BAD_TOKENIZER;
    }
    if (!strcmp(type, "ByteLevel"))
        return LLMGPU_OK; /* offsets only */
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "processors"), *e;
        enum llmgpu_status st;
        if (!cJSON_IsArray(list) || depth > 4) {
            lg_err(&t->log, "tokenizer.json: post_processor Sequence without a processors list");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        cJSON_ArrayForEach(e, list) {
            if ((st = load_post(t, e, depth + 1)))
                return st;
        }
        return LLMGPU_OK;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(n, "single"), *e;
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(n, "special_tokens");
        enum llmgpu_status st;
        int have_a = 0;
        if (!cJSON_IsArray(single)) {
            lg_err(&t->log, "tokenizer.json: TemplateProcessing without a single template");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        t->n_tmpl = 0;
        cJSON_ArrayForEach(e, single) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            const cJSON *sq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
            if (cJSON_IsObject(sq)) {
                if ((st = tmpl_push(t, -1)))
                    return st;
                have_a = 1;
            } else if (cJSON_IsObject(sp) && jstr(sp, "id")) {
                const cJSON *def = cJSON_GetObjectItemCaseSensitive(specials, jstr(sp, "id"));
                const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids"), *idv;
                if (!cJSON_IsArray(ids)) {
                    lg_err(&t->log,
                           "tokenizer.json: TemplateProcessing special token \"%.40s\" "
                           "not defined",
                           jstr(sp, "id"));
                    return LLMGPU_ERR_BAD_TOKENIZER;
                }
                cJSON_ArrayForEach(idv, ids) {
                    int64_t v;
                    if (jint(idv, 0, (int64_t)t->n_vocab - 1, &v)) {
                        lg_err(&t->log, "tokenizer.json: TemplateProcessing special token id out "
                                        "of the vocabulary");
                        return LLMGPU_ERR_BAD_TOKENIZER;
                    }
                    if ((st = tmpl_push(t, (int32_t)v)))
                        return st;
                }
            } else {
                lg_err(&t->log, "tokenizer.json: TemplateProcessing item is neither SpecialToken "
                                "nor Sequence");
                return LLMGPU_ERR_BAD_TOKENIZER;
            }
        }
        if (!have_a) {
            lg_err(&t->log, "tokenizer.json: TemplateProcessing single template without $A");
            return LLMGPU_ERR_BAD_TOKENIZER;
        }
        return LLMGPU_OK;
    }
    lg_err(&t->log, "tokenizer.json: post_processor \"%s\" is not supported", type);
    return LLMGPU_ERR_BAD_TOKENIZER;
}

/* ---- added tokens ---- */
static enum llmgpu_status added_push(struct lg_tokenizer *t, const char *content, int32_t id,
                                     int special, int lstrip, int rstrip, int single_word,
                                     int normalized, uint32_t *cap) {
    struct lg_added *x;
    if (t->n_added == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 16;
        struct lg_added *p = lg_realloc(t->a, t->added, *cap * sizeof *p, nc * sizeof *p);
        if (!p)
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        t->added = p;
        *cap = nc;
    }
    x = &t->added[t->n_added];
    memset(x, 0, sizeof *x);
    if (!(x->content = dupstr(t, content, &x->len)))
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    t->n_added++;
    x->id = id;
    x->special = special != 0;
    x->lstrip = lstrip != 0;
    x->rstrip = rstrip != 0;
    x->single_word = single_word != 0;
    x->normalized = normalized != 0;
    return LLMGPU_OK;
}

/* Index the last added token by content (open addressing, rebuilt when half full). */
static enum llmgpu_status amap_add(struct lg_tokenizer *t) {
    size_t mask, h, i;
    if (!t->amap_cap || (size_t)t->n_added * 2 > t->amap_cap) {
        size_t nc = pow2_at_least((size_t)t->n_added * 4);
        int32_t *m = lg_malloc(t->a, nc * sizeof *m);
        if (!m)
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        memset(m, 0xFF, nc * sizeof *m);
        lg_free(t->a, t->amap);
        t->amap = m;
        t->amap_cap = nc;
        mask = nc - 1;
        for (i = 0; i + 1 < t->n_added; i++) {
            for (h = (size_t)lg_tok_hash(t->added[i].content, t->added[i].len) & mask; m[h] >= 0;
                 h = (h + 1) & mask)
                ;
            m[h] = (int32_t)i;
        }
    }
    mask = t->amap_cap - 1;
    i = t->n_added - 1;
    for (h = (size_t)lg_tok_hash(t->added[i].content, t->added[i].len) & mask; t->amap[h] >= 0;
         h = (h + 1) & mask)
        ;
    t->amap[h] = (int32_t)i;
    return LLMGPU_OK;
}

static enum llmgpu_status load_added(struct lg_tokenizer *t, const cJSON *root, uint32_t *cap) {
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *e;
    enum llmgpu_status st;
    if (!cJSON_IsArray(added))
        return LLMGPU_OK;
    cJSON_ArrayForEach(e, added) {
        const char *c = jstr(e, "content");
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        int special = jbool(e, "special", 0);
        int32_t prev = lg_tok_added_get(t, c, strlen(c));
        if (prev >= 0)
            continue; /* the first definition wins */
        if ((st = added_push(t, c, id, special, jbool(e, "lstrip", 0), jbool(e, "rstrip", 0),
                             jbool(e, "single_word", 0), jbool(e, "normalized", !special), cap)))
            return st;
        if ((st = amap_add(t)))
            return st;
    }
    return LLMGPU_OK;
}

/* Normalized forms of normalized added tokens, the id -> text table and the filters. */
static enum llmgpu_status added_finish(struct lg_tokenizer *t) {
    uint32_t i;
    size_t extra = 0;
    char *pool;
    struct lg_tok_buf nb;
    lg_tok_buf_init(&nb, t->a);
    for (i = 0; i < t->n_added; i++) {
        struct lg_added *x = &t->added[i];
        if (x->normalized && t->n_norm) {
            int rc;
            nb.len = 0;
            if ((rc = lg_tok_normalize(t, x->content, x->len, &nb)) == -2) {
                lg_err(&t->log, "tokenizer.json: added token %ld: content is not valid UTF-8 "
                       "(or a normalizer Replace made it so)", (long)x->id);
                lg_tok_buf_free(&nb);
                return LLMGPU_ERR_BAD_TOKENIZER;
            }
            if (rc || nb.oom) {
                lg_tok_buf_free(&nb);
                return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
            }
            x->match = lg_strndup(t->a, nb.p ? nb.p : "", nb.len);
            x->match_len = nb.len;
        } else {
            x->match = lg_strndup(t->a, x->content, x->len);
            x->match_len = x->len;
        }
        if (!x->match) {
            lg_tok_buf_free(&nb);
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        }
        if (x->match_len) {
            if (x->normalized)
                t->added_first_norm[(unsigned char)x->match[0]] = 1;
            else
                t->added_first_raw[(unsigned char)x->match[0]] = 1;
        }
        extra += x->len + 1;
    }
    lg_tok_buf_free(&nb);
    /* put the added contents into the text pool so id -> text is one table */
    pool = lg_realloc(t->a, t->text_pool, t->text_pool_len + 1, t->text_pool_len + extra + 1);
    if (!pool)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    t->text_pool = pool;
    for (i = 0; i < t->n_added; i++) {
        struct lg_added *x = &t->added[i];
        memcpy(t->text_pool + t->text_pool_len, x->content, x->len + 1);
        t->tok_off[x->id] = (uint32_t)t->text_pool_len;
        t->tok_len[x->id] = (uint32_t)x->len;
        t->text_pool_len += x->len + 1;
        t->is_special[x->id] = x->special ? 1 : 2;
    }
    return LLMGPU_OK;
}

/* ---- tokenizer_config.json and generation_config.json ---- */
static int32_t find_token(const struct lg_tokenizer *t, const char *s) {
    return s ? lg_tok_find(t, s) : -1;
}

static void eog_add(struct lg_tokenizer *t, int32_t id) {
    uint32_t i;
    if (id < 0)
        return;
    for (i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id)
            return;
    if (t->n_eog < LG_TOK_MAX_EOG)
        t->eog[t->n_eog++] = id;
}

static int is_llama_class(const char *cls) {
    static const char *const names[] = {"LlamaTokenizer",     "LlamaTokenizerFast",
                                        "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
                                        "GemmaTokenizer",     "GemmaTokenizerFast"};
    size_t i;
    for (i = 0; cls && i < LG_ARRAY_LEN(names); i++)
        if (!strcmp(cls, names[i]))
            return 1;
    return 0;
}

/* transformers registers tokenizer_config's special tokens as special added tokens when
 * the vocabulary has them but tokenizer.json does not list them as added. */
static enum llmgpu_status cfg_special(struct lg_tokenizer *t, const char *s, uint32_t *cap) {
    int32_t id;
    enum llmgpu_status st;
    if (!s || !*s || lg_tok_added_get(t, s, strlen(s)) >= 0)
        return LLMGPU_OK;
    id = lg_tok_vocab_get(t, s, strlen(s));
    if (id < 0)
        return LLMGPU_OK;
    if ((st = added_push(t, s, id, 1, 0, 0, 0, 0, cap)))
        return st;
    return amap_add(t);
}

/* tokenizer_config.json "added_tokens_decoder": {"id": {"content", flags...}}. transformers
 * adds the entries whose id is not an added token yet; transformers 5 also re-adds an
 * entry whose flags differ, and the Rust side then takes the new flags. */
static enum llmgpu_status cfg_added_decoder(struct lg_tokenizer *t, const cJSON *cfg, uint32_t *cap,
                                            int v4) {
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder"), *e;
    enum llmgpu_status st;
    if (!cJSON_IsObject(dec))
        return LLMGPU_OK;
    cJSON_ArrayForEach(e, dec) {
        const char *c = jstr(e, "content");
        char *end = NULL;
        long id = e->string ? strtol(e->string, &end, 10) : -1;
        int special = jbool(e, "special", 0);
        int32_t k;
        uint32_t i;
        if (!c || !*c || !end || *end || id < 0 || (uint64_t)id >= t->n_vocab)
            continue;
        k = lg_tok_added_get(t, c, strlen(c));
        if (k >= 0) {
            struct lg_added *x = &t->added[k];
            if (!v4 && x->id == (int32_t)id) {
                x->special = special != 0;
                x->lstrip = jbool(e, "lstrip", 0) != 0;
                x->rstrip = jbool(e, "rstrip", 0) != 0;
                x->single_word = jbool(e, "single_word", 0) != 0;
                x->normalized = jbool(e, "normalized", !special) != 0;
            }
            continue;
        }
        for (i = 0; i < t->n_added && t->added[i].id != (int32_t)id; i++)
            ;
        if (i < t->n_added)
            continue; /* that id is already an added token with other content */
        if ((st = added_push(t, c, (int32_t)id, special, jbool(e, "lstrip", 0),
                             jbool(e, "rstrip", 0), jbool(e, "single_word", 0),
                             jbool(e, "normalized", !special), cap)) ||
            (st = amap_add(t)))
            return st;
    }
    return LLMGPU_OK;
}

static enum llmgpu_status load_cfg(struct lg_tokenizer *t, const cJSON *cfg, uint32_t *cap,
                                   int v4) {
    enum llmgpu_status st;
    t->clean_up_spaces = 0;
    if (cJSON_IsObject(cfg)) {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), *e;
        const cJSON *extra = cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens");
        static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
        size_t i;
        if ((st = cfg_added_decoder(t, cfg, cap, v4)))
            return st;
        t->clean_up_spaces = jbool(cfg, "clean_up_tokenization_spaces", 0);
        /* transformers 5 ignores it for BPE models (TokenizersBackend._decode) */
        if (!v4 &&
            !jbool(cfg, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output",
                   0))
            t->clean_up_spaces = 0;
        for (i = 0; i < LG_ARRAY_LEN(keys); i++) {
            st = cfg_special(t, token_content(cJSON_GetObjectItemCaseSensitive(cfg, keys[i])), cap);
            if (st)
                return st;
        }
        if (cJSON_IsArray(extra)) {
            cJSON_ArrayForEach(e, extra) {
                if ((st = cfg_special(t, token_content(e), cap)))
                    return st;
            }
        }
        for (i = 0; i < 2; i++) {
            const char *tx = token_content(cJSON_GetObjectItemCaseSensitive(cfg, keys[i]));
            char **dst = i ? &t->chat_eos : &t->chat_bos;
            if (tx && !(*dst = lg_strdup(t->a, tx)))
                return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        }
        if (cJSON_IsString(ct)) {
            if (!(t->chat_template = lg_strdup(t->a, ct->valuestring)))
                return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        } else if (cJSON_IsArray(ct)) {
            cJSON_ArrayForEach(e, ct) {
                const char *name = jstr(e, "name"), *tpl = jstr(e, "template");
                if (name && tpl && !strcmp(name, "default")) {
                    if (!(t->chat_template = lg_strdup(t->a, tpl)))
                        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
                    break;
                }
            }
        }
    }
    return LLMGPU_OK;
}

static enum llmgpu_status load_ids(struct lg_tokenizer *t, const cJSON *cfg, const cJSON *gen,
                                   int v4) {
    static const char *const eog_names[] = {"<|eot_id|>",      "<|eom_id|>",    "<|im_end|>",
                                            "<|end_of_text|>", "<|endoftext|>", "</s>",
                                            "<end_of_turn>",   "<|end|>",       "<|return|>"};
    const char *bos = NULL, *eos = NULL, *cls = NULL;
    size_t i;
    int64_t v;
    if (cJSON_IsObject(cfg)) {
        bos = token_content(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token"));
        eos = token_content(cJSON_GetObjectItemCaseSensitive(cfg, "eos_token"));
        cls = jstr(cfg, "tokenizer_class");
    }
    t->bos_id = find_token(t, bos);
    t->eos_id = find_token(t, eos);
    if (t->bos_id < 0) {
        /* no config: the first special token of the template, if it precedes $A */
        if (!cfg && t->n_tmpl > 1 && t->tmpl[0] >= 0)
            t->bos_id = t->tmpl[0];
    }
    /* transformers 4: LlamaTokenizerFast (and kin) rebuild the post-processor from
     * add_bos_token (default true) and add_eos_token (default false). transformers 5
     * (TokenizersBackend.update_post_processor): any class, when tokenizer_config.json
     * names add_bos_token or add_eos_token, a missing one counting as false. */
    if (cJSON_IsObject(cfg) &&
        (v4 ? is_llama_class(cls)
            : (cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token") != NULL ||
               cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token") != NULL))) {
        int add_bos = jbool(cfg, "add_bos_token", v4), add_eos = jbool(cfg, "add_eos_token", 0);
        t->n_tmpl = 0;
        if (add_bos && t->bos_id >= 0)
            t->tmpl[t->n_tmpl++] = t->bos_id;
        t->tmpl[t->n_tmpl++] = -1;
        if (add_eos && t->eos_id >= 0)
            t->tmpl[t->n_tmpl++] = t->eos_id;
    }
    t->n_eos_ids = 0;
    if (cJSON_IsObject(gen)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(gen, "eos_token_id"), *x;
        if (cJSON_IsArray(e)) {
            cJSON_ArrayForEach(x, e) {
                if (!jint(x, 0, (int64_t)t->n_vocab - 1, &v) && t->n_eos_ids < LG_TOK_MAX_EOG)
                    t->eos_ids[t->n_eos_ids++] = (int32_t)v;
            }
        } else if (!jint(e, 0, (int64_t)t->n_vocab - 1, &v)) {
            t->eos_ids[t->n_eos_ids++] = (int32_t)v;
        }
        if (t->bos_id < 0 && !jint(cJSON_GetObjectItemCaseSensitive(gen, "bos_token_id"), 0,
                                   (int64_t)t->n_vocab - 1, &v))
            t->bos_id = (int32_t)v;
    }
    if (t->n_eos_ids == 0 && t->eos_id >= 0)
        t->eos_ids[t->n_eos_ids++] = t->eos_id;
    if (t->n_eos_ids)
        t->eos_id = t->eos_ids[0];
    for (i = 0; i < t->n_eos_ids; i++)
        eog_add(t, t->eos_ids[i]);
    eog_add(t, t->eos_id);
    for (i = 0; i < LG_ARRAY_LEN(eog_names); i++)
        eog_add(t, lg_tok_find(t, eog_names[i]));
    return LLMGPU_OK;
}

/* ---- public entry points ---- */
/* transformers 5 builds LlamaTokenizer's pipeline itself instead of taking tokenizer.json's
 * (models/llama/tokenization_llama.py): no normalizer, Metaspace(prepend_scheme from
 * add_prefix_space/legacy, split=False), decoder Replace/ByteFallback/Fuse[/Strip], and a
 * BPE without unk_token, fuse_unk and byte_fallback on. Only vocab, merges, added tokens
 * and the post-processor come from the file. */
static enum llmgpu_status v5_llama(struct lg_tokenizer *t, const cJSON *cfg) {
    int add_prefix_space, legacy;
    uint32_t i;
    struct lg_pre *p;
    struct lg_dec *d;
    const char *cls = cJSON_IsObject(cfg) ? jstr(cfg, "tokenizer_class") : NULL;
    if (!cls || (strcmp(cls, "LlamaTokenizer") && strcmp(cls, "LlamaTokenizerFast")))
        return LLMGPU_OK;
    /* A byte-level tokenizer.json under a Llama class name (some Llama 3 derivatives) would
     * be broken by the SentencePiece rebuild; keep it as written (a deliberate deviation). */
    for (i = 0; i < t->n_pre; i++)
        if (t->pre[i].kind == LG_PRE_BYTELEVEL)
            return LLMGPU_OK;
    for (i = 0; i < t->n_dec; i++)
        if (t->dec[i].kind == LG_DEC_BYTELEVEL)
            return LLMGPU_OK;
    add_prefix_space = jbool(cfg, "add_prefix_space", 1);
    legacy = jbool(cfg, "legacy", 0);
    for (i = 0; i < t->n_norm; i++) {
        lg_free(t->a, t->norm[i].s1);
        lg_free(t->a, t->norm[i].s2);
        pcre2_code_free(t->norm[i].re);
    }
    t->n_norm = 0;
    for (i = 0; i < t->n_pre; i++) {
        lg_free(t->a, t->pre[i].s1);
        pcre2_code_free(t->pre[i].re);
    }
    t->n_pre = 0;
    for (i = 0; i < t->n_dec; i++) {
        lg_free(t->a, t->dec[i].s1);
        lg_free(t->a, t->dec[i].s2);
        pcre2_code_free(t->dec[i].re);
    }
    t->n_dec = 0;
    p = &t->pre[t->n_pre++];
    memset(p, 0, sizeof *p);
    p->kind = LG_PRE_METASPACE;
    p->prepend = !add_prefix_space ? LG_PREPEND_NEVER
                 : legacy          ? LG_PREPEND_ALWAYS
                                   : LG_PREPEND_FIRST;
    if (!(p->s1 = lg_strdup(t->a, SP_MARK)))
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    p->s1_len = 3;
    d = &t->dec[t->n_dec++];
    memset(d, 0, sizeof *d);
    d->kind = LG_DEC_REPLACE;
    if (!(d->s1 = lg_strdup(t->a, SP_MARK)) || !(d->s2 = lg_strdup(t->a, " ")))
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    d->s1_len = 3;
    d->s2_len = 1;
    d = &t->dec[t->n_dec++];
    memset(d, 0, sizeof *d);
    d->kind = LG_DEC_BYTEFALLBACK;
    d = &t->dec[t->n_dec++];
    memset(d, 0, sizeof *d);
    d->kind = LG_DEC_FUSE;
    if (add_prefix_space) {
        d = &t->dec[t->n_dec++];
        memset(d, 0, sizeof *d);
        d->kind = LG_DEC_STRIP;
        if (!(d->s1 = lg_strdup(t->a, " ")))
            return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        d->s1_len = 1;
        d->start = 1;
    }
    t->unk_id = -1;
    t->fuse_unk = 1;
    t->byte_fallback = 1;
    t->ignore_merges = 0;
    t->sp_split = sp_split_safe(t);
    return LLMGPU_OK;
}

/* Parse exactly n bytes: a NUL-terminated copy, because cJSON's length-limited parser
 * may look past the limit. NULL (logged) for malformed, truncated or non-object input;
 * *oom set when the copy could not be made. */
static cJSON *parse_json(struct lg_tokenizer *t, const char *what, const char *s, size_t n,
                         int *oom) {
    cJSON *j;
    const char *end = NULL;
    char *copy;
    if (!s)
        return NULL;
    if (!(copy = lg_strndup(t->a, s, n))) {
        *oom = 1;
        return NULL;
    }
    j = cJSON_ParseWithOpts(copy, &end, 1);
    if (!j || !cJSON_IsObject(j) || end != copy + n) {
        lg_err(&t->log, "%s: not a JSON object (malformed or truncated%s)", what,
               j && end != copy + n ? ", or a NUL inside" : "");
        cJSON_Delete(j);
        j = NULL;
    }
    lg_free(t->a, copy);
    return j;
}

enum llmgpu_status lg_tok_load_ex(const struct lg_alloc *a, const struct lg_log *log,
                                  const char *json, size_t json_len, const char *cfg,
                                  size_t cfg_len, const char *gen_cfg, size_t gen_cfg_len,
                                  uint32_t opts, struct lg_tokenizer **out) {
    struct lg_tokenizer *t;
    cJSON *root = NULL, *jc = NULL, *jg = NULL;
    enum llmgpu_status st;
    uint32_t cap = 0;
    int oom = 0;
    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!json)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    t = lg_calloc(a, 1, sizeof *t);
    if (!t)
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    if (a)
        t->alloc = *a;
    t->alloc.fail_after = 0;
    t->alloc.fail_persist = 0;
    t->a = &t->alloc;
    if (log)
        t->log = *log;
    else
        t->log.min = LLMGPU_LOG_LEVEL_NONE;
    /* the copy carries on the caller's fault-injection countdown while loading and is
     * disarmed once loaded, so encode/decode never see injected failures */
    if (a && a->fail_after > 0) {
        t->alloc.fail_after = a->fail_after;
        t->alloc.fail_persist = a->fail_persist;
    }
    t->gctx = pcre2_general_context_create(pcre_alloc, pcre_free, (void *)(uintptr_t)t->a);
    if (!t->gctx) {
        st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        goto err_free;
    }
    if (!(root = parse_json(t, "tokenizer.json", json, json_len, &oom)) ||
        (cfg && !(jc = parse_json(t, "tokenizer_config.json", cfg, cfg_len, &oom))) ||
        (gen_cfg && !(jg = parse_json(t, "generation_config.json", gen_cfg, gen_cfg_len, &oom)))) {
        st = oom ? LLMGPU_ERR_OUT_OF_HOST_MEMORY : LLMGPU_ERR_BAD_TOKENIZER;
        goto err_free;
    }
    if ((st = load_model(t, root)))
        goto err_free;
    if ((st = load_norm(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0)))
        goto err_free;
    if ((st = load_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), 0)))
        goto err_free;
    if ((st = load_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0)))
        goto err_free;
    if ((st = load_dec(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0)))
        goto err_free;
    if ((st = load_added(t, root, &cap)))
        goto err_free;
    if ((st = load_cfg(t, jc, &cap, (opts & LG_TOK_OPT_TRANSFORMERS_V4) != 0)))
        goto err_free;
    if (!(opts & LG_TOK_OPT_TRANSFORMERS_V4) && (st = v5_llama(t, jc)))
        goto err_free;
    if ((st = added_finish(t)))
        goto err_free;
    if ((st = load_ids(t, jc, jg, (opts & LG_TOK_OPT_TRANSFORMERS_V4) != 0)))
        goto err_free;
    if ((st = lg_tok_bpe_selfcheck(t)))
        goto err_free;
    if ((st = lg_tok_pieces_build(t)))
        goto err_free;
    t->alloc.fail_after = 0;
    cJSON_Delete(root);
    cJSON_Delete(jc);
    cJSON_Delete(jg);
    *out = t;
    return LLMGPU_OK;
err_free:
    cJSON_Delete(root);
    cJSON_Delete(jc);
    cJSON_Delete(jg);
    lg_tok_free(t);
    return st;
}

enum llmgpu_status lg_tok_load(const struct lg_alloc *a, const struct lg_log *log, const char *json,
                               size_t json_len, const char *cfg, size_t cfg_len,
                               const char *gen_cfg, size_t gen_cfg_len, struct lg_tokenizer **out) {
    return lg_tok_load_ex(a, log, json, json_len, cfg, cfg_len, gen_cfg, gen_cfg_len, 0, out);
}

static enum llmgpu_status read_opt(const struct lg_alloc *a, const char *dir, const char *name,
                                   char **data, size_t *len) {
    char path[4096];
    FILE *f;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    f = fopen(path, "rb");
    if (!f) {
        *data = NULL;
        *len = 0;
        return LLMGPU_OK; /* optional file */
    }
    fclose(f);
    return lg_read_file(a, NULL, path, data, len);
}

enum llmgpu_status lg_tok_load_dir(const struct lg_alloc *a, const struct lg_log *log,
                                   const char *dir, struct lg_tokenizer **out) {
    return lg_tok_load_dir_ex(a, log, dir, 0, out);
}

/* transformers' legacy path: when tokenizer_config.json has no added_tokens_decoder, the
 * entries of special_tokens_map.json (bos_token, eos_token, ...) override it. Returns a
 * new configuration text (cJSON's allocator) or NULL to keep cfg as it is. */
static char *merge_special_map(const struct lg_log *log, const char *cfg, size_t cl,
                               const char *map, size_t ml) {
    cJSON *c = NULL, *m, *e;
    char *res = NULL;
    if (!map)
        return NULL;
    m = cJSON_ParseWithLength(map, ml);
    if (!cJSON_IsObject(m)) {
        lg_warn(log, "special_tokens_map.json: not a JSON object, ignored");
        goto out;
    }
    c = cfg ? cJSON_ParseWithLength(cfg, cl) : cJSON_CreateObject();
    if (!cJSON_IsObject(c) || cJSON_GetObjectItemCaseSensitive(c, "added_tokens_decoder"))
        goto out; /* a malformed tokenizer_config.json is reported by the loader */
    cJSON_ArrayForEach(e, m) {
        cJSON *dup = cJSON_Duplicate(e, 1);
        if (!dup || !e->string)
            goto out_dup;
        cJSON_DeleteItemFromObjectCaseSensitive(c, e->string);
        cJSON_AddItemToObject(c, e->string, dup);
        continue;
    out_dup:
        cJSON_Delete(dup);
    }
    res = cJSON_PrintUnformatted(c);
out:
    cJSON_Delete(c);
    cJSON_Delete(m);
    return res;
}

enum llmgpu_status lg_tok_load_dir_ex(const struct lg_alloc *a, const struct lg_log *log,
                                      const char *dir, uint32_t opts, struct lg_tokenizer **out) {
    char path[4096];
    char *js = NULL, *cfg = NULL, *gen = NULL, *tpl = NULL, *map = NULL, *merged;
    size_t jl = 0, cl = 0, gl = 0, tl = 0, ml = 0;
    enum llmgpu_status st;
    if (!out)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!dir || (size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path)
        return LLMGPU_ERR_INVALID_ARGUMENT;
    if ((st = lg_read_file(a, log, path, &js, &jl)))
        return st;
    if ((st = read_opt(a, dir, "tokenizer_config.json", &cfg, &cl)) ||
        (st = read_opt(a, dir, "generation_config.json", &gen, &gl)) ||
        (st = read_opt(a, dir, "chat_template.jinja", &tpl, &tl)) ||
        (st = read_opt(a, dir, "special_tokens_map.json", &map, &ml)))
        goto out;
    {
        /* transformers reads these files as UTF-8 text and refuses a file that is not
         * (the Rust tokenizers' read_to_string, Python's open(encoding="utf-8")). GGUF
         * vocabularies come through lg_tok_load_ex without this check: their strings
         * are bytes, and each use that needs UTF-8 checks its own. */
        const char *names[5] = {"tokenizer.json", "tokenizer_config.json",
                                "generation_config.json", "chat_template.jinja",
                                "special_tokens_map.json"};
        const char *texts[5] = {js, cfg, gen, tpl, map};
        const size_t lens[5] = {jl, cl, gl, tl, ml};
        for (int i = 0; i < 5; i++) {
            size_t v = texts[i] ? lg_tok_utf8_valid_prefix(texts[i], lens[i]) : 0;
            if (texts[i] && v != lens[i]) {
                lg_err(log, "%s/%s: not valid UTF-8 at byte %zu (transformers refuses it too)",
                       dir, names[i], v);
                st = LLMGPU_ERR_BAD_TOKENIZER;
                goto out;
            }
        }
    }
    merged = merge_special_map(log, cfg, cl, map, ml);
    if (merged) {
        st = lg_tok_load_ex(a, log, js, jl, merged, strlen(merged), gen, gl, opts, out);
        cJSON_free(merged);
    } else {
        st = lg_tok_load_ex(a, log, js, jl, cfg, cl, gen, gl, opts, out);
    }
    if (st == LLMGPU_OK && tpl && !(*out)->chat_template) {
        (*out)->chat_template = lg_strndup((*out)->a, tpl, tl);
        if (!(*out)->chat_template) {
            lg_tok_free(*out);
            *out = NULL;
            st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
        }
    }
out:
    lg_free(a, js);
    lg_free(a, cfg);
    lg_free(a, gen);
    lg_free(a, tpl);
    lg_free(a, map);
    return st;
}

void lg_tok_free(struct lg_tokenizer *t) {
    uint32_t i;
    struct lg_alloc a;
    if (!t)
        return;
    a = t->alloc;
    a.fail_after = 0;
    for (i = 0; i < t->n_norm; i++) {
        lg_free(&a, t->norm[i].s1);
        lg_free(&a, t->norm[i].s2);
        pcre2_code_free(t->norm[i].re);
    }
    for (i = 0; i < t->n_pre; i++) {
        lg_free(&a, t->pre[i].s1);
        pcre2_code_free(t->pre[i].re);
    }
    for (i = 0; i < t->n_dec; i++) {
        lg_free(&a, t->dec[i].s1);
        lg_free(&a, t->dec[i].s2);
        pcre2_code_free(t->dec[i].re);
    }
    for (i = 0; i < t->n_added; i++) {
        lg_free(&a, t->added[i].content);
        lg_free(&a, t->added[i].match);
    }
    lg_free(&a, t->piece_pool);
    lg_free(&a, t->piece_off);
    lg_free(&a, t->piece_len);
    pcre2_general_context_free(t->gctx);
    lg_free(&a, t->added);
    lg_free(&a, t->amap);
    lg_free(&a, t->merges);
    lg_free(&a, t->merge_side);
    lg_free(&a, t->self_merging);
    lg_free(&a, t->vmap);
    lg_free(&a, t->text_pool);
    lg_free(&a, t->tok_off);
    lg_free(&a, t->tok_len);
    lg_free(&a, t->vtok_off);
    lg_free(&a, t->vtok_len);
    lg_free(&a, t->is_special);
    lg_free(&a, t->chat_template);
    lg_free(&a, t->chat_bos);
    lg_free(&a, t->chat_eos);
    lg_free(&a, t);
}

/* ---- accessors ---- */
uint32_t lg_tok_n_vocab(const struct lg_tokenizer *t) {
    return t ? t->n_vocab : 0;
}
int32_t lg_tok_bos(const struct lg_tokenizer *t) {
    return t ? t->bos_id : -1;
}
int32_t lg_tok_eos(const struct lg_tokenizer *t) {
    return t ? t->eos_id : -1;
}
int lg_tok_is_eog(const struct lg_tokenizer *t, int32_t id) {
    uint32_t i;
    for (i = 0; t && i < t->n_eog; i++)
        if (t->eog[i] == id)
            return 1;
    return 0;
}
int lg_tok_is_special(const struct lg_tokenizer *t, int32_t id) {
    return t && id >= 0 && (uint32_t)id < t->n_vocab && t->is_special[id] == 1;
}
int lg_tok_is_control(const struct lg_tokenizer *t, int32_t id) {
    return t && id >= 0 && (uint32_t)id < t->n_vocab && t->is_special[id] != 0;
}
int32_t lg_tok_find(const struct lg_tokenizer *t, const char *s) {
    int32_t k;
    size_t n;
    if (!t || !s)
        return -1;
    n = strlen(s);
    k = lg_tok_added_get(t, s, n);
    if (k >= 0)
        return t->added[k].id;
    return lg_tok_vocab_get(t, s, n);
}
const char *lg_tok_text(const struct lg_tokenizer *t, int32_t id) {
    if (!t || id < 0 || (uint32_t)id >= t->n_vocab || t->tok_off[id] == UINT32_MAX)
        return NULL;
    return t->text_pool + t->tok_off[id];
}
const char *lg_tok_chat_token(const struct lg_tokenizer *t, int eos) {
    return t ? (eos ? t->chat_eos : t->chat_bos) : NULL;
}
const char *lg_tok_chat_template(const struct lg_tokenizer *t) {
    return t ? t->chat_template : NULL;
}
uint32_t lg_tok_eos_ids(const struct lg_tokenizer *t, int32_t *ids, uint32_t cap) {
    uint32_t i;
    if (!t)
        return 0;
    for (i = 0; ids && i < t->n_eos_ids && i < cap; i++)
        ids[i] = t->eos_ids[i];
    return t->n_eos_ids;
}
