#version 450
// attn_reduce.comp - decode attention, second half of flash decoding: combines the
// per-chunk softmax states of attn_split.comp for each head:
//   M = max_c m_c, L = sum_c l_c exp(m_c - M), o[h, d] = sum_c acc_c[d] exp(m_c - M) / L
// Bindings: 0 part float[NH, n_chunks, HD + 2] readonly; 1 o float[NH HD] writeonly.
// Push constants: uint n_chunks. Defines: HD, WG_SIZE.
// Geometry: grid (NH); invocations over d.
// Reference: tests/ref attention.
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, set = 0, binding = 0) readonly buffer Part { float part[]; };
layout(std430, set = 0, binding = 1) writeonly buffer O { float o[]; };
layout(push_constant) uniform Push { uint n_chunks; } pc;

#define PW (HD + 2)

void main() {
    uint h = gl_WorkGroupID.x;
    uint base = h * pc.n_chunks * PW;
    float M = -1.0 / 0.0;
    for (uint c = 0; c < pc.n_chunks; c++)
        M = max(M, part[base + c * PW + HD]);
    float L = 0.0;
    for (uint c = 0; c < pc.n_chunks; c++) {
        float m = part[base + c * PW + HD];
        if (m > -1.0 / 0.0)
            L += part[base + c * PW + HD + 1] * exp(m - M);
    }
    for (uint d = gl_LocalInvocationID.x; d < HD; d += WG_SIZE) {
        float a = 0.0;
        for (uint c = 0; c < pc.n_chunks; c++) {
            float m = part[base + c * PW + HD];
            if (m > -1.0 / 0.0)
                a += part[base + c * PW + d] * exp(m - M);
        }
        o[h * HD + d] = a / L;
    }
}
