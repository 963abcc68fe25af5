/*
 * tok_parity.c - compare lib/tokenizer against a fixture file written by
 * make_tokenizer_fixtures.py (or the JS variant) and print every mismatch.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Ilib -o build/tok_parity tests/tools/tok_parity.c
 *      lib/tokenizer/tok_load.c lib/tokenizer/tok_encode.c lib/tokenizer/tok_decode.c
 *      lib/tokenizer/tok_util.c lib/log.c lib/alloc.c -lpcre2-8 -lutf8proc -lcjson
 *   (not tok_gguf.c: it needs the GGUF reader, and this tool reads tokenizer.json only)
 *   build/tok_parity TOKDIR CORPUS.jsonl FIXTURE.jsonl [-v|-q] [--v4|--v5]
 * Exit status 0 when everything matches.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "../util/b64.h"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *p;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    if (fread(p, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(p);
        return NULL;
    }
    fclose(f);
    p[n] = 0;
    *len = (size_t)n;
    return p;
}

static void logfn(enum llmgpu_log_level l, const char *msg, void *u) {
    (void)u;
    fprintf(stderr, "[%d] %s\n", (int)l, msg);
}

static int cmp_ids(const cJSON *want, const int32_t *got, size_t n) {
    size_t i = 0;
    const cJSON *e;
    if (!cJSON_IsArray(want))
        return 0; /* not recorded */
    if ((size_t)cJSON_GetArraySize(want) != n)
        return 1;
    cJSON_ArrayForEach(e, want) {
        if ((int32_t)e->valuedouble != got[i++])
            return 1;
    }
    return 0;
}

static void print_ids(const char *tag, const int32_t *ids, size_t n) {
    size_t i;
    fprintf(stderr, "    %s:", tag);
    for (i = 0; i < n && i < 60; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 60 ? " ..." : "");
}

int main(int argc, char **argv) {
    struct lg_log log = {logfn, NULL, LLMGPU_LOG_LEVEL_WARN};
    struct lg_tokenizer *t;
    char *corpus, *fix, *line, *save = NULL;
    size_t cl, fl;
    int verbose = argc > 4 && !strcmp(argv[4], "-v");
    int total = 0, bad_ids = 0, bad_dec = 0, bad_skip = 0, bad_ns = 0;
    cJSON **ents = NULL;
    int nents = 0;
    if (argc < 4) {
        fprintf(stderr, "usage: %s TOKDIR CORPUS FIXTURE [-v]\n", argv[0]);
        return 2;
    }
    corpus = slurp(argv[2], &cl);
    fix = slurp(argv[3], &fl);
    if (!corpus || !fix)
        return 1;
    {
        /* the library defaults to transformers 5; older or JS fixtures: the V4 option */
        const char *v = strstr(fix, "\"transformers\": \""), *nl = strchr(fix, '\n');
        uint32_t opts = LG_TOK_OPT_TRANSFORMERS_V4;
        if (v && (!nl || v < nl) && atoi(v + strlen("\"transformers\": \"")) >= 5)
            opts = 0;
        if (argc > 5 && !strcmp(argv[5], "--v5"))
            opts = 0;
        if (argc > 5 && !strcmp(argv[5], "--v4"))
            opts = LG_TOK_OPT_TRANSFORMERS_V4;
        fprintf(stderr, "%s mode\n", opts ? "transformers 4" : "transformers 5");
        if (lg_tok_load_dir_ex(NULL, &log, argv[1], opts, &t) != LLMGPU_OK)
            return 1;
    }
    for (line = strtok_r(corpus, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        ents = realloc(ents, sizeof *ents * (size_t)(nents + 1));
        ents[nents++] = cJSON_Parse(line);
    }
    save = NULL;
    for (line = strtok_r(fix, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(line), *c = NULL;
        const char *name;
        unsigned char *raw;
        size_t rl, n = 0, n2 = 0, dl = 0;
        int32_t *ids, *ids2;
        char *dec;
        int i, fail = 0;
        if (!r || cJSON_IsTrue(cJSON_GetObjectItem(r, "header"))) {
            cJSON_Delete(r);
            continue;
        }
        name = cJSON_GetObjectItem(r, "name")->valuestring;
        for (i = 0; i < nents; i++)
            if (!strcmp(cJSON_GetObjectItem(ents[i], "name")->valuestring, name))
                c = ents[i];
        if (!c)
            continue;
        total++;
        raw = malloc(strlen(cJSON_GetObjectItem(c, "b64")->valuestring) + 4);
        rl = tu_b64dec(cJSON_GetObjectItem(c, "b64")->valuestring, raw);
        lg_tok_encode(t, (char *)raw, rl, 3, NULL, &n);
        ids = malloc((n + 1) * sizeof *ids);
        lg_tok_encode(t, (char *)raw, rl, 3, ids, &n);
        lg_tok_encode(t, (char *)raw, rl, 2, NULL, &n2);
        ids2 = malloc((n2 + 1) * sizeof *ids2);
        lg_tok_encode(t, (char *)raw, rl, 2, ids2, &n2);
        if (cmp_ids(cJSON_GetObjectItem(r, "ids"), ids, n)) {
            bad_ids++;
            fail = 1;
            fprintf(stderr, "IDS  %s\n", name);
            if (verbose) {
                char *w = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "ids"));
                fprintf(stderr, "    want: %.400s\n", w);
                free(w);
                print_ids("got ", ids, n);
            }
        }
        if (cmp_ids(cJSON_GetObjectItem(r, "ids_nospecial"), ids2, n2)) {
            bad_ns++;
            if (!fail)
                fprintf(stderr, "IDS_NOSPECIAL %s\n", name);
        }
        {
            const cJSON *want = cJSON_GetObjectItem(r, "ids");
            const cJSON *e;
            size_t k = 0, wn = (size_t)cJSON_GetArraySize(want);
            int32_t *wi = malloc((wn + 1) * sizeof *wi);
            int pass;
            cJSON_ArrayForEach(e, want) wi[k++] = (int32_t)e->valuedouble;
            for (pass = 0; pass < 2; pass++) {
                const char *key = pass ? "decoded_skip_b64" : "decoded_b64";
                const char *wb = cJSON_GetObjectItem(r, key)->valuestring;
                char *ws = malloc(strlen(wb) + 4);
                size_t wl = tu_b64dec(wb, (unsigned char *)ws);
                dl = 0;
                lg_tok_decode(t, wi, wn, (uint32_t)pass, NULL, &dl);
                dec = malloc(dl + 1);
                lg_tok_decode(t, wi, wn, (uint32_t)pass, dec, &dl);
                dec[dl] = 0;
                ws[wl] = 0;
                if (wl != dl || memcmp(ws, dec, dl)) {
                    if (pass)
                        bad_skip++;
                    else
                        bad_dec++;
                    fprintf(stderr, "%s %s\n", pass ? "DECSKIP" : "DEC ", name);
                    if (verbose)
                        fprintf(stderr, "    want: [%.300s]\n    got:  [%.300s]\n", ws, dec);
                }
                free(dec);
                free(ws);
            }
            free(wi);
        }
        free(raw);
        free(ids);
        free(ids2);
        cJSON_Delete(r);
    }
    printf("%s: %d entries, ids mismatches %d, ids_nospecial mismatches %d, decode mismatches %d, "
           "decode(skip) mismatches %d\n",
           argv[3], total, bad_ids, bad_ns, bad_dec, bad_skip);
    lg_tok_free(t);
    return bad_ids || bad_dec || bad_skip || bad_ns;
}
