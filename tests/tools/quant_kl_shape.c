/*
 * quant_kl_shape.c - what load-time quantization does to the next-token
 * distribution of a model of TinyLlama-1.1B's shape (hidden 2048, 22 layers,
 * 32 heads, 4 KV heads, intermediate 5632, vocab 32000, untied LM head,
 * rope_theta 10000, rms_norm_eps 1e-5) with random weights, as
 * tools/make_random_model.py builds one for the GPU benchmarks: every matrix
 * N(0, SCALE) rounded to f16, norms 1. No checkpoint is read: the weights are
 * generated in memory from a fixed seed (tests/ref's xorshift64* and
 * Box-Muller, so not the same values as the torch script's, same
 * distribution), which needs no numpy/torch.
 *
 * Each job is the C reference forward pass (tests/ref/forward.c) over the
 * f16 weights widened exactly ("base"), or over those weights quantized and
 * dequantized as a quantized load puts them on the GPU (qref_quantize_model:
 * ggml's quantizers; every TinyLlama projection has rows of a multiple of
 * 256, so q4_K and q6_K apply to all seven; embedding and LM head stay f16).
 * Each job runs one fixed pseudo-random token sequence (BOS 1, then tokens
 * uniform in [3, 32000), seed SEED) from position 0 and keeps the logits after
 * every token. Printed against the base: mean and max KL(p_base || p_variant)
 * in nats, top-1 agreement, logits NMSE; for the base, the mean entropy and
 * top-1 probability of its distributions (how flat they are).
 *
 * Memory: the f16 weights (2.2 GB) plus one f32 model (4.4 GB) per thread.
 *
 *   cc -O2 -march=native -fassociative-math -fno-signed-zeros -fno-trapping-math \
 *       -std=c11 -D_GNU_SOURCE -Iinclude -Ilib -Itests -o build/quant_kl_shape \
 *       tests/tools/quant_kl_shape.c tests/ref/forward.c tests/ref/ops.c \
 *       tests/ref/quant_ref.c -lpthread -lm
 *   build/quant_kl_shape [SCALE 0.02] [POSITIONS 128] [VARIANTS q8_0,q4_0,q4_K,q6_K]
 *                        [THREADS 2] [SEED 1]
 *
 * The reassociation flags let the compiler vectorize the f32 dot products of
 * ref_matvec; they change only the rounding of the sums, identically for
 * every job, so the measured differences are the weights'. The forward pass
 * is memory-bound on the 4.4 GB of f32 weights (1.3-3.8 s a token and job
 * on the shared 2-core VM).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ref/quant_ref.h"
#include "ref/ref.h"

struct job {
    const char *name;
    enum llmgpu_weight_type wt; /* DEFAULT: the f16 base */
    float *logits;              /* (n_pos, n_vocab) */
    double t_build, t_quant, t_fwd;
};

struct shared {
    struct lg_model_config cfg;
    const uint16_t *w16; /* the f16 weights, in ref_model's layout */
    const float *f16_to_f32; /* 65536 entries: qref_fp16_to_fp32 of each */
    size_t n_mem;
    const int32_t *tokens;
    int n_pos;
    struct job *jobs;
    int n_jobs, next;
    pthread_mutex_t mu;
    int failed;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run_job(struct shared *sh, struct job *j) {
    struct ref_model m;
    struct ref_state s;
    double t0 = now_s();
    if (ref_model_alloc(&sh->cfg, &m) != 0 || m.n_mem != sh->n_mem) {
        fprintf(stderr, "quant_kl_shape: %s: out of memory\n", j->name);
        ref_model_free(&m);
        return -1;
    }
    for (size_t i = 0; i < m.n_mem; i++)
        m.mem[i] = sh->f16_to_f32[sh->w16[i]];
    double t1 = now_s();
    if (j->wt != LLMGPU_WEIGHT_TYPE_DEFAULT)
        qref_quantize_model(&m, j->wt, 0);
    double t2 = now_s();
    if (ref_state_alloc(&m, sh->n_pos, &s) != 0) {
        ref_model_free(&m);
        return -1;
    }
    for (int p = 0; p < sh->n_pos; p++) {
        if (ref_forward(&m, &s, sh->tokens[p], p,
                        j->logits + (size_t)p * sh->cfg.n_vocab) != 0) {
            ref_state_free(&s);
            ref_model_free(&m);
            return -1;
        }
        if ((p + 1) % 16 == 0)
            fprintf(stderr, "  %s: %d/%d positions, %.0f s\n", j->name, p + 1, sh->n_pos,
                    now_s() - t2);
    }
    j->t_build = t1 - t0;
    j->t_quant = t2 - t1;
    j->t_fwd = now_s() - t2;
    fprintf(stderr, "%s done: widen %.1f s, quantize %.1f s, forward %.1f s (%.2f s a token)\n",
            j->name, j->t_build, j->t_quant, j->t_fwd, j->t_fwd / sh->n_pos);
    ref_state_free(&s);
    ref_model_free(&m);
    return 0;
}

static void *worker(void *arg) {
    struct shared *sh = arg;
    for (;;) {
        pthread_mutex_lock(&sh->mu);
        int k = sh->next < sh->n_jobs && !sh->failed ? sh->next++ : -1;
        pthread_mutex_unlock(&sh->mu);
        if (k < 0)
            return NULL;
        if (run_job(sh, &sh->jobs[k]) != 0) {
            pthread_mutex_lock(&sh->mu);
            sh->failed = 1;
            pthread_mutex_unlock(&sh->mu);
        }
    }
}

static void log_softmax(const float *x, int n, double *out) {
    double m = x[0], s = 0;
    for (int i = 1; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int i = 0; i < n; i++)
        s += exp(x[i] - m);
    s = log(s);
    for (int i = 0; i < n; i++)
        out[i] = x[i] - m - s;
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        enum llmgpu_weight_type wt;
    } kinds[] = {{"q8_0", LLMGPU_WEIGHT_TYPE_Q8_0},
                 {"q4_0", LLMGPU_WEIGHT_TYPE_Q4_0},
                 {"q4_K", LLMGPU_WEIGHT_TYPE_Q4_K},
                 {"q6_K", LLMGPU_WEIGHT_TYPE_Q6_K}};
    enum { NK = sizeof kinds / sizeof kinds[0] };
    float scale = argc > 1 ? (float)atof(argv[1]) : 0.02f;
    int n_pos = argc > 2 ? atoi(argv[2]) : 128;
    const char *list = argc > 3 ? argv[3] : "q8_0,q4_0,q4_K,q6_K";
    int n_threads = argc > 4 ? atoi(argv[4]) : 2;
    uint64_t seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 1;
    struct job jobs[NK + 1];
    struct shared sh;
    struct ref_model m0;
    struct ref_rng r;
    int n_jobs = 1, listed = 1;
    double t_start = now_s();

    if (!(scale > 0) || n_pos < 1 || n_threads < 1 || n_threads > 8) {
        fprintf(stderr, "usage: quant_kl_shape [SCALE>0] [POSITIONS>=1] [VARIANTS] [THREADS 1-8] "
                        "[SEED]\n");
        return 2;
    }
    memset(jobs, 0, sizeof jobs);
    jobs[0].name = "base (f16)";
    jobs[0].wt = LLMGPU_WEIGHT_TYPE_DEFAULT;
    for (const char *p = list; *p; p++)
        listed += *p == ',';
    for (int k = 0; k < NK; k++) {
        const char *p = list;
        size_t len = strlen(kinds[k].name);
        while (*p) {
            size_t w = strcspn(p, ",");
            if (w == len && strncmp(p, kinds[k].name, len) == 0) {
                jobs[n_jobs].name = kinds[k].name;
                jobs[n_jobs++].wt = kinds[k].wt;
                break;
            }
            p += w + (p[w] == ',');
        }
    }
    if (n_jobs - 1 != listed) {
        fprintf(stderr, "quant_kl_shape: unknown variant in \"%s\" (q8_0, q4_0, q4_K, q6_K)\n",
                list);
        return 2;
    }

    memset(&sh, 0, sizeof sh);
    struct lg_model_config *c = &sh.cfg;
    c->arch = LG_ARCH_LLAMA;
    strcpy(c->arch_name, "LlamaForCausalLM");
    c->n_vocab = 32000;
    c->n_embd = 2048;
    c->n_ff = 5632;
    c->n_layer = 22;
    c->n_head = 32;
    c->n_kv_head = 4;
    c->head_dim = 64;
    c->n_ctx_train = 2048;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_scaling = LG_ROPE_SCALING_NONE;
    c->rope_factor = 1.0f;
    c->bos_id = 1;
    c->eos_ids[0] = 2;
    c->n_eos = 1;

    /* the f16 weights: every value N(0, scale) rounded to f16, then the norms 1 */
    if (ref_model_alloc(c, &m0) != 0) {
        fprintf(stderr, "quant_kl_shape: out of memory (f32 model)\n");
        return 1;
    }
    ref_rng_seed(&r, seed);
    ref_fill_normal(&r, m0.mem, m0.n_mem, 0.0f, scale);
    for (size_t i = 0; i < (size_t)c->n_layer * c->n_embd; i++)
        m0.w.rms_att_weight[i] = m0.w.rms_ffn_weight[i] = 1.0f;
    for (size_t i = 0; i < c->n_embd; i++)
        m0.w.rms_final_weight[i] = 1.0f;
    uint16_t *w16 = malloc(m0.n_mem * sizeof *w16);
    if (!w16) {
        fprintf(stderr, "quant_kl_shape: out of memory (f16 weights)\n");
        return 1;
    }
    for (size_t i = 0; i < m0.n_mem; i++)
        w16[i] = qref_fp32_to_fp16(m0.mem[i]);
    sh.w16 = w16;
    float *lut = malloc(65536 * sizeof *lut);
    if (!lut)
        return 1;
    for (uint32_t h = 0; h < 65536; h++)
        lut[h] = qref_fp16_to_fp32((uint16_t)h);
    sh.f16_to_f32 = lut;
    sh.n_mem = m0.n_mem;
    fprintf(stderr, "weights: %zu values N(0, %g) as f16, seed %llu, %.1f s\n", m0.n_mem,
            (double)scale, (unsigned long long)seed, now_s() - t_start);
    ref_model_free(&m0);

    int32_t *tokens = malloc((size_t)n_pos * sizeof *tokens);
    ref_rng_seed(&r, seed + 1000);
    tokens[0] = 1;
    for (int p = 1; p < n_pos; p++)
        tokens[p] = 3 + (int32_t)(ref_rng_u64(&r) % (c->n_vocab - 3));
    sh.tokens = tokens;
    sh.n_pos = n_pos;
    for (int k = 0; k < n_jobs; k++) {
        jobs[k].logits = malloc((size_t)n_pos * c->n_vocab * sizeof(float));
        if (!jobs[k].logits)
            return 1;
    }
    sh.jobs = jobs;
    sh.n_jobs = n_jobs;
    pthread_mutex_init(&sh.mu, NULL);
    pthread_t th[8];
    if (n_threads > n_jobs)
        n_threads = n_jobs;
    for (int t = 0; t < n_threads; t++)
        if (pthread_create(&th[t], NULL, worker, &sh) != 0)
            return 1;
    for (int t = 0; t < n_threads; t++)
        pthread_join(th[t], NULL);
    if (sh.failed) {
        fprintf(stderr, "quant_kl_shape: a job failed\n");
        return 1;
    }

    int nv = (int)c->n_vocab;
    double *pb = malloc((size_t)nv * sizeof *pb), *pv = malloc((size_t)nv * sizeof *pv);
    double ent = 0, top1p = 0, ent_min = INFINITY, ent_max = 0;
    for (int p = 0; p < n_pos; p++) {
        double h = 0, mx = 0;
        log_softmax(jobs[0].logits + (size_t)p * nv, nv, pb);
        for (int t = 0; t < nv; t++) {
            h -= exp(pb[t]) * pb[t];
            mx = exp(pb[t]) > mx ? exp(pb[t]) : mx;
        }
        ent += h;
        top1p += mx;
        ent_min = h < ent_min ? h : ent_min;
        ent_max = h > ent_max ? h : ent_max;
    }
    printf("TinyLlama shape, weights N(0, %g) in f16, norms 1, seed %llu; %d positions "
           "(BOS + pseudo-random tokens), %d thread(s), %.0f s in all\n",
           (double)scale, (unsigned long long)seed, n_pos, n_threads, now_s() - t_start);
    printf("base: mean entropy %.4f nats (min %.4f, max %.4f; uniform over 32000 = %.4f), "
           "mean top-1 probability %.4g\n",
           ent / n_pos, ent_min, ent_max, log((double)nv), top1p / n_pos);
    printf("| weights | mean KL vs f16 (nats) | max KL | top-1 agreement | logits NMSE |\n");
    printf("|---|---|---|---|---|\n");
    for (int k = 1; k < n_jobs; k++) {
        double kl_sum = 0, kl_max = 0;
        int agree = 0;
        for (int p = 0; p < n_pos; p++) {
            const float *lb = jobs[0].logits + (size_t)p * nv, *lv = jobs[k].logits + (size_t)p * nv;
            double kl = 0;
            log_softmax(lb, nv, pb);
            log_softmax(lv, nv, pv);
            for (int t = 0; t < nv; t++)
                kl += exp(pb[t]) * (pb[t] - pv[t]);
            kl_sum += kl;
            kl_max = kl > kl_max ? kl : kl_max;
            agree += ref_argmax(lb, nv) == ref_argmax(lv, nv);
        }
        printf("| %s | %.3g | %.3g | %d/%d (%.1f %%) | %.3g |\n", jobs[k].name, kl_sum / n_pos,
               kl_max, agree, n_pos, 100.0 * agree / n_pos,
               ref_nmse(jobs[k].logits, jobs[0].logits, (size_t)n_pos * nv));
    }
    for (int k = 0; k < n_jobs; k++)
        printf("%s: widen %.1f s, quantize %.1f s, forward %.1f s\n", jobs[k].name,
               jobs[k].t_build, jobs[k].t_quant, jobs[k].t_fwd);
    for (int k = 0; k < n_jobs; k++)
        free(jobs[k].logits);
    free(pb);
    free(pv);
    free(tokens);
    free(w16);
    free(lut);
    pthread_mutex_destroy(&sh.mu);
    return 0;
}
