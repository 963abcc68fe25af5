/*
 * quant_kl.c - quality of a quantized load against the default (f16) load of
 * the same model: perplexity of both on a text, the mean KL divergence
 * KL(p_f16 || p_quant) of the next-token distributions (nats), and how often
 * the top-1 tokens agree. Evaluation as `llmgpu perplexity` does it:
 * non-overlapping windows of n_ctx tokens, each from an empty cache, token
 * i+1 scored from the logits after token i. Public API only.
 *
 *   make lib && cc -O2 -std=c11 -Iinclude -o build/quant_kl tests/tools/quant_kl.c \
 *       -Lbuild -lllmgpu -Wl,-rpath,'$ORIGIN' -lm
 *   build/quant_kl models/demo models/demo/heldout.txt q8_0 [n_ctx [flags [max_tokens]]]
 *
 * flags: llmgpu_context_params.flags for the context of both loads (e.g. 128,
 * LLMGPU_CONTEXT_FLAG_MATVEC_INT_DOT, which changes only the quantized model's decode);
 * max_tokens: score only the first max_tokens tokens of the text.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmgpu.h"

/* as `llmgpu perplexity` tokenizes (and transformers) */
#define TOK_FLAGS (LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL | LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, enum llmgpu_status st) {
    fprintf(stderr, "quant_kl: %s: %s\n", what, llmgpu_status_string(st));
    exit(1);
}

/* log softmax of x into out, in double. */
static void log_softmax(const float *x, size_t n, double *out) {
    double m = x[0], s = 0;
    for (size_t i = 1; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (size_t i = 0; i < n; i++)
        s += exp(x[i] - m);
    s = log(s);
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] - m - s;
}

static size_t argmax(const float *x, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        enum llmgpu_weight_type t;
    } types[] = {{"q8_0", LLMGPU_WEIGHT_TYPE_Q8_0}, {"q4_0", LLMGPU_WEIGHT_TYPE_Q4_0},
                 {"q4_k", LLMGPU_WEIGHT_TYPE_Q4_K}, {"q6_k", LLMGPU_WEIGHT_TYPE_Q6_K},
                 {"f16", LLMGPU_WEIGHT_TYPE_F16},   {"bf16", LLMGPU_WEIGHT_TYPE_BF16},
                 {"f32", LLMGPU_WEIGHT_TYPE_F32}};
    struct llmgpu_context *ctx;
    struct llmgpu_context_params cp;
    struct llmgpu_model *mb, *mq;
    struct llmgpu_model_params mp;
    struct llmgpu_session *sb, *sq;
    struct llmgpu_session_params sp;
    struct llmgpu_model_info ib = {.struct_size = sizeof ib}, iq = {.struct_size = sizeof iq};
    enum llmgpu_weight_type wt = LLMGPU_WEIGHT_TYPE_MAX_ENUM;
    enum llmgpu_status st;
    FILE *f;
    char *text;
    long len;
    int32_t *ids;
    size_t n = 0, nv = 0, counted = 0, agree = 0;
    float *lb, *lq;
    double *pb, *pq, nll_b = 0, nll_q = 0, kl = 0, kl_max = 0, t0, t_load_b, t_load_q;
    uint32_t n_ctx;

    if (argc < 4) {
        fprintf(stderr, "usage: quant_kl MODEL_DIR TEXT_FILE q8_0|q4_0|q4_k|q6_k|... [n_ctx "
                        "[flags [max_tokens]]]\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(argv[3], types[i].name))
            wt = types[i].t;
    if (wt == LLMGPU_WEIGHT_TYPE_MAX_ENUM) {
        fprintf(stderr, "quant_kl: unknown type %s\n", argv[3]);
        return 2;
    }
    f = fopen(argv[2], "rb");
    if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fprintf(stderr, "quant_kl: cannot read %s\n", argv[2]);
        return 1;
    }
    text = malloc((size_t)len + 1);
    if (!text || fread(text, 1, (size_t)len, f) != (size_t)len)
        return 1;
    fclose(f);

    llmgpu_context_params_init(&cp);
    if (argc > 5)
        cp.flags = (uint32_t)strtoul(argv[5], NULL, 0);
    if ((st = llmgpu_context_create(&cp, &ctx)) != LLMGPU_OK)
        die("context", st);
    llmgpu_model_params_init(&mp);
    t0 = now_s();
    if ((st = llmgpu_model_load(ctx, argv[1], &mp, &mb)) != LLMGPU_OK)
        die("loading the default type", st);
    t_load_b = now_s() - t0;
    mp.weight_type = wt;
    t0 = now_s();
    if ((st = llmgpu_model_load(ctx, argv[1], &mp, &mq)) != LLMGPU_OK)
        die("loading the quantized type", st);
    t_load_q = now_s() - t0;
    llmgpu_model_info(mb, &ib);
    llmgpu_model_info(mq, &iq);

    st = llmgpu_tokenize(mb, text, (size_t)len, TOK_FLAGS, NULL, &n);
    ids = malloc((n ? n : 1) * sizeof *ids);
    if (st != LLMGPU_OK || !ids ||
        (st = llmgpu_tokenize(mb, text, (size_t)len, TOK_FLAGS, ids, &n)) != LLMGPU_OK)
        die("tokenizing", st);
    if (argc > 6 && (size_t)atol(argv[6]) < n)
        n = (size_t)atol(argv[6]);
    llmgpu_session_params_init(&sp);
    if (argc > 4)
        sp.n_ctx = (uint32_t)atoi(argv[4]);
    if ((st = llmgpu_session_create(mb, &sp, &sb)) != LLMGPU_OK ||
        (st = llmgpu_session_create(mq, &sp, &sq)) != LLMGPU_OK)
        die("sessions", st);
    n_ctx = llmgpu_session_n_ctx(sb);
    llmgpu_session_logits(sb, NULL, &nv);
    lb = malloc(nv * sizeof *lb);
    lq = malloc(nv * sizeof *lq);
    pb = malloc(nv * sizeof *pb);
    pq = malloc(nv * sizeof *pq);
    for (size_t w0 = 0; w0 < n; w0 += n_ctx) {
        size_t w1 = w0 + n_ctx < n ? w0 + n_ctx : n;
        llmgpu_session_reset(sb);
        llmgpu_session_reset(sq);
        for (size_t i = w0; i + 1 < w1; i++) {
            size_t k = nv, k2 = nv;
            double d = 0;
            if ((st = llmgpu_session_decode(sb, ids[i])) != LLMGPU_OK ||
                (st = llmgpu_session_decode(sq, ids[i])) != LLMGPU_OK ||
                (st = llmgpu_session_logits(sb, lb, &k)) != LLMGPU_OK ||
                (st = llmgpu_session_logits(sq, lq, &k2)) != LLMGPU_OK)
                die("evaluating", st);
            log_softmax(lb, nv, pb);
            log_softmax(lq, nv, pq);
            for (size_t v = 0; v < nv; v++)
                d += exp(pb[v]) * (pb[v] - pq[v]);
            kl += d;
            kl_max = d > kl_max ? d : kl_max;
            nll_b -= pb[ids[i + 1]];
            nll_q -= pq[ids[i + 1]];
            agree += argmax(lb, nv) == argmax(lq, nv);
            counted++;
        }
    }
    printf("type %s: %zu tokens scored (n_ctx %u, context flags 0x%x)\n", argv[3], counted,
           n_ctx, cp.flags);
    printf("  weights on the GPU: default %.2f MiB, %s %.2f MiB; load %.2f s / %.2f s\n",
           (double)ib.weight_bytes / (1 << 20), argv[3], (double)iq.weight_bytes / (1 << 20),
           t_load_b, t_load_q);
    printf("  perplexity: default %.4f, %s %.4f (%+.2f %%)\n", exp(nll_b / (double)counted),
           argv[3], exp(nll_q / (double)counted),
           100.0 * (exp((nll_q - nll_b) / (double)counted) - 1.0));
    printf("  KL(default || %s): mean %.6f nats, max %.4f; top-1 agreement %.2f %%\n", argv[3],
           kl / (double)counted, kl_max, 100.0 * (double)agree / (double)counted);
    llmgpu_session_free(sb);
    llmgpu_session_free(sq);
    llmgpu_model_free(mb);
    llmgpu_model_free(mq);
    llmgpu_context_free(ctx);
    free(lb);
    free(lq);
    free(pb);
    free(pq);
    free(ids);
    free(text);
    return 0;
}
