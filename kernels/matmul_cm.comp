#version 450
// matmul_cm.comp - prefill GEMM on tensor cores through VK_NV_cooperative_matrix:
// y[t, y_col + row_begin + r] (+)= W[r, :] . x[x_row + t, :] (+ bias[row_begin + r]) for f16 W,
// f16 products with f32 accumulation (x is rounded to f16 on its way into shared memory).
// Bindings, push constants and epilogue flags are those of matmul.comp:
//   0 W f16[n_rows, K] (shard); 1 x float[*, K]; 2 bias float[n_rows]; 3 y float[n_tok, ld_y].
// Defines: K, HAS_BIAS, ACCUMULATE. Needs subgroups of 32 (NVIDIA).
// Geometry: grid (CEIL_DIV(n_rows, 64), CEIL_DIV(n_tok, 64)); 4 subgroups per workgroup, each
//   computing a 32-row x 32-token quarter of the 64 x 64 tile as 2 x 2 16x16x16 products per
//   16 values of K; tiles of W and x go through shared memory (zero beyond the edges).
// Reference: tests/ref matmul (selected by lib/session.c only where the device has
//   VK_NV_cooperative_matrix and the weight is f16; matmul.comp everywhere else).
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#include "common.glsl"

#define BM 64
#define BN 64
#define BK 32
#define LDS (BK + 8)   // padded row stride of the shared tiles, in f16 elements
layout(local_size_x = 128) in;
layout(std430, set = 0, binding = 0) readonly buffer W { float16_t w[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform Push {
    uint row_begin; uint n_rows; uint ld_y; uint n_tok; uint x_row; uint y_col;
} pc;

shared float16_t ws[BM * LDS];
shared float16_t xs[BN * LDS];
shared float cs[BM * BN];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint sg = gl_SubgroupID;
    uint wr = (sg % 2) * 32, wc = (sg / 2) * 32;
    uint row0 = gl_WorkGroupID.x * BM, tok0 = gl_WorkGroupID.y * BN;
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> c00 = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> c01 = c00, c10 = c00, c11 = c00;

    for (uint k0 = 0; k0 < K; k0 += BK) {
        // 64 x 32 of W and of x: 16 values each per invocation, k fastest.
        [[unroll]] for (uint l = 0; l < 16; l++) {
            uint e = tid + l * 128;
            uint kk = e % BK, m = e / BK, gk = k0 + kk;
            uint gr = row0 + m, gt = tok0 + m;
            ws[m * LDS + kk] = (gr < pc.n_rows && gk < K) ? w[gr * K + gk] : float16_t(0.0);
            xs[m * LDS + kk] = (gt < pc.n_tok && gk < K) ? float16_t(x[(pc.x_row + gt) * K + gk])
                                                          : float16_t(0.0);
        }
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; kk += 16) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a0, a1, b0, b1;
            coopMatLoadNV(a0, ws, (wr + 0) * LDS + kk, LDS, false);
            coopMatLoadNV(a1, ws, (wr + 16) * LDS + kk, LDS, false);
            coopMatLoadNV(b0, xs, (wc + 0) * LDS + kk, LDS, true);
            coopMatLoadNV(b1, xs, (wc + 16) * LDS + kk, LDS, true);
            c00 = coopMatMulAddNV(a0, b0, c00);
            c01 = coopMatMulAddNV(a0, b1, c01);
            c10 = coopMatMulAddNV(a1, b0, c10);
            c11 = coopMatMulAddNV(a1, b1, c11);
        }
        barrier();
    }
    // cs[row][token] of the 64 x 64 tile, then the epilogue writes rows contiguously.
    coopMatStoreNV(c00, cs, (wr + 0) * BN + wc + 0, BN, false);
    coopMatStoreNV(c01, cs, (wr + 0) * BN + wc + 16, BN, false);
    coopMatStoreNV(c10, cs, (wr + 16) * BN + wc + 0, BN, false);
    coopMatStoreNV(c11, cs, (wr + 16) * BN + wc + 16, BN, false);
    barrier();
    [[unroll]] for (uint l = 0; l < 32; l++) {
        uint e = tid + l * 128;
        uint r = e % BM, t = e / BM;
        uint gr = row0 + r, gt = tok0 + t;
        if (gr >= pc.n_rows || gt >= pc.n_tok)
            continue;
        float s = cs[r * BN + t];
#if HAS_BIAS
        s += bias[pc.row_begin + gr];
#endif
        uint o = gt * pc.ld_y + pc.y_col + pc.row_begin + gr;
#if ACCUMULATE
        y[o] += s;
#else
        y[o] = s;
#endif
    }
}
