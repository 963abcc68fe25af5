/*
 * internal.h - declarations shared between the library's own files.
 *
 * Owns: logging, host allocation, the format-neutral model configuration and
 * small helpers. Nothing here is exported: every cross-file function is named
 * lg_<module>_<verb> and hidden by -fvisibility=hidden and lib/libllmgpu.map.
 * Unit tests reach these through build/libllmgpu.a.
 */
#ifndef LG_INTERNAL_H
#define LG_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "llmgpu.h"

#define LG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LG_MAX(a, b) ((a) > (b) ? (a) : (b))
#define LG_ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

#if defined(__GNUC__)
#define LG_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define LG_PRINTF(fmt_idx, arg_idx)
#endif

/* Invariants of our own code only; caller input gets LLMGPU_ERR_INVALID_ARGUMENT. */
#ifdef LLMGPU_DEBUG
void lg_assert_fail(const char *expr, const char *file, int line);
#define LLMGPU_ASSERT(e) ((e) ? (void)0 : lg_assert_fail(#e, __FILE__, __LINE__))
#else
#define LLMGPU_ASSERT(e) ((void)0)
#endif

/* ---- Logging (log.c) ---- */

/* A log sink: where messages of at least min go. fn NULL means silent. */
struct lg_log {
    llmgpu_log_fn fn;
    void *user;
    enum llmgpu_log_level min;
};

/* Format and send one message; a NULL log or a filtered level does nothing. */
void lg_logf(const struct lg_log *log, enum llmgpu_log_level level, const char *fmt, ...)
    LG_PRINTF(3, 4);
void lg_vlogf(const struct lg_log *log, enum llmgpu_log_level level, const char *fmt,
              va_list ap) LG_PRINTF(3, 0);
#define lg_err(log, ...) lg_logf((log), LLMGPU_LOG_LEVEL_ERROR, __VA_ARGS__)
#define lg_warn(log, ...) lg_logf((log), LLMGPU_LOG_LEVEL_WARN, __VA_ARGS__)
#define lg_info(log, ...) lg_logf((log), LLMGPU_LOG_LEVEL_INFO, __VA_ARGS__)
#define lg_dbg(log, ...) lg_logf((log), LLMGPU_LOG_LEVEL_DEBUG, __VA_ARGS__)

/* ---- Host allocation (alloc.c) ----
 * Every host allocation of the library goes through these, so a caller's
 * allocator and the fault-injection hook of the tests see all of them.
 * A NULL lg_alloc means malloc/free. */
struct lg_alloc {
    struct llmgpu_allocator user; /* user.alloc NULL: malloc/free */
    /* Fault injection for tests: when fail_after > 0 it counts down on every
     * allocation and the allocation that brings it to 0 fails; with
     * fail_persist set every later allocation fails too. */
    int64_t fail_after;
    int fail_persist;
};

void *lg_malloc(const struct lg_alloc *a, size_t size);
void *lg_calloc(const struct lg_alloc *a, size_t count, size_t size); /* overflow-checked */
void *lg_realloc(const struct lg_alloc *a, void *ptr, size_t old_size, size_t new_size);
void lg_free(const struct lg_alloc *a, void *ptr);
char *lg_strdup(const struct lg_alloc *a, const char *s);
char *lg_strndup(const struct lg_alloc *a, const char *s, size_t n);

/* Size arithmetic that reports overflow instead of wrapping: 0 on success. */
int lg_mul_size(size_t a, size_t b, size_t *out);
int lg_add_size(size_t a, size_t b, size_t *out);

/* Read a whole file into memory (NUL-terminated, len excludes the NUL). */
enum llmgpu_status lg_read_file(const struct lg_alloc *a, const struct lg_log *log,
                                const char *path, char **data, size_t *len);

/* ---- Model configuration (lib/model) ----
 * Format-neutral hyper-parameters, filled from config.json or GGUF metadata. */
enum lg_arch {
    LG_ARCH_LLAMA = 0,   /* LlamaForCausalLM */
    LG_ARCH_MISTRAL = 1, /* MistralForCausalLM: sliding-window attention */
    LG_ARCH_QWEN2 = 2,   /* Qwen2ForCausalLM: biases on q/k/v */
};

enum lg_rope_scaling {
    LG_ROPE_SCALING_NONE = 0,
    LG_ROPE_SCALING_LINEAR = 1, /* positions divided by factor */
    LG_ROPE_SCALING_LLAMA3 = 2, /* per-frequency smoothing, transformers' _compute_llama3_parameters */
};

#define LG_MAX_EOS 8

struct lg_model_config {
    enum lg_arch arch;
    char arch_name[64];    /* as in config.json "architectures"[0] */
    uint32_t n_vocab;      /* vocab_size */
    uint32_t n_embd;       /* hidden_size */
    uint32_t n_ff;         /* intermediate_size */
    uint32_t n_layer;      /* num_hidden_layers */
    uint32_t n_head;       /* num_attention_heads */
    uint32_t n_kv_head;    /* num_key_value_heads (defaults to n_head) */
    uint32_t head_dim;     /* head_dim, else n_embd / n_head */
    uint32_t n_ctx_train;  /* max_position_embeddings */
    uint32_t sliding_window; /* 0: full attention */
    float rms_norm_eps;
    float rope_theta;
    enum lg_rope_scaling rope_scaling;
    float rope_factor;
    float rope_low_freq_factor;   /* llama3 only */
    float rope_high_freq_factor;  /* llama3 only */
    uint32_t rope_orig_ctx;       /* llama3: original_max_position_embeddings */
    int tie_word_embeddings;
    int qkv_bias;          /* Qwen2 */
    int32_t bos_id;        /* -1: none */
    int32_t eos_ids[LG_MAX_EOS];
    uint32_t n_eos;
};

#endif /* LG_INTERNAL_H */
