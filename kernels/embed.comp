#version 450
// embed.comp - token embedding gather: x[t, :] = E[tokens[t], :] as f32.
// Bindings: 0 step (tokens) readonly; 1 E WTYPE[n_rows, N_EMBD] (one shard of the
//   table: rows row_begin .. row_begin+n_rows) readonly; 2 x float[n_tok, N_EMBD] writeonly.
// Push constants: uint row_begin, n_rows.
// Defines: N_EMBD, WTYPE, WG_SIZE.
// Geometry: grid (CEIL_DIV(N_EMBD, WG_SIZE), n_tok); one invocation per element.
//   Tokens outside this shard are left for the other shards' dispatches.
// Reference: tests/ref (embedding lookup).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
STEP_BLOCK(0)
layout(std430, set = 0, binding = 1) readonly buffer E { WSCALAR e[]; };
layout(std430, set = 0, binding = 2) writeonly buffer X { float x[]; };
layout(push_constant) uniform Push { uint row_begin; uint n_rows; } pc;

void main() {
    uint i = gl_GlobalInvocationID.x;
    uint t = gl_WorkGroupID.y;
    uint tok = step.tokens[t];
    if (i >= N_EMBD || tok < pc.row_begin || tok >= pc.row_begin + pc.n_rows)
        return;
    x[t * N_EMBD + i] = W2F(e[(tok - pc.row_begin) * N_EMBD + i]);
}
