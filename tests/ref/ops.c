/*
 * ops.c - the scalar reference ops of ref.h: each mirrors one transformers
 * function (named in ref.h) in plain f32 C, written to be read, not to be fast.
 *
 * Owns: the arithmetic of single ops and the fixed-seed generator.
 * Must not touch: model layout or state (forward.c), files (ckpt.c).
 */
#include "ref.h"
#include "quant_ref.h"

#include <math.h>

#define REF_TWO_PI 6.283185307179586

/* ---- Fixed-seed generator: xorshift64* (Vigna 2016) ---- */

void ref_rng_seed(struct ref_rng *r, uint64_t seed) {
    /* splitmix64 of the seed, so 0 and nearby seeds give unrelated streams */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    r->s = z ? z : 0x2545F4914F6CDD1Dull;
}

uint64_t ref_rng_u64(struct ref_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

float ref_rng_uniform(struct ref_rng *r) {
    return (float)(ref_rng_u64(r) >> 40) / 16777216.0f;
}

float ref_rng_normal(struct ref_rng *r) {
    /* Box-Muller; u1 in (0, 1] so the log is finite */
    double u1 = ((double)(ref_rng_u64(r) >> 11) + 1.0) / 9007199254740992.0;
    double u2 = (double)(ref_rng_u64(r) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(REF_TWO_PI * u2));
}

void ref_fill_normal(struct ref_rng *r, float *out, size_t n, float mean, float std) {
    for (size_t i = 0; i < n; i++)
        out[i] = mean + std * ref_rng_normal(r);
}

/* ---- Ops ---- */

void ref_rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    /* LlamaRMSNorm: variance = x.pow(2).mean(-1); x * rsqrt(variance + eps); weight * x */
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = w[i] * (x[i] * inv);
}

void ref_round_x_int8(float *x, size_t n) {
    for (size_t u = 0; u + 16 <= n; u += 16) {
        float amax = 0.0f, d, id;
        for (int i = 0; i < 16; i++)
            amax = fabsf(x[u + i]) > amax ? fabsf(x[u + i]) : amax;
        d = amax / 127.0f;
        id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int i = 0; i < 16; i++)
            x[u + i] = d * rintf(x[u + i] * id); /* default rounding: half to even */
    }
}

void ref_round_kv_q8(float *x, size_t n) {
    for (size_t u = 0; u + 32 <= n; u += 32) {
        float amax = 0.0f, d, id, dh;
        for (int i = 0; i < 32; i++)
            amax = fabsf(x[u + i]) > amax ? fabsf(x[u + i]) : amax;
        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        dh = qref_fp16_to_fp32(qref_fp32_to_fp16(d)); /* the scale is stored as f16 */
        for (int i = 0; i < 32; i++) {
            float q = rintf(x[u + i] * id); /* default rounding: half to even */
            q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
            x[u + i] = dh * q;
        }
    }
}

void ref_matvec(float *out, const float *x, const float *w, const float *b, int n_in, int n_out) {
    /* W (n_out, n_in) @ x (n_in,) -> out (n_out,) */
    for (int o = 0; o < n_out; o++) {
        const float *row = w + (size_t)o * (size_t)n_in;
        float acc = 0.0f;
        for (int i = 0; i < n_in; i++)
            acc += row[i] * x[i];
        out[o] = b ? acc + b[o] : acc;
    }
}

void ref_matmul(float *out, const float *x, const float *w, const float *b, int n_tok, int n_in,
                int n_out) {
    /* x (n_tok, n_in) @ W^T (n_in, n_out) -> out (n_tok, n_out): one matvec per row */
    for (int t = 0; t < n_tok; t++)
        ref_matvec(out + (size_t)t * (size_t)n_out, x + (size_t)t * (size_t)n_in, w, b, n_in,
                   n_out);
}

void ref_rope_from_config(struct ref_rope *rope, const struct lg_model_config *cfg) {
    rope->head_dim = cfg->head_dim;
    rope->theta = cfg->rope_theta;
    rope->scaling = cfg->rope_scaling;
    rope->factor = cfg->rope_factor;
    rope->low_freq_factor = cfg->rope_low_freq_factor;
    rope->high_freq_factor = cfg->rope_high_freq_factor;
    rope->orig_ctx = cfg->rope_orig_ctx;
}

void ref_rope_inv_freq(const struct ref_rope *rope, float *inv_freq) {
    const int half = (int)rope->head_dim / 2;
    const float dim = (float)rope->head_dim;

    /* _compute_default_rope_parameters: 1 / theta^(arange(0, dim, 2) / dim), in f32 */
    for (int i = 0; i < half; i++)
        inv_freq[i] = 1.0f / powf(rope->theta, (float)(2 * i) / dim);

    if (rope->scaling == LG_ROPE_SCALING_LINEAR) {
        /* _compute_linear_scaling_rope_parameters: inv_freq /= factor, the same as
         * dividing positions by factor */
        for (int i = 0; i < half; i++)
            inv_freq[i] /= rope->factor;
    } else if (rope->scaling == LG_ROPE_SCALING_LLAMA3) {
        /* _compute_llama3_parameters: wavelengths shorter than orig/high are kept,
         * longer than orig/low are divided by factor, those between are blended
         * with smooth = (orig/wavelen - low) / (high - low). */
        const float factor = rope->factor;
        const float low = rope->low_freq_factor, high = rope->high_freq_factor;
        const float old_ctx = (float)rope->orig_ctx;
        const float low_freq_wavelen = (float)((double)rope->orig_ctx / (double)low);
        const float high_freq_wavelen = (float)((double)rope->orig_ctx / (double)high);
        for (int i = 0; i < half; i++) {
            float f = inv_freq[i];
            float wavelen = (float)REF_TWO_PI / f;
            float f_llama = wavelen > low_freq_wavelen ? f / factor : f;
            int is_medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
            if (is_medium) {
                float smooth = (old_ctx / wavelen - low) / (float)((double)high - (double)low);
                f_llama = (1.0f - smooth) * f_llama / factor + smooth * f_llama;
            }
            inv_freq[i] = f_llama;
        }
    }
}

void ref_rope_apply(float *vec, int n_heads, int head_dim, int pos, const float *inv_freq) {
    /* apply_rotary_pos_emb: x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1) */
    const int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = vec + (size_t)h * (size_t)head_dim;
        for (int i = 0; i < half; i++) {
            float angle = (float)pos * inv_freq[i]; /* freqs = inv_freq @ position_ids, f32 */
            float c = cosf(angle), s = sinf(angle);
            float a = v[i], b = v[i + half];
            v[i] = a * c - b * s;
            v[i + half] = b * c + a * s;
        }
    }
}

void ref_softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

void ref_silu_mul(float *hb, const float *gate, const float *up, int n) {
    /* SiLU(x) = x * sigmoid(x) (nn.functional.silu) */
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        hb[i] = g * (1.0f / (1.0f + expf(-g))) * up[i];
    }
}

void ref_add(float *x, const float *y, int n) {
    for (int i = 0; i < n; i++)
        x[i] += y[i];
}

int ref_kv_head(int head, int n_head, int n_kv_head) {
    /* repeat_kv expands kv head j to query heads j*g .. j*g + g-1, g = n_head/n_kv_head */
    return head / (n_head / n_kv_head);
}

int ref_attn_first_key(int pos, int window) {
    /* sliding_window_overlay: kv_idx > q_idx - sliding_window */
    if (window <= 0 || pos - window + 1 < 0)
        return 0;
    return pos - window + 1;
}

void ref_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                   float *att, int att_stride, int n_head, int n_kv_head, int head_dim, int pos,
                   int window) {
    const int kv_dim = n_kv_head * head_dim;
    const int t0 = ref_attn_first_key(pos, window);
    const float scale = (float)pow((double)head_dim, -0.5); /* self.scaling = head_dim**-0.5 */
    for (int h = 0; h < n_head; h++) {
        const float *qh = q + (size_t)h * (size_t)head_dim;
        const int kvh = ref_kv_head(h, n_head, n_kv_head);
        float *atth = att + (size_t)h * (size_t)att_stride;
        float *outh = out + (size_t)h * (size_t)head_dim;

        /* scores: att[t] = q . k_t * scale, t in [t0, pos] */
        for (int t = 0; t < t0; t++)
            atth[t] = 0.0f;
        for (int t = t0; t <= pos; t++) {
            const float *kt = k_cache + (size_t)t * (size_t)kv_dim + (size_t)kvh * (size_t)head_dim;
            float score = 0.0f;
            for (int i = 0; i < head_dim; i++)
                score += qh[i] * kt[i];
            atth[t] = score * scale;
        }
        ref_softmax(atth + t0, pos - t0 + 1);

        /* out = sum_t att[t] v_t */
        for (int i = 0; i < head_dim; i++)
            outh[i] = 0.0f;
        for (int t = t0; t <= pos; t++) {
            const float *vt = v_cache + (size_t)t * (size_t)kv_dim + (size_t)kvh * (size_t)head_dim;
            for (int i = 0; i < head_dim; i++)
                outh[i] += atth[t] * vt[i];
        }
    }
}

int ref_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

float ref_top2_margin(const float *x, int n) {
    int best = ref_argmax(x, n);
    float second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != best && x[i] > second)
            second = x[i];
    return x[best] - second;
}

double ref_log_softmax_at(const float *x, int n, int i) {
    if (n <= 0 || i < 0 || i >= n)
        return NAN;
    double max = x[0];
    for (int j = 1; j < n; j++)
        if (x[j] > max)
            max = x[j];
    double sum = 0.0;
    for (int j = 0; j < n; j++)
        sum += exp((double)x[j] - max);
    return (double)x[i] - max - log(sum);
}

double ref_nmse(const float *a, const float *b, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (den == 0.0)
        return num == 0.0 ? 0.0 : INFINITY;
    return num / den;
}
