#version 450
// bandwidth.comp - streaming read used by llmgpu_context_measure_bandwidth:
// each invocation sums a strided run of uvec4 loads and writes one word so the
// loads cannot be removed.
// Bindings: 0 src uvec4[n] readonly; 1 dst uint[n_invocations] writeonly.
// Push constants: uint n (uvec4 count), uint stride (total invocations).
// Spec constants: 0 workgroup size.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform Push { uint n; uint stride; } pc;

void main() {
    uint id = gl_GlobalInvocationID.x;
    uvec4 acc = uvec4(0);
    for (uint i = id; i < pc.n; i += pc.stride)
        acc ^= src[i];
    dst[id] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
