/*
 * check_memory.c - memory discipline (issue 10): what loading a model costs in host
 * memory, and what a session costs on the device next to the weights.
 *
 *   Budget  (CPU) scratch of a session at the default params, from
 *           llmgpu_session_memory() (the formula check_generate's
 *           memory_and_context_stats holds against what a session really
 *           allocates), stays under 5 % of the weights of real 7B/8B shapes (their
 *           config.json parsed by the library), the weights counted here from the
 *           shapes with the smallest weight type (4.5 bits for the projections,
 *           embedding and LM head f16: upload.c's rule).
 *   Load    (GPU) a ~300 MB f16 checkpoint written by this file is loaded as f16
 *           (plain copy) and as q8_0 (quantized on the CPU threads) while a sampler
 *           thread reads RssAnon from /proc/self/status every millisecond: the peak
 *           of anonymous memory (the mmapped file's pages are file-backed and not in
 *           it) may exceed what the device holds afterwards (on lavapipe device
 *           memory is anonymous host memory) by at most 256 MiB; the library's own
 *           heap (a counting allocator in the context params) peaks under 16 MiB.
 *           The weights on the device are exactly the sum of the tensor sizes
 *           counted here (no second copy: a tied LM head takes no memory of its
 *           own), and the device bytes the load added are that plus alignment.
 *
 * Owns nothing of the library; must not touch lib/. Tagged "gpu" for Load.
 */
#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward.h"
#include "model/model.h"
#include "testmodel.h"
#include "testutil.h"

#define MIB (1024.0 * 1024.0)

/* ---- weights counted from the shapes (independently of upload.c) ---- */

/* Bytes of the weights of cfg: the projection matrices with proj_bits a weight,
 * the embedding and an untied LM head with emb_bits, norms and biases f32. */
static double weight_bytes_of(const struct lg_model_config *c, double proj_bits, double emb_bits) {
    double E = c->n_embd, F = c->n_ff, Q = (double)c->n_head * c->head_dim,
           KV = (double)c->n_kv_head * c->head_dim, V = c->n_vocab;
    double proj = E * Q + 2 * E * KV + Q * E + 3 * E * F;
    double vec = 2 * E + (c->qkv_bias ? Q + 2 * KV : 0);
    double emb = V * E * (c->tie_word_embeddings ? 1 : 2);
    return c->n_layer * (proj * proj_bits / 8 + vec * 4) + E * 4 + emb * emb_bits / 8;
}

/* ---- Budget: scratch vs weights at 7B/8B shapes ---- */

static const struct {
    const char *name;
    const char *json;
} shapes[] = {
    {"Llama-2-7b",
     "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":4096,"
     "\"intermediate_size\":11008,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
     "\"num_key_value_heads\":32,\"vocab_size\":32000,\"max_position_embeddings\":4096,"
     "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"hidden_act\":\"silu\","
     "\"tie_word_embeddings\":false,\"bos_token_id\":1,\"eos_token_id\":2}"},
    {"Mistral-7B-v0.1",
     "{\"architectures\":[\"MistralForCausalLM\"],\"model_type\":\"mistral\",\"hidden_size\":4096,"
     "\"intermediate_size\":14336,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
     "\"num_key_value_heads\":8,\"vocab_size\":32000,\"max_position_embeddings\":32768,"
     "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"hidden_act\":\"silu\","
     "\"sliding_window\":4096,\"tie_word_embeddings\":false,\"bos_token_id\":1,"
     "\"eos_token_id\":2}"},
    {"Llama-3.1-8B",
     "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":4096,"
     "\"intermediate_size\":14336,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
     "\"num_key_value_heads\":8,\"vocab_size\":128256,\"max_position_embeddings\":131072,"
     "\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0,\"hidden_act\":\"silu\","
     "\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
     "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
     "\"tie_word_embeddings\":false,\"bos_token_id\":128000,\"eos_token_id\":128001}"},
    {"Qwen2-7B",
     "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"hidden_size\":3584,"
     "\"intermediate_size\":18944,\"num_hidden_layers\":28,\"num_attention_heads\":28,"
     "\"num_key_value_heads\":4,\"vocab_size\":152064,\"max_position_embeddings\":131072,"
     "\"rms_norm_eps\":1e-06,\"rope_theta\":1000000.0,\"hidden_act\":\"silu\","
     "\"sliding_window\":131072,\"use_sliding_window\":false,\"max_window_layers\":28,"
     "\"tie_word_embeddings\":false,\"bos_token_id\":151643,\"eos_token_id\":151643}"},
};

START_TEST(scratch_under_5_percent_of_7b_weights) {
    struct llmgpu_model m; /* only cfg: llmgpu_session_memory reads nothing else */
    struct llmgpu_session_memory mem = {.struct_size = sizeof mem};
    double w_q4, w_f16, frac;
    memset(&m, 0, sizeof m);
    lgt_log_reset();
    ck_assert_msg(lg_config_parse(NULL, &lgt_log, shapes[_i].json, strlen(shapes[_i].json),
                                  "config.json", &m.cfg) == LLMGPU_OK,
                  "%s: %s", shapes[_i].name, lgt_log_text());
    ck_assert_int_eq(llmgpu_session_memory(&m, NULL, &mem), LLMGPU_OK);
    /* the scratch formula's biggest terms, so a formula that lost them fails here */
    ck_assert_uint_ge(mem.scratch_bytes, 3ull * 512 * m.cfg.n_ff * 4 + 2ull * 512 * m.cfg.n_embd * 4);
    w_q4 = weight_bytes_of(&m.cfg, 4.5, 16);
    w_f16 = weight_bytes_of(&m.cfg, 16, 16);
    ck_assert_msg(w_q4 > 3.5e9 && w_f16 > 1.3e10, "%s: %.3g / %.3g bytes is not a 7B shape",
                  shapes[_i].name, w_q4, w_f16);
    frac = (double)mem.scratch_bytes / w_q4;
    fprintf(stderr,
            "check_memory: %s defaults: scratch %.1f MiB = %.2f %% of q4 weights (%.0f MiB), "
            "%.2f %% of f16 (%.0f MiB); KV cache %.0f MiB\n",
            shapes[_i].name, mem.scratch_bytes / MIB, 100 * frac, w_q4 / MIB,
            100 * mem.scratch_bytes / w_f16, w_f16 / MIB, mem.kv_bytes / MIB);
    ck_assert_msg(frac < 0.05, "%s: scratch %.1f MiB is %.2f %% of the q4 weights (bound 5 %%)",
                  shapes[_i].name, mem.scratch_bytes / MIB, 100 * frac);
}
END_TEST

/* ---- Load: host peak and device bytes while loading ~300 MB ---- */

/* The big checkpoint: 12 layers of 1024 x 2816, f16 (25.7 MB a layer). */
#define BIG_E 1024u
#define BIG_F 2816u
#define BIG_L 12u
#define BIG_NH 8u
#define BIG_NKV 4u
#define BIG_V 4096u

static char big_dir[2][512]; /* [0] untied, [1] tied */

static int put(FILE *f, const void *p, size_t n) {
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

/* Write config.json and model.safetensors of the big shape into dir (which holds
 * mkmodel.py's tokenizer of a 300-token vocab; the config's vocab may be larger). */
static int write_big(const char *dir, int tied) {
    static const char *per_layer[] = {
        "input_layernorm.weight",      "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",     "self_attn.o_proj.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight",        "mlp.up_proj.weight",      "mlp.down_proj.weight"};
    const uint64_t HD = BIG_E / BIG_NH;
    const uint64_t shp[9][2] = {{BIG_E, 0},       {BIG_NH * HD, BIG_E}, {BIG_NKV * HD, BIG_E},
                                {BIG_NKV * HD, BIG_E}, {BIG_E, BIG_NH * HD}, {BIG_E, 0},
                                {BIG_F, BIG_E},   {BIG_F, BIG_E},       {BIG_E, BIG_F}};
    size_t hcap = 1 << 16, hl = 0;
    char *h = malloc(hcap), path[600], cfg[1024];
    uint16_t *pat = malloc(65536 * sizeof *pat), one = 0x3C00;
    uint64_t off = 0, x = 0x9E3779B97F4A7C15ull;
    FILE *f;
    int rc = -1;
    struct {
        char name[96];
        uint64_t r, c;
    } t[2 + 9 * BIG_L + 1];
    size_t nt = 0;
    if (!h || !pat)
        goto out;
    /* small f16 values in about +-0.03: sign, exponent 2^-6..2^-9, random mantissa */
    for (size_t i = 0; i < 65536; i++) {
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        uint64_t r = x * 0x2545F4914F6CDD1Dull;
        pat[i] = (uint16_t)(((r >> 63) << 15) | ((9 + ((r >> 40) & 3)) << 10) | (r & 0x3FF));
    }
    snprintf(t[nt].name, sizeof t[nt].name, "model.embed_tokens.weight");
    t[nt].r = BIG_V, t[nt++].c = BIG_E;
    for (unsigned l = 0; l < BIG_L; l++)
        for (int k = 0; k < 9; k++) {
            snprintf(t[nt].name, sizeof t[nt].name, "model.layers.%u.%s", l, per_layer[k]);
            t[nt].r = shp[k][0], t[nt++].c = shp[k][1];
        }
    snprintf(t[nt].name, sizeof t[nt].name, "model.norm.weight");
    t[nt].r = BIG_E, t[nt++].c = 0;
    if (!tied) {
        snprintf(t[nt].name, sizeof t[nt].name, "lm_head.weight");
        t[nt].r = BIG_V, t[nt++].c = BIG_E;
    }
    hl = (size_t)snprintf(h, hcap, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < nt; i++) {
        uint64_t n = t[i].r * (t[i].c ? t[i].c : 1) * 2;
        if (t[i].c)
            hl += (size_t)snprintf(h + hl, hcap - hl,
                                   ",\"%s\":{\"dtype\":\"F16\",\"shape\":[%llu,%llu],"
                                   "\"data_offsets\":[%llu,%llu]}",
                                   t[i].name, (unsigned long long)t[i].r,
                                   (unsigned long long)t[i].c, (unsigned long long)off,
                                   (unsigned long long)(off + n));
        else
            hl += (size_t)snprintf(h + hl, hcap - hl,
                                   ",\"%s\":{\"dtype\":\"F16\",\"shape\":[%llu],"
                                   "\"data_offsets\":[%llu,%llu]}",
                                   t[i].name, (unsigned long long)t[i].r, (unsigned long long)off,
                                   (unsigned long long)(off + n));
        off += n;
    }
    h[hl++] = '}';
    while (hl % 8)
        h[hl++] = ' ';
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    if (!f)
        goto out;
    {
        uint64_t hl64 = hl;
        int bad = put(f, &hl64, 8) || put(f, h, hl);
        for (size_t i = 0; i < nt && !bad; i++) {
            uint64_t n = t[i].r * (t[i].c ? t[i].c : 1);
            if (!t[i].c) /* norm weights: 1.0 */
                for (uint64_t k = 0; k < n && !bad; k++)
                    bad = put(f, &one, 2);
            else
                for (uint64_t k = 0; k < n && !bad; k += 65536)
                    bad = put(f, pat, (size_t)(n - k < 65536 ? n - k : 65536) * 2);
        }
        if (fclose(f) != 0 || bad)
            goto out;
    }
    snprintf(cfg, sizeof cfg,
             "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
             "\"hidden_size\":%u,\"intermediate_size\":%u,\"num_hidden_layers\":%u,"
             "\"num_attention_heads\":%u,\"num_key_value_heads\":%u,\"vocab_size\":%u,"
             "\"max_position_embeddings\":256,\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,"
             "\"hidden_act\":\"silu\",\"tie_word_embeddings\":%s,\"bos_token_id\":1,"
             "\"eos_token_id\":2,\"torch_dtype\":\"float16\"}",
             BIG_E, BIG_F, BIG_L, BIG_NH, BIG_NKV, BIG_V, tied ? "true" : "false");
    rc = lgt_write(dir, "config.json", cfg, strlen(cfg));
out:
    free(h);
    free(pat);
    return rc;
}

static void big_setup(void) {
    for (int tied = 0; tied < 2; tied++) {
        ck_assert_int_eq(lgt_mkmodel("--layers 1 --hidden 32 --heads 4 --ff 64 --vocab 300 "
                                     "--ctx 256",
                                     big_dir[tied], sizeof big_dir[tied]),
                         0);
        ck_assert_msg(write_big(big_dir[tied], tied) == 0, "writing %s failed", big_dir[tied]);
    }
}

static void big_teardown(void) {
    char cmd[1200];
    for (int i = 0; i < 2; i++)
        if (big_dir[i][0]) {
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", big_dir[i]);
            (void)tu_run(cmd);
        }
}

/* A counting allocator that knows the live bytes (malloc_usable_size) and their peak. */
static _Atomic long long heap_live, heap_peak;
static void *h_alloc(size_t n, void *user) {
    void *p = malloc(n);
    (void)user;
    if (p) {
        long long now = atomic_fetch_add(&heap_live, (long long)malloc_usable_size(p)) +
                        (long long)malloc_usable_size(p);
        long long pk = atomic_load(&heap_peak);
        while (now > pk && !atomic_compare_exchange_weak(&heap_peak, &pk, now))
            ;
    }
    return p;
}
static void h_free(void *p, void *user) {
    (void)user;
    if (p) {
        atomic_fetch_sub(&heap_live, (long long)malloc_usable_size(p));
        free(p);
    }
}
static const struct llmgpu_allocator heap_allocator = {h_alloc, h_free, NULL};

/* RssAnon of this process in bytes, or -1. */
static long long rss_anon(void) {
    char line[256];
    long long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

struct sampler {
    atomic_int stop;
    _Atomic long long peak;
    atomic_long samples;
};

static void sample(struct sampler *s) {
    long long a = rss_anon(), pk = atomic_load(&s->peak);
    while (a > pk && !atomic_compare_exchange_weak(&s->peak, &pk, a))
        ;
    atomic_fetch_add(&s->samples, 1);
}

static void *sampler_main(void *arg) {
    struct sampler *s = arg;
    struct timespec ts = {0, 1000000};
    while (!atomic_load(&s->stop)) {
        sample(s);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int on_progress(uint64_t done, uint64_t total, void *user) {
    (void)done;
    (void)total;
    sample(user); /* on the loading thread too, at every step of the upload */
    return 0;
}

static struct llmgpu_context *mem_context(struct tu_log *log) {
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx = NULL;
    llmgpu_context_params_init(&cp);
    cp.log_fn = tu_log_fn;
    cp.log_user = log;
    cp.allocator = &heap_allocator;
    ck_assert_int_eq(llmgpu_context_create(&cp, &ctx), LLMGPU_OK);
    return ctx;
}

static const enum llmgpu_weight_type load_types[] = {LLMGPU_WEIGHT_TYPE_F16,
                                                     LLMGPU_WEIGHT_TYPE_Q8_0};

START_TEST(load_host_peak_bounded) {
    static struct tu_log log;
    struct llmgpu_context *ctx;
    struct llmgpu_model *m = NULL;
    struct llmgpu_model_params mp;
    struct llmgpu_model_info mi = {.struct_size = sizeof mi};
    struct llmgpu_context_stats s0 = {.struct_size = sizeof s0}, s1 = s0;
    struct sampler smp;
    pthread_t th;
    long long anon0, over, heap0, heap_before_ctx = atomic_load(&heap_live);
    double dev;
    enum llmgpu_status st;
    tu_log_clear(&log);
    ctx = mem_context(&log);
    llmgpu_model_params_init(&mp);
    mp.weight_type = load_types[_i];
    mp.progress_fn = on_progress;
    mp.progress_user = &smp;
    ck_assert_int_eq(llmgpu_context_stats(ctx, &s0), LLMGPU_OK);
    atomic_init(&smp.stop, 0);
    atomic_init(&smp.samples, 0);
    heap0 = atomic_load(&heap_live);
    atomic_store(&heap_peak, heap0);
    anon0 = rss_anon();
    ck_assert_msg(anon0 > 0, "no RssAnon in /proc/self/status");
    atomic_init(&smp.peak, anon0);
    ck_assert_int_eq(pthread_create(&th, NULL, sampler_main, &smp), 0);
    st = llmgpu_model_load(ctx, big_dir[0], &mp, &m);
    atomic_store(&smp.stop, 1);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(st == LLMGPU_OK, "load: %s\n%s", llmgpu_status_name(st), log.text);
    ck_assert_int_eq(llmgpu_context_stats(ctx, &s1), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_model_info(m, &mi), LLMGPU_OK);
    dev = (double)(s1.device_bytes - s0.device_bytes);
    over = atomic_load(&smp.peak) - anon0 - (long long)dev;
    fprintf(stderr,
            "check_memory: load %s: %.0f MiB on the device, host anonymous peak +%.0f MiB "
            "(%.0f MiB beyond the device's), library heap peak %.2f MiB, %ld samples\n",
            load_types[_i] == LLMGPU_WEIGHT_TYPE_F16 ? "f16" : "q8_0", dev / MIB,
            (atomic_load(&smp.peak) - anon0) / MIB, over / MIB,
            (atomic_load(&heap_peak) - heap0) / MIB, atomic_load(&smp.samples));
    ck_assert_uint_gt(mi.weight_bytes, 150u << 20); /* big enough that a copy would show */
    ck_assert_int_gt(atomic_load(&smp.samples), 20);
    ck_assert_msg(atomic_load(&heap_peak) - heap0 < (16ll << 20),
                  "the library's heap peaked at %.1f MiB during the load (bound 16 MiB)",
                  (atomic_load(&heap_peak) - heap0) / MIB);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* a sanitizer's shadow memory and quarantine are anonymous memory of their own */
    fprintf(stderr, "check_memory: host peak bound not asserted under a sanitizer\n");
#else
    ck_assert_msg(over <= (256ll << 20),
                  "loading took %.0f MiB of anonymous host memory beyond the %.0f MiB now on "
                  "the device (bound 256 MiB)",
                  over / MIB, dev / MIB);
#endif
    llmgpu_model_free(m);
    llmgpu_context_free(ctx);
    ck_assert_msg(atomic_load(&heap_live) == heap_before_ctx, "%lld heap bytes not given back",
                  atomic_load(&heap_live) - heap_before_ctx);
}
END_TEST

/* Weights on the device equal the tensors' sizes: nothing is held twice. */
START_TEST(no_second_copy_on_device) {
    static struct tu_log log;
    const int tied = _i & 1;
    const enum llmgpu_weight_type wt = load_types[_i >> 1];
    struct llmgpu_context *ctx;
    struct llmgpu_model *m = NULL;
    struct llmgpu_model_params mp;
    struct llmgpu_model_info mi = {.struct_size = sizeof mi};
    struct llmgpu_context_stats s0 = {.struct_size = sizeof s0}, s1 = s0;
    struct lg_model_config c;
    double want, dev;
    enum llmgpu_status st;
    tu_log_clear(&log);
    ctx = mem_context(&log);
    llmgpu_model_params_init(&mp);
    mp.weight_type = wt;
    ck_assert_int_eq(llmgpu_context_stats(ctx, &s0), LLMGPU_OK);
    st = llmgpu_model_load(ctx, big_dir[tied], &mp, &m);
    ck_assert_msg(st == LLMGPU_OK, "load: %s\n%s", llmgpu_status_name(st), log.text);
    ck_assert_int_eq(llmgpu_context_stats(ctx, &s1), LLMGPU_OK);
    ck_assert_int_eq(llmgpu_model_info(m, &mi), LLMGPU_OK);
    memset(&c, 0, sizeof c);
    c.n_embd = BIG_E, c.n_ff = BIG_F, c.n_layer = BIG_L, c.n_head = BIG_NH;
    c.n_kv_head = BIG_NKV, c.head_dim = BIG_E / BIG_NH, c.n_vocab = BIG_V;
    c.tie_word_embeddings = tied;
    /* q8_0: 32 int8 values and one f16 scale a block: 8.5 bits */
    want = weight_bytes_of(&c, wt == LLMGPU_WEIGHT_TYPE_F16 ? 16 : 8.5, 16);
    dev = (double)(s1.device_bytes - s0.device_bytes);
    fprintf(stderr, "check_memory: %s %s: tensors %.0f bytes, weight_bytes %llu, device +%.0f\n",
            wt == LLMGPU_WEIGHT_TYPE_F16 ? "f16" : "q8_0", tied ? "tied" : "untied", want,
            (unsigned long long)mi.weight_bytes, dev);
    /* weight_bytes and the device's growth: the tensors plus at most one 256-byte
     * dummy buffer and 256 bytes of alignment for each of the (2 + 9 L) buffers */
    ck_assert_msg(mi.weight_bytes >= want && mi.weight_bytes <= want + 256 * (3 + 9 * BIG_L),
                  "weight_bytes %llu, the tensors are %.0f bytes",
                  (unsigned long long)mi.weight_bytes, want);
    ck_assert_msg(dev >= want && dev <= want + 256 * (3 + 9 * BIG_L),
                  "the load added %.0f device bytes, the tensors are %.0f", dev, want);
    llmgpu_model_free(m);
    ck_assert_int_eq(llmgpu_context_stats(ctx, &s1), LLMGPU_OK);
    ck_assert_uint_eq(s1.device_bytes, s0.device_bytes);
    llmgpu_context_free(ctx);
}
END_TEST

Suite *memory_suite(void) {
    Suite *s = suite_create("memory");
    TCase *budget = tcase_create("Budget"), *load = tcase_create("Load");
    tcase_add_loop_test(budget, scratch_under_5_percent_of_7b_weights, 0,
                        (int)(sizeof shapes / sizeof shapes[0]));
    suite_add_tcase(s, budget);
    tcase_set_tags(load, "gpu");
    tcase_add_unchecked_fixture(load, big_setup, big_teardown);
    tcase_add_loop_test(load, load_host_peak_bounded, 0, 2);
    tcase_add_loop_test(load, no_second_copy_on_device, 0, 4);
    tcase_set_timeout(load, 900);
    suite_add_tcase(s, load);
    return s;
}
