"""Low-level ctypes mirror of include/llmgpu.h (private; use the ``llmgpu`` package).

Every function of the header is declared here with ``argtypes`` and ``restype``
under its C prototype; every params/info struct is mirrored field by field.
tests/test_header.py checks the enum values, flags, struct sizes and field
offsets against the header and the C compiler.
"""

import ctypes
import ctypes.util
import enum
import os

# Must match LLMGPU_VERSION_MAJOR: the SONAME is libllmgpu.so.<major>.
VERSION_MAJOR = 0
SONAME = "libllmgpu.so.%d" % VERSION_MAJOR


# ---- Enums and flags ---------------------------------------------------------

class Status(enum.IntEnum):
    """enum llmgpu_status (values pinned by the header)."""
    OK = 0
    ERR_INVALID_ARGUMENT = -1
    ERR_OUT_OF_HOST_MEMORY = -2
    ERR_OUT_OF_DEVICE_MEMORY = -3
    ERR_NO_DEVICE = -4
    ERR_DEVICE_LOST = -5
    ERR_VULKAN = -6
    ERR_KERNEL_COMPILE = -7
    ERR_IO = -8
    ERR_BAD_MODEL_FILE = -9
    ERR_UNSUPPORTED_MODEL = -10
    ERR_CONTEXT_FULL = -11
    ERR_BUFFER_TOO_SMALL = -12
    ERR_ABORTED = -13
    ERR_UNSUPPORTED = -14
    ERR_BAD_TOKENIZER = -15
    ERR_INVALID_TOKEN = -16


class LogLevel(enum.IntEnum):
    """enum llmgpu_log_level."""
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3
    NONE = 4


class DeviceType(enum.IntEnum):
    """enum llmgpu_device_type."""
    OTHER = 0
    INTEGRATED_GPU = 1
    DISCRETE_GPU = 2
    VIRTUAL_GPU = 3
    CPU = 4


class WeightType(enum.IntEnum):
    """enum llmgpu_weight_type."""
    DEFAULT = 0
    F32 = 1
    F16 = 2
    BF16 = 3
    Q8_0 = 4
    Q4_0 = 5
    Q4_K = 6
    Q6_K = 7


class KvType(enum.IntEnum):
    """enum llmgpu_kv_type."""
    DEFAULT = 0
    F16 = 1
    Q8_0 = 2


class DeviceFeature(enum.IntFlag):
    """LLMGPU_DEVICE_FEATURE_* bits of llmgpu_device_info.features."""
    FP16 = 1 << 0
    INT8 = 1 << 1
    STORAGE_16BIT = 1 << 2
    STORAGE_8BIT = 1 << 3
    INTEGER_DOT = 1 << 4
    COOPMAT_NV = 1 << 5
    COOPMAT_KHR = 1 << 6
    MEMORY_BUDGET = 1 << 7
    SUBGROUP_ARITH = 1 << 8
    SUBGROUP_SIZE_CONTROL = 1 << 9
    INTEGER_DOT_ACCELERATED = 1 << 10


class ContextFlag(enum.IntFlag):
    """LLMGPU_CONTEXT_FLAG_*."""
    VALIDATION = 1 << 0
    NO_DISK_CACHE = 1 << 1
    PROFILE = 1 << 2
    NO_COOPMAT = 1 << 3
    NO_FUSE_ROPE = 1 << 4
    MATVEC_SUBGROUP = 1 << 5
    MATVEC_WORKGROUP = 1 << 6
    MATVEC_INT_DOT = 1 << 7
    MATVEC_FLOAT_DOT = 1 << 8
    PREFILL_DEQUANT = 1 << 9
    NO_PREFILL_DEQUANT = 1 << 10


class ModelFlag(enum.IntFlag):
    """LLMGPU_MODEL_FLAG_*."""
    VOCAB_ONLY = 1 << 0


class TokenizeFlag(enum.IntFlag):
    """LLMGPU_TOKENIZE_FLAG_*."""
    ADD_SPECIAL = 1 << 0
    PARSE_SPECIAL = 1 << 1


class DetokenizeFlag(enum.IntFlag):
    """LLMGPU_DETOKENIZE_FLAG_*."""
    SKIP_SPECIAL = 1 << 0


class StopReason(enum.IntEnum):
    """enum llmgpu_stop_reason."""
    NONE = 0
    MAX_TOKENS = 1
    EOG = 2
    STOP_STRING = 3
    CALLBACK = 4
    CONTEXT_FULL = 5


class GenerateFlag(enum.IntFlag):
    """LLMGPU_GENERATE_FLAG_*."""
    IGNORE_EOG = 1 << 0
    SPECIAL_TEXT = 1 << 1
class ChatFlag(enum.IntFlag):
    """LLMGPU_CHAT_FLAG_*."""
    ADD_GENERATION_PROMPT = 1 << 0


# For tests/test_header.py: header prefix -> Python class holding its members.
ENUM_PREFIXES = {
    "enum llmgpu_status": ("LLMGPU_", Status),
    "enum llmgpu_log_level": ("LLMGPU_LOG_LEVEL_", LogLevel),
    "enum llmgpu_device_type": ("LLMGPU_DEVICE_TYPE_", DeviceType),
    "enum llmgpu_weight_type": ("LLMGPU_WEIGHT_TYPE_", WeightType),
    "enum llmgpu_kv_type": ("LLMGPU_KV_TYPE_", KvType),
    "enum llmgpu_stop_reason": ("LLMGPU_STOP_REASON_", StopReason),
}
FLAG_PREFIXES = {
    "LLMGPU_DEVICE_FEATURE_": DeviceFeature,
    "LLMGPU_CONTEXT_FLAG_": ContextFlag,
    "LLMGPU_MODEL_FLAG_": ModelFlag,
    "LLMGPU_TOKENIZE_FLAG_": TokenizeFlag,
    "LLMGPU_DETOKENIZE_FLAG_": DetokenizeFlag,
    "LLMGPU_GENERATE_FLAG_": GenerateFlag,
    "LLMGPU_CHAT_FLAG_": ChatFlag,
}

# C enums are int-sized on every ABI the library supports.
c_enum = ctypes.c_int


# ---- Callback types ------------------------------------------------------------

# typedef void (*llmgpu_log_fn)(enum llmgpu_log_level level, const char *message, void *user);
LOG_FN = ctypes.CFUNCTYPE(None, c_enum, ctypes.c_char_p, ctypes.c_void_p)
# typedef int (*llmgpu_progress_fn)(uint64_t bytes_done, uint64_t bytes_total, void *user);
PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p)
# void *(*alloc)(size_t size, void *user);
ALLOC_FN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
# void (*free)(void *ptr, void *user);
FREE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
# typedef int (*llmgpu_token_fn)(int32_t token, const char *text, size_t len, void *user);
# (text as a pointer: it is not NUL-terminated)
TOKEN_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_char),
                            ctypes.c_size_t, ctypes.c_void_p)


# ---- Structs -------------------------------------------------------------------

class llmgpu_allocator(ctypes.Structure):
    _fields_ = [
        ("alloc", ALLOC_FN),
        ("free", FREE_FN),
        ("user", ctypes.c_void_p),
    ]


class llmgpu_device_info(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("index", ctypes.c_uint32),
        ("name", ctypes.c_char * 256),
        ("type", c_enum),
        ("vendor_id", ctypes.c_uint32),
        ("device_id", ctypes.c_uint32),
        ("api_version", ctypes.c_uint32),
        ("subgroup_size", ctypes.c_uint32),
        ("features", ctypes.c_uint32),
        ("device_local_bytes", ctypes.c_uint64),
        ("max_storage_buffer_range", ctypes.c_uint64),
        ("max_allocation_size", ctypes.c_uint64),
        ("max_shared_memory", ctypes.c_uint32),
        ("max_workgroup_invocations", ctypes.c_uint32),
        ("driver_name", ctypes.c_char * 256),
    ]


class llmgpu_context_params(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("device_index", ctypes.c_int32),
        ("log_level", c_enum),
        ("log_fn", LOG_FN),
        ("log_user", ctypes.c_void_p),
        ("cache_dir", ctypes.c_char_p),
        ("allocator", ctypes.POINTER(llmgpu_allocator)),
        ("device_memory_limit", ctypes.c_uint64),
        ("max_binding_size", ctypes.c_uint64),
    ]


class llmgpu_model_params(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("weight_type", c_enum),
        ("progress_fn", PROGRESS_FN),
        ("progress_user", ctypes.c_void_p),
    ]


class llmgpu_model_info(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("architecture", ctypes.c_char * 64),
        ("n_params", ctypes.c_uint64),
        ("weight_bytes", ctypes.c_uint64),
        ("weight_type", c_enum),
        ("n_vocab", ctypes.c_uint32),
        ("n_ctx_train", ctypes.c_uint32),
        ("n_embd", ctypes.c_uint32),
        ("n_ff", ctypes.c_uint32),
        ("n_layer", ctypes.c_uint32),
        ("n_head", ctypes.c_uint32),
        ("n_kv_head", ctypes.c_uint32),
        ("head_dim", ctypes.c_uint32),
        ("sliding_window", ctypes.c_uint32),
        ("rope_theta", ctypes.c_float),
        ("rms_norm_eps", ctypes.c_float),
    ]


class llmgpu_session_params(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("n_ctx", ctypes.c_uint32),
        ("n_batch", ctypes.c_uint32),
        ("kv_type", c_enum),
    ]


class llmgpu_profile_entry(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("ns", ctypes.c_uint64),
        ("count", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("barriers", ctypes.c_uint64),
    ]


class llmgpu_sampler_params(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repeat_penalty", ctypes.c_float),
        ("frequency_penalty", ctypes.c_float),
        ("presence_penalty", ctypes.c_float),
        ("penalty_last_n", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("bias_ids", ctypes.POINTER(ctypes.c_int32)),
        ("bias_values", ctypes.POINTER(ctypes.c_float)),
        ("n_bias", ctypes.c_uint32),
        ("recent", ctypes.POINTER(ctypes.c_int32)),
        ("n_recent", ctypes.c_uint32),
    ]


class llmgpu_generate_params(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("max_tokens", ctypes.c_uint32),
        ("sampler", ctypes.POINTER(llmgpu_sampler_params)),
        ("stop", ctypes.POINTER(ctypes.c_char_p)),
        ("n_stop", ctypes.c_uint32),
        ("on_token", TOKEN_FN),
        ("user", ctypes.c_void_p),
    ]


class llmgpu_generate_result(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("stop_reason", c_enum),
        ("n_prompt", ctypes.c_uint32),
        ("n_generated", ctypes.c_uint32),
        ("prompt_ms", ctypes.c_double),
        ("ttft_ms", ctypes.c_double),
        ("decode_ms", ctypes.c_double),
    ]


class llmgpu_session_memory(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("kv_bytes", ctypes.c_uint64),
        ("scratch_bytes", ctypes.c_uint64),
    ]


class llmgpu_context_stats(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("device_bytes", ctypes.c_uint64),
        ("kernels_compiled", ctypes.c_uint64),
        ("kernel_cache_hits", ctypes.c_uint64),
        ("kernel_compile_ms", ctypes.c_double),
    ]


class llmgpu_chat_message(ctypes.Structure):
    _fields_ = [
        ("role", ctypes.c_char_p),
        ("content", ctypes.c_char_p),
    ]


class llmgpu_quantize_params(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("weight_type", c_enum),
        ("log_level", c_enum),
        ("log_fn", LOG_FN),
        ("log_user", ctypes.c_void_p),
        ("allocator", ctypes.POINTER(llmgpu_allocator)),
    ]


# struct name in the header -> mirror (for tests/test_header.py)
STRUCTS = {
    "llmgpu_allocator": llmgpu_allocator,
    "llmgpu_device_info": llmgpu_device_info,
    "llmgpu_context_params": llmgpu_context_params,
    "llmgpu_model_params": llmgpu_model_params,
    "llmgpu_model_info": llmgpu_model_info,
    "llmgpu_session_params": llmgpu_session_params,
    "llmgpu_profile_entry": llmgpu_profile_entry,
    "llmgpu_sampler_params": llmgpu_sampler_params,
    "llmgpu_quantize_params": llmgpu_quantize_params,
    "llmgpu_generate_params": llmgpu_generate_params,
    "llmgpu_generate_result": llmgpu_generate_result,
    "llmgpu_session_memory": llmgpu_session_memory,
    "llmgpu_context_stats": llmgpu_context_stats,
    "llmgpu_chat_message": llmgpu_chat_message,
}


# ---- Loading the library -----------------------------------------------------

def _load():
    path = os.environ.get("LLMGPU_LIBRARY")
    if path:
        return ctypes.CDLL(path)
    try:
        return ctypes.CDLL(SONAME)
    except OSError as first:
        found = ctypes.util.find_library("llmgpu")
        if found:
            return ctypes.CDLL(found)
        raise OSError("cannot load %s (set LLMGPU_LIBRARY to its path): %s"
                      % (SONAME, first)) from None


lib = _load()

_P = ctypes.POINTER
c_ctx_p = ctypes.c_void_p       # struct llmgpu_context *
c_model_p = ctypes.c_void_p     # struct llmgpu_model *
c_session_p = ctypes.c_void_p   # struct llmgpu_session *


FUNCTIONS = {}  # C name -> declared function (tests check the header's list)


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    FUNCTIONS[name] = f
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


# unsigned llmgpu_version_number(void);
llmgpu_version_number = _fn("llmgpu_version_number", ctypes.c_uint)
# const char *llmgpu_version_string(void);
llmgpu_version_string = _fn("llmgpu_version_string", ctypes.c_char_p)
# const char *llmgpu_status_string(enum llmgpu_status status);
llmgpu_status_string = _fn("llmgpu_status_string", ctypes.c_char_p, c_enum)
# const char *llmgpu_status_name(enum llmgpu_status status);
llmgpu_status_name = _fn("llmgpu_status_name", ctypes.c_char_p, c_enum)

# void llmgpu_context_params_init(struct llmgpu_context_params *params);
llmgpu_context_params_init = _fn("llmgpu_context_params_init", None,
                                 _P(llmgpu_context_params))
# enum llmgpu_status llmgpu_devices_list(const struct llmgpu_context_params *params,
#                                        struct llmgpu_device_info *infos, uint32_t *count_inout);
llmgpu_devices_list = _fn("llmgpu_devices_list", c_enum, _P(llmgpu_context_params),
                          _P(llmgpu_device_info), _P(ctypes.c_uint32))
# enum llmgpu_status llmgpu_context_create(const struct llmgpu_context_params *params,
#                                          struct llmgpu_context **out);
llmgpu_context_create = _fn("llmgpu_context_create", c_enum, _P(llmgpu_context_params),
                            _P(c_ctx_p))
# void llmgpu_context_free(struct llmgpu_context *ctx);
llmgpu_context_free = _fn("llmgpu_context_free", None, c_ctx_p)
# enum llmgpu_status llmgpu_context_device_info(const struct llmgpu_context *ctx,
#                                               struct llmgpu_device_info *info);
llmgpu_context_device_info = _fn("llmgpu_context_device_info", c_enum, c_ctx_p,
                                 _P(llmgpu_device_info))
# uint64_t llmgpu_context_validation_errors(const struct llmgpu_context *ctx);
llmgpu_context_validation_errors = _fn("llmgpu_context_validation_errors", ctypes.c_uint64,
                                       c_ctx_p)
# enum llmgpu_status llmgpu_context_measure_bandwidth(struct llmgpu_context *ctx,
#                                                     double *bytes_per_second);
llmgpu_context_measure_bandwidth = _fn("llmgpu_context_measure_bandwidth", c_enum, c_ctx_p,
                                       _P(ctypes.c_double))

# void llmgpu_model_params_init(struct llmgpu_model_params *params);
llmgpu_model_params_init = _fn("llmgpu_model_params_init", None, _P(llmgpu_model_params))
# enum llmgpu_status llmgpu_model_load(struct llmgpu_context *ctx, const char *path,
#                                      const struct llmgpu_model_params *params,
#                                      struct llmgpu_model **out);
llmgpu_model_load = _fn("llmgpu_model_load", c_enum, c_ctx_p, ctypes.c_char_p,
                        _P(llmgpu_model_params), _P(c_model_p))
# void llmgpu_model_free(struct llmgpu_model *model);
llmgpu_model_free = _fn("llmgpu_model_free", None, c_model_p)
# enum llmgpu_status llmgpu_model_info(const struct llmgpu_model *model,
#                                      struct llmgpu_model_info *info);
llmgpu_model_info_fn = _fn("llmgpu_model_info", c_enum, c_model_p, _P(llmgpu_model_info))

# enum llmgpu_status llmgpu_tokenize(const struct llmgpu_model *model, const char *text,
#                                    size_t len, uint32_t flags, int32_t *tokens,
#                                    size_t *n_inout);
llmgpu_tokenize = _fn("llmgpu_tokenize", c_enum, c_model_p, ctypes.c_char_p, ctypes.c_size_t,
                      ctypes.c_uint32, _P(ctypes.c_int32), _P(ctypes.c_size_t))
# enum llmgpu_status llmgpu_detokenize(const struct llmgpu_model *model,
#                                      const int32_t *tokens, size_t n, uint32_t flags,
#                                      char *text, size_t *len_inout);
llmgpu_detokenize = _fn("llmgpu_detokenize", c_enum, c_model_p, _P(ctypes.c_int32),
                        ctypes.c_size_t, ctypes.c_uint32, ctypes.c_char_p, _P(ctypes.c_size_t))
# enum llmgpu_status llmgpu_token_to_piece(const struct llmgpu_model *model, int32_t token,
#                                          char *piece, size_t *len_inout);
llmgpu_token_to_piece = _fn("llmgpu_token_to_piece", c_enum, c_model_p, ctypes.c_int32,
                            ctypes.c_char_p, _P(ctypes.c_size_t))
# uint32_t llmgpu_model_n_tokens(const struct llmgpu_model *model);
llmgpu_model_n_tokens = _fn("llmgpu_model_n_tokens", ctypes.c_uint32, c_model_p)
# int32_t llmgpu_model_token_bos(const struct llmgpu_model *model);
llmgpu_model_token_bos = _fn("llmgpu_model_token_bos", ctypes.c_int32, c_model_p)
# int32_t llmgpu_model_token_eos(const struct llmgpu_model *model);
llmgpu_model_token_eos = _fn("llmgpu_model_token_eos", ctypes.c_int32, c_model_p)
# int llmgpu_model_token_is_eog(const struct llmgpu_model *model, int32_t token);
llmgpu_model_token_is_eog = _fn("llmgpu_model_token_is_eog", ctypes.c_int, c_model_p,
                                ctypes.c_int32)
# enum llmgpu_status llmgpu_chat_apply_template(const struct llmgpu_model *model,
#     const struct llmgpu_chat_message *msgs, size_t n_msgs, uint32_t flags, char *text,
#     size_t *len_inout);
llmgpu_chat_apply_template = _fn("llmgpu_chat_apply_template", c_enum, c_model_p,
                                 _P(llmgpu_chat_message), ctypes.c_size_t, ctypes.c_uint32,
                                 ctypes.c_char_p, _P(ctypes.c_size_t))

# void llmgpu_session_params_init(struct llmgpu_session_params *params);
llmgpu_session_params_init = _fn("llmgpu_session_params_init", None,
                                 _P(llmgpu_session_params))
# enum llmgpu_status llmgpu_session_create(struct llmgpu_model *model,
#                                          const struct llmgpu_session_params *params,
#                                          struct llmgpu_session **out);
llmgpu_session_create = _fn("llmgpu_session_create", c_enum, c_model_p,
                            _P(llmgpu_session_params), _P(c_session_p))
# void llmgpu_session_free(struct llmgpu_session *s);
llmgpu_session_free = _fn("llmgpu_session_free", None, c_session_p)
# enum llmgpu_status llmgpu_session_reset(struct llmgpu_session *s);
llmgpu_session_reset = _fn("llmgpu_session_reset", c_enum, c_session_p)
# uint32_t llmgpu_session_position(const struct llmgpu_session *s);
llmgpu_session_position = _fn("llmgpu_session_position", ctypes.c_uint32, c_session_p)
# uint32_t llmgpu_session_n_ctx(const struct llmgpu_session *s);
llmgpu_session_n_ctx = _fn("llmgpu_session_n_ctx", ctypes.c_uint32, c_session_p)
# enum llmgpu_status llmgpu_session_prefill(struct llmgpu_session *s, const int32_t *tokens,
#                                           size_t n);
llmgpu_session_prefill = _fn("llmgpu_session_prefill", c_enum, c_session_p,
                             _P(ctypes.c_int32), ctypes.c_size_t)
# enum llmgpu_status llmgpu_session_decode(struct llmgpu_session *s, int32_t token);
llmgpu_session_decode = _fn("llmgpu_session_decode", c_enum, c_session_p, ctypes.c_int32)
# enum llmgpu_status llmgpu_session_logits(struct llmgpu_session *s, float *logits,
#                                          size_t *n_inout);
llmgpu_session_logits = _fn("llmgpu_session_logits", c_enum, c_session_p,
                            _P(ctypes.c_float), _P(ctypes.c_size_t))
# enum llmgpu_status llmgpu_session_sample_greedy(struct llmgpu_session *s, int32_t *token);
llmgpu_session_sample_greedy = _fn("llmgpu_session_sample_greedy", c_enum, c_session_p,
                                   _P(ctypes.c_int32))

# enum llmgpu_status llmgpu_session_profile(const struct llmgpu_session *s,
#                                           struct llmgpu_profile_entry *entries,
#                                           uint32_t *n_inout);
llmgpu_session_profile = _fn("llmgpu_session_profile", c_enum, c_session_p,
                             _P(llmgpu_profile_entry), _P(ctypes.c_uint32))
# enum llmgpu_status llmgpu_session_profile_reset(struct llmgpu_session *s);
llmgpu_session_profile_reset = _fn("llmgpu_session_profile_reset", c_enum, c_session_p)
# void llmgpu_quantize_params_init(struct llmgpu_quantize_params *params);
llmgpu_quantize_params_init = _fn("llmgpu_quantize_params_init", None, _P(llmgpu_quantize_params))
# enum llmgpu_status llmgpu_quantize(const char *in_dir, const char *out_path,
#                                    const struct llmgpu_quantize_params *params);
llmgpu_quantize = _fn("llmgpu_quantize", c_enum, ctypes.c_char_p, ctypes.c_char_p,
                      _P(llmgpu_quantize_params))
# void llmgpu_sampler_params_init(struct llmgpu_sampler_params *params);
llmgpu_sampler_params_init = _fn("llmgpu_sampler_params_init", None, _P(llmgpu_sampler_params))
# enum llmgpu_status llmgpu_session_sample(struct llmgpu_session *s,
#                                          const struct llmgpu_sampler_params *params,
#                                          int32_t *token);
llmgpu_session_sample = _fn("llmgpu_session_sample", c_enum, c_session_p,
                            _P(llmgpu_sampler_params), _P(ctypes.c_int32))

# void llmgpu_generate_params_init(struct llmgpu_generate_params *params);
llmgpu_generate_params_init = _fn("llmgpu_generate_params_init", None,
                                  _P(llmgpu_generate_params))
# enum llmgpu_status llmgpu_generate(struct llmgpu_session *s, const int32_t *prompt,
#                                    size_t n_prompt, const struct llmgpu_generate_params *params,
#                                    struct llmgpu_generate_result *result);
llmgpu_generate = _fn("llmgpu_generate", c_enum, c_session_p, _P(ctypes.c_int32),
                      ctypes.c_size_t, _P(llmgpu_generate_params), _P(llmgpu_generate_result))
# enum llmgpu_status llmgpu_session_truncate(struct llmgpu_session *s, uint32_t position);
llmgpu_session_truncate = _fn("llmgpu_session_truncate", c_enum, c_session_p, ctypes.c_uint32)

# enum llmgpu_status llmgpu_session_save(struct llmgpu_session *s, const char *path);
llmgpu_session_save = _fn("llmgpu_session_save", c_enum, c_session_p, ctypes.c_char_p)
# enum llmgpu_status llmgpu_session_load(struct llmgpu_session *s, const char *path);
llmgpu_session_load = _fn("llmgpu_session_load", c_enum, c_session_p, ctypes.c_char_p)

# enum llmgpu_status llmgpu_session_memory(const struct llmgpu_model *model,
#                                          const struct llmgpu_session_params *params,
#                                          struct llmgpu_session_memory *out);
llmgpu_session_memory_fn = _fn("llmgpu_session_memory", c_enum, c_model_p,
                               _P(llmgpu_session_params), _P(llmgpu_session_memory))
# enum llmgpu_status llmgpu_context_stats(const struct llmgpu_context *ctx,
#                                         struct llmgpu_context_stats *out);
llmgpu_context_stats_fn = _fn("llmgpu_context_stats", c_enum, c_ctx_p, _P(llmgpu_context_stats))

_built_major = llmgpu_version_number() // 10000
if _built_major != VERSION_MAJOR:
    raise ImportError("libllmgpu major version %d, these bindings need %d"
                      % (_built_major, VERSION_MAJOR))
