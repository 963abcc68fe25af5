#version 450
// rms_norm.comp - y[t, :] = x[t, :] * inversesqrt(mean(x[t, :]^2) + EPS) * w, as
// transformers' LlamaRMSNorm computes it in f32.
// Bindings: 0 x float[n_tok, N] readonly; 1 w float[N] readonly; 2 y float[n_tok, N] writeonly.
// Push constants: uint x_row (first row of x to read), uint y_row (first row of y).
// Defines: N, EPS (float literal), WG_SIZE, USE_SUBGROUP.
// Geometry: grid (n_tok); one workgroup per row.
// Reference: tests/ref rmsnorm.
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint x_row; uint y_row; } pc;

shared float scratch[WG_SIZE];
WG_REDUCE(wg_sum, subgroupAdd, LG_ADD)

void main() {
    uint t = gl_WorkGroupID.x;
    uint xb = (pc.x_row + t) * N, yb = (pc.y_row + t) * N;
    float ss = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < N; i += WG_SIZE)
        ss += x[xb + i] * x[xb + i];
    ss = wg_sum(ss);
    float scale = inversesqrt(ss / float(N) + EPS);
    for (uint i = gl_LocalInvocationID.x; i < N; i += WG_SIZE)
        y[yb + i] = w[i] * (x[xb + i] * scale);
}
