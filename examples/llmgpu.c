/*
 * llmgpu.c - the command-line tool: info, generate, chat, tokenize, detokenize,
 * perplexity, bench. A thin layer over the public API; environment variables
 * are mapped onto params here (the library itself reads none):
 *   LLMGPU_DEVICE     device index (see 'llmgpu info')
 *   LLMGPU_CACHE_DIR  kernel cache directory
 *   LLMGPU_LOG        debug|info|warn|error (default warn)
 *   LLMGPU_VALIDATE   1: enable the Vulkan validation layer
 *   LLMGPU_COOPMAT    0: the portable prefill GEMM even where tensor cores exist
 *   LLMGPU_FUSE_ROPE  0: decode's RoPE and KV write as a dispatch of their own
 *   LLMGPU_MATVEC_SG  1: every decode mat-vec a subgroup per row pair; 0: none
 *                     (default: block-quantized weights only)
 *   LLMGPU_MATVEC_DOT 1: integer dot products in q8_0/q4_0/q4_K/q4_g decode mat-vecs;
 *                     0: float ones (default: integer where the device accelerates them)
 *   LLMGPU_PREFILL_DEQUANT 1: prefill GEMMs on quantized weights read f16 copies
 *                     (faster on tensor cores; a scratch of two layer matrices);
 *                     0 or unset: they dequantize as they load
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <unistd.h>

#include "llmgpu.h"

#define LG_MIN_SZ(a, b) ((a) < (b) ? (a) : (b))
#define LG_MAX_SZ(a, b) ((a) > (b) ? (a) : (b))

#ifndef LLMGPU_DEFAULT_MODEL
#define LLMGPU_DEFAULT_MODEL "models/demo"
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_log(enum llmgpu_log_level level, const char *msg, void *user) {
    static const char *names[] = {"debug", "info", "warning", "error"};
    (void)user;
    fprintf(stderr, "llmgpu: %s: %s\n", names[level < 4 ? level : 3], msg);
}

static int env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && !strcmp(v, value);
}

static void context_params_from_env(struct llmgpu_context_params *cp) {
    const char *dev = getenv("LLMGPU_DEVICE");
    const char *cache = getenv("LLMGPU_CACHE_DIR");
    const char *lvl = getenv("LLMGPU_LOG");
    const char *val = getenv("LLMGPU_VALIDATE");
    llmgpu_context_params_init(cp);
    cp->log_fn = on_log;
    if (dev && *dev)
        cp->device_index = atoi(dev);
    if (cache && *cache)
        cp->cache_dir = cache;
    if (lvl) {
        if (!strcmp(lvl, "debug"))
            cp->log_level = LLMGPU_LOG_LEVEL_DEBUG;
        else if (!strcmp(lvl, "info"))
            cp->log_level = LLMGPU_LOG_LEVEL_INFO;
        else if (!strcmp(lvl, "error"))
            cp->log_level = LLMGPU_LOG_LEVEL_ERROR;
    }
    if (val && !strcmp(val, "1"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_VALIDATION;
    if (env_is("LLMGPU_COOPMAT", "0"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_NO_COOPMAT;
    if (env_is("LLMGPU_FUSE_ROPE", "0"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_NO_FUSE_ROPE;
    if (env_is("LLMGPU_MATVEC_SG", "1"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_MATVEC_SUBGROUP;
    if (env_is("LLMGPU_MATVEC_SG", "0"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_MATVEC_WORKGROUP;
    if (env_is("LLMGPU_MATVEC_DOT", "1"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_MATVEC_INT_DOT;
    if (env_is("LLMGPU_MATVEC_DOT", "0"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_MATVEC_FLOAT_DOT;
    if (env_is("LLMGPU_PREFILL_DEQUANT", "1"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_PREFILL_DEQUANT;
    if (env_is("LLMGPU_PREFILL_DEQUANT", "0"))
        cp->flags |= LLMGPU_CONTEXT_FLAG_NO_PREFILL_DEQUANT;
}

static int fail(const char *what, enum llmgpu_status st) {
    fprintf(stderr, "llmgpu: %s: %s (%s)\n", what, llmgpu_status_string(st),
            llmgpu_status_name(st));
    return 1;
}

static const char *type_name(enum llmgpu_device_type t) {
    switch (t) {
    case LLMGPU_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case LLMGPU_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case LLMGPU_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case LLMGPU_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

static void print_device(const struct llmgpu_device_info *d, int chosen) {
    static const struct { uint32_t bit; const char *name; } feats[] = {
        {LLMGPU_DEVICE_FEATURE_FP16, "fp16"},
        {LLMGPU_DEVICE_FEATURE_INT8, "int8"},
        {LLMGPU_DEVICE_FEATURE_STORAGE_16BIT, "storage16"},
        {LLMGPU_DEVICE_FEATURE_STORAGE_8BIT, "storage8"},
        {LLMGPU_DEVICE_FEATURE_INTEGER_DOT, "int-dot"},
        {LLMGPU_DEVICE_FEATURE_INTEGER_DOT_ACCELERATED, "int-dot-accelerated"},
        {LLMGPU_DEVICE_FEATURE_COOPMAT_NV, "coopmat-nv"},
        {LLMGPU_DEVICE_FEATURE_COOPMAT_KHR, "coopmat-khr"},
        {LLMGPU_DEVICE_FEATURE_MEMORY_BUDGET, "memory-budget"},
        {LLMGPU_DEVICE_FEATURE_SUBGROUP_ARITH, "subgroup-arith"},
        {LLMGPU_DEVICE_FEATURE_SUBGROUP_SIZE_CONTROL, "subgroup-size-control"},
    };
    printf("%c %u: %s (%s, Vulkan %u.%u)\n", chosen ? '*' : ' ', d->index, d->name,
           type_name(d->type), (d->api_version >> 22) & 0x7f, (d->api_version >> 12) & 0x3ff);
    printf("     driver: %s\n", d->driver_name);
    printf("     device-local memory: %.1f GiB, subgroup size %u, shared memory %u KiB\n",
           (double)d->device_local_bytes / (1u << 30), d->subgroup_size,
           d->max_shared_memory / 1024);
    printf("     max storage buffer range: %.1f MiB, max allocation: %.1f MiB\n",
           (double)d->max_storage_buffer_range / (1u << 20),
           (double)d->max_allocation_size / (1u << 20));
    printf("     features:");
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
        if (d->features & feats[i].bit)
            printf(" %s", feats[i].name);
    printf("\n");
}

static enum llmgpu_weight_type g_weight_type; /* --weight-type; DEFAULT when not given */
static enum llmgpu_kv_type g_kv_type;         /* --kv-type; DEFAULT (f16) when not given */
static int parse_weight_type(const char *v);

static const char *weight_type_name(enum llmgpu_weight_type t) {
    static const char *const names[] = {"default", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* `llmgpu info -m MODEL`: the model's hyper-parameters and what its weights became. */
static int print_model(struct llmgpu_context *ctx, const char *path) {
    struct llmgpu_model_params mp;
    struct llmgpu_model_info mi = {.struct_size = sizeof mi};
    struct llmgpu_model *m = NULL;
    char piece[64];
    size_t len;
    enum llmgpu_status st;
    llmgpu_model_params_init(&mp);
    mp.weight_type = g_weight_type;
    st = llmgpu_model_load(ctx, path, &mp, &m);
    if (st != LLMGPU_OK) {
        fprintf(stderr, "llmgpu: cannot load the model %s\n", path);
        return fail("loading the model", st);
    }
    llmgpu_model_info(m, &mi);
    printf("model %s\n", path);
    printf("  architecture %s, %llu parameters, weights %s: %.1f MiB on the GPU\n",
           mi.architecture, (unsigned long long)mi.n_params, weight_type_name(mi.weight_type),
           (double)mi.weight_bytes / (1 << 20));
    printf("  layers %u, n_embd %u, n_ff %u, heads %u (kv %u), head_dim %u\n", mi.n_layer,
           mi.n_embd, mi.n_ff, mi.n_head, mi.n_kv_head, mi.head_dim);
    printf("  vocab %u (tokenizer %u), context %u, sliding window %u, rope theta %g, rms eps %g\n",
           mi.n_vocab, llmgpu_model_n_tokens(m), mi.n_ctx_train, mi.sliding_window,
           (double)mi.rope_theta, (double)mi.rms_norm_eps);
    len = sizeof piece;
    if (llmgpu_model_token_bos(m) >= 0 &&
        llmgpu_token_to_piece(m, llmgpu_model_token_bos(m), piece, &len) == LLMGPU_OK)
        printf("  bos %d %.*s", llmgpu_model_token_bos(m), (int)len, piece);
    else
        printf("  bos none");
    len = sizeof piece;
    if (llmgpu_model_token_eos(m) >= 0 &&
        llmgpu_token_to_piece(m, llmgpu_model_token_eos(m), piece, &len) == LLMGPU_OK)
        printf(", eos %d %.*s\n", llmgpu_model_token_eos(m), (int)len, piece);
    else
        printf(", eos none\n");
    {
        struct llmgpu_chat_message msg = {.role = "user", .content = "hi"};
        len = 0;
        st = llmgpu_chat_apply_template(m, &msg, 1, 0, NULL, &len);
        printf("  chat template: %s\n", st == LLMGPU_OK || st == LLMGPU_ERR_BUFFER_TOO_SMALL
                                              ? "yes" : "none");
    }
    llmgpu_model_free(m);
    return 0;
}

static int cmd_info(int argc, char **argv) {
    struct llmgpu_context_params cp;
    struct llmgpu_device_info devs[16], chosen;
    struct llmgpu_context *ctx;
    uint32_t n = 16;
    int bandwidth = 0, r = 0;
    const char *model = NULL;
    enum llmgpu_status st;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--bandwidth"))
            bandwidth = 1;
        else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--weight-type") && i + 1 < argc) {
            if (parse_weight_type(argv[++i]))
                return 2;
        } else {
            fprintf(stderr, "usage: llmgpu info [--bandwidth] [-m MODEL [--weight-type T]]\n");
            return 2;
        }
    }
    context_params_from_env(&cp);
    for (int i = 0; i < 16; i++)
        devs[i].struct_size = sizeof devs[i];
    printf("libllmgpu %s\n", llmgpu_version_string());
    st = llmgpu_devices_list(&cp, devs, &n);
    if (st != LLMGPU_OK)
        return fail("listing Vulkan devices", st);
    st = llmgpu_context_create(&cp, &ctx);
    if (st != LLMGPU_OK)
        return fail("creating a context", st);
    chosen.struct_size = sizeof chosen;
    llmgpu_context_device_info(ctx, &chosen);
    printf("Vulkan devices (* = chosen; set LLMGPU_DEVICE=N to choose):\n");
    for (uint32_t i = 0; i < n; i++)
        print_device(&devs[i], devs[i].index == chosen.index);
    if (bandwidth) {
        double bps;
        st = llmgpu_context_measure_bandwidth(ctx, &bps);
        if (st != LLMGPU_OK) {
            llmgpu_context_free(ctx);
            return fail("measuring bandwidth", st);
        }
        printf("streaming read bandwidth: %.1f GB/s\n", bps / 1e9);
    }
    if (model)
        r = print_model(ctx, model);
    llmgpu_context_free(ctx);
    return r;
}

/* ---- shared option handling ---- */

/* --weight-type NAME; 0, or -1 for an unknown name. */
static int parse_weight_type(const char *v) {
    static const struct {
        const char *name;
        enum llmgpu_weight_type t;
    } types[] = {{"f16", LLMGPU_WEIGHT_TYPE_F16},   {"bf16", LLMGPU_WEIGHT_TYPE_BF16},
                 {"f32", LLMGPU_WEIGHT_TYPE_F32},   {"q8_0", LLMGPU_WEIGHT_TYPE_Q8_0},
                 {"q4_0", LLMGPU_WEIGHT_TYPE_Q4_0}, {"q4_k", LLMGPU_WEIGHT_TYPE_Q4_K},
                 {"q6_k", LLMGPU_WEIGHT_TYPE_Q6_K}, {"default", LLMGPU_WEIGHT_TYPE_DEFAULT}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(v, types[i].name)) {
            g_weight_type = types[i].t;
            return 0;
        }
    fprintf(stderr,
            "llmgpu: unknown weight type %s (default, f16, bf16, f32, q8_0, q4_0, q4_k, q6_k)\n",
            v);
    return -1;
}

/* --kv-type NAME; 0, or -1 for an unknown name. */
static int parse_kv_type(const char *v) {
    if (!strcmp(v, "f16") || !strcmp(v, "default"))
        g_kv_type = LLMGPU_KV_TYPE_F16;
    else if (!strcmp(v, "q8_0"))
        g_kv_type = LLMGPU_KV_TYPE_Q8_0;
    else {
        fprintf(stderr, "llmgpu: unknown KV-cache type %s (f16, q8_0)\n", v);
        return -1;
    }
    return 0;
}

struct opts {
    const char *model, *prompt, *file, *system;
    int n_predict, n_predict_set, n_ctx, ids_only, have_seed, top_k, top_k_set, drop_oldest;
    int ignore_eos;
    double temp, top_p, min_p, repeat_penalty;
    uint64_t seed;
    const char *stop[16];
    uint32_t n_stop;
    char **rest;
    int n_rest;
};

static int parse_opts(int argc, char **argv, struct opts *o, const char *usage_line) {
    memset(o, 0, sizeof *o);
    o->n_predict = 64;
    o->temp = 0.8;
    o->top_p = o->min_p = o->repeat_penalty = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE                                                                                \
    if (!v) {                                                                                     \
        fprintf(stderr, "llmgpu: %s needs a value\nusage: %s\n", a, usage_line);                  \
        return -1;                                                                                \
    }                                                                                             \
    i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED_VALUE o->model = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            NEED_VALUE o->prompt = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            NEED_VALUE o->file = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            NEED_VALUE o->n_predict = atoi(v);
            o->n_predict_set = 1;
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            NEED_VALUE o->n_ctx = atoi(v);
        } else if (!strcmp(a, "--temp")) {
            NEED_VALUE o->temp = atof(v);
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE o->seed = strtoull(v, NULL, 10);
            o->have_seed = 1;
        } else if (!strcmp(a, "--top-k")) {
            NEED_VALUE o->top_k = atoi(v);
            o->top_k_set = 1;
        } else if (!strcmp(a, "--top-p")) {
            NEED_VALUE o->top_p = atof(v);
        } else if (!strcmp(a, "--min-p")) {
            NEED_VALUE o->min_p = atof(v);
        } else if (!strcmp(a, "--repeat-penalty")) {
            NEED_VALUE o->repeat_penalty = atof(v);
        } else if (!strcmp(a, "--stop")) {
            NEED_VALUE
            if (o->n_stop == sizeof o->stop / sizeof o->stop[0] || !*v) {
                fprintf(stderr, "llmgpu: at most 16 non-empty --stop strings\n");
                return -1;
            }
            o->stop[o->n_stop++] = v;
        } else if (!strcmp(a, "--weight-type")) {
            NEED_VALUE
            if (parse_weight_type(v))
                return -1;
        } else if (!strcmp(a, "--kv-type")) {
            NEED_VALUE
            if (parse_kv_type(v))
                return -1;
        } else if (!strcmp(a, "--system")) {
            NEED_VALUE o->system = v;
        } else if (!strcmp(a, "--drop-oldest")) {
            o->drop_oldest = 1;
        } else if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = 1;
        } else if (!strcmp(a, "--ids")) {
            o->ids_only = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: %s\n", usage_line);
            return 1;
        } else if (a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) {
            fprintf(stderr, "llmgpu: unknown option %s\nusage: %s\n", a, usage_line);
            return -1;
        } else {
            o->rest = argv + i;
            o->n_rest = argc - i;
            break;
        }
#undef NEED_VALUE
    }
    return 0;
}

/* The bundled model when -m is not given: ./models/demo, else next to the binary. */
static const char *default_model(char *buf, size_t size, const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    FILE *f = fopen(LLMGPU_DEFAULT_MODEL "/config.json", "rb");
    if (f) {
        fclose(f);
        return LLMGPU_DEFAULT_MODEL;
    }
    if (slash) {
        snprintf(buf, size, "%.*s/../%s", (int)(slash - argv0), argv0, LLMGPU_DEFAULT_MODEL);
        return buf;
    }
    return LLMGPU_DEFAULT_MODEL;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, r;
    if (!f) {
        fprintf(stderr, "llmgpu: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    do {
        if (n + 65536 > cap) {
            char *nb = realloc(buf, cap = (n + 65536) * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    fclose(f);
    *len = n;
    return buf;
}

static int progress_bar(uint64_t done, uint64_t total, void *user) {
    int *last = user;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct != *last) {
        *last = pct;
        fprintf(stderr, "\rloading [%-40.*s] %3d%%", pct * 40 / 100,
                "========================================", pct);
        if (pct == 100)
            fprintf(stderr, "\r%70s\r", "");
    }
    return 0;
}

struct app {
    struct llmgpu_context *ctx;
    struct llmgpu_model *model;
    double t_load;
};

static uint32_t g_context_flags; /* extra context flags a command asks for */
static int app_open(struct app *app, const char *model_dir, int vocab_only) {
    struct llmgpu_context_params cp;
    struct llmgpu_model_params mp;
    enum llmgpu_status st;
    static int last = -1;
    double t0 = now_s();
    memset(app, 0, sizeof *app);
    context_params_from_env(&cp);
    cp.flags |= g_context_flags;
    st = llmgpu_context_create(&cp, &app->ctx);
    if (st != LLMGPU_OK)
        return fail("creating a Vulkan context", st);
    llmgpu_model_params_init(&mp);
    mp.weight_type = g_weight_type;
    if (vocab_only)
        mp.flags |= LLMGPU_MODEL_FLAG_VOCAB_ONLY;
    else if (isatty(2))
        mp.progress_fn = progress_bar, mp.progress_user = &last;
    st = llmgpu_model_load(app->ctx, model_dir, &mp, &app->model);
    if (st != LLMGPU_OK) {
        fprintf(stderr, "llmgpu: cannot load the model %s\n", model_dir);
        llmgpu_context_free(app->ctx);
        return fail("loading the model", st);
    }
    app->t_load = now_s() - t0;
    return 0;
}

static void app_close(struct app *app) {
    llmgpu_model_free(app->model);
    llmgpu_context_free(app->ctx);
}

/* Tokenize as transformers does: special tokens added and parsed. */
static int32_t *tokenize(struct llmgpu_model *m, const char *text, size_t len, size_t *n) {
    int32_t *ids;
    enum llmgpu_status st;
    uint32_t flags = LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL;
    *n = 0;
    st = llmgpu_tokenize(m, text, len, flags, NULL, n);
    if (st != LLMGPU_OK) {
        fail("tokenizing", st);
        return NULL;
    }
    ids = malloc((*n ? *n : 1) * sizeof *ids);
    if (!ids)
        return NULL;
    st = llmgpu_tokenize(m, text, len, flags, ids, n);
    if (st != LLMGPU_OK) {
        free(ids);
        fail("tokenizing", st);
        return NULL;
    }
    return ids;
}

static int cmd_tokenize(int argc, char **argv, const char *argv0) {
    const char *use = "llmgpu tokenize [-m MODEL] (-p TEXT | -f FILE)";
    struct opts o;
    struct app app;
    char mbuf[4096], *text = NULL;
    size_t len = 0, n;
    int32_t *ids;
    int r = parse_opts(argc, argv, &o, use);
    if (r)
        return r < 0 ? 2 : 0;
    if (!!o.prompt == !!o.file) {
        fprintf(stderr, "usage: %s\n", use);
        return 2;
    }
    if (o.file && !(text = read_file(o.file, &len)))
        return 1;
    if (app_open(&app, o.model ? o.model : default_model(mbuf, sizeof mbuf, argv0), 1)) {
        free(text);
        return 1;
    }
    ids = tokenize(app.model, o.prompt ? o.prompt : text, o.prompt ? strlen(o.prompt) : len, &n);
    if (ids) {
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
    }
    free(ids);
    free(text);
    app_close(&app);
    return ids ? 0 : 1;
}

static int cmd_detokenize(int argc, char **argv, const char *argv0) {
    const char *use = "llmgpu detokenize [-m MODEL] ID...";
    struct opts o;
    struct app app;
    char mbuf[4096], *text;
    size_t len = 0;
    int32_t *ids;
    enum llmgpu_status st;
    int r = parse_opts(argc, argv, &o, use);
    if (r)
        return r < 0 ? 2 : 0;
    ids = malloc(((size_t)o.n_rest + 1) * sizeof *ids);
    for (int i = 0; i < o.n_rest; i++) {
        char *end;
        long v = strtol(o.rest[i], &end, 10);
        if (*end || end == o.rest[i]) {
            fprintf(stderr, "llmgpu: not a token id: %s\n", o.rest[i]);
            free(ids);
            return 2;
        }
        ids[i] = (int32_t)v;
    }
    if (app_open(&app, o.model ? o.model : default_model(mbuf, sizeof mbuf, argv0), 1)) {
        free(ids);
        return 1;
    }
    st = llmgpu_detokenize(app.model, ids, (size_t)o.n_rest, 0, NULL, &len);
    text = malloc(len + 1);
    if (st == LLMGPU_OK)
        st = llmgpu_detokenize(app.model, ids, (size_t)o.n_rest, 0, text, &len);
    if (st == LLMGPU_OK) {
        fwrite(text, 1, len, stdout);
        printf("\n");
    }
    free(text);
    free(ids);
    app_close(&app);
    return st == LLMGPU_OK ? 0 : fail("detokenizing", st);
}

/* Text of ids[0..n) (special tokens skipped). */
static char *detok_all(struct llmgpu_model *m, const int32_t *ids, size_t n, size_t *len) {
    char *t;
    *len = 0;
    if (llmgpu_detokenize(m, ids, n, LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL, NULL, len) != LLMGPU_OK)
        return NULL;
    t = malloc(*len + 1);
    if (t && llmgpu_detokenize(m, ids, n, LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL, t, len) != LLMGPU_OK) {
        free(t);
        return NULL;
    }
    return t;
}

/* Sampler params from the command line; NULL for greedy (--temp 0). */
static const struct llmgpu_sampler_params *sampler_from_opts(const struct opts *o,
                                                             struct llmgpu_sampler_params *smp) {
    llmgpu_sampler_params_init(smp);
    smp->temperature = (float)o->temp;
    smp->seed = o->have_seed ? o->seed : (uint64_t)time(NULL);
    if (o->top_k_set)
        smp->top_k = o->top_k;
    if (o->top_p >= 0)
        smp->top_p = (float)o->top_p;
    if (o->min_p >= 0)
        smp->min_p = (float)o->min_p;
    if (o->repeat_penalty > 0)
        smp->repeat_penalty = (float)o->repeat_penalty;
    return o->temp > 0 ? smp : NULL;
}

struct stream_out {
    struct llmgpu_model *model;
    int ids_only, n;
};

/* llmgpu_generate's callback: print text as it becomes final (or ids). */
static int print_token(int32_t token, const char *text, size_t len, void *user) {
    struct stream_out *so = user;
    if (so->ids_only) {
        if (!llmgpu_model_token_is_eog(so->model, token))
            printf("%s%d", so->n++ ? " " : "", token);
    } else {
        fwrite(text, 1, len, stdout);
    }
    fflush(stdout);
    return 0;
}

/* The figures of issue 6 on stderr: load and kernel-compile time, prompt and
 * decode speed, time to first token, device memory by weights, KV cache and
 * scratch. */
static void print_telemetry(const struct app *app, const struct llmgpu_session_params *sp,
                            const struct llmgpu_generate_result *res) {
    struct llmgpu_model_info mi = {.struct_size = sizeof mi};
    struct llmgpu_session_memory mem = {.struct_size = sizeof mem};
    struct llmgpu_context_stats cs = {.struct_size = sizeof cs};
    llmgpu_model_info(app->model, &mi);
    llmgpu_session_memory(app->model, sp, &mem);
    llmgpu_context_stats(app->ctx, &cs);
    fprintf(stderr,
            "llmgpu: load %.2f s (kernels: %llu compiled in %.0f ms, %llu from cache)\n"
            "llmgpu: prompt %u tokens, %.1f tok/s | generated %u tokens, %.1f tok/s | "
            "first token %.1f ms\n"
            "llmgpu: GPU memory: weights %.1f MiB, KV cache %.1f MiB, scratch %.1f MiB\n",
            app->t_load, (unsigned long long)cs.kernels_compiled, cs.kernel_compile_ms,
            (unsigned long long)cs.kernel_cache_hits, res->n_prompt,
            res->prompt_ms > 0 ? res->n_prompt / (res->prompt_ms * 1e-3) : 0.0, res->n_generated,
            res->decode_ms > 0 ? res->n_generated / (res->decode_ms * 1e-3) : 0.0, res->ttft_ms,
            (double)mi.weight_bytes / (1 << 20), (double)mem.kv_bytes / (1 << 20),
            (double)mem.scratch_bytes / (1 << 20));
}

static int cmd_generate(int argc, char **argv, const char *argv0) {
    const char *use = "llmgpu generate [-m MODEL] -p TEXT [-n N] [--temp T] [--seed S] [--top-k K] "
                      "[--top-p P] [--min-p P] [--repeat-penalty R] [--stop STR]... [--ctx N] "
                      "[--weight-type T] [--kv-type T] [--ignore-eos] [--ids]";
    struct opts o;
    struct app app;
    struct llmgpu_session_params sp;
    struct llmgpu_session *s = NULL;
    struct llmgpu_sampler_params smp;
    struct llmgpu_generate_params gp;
    struct llmgpu_generate_result res = {.struct_size = sizeof res};
    struct stream_out so = {0};
    char mbuf[4096];
    int32_t *ids = NULL;
    size_t n_prompt = 0;
    enum llmgpu_status st = LLMGPU_OK;
    int rc = 1;
    int r = parse_opts(argc, argv, &o, use);
    if (r)
        return r < 0 ? 2 : 0;
    if (!o.prompt) {
        fprintf(stderr, "usage: %s\n", use);
        return 2;
    }
    if (app_open(&app, o.model ? o.model : default_model(mbuf, sizeof mbuf, argv0), 0))
        return 1;
    ids = tokenize(app.model, o.prompt, strlen(o.prompt), &n_prompt);
    if (!ids)
        goto done;
    llmgpu_session_params_init(&sp);
    sp.kv_type = g_kv_type;
    if (o.n_ctx > 0)
        sp.n_ctx = (uint32_t)o.n_ctx;
    st = llmgpu_session_create(app.model, &sp, &s);
    if (st != LLMGPU_OK) {
        fail("creating a session", st);
        goto done;
    }
    if (!o.ids_only) {
        size_t len;
        char *text = detok_all(app.model, ids, n_prompt, &len);
        if (text)
            fwrite(text, 1, len, stdout);
        fflush(stdout);
        free(text);
    }
    llmgpu_generate_params_init(&gp);
    gp.sampler = sampler_from_opts(&o, &smp);
    gp.max_tokens = o.n_predict > 0 ? (uint32_t)o.n_predict : 0;
    if (o.ignore_eos)
        gp.flags |= LLMGPU_GENERATE_FLAG_IGNORE_EOG;
    gp.stop = o.stop;
    gp.n_stop = o.n_stop;
    gp.on_token = print_token;
    gp.user = &so;
    so.model = app.model;
    so.ids_only = o.ids_only;
    if (o.n_predict == 0) {
        double t0 = now_s();
        st = llmgpu_session_prefill(s, ids, n_prompt);
        res.n_prompt = (uint32_t)n_prompt;
        res.prompt_ms = (now_s() - t0) * 1e3;
    } else {
        st = llmgpu_generate(s, ids, n_prompt, &gp, &res);
    }
    printf("\n");
    fflush(stdout);
    if (st != LLMGPU_OK) {
        fail("generating", st);
        goto done;
    }
    print_telemetry(&app, &sp, &res);
    rc = 0;
done:
    free(ids);
    llmgpu_session_free(s);
    app_close(&app);
    return rc;
}

static double log_softmax_at(const float *x, size_t n, int32_t i) {
    double maxv = x[0], sum = 0;
    for (size_t k = 1; k < n; k++)
        if (x[k] > maxv)
            maxv = x[k];
    for (size_t k = 0; k < n; k++)
        sum += exp((double)x[k] - maxv);
    return (double)x[i] - maxv - log(sum);
}

static int cmd_perplexity(int argc, char **argv, const char *argv0) {
    const char *use = "llmgpu perplexity [-m MODEL] -f FILE [--ctx N] [--weight-type T] [--kv-type T]";
    struct opts o;
    struct app app;
    struct llmgpu_session_params sp;
    struct llmgpu_session *s = NULL;
    char mbuf[4096], *text;
    int32_t *ids = NULL;
    float *logits = NULL;
    size_t len, n = 0, n_vocab = 0, counted = 0;
    double nll = 0;
    enum llmgpu_status st = LLMGPU_OK;
    int rc = 1;
    int r = parse_opts(argc, argv, &o, use);
    if (r)
        return r < 0 ? 2 : 0;
    if (!o.file) {
        fprintf(stderr, "usage: %s\n", use);
        return 2;
    }
    if (!(text = read_file(o.file, &len)))
        return 1;
    if (app_open(&app, o.model ? o.model : default_model(mbuf, sizeof mbuf, argv0), 0)) {
        free(text);
        return 1;
    }
    ids = tokenize(app.model, text, len, &n);
    if (!ids)
        goto done;
    llmgpu_session_params_init(&sp);
    sp.kv_type = g_kv_type;
    if (o.n_ctx > 0)
        sp.n_ctx = (uint32_t)o.n_ctx;
    st = llmgpu_session_create(app.model, &sp, &s);
    if (st != LLMGPU_OK) {
        fail("creating a session", st);
        goto done;
    }
    llmgpu_session_logits(s, NULL, &n_vocab);
    logits = malloc(n_vocab * sizeof *logits);
    /* Non-overlapping windows of n_ctx tokens, each evaluated from an empty
     * cache; within a window token i+1 is scored from the logits after i. */
    for (size_t w0 = 0; w0 < n && st == LLMGPU_OK; w0 += llmgpu_session_n_ctx(s)) {
        size_t w1 = LG_MIN_SZ(n, w0 + llmgpu_session_n_ctx(s));
        llmgpu_session_reset(s);
        for (size_t i = w0; i + 1 < w1 && st == LLMGPU_OK; i++) {
            size_t nv = n_vocab;
            st = llmgpu_session_decode(s, ids[i]);
            if (st == LLMGPU_OK)
                st = llmgpu_session_logits(s, logits, &nv);
            if (st == LLMGPU_OK) {
                nll -= log_softmax_at(logits, nv, ids[i + 1]);
                counted++;
            }
        }
    }
    if (st != LLMGPU_OK) {
        fail("evaluating", st);
        goto done;
    }
    if (counted == 0) {
        fprintf(stderr, "llmgpu: the file has fewer than 2 tokens\n");
        goto done;
    }
    printf("perplexity: %.4f mean_nll: %.6f tokens: %zu\n", exp(nll / (double)counted),
           nll / (double)counted, n);
    rc = 0;
done:
    free(logits);
    free(ids);
    free(text);
    llmgpu_session_free(s);
    app_close(&app);
    return rc;
}

/* mean and sample standard deviation */
static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++)
        m += x[i];
    m /= n;
    for (int i = 0; i < n; i++)
        v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(v / (n - 1)) : 0;
}

static int cmd_bench(int argc, char **argv, const char *argv0) {
    const char *use = "llmgpu bench [-m MODEL] [-p N_PROMPT] [-n N_GEN] [-r REPS] [--ctx N] "
                      "[--weight-type T] [--kv-type T] [--profile]";
    struct app app;
    struct llmgpu_session_params sp;
    struct llmgpu_session *s = NULL;
    struct llmgpu_model_info mi = {.struct_size = sizeof mi};
    struct llmgpu_device_info di = {.struct_size = sizeof di};
    const char *model = NULL;
    char mbuf[4096];
    int n_prompt = 512, n_gen = 128, reps = 5, n_ctx = 0, rc = 1, profile = 0, r0;
    double pp[64], tg[64], bw = 0, t0, m_pp, sd_pp, m_tg, sd_tg;
    int32_t *toks;
    enum llmgpu_status st = LLMGPU_OK;
    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--profile")) {
            profile = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "usage: %s\n", use);
            return 2;
        }
        if (!strcmp(argv[i], "-m"))
            model = v;
        else if (!strcmp(argv[i], "-p"))
            n_prompt = atoi(v);
        else if (!strcmp(argv[i], "-n"))
            n_gen = atoi(v);
        else if (!strcmp(argv[i], "-r"))
            reps = atoi(v);
        else if (!strcmp(argv[i], "--ctx"))
            n_ctx = atoi(v);
        else if (!strcmp(argv[i], "--weight-type")) {
            if (parse_weight_type(v))
                return 2;
        } else if (!strcmp(argv[i], "--kv-type")) {
            if (parse_kv_type(v))
                return 2;
        } else {
            fprintf(stderr, "usage: %s\n", use);
            return 2;
        }
        i++;
    }
    if (n_prompt < 1 || n_gen < 1 || reps < 1 || reps > 64) {
        fprintf(stderr, "usage: %s\n", use);
        return 2;
    }
    if (profile)
        g_context_flags |= LLMGPU_CONTEXT_FLAG_PROFILE;
    if (app_open(&app, model ? model : default_model(mbuf, sizeof mbuf, argv0), 0))
        return 1;
    llmgpu_model_info(app.model, &mi);
    llmgpu_context_device_info(app.ctx, &di);
    llmgpu_session_params_init(&sp);
    sp.kv_type = g_kv_type;
    sp.n_ctx = n_ctx > 0 ? (uint32_t)n_ctx : (uint32_t)(n_prompt + n_gen + 1);
    toks = malloc((size_t)n_prompt * sizeof *toks);
    for (int i = 0; i < n_prompt; i++)
        toks[i] = (int32_t)((i * 7919u + 1) % mi.n_vocab);
    st = llmgpu_session_create(app.model, &sp, &s);
    /* the streaming-read rate first, then the warm-up right before the timed runs: it
     * compiles every kernel and brings the clocks up (a GPU that idled while the
     * weights were quantized on the CPU, or while the bandwidth kernel was compiled,
     * reads at half speed until its clock ramps up; the streaming read warms itself) */
    if (st == LLMGPU_OK)
        st = llmgpu_context_measure_bandwidth(app.ctx, &bw);
    for (t0 = now_s(), r0 = 1; st == LLMGPU_OK && now_s() - t0 < 0.5; r0 = 0) {
        llmgpu_session_reset(s);
        /* the whole prompt once: prefill kernels may be chosen by the prompt's length */
        size_t warm = r0 ? (size_t)n_prompt : LG_MIN_SZ((size_t)n_prompt, 64);
        st = llmgpu_session_prefill(s, toks, warm);
        for (size_t i = 0; st == LLMGPU_OK && i < 16 && warm + i < sp.n_ctx; i++)
            st = llmgpu_session_decode(s, 1);
    }
    for (int r = 0; st == LLMGPU_OK && r < reps; r++) {
        int32_t tok = 0;
        llmgpu_session_reset(s);
        t0 = now_s();
        st = llmgpu_session_prefill(s, toks, (size_t)n_prompt);
        pp[r] = n_prompt / (now_s() - t0);
        t0 = now_s();
        for (int i = 0; st == LLMGPU_OK && i < n_gen; i++) {
            st = llmgpu_session_sample_greedy(s, &tok);
            if (st == LLMGPU_OK)
                st = llmgpu_session_decode(s, tok);
        }
        tg[r] = n_gen / (now_s() - t0);
    }
    /* the rate again after the timed runs, and the faster of the two: the first
     * measurement has read at little more than half the rate on the H100 right after a
     * large model was loaded (bench/RESULTS.md), which made "reached" overstate the
     * fraction; the device's streaming rate is its best one */
    if (st == LLMGPU_OK) {
        double bw2 = 0;
        st = llmgpu_context_measure_bandwidth(app.ctx, &bw2);
        if (st == LLMGPU_OK && (bw2 > 1.1 * bw || bw > 1.1 * bw2))
            printf("streaming read measured %.1f GB/s before the runs and %.1f after: the "
                   "faster counts\n", bw / 1e9, bw2 / 1e9);
        bw = bw2 > bw ? bw2 : bw;
    }
    if (st != LLMGPU_OK) {
        fail("benchmarking", st);
        goto done;
    }
    mean_sd(pp, reps, &m_pp, &sd_pp);
    mean_sd(tg, reps, &m_tg, &sd_tg);
    printf("model: %s, %u layers, n_embd %u, %.2f B params, %.1f MiB of weights on the GPU\n",
           mi.architecture, mi.n_layer, mi.n_embd, (double)mi.n_params / 1e9,
           (double)mi.weight_bytes / (1 << 20));
    printf("device: %s; streaming read %.1f GB/s\n", di.name, bw / 1e9);
    printf("pp%d: %.1f ± %.1f tok/s\n", n_prompt, m_pp, sd_pp);
    printf("tg%d: %.1f ± %.1f tok/s (%.3f ms/token)\n", n_gen, m_tg, sd_tg, 1e3 / m_tg);
    printf("bandwidth limit for tg: %.1f tok/s; reached %.1f %%\n",
           bw / (double)mi.weight_bytes, 100.0 * m_tg * (double)mi.weight_bytes / bw);
    if (profile) {
        /* decode only: n_gen steps after a prompt of n_prompt tokens */
        struct llmgpu_profile_entry pe[32];
        uint32_t np = 32;
        uint64_t total = 0;
        int32_t tok = 0;
        llmgpu_session_reset(s);
        llmgpu_session_profile_reset(s);
        llmgpu_session_prefill(s, toks, (size_t)n_prompt);
        if (llmgpu_session_profile(s, pe, &np) == LLMGPU_OK) {
            for (uint32_t i = 0; i < np; i++)
                total += pe[i].ns;
            printf("prefill profile (GPU time of a %d-token prompt; MB the stage reads, GB/s, "
                   "barriers):\n", n_prompt);
            for (uint32_t i = 0; i < np; i++)
                printf("  %-22s %9.3f ms  %5.1f %%  %9.1f MB  %7.1f GB/s  %4llu barriers\n",
                       pe[i].name, (double)pe[i].ns / 1e6,
                       100.0 * (double)pe[i].ns / (double)LG_MAX_SZ(total, 1),
                       (double)pe[i].bytes / 1e6,
                       pe[i].ns ? (double)pe[i].bytes / (double)pe[i].ns : 0.0,
                       (unsigned long long)pe[i].barriers);
            printf("  %-22s %9.3f ms of GPU time\n", "total", (double)total / 1e6);
        }
        total = 0;
        np = 32;
        llmgpu_session_profile_reset(s);
        for (int i = 0; i < n_gen; i++) {
            llmgpu_session_sample_greedy(s, &tok);
            if (llmgpu_session_decode(s, tok) != LLMGPU_OK)
                break;
        }
        if (llmgpu_session_profile(s, pe, &np) == LLMGPU_OK) {
            for (uint32_t i = 0; i < np; i++)
                total += pe[i].ns;
            uint64_t bars = 0;
            printf("decode profile (GPU time per token, %d tokens after a %d-token prompt; MB "
                   "the stage reads a token, GB/s, barriers a token):\n",
                   n_gen, n_prompt);
            for (uint32_t i = 0; i < np; i++) {
                bars += pe[i].barriers;
                printf("  %-22s %8.1f us  %5.1f %%  %8.2f MB  %7.1f GB/s  %5.1f barriers  "
                       "(%llu runs)\n",
                       pe[i].name, (double)pe[i].ns / 1e3 / n_gen,
                       100.0 * (double)pe[i].ns / (double)LG_MAX_SZ(total, 1),
                       (double)pe[i].bytes / 1e6 / n_gen,
                       pe[i].ns ? (double)pe[i].bytes / (double)pe[i].ns : 0.0,
                       (double)pe[i].barriers / n_gen, (unsigned long long)pe[i].count);
            }
            printf("  %-22s %8.1f us per token of GPU time, %.1f barriers per token\n", "total",
                   (double)total / 1e3 / n_gen, (double)bars / n_gen);
        } else {
            printf("profile: not available (no timestamps on this device)\n");
        }
    }
    rc = 0;
done:
    free(toks);
    llmgpu_session_free(s);
    app_close(&app);
    return rc;
}

/* ---- chat: an interactive REPL over llmgpu_generate and the chat template ---- */
#ifdef LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT

struct chat {
    struct app *app;
    const struct opts *o;
    struct llmgpu_session *s;
    struct llmgpu_session_params sp;
    struct llmgpu_sampler_params smp;
    const struct llmgpu_sampler_params *sampler;
    struct llmgpu_chat_message *msgs; /* role and content owned (malloc) */
    size_t n_msgs, cap_msgs;
    int32_t *held;                    /* the tokens the session holds, in order */
    size_t n_held;
    uint32_t n_ctx;
    char *answer;                     /* the assistant's text streamed so far */
    size_t answer_len, answer_cap;
};

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int chat_add(struct chat *c, const char *role, const char *content, size_t len) {
    if (c->n_msgs == c->cap_msgs) {
        size_t cap = c->cap_msgs ? 2 * c->cap_msgs : 16;
        struct llmgpu_chat_message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m)
            return -1;
        c->msgs = m;
        c->cap_msgs = cap;
    }
    c->msgs[c->n_msgs].role = dup_n(role, strlen(role));
    c->msgs[c->n_msgs].content = dup_n(content, len);
    if (!c->msgs[c->n_msgs].role || !c->msgs[c->n_msgs].content)
        return -1;
    c->n_msgs++;
    return 0;
}

/* Remove messages [i, i + n). */
static void chat_remove(struct chat *c, size_t i, size_t n) {
    if (n == 0) /* an empty chat's msgs may be NULL, which memmove must not get */
        return;
    for (size_t k = i; k < i + n; k++) {
        free((char *)(uintptr_t)c->msgs[k].role);
        free((char *)(uintptr_t)c->msgs[k].content);
    }
    memmove(c->msgs + i, c->msgs + i + n, (c->n_msgs - i - n) * sizeof *c->msgs);
    c->n_msgs -= n;
}

/* The conversation rendered by the model's template, with the assistant's
 * prompt, as tokens (special tokens parsed, none added: the template has them). */
static int32_t *chat_render(struct chat *c, size_t *n) {
    struct llmgpu_model *m = c->app->model;
    size_t len = 0;
    char *text;
    int32_t *ids = NULL;
    enum llmgpu_status st = llmgpu_chat_apply_template(
        m, c->msgs, c->n_msgs, LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT, NULL, &len);
    if (st != LLMGPU_OK) {
        fail("applying the chat template", st);
        return NULL;
    }
    text = malloc(len + 1);
    if (!text)
        return NULL;
    st = llmgpu_chat_apply_template(m, c->msgs, c->n_msgs, LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT,
                                    text, &len);
    *n = 0;
    if (st == LLMGPU_OK)
        st = llmgpu_tokenize(m, text, len, LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL, NULL, n);
    if (st == LLMGPU_OK && (ids = malloc((*n + 1) * sizeof *ids)) != NULL)
        st = llmgpu_tokenize(m, text, len, LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL, ids, n);
    free(text);
    if (st != LLMGPU_OK) {
        free(ids);
        fail("rendering the conversation", st);
        return NULL;
    }
    return ids;
}

/* Ctrl-C during an answer stops it (the callback returns non-zero); at the
 * prompt it abandons the line. */
static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static int chat_on_token(int32_t token, const char *text, size_t len, void *user) {
    struct chat *c = user;
    c->held[c->n_held++] = token;
    if (c->answer_len + len + 1 > c->answer_cap) {
        size_t cap = (c->answer_len + len + 1) * 2;
        char *a = realloc(c->answer, cap);
        if (!a)
            return 1;
        c->answer = a;
        c->answer_cap = cap;
    }
    memcpy(c->answer + c->answer_len, text, len);
    c->answer_len += len;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return g_interrupted;
}

/* One user turn: render the whole conversation, keep the part of the KV cache
 * that matches it, prefill the rest and stream the answer. */
static void chat_turn(struct chat *c, const char *line, size_t len) {
    struct llmgpu_generate_params gp;
    struct llmgpu_generate_result res = {.struct_size = sizeof res};
    size_t n = 0, k = 0, first = (c->n_msgs && !strcmp(c->msgs[0].role, "system")) ? 1 : 0;
    uint32_t reserve;
    int32_t *ids;
    enum llmgpu_status st;
    if (chat_add(c, "user", line, len))
        return;
    /* room kept for the answer when turns are dropped */
    reserve = c->o->n_predict > 0 ? (uint32_t)c->o->n_predict : c->n_ctx / 4;
    reserve = reserve < c->n_ctx / 2 ? reserve : c->n_ctx / 2;
    for (;;) {
        ids = chat_render(c, &n);
        if (!ids) {
            chat_remove(c, c->n_msgs - 1, 1);
            return;
        }
        if (n + (c->o->drop_oldest ? reserve : 1) <= c->n_ctx)
            break;
        free(ids);
        if (!c->o->drop_oldest || c->n_msgs - 1 <= first) {
            fprintf(stderr, "llmgpu: the conversation (%zu tokens) does not fit the context of "
                            "%u tokens: /reset, or start with --drop-oldest or a larger --ctx\n",
                    n, c->n_ctx);
            chat_remove(c, c->n_msgs - 1, 1);
            return;
        }
        /* drop the oldest exchange (a user message and the answer after it) */
        chat_remove(c, first,
                    first + 1 < c->n_msgs - 1 && !strcmp(c->msgs[first + 1].role, "assistant")
                        ? 2 : 1);
        fprintf(stderr, "llmgpu: [dropped the oldest turn to make room]\n");
    }
    while (k < c->n_held && k < n && c->held[k] == ids[k])
        k++;
    if (k == n)
        k--; /* at least one token is evaluated, for the logits */
    llmgpu_session_truncate(c->s, (uint32_t)k);
    memcpy(c->held + k, ids + k, (n - k) * sizeof *ids);
    c->n_held = n;
    llmgpu_generate_params_init(&gp);
    gp.sampler = c->sampler;
    gp.max_tokens = c->o->n_predict > 0 ? (uint32_t)c->o->n_predict : 0;
    if (c->o->ignore_eos)
        gp.flags |= LLMGPU_GENERATE_FLAG_IGNORE_EOG;
    gp.stop = c->o->stop;
    gp.n_stop = c->o->n_stop;
    gp.on_token = chat_on_token;
    gp.user = c;
    c->answer_len = 0;
    g_interrupted = 0;
    st = llmgpu_generate(c->s, ids + k, n - k, &gp, &res);
    free(ids);
    printf("\n");
    fflush(stdout);
    if (st != LLMGPU_OK) {
        fail("generating", st);
        llmgpu_session_reset(c->s);
        c->n_held = 0;
        chat_remove(c, c->n_msgs - 1, 1);
        return;
    }
    chat_add(c, "assistant", c->answer ? c->answer : "", c->answer_len);
    fprintf(stderr,
            "[%u tokens, %.1f tok/s, first token %.0f ms | prompt %u new tokens (%zu reused), "
            "%.1f tok/s | context %u/%u]\n",
            res.n_generated, res.decode_ms > 0 ? res.n_generated / (res.decode_ms * 1e-3) : 0.0,
            res.ttft_ms, res.n_prompt, k,
            res.prompt_ms > 0 ? res.n_prompt / (res.prompt_ms * 1e-3) : 0.0,
            llmgpu_session_position(c->s), c->n_ctx);
    if (res.stop_reason == LLMGPU_STOP_REASON_CALLBACK)
        fprintf(stderr, "llmgpu: interrupted\n");
    if (res.stop_reason == LLMGPU_STOP_REASON_CONTEXT_FULL)
        fprintf(stderr, "llmgpu: the context is full; the answer was cut (/reset, or start "
                        "with --drop-oldest)\n");
}

/* /save FILE: the KV cache through llmgpu_session_save, and beside it FILE.chat
 * with the tokens it holds and the messages (a chat needs both to go on). */
static void chat_save(struct chat *c, const char *path) {
    char side[4096];
    FILE *f;
    enum llmgpu_status st = llmgpu_session_save(c->s, path);
    if (st != LLMGPU_OK) {
        fail("saving the session", st);
        return;
    }
    snprintf(side, sizeof side, "%s.chat", path);
    f = fopen(side, "wb");
    if (!f) {
        fprintf(stderr, "llmgpu: cannot write %s: %s\n", side, strerror(errno));
        return;
    }
    fprintf(f, "llmgpu-chat 1\ntokens %zu\n", c->n_held);
    for (size_t i = 0; i < c->n_held; i++)
        fprintf(f, "%d\n", c->held[i]);
    fprintf(f, "messages %zu\n", c->n_msgs);
    for (size_t i = 0; i < c->n_msgs; i++)
        fprintf(f, "%s %zu\n%s\n", c->msgs[i].role, strlen(c->msgs[i].content), c->msgs[i].content);
    if (fclose(f) != 0)
        fprintf(stderr, "llmgpu: cannot write %s\n", side);
    else
        fprintf(stderr, "llmgpu: saved %zu tokens to %s (+ .chat)\n", c->n_held, path);
}

static void chat_load(struct chat *c, const char *path) {
    struct chat t = {0};
    char side[4096], role[64];
    size_t n_tok, n_msg, len;
    FILE *f;
    int ok = 0;
    enum llmgpu_status st;
    snprintf(side, sizeof side, "%s.chat", path);
    f = fopen(side, "rb");
    if (!f) {
        fprintf(stderr, "llmgpu: cannot open %s: %s\n", side, strerror(errno));
        return;
    }
    t.held = malloc(c->n_ctx * sizeof *t.held);
    if (t.held && fscanf(f, "llmgpu-chat 1 tokens %zu", &n_tok) == 1 && n_tok <= c->n_ctx) {
        ok = 1;
        for (size_t i = 0; ok && i < n_tok; i++)
            ok = fscanf(f, "%d", &t.held[i]) == 1;
        t.n_held = n_tok;
        ok = ok && fscanf(f, " messages %zu", &n_msg) == 1;
        for (size_t i = 0; ok && i < n_msg; i++) {
            char *content;
            ok = fscanf(f, " %63s %zu", role, &len) == 1 + 1 && fgetc(f) == '\n' && len < (1u << 26);
            content = ok ? malloc(len + 1) : NULL;
            ok = content && fread(content, 1, len, f) == len && chat_add(&t, role, content, len) == 0;
            free(content);
        }
    }
    fclose(f);
    if (!ok) {
        fprintf(stderr, "llmgpu: %s is not a chat file written by /save\n", side);
    } else if ((st = llmgpu_session_load(c->s, path)) != LLMGPU_OK) {
        fail("loading the session", st);
    } else if (llmgpu_session_position(c->s) != t.n_held) {
        fprintf(stderr, "llmgpu: %s and %s disagree; the session is reset\n", path, side);
        llmgpu_session_reset(c->s);
        c->n_held = 0;
    } else {
        chat_remove(c, 0, c->n_msgs);
        free(c->msgs);
        c->msgs = t.msgs, c->n_msgs = t.n_msgs, c->cap_msgs = t.cap_msgs;
        t.msgs = NULL, t.n_msgs = 0;
        memcpy(c->held, t.held, t.n_held * sizeof *t.held);
        c->n_held = t.n_held;
        fprintf(stderr, "llmgpu: loaded %zu tokens, %zu messages from %s\n", c->n_held, c->n_msgs,
                path);
    }
    chat_remove(&t, 0, t.n_msgs);
    free(t.msgs);
    free(t.held);
}

static int cmd_chat(int argc, char **argv, const char *argv0) {
    const char *use = "llmgpu chat [-m MODEL] [--system TEXT] [-n N] [--ctx N] [--drop-oldest] "
                      "[--ignore-eos] [--temp T] [--seed S] [--top-k K] [--top-p P] [--min-p P] "
                      "[--repeat-penalty R] [--stop STR]... [--weight-type T] [--kv-type T]";
    struct opts o;
    struct app app;
    struct chat c;
    char mbuf[4096], *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int tty = isatty(0), rc = 1;
    enum llmgpu_status st;
    int r = parse_opts(argc, argv, &o, use);
    if (r)
        return r < 0 ? 2 : 0;
    if (o.n_rest) {
        fprintf(stderr, "usage: %s\n", use);
        return 2;
    }
    if (!o.n_predict_set)
        o.n_predict = 512;
    memset(&c, 0, sizeof c);
    if (app_open(&app, o.model ? o.model : default_model(mbuf, sizeof mbuf, argv0), 0))
        return 1;
    c.app = &app;
    c.o = &o;
    c.sampler = sampler_from_opts(&o, &c.smp);
    llmgpu_session_params_init(&c.sp);
    c.sp.kv_type = g_kv_type;
    if (o.n_ctx > 0)
        c.sp.n_ctx = (uint32_t)o.n_ctx;
    st = llmgpu_session_create(app.model, &c.sp, &c.s);
    if (st != LLMGPU_OK) {
        fail("creating a session", st);
        goto done;
    }
    c.n_ctx = llmgpu_session_n_ctx(c.s);
    c.held = malloc(c.n_ctx * sizeof *c.held);
    if (!c.held || (o.system && chat_add(&c, "system", o.system, strlen(o.system))))
        goto done;
    {
        /* a template that cannot render is an error now, not at the first turn */
        size_t n;
        int32_t *ids;
        if (!(ids = chat_render(&c, &n))) {
            fprintf(stderr, "llmgpu: the model in %s has no usable chat template\n",
                    o.model ? o.model : mbuf);
            goto done;
        }
        free(ids);
    }
    if (tty)
        fprintf(stderr, "llmgpu chat: type a message; /reset, /save FILE, /load FILE, /quit; "
                        "Ctrl-C stops an answer\n");
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C interrupts the prompt's read */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    for (;;) {
        if (tty) {
            printf("> ");
            fflush(stdout);
        }
        g_interrupted = 0;
        if ((len = getline(&line, &cap, stdin)) < 0) {
            if (errno == EINTR && g_interrupted) {
                clearerr(stdin);
                printf("\n");
                continue;
            }
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit"))
            break;
        if (!strcmp(line, "/reset")) {
            llmgpu_session_reset(c.s);
            c.n_held = 0;
            chat_remove(&c, o.system ? 1 : 0, c.n_msgs - (o.system ? 1 : 0));
            fprintf(stderr, "llmgpu: conversation reset\n");
        } else if (!strncmp(line, "/save ", 6) && line[6]) {
            chat_save(&c, line + 6);
        } else if (!strncmp(line, "/load ", 6) && line[6]) {
            chat_load(&c, line + 6);
        } else if (line[0] == '/') {
            fprintf(stderr, "llmgpu: commands: /reset, /save FILE, /load FILE, /quit\n");
        } else {
            chat_turn(&c, line, (size_t)len);
        }
    }
    if (tty)
        printf("\n");
    rc = 0;
done:
    free(line);
    if (c.msgs)
        chat_remove(&c, 0, c.n_msgs);
    free(c.msgs);
    free(c.held);
    free(c.answer);
    llmgpu_session_free(c.s);
    app_close(&app);
    return rc;
}
#endif /* LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT */

/* llmgpu quantize IN OUT [--type T]: a Hugging Face directory as a GGUF file. */
static int cmd_quantize(int argc, char **argv) {
    static const char use[] =
        "llmgpu quantize IN_DIR OUT.gguf [--type f32|f16|q8_0|q4_0|q4_k|q6_k]";
    static const struct { const char *name; enum llmgpu_weight_type t; } types[] = {
        {"f32", LLMGPU_WEIGHT_TYPE_F32},   {"f16", LLMGPU_WEIGHT_TYPE_F16},
        {"q8_0", LLMGPU_WEIGHT_TYPE_Q8_0}, {"q4_0", LLMGPU_WEIGHT_TYPE_Q4_0},
        {"q4_k", LLMGPU_WEIGHT_TYPE_Q4_K}, {"q6_k", LLMGPU_WEIGHT_TYPE_Q6_K},
    };
    struct llmgpu_context_params cp;
    struct llmgpu_quantize_params qp;
    const char *in = NULL, *out = NULL;
    enum llmgpu_status st;
    double t0;
    int i;
    size_t k;

    llmgpu_context_params_init(&cp);
    context_params_from_env(&cp);
    llmgpu_quantize_params_init(&qp);
    qp.log_fn = on_log;
    qp.log_level = cp.log_level;
    qp.weight_type = LLMGPU_WEIGHT_TYPE_F16;
    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--type") && i + 1 < argc) {
            const char *t = argv[++i];
            for (k = 0; k < sizeof types / sizeof types[0]; k++)
                if (!strcasecmp(t, types[k].name))
                    break;
            if (k == sizeof types / sizeof types[0]) {
                fprintf(stderr, "llmgpu: unknown --type %s\nusage: %s\n", t, use);
                return 2;
            }
            qp.weight_type = types[k].t;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: %s\n", use);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "llmgpu: unknown option %s\nusage: %s\n", argv[i], use);
            return 2;
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            fprintf(stderr, "usage: %s\n", use);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "usage: %s\n", use);
        return 2;
    }
    t0 = now_s();
    st = llmgpu_quantize(in, out, &qp);
    if (st != LLMGPU_OK)
        return fail("quantize", st);
    fprintf(stderr, "llmgpu: wrote %s in %.2f s\n", out, now_s() - t0);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: llmgpu COMMAND [OPTIONS]\n"
            "commands:\n"
            "  info [--bandwidth] [-m MODEL]   list Vulkan devices and the one chosen; with -m,\n"
            "                                  load MODEL and print its parameters\n"
            "  generate [-m MODEL] -p TEXT [-n N] [--temp T] [--seed S] [--top-k K] [--top-p P]\n"
            "           [--min-p P] [--repeat-penalty R] [--stop STR]... [--ctx N]\n"
            "           [--weight-type T] [--kv-type T] [--ignore-eos] [--ids]\n"
            "                                  continue a prompt, sampling on the GPU\n"
            "                                  (--temp 0: greedy; --ignore-eos: go on past\n"
            "                                  end-of-generation tokens)\n"
            "  chat [-m MODEL] [--system TEXT] [-n N] [--ctx N] [--drop-oldest] [--ignore-eos]\n"
            "       [sampling options] [--weight-type T] [--kv-type T]\n"
            "                                  chat with the model's chat template; /reset,\n"
            "                                  /save FILE, /load FILE, /quit\n"
            "  tokenize [-m MODEL] (-p TEXT | -f FILE)   print token ids as transformers would\n"
            "  detokenize [-m MODEL] ID...       print the text of token ids\n"
            "  perplexity [-m MODEL] -f FILE [--ctx N] [--weight-type T] [--kv-type T]\n"
            "                                  perplexity of a text file\n"
            "  bench [-m MODEL] [-p N] [-n N] [-r REPS] [--ctx N] [--weight-type T] [--kv-type T]\n"
            "                                  prompt and generation tok/s\n"
            "  quantize IN_DIR OUT.gguf [--type f32|f16|q8_0|q4_0|q4_k|q6_k]\n"
            "                                  write a Hugging Face model as GGUF (no GPU)\n"
            "--weight-type: default (f16; bf16 checkpoints stay bf16), f16, bf16, f32, q8_0,\n"
            "               q4_0, q4_k, q6_k (quantized at load; the embedding and LM head\n"
            "               stay f16)\n"
            "--kv-type: f16 (default) or q8_0 (8-bit KV cache, half the memory; head_dim a\n"
            "           multiple of 32)\n"
            "without -m, the bundled model in " LLMGPU_DEFAULT_MODEL " is used\n"
            "MODEL: a Hugging Face model directory or a GGUF file (the first part of a split\n"
            "       set); a GGUF file keeps its weight types unless --weight-type is given\n"
            "environment: LLMGPU_DEVICE=N, LLMGPU_CACHE_DIR=DIR, LLMGPU_LOG=debug|info|warn|error,\n"
            "             LLMGPU_VALIDATE=1, LLMGPU_COOPMAT=0, LLMGPU_FUSE_ROPE=0,\n"
            "             LLMGPU_MATVEC_SG=0|1, LLMGPU_MATVEC_DOT=0|1, LLMGPU_PREFILL_DEQUANT=0|1\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("libllmgpu %s\n", llmgpu_version_string());
        return 0;
    }
    if (!strcmp(argv[1], "info"))
        return cmd_info(argc - 2, argv + 2);
    if (!strcmp(argv[1], "generate"))
        return cmd_generate(argc - 2, argv + 2, argv[0]);
#ifdef LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT
    if (!strcmp(argv[1], "chat"))
        return cmd_chat(argc - 2, argv + 2, argv[0]);
#endif
    if (!strcmp(argv[1], "tokenize"))
        return cmd_tokenize(argc - 2, argv + 2, argv[0]);
    if (!strcmp(argv[1], "detokenize"))
        return cmd_detokenize(argc - 2, argv + 2, argv[0]);
    if (!strcmp(argv[1], "bench"))
        return cmd_bench(argc - 2, argv + 2, argv[0]);
    if (!strcmp(argv[1], "perplexity"))
        return cmd_perplexity(argc - 2, argv + 2, argv[0]);
    if (!strcmp(argv[1], "quantize"))
        return cmd_quantize(argc - 2, argv + 2);
    fprintf(stderr, "llmgpu: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
