#version 450
// silu_mul.comp - h[t, i] = silu(gu[t, i]) * gu[t, F + i], where gu holds the gate
// and up projections side by side (prefill; decode fuses this into matvec.comp).
// Bindings: 0 gu float[n_tok, 2F] readonly; 1 h float[n_tok, F] writeonly.
// Push constants: uint n_tok. Defines: F, WG_SIZE.
// Geometry: grid (CEIL_DIV(F * n_tok, WG_SIZE)); one invocation per output.
// Reference: tests/ref silu_mul (transformers' F.silu(gate) * up).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, set = 0, binding = 0) readonly buffer GU { float gu[]; };
layout(std430, set = 0, binding = 1) writeonly buffer H { float h[]; };
layout(push_constant) uniform Push { uint n_tok; } pc;

void main() {
    uint e = gl_GlobalInvocationID.x;
    if (e >= F * pc.n_tok)
        return;
    uint t = e / F, i = e % F;
    float g = gu[t * 2 * F + i];
    h[e] = g / (1.0 + exp(-g)) * gu[t * 2 * F + F + i];
}
