#version 450
// dequant.comp - a shard of a block-quantized weight matrix to f16, for prefill:
// out[(row_begin + r) * K + k] = f16(W[r, k]) for the shard's n_rows rows r and every k.
// The prefill GEMM then reads the f16 copy (lib/session.c, "dequantized prefill"): on
// tensor cores matmul_cm.comp rounds dequantized values to f16 on their way into shared
// memory anyway, and this kernel rounds the same f32 values (qtile.glsl's wtile_quad)
// the same way, so the products are the same; what changes is that the GEMM's loads
// are plain 16-byte f16 reads instead of a dequantization on its critical path.
// Bindings: 0 W WTYPE[n_rows, K] (one shard, quant.glsl's layouts); 1 out f16[*, K]
//   (written 8 values, one uvec4, at a time).
// Push constants: row_begin (the shard's first row of the matrix), n_rows.
// Defines: K, WTYPE (3..7), GROUP (q4_g), WG_SIZE, F16ARITH (1: the device has
//   shaderFloat16).
// Geometry: an invocation per 16 values of a row (k0 % 16 == 0, as wtile_quad needs),
//   rows after rows; the grid is 2-D only because one dimension holds 65535 workgroups.
// Reference: tests/ref's dequantization rounded to f16 (check_quant.c dequant_kernel).
#if F16ARITH
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#include "common.glsl"
#include "quant.glsl"

#if !WQUANT || K % 16 != 0
#error "dequant.comp: a block-quantized WTYPE and K % 16 == 0"
#endif

layout(local_size_x = WG_SIZE) in;
QUANT_BINDING(0, WQ_, wq, WD_, wd)
layout(std430, set = 0, binding = 1) writeonly buffer Out { uvec4 o[]; };
layout(push_constant) uniform Push { uint row_begin; uint n_rows; } pc;
#include "qtile.glsl"

// As matmul_cm.comp's pack4 where the device has f16 arithmetic (it always has where
// that kernel runs), so that both round alike; packHalf2x16 elsewhere.
uvec2 pack4(vec4 v) {
#if F16ARITH
    return uvec2(packFloat2x16(f16vec2(v.xy)), packFloat2x16(f16vec2(v.zw)));
#else
    return uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw));
#endif
}

void main() {
    uint u = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * WG_SIZE;
    uint r = u / (K / 16), k0 = (u % (K / 16)) * 16;
    if (r >= pc.n_rows)
        return;
    uvec2 a = pack4(wtile_quad(pc.n_rows, r, k0, 0)), b = pack4(wtile_quad(pc.n_rows, r, k0, 1));
    uvec2 c = pack4(wtile_quad(pc.n_rows, r, k0, 2)), d = pack4(wtile_quad(pc.n_rows, r, k0, 3));
    uint ob = (pc.row_begin + r) * (K / 8) + k0 / 8;
    o[ob] = uvec4(a, b);
    o[ob + 1] = uvec4(c, d);
}
