/*
 * model.h - host side of loading Hugging Face checkpoints: config.json,
 * safetensors (single file or shards), the architecture table and dtype
 * conversion.
 *
 * Owns: parsing and validating the files of a model directory, the mmapped
 * tensor table, and the names/shapes of every tensor an architecture needs.
 * Must not touch: Vulkan, the GPU upload, the tokenizer. Everything here is
 * CPU-only and is tested by tests/check_model.c without a GPU.
 *
 * Errors: every failure is logged at ERROR level on the given lg_log with the
 * file name (and tensor name and byte offset where one applies) and returns
 * LLMGPU_ERR_IO (cannot open/read), LLMGPU_ERR_BAD_MODEL_FILE (malformed),
 * LLMGPU_ERR_UNSUPPORTED_MODEL (well-formed but not supported) or
 * LLMGPU_ERR_OUT_OF_HOST_MEMORY.
 */
#ifndef LG_MODEL_H
#define LG_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- Element types ----
 * The first six are the ones weights may have; the rest are accepted in a
 * safetensors file (for tensors the model does not use, e.g. an I64
 * position-id buffer) and convertible, but a required weight must be F32, F16
 * or BF16 (GPTQ/AWQ projections: I32 qweight/qzeros and F16 scales, see
 * struct lg_qlinear). LG_DTYPE_COUNT stays last. */
enum lg_dtype {
    LG_DTYPE_F32,
    LG_DTYPE_F16,
    LG_DTYPE_BF16,
    LG_DTYPE_I32,
    LG_DTYPE_I8,
    LG_DTYPE_U8,
    LG_DTYPE_F64,
    LG_DTYPE_I64,
    LG_DTYPE_I16,
    LG_DTYPE_U16,
    LG_DTYPE_U32,
    LG_DTYPE_U64,
    LG_DTYPE_BOOL,
    LG_DTYPE_F8_E4M3, /* safetensors "F8_E4M3" (e4m3fn: no inf, 0x7f/0xff NaN) */
    LG_DTYPE_F8_E5M2,
    LG_DTYPE_COUNT
};

/* Bytes per element (0 for LG_DTYPE_COUNT or out of range). */
size_t lg_dtype_size(enum lg_dtype t);
/* The safetensors spelling ("F32", "BF16", ...); "?" when out of range. */
const char *lg_dtype_name(enum lg_dtype t);
/* Parse a safetensors dtype string; 0 on success. */
int lg_dtype_from_name(const char *s, enum lg_dtype *out);
/* 1 for F32, F16 and BF16: the dtypes a weight may have. */
int lg_dtype_is_weight(enum lg_dtype t);

/* ---- Tensor table ---- */

#define LG_MAX_DIMS 4

/* One tensor of a checkpoint, pointing into a read-only mapping.
 * data is NOT aligned in general (a safetensors header has any length):
 * read it with memcpy or the lg_convert_* functions. */
struct lg_tensor_src {
    const char *name;
    enum lg_dtype dtype;
    uint32_t n_dims;                /* 0 = scalar */
    uint64_t shape[LG_MAX_DIMS];    /* PyTorch order, outermost first; unused dims are 1 */
    const void *data;               /* nbytes bytes inside the mapping of file `file` */
    uint64_t nbytes;                /* = prod(shape) * lg_dtype_size(dtype) */
    uint64_t n_elements;
    uint64_t file_offset;           /* byte offset of data within its file */
    uint32_t file;                  /* index into lg_checkpoint's file list */
};

/* A growable list of tensors; names are owned by the table. */
struct lg_tensor_table {
    struct lg_tensor_src *v;
    uint32_t n, cap;
};

/*
 * Parse one safetensors file held in memory (buf, len bytes): the 8-byte
 * little-endian header length, the JSON header, and every tensor's dtype,
 * shape and data_offsets, all checked against len. Appends the tensors to
 * *tab with data pointing into buf and .file = file. `what` names the file in
 * log messages. On failure *tab keeps what it had before the call.
 * Rejects: a file under 8 bytes, a header length beyond the file or over
 * 100 MB, a header that is not a JSON object, an entry that is not an object
 * with dtype/shape/data_offsets of the right types, an unknown dtype, more
 * than LG_MAX_DIMS dims (UNSUPPORTED_MODEL), a size that overflows, offsets
 * reversed or outside the data section, nbytes != prod(shape)*dtype size,
 * overlapping tensors and duplicate names. Gaps between tensors and bytes
 * after the last one are accepted (the reference implementation rejects
 * them; no writer produces them, and they are harmless to a reader).
 */
enum llmgpu_status lg_safetensors_parse(const struct lg_alloc *a, const struct lg_log *log,
                                        const char *what, const void *buf, uint64_t len,
                                        uint32_t file, struct lg_tensor_table *tab);
void lg_tensor_table_free(const struct lg_alloc *a, struct lg_tensor_table *tab);

/* ---- config.json ---- */

/*
 * Parse a Hugging Face config.json (json: len bytes, need not be
 * NUL-terminated) into *cfg. `what` names the file in messages.
 * Accepts LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM (by
 * "architectures"[0], else "model_type"); rope parameters at the top level or
 * under "rope_parameters" (transformers 5); rope scaling none/default, linear
 * and llama3. Returns BAD_MODEL_FILE for invalid JSON, a missing required
 * field, a wrong type or an out-of-range value (the message names file and
 * field); UNSUPPORTED_MODEL for another architecture, rope type, activation,
 * or bias layout. On failure *cfg is unspecified.
 */
enum llmgpu_status lg_config_parse(const struct lg_alloc *a, const struct lg_log *log,
                                   const char *json, size_t len, const char *what,
                                   struct lg_model_config *cfg);

/*
 * Merge generation_config.json's eos_token_id (int or list) into cfg->eos_ids
 * (union, order kept: config.json's first) and take its bos_token_id when
 * config.json had none. A missing field is fine; a malformed file is
 * BAD_MODEL_FILE.
 */
enum llmgpu_status lg_generation_config_parse(const struct lg_alloc *a, const struct lg_log *log,
                                              const char *json, size_t len, const char *what,
                                              struct lg_model_config *cfg);

/* Parse a JSON document that must be an object (len bytes, need not be
 * NUL-terminated; trailing whitespace allowed) into *out (free with
 * cJSON_Delete). Logs "what: not valid JSON ... at byte N (line, column)" and
 * returns BAD_MODEL_FILE, or OUT_OF_HOST_MEMORY. */
struct cJSON;
enum llmgpu_status lg_json_parse_object(const struct lg_alloc *a, const struct lg_log *log,
                                        const char *what, const char *json, size_t len,
                                        struct cJSON **out);
/* "a string", "an object", ... for messages. */
const char *lg_json_type_name(const struct cJSON *v);

/* Upper bounds of config values: products of them fit in 64 bits with room. */
#define LG_CFG_MAX_EMBD (1u << 17)
#define LG_CFG_MAX_FF (1u << 20)
#define LG_CFG_MAX_LAYER 4096u
#define LG_CFG_MAX_HEAD 4096u
#define LG_CFG_MAX_HEAD_DIM 4096u
#define LG_CFG_MAX_VOCAB (1u << 24)
#define LG_CFG_MAX_CTX (1u << 30)

/* ---- quantization_config (GPTQ / AWQ) ---- */

enum lg_quant_method { LG_QUANT_NONE = 0, LG_QUANT_GPTQ, LG_QUANT_AWQ };

/* A checkpoint's pre-quantized projection weights, as config.json's
 * "quantization_config" describes them (only what the loader supports). */
struct lg_quant_config {
    enum lg_quant_method method;
    uint32_t bits;        /* 4 */
    int32_t group_size;   /* > 0, or -1: one group a row (the whole input dim) */
    int sym;              /* informational: the stored zeros are used either way */
    int desc_act;         /* GPTQ act-order: accepted only with a trivial g_idx */
    int zero_minus_one;   /* GPTQ checkpoint_format "gptq" (v1): stored zero = zero - 1 */
};

/*
 * Parse config.json's "quantization_config" into *q (method NONE when there is
 * none). Accepts quant_method "gptq" (bits, group_size, sym, desc_act,
 * checkpoint_format "gptq" or "gptq_v2") and "awq" (bits or w_bit, group_size
 * or q_group_size, zero_point true, version "gemm"). BAD_MODEL_FILE for a
 * malformed object or field; UNSUPPORTED_MODEL, naming the value, for another
 * method, bits other than 4, a group size that is not a positive multiple of
 * 16 (or -1), AWQ without zero points or another AWQ version, another GPTQ
 * checkpoint format.
 */
enum llmgpu_status lg_quant_config_parse(const struct lg_alloc *a, const struct lg_log *log,
                                         const char *json, size_t len, const char *what,
                                         struct lg_quant_config *q);
/* "GPTQ", "AWQ" or "none", for messages. */
const char *lg_quant_method_name(enum lg_quant_method m);

/* ---- Architecture table ---- */

enum lg_tensor_role {
    LG_T_TOK_EMBD,  /* [n_vocab, n_embd] */
    LG_T_OUT_NORM,  /* [n_embd] */
    LG_T_LM_HEAD,   /* [n_vocab, n_embd]; absent when tie_word_embeddings */
    LG_T_ATTN_NORM, /* per layer [n_embd] */
    LG_T_WQ,        /* per layer [n_head*head_dim, n_embd] */
    LG_T_WK,        /* per layer [n_kv_head*head_dim, n_embd] */
    LG_T_WV,        /* per layer [n_kv_head*head_dim, n_embd] */
    LG_T_BQ,        /* per layer [n_head*head_dim]; qkv_bias only */
    LG_T_BK,        /* per layer [n_kv_head*head_dim]; qkv_bias only */
    LG_T_BV,        /* per layer [n_kv_head*head_dim]; qkv_bias only */
    LG_T_WO,        /* per layer [n_embd, n_head*head_dim] */
    LG_T_FFN_NORM,  /* per layer [n_embd] */
    LG_T_GATE,      /* per layer [n_ff, n_embd] */
    LG_T_UP,        /* per layer [n_ff, n_embd] */
    LG_T_DOWN,      /* per layer [n_embd, n_ff] */
    LG_T_COUNT
};

/* One supported architecture; see arch.c's table. */
struct lg_arch_desc {
    enum lg_arch arch;
    const char *hf_class;   /* "architectures"[0] */
    const char *model_type; /* "model_type" */
    int qkv_bias;
    uint32_t default_ctx;   /* transformers' default max_position_embeddings */
    int32_t default_bos;    /* transformers' default bos/eos; -1: none */
    int32_t default_eos;
    const char *layer_prefix; /* "model.layers." */
    const char *const *names; /* LG_T_COUNT names; per-layer ones follow "<prefix><layer>." */
};

/* The table entry for arch / for an HF class or model_type name; NULL if none. */
const struct lg_arch_desc *lg_arch_get(enum lg_arch arch);
const struct lg_arch_desc *lg_arch_find(const char *hf_class_or_model_type);

int lg_arch_is_per_layer(enum lg_tensor_role r);
/* Short role name for messages ("wq", "tok_embd"). */
const char *lg_arch_role_name(enum lg_tensor_role r);
/* 1 when the model has this tensor (biases only with qkv_bias, lm_head only untied). */
int lg_arch_has_role(const struct lg_model_config *cfg, enum lg_tensor_role r);
/* Write the HF name of role r (of layer `layer` when per-layer) into buf.
 * 0 = role not present for this model (or buf too small), 1 = written. */
int lg_arch_tensor_name(const struct lg_model_config *cfg, enum lg_tensor_role r, uint32_t layer,
                        char *buf, size_t size);
/* Expected shape in HF/PyTorch order ([out, in] for a Linear weight). */
void lg_arch_tensor_shape(const struct lg_model_config *cfg, enum lg_tensor_role r,
                          uint32_t *n_dims, uint64_t shape[2]);

/* ---- Checkpoint directory ---- */

struct lg_mapped_file {
    char *path;       /* as opened (dir + "/" + name) */
    char *name;       /* relative name, for messages */
    const void *base; /* read-only mapping, size bytes */
    uint64_t size;
};

struct lg_checkpoint {
    struct lg_model_config cfg;
    char *dir;
    const struct lg_alloc *alloc;
    struct lg_mapped_file *files; /* n_files safetensors files, mmapped */
    uint32_t n_files;
    struct lg_tensor_table tensors; /* sorted by name */
    uint64_t n_params;     /* elements of the tensors the architecture uses */
    uint64_t weight_bytes; /* their bytes in the files */
    struct lg_quant_config quant; /* method NONE for a float checkpoint */
    /* GPTQ/AWQ: per role and layer (index r * n_layer + l), the quantized Linear,
     * or rows == 0 where that projection is stored as float (.weight) */
    struct lg_qlinear *qlin;
};

/* The tensors of one pre-quantized Linear (GPTQ or AWQ; K = in, N = out,
 * G = the group size, NG = ceil(K / G) groups):
 *   GPTQ qweight I32 [K/8, N]: value (n, k) in bits 4 (k % 8) of [k/8][n];
 *        qzeros I32 [NG, N/8]: zero (g, n) in bits 4 (n % 8) of [g][n/8];
 *        g_idx I32 [K] optional (checked trivial: k / G).
 *   AWQ  qweight I32 [K, N/8]: value (n, k) in bits 4 p of [k][n/8], with
 *        n % 8 = {0, 2, 4, 6, 1, 3, 5, 7}[p] (AutoAWQ's GEMM packing order);
 *        qzeros I32 [NG, N/8] packed the same way.
 *   scales F16 [NG, N] for both. w[n][k] = scale (q - zero), with zero =
 *   stored + 1 for GPTQ v1 (checkpoint_format "gptq"). */
struct lg_qlinear {
    enum lg_quant_method method;
    uint32_t rows, cols;   /* N, K of the Linear: [out, in] */
    uint32_t group;        /* G, resolved (-1 becomes K) */
    uint32_t n_groups;     /* NG */
    int zero_minus_one;
    const struct lg_tensor_src *qweight, *qzeros, *scales, *g_idx; /* g_idx may be NULL */
};

/*
 * Open a Hugging Face model directory: config.json (required),
 * generation_config.json (optional), and model.safetensors or the shards listed
 * in model.safetensors.index.json. Every file is mmapped read-only and fully
 * validated, including that every tensor the architecture needs is present
 * with a float dtype and the expected shape. Shard names must stay inside
 * `dir` (no absolute path, no "..", no symlink resolving elsewhere; the one
 * exception is the Hugging Face hub cache layout, where files in
 * snapshots/<rev>/ are symlinks into ../../blobs/).
 * a and log must outlive the checkpoint. On failure *out is NULL.
 */
enum llmgpu_status lg_ckpt_open(const struct lg_alloc *a, const struct lg_log *log,
                                const char *dir, struct lg_checkpoint **out);
void lg_ckpt_close(struct lg_checkpoint *c); /* NULL is a no-op */
/* The quantized Linear of role r (layer l), or NULL when that role is stored
 * as a float .weight (every role of a float checkpoint). For such roles
 * lg_ckpt_tensor returns NULL. The projection roles only (wq .. down). */
const struct lg_qlinear *lg_ckpt_qlinear(const struct lg_checkpoint *c, enum lg_tensor_role r,
                                         uint32_t layer);
/* The tensor called name, or NULL. O(log n). */
const struct lg_tensor_src *lg_ckpt_find(const struct lg_checkpoint *c, const char *name);
/* The tensor of role r (layer ignored for global roles), or NULL when the
 * model has no such role. After a successful lg_ckpt_open this is never NULL
 * for a role lg_arch_has_role() reports, except the projections of a GPTQ/AWQ
 * checkpoint that lg_ckpt_qlinear() returns. */
const struct lg_tensor_src *lg_ckpt_tensor(const struct lg_checkpoint *c, enum lg_tensor_role r,
                                           uint32_t layer);

/* ---- Conversions ----
 * Round-to-nearest-even everywhere a value has to be rounded; subnormals are
 * kept (never flushed); NaN stays NaN with its sign (quiet, top payload bits
 * kept); inf stays inf. Conversions to f32 are exact for every source dtype
 * except F64/I64/U64/I32/U32 magnitudes beyond 2^24. bf16 -> f16: bf16 has
 * f32's range, so finite values above 65504 (after rounding) become +-inf and
 * tiny ones become f16 subnormals or zero; lg_convert_to_f16 returns how many
 * finite inputs became inf so the loader can warn. `in` need not be aligned.
 * On x86-64 CPUs with AVX2 and F16C, F32/BF16 -> f16 converts 8 values at a
 * time (VCVTPS2PH) with results identical to lg_f32_to_f16 (tested).
 */
float lg_f16_to_f32(uint16_t h);
uint16_t lg_f32_to_f16(float f);
float lg_bf16_to_f32(uint16_t b);
uint16_t lg_f32_to_bf16(float f);
void lg_convert_to_f32(enum lg_dtype src, const void *in, float *out, size_t n);
/* Returns the number of finite inputs that overflowed to +-inf. */
size_t lg_convert_to_f16(enum lg_dtype src, const void *in, uint16_t *out, size_t n);
/* Returns the number of finite inputs that overflowed to +-inf (F32 values
 * within half a bf16 ulp of FLT_MAX round up to inf; F64 beyond f32 range). */
size_t lg_convert_to_bf16(enum lg_dtype src, const void *in, uint16_t *out, size_t n);

#endif /* LG_MODEL_H */
