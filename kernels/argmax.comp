#version 450
// argmax.comp - greedy sampling: out = the index of the largest of n logits, the lowest
// index on ties (as torch.argmax returns the first maximum).
// Bindings: 0 logits float[n] readonly; 1 out uint[1] writeonly.
// Push constants: uint n. Defines: WG_SIZE.
// Geometry: grid (1); each invocation scans a strided slice, then a shared-memory reduction.
// Reference: tests/ref argmax.
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, set = 0, binding = 0) readonly buffer L { float logits[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { uint result; };
layout(push_constant) uniform Push { uint n; } pc;

shared float bv[WG_SIZE];
shared uint bi[WG_SIZE];

void main() {
    uint tid = gl_LocalInvocationID.x;
    float best = -1.0 / 0.0;
    uint idx = 0xFFFFFFFFu;
    for (uint i = tid; i < pc.n; i += WG_SIZE) {
        float v = logits[i];
        if (v > best || idx == 0xFFFFFFFFu) {
            best = v;
            idx = i;
        }
    }
    bv[tid] = best;
    bi[tid] = idx;
    barrier();
    for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
        if (tid < s) {
            float v = bv[tid + s];
            uint j = bi[tid + s];
            if (j != 0xFFFFFFFFu && (v > bv[tid] || (v == bv[tid] && j < bi[tid]) ||
                                     bi[tid] == 0xFFFFFFFFu)) {
                bv[tid] = v;
                bi[tid] = j;
            }
        }
        barrier();
    }
    if (tid == 0)
        result = bi[0];
}
