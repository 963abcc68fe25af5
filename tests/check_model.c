/*
 * check_model.c - the host side of model loading (lib/model): config.json,
 * safetensors, checkpoints, the architecture table and dtype conversion.
 * CPU only. Models come from tests/tools/mkmodel.py, generated into
 * $LLMGPU_TEST_TMP; malformed inputs are built here.
 * TCases: Core (a default model, lookups, conversions), Variants (sharded,
 * dtypes, tied, GQA/MQA, head_dim, Mistral, Qwen2, rope scaling, config
 * dialects), Errors (each malformed input: its status and log message).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "util/testmodel.h"

/* ---- the generator's PRNG, to check the bytes that were loaded ---- */

static uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001B3ull;
    }
    return h;
}

/* The first n values mkmodel.py draws for tensor name (before rounding). */
static void mk_values(uint64_t seed, const char *name, double std, double mean, double *out,
                      size_t n) {
    uint64_t s = splitmix64(seed ^ fnv1a64(name)), x;
    double half = std * sqrt(3.0);
    size_t i;
    if (!s)
        s = 1;
    for (i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        x = s * 0x2545F4914F6CDD1Dull;
        out[i] = mean + (2.0 * ((double)(x >> 11) * (1.0 / 9007199254740992.0)) - 1.0) * half;
    }
}

static struct lg_checkpoint *open_ok(const char *dir) {
    struct lg_checkpoint *c = NULL;
    enum llmgpu_status st;
    lgt_log_reset();
    st = lg_ckpt_open(NULL, &lgt_log, dir, &c);
    ck_assert_msg(st == LLMGPU_OK, "lg_ckpt_open(%s) = %d, log:\n%s", dir, st, lgt_log_text());
    ck_assert_ptr_nonnull(c);
    return c;
}

static struct lg_checkpoint *gen_open(const char *args, char *dir, size_t size) {
    ck_assert_msg(lgt_mkmodel(args, dir, size) == 0, "mkmodel %s failed", args);
    return open_ok(dir);
}

/* Every role of every layer is present with the shape the table gives. */
static void check_all_roles(const struct lg_checkpoint *c) {
    uint32_t r, l, nd, d;
    uint64_t shape[2], n_params = 0;
    for (r = 0; r < LG_T_COUNT; r++) {
        uint32_t nl = lg_arch_is_per_layer((enum lg_tensor_role)r) ? c->cfg.n_layer : 1;
        for (l = 0; l < nl; l++) {
            const struct lg_tensor_src *t = lg_ckpt_tensor(c, (enum lg_tensor_role)r, l);
            if (!lg_arch_has_role(&c->cfg, (enum lg_tensor_role)r)) {
                ck_assert_ptr_null(t);
                continue;
            }
            ck_assert_msg(t != NULL, "role %s layer %u missing", lg_arch_role_name(r), l);
            lg_arch_tensor_shape(&c->cfg, (enum lg_tensor_role)r, &nd, shape);
            ck_assert_uint_eq(t->n_dims, nd);
            for (d = 0; d < nd; d++)
                ck_assert_uint_eq(t->shape[d], shape[d]);
            ck_assert_uint_eq(t->nbytes, t->n_elements * lg_dtype_size(t->dtype));
            ck_assert_ptr_nonnull(t->data);
            ck_assert_uint_lt(t->file, c->n_files);
            ck_assert_uint_le(t->file_offset + t->nbytes, c->files[t->file].size);
            ck_assert_ptr_eq(t->data, (const char *)c->files[t->file].base + t->file_offset);
            n_params += t->n_elements;
        }
    }
    ck_assert_uint_eq(c->n_params, n_params);
}

/* ===================================================================== Core */

START_TEST(test_default_model) {
    char dir[512], name[128];
    struct lg_checkpoint *c = gen_open("", dir, sizeof dir);
    const struct lg_model_config *cfg = &c->cfg;
    const struct lg_tensor_src *t;
    double want[8];
    float got[8];
    int i;

    ck_assert_int_eq(cfg->arch, LG_ARCH_LLAMA);
    ck_assert_str_eq(cfg->arch_name, "LlamaForCausalLM");
    ck_assert_uint_eq(cfg->n_vocab, 320);
    ck_assert_uint_eq(cfg->n_embd, 64);
    ck_assert_uint_eq(cfg->n_ff, 160);
    ck_assert_uint_eq(cfg->n_layer, 2);
    ck_assert_uint_eq(cfg->n_head, 4);
    ck_assert_uint_eq(cfg->n_kv_head, 4);
    ck_assert_uint_eq(cfg->head_dim, 16);
    ck_assert_uint_eq(cfg->n_ctx_train, 512);
    ck_assert_uint_eq(cfg->sliding_window, 0);
    ck_assert_float_eq(cfg->rms_norm_eps, 1e-5f);
    ck_assert_float_eq(cfg->rope_theta, 10000.0f);
    ck_assert_int_eq(cfg->rope_scaling, LG_ROPE_SCALING_NONE);
    ck_assert_int_eq(cfg->tie_word_embeddings, 0);
    ck_assert_int_eq(cfg->qkv_bias, 0);
    ck_assert_int_eq(cfg->bos_id, 1);
    ck_assert_uint_eq(cfg->n_eos, 1);
    ck_assert_int_eq(cfg->eos_ids[0], 2);

    ck_assert_uint_eq(c->n_files, 1);
    ck_assert_str_eq(c->files[0].name, "model.safetensors");
    ck_assert_uint_eq(c->tensors.n, 1 + 2 * 9 + 2);
    check_all_roles(c);
    ck_assert_uint_eq(c->n_params, 320 * 64 * 2 + 64 + 2 * (2 * 64 + 4 * 64 * 64 + 3 * 64 * 160));
    ck_assert_uint_eq(c->weight_bytes, c->n_params * 4);

    /* the bytes are the generator's */
    t = lg_ckpt_find(c, "model.layers.1.mlp.down_proj.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, LG_DTYPE_F32);
    ck_assert_ptr_eq(t, lg_ckpt_tensor(c, LG_T_DOWN, 1));
    mk_values(1234, t->name, 1.0 / sqrt(160.0), 0.0, want, 8);
    lg_convert_to_f32(t->dtype, t->data, got, 8);
    for (i = 0; i < 8; i++)
        ck_assert_float_eq(got[i], (float)want[i]);
    t = lg_ckpt_tensor(c, LG_T_OUT_NORM, 0);
    mk_values(1234, "model.norm.weight", 0.1, 1.0, want, 8);
    lg_convert_to_f32(t->dtype, t->data, got, 8);
    for (i = 0; i < 8; i++)
        ck_assert_float_eq(got[i], (float)want[i]);

    ck_assert_ptr_null(lg_ckpt_find(c, "model.layers.2.mlp.down_proj.weight"));
    ck_assert_ptr_null(lg_ckpt_find(c, ""));
    ck_assert_ptr_null(lg_ckpt_find(c, "zzz"));
    ck_assert_ptr_null(lg_ckpt_tensor(c, LG_T_BQ, 0));
    ck_assert_int_eq(lg_arch_tensor_name(cfg, LG_T_WK, 7, name, sizeof name), 1);
    ck_assert_str_eq(name, "model.layers.7.self_attn.k_proj.weight");
    ck_assert_int_eq(lg_arch_tensor_name(cfg, LG_T_WK, 7, name, 10), 0); /* too small */
    ck_assert_int_eq(lg_arch_tensor_name(cfg, LG_T_BQ, 0, name, sizeof name), 0);
    lg_ckpt_close(c);
    lg_ckpt_close(NULL);
}
END_TEST

START_TEST(test_arch_table) {
    struct lg_model_config cfg;
    uint32_t nd;
    uint64_t sh[2];
    char name[128];
    memset(&cfg, 0, sizeof cfg);
    cfg.arch = LG_ARCH_QWEN2;
    cfg.n_vocab = 100;
    cfg.n_embd = 48;
    cfg.n_ff = 96;
    cfg.n_head = 6;
    cfg.n_kv_head = 2;
    cfg.head_dim = 8;
    cfg.qkv_bias = 1;
    cfg.tie_word_embeddings = 1;
    ck_assert_ptr_eq(lg_arch_find("qwen2"), lg_arch_get(LG_ARCH_QWEN2));
    ck_assert_ptr_eq(lg_arch_find("MistralForCausalLM"), lg_arch_get(LG_ARCH_MISTRAL));
    ck_assert_ptr_null(lg_arch_find("GPT2LMHeadModel"));
    ck_assert(!lg_arch_is_per_layer(LG_T_TOK_EMBD));
    ck_assert(!lg_arch_is_per_layer(LG_T_LM_HEAD));
    ck_assert(lg_arch_is_per_layer(LG_T_ATTN_NORM));
    ck_assert(lg_arch_is_per_layer(LG_T_DOWN));
    ck_assert_int_eq(lg_arch_tensor_name(&cfg, LG_T_LM_HEAD, 0, name, sizeof name), 0);
    ck_assert_int_eq(lg_arch_tensor_name(&cfg, LG_T_BV, 3, name, sizeof name), 1);
    ck_assert_str_eq(name, "model.layers.3.self_attn.v_proj.bias");
    ck_assert_int_eq(lg_arch_tensor_name(&cfg, LG_T_TOK_EMBD, 3, name, sizeof name), 1);
    ck_assert_str_eq(name, "model.embed_tokens.weight");
    lg_arch_tensor_shape(&cfg, LG_T_WQ, &nd, sh);
    ck_assert(nd == 2 && sh[0] == 48 && sh[1] == 48);
    lg_arch_tensor_shape(&cfg, LG_T_WK, &nd, sh);
    ck_assert(nd == 2 && sh[0] == 16 && sh[1] == 48);
    lg_arch_tensor_shape(&cfg, LG_T_WO, &nd, sh);
    ck_assert(nd == 2 && sh[0] == 48 && sh[1] == 48);
    lg_arch_tensor_shape(&cfg, LG_T_BK, &nd, sh);
    ck_assert(nd == 1 && sh[0] == 16);
    lg_arch_tensor_shape(&cfg, LG_T_DOWN, &nd, sh);
    ck_assert(nd == 2 && sh[0] == 48 && sh[1] == 96);
    lg_arch_tensor_shape(&cfg, LG_T_TOK_EMBD, &nd, sh);
    ck_assert(nd == 2 && sh[0] == 100 && sh[1] == 48);
    ck_assert_str_eq(lg_arch_role_name(LG_T_GATE), "gate");
}
END_TEST

/* Independent reference: nearest value on a grid of 2^(e - mant_bits), RNE via nearbyint. */
static double ref_round(double x, int mant_bits, int emin, double maxv, double *overflow_at) {
    int e;
    double q, r;
    if (x == 0 || !isfinite(x))
        return x;
    frexp(x, &e); /* x = m * 2^e, 0.5 <= |m| < 1 */
    e -= 1;
    if (e < emin)
        e = emin;
    q = ldexp(1.0, e - mant_bits);
    r = nearbyint(x / q) * q;
    if (fabs(r) > maxv)
        r = x > 0 ? INFINITY : -INFINITY;
    (void)overflow_at;
    return r;
}

START_TEST(test_f16_conversion) {
    uint32_t i;
    uint64_t k;
    /* every f16 survives f16 -> f32 -> f16; NaNs stay NaN */
    for (i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = lg_f16_to_f32(h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            ck_assert(isnan(f));
            ck_assert_uint_eq(lg_f32_to_f16(f) & 0xfe00, (h & 0x8000) | 0x7e00);
            continue;
        }
        ck_assert_msg(lg_f32_to_f16(f) == h, "roundtrip 0x%04x", i);
    }
    /* f32 -> f16 agrees with an independent RNE on a dense sweep of bit patterns */
    for (k = 0; k < (1ull << 32); k += 4093) {
        uint32_t bits = (uint32_t)k;
        float f;
        double want;
        float got;
        memcpy(&f, &bits, 4);
        if (isnan(f))
            continue;
        want = ref_round(f, 10, -14, 65504.0, NULL);
        got = lg_f16_to_f32(lg_f32_to_f16(f));
        ck_assert_msg(got == (float)want && signbit(got) == signbit(f),
                      "f32 0x%08x: got %a want %a", bits, (double)got, want);
    }
    /* ties and limits */
    ck_assert_uint_eq(lg_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(lg_f32_to_f16(65519.99f), 0x7bff);
    ck_assert_uint_eq(lg_f32_to_f16(65520.0f), 0x7c00);
    ck_assert_uint_eq(lg_f32_to_f16(-1e10f), 0xfc00);
    ck_assert_uint_eq(lg_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    ck_assert_uint_eq(lg_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);          /* tie to even 0 */
    ck_assert_uint_eq(lg_f32_to_f16(ldexpf(1.5f, -24)), 0x0002);          /* tie to even 2 */
    ck_assert_uint_eq(lg_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);   /* tie down */
    ck_assert_uint_eq(lg_f32_to_f16(1.0f + ldexpf(3.0f, -11)), 0x3c02);   /* tie up */
    ck_assert_uint_eq(lg_f32_to_f16(-0.0f), 0x8000);
    ck_assert_uint_eq(lg_f32_to_f16(INFINITY), 0x7c00);
    ck_assert_uint_eq(lg_f32_to_f16(ldexpf(1.0f, -14) * 0.99999994f), 0x0400); /* rounds up to normal */
}
END_TEST

START_TEST(test_bf16_conversion) {
    uint64_t k;
    uint32_t i;
    for (i = 0; i < 65536; i++) {
        float f = lg_bf16_to_f32((uint16_t)i);
        uint32_t bits;
        memcpy(&bits, &f, 4);
        ck_assert_uint_eq(bits, i << 16);
        if (!isnan(f))
            ck_assert_uint_eq(lg_f32_to_bf16(f), i);
    }
    for (k = 0; k < (1ull << 32); k += 4093) {
        uint32_t bits = (uint32_t)k;
        float f, got;
        double want;
        memcpy(&f, &bits, 4);
        if (isnan(f)) {
            ck_assert(isnan(lg_bf16_to_f32(lg_f32_to_bf16(f))));
            continue;
        }
        want = ref_round(f, 7, -126, 3.3895313892515355e38, NULL);
        got = lg_bf16_to_f32(lg_f32_to_bf16(f));
        ck_assert_msg(got == (float)want, "f32 0x%08x: got %a want %a", bits, (double)got, want);
    }
}
END_TEST

/* lg_convert_to_f16 on arrays (the F16C path where the CPU has it) gives
 * exactly lg_f32_to_f16 per element, at every alignment and length. */
START_TEST(test_convert_f16_bulk) {
    enum { N = 1 << 16 };
    static uint32_t bits[N + 16];
    static uint16_t bf[N + 16], got[N], want[N];
    unsigned char *raw = (unsigned char *)bits;
    uint64_t s = 0x1234567887654321ull;
    static const size_t sizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 33, N};
    size_t i, n, k, off, ov, want_ov;
    for (i = 0; i < N + 16; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        bits[i] = (uint32_t)s;
        if (i % 7 == 0) /* many values near the f16 range and its limits */
            bits[i] = (bits[i] & 0x807fffffu) | ((uint32_t)(103 + s % 40) << 23);
        if (i % 61 == 0)
            bits[i] = 0x477ff000u | (uint32_t)(s & 0x80000000u); /* +-65520: tie to inf */
        bf[i] = (uint16_t)(bits[i] >> 16);
    }
    for (off = 0; off < 4; off++) {
        for (k = 0; k < LG_ARRAY_LEN(sizes); k++) {
            const unsigned char *src = raw + off;
            n = sizes[k];
            ov = lg_convert_to_f16(LG_DTYPE_F32, src, got, n);
            want_ov = 0;
            for (i = 0; i < n; i++) {
                float f;
                memcpy(&f, src + 4 * i, 4);
                want[i] = lg_f32_to_f16(f);
                want_ov += (want[i] & 0x7fff) == 0x7c00 && isfinite(f);
                ck_assert_msg(got[i] == want[i], "f32 0x%08x -> 0x%04x, want 0x%04x", bits[i], got[i], want[i]);
            }
            ck_assert_uint_eq(ov, want_ov);
            src = (const unsigned char *)bf + off;
            ov = lg_convert_to_f16(LG_DTYPE_BF16, src, got, n);
            want_ov = 0;
            for (i = 0; i < n; i++) {
                uint16_t b;
                float f;
                memcpy(&b, src + 2 * i, 2);
                f = lg_bf16_to_f32(b);
                want[i] = lg_f32_to_f16(f);
                want_ov += (want[i] & 0x7fff) == 0x7c00 && isfinite(f);
                ck_assert_msg(got[i] == want[i], "bf16 0x%04x -> 0x%04x, want 0x%04x", b, got[i], want[i]);
            }
            ck_assert_uint_eq(ov, want_ov);
        }
    }
}
END_TEST

START_TEST(test_convert_arrays) {
    /* unaligned inputs of every float dtype and a few integer ones */
    unsigned char buf[64];
    float f32in[5] = {1.5f, -2.25f, 70000.0f, 1e-8f, -0.0f}, out[5];
    uint16_t h[5], bf[5];
    int8_t i8[3] = {-128, 0, 127};
    int32_t i32[2] = {-7, 1 << 24};
    size_t i, ov;

    memcpy(buf + 1, f32in, sizeof f32in);
    ov = lg_convert_to_f16(LG_DTYPE_F32, buf + 1, h, 5);
    ck_assert_uint_eq(ov, 1); /* 70000 */
    ck_assert_uint_eq(h[0], 0x3e00);
    ck_assert_uint_eq(h[2], 0x7c00);
    ck_assert_uint_eq(h[4], 0x8000);
    lg_convert_to_f32(LG_DTYPE_F32, buf + 1, out, 5);
    ck_assert_mem_eq(out, f32in, sizeof f32in);

    for (i = 0; i < 5; i++)
        bf[i] = lg_f32_to_bf16(f32in[i]);
    memcpy(buf + 3, bf, sizeof bf);
    ov = lg_convert_to_f16(LG_DTYPE_BF16, buf + 3, h, 5);
    ck_assert_uint_eq(ov, 1);
    ck_assert_float_eq(lg_f16_to_f32(h[1]), -2.25f);
    lg_convert_to_f32(LG_DTYPE_BF16, buf + 3, out, 5);
    ck_assert_float_eq(out[0], 1.5f);
    ck_assert_float_eq(out[2], 70144.0f); /* bf16 rounding of 70000 */

    memcpy(buf + 5, h, 4);
    lg_convert_to_f32(LG_DTYPE_F16, buf + 5, out, 2);
    ck_assert_float_eq(out[0], 1.5f);
    ck_assert_float_eq(out[1], -2.25f);
    ov = lg_convert_to_bf16(LG_DTYPE_F16, buf + 5, bf, 2);
    ck_assert_uint_eq(ov, 0);
    ck_assert_float_eq(lg_bf16_to_f32(bf[1]), -2.25f);

    lg_convert_to_f32(LG_DTYPE_I8, i8, out, 3);
    ck_assert(out[0] == -128.0f && out[1] == 0.0f && out[2] == 127.0f);
    memcpy(buf + 1, i32, sizeof i32);
    lg_convert_to_f32(LG_DTYPE_I32, buf + 1, out, 2);
    ck_assert(out[0] == -7.0f && out[1] == 16777216.0f);
    buf[0] = 0x38; /* e4m3: 1.0 */
    buf[1] = 0x7f; /* e4m3: NaN */
    buf[2] = 0x3c; /* e5m2: 1.0 */
    lg_convert_to_f32(LG_DTYPE_F8_E4M3, buf, out, 2);
    ck_assert_float_eq(out[0], 1.0f);
    ck_assert(isnan(out[1]));
    lg_convert_to_f32(LG_DTYPE_F8_E5M2, buf + 2, out, 1);
    ck_assert_float_eq(out[0], 1.0f);

    ck_assert_str_eq(lg_dtype_name(LG_DTYPE_BF16), "BF16");
    ck_assert_str_eq(lg_dtype_name(LG_DTYPE_COUNT), "?");
    ck_assert_uint_eq(lg_dtype_size(LG_DTYPE_F64), 8);
    ck_assert_uint_eq(lg_dtype_size(LG_DTYPE_COUNT), 0);
}
END_TEST

/* Every allocation failure gives OUT_OF_HOST_MEMORY, leaks nothing, and the
 * load succeeds once the allocator stops failing. */
START_TEST(test_alloc_failures) {
    char dir[512];
    struct lg_checkpoint *c = NULL;
    struct lg_alloc a;
    int64_t n;
    enum llmgpu_status st = LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    ck_assert_int_eq(lgt_mkmodel("--shards 2 --arch qwen2", dir, sizeof dir), 0);
    for (n = 1; n < 10000 && st != LLMGPU_OK; n++) {
        memset(&a, 0, sizeof a);
        a.fail_after = n;
        a.fail_persist = 1;
        lgt_log_reset();
        st = lg_ckpt_open(&a, &lgt_log, dir, &c);
        if (st != LLMGPU_OK) {
            ck_assert_msg(st == LLMGPU_ERR_OUT_OF_HOST_MEMORY, "n=%lld: %d %s", (long long)n,
                          st, lgt_log_text());
            ck_assert_ptr_null(c);
        }
    }
    ck_assert_int_eq(st, LLMGPU_OK);
    ck_assert_int_gt(n, 5);
    lg_ckpt_close(c);
}
END_TEST

/* A caller's allocator sees every allocation of a load and gets all of them back. */
struct counting {
    long live, total;
};

static void *count_alloc(size_t size, void *user) {
    struct counting *c = user;
    size_t *p = malloc(size + 16);
    if (!p)
        return NULL;
    p[0] = 0xA110Cu;
    c->live++;
    c->total++;
    return (char *)p + 16;
}

static void count_free(void *ptr, void *user) {
    struct counting *c = user;
    size_t *p = (size_t *)(void *)((char *)ptr - 16);
    ck_assert_uint_eq(p[0], 0xA110Cu); /* only pointers this allocator gave out */
    p[0] = 0;
    c->live--;
    free(p);
}

START_TEST(test_user_allocator) {
    char dir[512];
    struct counting cnt = {0, 0};
    struct lg_alloc a;
    struct lg_checkpoint *c = NULL;
    memset(&a, 0, sizeof a);
    a.user.alloc = count_alloc;
    a.user.free = count_free;
    a.user.user = &cnt;
    ck_assert_int_eq(lgt_mkmodel("--shards 3 --arch qwen2", dir, sizeof dir), 0);
    lgt_log_reset();
    ck_assert_int_eq(lg_ckpt_open(&a, &lgt_log, dir, &c), LLMGPU_OK);
    ck_assert_int_gt(cnt.live, 0);
    check_all_roles(c);
    lg_ckpt_close(c);
    ck_assert_int_eq(cnt.live, 0);
    ck_assert_int_gt(cnt.total, 20);
    /* failures free everything too */
    ck_assert_int_eq(lgt_replace(dir, "config.json", "\"num_hidden_layers\": 2",
                                 "\"num_hidden_layers\": 3"), 0);
    ck_assert_int_eq(lg_ckpt_open(&a, &lgt_log, dir, &c), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert_int_eq(cnt.live, 0);
}
END_TEST

/* ================================================================= Variants */

START_TEST(test_sharded) {
    char dir[512];
    struct lg_checkpoint *c = gen_open("--shards 3 --layers 3", dir, sizeof dir);
    const struct lg_tensor_src *first = lg_ckpt_tensor(c, LG_T_TOK_EMBD, 0);
    const struct lg_tensor_src *last = lg_ckpt_tensor(c, LG_T_LM_HEAD, 0);
    ck_assert_uint_eq(c->n_files, 3);
    ck_assert_uint_eq(c->cfg.n_layer, 3);
    check_all_roles(c);
    ck_assert_uint_ne(first->file, last->file);
    ck_assert_str_eq(c->files[first->file].name, "model-00001-of-00003.safetensors");
    ck_assert_str_eq(c->files[last->file].name, "model-00003-of-00003.safetensors");
    lg_ckpt_close(c);
}
END_TEST

static void check_dtype_variant(const char *args, enum lg_dtype dt) {
    char dir[512];
    struct lg_checkpoint *c = gen_open(args, dir, sizeof dir);
    const struct lg_tensor_src *t = lg_ckpt_tensor(c, LG_T_WQ, 1);
    double want[16];
    float got[16];
    int i;
    ck_assert_int_eq(t->dtype, dt);
    ck_assert_uint_eq(c->weight_bytes, c->n_params * lg_dtype_size(dt));
    check_all_roles(c);
    mk_values(1234, t->name, 1.0 / 8.0, 0.0, want, 16);
    lg_convert_to_f32(t->dtype, t->data, got, 16);
    for (i = 0; i < 16; i++) {
        float w = (float)want[i];
        if (dt == LG_DTYPE_BF16)
            w = lg_bf16_to_f32(lg_f32_to_bf16(w));
        else if (dt == LG_DTYPE_F16)
            w = lg_f16_to_f32(lg_f32_to_f16(w));
        ck_assert_msg(got[i] == w, "%s[%d]: %a vs %a", t->name, i, (double)got[i], (double)w);
    }
    lg_ckpt_close(c);
}

START_TEST(test_bf16) {
    check_dtype_variant("--dtype bf16", LG_DTYPE_BF16);
}
END_TEST

START_TEST(test_f16) {
    check_dtype_variant("--dtype f16 --shards 2", LG_DTYPE_F16);
}
END_TEST

START_TEST(test_tied) {
    char dir[512], name[64];
    struct lg_checkpoint *c = gen_open("--tie", dir, sizeof dir);
    ck_assert_int_eq(c->cfg.tie_word_embeddings, 1);
    ck_assert_int_eq(lg_arch_has_role(&c->cfg, LG_T_LM_HEAD), 0);
    ck_assert_int_eq(lg_arch_tensor_name(&c->cfg, LG_T_LM_HEAD, 0, name, sizeof name), 0);
    ck_assert_ptr_null(lg_ckpt_tensor(c, LG_T_LM_HEAD, 0));
    ck_assert_ptr_null(lg_ckpt_find(c, "lm_head.weight"));
    check_all_roles(c);
    lg_ckpt_close(c);
}
END_TEST

START_TEST(test_gqa) {
    char dir[512];
    struct lg_checkpoint *c = gen_open("--heads 8 --kv-heads 2 --hidden 64", dir, sizeof dir);
    const struct lg_tensor_src *k = lg_ckpt_tensor(c, LG_T_WK, 0);
    ck_assert_uint_eq(c->cfg.n_head, 8);
    ck_assert_uint_eq(c->cfg.n_kv_head, 2);
    ck_assert_uint_eq(c->cfg.head_dim, 8);
    ck_assert(k->shape[0] == 16 && k->shape[1] == 64);
    check_all_roles(c);
    lg_ckpt_close(c);
}
END_TEST

START_TEST(test_mqa) {
    char dir[512];
    struct lg_checkpoint *c = gen_open("--heads 4 --kv-heads 1", dir, sizeof dir);
    const struct lg_tensor_src *v = lg_ckpt_tensor(c, LG_T_WV, 1);
    ck_assert_uint_eq(c->cfg.n_kv_head, 1);
    ck_assert(v->shape[0] == 16 && v->shape[1] == 64);
    check_all_roles(c);
    lg_ckpt_close(c);
}
END_TEST

START_TEST(test_head_dim) {
    char dir[512];
    struct lg_checkpoint *c =
        gen_open("--hidden 48 --heads 4 --kv-heads 2 --head-dim 32", dir, sizeof dir);
    const struct lg_tensor_src *q = lg_ckpt_tensor(c, LG_T_WQ, 0);
    const struct lg_tensor_src *o = lg_ckpt_tensor(c, LG_T_WO, 0);
    ck_assert_uint_eq(c->cfg.head_dim, 32);
    ck_assert(q->shape[0] == 128 && q->shape[1] == 48);
    ck_assert(o->shape[0] == 48 && o->shape[1] == 128);
    check_all_roles(c);
    lg_ckpt_close(c);
}
END_TEST

START_TEST(test_mistral) {
    char dir[512];
    struct lg_checkpoint *c = gen_open("--arch mistral --sliding-window 64", dir, sizeof dir);
    ck_assert_int_eq(c->cfg.arch, LG_ARCH_MISTRAL);
    ck_assert_str_eq(c->cfg.arch_name, "MistralForCausalLM");
    ck_assert_uint_eq(c->cfg.sliding_window, 64);
    check_all_roles(c);
    lg_ckpt_close(c);
    c = gen_open("--arch mistral", dir, sizeof dir); /* "sliding_window": null */
    ck_assert_uint_eq(c->cfg.sliding_window, 0);
    lg_ckpt_close(c);
}
END_TEST

START_TEST(test_qwen2) {
    char dir[512];
    struct lg_checkpoint *c =
        gen_open("--arch qwen2 --tie --rope-theta 1000000 --kv-heads 2 --dtype bf16", dir,
                 sizeof dir);
    const struct lg_tensor_src *b = lg_ckpt_tensor(c, LG_T_BK, 1);
    ck_assert_int_eq(c->cfg.arch, LG_ARCH_QWEN2);
    ck_assert_int_eq(c->cfg.qkv_bias, 1);
    ck_assert_int_eq(c->cfg.tie_word_embeddings, 1);
    ck_assert_uint_eq(c->cfg.sliding_window, 0); /* use_sliding_window false */
    ck_assert_float_eq(c->cfg.rope_theta, 1e6f);
    ck_assert_ptr_nonnull(b);
    ck_assert(b->n_dims == 1 && b->shape[0] == 32);
    ck_assert_ptr_nonnull(lg_ckpt_tensor(c, LG_T_BQ, 0));
    check_all_roles(c);
    lg_ckpt_close(c);
}
END_TEST

START_TEST(test_rope_scaling_files) {
    char dir[512];
    struct lg_checkpoint *c = gen_open("--rope-scaling llama3 --ctx 1024", dir, sizeof dir);
    ck_assert_int_eq(c->cfg.rope_scaling, LG_ROPE_SCALING_LLAMA3);
    ck_assert_float_eq(c->cfg.rope_factor, 8.0f);
    ck_assert_float_eq(c->cfg.rope_low_freq_factor, 1.0f);
    ck_assert_float_eq(c->cfg.rope_high_freq_factor, 4.0f);
    ck_assert_uint_eq(c->cfg.rope_orig_ctx, 128);
    ck_assert_uint_eq(c->cfg.n_ctx_train, 1024);
    lg_ckpt_close(c);
    c = gen_open("--rope-scaling linear", dir, sizeof dir);
    ck_assert_int_eq(c->cfg.rope_scaling, LG_ROPE_SCALING_LINEAR);
    ck_assert_float_eq(c->cfg.rope_factor, 2.0f);
    lg_ckpt_close(c);
}
END_TEST

START_TEST(test_generation_config_eos) {
    char dir[512];
    static const char gen[] = "{\"bos_token_id\": 1, \"eos_token_id\": [2, 7, 9]}";
    struct lg_checkpoint *c;
    ck_assert_int_eq(lgt_mkmodel("", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_write(dir, "generation_config.json", gen, strlen(gen)), 0);
    c = open_ok(dir);
    ck_assert_uint_eq(c->cfg.n_eos, 3);
    ck_assert(c->cfg.eos_ids[0] == 2 && c->cfg.eos_ids[1] == 7 && c->cfg.eos_ids[2] == 9);
    lg_ckpt_close(c);
    /* no generation_config.json at all is fine */
    ck_assert_int_eq(unlink(strcat(dir, "/generation_config.json")), 0);
    dir[strlen(dir) - strlen("/generation_config.json")] = '\0';
    c = open_ok(dir);
    ck_assert_uint_eq(c->cfg.n_eos, 1);
    lg_ckpt_close(c);
}
END_TEST

/* The generator's defaults give clear greedy decisions (mkmodel.py fails with
 * --check-margins when a top-1 margin is under 1e-3). */
START_TEST(test_generator_margins) {
    static const char *const args[] = {
        "--check-margins 16",
        "--check-margins 16 --tie --kv-heads 2 --dtype bf16 --rope-scaling llama3",
        "--check-margins 16 --arch qwen2 --tie --kv-heads 1",
        "--check-margins 16 --arch mistral --sliding-window 5 --kv-heads 2",
    };
    char dir[512];
    size_t i;
    for (i = 0; i < LG_ARRAY_LEN(args); i++)
        ck_assert_msg(lgt_mkmodel(args[i], dir, sizeof dir) == 0, "mkmodel %s", args[i]);
}
END_TEST

/* Hugging Face hub cache: snapshots/<rev>/ holds symlinks into ../../blobs/. */
START_TEST(test_hub_cache_layout) {
    char dir[512], repo[512], cmd[4096];
    char snap[1024];
    struct lg_checkpoint *c;
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_mkdtemp("hub", repo, sizeof repo), 0);
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; mkdir -p blobs snapshots/abc; for f in '%s'/*; do "
             "b=$(basename \"$f\"); cp \"$f\" blobs/h_$b; ln -s ../../blobs/h_$b snapshots/abc/$b; "
             "done",
             repo, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(snap, sizeof snap, "%s/snapshots/abc", repo);
    c = open_ok(snap);
    ck_assert_uint_eq(c->n_files, 2);
    lg_ckpt_close(c);
}
END_TEST

/* Checkpoints written by transformers' save_pretrained (tests/fixtures/golden,
 * made by tests/tools/make_golden.py on a machine with transformers; absent on
 * branches without them). Each must open, every tensor in its files must be
 * one the architecture uses, and the hyper-parameters must be the ones the
 * fixture README lists. */
START_TEST(test_transformers_checkpoints) {
    static const struct {
        const char *name;
        enum lg_arch arch;
        uint32_t n_embd, n_layer, n_head, n_kv_head, head_dim, sliding_window, single_file;
        int tie, bias;
        enum lg_rope_scaling rope;
        float rope_theta;
    } want[] = {
        {"llama_gqa", LG_ARCH_LLAMA, 64, 2, 8, 2, 8, 0, 1, 0, 0, LG_ROPE_SCALING_NONE, 1e4f},
        {"llama_mqa", LG_ARCH_LLAMA, 64, 2, 4, 1, 16, 0, 1, 0, 0, LG_ROPE_SCALING_NONE, 1e4f},
        {"llama3_tied_bf16", LG_ARCH_LLAMA, 64, 2, 4, 2, 16, 0, 1, 1, 0, LG_ROPE_SCALING_LLAMA3,
         1e4f},
        {"llama_sharded_f32", LG_ARCH_LLAMA, 96, 3, 6, 3, 16, 0, 0, 0, 0, LG_ROPE_SCALING_LINEAR,
         1e4f},
        {"mistral_sw", LG_ARCH_MISTRAL, 64, 2, 4, 2, 16, 8, 1, 0, 0, LG_ROPE_SCALING_NONE, 1e4f},
        {"qwen2_bias", LG_ARCH_QWEN2, 64, 2, 4, 2, 16, 0, 1, 1, 1, LG_ROPE_SCALING_NONE, 1e6f},
        {"llama_headdim", LG_ARCH_LLAMA, 64, 2, 4, 2, 32, 0, 1, 0, 0, LG_ROPE_SCALING_NONE, 1e4f},
    };
    const char *data = getenv("LLMGPU_TEST_DATA");
    char dir[1024], probe[1100];
    size_t i;
    uint32_t k;
    int found = 0;
    for (i = 0; i < LG_ARRAY_LEN(want); i++) {
        struct lg_checkpoint *c;
        uint64_t total = 0;
        snprintf(dir, sizeof dir, "%s/fixtures/golden/%s", data && *data ? data : "tests",
                 want[i].name);
        snprintf(probe, sizeof probe, "%s/config.json", dir);
        if (access(probe, R_OK) != 0)
            continue;
        found++;
        c = open_ok(dir);
        ck_assert_int_eq(c->cfg.arch, want[i].arch);
        ck_assert_uint_eq(c->cfg.n_vocab, 384);
        ck_assert_uint_eq(c->cfg.n_embd, want[i].n_embd);
        ck_assert_uint_eq(c->cfg.n_layer, want[i].n_layer);
        ck_assert_uint_eq(c->cfg.n_head, want[i].n_head);
        ck_assert_uint_eq(c->cfg.n_kv_head, want[i].n_kv_head);
        ck_assert_uint_eq(c->cfg.head_dim, want[i].head_dim);
        ck_assert_uint_eq(c->cfg.sliding_window, want[i].sliding_window);
        ck_assert_int_eq(c->cfg.tie_word_embeddings, want[i].tie);
        ck_assert_int_eq(c->cfg.qkv_bias, want[i].bias);
        ck_assert_int_eq(c->cfg.rope_scaling, want[i].rope);
        ck_assert_float_eq(c->cfg.rope_theta, want[i].rope_theta);
        if (want[i].single_file)
            ck_assert_uint_eq(c->n_files, 1);
        else
            ck_assert_uint_gt(c->n_files, 1);
        ck_assert_uint_eq(c->cfg.n_ff, 128);
        ck_assert_uint_eq(c->cfg.n_ctx_train, 128);
        if (want[i].rope == LG_ROPE_SCALING_LLAMA3) {
            ck_assert_float_eq(c->cfg.rope_factor, 8.0f);
            ck_assert_float_eq(c->cfg.rope_low_freq_factor, 1.0f);
            ck_assert_float_eq(c->cfg.rope_high_freq_factor, 4.0f);
            ck_assert_uint_eq(c->cfg.rope_orig_ctx, 32);
        } else if (want[i].rope == LG_ROPE_SCALING_LINEAR) {
            ck_assert_float_eq(c->cfg.rope_factor, 2.0f);
        }
        check_all_roles(c);
        for (k = 0; k < c->tensors.n; k++)
            total += c->tensors.v[k].n_elements;
        ck_assert_msg(total == c->n_params, "%s: %llu elements in the files, %llu used", dir,
                      (unsigned long long)total, (unsigned long long)c->n_params);
        lg_ckpt_close(c);
    }
    if (!found)
        fprintf(stderr, "test_transformers_checkpoints: no tests/fixtures/golden here; skipped\n");
}
END_TEST

static const char base_cfg[] =
    "{\n"
    "  \"architectures\": [\"LlamaForCausalLM\"],\n"
    "  \"model_type\": \"llama\",\n"
    "  \"hidden_size\": 64,\n"
    "  \"intermediate_size\": 160,\n"
    "  \"num_hidden_layers\": 2,\n"
    "  \"num_attention_heads\": 4,\n"
    "  \"num_key_value_heads\": 2,\n"
    "  \"vocab_size\": 320,\n"
    "  \"max_position_embeddings\": 512,\n"
    "  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_theta\": 10000.0,\n"
    "  \"rope_scaling\": null,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"bos_token_id\": 1,\n"
    "  \"eos_token_id\": 2\n"
    "}\n";

/* base_cfg with the first `from` replaced by `to` (from "" means unchanged). */
static char *cfg_edit(const char *from, const char *to) {
    static char out[4096];
    const char *p = *from ? strstr(base_cfg, from) : NULL;
    ck_assert_msg(!*from || p, "edit target %s not in base config", from);
    if (!p) {
        snprintf(out, sizeof out, "%s", base_cfg);
        return out;
    }
    snprintf(out, sizeof out, "%.*s%s%s", (int)(p - base_cfg), base_cfg, to, p + strlen(from));
    return out;
}

static enum llmgpu_status parse_cfg(const char *json, struct lg_model_config *cfg) {
    lgt_log_reset();
    return lg_config_parse(NULL, &lgt_log, json, strlen(json), "test/config.json", cfg);
}

START_TEST(test_config_dialects) {
    struct lg_model_config cfg;
    /* transformers 5: rope parameters under "rope_parameters" */
    ck_assert_int_eq(parse_cfg(cfg_edit("\"rope_theta\": 10000.0,",
                                        "\"rope_parameters\": {\"rope_theta\": 500000.0, "
                                        "\"rope_type\": \"llama3\", \"factor\": 32.0, "
                                        "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                                        "\"original_max_position_embeddings\": 8192},"),
                               &cfg),
                     LLMGPU_OK);
    ck_assert_float_eq(cfg.rope_theta, 500000.0f);
    ck_assert_int_eq(cfg.rope_scaling, LG_ROPE_SCALING_LLAMA3);
    ck_assert_float_eq(cfg.rope_factor, 32.0f);
    ck_assert_uint_eq(cfg.rope_orig_ctx, 8192);
    ck_assert_int_eq(parse_cfg(cfg_edit("\"rope_theta\": 10000.0,",
                                        "\"rope_parameters\": {\"rope_theta\": 20000.0, "
                                        "\"rope_type\": \"default\"},"),
                               &cfg),
                     LLMGPU_OK);
    ck_assert_float_eq(cfg.rope_theta, 20000.0f);
    ck_assert_int_eq(cfg.rope_scaling, LG_ROPE_SCALING_NONE);
    /* old-style "type" */
    ck_assert_int_eq(parse_cfg(cfg_edit("\"rope_scaling\": null",
                                        "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4}"),
                               &cfg),
                     LLMGPU_OK);
    ck_assert_int_eq(cfg.rope_scaling, LG_ROPE_SCALING_LINEAR);
    ck_assert_float_eq(cfg.rope_factor, 4.0f);
    /* eos list, null bos */
    ck_assert_int_eq(parse_cfg(cfg_edit("\"bos_token_id\": 1,\n  \"eos_token_id\": 2",
                                        "\"bos_token_id\": null, \"eos_token_id\": [128001, "
                                        "128008, 128009, 128008]"),
                               &cfg),
                     LLMGPU_OK);
    ck_assert_int_eq(cfg.bos_id, -1);
    ck_assert_uint_eq(cfg.n_eos, 3);
    ck_assert_int_eq(cfg.eos_ids[2], 128009);
    /* model_type only, defaults: kv heads = heads, rope_theta, eps, ctx, bos/eos */
    ck_assert_int_eq(parse_cfg("{\"model_type\": \"llama\", \"hidden_size\": 32, "
                               "\"intermediate_size\": 64, \"num_hidden_layers\": 1, "
                               "\"num_attention_heads\": 2, \"vocab_size\": 10}",
                               &cfg),
                     LLMGPU_OK);
    ck_assert_int_eq(cfg.arch, LG_ARCH_LLAMA);
    ck_assert_str_eq(cfg.arch_name, "LlamaForCausalLM");
    ck_assert_uint_eq(cfg.n_kv_head, 2);
    ck_assert_uint_eq(cfg.head_dim, 16);
    ck_assert_float_eq(cfg.rope_theta, 10000.0f);
    ck_assert_float_eq(cfg.rms_norm_eps, 1e-6f);
    ck_assert_uint_eq(cfg.n_ctx_train, 2048);
    ck_assert_int_eq(cfg.bos_id, 1);
    ck_assert(cfg.n_eos == 1 && cfg.eos_ids[0] == 2);
    /* qwen2 defaults: no bos/eos */
    ck_assert_int_eq(parse_cfg("{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 32, "
                               "\"intermediate_size\": 64, \"num_hidden_layers\": 1, "
                               "\"num_attention_heads\": 2, \"vocab_size\": 10, "
                               "\"use_sliding_window\": false, \"sliding_window\": 4096}",
                               &cfg),
                     LLMGPU_OK);
    ck_assert_int_eq(cfg.qkv_bias, 1);
    ck_assert_int_eq(cfg.bos_id, -1);
    ck_assert_uint_eq(cfg.n_eos, 0);
    ck_assert_uint_eq(cfg.sliding_window, 0);
    ck_assert_uint_eq(cfg.n_ctx_train, 32768);
    /* head_dim null is absent; trailing whitespace is fine */
    ck_assert_int_eq(parse_cfg(cfg_edit("\"hidden_size\": 64,", "\"hidden_size\": 64, "
                                        "\"head_dim\": null,"),
                               &cfg),
                     LLMGPU_OK);
    ck_assert_uint_eq(cfg.head_dim, 16);
    ck_assert_uint_eq(cfg.n_kv_head, 2);
    /* not NUL-terminated input */
    {
        char buf[4096];
        size_t n = strlen(base_cfg);
        memcpy(buf, base_cfg, n);
        memset(buf + n, 'x', 8);
        ck_assert_int_eq(lg_config_parse(NULL, NULL, buf, n, "x", &cfg), LLMGPU_OK);
    }
}
END_TEST

/* =================================================================== Errors */

struct cfg_case {
    const char *from, *to;
    enum llmgpu_status st;
    const char *msg1, *msg2;
};

static const struct cfg_case cfg_cases[] = {
    {"\"hidden_size\": 64,", "", LLMGPU_ERR_BAD_MODEL_FILE, "\"hidden_size\" is missing", NULL},
    {"\"hidden_size\": 64,", "\"hidden_size\": null,", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"hidden_size\" is missing (null)", NULL},
    {"\"hidden_size\": 64", "\"hidden_size\": \"64\"", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"hidden_size\": expected an integer, got a string", NULL},
    {"\"hidden_size\": 64", "\"hidden_size\": 64.5", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"hidden_size\": expected an integer, got 64.5", NULL},
    {"\"hidden_size\": 64", "\"hidden_size\": 0", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"hidden_size\": 0 is out of range", NULL},
    {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": -2", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"num_hidden_layers\": -2 is out of range", NULL},
    {"\"vocab_size\": 320", "\"vocab_size\": 1e12", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"vocab_size\": 1000000000000 is out of range", NULL},
    {"\"intermediate_size\": 160", "\"intermediate_size\": [160]", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"intermediate_size\": expected an integer, got an array", NULL},
    {"\"num_attention_heads\": 4", "\"num_attention_heads\": 5", LLMGPU_ERR_BAD_MODEL_FILE,
     "not divisible by num_attention_heads 5", NULL},
    {"\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", LLMGPU_ERR_BAD_MODEL_FILE,
     "num_key_value_heads 3 does not divide num_attention_heads 4", NULL},
    {"\"num_key_value_heads\": 2", "\"num_key_value_heads\": 8", LLMGPU_ERR_BAD_MODEL_FILE,
     "num_key_value_heads 8 does not divide", NULL},
    {"\"hidden_size\": 64,", "\"hidden_size\": 64, \"head_dim\": 15,", LLMGPU_ERR_BAD_MODEL_FILE,
     "head dimension 15 is odd", NULL},
    {"\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": -1", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"rms_norm_eps\": -1 is out of range", NULL},
    {"\"rope_theta\": 10000.0", "\"rope_theta\": 1e-50", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"rope_theta\": 1e-50 is out of range", NULL}, /* positive, but 0 as a float */
    {"\"rope_theta\": 10000.0", "\"rope_theta\": \"big\"", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"rope_theta\": expected a number, got a string", NULL},
    {"\"tie_word_embeddings\": false", "\"tie_word_embeddings\": \"yes\"",
     LLMGPU_ERR_BAD_MODEL_FILE, "\"tie_word_embeddings\": expected true or false", NULL},
    {"\"eos_token_id\": 2", "\"eos_token_id\": \"</s>\"", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"eos_token_id\": expected an integer or a list", NULL},
    {"\"eos_token_id\": 2", "\"eos_token_id\": [2, -1]", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"eos_token_id[]\": -1 is out of range", NULL},
    {"[\"LlamaForCausalLM\"]", "[\"GPT2LMHeadModel\"]", LLMGPU_ERR_UNSUPPORTED_MODEL,
     "architecture \"GPT2LMHeadModel\" is not supported", NULL},
    {"[\"LlamaForCausalLM\"]", "\"LlamaForCausalLM\"", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"architectures\": expected a list of strings, got a string", NULL},
    {"[\"LlamaForCausalLM\"]", "[]", LLMGPU_ERR_BAD_MODEL_FILE, "\"architectures\" is an empty list",
     NULL},
    {"[\"LlamaForCausalLM\"]", "[3]", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"architectures\"[0]: expected a string, got a number", NULL},
    {"\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}",
     LLMGPU_ERR_UNSUPPORTED_MODEL, "rope scaling type \"yarn\" is not supported", NULL},
    {"\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 4}",
     LLMGPU_ERR_UNSUPPORTED_MODEL, "\"dynamic\"", NULL},
    {"\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}",
     LLMGPU_ERR_BAD_MODEL_FILE, "rope_scaling: required field \"low_freq_factor\" is missing",
     NULL},
    {"\"rope_scaling\": null",
     "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, "
     "\"high_freq_factor\": 1, \"original_max_position_embeddings\": 8192}",
     LLMGPU_ERR_BAD_MODEL_FILE, "must be greater than low_freq_factor", NULL},
    {"\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\"}",
     LLMGPU_ERR_BAD_MODEL_FILE, "required field \"factor\" is missing", NULL},
    {"\"rope_scaling\": null", "\"rope_scaling\": {\"factor\": 2}", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"rope_type\" (or \"type\") is missing", NULL},
    {"\"rope_scaling\": null", "\"rope_scaling\": 2", LLMGPU_ERR_BAD_MODEL_FILE,
     "\"rope_scaling\": expected an object or null, got a number", NULL},
    {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", LLMGPU_ERR_UNSUPPORTED_MODEL,
     "hidden_act \"gelu\" is not supported", NULL},
    {"\"hidden_act\": \"silu\"", "\"attention_bias\": true", LLMGPU_ERR_UNSUPPORTED_MODEL,
     "attention_bias true", NULL},
    {"\"hidden_act\": \"silu\"", "\"mlp_bias\": true", LLMGPU_ERR_UNSUPPORTED_MODEL, "mlp_bias",
     NULL},
    {"[\"LlamaForCausalLM\"]", "[\"Qwen2ForCausalLM\"], \"use_sliding_window\": true",
     LLMGPU_ERR_UNSUPPORTED_MODEL, "use_sliding_window true", NULL},
    {"[\"LlamaForCausalLM\"]", "[\"MistralForCausalLM\"], \"sliding_window\": \"4k\"",
     LLMGPU_ERR_BAD_MODEL_FILE, "\"sliding_window\": expected an integer", NULL},
    {"\"max_position_embeddings\": 512", "\"max_position_embeddings\": 0",
     LLMGPU_ERR_BAD_MODEL_FILE, "\"max_position_embeddings\": 0 is out of range", NULL},
    {"\"vocab_size\": 320,", "\"vocab_size\": 320,,", LLMGPU_ERR_BAD_MODEL_FILE,
     "not valid JSON: syntax error at byte 220", "(line 9, column 22)"},
    {"\n}\n", "\n} x", LLMGPU_ERR_BAD_MODEL_FILE, "trailing data", NULL},
};

START_TEST(test_config_errors) {
    const struct cfg_case *k = &cfg_cases[_i];
    struct lg_model_config cfg;
    enum llmgpu_status st = parse_cfg(cfg_edit(k->from, k->to), &cfg);
    ck_assert_msg(st == k->st, "case %d (%s): status %d, want %d; log: %s", _i, k->to, st, k->st,
                  lgt_log_text());
    ck_assert_msg(lgt_log_has("test/config.json", k->msg1, k->msg2, NULL),
                  "case %d: log lacks \"%s\": %s", _i, k->msg1, lgt_log_text());
}
END_TEST

START_TEST(test_config_not_json) {
    struct lg_model_config cfg;
    ck_assert_int_eq(parse_cfg("", &cfg), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert(lgt_log_has("test/config.json: empty file", NULL));
    ck_assert_int_eq(parse_cfg("[1, 2]", &cfg), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert(lgt_log_has("expected a JSON object at the top level", NULL));
    ck_assert_int_eq(parse_cfg("{\"a\": ", &cfg), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert(lgt_log_has("not valid JSON", NULL));
    ck_assert_int_eq(parse_cfg("{\"hidden_size\": 1}", &cfg), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert(lgt_log_has("\"architectures\" (or \"model_type\") is missing", NULL));
    ck_assert_int_eq(parse_cfg("{\"model_type\": \"gpt2\"}", &cfg), LLMGPU_ERR_UNSUPPORTED_MODEL);
    ck_assert(lgt_log_has("\"gpt2\" is not supported", NULL));
    lgt_log_reset();
    ck_assert_int_eq(lg_config_parse(NULL, &lgt_log, NULL, 0, "c.json", &cfg),
                     LLMGPU_ERR_BAD_MODEL_FILE);
}
END_TEST

/* ---- safetensors from memory ---- */

static size_t st_build(unsigned char *buf, size_t cap, const char *header, size_t data_len) {
    size_t h = strlen(header), i;
    ck_assert_uint_le(8 + h + data_len, cap);
    for (i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    for (i = 0; i < data_len; i++)
        buf[8 + h + i] = (unsigned char)i;
    return 8 + h + data_len;
}

static enum llmgpu_status st_parse(const void *buf, size_t len, struct lg_tensor_table *tab) {
    lgt_log_reset();
    return lg_safetensors_parse(NULL, &lgt_log, "t.safetensors", buf, len, 0, tab);
}

START_TEST(test_safetensors_ok) {
    unsigned char buf[4096];
    struct lg_tensor_table tab = {0};
    size_t n = st_build(buf, sizeof buf,
                        "{\"__metadata__\":{\"format\":\"pt\"},"
                        "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[16,28]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        "\"pos\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[28,44]},"
                        "\"e\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[44,44]},"
                        "\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[44,45]}}   ",
                        45);
    ck_assert_int_eq(st_parse(buf, n, &tab), LLMGPU_OK);
    ck_assert_uint_eq(tab.n, 5);
    ck_assert_str_eq(tab.v[0].name, "b");
    ck_assert_int_eq(tab.v[0].dtype, LG_DTYPE_BF16);
    ck_assert(tab.v[0].n_dims == 2 && tab.v[0].shape[0] == 2 && tab.v[0].shape[1] == 3);
    ck_assert_uint_eq(tab.v[0].shape[2], 1);
    ck_assert_uint_eq(tab.v[0].nbytes, 12);
    ck_assert_ptr_eq(tab.v[0].data, buf + n - 45 + 16);
    ck_assert_uint_eq(tab.v[0].file_offset, n - 45 + 16);
    ck_assert_int_eq(tab.v[2].dtype, LG_DTYPE_I64);
    ck_assert_uint_eq(tab.v[3].n_elements, 0);
    ck_assert_uint_eq(tab.v[4].n_dims, 0);
    ck_assert_uint_eq(tab.v[4].n_elements, 1);
    lg_tensor_table_free(NULL, &tab);
    /* a gap between tensors and trailing bytes are accepted */
    n = st_build(buf, sizeof buf,
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                 "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[12,14]}}",
                 20);
    ck_assert_int_eq(st_parse(buf, n, &tab), LLMGPU_OK);
    ck_assert_uint_eq(tab.n, 2);
    lg_tensor_table_free(NULL, &tab);
    /* header only, no tensors */
    n = st_build(buf, sizeof buf, "{}", 0);
    ck_assert_int_eq(st_parse(buf, n, &tab), LLMGPU_OK);
    ck_assert_uint_eq(tab.n, 0);
    lg_tensor_table_free(NULL, &tab);
}
END_TEST

struct st_case {
    const char *header;
    size_t data_len;
    enum llmgpu_status st;
    const char *msg1, *msg2;
};

#define T_(body) "{\"w\":{" body "}}"
static const struct st_case st_cases[] = {
    {"{abc", 0, LLMGPU_ERR_BAD_MODEL_FILE, "header is not valid JSON (error at byte", NULL},
    {"[\"a\"]", 0, LLMGPU_ERR_BAD_MODEL_FILE, "header at byte 8 does not start with '{'", NULL},
    {"{} x", 0, LLMGPU_ERR_BAD_MODEL_FILE, "trailing data after the JSON object at byte 11", NULL},
    {T_("\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,4]"), 4, LLMGPU_ERR_BAD_MODEL_FILE,
     "tensor \"w\": unknown dtype \"F7\"", NULL},
    {T_("\"shape\":[1],\"data_offsets\":[0,4]"), 4, LLMGPU_ERR_BAD_MODEL_FILE,
     "\"dtype\" is missing", NULL},
    {T_("\"dtype\":\"F32\",\"data_offsets\":[0,4]"), 4, LLMGPU_ERR_BAD_MODEL_FILE,
     "\"shape\" is missing", NULL},
    {T_("\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]"), 4, LLMGPU_ERR_BAD_MODEL_FILE,
     "shape[0] is not a non-negative integer", NULL},
    {T_("\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]"), 4, LLMGPU_ERR_BAD_MODEL_FILE,
     "shape[0] is not a non-negative integer", NULL},
    {T_("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]"), 4,
     LLMGPU_ERR_UNSUPPORTED_MODEL, "more than 4 dimensions", NULL},
    {T_("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]"), 4,
     LLMGPU_ERR_BAD_MODEL_FILE, "element count overflows", NULL},
    {T_("\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,4]"), 4,
     LLMGPU_ERR_BAD_MODEL_FILE, "byte size overflows", NULL},
    {T_("\"dtype\":\"F32\",\"shape\":[1]"), 4, LLMGPU_ERR_BAD_MODEL_FILE,
     "\"data_offsets\" must be a list of two", NULL},
    {T_("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]"), 8, LLMGPU_ERR_BAD_MODEL_FILE,
     "\"data_offsets\" must be a list of two", NULL},
    {T_("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]"), 8, LLMGPU_ERR_BAD_MODEL_FILE,
     "data_offsets [8, 4] end before begin", NULL},
    {T_("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 4, LLMGPU_ERR_BAD_MODEL_FILE,
     "data_offsets [0, 8] (file bytes 62..70) lie outside the data section of 4 bytes at byte 62",
     "file size 66"},
    {T_("\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]"), 8, LLMGPU_ERR_BAD_MODEL_FILE,
     "hold 8 bytes but F32 shape of 4 elements needs 16", "at byte 62"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, LLMGPU_ERR_BAD_MODEL_FILE, "tensors \"a\" (bytes", "overlap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
     16, LLMGPU_ERR_BAD_MODEL_FILE, "tensor \"a\" appears twice", NULL},
    {"{\"__metadata__\":[1]}", 0, LLMGPU_ERR_BAD_MODEL_FILE, "\"__metadata__\" is not an object",
     NULL},
    {"{\"__metadata__\":{\"a\":1}}", 0, LLMGPU_ERR_BAD_MODEL_FILE, "value \"a\" is not a string",
     NULL},
    {"{\"w\":[1]}", 0, LLMGPU_ERR_BAD_MODEL_FILE, "header entry \"w\" is not an object", NULL},
};

START_TEST(test_safetensors_errors) {
    const struct st_case *k = &st_cases[_i];
    unsigned char buf[4096];
    struct lg_tensor_table tab = {0};
    size_t n = st_build(buf, sizeof buf, k->header, k->data_len);
    enum llmgpu_status st = st_parse(buf, n, &tab);
    ck_assert_msg(st == k->st, "case %d: status %d, want %d; log: %s", _i, st, k->st,
                  lgt_log_text());
    ck_assert_msg(lgt_log_has("t.safetensors: ", k->msg1, k->msg2, NULL),
                  "case %d: log lacks \"%s\": %s", _i, k->msg1, lgt_log_text());
    ck_assert_uint_eq(tab.n, 0);
    lg_tensor_table_free(NULL, &tab);
}
END_TEST

START_TEST(test_safetensors_truncated) {
    unsigned char buf[64] = {0};
    struct lg_tensor_table tab = {0};
    ck_assert_int_eq(st_parse(buf, 0, &tab), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert(lgt_log_has("t.safetensors: empty file", NULL));
    ck_assert_int_eq(st_parse(buf, 5, &tab), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert(lgt_log_has("truncated: 5 bytes", NULL));
    buf[0] = 100; /* header length 100 in a 40-byte file */
    ck_assert_int_eq(st_parse(buf, 40, &tab), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert(lgt_log_has("header length 100 (at byte 0) runs past the end of the file (40 bytes)",
                          NULL));
    memset(buf, 0xff, 8); /* 2^64 - 1 */
    ck_assert_int_eq(st_parse(buf, 40, &tab), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert(lgt_log_has("header length 18446744073709551615", NULL));
    memset(buf, 0, 8);
    ck_assert_int_eq(st_parse(buf, 8, &tab), LLMGPU_ERR_BAD_MODEL_FILE);
    ck_assert(lgt_log_has("does not start with '{'", NULL));
    ck_assert_uint_eq(tab.n, 0);
}
END_TEST

/* ---- whole checkpoints ---- */

static void open_fails(const char *dir, enum llmgpu_status want, const char *m1, const char *m2) {
    struct lg_checkpoint *c = (struct lg_checkpoint *)1;
    enum llmgpu_status st;
    lgt_log_reset();
    st = lg_ckpt_open(NULL, &lgt_log, dir, &c);
    ck_assert_msg(st == want, "%s: status %d, want %d; log: %s", dir, st, want, lgt_log_text());
    ck_assert_ptr_null(c);
    ck_assert_msg(lgt_log_has(m1, m2, NULL), "log lacks \"%s\"/\"%s\": %s", m1, m2 ? m2 : "",
                  lgt_log_text());
}

#define SH(...)                                                                            \
    do {                                                                                   \
        char cmd_[2048];                                                                   \
        snprintf(cmd_, sizeof cmd_, __VA_ARGS__);                                          \
        ck_assert_msg(system(cmd_) == 0, "%s", cmd_);                                      \
    } while (0)

START_TEST(test_ckpt_missing_files) {
    char dir[512];
    struct lg_checkpoint *c = (struct lg_checkpoint *)1;
    ck_assert_int_eq(lgt_mkdtemp("empty", dir, sizeof dir), 0);
    open_fails(dir, LLMGPU_ERR_IO, "config.json: cannot open", NULL);
    ck_assert_int_eq(lgt_mkmodel("", dir, sizeof dir), 0);
    SH("rm '%s/model.safetensors'", dir);
    open_fails(dir, LLMGPU_ERR_IO, "neither model.safetensors nor model.safetensors.index.json",
               NULL);
    SH(": > '%s/pytorch_model.bin'", dir);
    open_fails(dir, LLMGPU_ERR_UNSUPPORTED_MODEL, "has pytorch_model.bin but no model.safetensors",
               "only Hugging Face safetensors checkpoints are supported");
    SH("rm '%s/pytorch_model.bin'", dir);
    SH(": > '%s/model.safetensors'", dir);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "model.safetensors: empty file", NULL);
    SH("rm '%s/model.safetensors'; mkdir '%s/model.safetensors'", dir, dir);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "not a regular file", NULL);
    open_fails("/nonexistent/dir", LLMGPU_ERR_IO, "/nonexistent/dir/config.json", NULL);
    ck_assert_int_eq(lg_ckpt_open(NULL, NULL, "", &c), LLMGPU_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(lg_ckpt_open(NULL, NULL, dir, NULL), LLMGPU_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_ckpt_truncated) {
    char dir[512];
    ck_assert_int_eq(lgt_mkmodel("", dir, sizeof dir), 0);
    SH("truncate -s -100 '%s/model.safetensors'", dir);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "model.safetensors: tensor \"",
               "lie outside the data section");
    SH("truncate -s 6 '%s/model.safetensors'", dir);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "model.safetensors: truncated", NULL);
}
END_TEST

START_TEST(test_ckpt_bad_config) {
    char dir[512];
    ck_assert_int_eq(lgt_mkmodel("", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "config.json", "\"vocab_size\": 320",
                                 "\"vocab_size\": \"320\""), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "/config.json: field \"vocab_size\": expected an "
               "integer, got a string", NULL);
    ck_assert_int_eq(lgt_mkmodel("", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_write(dir, "generation_config.json", "{\"eos_token_id\": \"x\"}", 21), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "generation_config.json: field \"eos_token_id\"",
               NULL);
    ck_assert_int_eq(lgt_write(dir, "generation_config.json", "{", 1), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "generation_config.json: not valid JSON", NULL);
}
END_TEST

START_TEST(test_ckpt_missing_tensor) {
    char dir[512];
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "config.json", "\"num_hidden_layers\": 2",
                                 "\"num_hidden_layers\": 3"), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE,
               "model.safetensors.index.json: tensor \"model.layers.2.input_layernorm.weight\" is "
               "missing", NULL);
    ck_assert_int_eq(lgt_mkmodel("--tie", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "config.json", "\"tie_word_embeddings\": true",
                                 "\"tie_word_embeddings\": false"), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE,
               "model.safetensors: tensor \"lm_head.weight\" is missing (tie_word_embeddings is "
               "false)", NULL);
    ck_assert_int_eq(lgt_mkmodel("", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "config.json", "LlamaForCausalLM", "Qwen2ForCausalLM"), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "\"model.layers.0.self_attn.q_proj.bias\" is missing",
               NULL);
}
END_TEST

START_TEST(test_ckpt_wrong_shape) {
    char dir[512];
    ck_assert_int_eq(lgt_mkmodel("", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "config.json", "\"intermediate_size\": 160",
                                 "\"intermediate_size\": 100"), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE,
               "model.safetensors: tensor \"model.layers.0.mlp.gate_proj.weight\" has shape "
               "[160, 64], expected [100, 64]", NULL);
    ck_assert_int_eq(lgt_mkmodel("", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "config.json", "\"num_key_value_heads\": 4",
                                 "\"num_key_value_heads\": 2"), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "k_proj.weight\" has shape [64, 64], expected "
               "[32, 64]", NULL);
    ck_assert_int_eq(lgt_mkmodel("", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "config.json", "\"hidden_size\": 64",
                                 "\"hidden_size\": 32"), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "\"model.embed_tokens.weight\" has shape [320, 64], "
               "expected [320, 32]", NULL);
}
END_TEST

START_TEST(test_ckpt_non_float_weight) {
    char dir[512];
    ck_assert_int_eq(lgt_mkmodel("--dtype f16", dir, sizeof dir), 0);
    /* same size, so only the dtype check can catch it */
    ck_assert_int_eq(lgt_replace(dir, "model.safetensors",
                                 "\"model.norm.weight\":{\"dtype\":\"F16\"",
                                 "\"model.norm.weight\":{\"dtype\":\"I16\""), 0);
    open_fails(dir, LLMGPU_ERR_UNSUPPORTED_MODEL,
               "model.safetensors: tensor \"model.norm.weight\" at byte ",
               "has dtype I16; weights must be F32, F16 or BF16");
}
END_TEST

START_TEST(test_ckpt_shards) {
    char dir[512], other[512], cmd[4096];
    /* a shard named in the index is missing */
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    SH("rm '%s/model-00002-of-00002.safetensors'", dir);
    open_fails(dir, LLMGPU_ERR_IO, "model.safetensors.index.json: shard "
               "\"model-00002-of-00002.safetensors\" named in the index is missing", NULL);
    /* escaping names */
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "model.safetensors.index.json",
                                 "\"model-00002-of-00002.safetensors\"",
                                 "\"../model-00002-of-00002.safetensors\""), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "contains \"..\"", NULL);
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "model.safetensors.index.json",
                                 "\"model-00002-of-00002.safetensors\"", "\"/etc/passwd\""), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "shard \"/etc/passwd\" is an absolute path", NULL);
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_mkdtemp("outside", other, sizeof other), 0);
    snprintf(cmd, sizeof cmd, "mv '%s/model-00002-of-00002.safetensors' '%s/x.safetensors' && "
             "ln -s '%s/x.safetensors' '%s/model-00002-of-00002.safetensors'",
             dir, other, other, dir);
    ck_assert_int_eq(system(cmd), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "resolves to", "outside the model directory");
    /* a relative symlink inside the directory is fine */
    snprintf(cmd, sizeof cmd, "cd '%s' && mkdir sub && mv '%s/x.safetensors' sub/ && "
             "rm model-00002-of-00002.safetensors && "
             "ln -s sub/x.safetensors model-00002-of-00002.safetensors",
             dir, other);
    ck_assert_int_eq(system(cmd), 0);
    lg_ckpt_close(open_ok(dir));
    /* the index disagrees with the shards */
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "model.safetensors.index.json",
                                 "\"model.embed_tokens.weight\": \"model-00001-of-00002",
                                 "\"model.embed_tokens.weight\": \"model-00002-of-00002"), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "tensor \"model.embed_tokens.weight\" is listed in "
               "model-00002-of-00002.safetensors but is in model-00001-of-00002.safetensors", NULL);
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_replace(dir, "model.safetensors.index.json", "\"weight_map\": {",
                                 "\"weight_map\": {\"ghost\": \"model-00001-of-00002.safetensors\","),
                     0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "tensor \"ghost\" is listed in weight_map but is "
               "not in model-00001-of-00002.safetensors", NULL);
    /* the same tensor in two shards */
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    SH("cp '%s/model-00001-of-00002.safetensors' '%s/model-00002-of-00002.safetensors'", dir, dir);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "is in both model-00001-of-00002.safetensors and "
               "model-00002-of-00002.safetensors", NULL);
    /* malformed index */
    ck_assert_int_eq(lgt_mkmodel("--shards 2", dir, sizeof dir), 0);
    ck_assert_int_eq(lgt_write(dir, "model.safetensors.index.json", "{\"weight_map\": [1]}", 19),
                     0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "\"weight_map\" is an array; expected an object",
               NULL);
    ck_assert_int_eq(lgt_write(dir, "model.safetensors.index.json", "{\"weight_map\": {\"a\": 1}}",
                               24), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "weight_map[\"a\"] is a number", NULL);
    ck_assert_int_eq(lgt_write(dir, "model.safetensors.index.json", "{\"weight_map\": {}}", 18), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "weight_map is empty", NULL);
    ck_assert_int_eq(lgt_write(dir, "model.safetensors.index.json", "{\"weight_map\"", 13), 0);
    open_fails(dir, LLMGPU_ERR_BAD_MODEL_FILE, "model.safetensors.index.json: not valid JSON", NULL);
}
END_TEST

START_TEST(test_ckpt_bad_files_dir) {
    /* handcrafted files committed under tests/data/bad/: each is a checkpoint
     * directory whose EXPECT file holds "<status> <log substring>" */
    const char *data = getenv("LLMGPU_TEST_DATA");
    char root[512], cmd[1024], line[512];
    char dir[2048];
    FILE *ls;
    int count = 0;
    snprintf(root, sizeof root, "%s/data/bad", data && *data ? data : "tests");
    snprintf(cmd, sizeof cmd, "ls '%s'", root);
    ls = popen(cmd, "r");
    ck_assert_ptr_nonnull(ls);
    while (fgets(line, sizeof line, ls)) {
        char *expect, *msg;
        int want;
        size_t len;
        line[strcspn(line, "\n")] = '\0';
        snprintf(dir, sizeof dir, "%s/%s", root, line);
        expect = lgt_read(dir, "EXPECT", &len);
        ck_assert_msg(expect != NULL, "%s/EXPECT missing", dir);
        expect[strcspn(expect, "\n")] = '\0';
        want = atoi(expect);
        msg = strchr(expect, ' ');
        ck_assert_ptr_nonnull(msg);
        open_fails(dir, (enum llmgpu_status)want, msg + 1, NULL);
        free(expect);
        count++;
    }
    pclose(ls);
    ck_assert_int_gt(count, 0);
}
END_TEST

Suite *model_suite(void);
Suite *model_suite(void) {
    Suite *s = suite_create("model");
    TCase *tc;

    tc = tcase_create("Core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_default_model);
    tcase_add_test(tc, test_arch_table);
    tcase_add_test(tc, test_f16_conversion);
    tcase_add_test(tc, test_bf16_conversion);
    tcase_add_test(tc, test_convert_f16_bulk);
    tcase_add_test(tc, test_convert_arrays);
    tcase_add_test(tc, test_alloc_failures);
    tcase_add_test(tc, test_user_allocator);
    suite_add_tcase(s, tc);

    tc = tcase_create("Variants");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sharded);
    tcase_add_test(tc, test_bf16);
    tcase_add_test(tc, test_f16);
    tcase_add_test(tc, test_tied);
    tcase_add_test(tc, test_gqa);
    tcase_add_test(tc, test_mqa);
    tcase_add_test(tc, test_head_dim);
    tcase_add_test(tc, test_mistral);
    tcase_add_test(tc, test_qwen2);
    tcase_add_test(tc, test_rope_scaling_files);
    tcase_add_test(tc, test_generation_config_eos);
    tcase_add_test(tc, test_hub_cache_layout);
    tcase_add_test(tc, test_generator_margins);
    tcase_add_test(tc, test_transformers_checkpoints);
    tcase_add_test(tc, test_config_dialects);
    tcase_add_test(tc, test_safetensors_ok);
    suite_add_tcase(s, tc);

    tc = tcase_create("Errors");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_config_errors, 0, (int)LG_ARRAY_LEN(cfg_cases));
    tcase_add_test(tc, test_config_not_json);
    tcase_add_loop_test(tc, test_safetensors_errors, 0, (int)LG_ARRAY_LEN(st_cases));
    tcase_add_test(tc, test_safetensors_truncated);
    tcase_add_test(tc, test_ckpt_missing_files);
    tcase_add_test(tc, test_ckpt_truncated);
    tcase_add_test(tc, test_ckpt_bad_config);
    tcase_add_test(tc, test_ckpt_missing_tensor);
    tcase_add_test(tc, test_ckpt_wrong_shape);
    tcase_add_test(tc, test_ckpt_non_float_weight);
    tcase_add_test(tc, test_ckpt_shards);
    tcase_add_test(tc, test_ckpt_bad_files_dir);
    suite_add_tcase(s, tc);
    return s;
}
