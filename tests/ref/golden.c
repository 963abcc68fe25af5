/*
 * golden.c - reads the transformers golden outputs that
 * tests/tools/make_golden.py writes (tests/fixtures/golden/<variant>/
 * golden.json and logits_steps.bin; layout in that directory's README.md),
 * for check_ref.c and for the GPU forward tests.
 *
 * Owns: parsing golden.json and checking logits_steps.bin's size.
 * Must not touch: the model files of the variant (the loader opens those).
 */
#include "ref.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const struct ref_golden_variant ref_golden_variants[] = {
    {"llama_gqa", 0},  {"llama_mqa", 0},  {"llama3_tied_bf16", 0}, {"llama_sharded_f32", 0},
    {"mistral_sw", 0}, {"qwen2_bias", 0}, {"llama_headdim", 1},
};
const size_t ref_golden_n_variants = LG_ARRAY_LEN(ref_golden_variants);

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

int ref_golden_made(const char *root) {
    char path[1024];
    for (size_t i = 0; i < ref_golden_n_variants; i++) {
        snprintf(path, sizeof path, "%s/%s/golden.json", root, ref_golden_variants[i].name);
        if (exists(path))
            return 1;
    }
    return 0;
}

/* Read a whole file; NULL on failure. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* A number array member as doubles; NULL (and *n 0) when absent or not an
 * array of numbers. */
static double *get_doubles(const cJSON *o, const char *key, int *n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key), *e;
    *n = 0;
    if (!cJSON_IsArray(a))
        return NULL;
    double *v = calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof *v);
    if (!v)
        return NULL;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e)) {
            free(v);
            *n = 0;
            return NULL;
        }
        v[(*n)++] = e->valuedouble;
    }
    return v;
}

/* The same as token ids; ids must be whole numbers. */
static int32_t *get_ids(const cJSON *o, const char *key, int *n) {
    double *d = get_doubles(o, key, n);
    if (!d)
        return NULL;
    int32_t *v = calloc((size_t)*n + 1, sizeof *v);
    for (int i = 0; v && i < *n; i++) {
        v[i] = (int32_t)d[i];
        if ((double)v[i] != d[i]) {
            free(v);
            v = NULL;
        }
    }
    free(d);
    return v;
}

int ref_golden_load(const char *dir, struct ref_golden *g) {
    char path[1024];
    char *text = NULL, *bin = NULL;
    size_t text_len = 0, bin_len = 0;
    cJSON *root = NULL;
    const cJSON *v;
    const char *what = "";

    memset(g, 0, sizeof *g);
    g->effective_window = -1.0;
    snprintf(path, sizeof path, "%s/golden.json", dir);
    if (!(text = slurp(path, &text_len)) || !(root = cJSON_ParseWithLength(text, text_len))) {
        what = "cannot read or parse golden.json";
        goto fail;
    }
    if (!cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, "n_vocab")) ||
        v->valuedouble < 2) {
        what = "n_vocab";
        goto fail;
    }
    g->n_vocab = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    g->head_dim = cJSON_IsNumber(v) ? (int)v->valuedouble : 0;
    if (!cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, "nll_mean"))) {
        what = "nll_mean";
        goto fail;
    }
    g->nll_mean = v->valuedouble;
    int n_marg = 0;
    if (!(g->prompt_ids = get_ids(root, "prompt_ids", &g->n_prompt)) || g->n_prompt < 1 ||
        !(g->greedy_ids = get_ids(root, "greedy_ids", &g->n_gen)) ||
        !(g->nll_ids = get_ids(root, "nll_ids", &g->n_nll)) || g->n_nll < 2 ||
        !(g->margins = get_doubles(root, "greedy_margins", &n_marg)) || n_marg != g->n_gen) {
        what = "prompt_ids, greedy_ids, nll_ids or greedy_margins";
        goto fail;
    }
    g->inv_freq = get_doubles(root, "inv_freq", &g->n_inv); /* null before rotary_emb existed */
    v = cJSON_GetObjectItemCaseSensitive(root, "window_probe");
    if (cJSON_IsObject(v)) {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(v, "effective_window");
        if (!cJSON_IsNumber(w)) {
            what = "window_probe.effective_window";
            goto fail;
        }
        g->effective_window = w->valuedouble;
    }

    snprintf(path, sizeof path, "%s/logits_steps.bin", dir);
    if (!(bin = slurp(path, &bin_len)) ||
        bin_len != (size_t)g->n_gen * (size_t)g->n_vocab * sizeof(float)) {
        what = "logits_steps.bin missing or not n_gen * n_vocab floats";
        goto fail;
    }
    g->logits = (float *)(void *)bin; /* malloc'd: aligned for float */
    snprintf(g->dir, sizeof g->dir, "%s", dir);
    cJSON_Delete(root);
    free(text);
    return 0;

fail:
    fprintf(stderr, "ref_golden_load: %s: %s\n", dir, what);
    free(bin);
    cJSON_Delete(root);
    free(text);
    g->logits = NULL;
    ref_golden_free(g);
    return -1;
}

void ref_golden_free(struct ref_golden *g) {
    free(g->prompt_ids);
    free(g->greedy_ids);
    free(g->nll_ids);
    free(g->margins);
    free(g->inv_freq);
    free(g->logits);
    memset(g, 0, sizeof *g);
}
