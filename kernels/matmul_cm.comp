#version 450
// matmul_cm.comp - prefill GEMM on tensor cores through VK_NV_cooperative_matrix:
// y[t, y_col + row_begin + r] (+)= W[r, :] . x[x_row + t, :] (+ bias[row_begin + r]),
// f16 products with f32 accumulation: x is rounded to f16 on its way into shared memory,
// and so are block-quantized weights once dequantized (f16 weights are used as stored).
// Bindings, push constants and epilogue flags are those of matmul.comp:
//   0 W WTYPE[n_rows, K] (shard; block types as quant.glsl lays them out); 1 x float[*, K];
//   2 bias float[n_rows]; 3 y float[n_tok, ld_y].
// Defines: K, WTYPE, HAS_BIAS, ACCUMULATE, BM (64 or 128 rows a tile), BN (64 or 128
//   tokens a tile). Needs subgroups of 32 (NVIDIA). Block types need K % 32 == 0.
// Geometry: grid (CEIL_DIV(n_tok, BN), CEIL_DIV(n_rows, BM)) - token tiles vary fastest,
//   so the workgroups that share a tile of W run together and W comes from memory about
//   once (the 64-row-tile grid of matmul.comp read it once per token tile); 256 invocations = 8
//   subgroups, arranged BM / 32 along the rows and the rest along the tokens; each
//   computes 32 rows x BN / (8 / (BM / 32)) tokens of the tile as 16x16 f32 fragments.
//   K goes in steps of 32 through one pair of shared tiles (f16, rows padded to 40 so
//   the fragment loads do not collide in banks); the next step's global loads are
//   issued into registers before this step's products, so they overlap.
//   f16 weights with K % 32 == 0 are read 8 values (16 bytes) at a time and x 4 at a
//   time; other float types and sizes take a scalar path (zero beyond every edge).
// Epilogue: a tile that lies wholly inside y, without bias, with y's row stride and
//   column offset multiples of 4 floats, loads y into the accumulators first (ACCUMULATE)
//   and stores them straight to y; any other tile goes through a 16x16 staging area per
//   subgroup in shared memory and writes only the elements in range.
// Reference: tests/ref matmul (on f16-rounded x and weights; tests/check_kernels.c,
//   check_quant.c). Selected by lib/session.c where the device has
//   VK_NV_cooperative_matrix with 32-wide subgroups.
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#include "common.glsl"
#include "quant.glsl"

#ifndef BM
#define BM 128
#endif
#ifndef BN
#define BN 128
#endif
#define BK 32
#define LDS (BK + 8)     // f16s a shared tile row
#define LDS4 (LDS / 4)   // the same in uvec2s (4 f16s each)
#define WM (BM / 32)     // subgroups along the rows
#define WN (8 / WM)      // subgroups along the tokens
#define SN (BN / WN)     // tokens a subgroup
#define CN (SN / 16)     // 16-token fragments a subgroup
#if WQUANT
#define FAST 1
#if K % BK != 0
#error "matmul_cm.comp: block-quantized weights need K % 32 == 0"
#endif
#else
#define FAST (WTYPE == 1 && K % BK == 0)
#endif
#define NW (BM * BK / 4 / 256)   // quads of W an invocation loads each step (BM / 32)
#define NX (BN * BK / 4 / 256)   // quads of x (BN / 32)

layout(local_size_x = 256) in;
#if WQUANT
QUANT_BINDING(0, WQ_, wq, WD_, wd)
#else
layout(std430, set = 0, binding = 0) readonly buffer W { WSCALAR w[]; };
layout(std430, set = 0, binding = 0) readonly buffer W8 { uvec4 w8[]; };  // 8 f16s
#endif
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform Push {
    uint row_begin; uint n_rows; uint ld_y; uint n_tok; uint x_row; uint y_col;
} pc;
#if WQUANT
#include "qtile.glsl"
#endif

#define ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define HALF fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>

shared uvec2 ws[BM * LDS4];   // W tile: row m, values 4q .. 4q + 3 at ws[m * LDS4 + q]
shared uvec2 xs[BN * LDS4];   // x tile: token n likewise
shared float stage[8 * 256];  // a 16x16 fragment per subgroup (edge tiles)

uvec2 pack4(vec4 v) {
    return uvec2(packFloat2x16(f16vec2(v.xy)), packFloat2x16(f16vec2(v.zw)));
}

// Registers holding the next step's tiles (FAST path).
#if FAST
#if WQUANT
vec4 rw[NW];
#else
uvec4 rw[NW / 2];  // 8 f16s each
#endif
vec4 rx[NX];

void fetch(uint row0, uint tok0, uint k0, uint tid) {
#if WQUANT
    [[unroll]] for (uint i = 0; i < NW; i++) {
        uint e = tid + i * 256, m = e / 8, q = e % 8, gr = row0 + m;
        rw[i] = gr < pc.n_rows ? wtile_quad(pc.n_rows, gr, k0 + (q / 4) * 16, q % 4) : vec4(0.0);
    }
#else
    [[unroll]] for (uint i = 0; i < NW / 2; i++) {
        uint e = tid + i * 256, m = e / 4, c = e % 4, gr = row0 + m;
        rw[i] = gr < pc.n_rows ? w8[gr * (K / 8) + k0 / 8 + c] : uvec4(0);
    }
#endif
    [[unroll]] for (uint i = 0; i < NX; i++) {
        uint e = tid + i * 256, n = e / 8, c = e % 8, gt = tok0 + n;
        rx[i] = gt < pc.n_tok ? x4[(pc.x_row + gt) * (K / 4) + k0 / 4 + c] : vec4(0.0);
    }
}

void commit(uint tid) {
#if WQUANT
    [[unroll]] for (uint i = 0; i < NW; i++) {
        uint e = tid + i * 256;
        ws[(e / 8) * LDS4 + e % 8] = pack4(rw[i]);
    }
#else
    [[unroll]] for (uint i = 0; i < NW / 2; i++) {
        uint e = tid + i * 256, o = (e / 4) * LDS4 + (e % 4) * 2;
        ws[o] = rw[i].xy;
        ws[o + 1] = rw[i].zw;
    }
#endif
    [[unroll]] for (uint i = 0; i < NX; i++) {
        uint e = tid + i * 256;
        xs[(e / 8) * LDS4 + e % 8] = pack4(rx[i]);
    }
}
#else
// Any float type and K: straight into shared memory, four values at a time.
void fill(uint row0, uint tok0, uint k0, uint tid) {
    [[unroll]] for (uint i = 0; i < NW; i++) {
        uint e = tid + i * 256, m = e / 8, q = e % 8, gr = row0 + m;
        vec4 v = vec4(0.0);
        [[unroll]] for (uint j = 0; j < 4; j++) {
            uint gk = k0 + 4 * q + j;
            if (gr < pc.n_rows && gk < K)
                v[j] = W2F(w[gr * K + gk]);
        }
        ws[m * LDS4 + q] = pack4(v);
    }
    [[unroll]] for (uint i = 0; i < NX; i++) {
        uint e = tid + i * 256, n = e / 8, q = e % 8, gt = tok0 + n;
        vec4 v = vec4(0.0);
        [[unroll]] for (uint j = 0; j < 4; j++) {
            uint gk = k0 + 4 * q + j;
            if (gt < pc.n_tok && gk < K)
                v[j] = x[(pc.x_row + gt) * K + gk];
        }
        xs[n * LDS4 + q] = pack4(v);
    }
}
#endif

void main() {
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint sr = (sg % WM) * 32, sc = (sg / WM) * SN;  // this subgroup's part of the tile
    uint row0 = gl_WorkGroupID.y * BM, tok0 = gl_WorkGroupID.x * BN;
    bool direct = HAS_BIAS == 0 && ((pc.ld_y | (pc.y_col + pc.row_begin)) & 3u) == 0u &&
                  row0 + BM <= pc.n_rows && tok0 + BN <= pc.n_tok;
    // y index of element (row 0, token 0) of this subgroup's part
    uint yb = (tok0 + sc) * pc.ld_y + pc.y_col + pc.row_begin + row0 + sr;
    ACC c[2][CN];
    [[unroll]] for (uint i = 0; i < 2; i++)
        [[unroll]] for (uint j = 0; j < CN; j++) {
#if ACCUMULATE
            if (direct)
                coopMatLoadNV(c[i][j], y, yb + j * 16 * pc.ld_y + i * 16, pc.ld_y, true);
            else
                c[i][j] = ACC(0.0);
#else
            c[i][j] = ACC(0.0);
#endif
        }

#if FAST
    fetch(row0, tok0, 0, tid);
#endif
    for (uint k0 = 0; k0 < K; k0 += BK) {
#if FAST
        commit(tid);
        barrier();
        if (k0 + BK < K)
            fetch(row0, tok0, k0 + BK, tid);
#else
        fill(row0, tok0, k0, tid);
        barrier();
#endif
        [[unroll]] for (uint kk = 0; kk < BK / 4; kk += 4) {  // 16 values of K, in uvec2s
            HALF a[2];
            HALF b[CN];
            coopMatLoadNV(a[0], ws, (sr + 0) * LDS4 + kk, LDS4, false);
            coopMatLoadNV(a[1], ws, (sr + 16) * LDS4 + kk, LDS4, false);
            [[unroll]] for (uint j = 0; j < CN; j++)
                coopMatLoadNV(b[j], xs, (sc + 16 * j) * LDS4 + kk, LDS4, true);
            [[unroll]] for (uint i = 0; i < 2; i++)
                [[unroll]] for (uint j = 0; j < CN; j++)
                    c[i][j] = coopMatMulAddNV(a[i], b[j], c[i][j]);
        }
        barrier();
    }

    if (direct) {
        [[unroll]] for (uint i = 0; i < 2; i++)
            [[unroll]] for (uint j = 0; j < CN; j++)
                coopMatStoreNV(c[i][j], y, yb + j * 16 * pc.ld_y + i * 16, pc.ld_y, true);
        return;
    }
    // Edge tiles: each fragment through this subgroup's staging area, element
    // (row r, token t) at stage[sg * 256 + t * 16 + r], then the in-range ones to y.
    [[unroll]] for (uint i = 0; i < 2; i++)
        [[unroll]] for (uint j = 0; j < CN; j++) {
            coopMatStoreNV(c[i][j], stage, sg * 256, 16, true);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < 256; e += 32) {
                uint gr = row0 + sr + 16 * i + e % 16, gt = tok0 + sc + 16 * j + e / 16;
                if (gr >= pc.n_rows || gt >= pc.n_tok)
                    continue;
                float s = stage[sg * 256 + e];
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
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
}
