"""The Pythonic layer over _capi: Context, Model, Session, errors, devices()."""

import array
import collections
import ctypes
import dataclasses
import logging
import math
import os
import random
import threading
import weakref

from . import _capi as C
from ._capi import (DeviceFeature, DeviceType, KvType, LogLevel, Status, WeightType)

logger = logging.getLogger("llmgpu")
# A library stays quiet unless the application configures logging.
logger.addHandler(logging.NullHandler())

_PY_LEVELS = {LogLevel.DEBUG: logging.DEBUG, LogLevel.INFO: logging.INFO,
              LogLevel.WARN: logging.WARNING, LogLevel.ERROR: logging.ERROR}


def _status_name(status):
    return C.llmgpu_status_name(int(status)).decode("ascii", "replace")


def _status_string(status):
    return C.llmgpu_status_string(int(status)).decode("utf-8", "replace")


def _enum(cls, value):
    """value as a member of cls, or the plain int for values this version does not know."""
    try:
        return cls(value)
    except ValueError:
        return value


class LlmgpuError(Exception):
    """A libllmgpu call failed.

    Attributes:
        status:    the enum llmgpu_status value (a Status member when known).
        name:      the status name without prefix, e.g. ``"ERR_CONTEXT_FULL"``.
        message:   the detail the library logged at ERROR level during the call
                   (the last such message), else the status description.
        log:       every ERROR message logged during the call, oldest first.
        operation: the C function that failed, e.g. ``"llmgpu_model_load"``.
    """

    def __init__(self, status, name, message, log=(), operation=None):
        super().__init__(status, name, message, tuple(log), operation)
        self.status = _enum(Status, status)
        self.name = name
        self.message = message
        self.log = tuple(log)
        self.operation = operation

    def __str__(self):
        where = "%s: " % self.operation if self.operation else ""
        return "%s%s: %s" % (where, self.name, self.message)


class _LogSink:
    """The log callback of one context.

    Forwards messages at or above ``level`` to the ``llmgpu`` logging.Logger and
    keeps the ERROR messages of each thread since that thread's last ``begin()``
    (the library logs on the thread that made the call), so that a failed call's
    exception carries what the library said about it.
    """

    def __init__(self, level):
        self.level = int(level)
        self._tls = threading.local()
        # Kept alive as long as the sink: C holds a pointer to this thunk.
        self.cfunc = C.LOG_FN(self._callback)

    def c_level(self):
        # Errors are always needed for exceptions, even when the user wants silence.
        return min(self.level, int(LogLevel.ERROR))

    def _callback(self, level, message, user):
        try:
            text = message.decode("utf-8", "replace") if message else ""
            if level >= LogLevel.ERROR:
                errs = getattr(self._tls, "errors", None)
                if errs is None:
                    errs = self._tls.errors = collections.deque(maxlen=32)
                errs.append(text)
            if level >= self.level and self.level < LogLevel.NONE:
                logger.log(_PY_LEVELS.get(level, logging.ERROR), "%s", text)
        except BaseException:  # never let an exception cross into C
            pass

    def begin(self):
        self._tls.errors = collections.deque(maxlen=32)

    def take(self):
        errs = getattr(self._tls, "errors", None)
        self._tls.errors = None
        return list(errs or ())


def _raise(status, operation, log=()):
    log = list(log)
    message = log[-1] if log else _status_string(status)
    raise LlmgpuError(status, _status_name(status), message, log, operation)


def _call(sink, fn, *args):
    """Call fn(*args); on a non-OK status raise LlmgpuError with the logged detail."""
    if sink is not None:
        sink.begin()
    status = fn(*args)
    if status != Status.OK:
        _raise(status, fn.__name__, sink.take() if sink is not None else ())
    return status


def _parse_level(level):
    if isinstance(level, str):
        return LogLevel[level.upper().replace("WARNING", "WARN")]
    return LogLevel(level)


# ---- Devices -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """One Vulkan device (struct llmgpu_device_info)."""
    index: int
    name: str
    type: DeviceType
    vendor_id: int
    device_id: int
    api_version: int
    subgroup_size: int
    features: DeviceFeature
    device_local_bytes: int
    max_storage_buffer_range: int
    max_allocation_size: int
    max_shared_memory: int
    max_workgroup_invocations: int
    driver_name: str

    @classmethod
    def _from_c(cls, ci):
        return cls(index=ci.index, name=ci.name.decode("utf-8", "replace"),
                   type=_enum(DeviceType, ci.type), vendor_id=ci.vendor_id,
                   device_id=ci.device_id, api_version=ci.api_version,
                   subgroup_size=ci.subgroup_size, features=DeviceFeature(ci.features),
                   device_local_bytes=ci.device_local_bytes,
                   max_storage_buffer_range=ci.max_storage_buffer_range,
                   max_allocation_size=ci.max_allocation_size,
                   max_shared_memory=ci.max_shared_memory,
                   max_workgroup_invocations=ci.max_workgroup_invocations,
                   driver_name=ci.driver_name.decode("utf-8", "replace"))


def devices(log_level=LogLevel.WARN):
    """The Vulkan devices in the driver's order, as a list of DeviceInfo.

    ``DeviceInfo.index`` is what ``Context(device=...)`` takes.
    Raises LlmgpuError (``ERR_NO_DEVICE``) when there is no Vulkan driver.
    """
    sink = _LogSink(_parse_level(log_level))
    params = C.llmgpu_context_params()
    C.llmgpu_context_params_init(ctypes.byref(params))
    params.log_level = sink.c_level()
    params.log_fn = sink.cfunc
    count = ctypes.c_uint32(0)
    _call(sink, C.llmgpu_devices_list, ctypes.byref(params), None, ctypes.byref(count))
    while True:
        infos = (C.llmgpu_device_info * max(count.value, 1))()
        for ci in infos:
            ci.struct_size = ctypes.sizeof(C.llmgpu_device_info)
        sink.begin()
        st = C.llmgpu_devices_list(ctypes.byref(params), infos, ctypes.byref(count))
        if st == Status.ERR_BUFFER_TOO_SMALL:  # a device appeared in between
            continue
        if st != Status.OK:
            _raise(st, "llmgpu_devices_list", sink.take())
        return [DeviceInfo._from_c(infos[i]) for i in range(count.value)]


# ---- Objects -------------------------------------------------------------------

class _Handle:
    """Common close()/with/__del__ logic. Subclasses set _free and _ptr."""
    _ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self):
        return not self._ptr

    def _live(self):
        if not self._ptr:
            raise ValueError("%s is closed" % type(self).__name__)
        return self._ptr


class Context(_Handle):
    """One Vulkan device with its queue, kernel cache and log sink.

    Args:
        device:    None for the best device, an index from ``devices()``, a
                   DeviceInfo, or a string that must occur in the device's name.
        cache_dir: kernel cache directory (default ``$XDG_CACHE_HOME/llmgpu``).
        log_level: LogLevel (or "debug"/"info"/"warn"/"error"/"none"): messages at
                   or above it go to the ``llmgpu`` logging.Logger. ERROR messages
                   are always captured for exceptions.
        validation, no_disk_cache, profile: the LLMGPU_CONTEXT_FLAG_* flags.
        device_memory_limit, max_binding_size: simulated limits (0: the device's).

    Closing a context closes the models (and their sessions) created on it.
    """

    def __init__(self, device=None, cache_dir=None, log_level=LogLevel.WARN, *,
                 validation=False, no_disk_cache=False, profile=False,
                 device_memory_limit=0, max_binding_size=0):
        self._children = weakref.WeakSet()
        self._sink = _LogSink(_parse_level(log_level))
        params = C.llmgpu_context_params()
        C.llmgpu_context_params_init(ctypes.byref(params))
        params.flags = ((C.ContextFlag.VALIDATION if validation else 0)
                        | (C.ContextFlag.NO_DISK_CACHE if no_disk_cache else 0)
                        | (C.ContextFlag.PROFILE if profile else 0))
        if isinstance(device, DeviceInfo):
            device = device.index
        elif isinstance(device, str):
            matches = [d for d in devices() if device in d.name]
            if not matches:
                raise ValueError("no Vulkan device named like %r" % device)
            device = matches[0].index
        params.device_index = -1 if device is None else int(device)
        params.log_level = self._sink.c_level()
        params.log_fn = self._sink.cfunc
        params.cache_dir = os.fsencode(cache_dir) if cache_dir is not None else None
        params.device_memory_limit = device_memory_limit
        params.max_binding_size = max_binding_size
        out = C.c_ctx_p()
        _call(self._sink, C.llmgpu_context_create, ctypes.byref(params), ctypes.byref(out))
        self._ptr = out.value
        self._free = C.llmgpu_context_free

    def close(self):
        """Free the context after closing its models; further use raises ValueError."""
        for child in list(getattr(self, "_children", ())):
            child.close()
        if self._ptr:
            ptr, self._ptr = self._ptr, None
            self._free(ptr)

    @property
    def device_info(self):
        """The DeviceInfo of the context's device."""
        ci = C.llmgpu_device_info()
        ci.struct_size = ctypes.sizeof(ci)
        _call(self._sink, C.llmgpu_context_device_info, self._live(), ctypes.byref(ci))
        return DeviceInfo._from_c(ci)

    @property
    def validation_errors(self):
        """Validation-layer errors seen so far (0 without validation=True)."""
        return C.llmgpu_context_validation_errors(self._live())

    def measure_bandwidth(self):
        """The device's streaming-read bandwidth in bytes per second."""
        bw = ctypes.c_double()
        _call(self._sink, C.llmgpu_context_measure_bandwidth, self._live(), ctypes.byref(bw))
        return bw.value

    def __repr__(self):
        return "<llmgpu.Context %s>" % ("closed" if self.closed else self.device_info.name)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Hyper-parameters and sizes of a loaded model (struct llmgpu_model_info)."""
    architecture: str
    n_params: int
    weight_bytes: int
    weight_type: WeightType
    n_vocab: int
    n_ctx_train: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_kv_head: int
    head_dim: int
    sliding_window: int
    rope_theta: float
    rms_norm_eps: float


def _parse_type(cls, value):
    """A WeightType or KvType from None (DEFAULT), a name ("q8_0") or a number."""
    if value is None:
        return cls.DEFAULT
    if isinstance(value, str):
        return cls[value.upper()]
    return cls(value)


def _int32_array(ids):
    ids = list(ids)
    return (ctypes.c_int32 * max(len(ids), 1))(*ids), len(ids)


class Model(_Handle):
    """Weights on the GPU, hyper-parameters and tokenizer of one model directory.

    Args:
        path:        a Hugging Face model directory (config.json, tokenizer.json,
                     model.safetensors ...).
        context:     the Context to load on; None creates one that the model owns
                     (and closes with it).
        weight_type: None/"default" (f16), "f32", "f16", "bf16", ... or a WeightType.
        vocab_only:  load only config and tokenizer (tokenizing; no sessions).
        progress:    optional callable(bytes_done, bytes_total); return True to
                     abort the load (LlmgpuError ERR_ABORTED). An exception it
                     raises aborts the load and is re-raised.

    The model keeps its context alive; closing the model closes its sessions.
    """

    def __init__(self, path, context=None, weight_type=None, vocab_only=False,
                 progress=None):
        self._children = weakref.WeakSet()
        self._info = None
        self._owns_context = context is None
        self._context = Context() if context is None else context
        ctx_ptr = self._context._live()
        self.path = os.fspath(path)
        params = C.llmgpu_model_params()
        C.llmgpu_model_params_init(ctypes.byref(params))
        params.flags = C.ModelFlag.VOCAB_ONLY if vocab_only else 0
        params.weight_type = _parse_type(WeightType, weight_type)
        failure = []
        if progress is not None:
            def on_progress(done, total, user):
                try:
                    return 1 if progress(done, total) else 0
                except BaseException as e:  # abort and re-raise after the call
                    failure.append(e)
                    return 1
            params.progress_fn = C.PROGRESS_FN(on_progress)  # alive during the call
        out = C.c_model_p()
        try:
            _call(self._context._sink, C.llmgpu_model_load, ctx_ptr, os.fsencode(self.path),
                  ctypes.byref(params), ctypes.byref(out))
        except LlmgpuError:
            if self._owns_context:
                self._owns_context = False
                self._context.close()
            if failure:
                raise failure[0]
            raise
        self._ptr = out.value
        self._free = C.llmgpu_model_free
        self._context._children.add(self)

    def close(self):
        """Free the model after closing its sessions (and its own context, if any)."""
        for child in list(getattr(self, "_children", ())):
            child.close()
        if self._ptr:
            ptr, self._ptr = self._ptr, None
            self._free(ptr)
        if getattr(self, "_owns_context", False):
            self._owns_context = False
            self._context.close()

    @property
    def context(self):
        return self._context

    @property
    def _sink(self):
        return self._context._sink

    @property
    def info(self):
        """ModelInfo (architecture, sizes, dims, rope_theta, ...)."""
        if self._info is None:
            ci = C.llmgpu_model_info()
            ci.struct_size = ctypes.sizeof(ci)
            _call(self._sink, C.llmgpu_model_info_fn, self._live(), ctypes.byref(ci))
            self._info = ModelInfo(
                architecture=ci.architecture.decode("utf-8", "replace"),
                n_params=ci.n_params, weight_bytes=ci.weight_bytes,
                weight_type=_enum(WeightType, ci.weight_type), n_vocab=ci.n_vocab,
                n_ctx_train=ci.n_ctx_train, n_embd=ci.n_embd, n_ff=ci.n_ff,
                n_layer=ci.n_layer, n_head=ci.n_head, n_kv_head=ci.n_kv_head,
                head_dim=ci.head_dim, sliding_window=ci.sliding_window,
                rope_theta=ci.rope_theta, rms_norm_eps=ci.rms_norm_eps)
        return self._info

    @property
    def bos(self):
        """BOS token id, or None."""
        t = C.llmgpu_model_token_bos(self._live())
        return None if t < 0 else t

    @property
    def eos(self):
        """The main EOS token id, or None."""
        t = C.llmgpu_model_token_eos(self._live())
        return None if t < 0 else t

    @property
    def n_tokens(self):
        """Vocabulary size of the tokenizer (may be less than info.n_vocab)."""
        return C.llmgpu_model_n_tokens(self._live())

    def is_eog(self, token):
        """Whether token ends generation (EOS ids, end-of-turn tokens)."""
        return bool(C.llmgpu_model_token_is_eog(self._live(), token))

    def tokenize(self, text, add_special=True, parse_special=True):
        """Token ids of text (str, or UTF-8 bytes) as a list of int.

        add_special adds BOS/EOS as the tokenizer says; parse_special turns
        special-token strings in the text into those tokens. Both True equals
        transformers' ``AutoTokenizer(text).input_ids``.
        """
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        flags = ((C.TokenizeFlag.ADD_SPECIAL if add_special else 0)
                 | (C.TokenizeFlag.PARSE_SPECIAL if parse_special else 0))
        ptr = self._live()
        cap = len(data) + 8
        while True:
            buf = (ctypes.c_int32 * cap)()
            n = ctypes.c_size_t(cap)
            self._sink.begin()
            st = C.llmgpu_tokenize(ptr, data, len(data), flags, buf, ctypes.byref(n))
            if st == Status.ERR_BUFFER_TOO_SMALL and n.value > cap:
                cap = n.value
                continue
            if st != Status.OK:
                _raise(st, "llmgpu_tokenize", self._sink.take())
            return buf[:n.value]

    def detokenize_bytes(self, ids, skip_special=False):
        """UTF-8 bytes of ids, as transformers' tokenizer.decode() (may end mid-character)."""
        arr, n = _int32_array(ids)
        flags = C.DetokenizeFlag.SKIP_SPECIAL if skip_special else 0
        ptr = self._live()
        cap = 16 * n + 16
        while True:
            buf = ctypes.create_string_buffer(cap)
            length = ctypes.c_size_t(cap)
            self._sink.begin()
            st = C.llmgpu_detokenize(ptr, arr, n, flags, buf, ctypes.byref(length))
            if st == Status.ERR_BUFFER_TOO_SMALL and length.value > cap:
                cap = length.value
                continue
            if st != Status.OK:
                _raise(st, "llmgpu_detokenize", self._sink.take())
            return buf.raw[:length.value]

    def detokenize(self, ids, skip_special=False):
        """Text of ids, as transformers' tokenizer.decode(ids, skip_special_tokens=...)."""
        return self.detokenize_bytes(ids, skip_special).decode("utf-8", "replace")

    def token_to_piece(self, token):
        """The bytes token contributes when appended to a text (may be a partial character)."""
        ptr = self._live()
        cap = 64
        while True:
            buf = ctypes.create_string_buffer(cap)
            length = ctypes.c_size_t(cap)
            self._sink.begin()
            st = C.llmgpu_token_to_piece(ptr, token, buf, ctypes.byref(length))
            if st == Status.ERR_BUFFER_TOO_SMALL and length.value > cap:
                cap = length.value
                continue
            if st != Status.OK:
                _raise(st, "llmgpu_token_to_piece", self._sink.take())
            return buf.raw[:length.value]

    def apply_chat_template(self, messages, add_generation_prompt=True):
        """Render a conversation with the model's chat template, as transformers'
        ``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)``.

        messages: OpenAI-style dicts with "role" and "content" (str or None; other keys
        are not passed to the template). Raises LlmgpuError: ERR_UNSUPPORTED when the
        model has no template or it uses a construct the renderer lacks,
        ERR_INVALID_ARGUMENT when the template raises (raise_exception: its message is
        in the error's log).
        """
        msgs = list(messages)
        arr = (C.llmgpu_chat_message * max(len(msgs), 1))()
        for i, m in enumerate(msgs):
            content = m.get("content")
            arr[i].role = str(m["role"]).encode("utf-8")
            arr[i].content = None if content is None else str(content).encode("utf-8")
        flags = C.ChatFlag.ADD_GENERATION_PROMPT if add_generation_prompt else 0
        ptr = self._live()
        cap = sum(len(arr[i].content or b"") + len(arr[i].role) for i in range(len(msgs))) + 4096
        while True:
            buf = ctypes.create_string_buffer(cap)
            length = ctypes.c_size_t(cap)
            self._sink.begin()
            st = C.llmgpu_chat_apply_template(ptr, arr, len(msgs), flags, buf, ctypes.byref(length))
            if st == Status.ERR_BUFFER_TOO_SMALL and length.value > cap:
                cap = length.value
                continue
            if st != Status.OK:
                _raise(st, "llmgpu_chat_apply_template", self._sink.take())
            return buf.raw[:length.value].decode("utf-8", "replace")

    def session(self, n_ctx=None, n_batch=None, kv_type=None):
        """A new Session (KV cache) of this model; n_ctx defaults to min(model's, 4096),
        kv_type to f16 ("q8_0" or KvType.Q8_0: an 8-bit cache, about half the memory)."""
        return Session(self, n_ctx=n_ctx, n_batch=n_batch, kv_type=kv_type)

    def __repr__(self):
        return "<llmgpu.Model %r%s>" % (self.path, " closed" if self.closed else "")


ProfileEntry = collections.namedtuple("ProfileEntry", "name ns count bytes barriers")
ProfileEntry.__doc__ = ("GPU nanoseconds, run count, bytes read (weights, KV cache) and "
                        "pipeline barriers of one forward-pass stage.")

_FFFD = "\ufffd".encode("utf-8")
_DECODE_CONTEXT = 8  # tokens before the generated ones that stream() decodes with them


def _complete_utf8(data):
    """data without trailing U+FFFD (an incomplete character that may still complete)."""
    while data.endswith(_FFFD):
        data = data[:-len(_FFFD)]
    return data


class Session(_Handle):
    """KV cache, position and logits of one conversation; one thread at a time.

    The session keeps its model alive. Tokens run through the model in order;
    ``position`` counts them. After ``generate``/``stream`` the last generated
    token is held as *pending* and evaluated at the start of the next call that
    needs it (prefill, decode, logits, sampling), so a finished generation costs
    no extra forward pass and a following ``generate`` continues the conversation.
    """

    def __init__(self, model, n_ctx=None, n_batch=None, kv_type=None):
        self._model = model
        self._pending = None
        self._tokens = []  # every id in the session, the pending one included
        self._n_vocab = None
        self.last_tokens = []
        self.stop_reason = None
        params = C.llmgpu_session_params()
        C.llmgpu_session_params_init(ctypes.byref(params))
        if n_ctx is not None:
            params.n_ctx = n_ctx
        if n_batch is not None:
            params.n_batch = n_batch
        params.kv_type = _parse_type(KvType, kv_type)
        out = C.c_session_p()
        _call(model._sink, C.llmgpu_session_create, model._live(), ctypes.byref(params),
              ctypes.byref(out))
        self._ptr = out.value
        self._free = C.llmgpu_session_free
        model._children.add(self)

    def close(self):
        """Free the session (its KV cache); further use raises ValueError."""
        if self._ptr:
            ptr, self._ptr = self._ptr, None
            self._free(ptr)

    @property
    def model(self):
        return self._model

    @property
    def _sink(self):
        return self._model._sink

    @property
    def position(self):
        """Number of tokens in the session (in the KV cache, plus a pending one)."""
        return C.llmgpu_session_position(self._live()) + (self._pending is not None)

    @property
    def tokens(self):
        """The token ids in the session, oldest first (a copy)."""
        return list(self._tokens)

    @property
    def n_ctx(self):
        """The session's context length."""
        return C.llmgpu_session_n_ctx(self._live())

    def reset(self):
        """Forget all tokens; the next prefill starts at position 0."""
        _call(self._sink, C.llmgpu_session_reset, self._live())
        self._pending = None
        self._tokens = []

    def prefill(self, ids):
        """Run token ids through the model at the next positions.

        Raises LlmgpuError ``ERR_CONTEXT_FULL`` when they do not fit: then
        nothing was run and the session is unchanged.
        """
        ids = [int(i) for i in ids]
        run = ids if self._pending is None else [self._pending] + ids
        if not run:
            return
        arr, n = _int32_array(run)
        _call(self._sink, C.llmgpu_session_prefill, self._live(), arr, n)
        self._pending = None
        self._tokens.extend(ids)

    def decode(self, token):
        """Run one token at the next position (the decode path)."""
        if self._pending is not None:
            self.prefill([token])
        else:
            _call(self._sink, C.llmgpu_session_decode, self._live(), token)
            self._tokens.append(int(token))

    def _flush(self):
        if self._pending is not None:
            self.prefill(())

    def logits(self):
        """The logits of the last evaluated token as array.array('f') of n_vocab floats."""
        self._flush()
        ptr = self._live()
        if self._n_vocab is None:
            n = ctypes.c_size_t(0)
            _call(self._sink, C.llmgpu_session_logits, ptr, None, ctypes.byref(n))
            self._n_vocab = n.value
        out = array.array("f", bytes(4 * self._n_vocab))
        n = ctypes.c_size_t(self._n_vocab)
        buf = (ctypes.c_float * self._n_vocab).from_buffer(out)
        _call(self._sink, C.llmgpu_session_logits, ptr, buf, ctypes.byref(n))
        del buf  # release the export so the array may be resized by the caller
        return out

    def sample_greedy(self):
        """The most likely next token (argmax on the GPU; lowest id on ties)."""
        self._flush()
        tok = ctypes.c_int32()
        _call(self._sink, C.llmgpu_session_sample_greedy, self._live(), ctypes.byref(tok))
        return tok.value

    def sample(self, temperature=0.0, rng=None):
        """The next token: greedy when temperature <= 0, else drawn from
        softmax(logits / temperature) with rng (a random.Random).

        For now temperature sampling reads the logits back and samples on the
        host, as the CLI does; it will switch to the GPU sampler
        (llmgpu_session_sample) once the library has it, keeping this signature.
        """
        if not temperature or temperature <= 0:
            return self.sample_greedy()
        rng = rng if rng is not None else random.Random()
        logits = self.logits()
        top = max(logits)
        weights = [math.exp((x - top) / temperature) for x in logits]
        return rng.choices(range(len(weights)), weights=weights)[0]

    def profile(self):
        """GPU time per stage of the forward pass since the session was created or
        profile_reset(), as a list of ProfileEntry(name, ns, count, bytes, barriers).

        Needs a Context(profile=True) (else LlmgpuError ERR_UNSUPPORTED) and a device
        with timestamps on its compute queue.
        """
        ptr = self._live()
        n = ctypes.c_uint32(0)
        _call(self._sink, C.llmgpu_session_profile, ptr, None, ctypes.byref(n))
        while True:
            entries = (C.llmgpu_profile_entry * max(n.value, 1))()
            self._sink.begin()
            st = C.llmgpu_session_profile(ptr, entries, ctypes.byref(n))
            if st == Status.ERR_BUFFER_TOO_SMALL:
                continue
            if st != Status.OK:
                _raise(st, "llmgpu_session_profile", self._sink.take())
            return [ProfileEntry((e.name or b"").decode("utf-8", "replace"), e.ns, e.count,
                                 e.bytes, e.barriers)
                    for e in entries[:n.value]]

    def profile_reset(self):
        """Zero the per-stage GPU times of profile()."""
        _call(self._sink, C.llmgpu_session_profile_reset, self._live())

    def _prompt_ids(self, prompt, add_special):
        if isinstance(prompt, (str, bytes)):
            if add_special is None:
                add_special = self.position == 0
            return self._model.tokenize(prompt, add_special=add_special)
        return list(prompt)

    def stream(self, prompt, max_tokens=64, temperature=0.0, seed=None, stop=None,
               add_special=None):
        """Generate from prompt, yielding the new text piece by piece.

        prompt: text (tokenized with BOS when the session is empty, unless
        add_special says otherwise) or a list of token ids; it is appended after
        what the session holds. Each piece is complete UTF-8: the text of
        prompt+generated ids is decoded and its new suffix yielded, holding back
        a trailing U+FFFD that may still become a character and any tail that
        could start a stop string. Generation ends at an end-of-generation token
        (not added to the session), at max_tokens, or at the first of the stop
        strings (str or list of str; the stop string and what follows are not
        yielded). Afterwards ``last_tokens`` holds the generated ids and
        ``stop_reason`` is "eos", "stop" or "length".

        temperature 0 is greedy (on the GPU); otherwise see sample(); seed makes
        sampling reproducible. Raises LlmgpuError (e.g. ERR_CONTEXT_FULL when
        the context fills up; the session keeps what fit).
        """
        model = self._model
        stops = [stop] if isinstance(stop, str) else [s for s in (stop or ()) if s]
        rng = random.Random(seed) if temperature and temperature > 0 else None
        ids = self._prompt_ids(prompt, add_special)
        self.last_tokens = []
        self.stop_reason = None
        self.prefill(ids)
        # Decode a few tokens before the new ones as context (leading spaces, partial
        # characters) and strip their bytes, instead of the whole session each step.
        all_ids = self._tokens[-_DECODE_CONTEXT:]
        base = len(model.detokenize_bytes(all_ids, skip_special=True))
        emitted = 0
        text = ""
        for _ in range(max_tokens):
            tok = self.sample(temperature, rng)
            if model.is_eog(tok):
                self.stop_reason = "eos"
                break
            self.last_tokens.append(tok)
            all_ids.append(tok)
            self._pending = tok  # evaluated when the next token is sampled
            self._tokens.append(tok)
            raw = model.detokenize_bytes(all_ids, skip_special=True)[base:]
            text = _complete_utf8(raw).decode("utf-8", "replace")
            cut = _find_stop(text, stops)
            if cut is not None:
                if cut > emitted:
                    yield text[emitted:cut]
                self.stop_reason = "stop"
                return
            safe = len(text) - _stop_prefix_len(text, stops)
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
        else:
            self.stop_reason = "length"
        if self.last_tokens:
            raw = model.detokenize_bytes(all_ids, skip_special=True)[base:]
            text = raw.decode("utf-8", "replace")
        cut = _find_stop(text, stops)
        if cut is not None:
            self.stop_reason = "stop"
            text = text[:cut]
        if len(text) > emitted:
            yield text[emitted:]

    def chat(self, messages, max_tokens=256, temperature=0.0, seed=None, stop=None):
        """Answer a conversation: the assistant's reply to messages (OpenAI-style dicts).

        The conversation is rendered with the model's chat template and the generation
        prompt (Model.apply_chat_template) and tokenized without adding BOS (the template
        has it). When the session already holds a prefix of those tokens (the earlier
        turns of the same conversation), only the rest is prefilled; otherwise the
        session starts over. Generation as in stream(); returns the text.
        """
        ids = self._model.tokenize(self._model.apply_chat_template(messages, True),
                                   add_special=False, parse_special=True)
        held = self._tokens
        if not (held and len(held) < len(ids) and ids[:len(held)] == held):
            self.reset()
            held = []
        return self.generate(ids[len(held):], max_tokens=max_tokens, temperature=temperature,
                             seed=seed, stop=stop)

    def generate(self, prompt, max_tokens=64, temperature=0.0, seed=None, stop=None,
                 add_special=None):
        """Generate from prompt and return the new text; the arguments are stream()'s."""
        return "".join(self.stream(prompt, max_tokens=max_tokens, temperature=temperature,
                                   seed=seed, stop=stop, add_special=add_special))

    def __repr__(self):
        if self.closed:
            return "<llmgpu.Session closed>"
        return "<llmgpu.Session %d/%d>" % (self.position, self.n_ctx)


def _find_stop(text, stops):
    best = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i < best):
            best = i
    return best


def _stop_prefix_len(text, stops):
    """Length of the longest tail of text that is a proper prefix of a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best
