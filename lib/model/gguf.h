/*
 * gguf.h - GGUF files (ggml's single-file model format, versions 2 and 3):
 * the validating parser, hyper-parameters and tensor roles of Llama-family
 * models, the Q/K row permutation, and the writer (gguf_write.c).
 *
 * Owns: everything about the GGUF byte layout. Must not touch: the GPU (the
 * uploader reads struct lg_gguf_tensor), the tokenizer internals
 * (lib/tokenizer/tok_gguf.c builds an lg_tokenizer from the metadata here).
 *
 * Dimension order: GGUF stores dims innermost first (ggml's ne[0] is the row
 * length, the number of contiguous elements), the reverse of PyTorch. A
 * Linear weight of PyTorch shape [out, in] has ne = {in, out}: out rows of
 * `in` elements. struct lg_gguf_tensor keeps both: ne[] as in the file and
 * shape[] reversed (PyTorch order, comparable with lg_arch_tensor_shape).
 *
 * Errors as in model.h: each failure is logged at ERROR level with the file
 * name, the key or tensor, and the absolute byte offset; statuses are
 * LLMGPU_ERR_IO, LLMGPU_ERR_BAD_MODEL_FILE (malformed),
 * LLMGPU_ERR_UNSUPPORTED_MODEL (well formed, not supported: a GGUF v1 file,
 * a tensor type we have no kernel for, another architecture) and
 * LLMGPU_ERR_OUT_OF_HOST_MEMORY.
 */
#ifndef LG_GGUF_H
#define LG_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

/* ---- ggml tensor types (values as in ggml.h; the file stores these numbers) ---- */
enum lg_ggml_type {
    LG_GGML_F32 = 0,
    LG_GGML_F16 = 1,
    LG_GGML_Q4_0 = 2,  /* 32 weights: f16 d, 16 bytes of nibbles; w = d * (q - 8) */
    LG_GGML_Q8_0 = 8,  /* 32 weights: f16 d, 32 int8; w = d * q */
    LG_GGML_Q4_K = 12, /* 256 weights: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes */
    LG_GGML_Q6_K = 14, /* 256 weights: 128 bytes low 4 bits, 64 high 2 bits, 16 int8 scales, f16 d */
    LG_GGML_BF16 = 30,
};

/* Weights per block and bytes per block of a supported type (0 for others). */
uint32_t lg_ggml_block_size(uint32_t type);
uint32_t lg_ggml_type_size(uint32_t type);
/* "Q4_K", "IQ2_XS", ... for any type ggml has defined; "?" for an unknown number. */
const char *lg_ggml_type_name(uint32_t type);
/* 1 for the seven types above. */
int lg_ggml_type_supported(uint32_t type);
/* The lg_dtype of F32/F16/BF16 (0 ok), so the upload can use lg_convert_*; -1 for block types. */
int lg_ggml_to_dtype(uint32_t type, enum lg_dtype *out);

/* One row of n values (n a multiple of the type's block size) of a supported
 * type to f32: F32/F16/BF16 converted, Q8_0/Q4_0/Q4_K/Q6_K dequantized with
 * ggml's dequantize_row_* semantics (model/quant.h). row need not be aligned. */
void lg_gguf_row_to_f32(uint32_t type, const void *row, size_t n, float *out);

/* ---- metadata ---- */
enum lg_gguf_vtype {
    LG_GGUF_U8 = 0,
    LG_GGUF_I8 = 1,
    LG_GGUF_U16 = 2,
    LG_GGUF_I16 = 3,
    LG_GGUF_U32 = 4,
    LG_GGUF_I32 = 5,
    LG_GGUF_F32 = 6,
    LG_GGUF_BOOL = 7,
    LG_GGUF_STRING = 8,
    LG_GGUF_ARRAY = 9,
    LG_GGUF_U64 = 10,
    LG_GGUF_I64 = 11,
    LG_GGUF_F64 = 12,
    LG_GGUF_VTYPE_COUNT
};
const char *lg_gguf_vtype_name(uint32_t t);

/* One key/value. Scalars are decoded into u/i/f (integers into both u and i
 * when they fit, floats into f, BOOL as 0/1 in u). A STRING is copied and
 * NUL-terminated (str, str_len; may contain NUL bytes, str_len counts them).
 * An ARRAY keeps its element type, count and where its first element is in
 * the file (arr): fixed-size elements are read with lg_gguf_arr_*; string
 * elements with lg_gguf_arr_strings. Nested arrays are refused by the parser. */
struct lg_gguf_kv {
    char *key;          /* owned, NUL-terminated, no NUL inside */
    uint32_t type;      /* enum lg_gguf_vtype */
    uint64_t offset;    /* byte offset of the key's length field in the file */
    uint64_t u;
    int64_t i;
    double f;
    char *str;
    uint64_t str_len;
    uint32_t arr_type;
    uint64_t arr_n;
    const unsigned char *arr; /* inside the mapping; unaligned */
    uint64_t arr_offset;      /* its byte offset in the file */
};

/* One tensor info, validated: type supported, ne[0] a multiple of the block
 * size, offset aligned, data inside the data section, no overlap. */
struct lg_gguf_tensor {
    char *name;             /* owned */
    uint32_t type;          /* enum lg_ggml_type */
    uint32_t n_dims;        /* 1..4 */
    uint64_t ne[LG_MAX_DIMS];    /* file order: ne[0] = row length; unused dims 1 */
    uint64_t shape[LG_MAX_DIMS]; /* PyTorch order (reversed ne), unused dims 1 */
    uint64_t n_elements;
    uint64_t n_rows;        /* n_elements / ne[0] (0 when empty) */
    uint64_t row_bytes;     /* ne[0] / block size * type size: each row is self-contained */
    uint64_t nbytes;        /* n_rows * row_bytes */
    uint64_t file_offset;   /* absolute byte offset of the data */
    const void *data;       /* base + file_offset; aligned to `alignment` within the file */
    uint64_t info_offset;   /* byte offset of the tensor info, for messages */
    uint32_t part;          /* split files: index of the file holding it (0: the first) */
};

/* Caps (beyond the file-size checks, which come first). */
#define LG_GGUF_MAX_KEY 65535u          /* bytes in a key */
#define LG_GGUF_MAX_NAME 1024u          /* bytes in a tensor name (ggml: 63) */
#define LG_GGUF_MAX_STRING (1u << 28)   /* bytes in one string value */
#define LG_GGUF_MAX_KV (1u << 20)
#define LG_GGUF_MAX_TENSORS (1u << 20)
#define LG_GGUF_MAX_ARRAY (1ull << 32)  /* elements in one array */
#define LG_GGUF_MAX_ALIGN (1u << 16)

struct lg_gguf {
    const struct lg_alloc *alloc;
    char *path;                 /* for messages */
    const unsigned char *base;  /* the whole file, size bytes */
    uint64_t size;
    int mapped;                 /* base is our mmap (lg_gguf_open) */
    uint32_t version;           /* 2 or 3 */
    uint32_t alignment;         /* general.alignment or 32 */
    uint64_t data_offset;       /* start of the tensor data section */
    struct lg_gguf_kv *kv;      /* n_kv, in file order */
    uint64_t n_kv;
    struct lg_gguf_tensor *tensors; /* n_tensors, sorted by name */
    uint64_t n_tensors;

    /* split files (llama.cpp's gguf-split, lg_gguf_open_model): the other parts, owned;
     * `tensors` then lists the tensors of every part, each pointing into its own file */
    struct lg_gguf **parts;     /* n_parts - 1 entries: parts 2..n_parts */
    uint32_t n_parts;           /* 1 for a single file */

    /* filled by lg_gguf_model_config() */
    struct lg_model_config cfg;
    int qk_permuted;            /* attn_q/attn_k rows in llama.cpp's interleaved-RoPE order */
    const struct lg_gguf_tensor *rope_freqs; /* "rope_freqs.weight" (llama3 factors) or NULL */
};

/*
 * Parse a GGUF file held in memory (buf, len bytes; not copied, must outlive
 * *out). `what` names it in messages. Rejects: fewer than 24 bytes, a bad
 * magic, version 1 (UNSUPPORTED) or any version but 2/3, counts beyond what
 * the file can hold or the caps, any string or array running past the end,
 * keys that are empty, hold NUL or repeat, unknown value types, nested
 * arrays (UNSUPPORTED), BOOL not 0/1, general.alignment not a U32 power of two
 * (<= 64 KiB), n_dims 0 or > 4, a dim of 0 or an element count over 2^62,
 * unsupported tensor types (UNSUPPORTED, type named), ne[0] not a multiple
 * of the block size, an offset not a multiple of the alignment, data past the
 * end, overlapping tensors and duplicate names. No allocation is sized by a
 * field before that field is checked against the file size.
 */
enum llmgpu_status lg_gguf_parse(const struct lg_alloc *a, const struct lg_log *log,
                                 const char *what, const void *buf, uint64_t len,
                                 struct lg_gguf **out);
/* mmap path read-only and lg_gguf_parse it. Also LLMGPU_ERR_IO. */
enum llmgpu_status lg_gguf_open(const struct lg_alloc *a, const struct lg_log *log,
                                const char *path, struct lg_gguf **out);
void lg_gguf_close(struct lg_gguf *g); /* NULL is a no-op */

/*
 * Open a model file for loading: lg_gguf_open, then, when the file is the first
 * part of a llama.cpp gguf-split set (split.count > 1), the other parts
 * NAME-0000k-of-0000N.gguf beside it; their tensors join g->tensors (each part
 * is mmapped; nothing is copied). Checks: the file name follows that pattern,
 * each part exists (LLMGPU_ERR_IO naming it), has split.count N and split.no
 * k-1, every tensor is in exactly one part, and the total is split.tensors.count.
 * Given a later part (split.no > 0), says which file to load instead
 * (LLMGPU_ERR_INVALID_ARGUMENT). Then lg_gguf_model_config.
 */
enum llmgpu_status lg_gguf_open_model(const struct lg_alloc *a, const struct lg_log *log,
                                      const char *path, struct lg_gguf **out);

/* Lookups: NULL when absent. O(log n) for tensors, O(n) for keys. */
const struct lg_gguf_kv *lg_gguf_find_kv(const struct lg_gguf *g, const char *key);
const struct lg_gguf_tensor *lg_gguf_find_tensor(const struct lg_gguf *g, const char *name);
/* Typed getters: 1 found and converted, 0 absent, -1 present with a type
 * that does not convert (any integer type to u64 when non-negative; any
 * integer or float type to double; BOOL to int). */
int lg_gguf_get_u64(const struct lg_gguf_kv *kv, uint64_t *out);
int lg_gguf_get_f64(const struct lg_gguf_kv *kv, double *out);
int lg_gguf_get_bool(const struct lg_gguf_kv *kv, int *out);
/* Array element i (< arr_n) of an integer/float array as double/int64. */
double lg_gguf_arr_f64(const struct lg_gguf_kv *kv, uint64_t i);
int64_t lg_gguf_arr_i64(const struct lg_gguf_kv *kv, uint64_t i);
/* Pointers (into the mapping, not NUL-terminated) and lengths of the
 * elements of a STRING array: ptrs and lens have room for kv->arr_n. -1 if
 * kv is not a string array. */
int lg_gguf_arr_strings(const struct lg_gguf_kv *kv, const char **ptrs, uint64_t *lens);

/* ---- Llama-family models ---- */

/*
 * Fill g->cfg from the metadata (general.architecture "llama" or "qwen2";
 * Mistral files say "llama") and check every tensor the architecture needs:
 * present, with the expected shape; g->qk_permuted is set for "llama".
 * Keys read, with <a> the architecture: <a>.context_length,
 * embedding_length, block_count, feed_forward_length, attention.head_count,
 * attention.head_count_kv, attention.key_length, attention.value_length,
 * attention.layer_norm_rms_epsilon, attention.sliding_window,
 * rope.freq_base, rope.dimension_count, rope.scaling.type/factor/
 * original_context_length, vocab_size; tokenizer.ggml.tokens (vocab size),
 * bos/eos_token_id. Tied embeddings: output.weight absent. Llama 3 rope
 * scaling arrives as the tensor rope_freqs.weight (per-frequency divisors);
 * it is matched against transformers' llama3 formula and refused when no
 * parameters reproduce it.
 */
enum llmgpu_status lg_gguf_model_config(struct lg_gguf *g, const struct lg_log *log);
/* GGUF name of a tensor role: "token_embd.weight", "blk.3.attn_q.weight".
 * 0 = role absent for this model (or buf too small). */
int lg_gguf_tensor_name(const struct lg_model_config *cfg, enum lg_tensor_role r, uint32_t layer,
                        char *buf, size_t size);
/* The tensor of role r (after lg_gguf_model_config), or NULL when absent. */
const struct lg_gguf_tensor *lg_gguf_tensor_role(const struct lg_gguf *g, enum lg_tensor_role r,
                                                 uint32_t layer);

/*
 * The Q/K permutation. llama.cpp's convert_hf_to_gguf.py stores attn_q and
 * attn_k of "llama" models with the rows of each head reordered for
 * interleaved (GPT-J) RoPE: HF row h*hd + j*hd/2 + i (j in {0,1}, i < hd/2)
 * is written as file row h*hd + 2*i + j. Our kernels use HF's rotate-half
 * layout, so the upload must read, for each HF row r, file row
 * lg_gguf_qk_file_row(r, hd). Rows are whole (ne[0] elements, row_bytes
 * bytes), so this works for quantized rows too. head_dim must be even.
 */
static inline uint64_t lg_gguf_qk_file_row(uint64_t hf_row, uint32_t head_dim) {
    uint64_t h = hf_row / head_dim, r = hf_row % head_dim, half = head_dim / 2;
    return h * head_dim + (r % half) * 2 + r / half;
}
/* The inverse: the HF row that file row f holds. */
static inline uint64_t lg_gguf_qk_hf_row(uint64_t file_row, uint32_t head_dim) {
    uint64_t h = file_row / head_dim, r = file_row % head_dim;
    return h * head_dim + (r & 1) * (head_dim / 2) + r / 2;
}
/* 1 when role r of this file needs the mapping above (WQ/WK of llama files). */
int lg_gguf_role_permuted(const struct lg_gguf *g, enum lg_tensor_role r);

/* ---- writer (gguf_write.c) ---- */

/* The tensor types the writer produces (Q*: lib/model/quant.c's quantizers). */
enum lg_gguf_wtype {
    LG_GGUF_W_F32 = LG_GGML_F32,
    LG_GGUF_W_F16 = LG_GGML_F16,
    LG_GGUF_W_Q8_0 = LG_GGML_Q8_0,
    LG_GGUF_W_Q4_0 = LG_GGML_Q4_0,
    LG_GGUF_W_Q4_K = LG_GGML_Q4_K,
    LG_GGUF_W_Q6_K = LG_GGML_Q6_K,
};

/*
 * Write checkpoint c as a GGUF v3 file at path (alignment 32): the
 * llama.cpp metadata keys lg_gguf_model_config reads, general.name, and
 * every tensor role in llama.cpp's names and layout (attn_q/attn_k permuted
 * for "llama", as convert_hf_to_gguf does, so other readers see the layout
 * they expect). Weight matrices get `type` (Q4_K rows that are not a multiple
 * of 256 become Q4_0, Q6_K ones Q8_0, rows no block fits become F16); norms, biases and
 * rope_freqs stay F32; with a quantized `type` the token embedding and the
 * output stay F16 (as at load-time quantization). tok_json/tok_cfg (may be
 * NULL) are stored as tokenizer.huggingface.json and llmgpu.tokenizer_config
 * (our reader rebuilds the exact tokenizer from them) and converted to
 * tokenizer.ggml.* as convert_hf_to_gguf does (SentencePiece scores recovered
 * from the merge ranks) for other readers; bos/eos ids are the tokenizer's.
 * The file is written to path + ".tmp" and renamed on success.
 */
enum llmgpu_status lg_gguf_write(const struct lg_alloc *a, const struct lg_log *log,
                                 const struct lg_checkpoint *c, enum lg_gguf_wtype type,
                                 const char *tok_json, size_t tok_json_len,
                                 const char *tok_cfg, size_t tok_cfg_len, const char *path);

#endif /* LG_GGUF_H */
