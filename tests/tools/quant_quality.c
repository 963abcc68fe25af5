/*
 * quant_quality.c - what load-time quantization costs in quality, measured on
 * the CPU with the C reference forward pass (tests/ref) run on the weights a
 * quantized load puts on the GPU (qref_quantize_model: ggml's quantizers,
 * dequantized; the GPU kernels compute the same to a logits NMSE ~1e-8, see
 * tests/check_quant.c). For each variant: perplexity, mean and max
 * KL(p_base || p_variant) of the next-token distribution in nats, and the
 * top-1 agreement with the base, where the base is the checkpoint's own
 * weights (f16 for the demo model, widened exactly). Evaluation as
 * `llmgpu perplexity` does it: the token ids (`llmgpu tokenize --ids`, i.e.
 * the whole file with <s>) in non-overlapping windows of n_ctx, each from
 * an empty cache, token i+1 scored from the logits after token i.
 * Variants: q8_0, q4_0, q4_K, q6_K, and q8_0/q4_0 with the LM head quantized
 * too; a comma-separated VARIANTS list (names as in the table, e.g.
 * "q6_K") runs only those, besides the base. Each variant is one thread.
 *
 *   make lib && build/llmgpu tokenize -m models/demo -f models/demo/heldout.txt --ids > ids.txt
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Ilib -Itests -o build/quant_quality \
 *       tests/tools/quant_quality.c tests/ref/forward.c tests/ref/ops.c tests/ref/ckpt.c \
 *       tests/ref/gptq_ref.c tests/ref/quant_ref.c build/libllmgpu.a -lvulkan -lcjson \
 *       -lpcre2-8 -lutf8proc -lxxhash -lstdc++ -lpthread -lm
 *   build/quant_quality models/demo ids.txt [n_ctx 512] [max_tokens (0: all)] [VARIANTS]
 * (the static library's kernel compiler needs the shaderc archives only when
 * called; add the Makefile's SHADERC_LINK if the linker asks for them).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "ref/quant_ref.h"
#include "ref/ref.h"

struct variant {
    const char *name;
    enum llmgpu_weight_type wt;
    int lm_head;
    struct ref_model m;
    struct ref_state s;
    float *logits;
    double nll, kl, kl_max;
    size_t agree;
};

struct step {
    struct variant *v;
    int token, pos;
};

static void *run_step(void *arg) {
    struct step *st = arg;
    if (ref_forward(&st->v->m, &st->v->s, st->token, st->pos, st->v->logits) != 0)
        abort();
    return NULL;
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
        int lm_head;
    } kinds[] = {
        {"base", LLMGPU_WEIGHT_TYPE_DEFAULT, 0},       {"q8_0", LLMGPU_WEIGHT_TYPE_Q8_0, 0},
        {"q4_0", LLMGPU_WEIGHT_TYPE_Q4_0, 0},          {"q4_K", LLMGPU_WEIGHT_TYPE_Q4_K, 0},
        {"q6_K", LLMGPU_WEIGHT_TYPE_Q6_K, 0},
        {"q8_0+lm_head", LLMGPU_WEIGHT_TYPE_Q8_0, 1}, {"q4_0+lm_head", LLMGPU_WEIGHT_TYPE_Q4_0, 1},
    };
    enum { NK = sizeof kinds / sizeof kinds[0] };
    struct variant vs[NK];
    struct lg_checkpoint *ck = NULL;
    FILE *f;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, counted = 0;
    int n_ctx = argc > 3 ? atoi(argv[3]) : 512, nv, NV = 0;
    long tok;
    double *pb, *pv;
    if (argc < 3) {
        fprintf(stderr,
                "usage: quant_quality MODEL_DIR IDS_FILE [n_ctx] [max_tokens] [VARIANTS]\n");
        return 2;
    }
    if (!(f = fopen(argv[2], "r")))
        return 1;
    while (fscanf(f, "%ld", &tok) == 1) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            ids = realloc(ids, cap * sizeof *ids);
        }
        ids[n++] = (int32_t)tok;
    }
    fclose(f);
    if (n_ctx < 2) {
        fprintf(stderr, "quant_quality: n_ctx must be at least 2\n");
        return 2;
    }
    if (argc > 4 && atol(argv[4]) > 0 && (size_t)atol(argv[4]) < n)
        n = (size_t)atol(argv[4]);
    if (lg_ckpt_open(NULL, NULL, argv[1], &ck) != LLMGPU_OK)
        return 1;
    memset(vs, 0, sizeof vs);
    for (int j = 0; j < NK; j++) {
        int i = NV;
        if (j > 0 && argc > 5) { /* only the listed variants (the base always) */
            const char *p = argv[5];
            size_t len = strlen(kinds[j].name);
            int found = 0;
            while (*p) {
                size_t w = strcspn(p, ",");
                found |= w == len && strncmp(p, kinds[j].name, len) == 0;
                p += w + (p[w] == ',');
            }
            if (!found)
                continue;
        }
        NV++;
        vs[i].name = kinds[j].name;
        vs[i].wt = kinds[j].wt;
        vs[i].lm_head = kinds[j].lm_head;
        if (ref_model_from_ckpt(ck, &vs[i].m) != 0 || ref_state_alloc(&vs[i].m, n_ctx, &vs[i].s))
            return 1;
        if (i > 0)
            qref_quantize_model(&vs[i].m, vs[i].wt, vs[i].lm_head);
        vs[i].logits = malloc(ck->cfg.n_vocab * sizeof(float));
    }
    if (argc > 5) { /* every listed name must have matched one variant */
        int listed = 1;
        for (const char *p = argv[5]; *p; p++)
            listed += *p == ',';
        if (listed != NV - 1) {
            fprintf(stderr, "quant_quality: unknown variant in \"%s\"\n", argv[5]);
            return 2;
        }
    }
    nv = (int)ck->cfg.n_vocab;
    pb = malloc((size_t)nv * sizeof *pb);
    pv = malloc((size_t)nv * sizeof *pv);
    for (size_t w0 = 0; w0 < n; w0 += (size_t)n_ctx) {
        size_t w1 = w0 + (size_t)n_ctx < n ? w0 + (size_t)n_ctx : n;
        for (size_t i = w0; i + 1 < w1; i++) {
            struct step steps[NK];
            pthread_t th[NK];
            for (int k = 0; k < NV; k++) {
                steps[k] = (struct step){&vs[k], ids[i], (int)(i - w0)};
                if (pthread_create(&th[k], NULL, run_step, &steps[k]) != 0)
                    return 1;
            }
            for (int k = 0; k < NV; k++)
                pthread_join(th[k], NULL);
            log_softmax(vs[0].logits, nv, pb);
            for (int k = 0; k < NV; k++) {
                double kl = 0;
                int best = 0, best_b = 0;
                log_softmax(vs[k].logits, nv, pv);
                for (int t = 0; t < nv; t++) {
                    kl += exp(pb[t]) * (pb[t] - pv[t]);
                    best = vs[k].logits[t] > vs[k].logits[best] ? t : best;
                    best_b = vs[0].logits[t] > vs[0].logits[best_b] ? t : best_b;
                }
                vs[k].kl += kl;
                vs[k].kl_max = kl > vs[k].kl_max ? kl : vs[k].kl_max;
                vs[k].nll -= pv[ids[i + 1]];
                vs[k].agree += best == best_b;
            }
            counted++;
        }
    }
    printf("%zu tokens scored, windows of %d, %s\n", counted, n_ctx, argv[1]);
    printf("| weights | perplexity | mean NLL | mean KL vs base (nats) | max KL | top-1 agreement |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int k = 0; k < NV; k++)
        printf("| %s | %.4f | %.5f | %.3g | %.3g | %.2f %% |\n", vs[k].name,
               exp(vs[k].nll / (double)counted), vs[k].nll / (double)counted,
               vs[k].kl / (double)counted, vs[k].kl_max,
               100.0 * (double)vs[k].agree / (double)counted);
    for (int k = 0; k < NV; k++) {
        ref_state_free(&vs[k].s);
        ref_model_free(&vs[k].m);
        free(vs[k].logits);
    }
    lg_ckpt_close(ck);
    free(pb);
    free(pv);
    free(ids);
    return 0;
}
