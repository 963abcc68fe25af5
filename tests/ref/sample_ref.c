/*
 * sample_ref.c - the plain C sampler reference (see sample_ref.h).
 *
 * Each filter mirrors llama.cpp's sampler of the same name (src/llama-sampling.cpp):
 *   penalties  llama_sampler_penalties_apply: a seen token's logit is divided by
 *              repeat_penalty when > 0, else multiplied; then it loses
 *              count * frequency + (count > 0) * presence.
 *   top-k      llama_sampler_top_k_impl: the k best; ties at the cut go to lower
 *              ids (llama.cpp's partial sort leaves that order unspecified; HF's
 *              TopKLogitsWarper keeps every tie instead).
 *   top-p      llama_sampler_top_p_apply: the smallest prefix of the ranking whose
 *              probability (renormalised over the top-k survivors) reaches p
 *              (cum >= p), at least one token. HF's TopPLogitsWarper removes
 *              tokens whose ascending cumulative probability is <= 1 - p, which
 *              agrees except at exact ties of the sum.
 *   min-p      llama_sampler_min_p_apply: logit >= max + log(min_p).
 * The temperature comes first (HF's warper order): the logits are multiplied by
 * 1/T. The draw walks ids in ascending order (llama.cpp walks the ranking; both
 * give the same distribution).
 */
#include "sample_ref.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

static const float *g_rank_v; /* qsort has no user pointer in C11 */

static int rank_cmp(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    float x = g_rank_v[i], y = g_rank_v[j];
    if (x != y)
        return x > y ? -1 : 1;
    return (i > j) - (i < j);
}

void sample_ref_transform(const float *logits, int n, const struct llmgpu_sampler_params *p,
                          float *out) {
    int greedy = !(p->temperature > 0.0f);
    int penalties = p->penalty_last_n != 0 && (p->repeat_penalty != 1.0f ||
                                               p->frequency_penalty != 0.0f ||
                                               p->presence_penalty != 0.0f);
    int window = 0;
    if (penalties)
        window = p->penalty_last_n < 0 || (uint32_t)p->penalty_last_n > p->n_recent
                     ? (int)p->n_recent
                     : p->penalty_last_n;
    for (int i = 0; i < n; i++) {
        float v = logits[i], bias = 0.0f;
        int has_bias = 0, count = 0;
        if (isnan(v))
            v = -INFINITY;
        for (uint32_t j = 0; j < p->n_bias; j++)
            if (p->bias_ids[j] == i) {
                bias = has_bias ? bias + p->bias_values[j] : p->bias_values[j];
                has_bias = 1;
            }
        for (int j = (int)p->n_recent - window; j < (int)p->n_recent; j++)
            count += p->recent[j] == i;
        if (has_bias || count)
            v = v + bias;
        if (count) {
            v = v <= 0.0f ? v * p->repeat_penalty : v * (1.0f / p->repeat_penalty);
            v = v - ((float)count * p->frequency_penalty + p->presence_penalty);
        }
        v = v * (greedy ? 1.0f : 1.0f / p->temperature);
        if (isnan(v))
            v = -INFINITY;
        if (v > FLT_MAX)
            v = FLT_MAX;
        if (v == 0.0f && signbit(v)) /* -0 ranks as +0 */
            v = 0.0f;
        out[i] = v;
    }
}

int sample_ref_probs(const float *logits, int n, const struct llmgpu_sampler_params *p,
                     double *probs) {
    int greedy = !(p->temperature > 0.0f);
    float *v = malloc((size_t)n * sizeof *v);
    int *order = malloc((size_t)n * sizeof *order);
    double *e = malloc((size_t)n * sizeof *e);
    int len = n;
    float M;
    double z = 0.0;

    sample_ref_transform(logits, n, p, v);
    for (int i = 0; i < n; i++) {
        order[i] = i;
        probs[i] = 0.0;
    }
    g_rank_v = v;
    qsort(order, (size_t)n, sizeof *order, rank_cmp);
    M = v[order[0]];
    if (M == -INFINITY) {
        len = 0;
        goto done;
    }
    for (int j = 0; j < n; j++)
        e[j] = exp((double)(v[order[j]] - M));
    /* top-k */
    if (greedy || p->top_k == 1)
        len = 1;
    else if (p->top_k > 0 && p->top_k < n)
        len = p->top_k;
    /* top-p over the top-k survivors, renormalised */
    if (!greedy && p->top_p < 1.0f && len > 1) {
        double zk = 0.0, cum = 0.0;
        for (int j = 0; j < len; j++)
            zk += e[j];
        for (int j = 0; j < len; j++) {
            cum += e[j];
            if (cum >= (double)p->top_p * zk) {
                len = j + 1;
                break;
            }
        }
    }
    /* min-p on the logits */
    if (!greedy && p->min_p > 0.0f) {
        float lmin = M + logf(p->min_p < 1.0f ? p->min_p : 1.0f);
        int j = 1;
        while (j < len && v[order[j]] >= lmin)
            j++;
        len = j;
    }
    for (int j = 0; j < len; j++)
        z += e[j];
    for (int j = 0; j < len; j++)
        probs[order[j]] = e[j] / z;
done:
    free(v);
    free(order);
    free(e);
    return len;
}

int32_t sample_ref_draw_probs(const double *probs, int n, float u) {
    double cum = 0.0;
    int32_t last = -1;
    for (int i = 0; i < n; i++) {
        if (probs[i] <= 0.0)
            continue;
        cum += probs[i];
        last = i;
        if (cum > (double)u)
            return i;
    }
    return last; /* rounding: u beyond the sum; -1 when nothing survives */
}

int32_t sample_ref_draw(const float *logits, int n, const struct llmgpu_sampler_params *p,
                        float u) {
    double *probs = malloc((size_t)n * sizeof *probs);
    int32_t tok = -1;
    if (sample_ref_probs(logits, n, p, probs) > 0)
        tok = sample_ref_draw_probs(probs, n, u);
    free(probs);
    return tok;
}
