"""Python bindings of libllmgpu (stdlib ctypes only): Llama-family LLMs on any
GPU through Vulkan.

    import llmgpu
    with llmgpu.Model("models/demo") as model:
        with model.session() as s:
            print(s.generate("Once upon a time", max_tokens=32))

The library is loaded as libllmgpu.so.0 (its SONAME); set LLMGPU_LIBRARY to a
path to load another file.
"""

from ._capi import (ChatFlag, ContextFlag, DetokenizeFlag, DeviceFeature, DeviceType, KvType,
                    LogLevel, ModelFlag, Status, TokenizeFlag, WeightType)
from ._api import (Context, DeviceInfo, LlmgpuError, Model, ModelInfo, ProfileEntry, Session,
                   devices)
from . import _capi

__all__ = ["Context", "DeviceInfo", "LlmgpuError", "Model", "ModelInfo", "ProfileEntry", "Session",
           "devices", "version", "Status", "LogLevel", "DeviceType", "WeightType",
           "KvType", "DeviceFeature", "ContextFlag", "ModelFlag", "TokenizeFlag", "DetokenizeFlag",
           "ChatFlag"]


def version():
    """The library's version string, e.g. "0.1.0"."""
    return _capi.llmgpu_version_string().decode("ascii")


__version__ = version()
