/*
 * bench_tokenizer.c - single-thread encode throughput of lib/tokenizer in MB/s on a
 * generated English and CJK text (the same generator as make_tokenizer_fixtures.py
 * --bench, so the numbers compare with HF tokenizers). Build and run:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Ilib -o build/bench_tokenizer \
 *      tests/tools/bench_tokenizer.c lib/tokenizer/tok_*.c lib/log.c lib/alloc.c \
 *      -lpcre2-8 -lutf8proc -lcjson
 *   build/bench_tokenizer tests/fixtures/tokenizers/npm/llama3 [MB] [reps]
 *
 * Like the Python side, the text is encoded one paragraph (line) per call. Times are the
 * thread's CPU time (fair on a shared machine).
 *
 * For a machine without libpcre2/libutf8proc/libcjson (the GPU host): link the first two
 * statically and carry libcjson.so.1 next to the binary:
 *   mkdir -p build/benchpkg && cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Ilib \
 *      -o build/benchpkg/bench_tokenizer tests/tools/bench_tokenizer.c lib/tokenizer/tok_*.c \
 *      lib/log.c lib/alloc.c -Wl,-Bstatic -lpcre2-8 -lutf8proc -Wl,-Bdynamic -lcjson
 *   cp -L /usr/lib/x86_64-linux-gnu/libcjson.so.1 build/benchpkg/
 *   LD_LIBRARY_PATH=build/benchpkg build/benchpkg/bench_tokenizer DIR 8 3
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tokenizer.h"

static const char *const words[] = {
    "the",        "of",       "and",     "to",        "in",       "is",      "was",
    "for",        "that",     "with",    "as",        "on",       "by",      "at",
    "from",       "his",      "her",     "it",        "an",       "were",    "are",
    "which",      "this",     "be",      "or",        "has",      "had",     "not",
    "but",        "also",     "first",   "new",       "one",      "their",   "after",
    "its",        "who",      "two",     "they",      "have",     "been",    "other",
    "all",        "time",     "year",    "city",      "during",   "would",   "some",
    "there",      "more",     "into",    "school",    "world",    "state",   "government",
    "between",    "people",   "under",   "these",     "years",    "however", "called",
    "most",       "company",  "used",    "known",     "number",   "may",     "same",
    "only",       "later",    "such",    "including", "while",    "them",    "work",
    "university", "national", "where",   "part",      "many",     "through", "family",
    "second",     "when",     "both",    "three",     "because",  "example", "language",
    "computer",   "running",  "quickly", "beautiful", "important"};

static uint64_t lcg_x;
static uint64_t lcg(void) {
    lcg_x = lcg_x * 6364136223846793005ull + 1442695040888963407ull;
    return lcg_x >> 33;
}

struct text {
    char *p;
    size_t len, cap;
};
static void put(struct text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = 0;
}

static struct text gen_english(size_t nbytes) {
    struct text t = {NULL, 0, 0};
    size_t nw = sizeof words / sizeof words[0];
    unsigned sent = 0;
    lcg_x = 42;
    while (t.len < nbytes) {
        uint64_t k = 5 + lcg() % 16, i;
        for (i = 0; i < k; i++) {
            char w[32];
            const char *s = words[lcg() % nw];
            snprintf(w, sizeof w, "%s", s);
            if (i == 0 && w[0] >= 'a' && w[0] <= 'z')
                w[0] = (char)(w[0] - 32);
            if (lcg() % 23 == 0)
                snprintf(w, sizeof w, "%u", (unsigned)(lcg() % 100000));
            if (i)
                put(&t, " ", 1);
            put(&t, w, strlen(w));
        }
        if (lcg() % 5 == 0)
            put(&t, ", ", 2);
        else
            put(&t, ". ", 2);
        if (++sent % 8 == 0)
            put(&t, "\n\n", 2);
    }
    return t;
}

static struct text gen_cjk(size_t nbytes) {
    struct text t = {NULL, 0, 0};
    lcg_x = 7;
    while (t.len < nbytes) {
        uint64_t k = 8 + lcg() % 24, i;
        for (i = 0; i < k; i++) {
            uint32_t cp = 0x4E00 + (uint32_t)(lcg() % 0x5000);
            char u[3] = {(char)(0xE0 | (cp >> 12)), (char)(0x80 | ((cp >> 6) & 0x3F)),
                         (char)(0x80 | (cp & 0x3F))};
            put(&t, u, 3);
        }
        if (lcg() % 3 == 0)
            put(&t, "\xEF\xBC\x8C", 3); /* ， */
        else
            put(&t, "\xE3\x80\x82", 3); /* 。 */
        if (lcg() % 10 == 0)
            put(&t, "\n", 1);
    }
    return t;
}

/* CPU time of this thread: fair on a shared, oversubscribed machine (the encode is
 * single-threaded and does no I/O, so on an idle machine it equals wall time). */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run(const struct lg_tokenizer *t, const char *name, const struct text *x, int reps) {
    double best = 1e30;
    size_t ntok = 0;
    int32_t *ids = malloc(sizeof *ids * (x->len + 16));
    int r;
    for (r = 0; r < reps; r++) {
        double t0 = now();
        const char *p = x->p, *end = x->p + x->len;
        ntok = 0;
        while (p < end) { /* one paragraph per call, split at '\n' like Python's split("\n") */
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p), n = x->len + 16;
            if (lg_tok_encode(t, p, len, 0, ids, &n) != LLMGPU_OK) {
                fprintf(stderr, "encode failed\n");
                exit(1);
            }
            ntok += n;
            p += len + (nl ? 1 : 0);
        }
        t0 = now() - t0;
        if (t0 < best)
            best = t0;
    }
    printf("  \"%s\": {\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.4f, \"MBps\": %.3f}", name,
           x->len, ntok, best, (double)x->len / best / 1e6);
    free(ids);
}

int main(int argc, char **argv) {
    struct lg_tokenizer *t;
    struct text en, cjk;
    size_t mb = argc > 2 ? (size_t)atoi(argv[2]) : 8;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    double t0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s TOKENIZER_DIR [MB] [reps]\n", argv[0]);
        return 2;
    }
    t0 = now();
    if (lg_tok_load_dir(NULL, NULL, argv[1], &t) != LLMGPU_OK) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    printf("{\"tokenizer\": \"%s\", \"load_seconds\": %.3f, \"threads\": 1,\n", argv[1],
           now() - t0);
    en = gen_english(mb << 20);
    cjk = gen_cjk(mb << 20);
    if (getenv("LG_BENCH_DUMP")) { /* write the texts, to compare with the Python generator */
        FILE *f = fopen(getenv("LG_BENCH_DUMP"), "wb");
        if (f) {
            fwrite(en.p, 1, en.len, f);
            fwrite(cjk.p, 1, cjk.len, f);
            fclose(f);
        }
    }
    run(t, "english", &en, reps);
    printf(",\n");
    run(t, "cjk", &cjk, reps);
    printf("}\n");
    lg_tok_free(t);
    free(en.p);
    free(cjk.p);
    return 0;
}
