/*
 * llmgpu.h - the public API of libllmgpu: Llama-family language models on any
 * GPU through Vulkan compute.
 *
 * This header is the specification: every sentence in a doc comment is a
 * testable statement. Anything not declared here is private.
 *
 * Objects and lifetimes
 *   struct llmgpu_context  one Vulkan device, its queue, kernel cache and log sink.
 *   struct llmgpu_model    weights on the GPU, hyper-parameters and tokenizer;
 *                          immutable after load, shareable by many sessions.
 *   struct llmgpu_session  KV cache, position, activations and logits of one
 *                          conversation; used by one thread at a time.
 * A context must outlive its models, a model must outlive its sessions.
 *
 * Threads
 *   A context and its loaded models may be used by any number of threads at
 *   once. Each session is used by one thread at a time (calls on one session
 *   must not overlap); different sessions of one model may prefill, decode,
 *   sample and generate concurrently from different threads, with the results
 *   they would give one after another (tests/check_threads.c). To stop a
 *   generation from another thread, have its token callback read a flag that
 *   thread sets.
 *
 * Usage (error handling shortened):
 *
 *   struct llmgpu_context_params cp;
 *   llmgpu_context_params_init(&cp);
 *   struct llmgpu_context *ctx;
 *   if (llmgpu_context_create(&cp, &ctx) != LLMGPU_OK) return 1;
 *
 *   struct llmgpu_model_params mp;
 *   llmgpu_model_params_init(&mp);
 *   struct llmgpu_model *model;
 *   llmgpu_model_load(ctx, "models/demo", &mp, &model);
 *
 *   int32_t ids[512];
 *   size_t n = 512;
 *   llmgpu_tokenize(model, "Once upon a time", 16, LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL, ids, &n);
 *
 *   struct llmgpu_session_params sp;
 *   llmgpu_session_params_init(&sp);
 *   struct llmgpu_session *s;
 *   llmgpu_session_create(model, &sp, &s);
 *   llmgpu_session_prefill(s, ids, n);
 *   for (int i = 0; i < 32; i++) {
 *       int32_t tok;
 *       llmgpu_session_sample_greedy(s, &tok);
 *       if (tok == llmgpu_model_token_eos(model)) break;
 *       char piece[64];
 *       size_t len = sizeof piece;
 *       if (llmgpu_token_to_piece(model, tok, piece, &len) == LLMGPU_OK)
 *           fwrite(piece, 1, len, stdout);
 *       llmgpu_session_decode(s, tok);
 *   }
 *   llmgpu_session_free(s);
 *   llmgpu_model_free(model);
 *   llmgpu_context_free(ctx);
 *
 * Conventions
 *   - Every call that can fail returns enum llmgpu_status. LLMGPU_OK is 0 and
 *     errors are negative. Details of a failure go to the log callback of the
 *     context at LLMGPU_LOG_LEVEL_ERROR; the library never prints and never exits.
 *   - Constructors take an out-parameter, which is set to NULL on failure.
 *   - *_free() accepts NULL and returns nothing.
 *   - Params structs start with struct_size; fill them with the matching
 *     llmgpu_*_params_init(). A struct_size of 0 is LLMGPU_ERR_INVALID_ARGUMENT.
 *     Fields beyond struct_size take their defaults, so programs built against
 *     an older header keep working.
 *   - Output buffers are negotiated with the two-call idiom: a NULL buffer asks
 *     for the size; a short buffer gives LLMGPU_ERR_BUFFER_TOO_SMALL with the
 *     needed size written back.
 *   - Callers must accept enum values they do not know: minor releases add them.
 */
#ifndef LLMGPU_H
#define LLMGPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Export and version macros ------------------------------------------ */

#if defined(_WIN32) && defined(LLMGPU_BUILD)
#define LLMGPU_API __declspec(dllexport)
#elif defined(_WIN32)
#define LLMGPU_API __declspec(dllimport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define LLMGPU_API __attribute__((visibility("default")))
#else
#define LLMGPU_API
#endif

#if defined(LLMGPU_DISABLE_DEPRECATION_WARNINGS)
#define LLMGPU_DEPRECATED(msg)
#elif defined(__GNUC__)
#define LLMGPU_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define LLMGPU_DEPRECATED(msg)
#endif

#define LLMGPU_VERSION_MAJOR 0
#define LLMGPU_VERSION_MINOR 1
#define LLMGPU_VERSION_PATCH 0
#define LLMGPU_VERSION_NUMBER                                                  \
    (LLMGPU_VERSION_MAJOR * 10000 + LLMGPU_VERSION_MINOR * 100 + LLMGPU_VERSION_PATCH)
#define LLMGPU_VERSION_STRING "0.1.0"

/**
 * The library's version as LLMGPU_VERSION_NUMBER was when it was built.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API unsigned llmgpu_version_number(void);
/**
 * The library's version as "MAJOR.MINOR.PATCH", a static string.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API const char *llmgpu_version_string(void);

/* ---- Status codes: values are pinned and never reused --------------------- */

enum llmgpu_status {
    LLMGPU_OK = 0,
    LLMGPU_ERR_INVALID_ARGUMENT = -1,
    LLMGPU_ERR_OUT_OF_HOST_MEMORY = -2,
    LLMGPU_ERR_OUT_OF_DEVICE_MEMORY = -3,
    LLMGPU_ERR_NO_DEVICE = -4,       /* no Vulkan driver, or no usable device */
    LLMGPU_ERR_DEVICE_LOST = -5,     /* the context must be recreated */
    LLMGPU_ERR_VULKAN = -6,          /* any other Vulkan failure; the log has the VkResult */
    LLMGPU_ERR_KERNEL_COMPILE = -7,  /* the log has the kernel, defines and shaderc's message */
    LLMGPU_ERR_IO = -8,              /* a file could not be opened, read or written */
    LLMGPU_ERR_BAD_MODEL_FILE = -9,  /* malformed file; the log names the file and offset */
    LLMGPU_ERR_UNSUPPORTED_MODEL = -10, /* well-formed but not supported (architecture, rope) */
    LLMGPU_ERR_CONTEXT_FULL = -11,   /* the session's context length would be exceeded */
    LLMGPU_ERR_BUFFER_TOO_SMALL = -12, /* the needed size was written back */
    LLMGPU_ERR_ABORTED = -13,        /* a callback asked to stop */
    LLMGPU_ERR_UNSUPPORTED = -14,    /* the device or build lacks a needed feature */
    LLMGPU_ERR_BAD_TOKENIZER = -15,  /* tokenizer files malformed or unsupported */
    LLMGPU_ERR_INVALID_TOKEN = -16,  /* a token id outside the vocabulary */
    LLMGPU_STATUS_MAX_ENUM = 0x7FFFFFFF
};

/**
 * A short static English description of a status; "unknown status" for values
 * this version does not know. Never NULL.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API const char *llmgpu_status_string(enum llmgpu_status status);
/**
 * The enumerator's name without prefix, e.g. "ERR_CONTEXT_FULL"; "UNKNOWN" for
 * values this version does not know. Never NULL.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API const char *llmgpu_status_name(enum llmgpu_status status);

/* ---- Logging and host allocation ----------------------------------------- */

enum llmgpu_log_level {
    LLMGPU_LOG_LEVEL_DEBUG = 0,
    LLMGPU_LOG_LEVEL_INFO = 1,
    LLMGPU_LOG_LEVEL_WARN = 2,
    LLMGPU_LOG_LEVEL_ERROR = 3,
    LLMGPU_LOG_LEVEL_NONE = 4,
    LLMGPU_LOG_LEVEL_MAX_ENUM = 0x7FFFFFFF
};

/**
 * Receives one log message (no trailing newline, NUL-terminated, valid only
 * during the call). May be called from any thread that calls into the library
 * and must not call back into the library.
 */
typedef void (*llmgpu_log_fn)(enum llmgpu_log_level level, const char *message, void *user);

/**
 * Optional host allocator. alloc returns memory aligned for any type or NULL;
 * free accepts NULL. Both may be called from any thread.
 */
struct llmgpu_allocator {
    void *(*alloc)(size_t size, void *user);
    void (*free)(void *ptr, void *user);
    void *user;
};

/* ---- Devices and contexts ------------------------------------------------- */

enum llmgpu_device_type {
    LLMGPU_DEVICE_TYPE_OTHER = 0,
    LLMGPU_DEVICE_TYPE_INTEGRATED_GPU = 1,
    LLMGPU_DEVICE_TYPE_DISCRETE_GPU = 2,
    LLMGPU_DEVICE_TYPE_VIRTUAL_GPU = 3,
    LLMGPU_DEVICE_TYPE_CPU = 4,
    LLMGPU_DEVICE_TYPE_MAX_ENUM = 0x7FFFFFFF
};

/* Feature bits of llmgpu_device_info.features. */
#define LLMGPU_DEVICE_FEATURE_FP16 (1u << 0)            /* shaderFloat16 arithmetic */
#define LLMGPU_DEVICE_FEATURE_INT8 (1u << 1)            /* shaderInt8 arithmetic */
#define LLMGPU_DEVICE_FEATURE_STORAGE_16BIT (1u << 2)   /* 16-bit storage buffers */
#define LLMGPU_DEVICE_FEATURE_STORAGE_8BIT (1u << 3)    /* 8-bit storage buffers */
#define LLMGPU_DEVICE_FEATURE_INTEGER_DOT (1u << 4)     /* VK_KHR_shader_integer_dot_product */
#define LLMGPU_DEVICE_FEATURE_COOPMAT_NV (1u << 5)      /* VK_NV_cooperative_matrix */
#define LLMGPU_DEVICE_FEATURE_COOPMAT_KHR (1u << 6)     /* VK_KHR_cooperative_matrix */
#define LLMGPU_DEVICE_FEATURE_MEMORY_BUDGET (1u << 7)   /* VK_EXT_memory_budget */
#define LLMGPU_DEVICE_FEATURE_SUBGROUP_ARITH (1u << 8)  /* subgroup arithmetic in compute */
#define LLMGPU_DEVICE_FEATURE_SUBGROUP_SIZE_CONTROL (1u << 9)
/** The device reports 4x8-bit packed signed integer dot products (accumulating,
 * saturating) as accelerated, not emulated. \since 0.1.0 */
#define LLMGPU_DEVICE_FEATURE_INTEGER_DOT_ACCELERATED (1u << 10)

/** What a caller needs to choose a device. \since 0.1.0 */
struct llmgpu_device_info {
    uint32_t struct_size;
    uint32_t index;                  /* position in llmgpu_devices_list() order */
    char name[256];
    enum llmgpu_device_type type;
    uint32_t vendor_id;
    uint32_t device_id;
    uint32_t api_version;            /* VK_MAKE_API_VERSION packing */
    uint32_t subgroup_size;
    uint32_t features;               /* LLMGPU_DEVICE_FEATURE_* */
    uint64_t device_local_bytes;     /* the largest device-local heap */
    uint64_t max_storage_buffer_range;
    uint64_t max_allocation_size;
    uint32_t max_shared_memory;      /* bytes of shared memory per workgroup */
    uint32_t max_workgroup_invocations;
    char driver_name[256];
};

/* Flags of llmgpu_context_params.flags. */
/** Enable VK_LAYER_KHRONOS_validation; a validation error is logged at ERROR
 * level and counted (llmgpu_context_validation_errors). Fails with
 * LLMGPU_ERR_UNSUPPORTED when the layer is not installed. */
#define LLMGPU_CONTEXT_FLAG_VALIDATION (1u << 0)
/** Do not read or write the kernel cache on disk (memory only). */
#define LLMGPU_CONTEXT_FLAG_NO_DISK_CACHE (1u << 1)
/** Record GPU timestamps per kernel (see llmgpu_session_profile). Where the device has
 * VK_KHR_pipeline_executable_properties, pipelines also capture the driver's statistics
 * (registers, shared memory), which the measurement tool tests/tools/gemm_bench.c prints. */
#define LLMGPU_CONTEXT_FLAG_PROFILE (1u << 2)
/** Prefill GEMMs use the portable tiled kernel even where the device has
 * VK_NV_cooperative_matrix. By default prefill runs on tensor cores there (f16 and
 * block-quantized weights; x and dequantized weights are rounded to f16 for the
 * products, accumulation is f32), and the portable kernel everywhere else.
 * \since 0.1.0 */
#define LLMGPU_CONTEXT_FLAG_NO_COOPMAT (1u << 3)
/** Decode applies RoPE and writes the KV cache in a dispatch of its own instead of
 * in the Q/K/V mat-vec's epilogue (for comparisons; results are the same).
 * \since 0.1.0 */
#define LLMGPU_CONTEXT_FLAG_NO_FUSE_ROPE (1u << 4)
/** Decode mat-vecs of every weight type run a subgroup per pair of rows (by default
 * only block-quantized types do, where the device has subgroup arithmetic).
 * \since 0.1.0 */
#define LLMGPU_CONTEXT_FLAG_MATVEC_SUBGROUP (1u << 5)
/** Decode mat-vecs of every weight type run a workgroup per pair of rows (wins over
 * LLMGPU_CONTEXT_FLAG_MATVEC_SUBGROUP). \since 0.1.0 */
#define LLMGPU_CONTEXT_FLAG_MATVEC_WORKGROUP (1u << 6)
/** Decode mat-vecs of q8_0, q4_0, q4_K and GPTQ/AWQ (q4_g) weights use integer dot products
 * (x rounded to int8 per 16 values, then 4x8-bit packed dot products) where the device
 * has shaderIntegerDotProduct; elsewhere the flag is ignored. This is the default where
 * the device reports them accelerated (LLMGPU_DEVICE_FEATURE_INTEGER_DOT_ACCELERATED:
 * 1.2-1.7x faster decode on an H100, bench/RESULTS.md); the flag forces them on other
 * devices. The extra rounding of x is about as large as q8_0's own.
 * \since 0.1.0 */
#define LLMGPU_CONTEXT_FLAG_MATVEC_INT_DOT (1u << 7)
/** Decode mat-vecs keep float dot products (x unrounded) even where integer dot products
 * are accelerated (wins over LLMGPU_CONTEXT_FLAG_MATVEC_INT_DOT). \since 0.1.0 */
#define LLMGPU_CONTEXT_FLAG_MATVEC_FLOAT_DOT (1u << 8)
/** Prefill GEMMs on block-quantized weights (q8_0, q4_0, q4_K, q6_K, GPTQ/AWQ) read
 * an f16 copy of each matrix, made while the GEMM before it runs. On tensor cores
 * (VK_NV_cooperative_matrix) the products are the same as without (dequantized values
 * are rounded to f16 for them either way) and prefill is 1.4-1.9x faster on an H100
 * (bench/RESULTS.md); elsewhere the portable GEMM then reads f16-rounded weights. The
 * copies take a scratch of two layer matrices in f16 (Llama-2-7B: 270 MB), which
 * llmgpu_session_memory counts; that is more than the 5 % of a 7B model's weights the
 * default scratch keeps to, so the copies are off unless this flag is set.
 * \since 0.1.0 */
#define LLMGPU_CONTEXT_FLAG_PREFILL_DEQUANT (1u << 9)
/** Prefill GEMMs on block-quantized weights dequantize as they load (the default): no
 * f16 copies and no scratch for them (wins over LLMGPU_CONTEXT_FLAG_PREFILL_DEQUANT).
 * \since 0.1.0 */
#define LLMGPU_CONTEXT_FLAG_NO_PREFILL_DEQUANT (1u << 10)

/** Parameters of llmgpu_context_create(). \since 0.1.0 */
struct llmgpu_context_params {
    uint32_t struct_size;
    uint32_t flags;                  /* LLMGPU_CONTEXT_FLAG_* ; default 0 */
    int32_t device_index;            /* -1 (default): the best device; else an index of
                                        llmgpu_devices_list() */
    enum llmgpu_log_level log_level; /* default LLMGPU_LOG_LEVEL_WARN */
    llmgpu_log_fn log_fn;            /* default NULL: silent */
    void *log_user;
    const char *cache_dir;           /* kernel cache directory; NULL (default): $XDG_CACHE_HOME/llmgpu
                                        or $HOME/.cache/llmgpu; copied, need not outlive the call */
    const struct llmgpu_allocator *allocator; /* NULL (default): malloc/free; copied */
    uint64_t device_memory_limit;    /* 0 (default): the device's; else treat device-local
                                        memory as this many bytes (to test small GPUs) */
    uint64_t max_binding_size;       /* 0 (default): the device's maxStorageBufferRange; else
                                        the smaller of the two (to test tensor sharding) */
};

/** Fill *params with defaults and struct_size. \threadsafety any thread. \since 0.1.0 */
LLMGPU_API void llmgpu_context_params_init(struct llmgpu_context_params *params);

/**
 * List the Vulkan devices, best first is not implied: the order is the
 * driver's, and index is what llmgpu_context_params.device_index takes.
 * \param params  only log, allocator and validation flag are used; may be NULL.
 * \param[out] infos  array of *count_inout entries with struct_size set, or NULL
 *                    to ask for the count.
 * \param[in,out] count_inout  capacity in, number of devices out.
 * \returns LLMGPU_OK, LLMGPU_ERR_NO_DEVICE (no Vulkan loader or driver),
 *          LLMGPU_ERR_BUFFER_TOO_SMALL, LLMGPU_ERR_INVALID_ARGUMENT.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_devices_list(const struct llmgpu_context_params *params,
                                                  struct llmgpu_device_info *infos,
                                                  uint32_t *count_inout);

struct llmgpu_context;

/**
 * Create a context on one Vulkan device.
 * \param[out] out  the new context, or NULL on failure.
 * \returns LLMGPU_OK, LLMGPU_ERR_NO_DEVICE (with what to install in the log),
 *          LLMGPU_ERR_INVALID_ARGUMENT (bad index or params), LLMGPU_ERR_UNSUPPORTED,
 *          LLMGPU_ERR_OUT_OF_HOST_MEMORY, LLMGPU_ERR_VULKAN.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_context_create(const struct llmgpu_context_params *params,
                                                    struct llmgpu_context **out);
/** Free a context; NULL is a no-op. Its models must be freed first.
 * \threadsafety not concurrently with any other use of ctx. \since 0.1.0 */
LLMGPU_API void llmgpu_context_free(struct llmgpu_context *ctx);
/** Describe the context's device. \threadsafety any thread. \since 0.1.0 */
LLMGPU_API enum llmgpu_status llmgpu_context_device_info(const struct llmgpu_context *ctx,
                                                         struct llmgpu_device_info *info);
/** Number of validation-layer errors seen so far (0 without the VALIDATION flag).
 * \threadsafety any thread. \since 0.1.0 */
LLMGPU_API uint64_t llmgpu_context_validation_errors(const struct llmgpu_context *ctx);
/**
 * Measure the device's streaming-read bandwidth with a copy-free read kernel.
 * \param[out] bytes_per_second  the best of several runs.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_context_measure_bandwidth(struct llmgpu_context *ctx,
                                                               double *bytes_per_second);

/* ---- Models --------------------------------------------------------------- */

/**
 * Element type of the weight matrices on the GPU (llmgpu_model_params.weight_type).
 * DEFAULT is f16, except that a bf16 checkpoint stays bf16. Q8_0, Q4_0, Q4_K and
 * Q6_K quantize the projection matrices (attention Q/K/V/O, MLP gate/up/down) while
 * the model loads, in ggml's block formats with its rounding (8.5, 4.5, 4.5 and
 * 6.5625 bits a weight); the token embedding and the LM head keep the DEFAULT type,
 * as does a matrix whose rows are not a multiple of 32 values (rows that are a
 * multiple of 32 but not of 256 become Q4_0 with Q4_K, Q8_0 with Q6_K). A value past
 * Q6_K makes llmgpu_model_load return LLMGPU_ERR_INVALID_ARGUMENT.
 * \since 0.1.0
 */
enum llmgpu_weight_type {
    LLMGPU_WEIGHT_TYPE_DEFAULT = 0,  /* f16 */
    LLMGPU_WEIGHT_TYPE_F32 = 1,
    LLMGPU_WEIGHT_TYPE_F16 = 2,
    LLMGPU_WEIGHT_TYPE_BF16 = 3,
    LLMGPU_WEIGHT_TYPE_Q8_0 = 4,
    LLMGPU_WEIGHT_TYPE_Q4_0 = 5,
    LLMGPU_WEIGHT_TYPE_Q4_K = 6,
    LLMGPU_WEIGHT_TYPE_Q6_K = 7,
    LLMGPU_WEIGHT_TYPE_MAX_ENUM = 0x7FFFFFFF
};

/**
 * Progress of a load: bytes_done of bytes_total processed. Return non-zero to
 * abort the load (llmgpu_model_load then returns LLMGPU_ERR_ABORTED). Called on
 * the loading thread; must not call into the library.
 */
typedef int (*llmgpu_progress_fn)(uint64_t bytes_done, uint64_t bytes_total, void *user);

/** Load only config and tokenizer, no weights (for tokenizing); sessions are refused. */
#define LLMGPU_MODEL_FLAG_VOCAB_ONLY (1u << 0)

/** Parameters of llmgpu_model_load(). \since 0.1.0 */
struct llmgpu_model_params {
    uint32_t struct_size;
    uint32_t flags;                  /* LLMGPU_MODEL_FLAG_*; default 0 */
    enum llmgpu_weight_type weight_type; /* default LLMGPU_WEIGHT_TYPE_DEFAULT (f16; GGUF: as stored) */
    llmgpu_progress_fn progress_fn;  /* default NULL */
    void *progress_user;
};

/** Fill *params with defaults and struct_size. \threadsafety any thread. \since 0.1.0 */
LLMGPU_API void llmgpu_model_params_init(struct llmgpu_model_params *params);

struct llmgpu_model;

/**
 * Load a model: a Hugging Face directory (config.json, tokenizer.json,
 * tokenizer_config.json, generation_config.json when present, model.safetensors
 * or shards listed in model.safetensors.index.json), or a GGUF file (recognised by
 * its magic; for a llama.cpp gguf-split set, the first part). For a GGUF file,
 * weight_type DEFAULT keeps each matrix's stored type (Q6_K: f16 for now; a
 * quantized token embedding: f16); llmgpu_model_info reports the resulting type.
 * \param[out] out  the model, or NULL on failure.
 * \returns LLMGPU_OK, LLMGPU_ERR_IO, LLMGPU_ERR_BAD_MODEL_FILE, LLMGPU_ERR_UNSUPPORTED_MODEL,
 *          LLMGPU_ERR_BAD_TOKENIZER, LLMGPU_ERR_OUT_OF_DEVICE_MEMORY (the log says how many
 *          bytes are needed and available), LLMGPU_ERR_OUT_OF_HOST_MEMORY, LLMGPU_ERR_ABORTED,
 *          LLMGPU_ERR_DEVICE_LOST, LLMGPU_ERR_VULKAN, LLMGPU_ERR_INVALID_ARGUMENT.
 * \note the model keeps a reference to ctx: ctx must outlive it.
 * \threadsafety any thread; ctx may be used concurrently. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_model_load(struct llmgpu_context *ctx, const char *path,
                                                const struct llmgpu_model_params *params,
                                                struct llmgpu_model **out);
/** Parameters of llmgpu_quantize(). \since 0.1.0 */
struct llmgpu_quantize_params {
    uint32_t struct_size;
    enum llmgpu_weight_type weight_type; /* F32, F16 (DEFAULT), Q8_0, Q4_0, Q4_K or Q6_K */
    enum llmgpu_log_level log_level;     /* default LLMGPU_LOG_LEVEL_WARN */
    llmgpu_log_fn log_fn;                /* default NULL: silent */
    void *log_user;
    const struct llmgpu_allocator *allocator; /* NULL (default): malloc/free */
};

/** Fill *params with defaults and struct_size. \threadsafety any thread. \since 0.1.0 */
LLMGPU_API void llmgpu_quantize_params_init(struct llmgpu_quantize_params *params);

/**
 * Write the Hugging Face model directory in_dir (as llmgpu_model_load reads it)
 * as a GGUF v3 file out_path that llama.cpp-style readers open: llama.cpp's
 * tensor names and metadata keys, attn_q/attn_k rows permuted as its converter
 * does for "llama" models, norms and biases F32, weight matrices of
 * params->weight_type (token embedding and output F16 when it is a quantized
 * type), tokenizer.json and tokenizer_config.json embedded and converted to
 * tokenizer.ggml.* metadata. Needs no GPU. The
 * file is written beside out_path and renamed into place on success.
 * \returns LLMGPU_OK, LLMGPU_ERR_IO, LLMGPU_ERR_BAD_MODEL_FILE,
 *          LLMGPU_ERR_UNSUPPORTED_MODEL (also: a weight type this build cannot
 *          produce), LLMGPU_ERR_OUT_OF_HOST_MEMORY, LLMGPU_ERR_INVALID_ARGUMENT.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_quantize(const char *in_dir, const char *out_path,
                                              const struct llmgpu_quantize_params *params);

/** Free a model; NULL is a no-op. Its sessions must be freed first.
 * \threadsafety not concurrently with any other use of model. \since 0.1.0 */
LLMGPU_API void llmgpu_model_free(struct llmgpu_model *model);

/** Hyper-parameters and sizes of a loaded model. \since 0.1.0 */
struct llmgpu_model_info {
    uint32_t struct_size;
    char architecture[64];           /* e.g. "LlamaForCausalLM" */
    uint64_t n_params;
    uint64_t weight_bytes;           /* bytes of weights on the GPU */
    enum llmgpu_weight_type weight_type;
    uint32_t n_vocab;
    uint32_t n_ctx_train;            /* max_position_embeddings */
    uint32_t n_embd;
    uint32_t n_ff;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_kv_head;
    uint32_t head_dim;
    uint32_t sliding_window;         /* 0: none */
    float rope_theta;
    float rms_norm_eps;
};

/** Describe a model. \threadsafety any thread. \since 0.1.0 */
LLMGPU_API enum llmgpu_status llmgpu_model_info(const struct llmgpu_model *model,
                                                struct llmgpu_model_info *info);

/* ---- Tokenizer ------------------------------------------------------------ */

/** Add BOS/EOS as the tokenizer's post-processor and tokenizer_config.json say. */
#define LLMGPU_TOKENIZE_FLAG_ADD_SPECIAL (1u << 0)
/** Treat special-token strings in the text as those tokens (transformers' default);
 * without it they are tokenized as plain text. */
#define LLMGPU_TOKENIZE_FLAG_PARSE_SPECIAL (1u << 1)

/**
 * Tokenize UTF-8 text (invalid bytes are treated like transformers treats the
 * text decoded with replacement characters).
 * \param text  len bytes, need not be NUL-terminated; may be NULL when len is 0.
 * \param flags LLMGPU_TOKENIZE_FLAG_*; ADD_SPECIAL|PARSE_SPECIAL equals
 *              AutoTokenizer(text).input_ids.
 * \param[out] tokens  room for *n_inout ids, or NULL to ask for the count.
 * \param[in,out] n_inout capacity in, number of ids out.
 * \returns LLMGPU_OK, LLMGPU_ERR_BUFFER_TOO_SMALL, LLMGPU_ERR_INVALID_ARGUMENT,
 *          LLMGPU_ERR_OUT_OF_HOST_MEMORY.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_tokenize(const struct llmgpu_model *model, const char *text,
                                              size_t len, uint32_t flags, int32_t *tokens,
                                              size_t *n_inout);
/** Skip special tokens when detokenizing (transformers' skip_special_tokens). */
#define LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL (1u << 0)

/**
 * Turn ids back into UTF-8 text as transformers' tokenizer.decode() does.
 * \param[out] text  room for *len_inout bytes (no NUL is written), or NULL to ask.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_detokenize(const struct llmgpu_model *model,
                                                const int32_t *tokens, size_t n, uint32_t flags,
                                                char *text, size_t *len_inout);
/**
 * The bytes a token contributes when appended to a stream of text (after
 * decoders; may be a partial UTF-8 character). For streaming output use
 * llmgpu_session_detokenize_stream or llmgpu_detokenize.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_token_to_piece(const struct llmgpu_model *model,
                                                    int32_t token, char *piece,
                                                    size_t *len_inout);
/** Vocabulary size of the tokenizer (may be less than the model's n_vocab).
 * \threadsafety any thread. \since 0.1.0 */
LLMGPU_API uint32_t llmgpu_model_n_tokens(const struct llmgpu_model *model);
/** BOS id, or -1. \threadsafety any thread. \since 0.1.0 */
LLMGPU_API int32_t llmgpu_model_token_bos(const struct llmgpu_model *model);
/** The main EOS id (generation_config.json, else the tokenizer's), or -1.
 * \threadsafety any thread. \since 0.1.0 */
LLMGPU_API int32_t llmgpu_model_token_eos(const struct llmgpu_model *model);
/** Whether a token ends generation (any of generation_config.json's eos ids,
 * the tokenizer's eos, or an end-of-turn token). \since 0.1.0 */
LLMGPU_API int llmgpu_model_token_is_eog(const struct llmgpu_model *model, int32_t token);

/* ---- Chat templates ---- */
/** One message of a conversation, OpenAI style. \since 0.1.0 */
struct llmgpu_chat_message { const char *role; const char *content; };
/** End the rendered text with the template's prompt for the assistant's turn. */
#define LLMGPU_CHAT_FLAG_ADD_GENERATION_PROMPT (1u << 0)
/** Render a conversation with the model's chat template (tokenizer_config.json's chat_template, or chat_template.jinja beside it) as transformers' apply_chat_template(messages, tokenize=False) does.
 * \param[out] text room for *len_inout bytes (no NUL written), or NULL to ask.
 * \returns LLMGPU_OK, LLMGPU_ERR_BUFFER_TOO_SMALL, LLMGPU_ERR_UNSUPPORTED (no template, or a construct this renderer lacks; the log names it), LLMGPU_ERR_INVALID_ARGUMENT (also raise_exception in the template: the log has its message).
 * \threadsafety any thread. \since 0.1.0 */
LLMGPU_API enum llmgpu_status llmgpu_chat_apply_template(const struct llmgpu_model *model, const struct llmgpu_chat_message *msgs, size_t n_msgs, uint32_t flags, char *text, size_t *len_inout);

/* ---- Sessions ------------------------------------------------------------- */

/**
 * Element type of a session's KV cache. \since 0.1.0
 * Q8_0 stores each 32 values of a K or V row as 8-bit integers with an f16 scale
 * (d = max |x| / 127, as GGUF's q8_0): 1.0625 bytes a value instead of 2, so the cache
 * takes 47 % less memory. It needs a head_dim that is a multiple of 32
 * (LLMGPU_ERR_UNSUPPORTED otherwise). On a test model its logits differ from an
 * f32 cache's by a normalised MSE of about 1e-5. On the H100 it is slower than f16:
 * decode by 4-12 %, prefill by up to 27 % at 16,384 tokens (bench/RESULTS.md, session
 * 12). Use it to fit a longer context, not for speed. State files record the type; a session loads only its own.
 */
enum llmgpu_kv_type {
    LLMGPU_KV_TYPE_DEFAULT = 0,      /* f16 */
    LLMGPU_KV_TYPE_F16 = 1,
    LLMGPU_KV_TYPE_Q8_0 = 2,
    LLMGPU_KV_TYPE_MAX_ENUM = 0x7FFFFFFF
};

/** Parameters of llmgpu_session_create(). \since 0.1.0 */
struct llmgpu_session_params {
    uint32_t struct_size;
    uint32_t flags;                  /* none defined yet; must be 0 */
    uint32_t n_ctx;                  /* context length; 0 (default): min(model's, 4096) */
    uint32_t n_batch;                /* prefill chunk in tokens; 0 (default): 512 */
    enum llmgpu_kv_type kv_type;     /* KV-cache element type; default f16 */
};

/** Fill *params with defaults and struct_size. \threadsafety any thread. \since 0.1.0 */
LLMGPU_API void llmgpu_session_params_init(struct llmgpu_session_params *params);

struct llmgpu_session;

/**
 * Create a session (KV cache, activations) for a model.
 * \note the session keeps a reference to model: model must outlive it.
 * \returns LLMGPU_OK, LLMGPU_ERR_OUT_OF_DEVICE_MEMORY, LLMGPU_ERR_KERNEL_COMPILE,
 *          LLMGPU_ERR_INVALID_ARGUMENT, LLMGPU_ERR_OUT_OF_HOST_MEMORY, LLMGPU_ERR_VULKAN.
 * \threadsafety any thread; sessions of one model may be created concurrently. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_session_create(struct llmgpu_model *model,
                                                    const struct llmgpu_session_params *params,
                                                    struct llmgpu_session **out);
/** Free a session; NULL is a no-op. \threadsafety not concurrently with other use of s. */
LLMGPU_API void llmgpu_session_free(struct llmgpu_session *s);
/** Forget all tokens; the next prefill starts at position 0. \since 0.1.0 */
LLMGPU_API enum llmgpu_status llmgpu_session_reset(struct llmgpu_session *s);
/** Number of tokens in the session's KV cache. \since 0.1.0 */
LLMGPU_API uint32_t llmgpu_session_position(const struct llmgpu_session *s);
/** The session's context length. \since 0.1.0 */
LLMGPU_API uint32_t llmgpu_session_n_ctx(const struct llmgpu_session *s);

/**
 * Run n tokens through the model at the next positions, in chunks of n_batch.
 * Afterwards the logits of the last token are ready on the GPU.
 * \returns LLMGPU_OK, LLMGPU_ERR_CONTEXT_FULL (nothing was run; the session is
 *          unchanged), LLMGPU_ERR_INVALID_TOKEN, LLMGPU_ERR_INVALID_ARGUMENT,
 *          LLMGPU_ERR_DEVICE_LOST, LLMGPU_ERR_VULKAN.
 * \threadsafety one thread at a time per session. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_session_prefill(struct llmgpu_session *s,
                                                     const int32_t *tokens, size_t n);
/** Run one token at the next position (the decode path); same returns as prefill.
 * \since 0.1.0 */
LLMGPU_API enum llmgpu_status llmgpu_session_decode(struct llmgpu_session *s, int32_t token);
/**
 * Copy the logits of the last evaluated token to the caller.
 * \param[out] logits  room for *n_inout floats (n_vocab needed), or NULL to ask.
 * \returns LLMGPU_OK, LLMGPU_ERR_BUFFER_TOO_SMALL, LLMGPU_ERR_INVALID_ARGUMENT (no token
 *          evaluated yet).
 * \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_session_logits(struct llmgpu_session *s, float *logits,
                                                    size_t *n_inout);
/**
 * The most likely next token (argmax of the last logits, lowest id on ties),
 * computed on the GPU; only the id is read back.
 * \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_session_sample_greedy(struct llmgpu_session *s,
                                                           int32_t *token);

/** GPU time of one stage of the forward pass, summed since the session was
 * created or llmgpu_session_profile_reset(). \since 0.1.0 */
struct llmgpu_profile_entry {
    const char *name;   /* static string, e.g. "attention", "ffn_down" */
    uint64_t ns;        /* GPU nanoseconds, from timestamp queries */
    uint64_t count;     /* how many times the stage ran (per layer and step) */
    /* Bytes the stage must read from GPU memory at least once: the weights of its
     * mat-vecs or GEMMs (scales included) and, for attention, the K and V cache rows up
     * to each step's last position. bytes / ns is the achieved GB/s. */
    uint64_t bytes;
    uint64_t barriers;  /* pipeline barriers recorded in the stage, summed over its runs */
};

/**
 * Per-stage GPU times of this session's steps. Needs LLMGPU_CONTEXT_FLAG_PROFILE on the
 * context (else LLMGPU_ERR_UNSUPPORTED) and a device with timestamps on its compute queue.
 * \param[out] entries  room for *n_inout entries, or NULL to ask for the count.
 * \returns LLMGPU_OK, LLMGPU_ERR_BUFFER_TOO_SMALL, LLMGPU_ERR_UNSUPPORTED,
 *          LLMGPU_ERR_INVALID_ARGUMENT.
 * \threadsafety one thread at a time per session. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_session_profile(const struct llmgpu_session *s,
                                                     struct llmgpu_profile_entry *entries,
                                                     uint32_t *n_inout);
/** Zero the per-stage times. \since 0.1.0 */
LLMGPU_API enum llmgpu_status llmgpu_session_profile_reset(struct llmgpu_session *s);

/* ---- Sampling ------------------------------------------------------------- */

/**
 * Parameters of llmgpu_session_sample(). The logits go through, in this order:
 * logit bias, penalties, temperature, top-k, top-p, min-p, softmax, then one
 * draw. Each filter follows llama.cpp's sampler of the same name; the
 * temperature comes first, as in transformers' warper order (llama.cpp's
 * default chain applies it last, so there top-p and min-p see T = 1
 * probabilities). Candidates are ranked by logit, then by lower id on ties, and
 * every filter keeps a prefix of that ranking, so ties at a cut are broken
 * towards lower ids. \since 0.1.0
 */
struct llmgpu_sampler_params {
    uint32_t struct_size;
    uint32_t flags;          /* none defined yet; must be 0 */
    /* Logits are multiplied by 1/temperature. Default 0.8; <= 0: greedy (the
     * argmax after bias and penalties, lowest id on ties; top-k/p, min-p and the
     * seed are then ignored). */
    float temperature;
    int32_t top_k;           /* keep the k most likely tokens; default 40; <= 0: off */
    /* Keep the smallest prefix of the most likely tokens (after top-k, its
     * probabilities renormalised) whose probability reaches top_p; at least one
     * token. Default 0.95; >= 1: off. */
    float top_p;
    /* Keep tokens whose probability is at least min_p times the most likely
     * one's (logit >= max + log(min_p)). Default 0.05; <= 0: off; > 1 acts as 1. */
    float min_p;
    /* Repetition penalty (CTRL, as llama.cpp) on each distinct token among the
     * last penalty_last_n of recent: a positive logit is divided by it, a
     * non-positive one multiplied. Default 1 (off). */
    float repeat_penalty;
    /* OpenAI-style penalties on the same window: a token seen c times loses
     * c * frequency_penalty + (c > 0) * presence_penalty. Default 0 (off). */
    float frequency_penalty;
    float presence_penalty;
    /* How many of the last recent tokens the penalties look at; default 64;
     * 0: penalties off; < 0: all of recent. */
    int32_t penalty_last_n;
    /* Seed of the draw. The uniform number of a draw is a hash of (seed, the
     * session's position), so the same seed, prompt and tokens give the same
     * text on the same device; sampling again at the same position with the
     * same seed gives the same token. Default 0; the library never seeds from
     * the clock. */
    uint64_t seed;
    /* Logit bias: bias_values[i] is added to the logit of bias_ids[i] (repeated
     * ids add up); -INFINITY bans a token. Read during the call only. */
    const int32_t *bias_ids;
    const float *bias_values;
    uint32_t n_bias;
    /* The tokens the penalties look at, oldest first (typically the prompt and
     * the generated tokens so far; the caller keeps them). Read during the call
     * only; may be NULL when n_recent is 0. */
    const int32_t *recent;
    uint32_t n_recent;
};

/** Fill *params with the defaults above and struct_size.
 * \threadsafety any thread. \since 0.1.0 */
LLMGPU_API void llmgpu_sampler_params_init(struct llmgpu_sampler_params *params);

/**
 * Sample the next token from the session's last logits on the GPU: the whole
 * vocabulary is filtered and drawn from in parallel, and only the id is read
 * back. Reproducible for the same seed, logits, recent tokens and position on
 * the same device.
 * \param params  NULL means the defaults of llmgpu_sampler_params_init().
 * \param[out] token  the sampled id.
 * \returns LLMGPU_OK, LLMGPU_ERR_INVALID_ARGUMENT (no token evaluated yet, a
 *          struct_size of 0, a NaN bias, or every token banned),
 *          LLMGPU_ERR_INVALID_TOKEN (a bias or recent id outside the
 *          vocabulary), LLMGPU_ERR_OUT_OF_DEVICE_MEMORY,
 *          LLMGPU_ERR_OUT_OF_HOST_MEMORY, LLMGPU_ERR_KERNEL_COMPILE,
 *          LLMGPU_ERR_DEVICE_LOST, LLMGPU_ERR_VULKAN.
 * \threadsafety one thread at a time per session. \since 0.1.0
 * \sa llmgpu_session_sample_greedy
 */
LLMGPU_API enum llmgpu_status llmgpu_session_sample(struct llmgpu_session *s,
                                                    const struct llmgpu_sampler_params *params,
                                                    int32_t *token);

/* ---- Generation ----------------------------------------------------------- */

/** Why llmgpu_generate() stopped. Callers must accept values they do not know.
 * \since 0.1.0 */
enum llmgpu_stop_reason {
    LLMGPU_STOP_REASON_NONE = 0,         /* it did not stop normally: an error was returned */
    LLMGPU_STOP_REASON_MAX_TOKENS = 1,   /* max_tokens were generated */
    LLMGPU_STOP_REASON_EOG = 2,          /* an end-of-generation token (llmgpu_model_token_is_eog) */
    LLMGPU_STOP_REASON_STOP_STRING = 3,  /* the text contains one of the stop strings */
    LLMGPU_STOP_REASON_CALLBACK = 4,     /* the token callback returned non-zero */
    LLMGPU_STOP_REASON_CONTEXT_FULL = 5, /* the session's context is full */
    LLMGPU_STOP_REASON_MAX_ENUM = 0x7FFFFFFF
};

/**
 * Receives each generated token and the text that became final with it: len
 * bytes of complete UTF-8 characters (not NUL-terminated; len may be 0, text is
 * never NULL), valid only during the call. The text of a token may come with a
 * later token's call:
 * a character split across tokens waits for its last byte, and text that could
 * begin a stop string waits until it cannot (the call of the token that ends
 * generation carries everything left). Text from a stop string on is never
 * passed. Return 0 to go on, non-zero to stop after this token
 * (LLMGPU_STOP_REASON_CALLBACK, unless this token ended generation anyway; text
 * still held back is dropped). Called on the
 * generating thread; it may read the session (position) and the model but must
 * not prefill, decode, sample, reset or free the session.
 */
typedef int (*llmgpu_token_fn)(int32_t token, const char *text, size_t len, void *user);

/* Flags of llmgpu_generate_params.flags. */
/** Do not stop at end-of-generation tokens (they are generated like others). */
#define LLMGPU_GENERATE_FLAG_IGNORE_EOG (1u << 0)
/** Include the text of special tokens (e.g. "<|im_start|>") in the callback's
 * text and the stop-string search; by default it is skipped, as
 * LLMGPU_DETOKENIZE_FLAG_SKIP_SPECIAL does. */
#define LLMGPU_GENERATE_FLAG_SPECIAL_TEXT (1u << 1)

/** Parameters of llmgpu_generate(). \since 0.1.0 */
struct llmgpu_generate_params {
    uint32_t struct_size;
    uint32_t flags;          /* LLMGPU_GENERATE_FLAG_*; default 0 */
    uint32_t max_tokens;     /* most tokens to generate; default 0: no limit but the context */
    /* How to choose each token; NULL (default): greedy (llmgpu_session_sample_greedy).
     * Its recent tokens are taken as history before this call's prompt: the
     * penalties see them, the prompt and the tokens generated so far. Read
     * during the call only. */
    const struct llmgpu_sampler_params *sampler;
    /* Stop strings (NUL-terminated UTF-8, none empty): generation stops as soon
     * as the generated text contains one. Read during the call only. */
    const char *const *stop;
    uint32_t n_stop;
    llmgpu_token_fn on_token; /* default NULL: no streaming */
    void *user;              /* passed to on_token */
};

/** Fill *params with defaults and struct_size. \threadsafety any thread. \since 0.1.0 */
LLMGPU_API void llmgpu_generate_params_init(struct llmgpu_generate_params *params);

/** What one llmgpu_generate() did. The caller sets struct_size. \since 0.1.0 */
struct llmgpu_generate_result {
    uint32_t struct_size;
    enum llmgpu_stop_reason stop_reason;
    uint32_t n_prompt;       /* prompt tokens evaluated */
    uint32_t n_generated;    /* tokens sampled, the end-of-generation token included */
    double prompt_ms;        /* the prefill of the prompt */
    double ttft_ms;          /* from the call to the first generated token's id */
    /* From the first token to the end: n_generated decode steps and the samples
     * between them, callback time excluded; decode tokens/s is
     * n_generated / decode_ms * 1000. */
    double decode_ms;
};

/**
 * Generate text: evaluate prompt after the tokens the session already holds
 * (the KV cache is reused, so a chat prefills only its new turn), then sample
 * token after token until max_tokens, an end-of-generation token, a stop string,
 * the callback, or a full context ends it.
 * Every sampled token is evaluated before the call returns: the session then
 * holds the prompt and all n_generated tokens (the end-of-generation token and
 * the one that completed a stop string included) and has logits, so a further
 * call with n_prompt 0 continues the text, and llmgpu_session_truncate() removes
 * tokens a caller does not want kept.
 * The streamed text is what the generated tokens add after the tokens before
 * them (no leading space is stripped from the first one), special tokens
 * skipped unless LLMGPU_GENERATE_FLAG_SPECIAL_TEXT.
 * \param prompt  n_prompt tokens; n_prompt may be 0 when the session has logits
 *                (after a prefill, decode or generate).
 * \param params  NULL: the defaults of llmgpu_generate_params_init().
 * \param[out] result  may be NULL; filled (up to its struct_size) on success and
 *                     on failure, with stop_reason LLMGPU_STOP_REASON_NONE then.
 * \returns LLMGPU_OK (whatever stopped it, the callback included),
 *          LLMGPU_ERR_CONTEXT_FULL (the prompt does not fit; nothing was run),
 *          LLMGPU_ERR_INVALID_ARGUMENT (no prompt and no logits, a struct_size of
 *          0, unknown flags, a NULL or empty stop string), LLMGPU_ERR_INVALID_TOKEN,
 *          the errors of llmgpu_session_sample and llmgpu_session_decode.
 * \threadsafety one thread at a time per session; sessions of one model may
 *               generate concurrently from different threads. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_generate(struct llmgpu_session *s, const int32_t *prompt,
                                              size_t n_prompt,
                                              const struct llmgpu_generate_params *params,
                                              struct llmgpu_generate_result *result);

/**
 * Forget the tokens from position on; the KV cache of [0, position) is kept, so
 * the next prefill continues from there (multi-turn chat with a changed tail).
 * The session has no logits afterwards unless position equals its position
 * (then nothing changes).
 * \returns LLMGPU_OK, LLMGPU_ERR_INVALID_ARGUMENT (position beyond the session's).
 * \threadsafety one thread at a time per session. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_session_truncate(struct llmgpu_session *s,
                                                      uint32_t position);

/* ---- Session state (prompt cache) ----------------------------------------- */

/**
 * Write the session's KV cache (positions [0, position)) to a file, so that a
 * long prompt evaluated once can be loaded into other sessions of the same model
 * later. The file (format in lib/state.c) starts with a header: magic, format
 * version, library version, the model's identity (a hash of its hyper-parameters,
 * weight type and some of its weights as on the GPU), n_layer, n_kv_head,
 * head_dim, the KV element type, n_ctx and position; then the rows of every
 * layer and an XXH3-64 checksum of all of it. It is written to "<path>.tmp" and
 * renamed over path, so path is either the old file or the complete new one.
 * The logits are not saved (see llmgpu_session_load).
 * \returns LLMGPU_OK, LLMGPU_ERR_IO (the log has the reason), LLMGPU_ERR_INVALID_ARGUMENT,
 *          LLMGPU_ERR_OUT_OF_HOST_MEMORY, LLMGPU_ERR_OUT_OF_DEVICE_MEMORY,
 *          LLMGPU_ERR_DEVICE_LOST, LLMGPU_ERR_VULKAN.
 * \threadsafety one thread at a time per session. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_session_save(struct llmgpu_session *s, const char *path);
/**
 * Replace the session's tokens with those of a file written by
 * llmgpu_session_save() for the same model; the session's n_ctx may differ but
 * must hold the saved positions. The whole file is read and checked (header,
 * model identity, size, checksum) before the session is touched: a file that
 * fails a check is refused, the session unchanged.
 * After a load the session's position is the saved one but it has no logits:
 * evaluate at least one token before sampling, e.g. llmgpu_generate() with the
 * next turn as its prompt. (To cache a whole prompt, save after all but its
 * last token and pass that token as the prompt of the first generate.)
 * Continuing a loaded session gives the same tokens as continuing the session
 * that saved it, on the same device.
 * \returns LLMGPU_OK, LLMGPU_ERR_IO (cannot open or read), LLMGPU_ERR_BAD_MODEL_FILE (not a
 *          state file, another format version, another model or dimensions, a wrong
 *          size, a bad checksum; the log says which, with the offset),
 *          LLMGPU_ERR_CONTEXT_FULL (more positions than the session's n_ctx),
 *          LLMGPU_ERR_INVALID_ARGUMENT, LLMGPU_ERR_OUT_OF_HOST_MEMORY, LLMGPU_ERR_DEVICE_LOST,
 *          LLMGPU_ERR_VULKAN (then the session is reset to position 0).
 * \threadsafety one thread at a time per session. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_session_load(struct llmgpu_session *s, const char *path);

/* ---- Telemetry ------------------------------------------------------------ */

/** Device memory of a session. \since 0.1.0 */
struct llmgpu_session_memory {
    uint32_t struct_size;
    /* The K and V caches: 2 * n_layer * n_ctx * R bytes, with R the bytes of a cache
     * row: n_kv_head * head_dim * 2 in f16; in q8_0, W = n_kv_head * head_dim int8
     * values and W / 32 f16 scales rounded up to a multiple of 16 bytes,
     * R = 16 * ceil((W + W / 16) / 16).
     * Both figures are those of a full session: its KV cache, RoPE table and
     * attention partials start at min(256, n_ctx) positions and grow in pages of
     * 256 positions, doubling, up to n_ctx. */
    uint64_t kv_bytes;
    /* Everything else a session allocates, with B = min(n_batch, n_ctx), E n_embd,
     * F n_ff, NH n_head, NKV n_kv_head, HD head_dim, V n_vocab and
     * C = ceil(n_ctx / 64):
     * 16 + 4B (step) + 8BE (x, xb) + 4B(NH + 2 NKV)HD (qkv) + 8B NH HD (q, att)
     * + 12BF (gate|up, hb) + 8V (logits and their host copy) + 16 (result)
     * + 4 NH C (HD + 2) (attention partials) + 8 n_ctx (HD / 2) (RoPE table)
     * + D, the f16 copies of quantized weights for prefill where they are made
     * (LLMGPU_CONTEXT_FLAG_PREFILL_DEQUANT; 0 without it, and for float weights):
     * A rounded up to 256 bytes plus B, A the largest per layer of 2 (NH + 2 NKV)
     * HD E (Q/K/V) and of gate and up side by side (up from a 256-byte boundary: 2 F E
     * each, counted when quantized), B the largest of 2 E NH HD (Wo) and 2 E F (down).
     * Of these, step, the host copy of the logits and result are host-visible
     * memory (device-local where the device offers it). Buffers are rounded up to
     * the device's alignment, so a session takes a little more. */
    uint64_t scratch_bytes;
};

/**
 * How much device memory a session of these params takes (before or after it
 * is created); the model's own is llmgpu_model_info().weight_bytes.
 * \param params  NULL: the defaults of llmgpu_session_params_init().
 * \param[out] out  the caller sets struct_size.
 * \returns LLMGPU_OK, LLMGPU_ERR_INVALID_ARGUMENT.
 * \threadsafety any thread. \since 0.1.0
 */
LLMGPU_API enum llmgpu_status llmgpu_session_memory(const struct llmgpu_model *model,
                                                    const struct llmgpu_session_params *params,
                                                    struct llmgpu_session_memory *out);

/** Counters of a context since its creation. \since 0.1.0 */
struct llmgpu_context_stats {
    uint32_t struct_size;
    uint64_t device_bytes;       /* device-local bytes allocated now (weights, sessions) */
    uint64_t kernels_compiled;   /* kernels compiled by shaderc (not in the disk cache) */
    uint64_t kernel_cache_hits;  /* kernels read from the disk cache */
    double kernel_compile_ms;    /* time spent compiling them */
};

/** Read a context's counters. \param[out] out  the caller sets struct_size.
 * \returns LLMGPU_OK, LLMGPU_ERR_INVALID_ARGUMENT.
 * \threadsafety any thread. \since 0.1.0 */
LLMGPU_API enum llmgpu_status llmgpu_context_stats(const struct llmgpu_context *ctx,
                                                   struct llmgpu_context_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* LLMGPU_H */
