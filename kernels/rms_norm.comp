#version 450
// rms_norm.comp - y[t, :] = x[t, :] * inversesqrt(mean(x[t, :]^2) + EPS) * w, as
// transformers' LlamaRMSNorm computes it in f32.
// Bindings: 0 x float[n_tok, N] readonly; 1 w float[N] readonly; 2 y float[n_tok, N] writeonly.
// Push constants: uint x_row (first row of x to read), uint y_row (first row of y).
// Defines: N, EPS (float literal), WG_SIZE, USE_SUBGROUP; YH (1: also writes y rounded to
//   f16 to binding 3, yh uint[n_tok, N / 2] (two values a uint), which the tensor-core
//   GEMM reads as its x (matmul_cm.comp XF16); rounded as matmul_cm.comp's pack4 would
//   round y, so the GEMM's products do not change).
// Geometry: grid (n_tok); one workgroup per row.
// Reference: tests/ref rmsnorm.
#if YH
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#include "common.glsl"
#if YH && N % 2 != 0
#error "rms_norm.comp: YH needs an even N"
#endif

layout(local_size_x = WG_SIZE) in;
layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
#if YH
layout(std430, set = 0, binding = 3) writeonly buffer YH16 { uint yh[]; };
#endif
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
#if YH
    for (uint j = gl_LocalInvocationID.x; j < N / 2; j += WG_SIZE) {
        uint i = 2 * j;
        vec2 v = vec2(w[i] * (x[xb + i] * scale), w[i + 1] * (x[xb + i + 1] * scale));
        y[yb + i] = v.x;
        y[yb + i + 1] = v.y;
        yh[yb / 2 + j] = packFloat2x16(f16vec2(v));
    }
#else
    for (uint i = gl_LocalInvocationID.x; i < N; i += WG_SIZE)
        y[yb + i] = w[i] * (x[xb + i] * scale);
#endif
}
