#version 450
// matmul_cm.comp - prefill GEMM on tensor cores through VK_NV_cooperative_matrix:
// y[t, y_col + row_begin + r] (+)= W[r, :] . x[x_row + t, :] (+ bias[row_begin + r]),
// f16 products with f32 accumulation: x is rounded to f16 on its way into shared memory,
// and so are block-quantized weights once dequantized (f16 weights are used as stored).
// Bindings, push constants and epilogue flags are those of matmul.comp:
//   0 W WTYPE[n_rows, K] (shard; block types as quant.glsl lays them out); 1 x float[*, K];
//   2 bias float[n_rows]; 3 y float[n_tok, ld_y].
// Defines: K, WTYPE, HAS_BIAS, ACCUMULATE; the tile (lib/session.c cm_config picks it,
//   tests/check_kernels.c runs every one it can pick):
//   BM (64 or 128 rows a tile), BN (64 or 128 tokens), BK (32 or 64 values of K a step),
//   NSG (subgroups a workgroup, 4 or 8), WR (rows a subgroup computes, 32 or 64),
//   DB (1: two shared buffers, one barrier a step). Measured on the H100
//   (tests/tools/gemm_bench.c, bench/RESULTS.md): 64x64 tiles BK 64 run at 98-114
//   TFLOP/s, 128x128 tiles of 8 subgroups of 64 rows, BK 32, DB at 137-142 where K is
//   4096 or more. Until session 9, every subgroup holding more than two accumulators
//   ran at 20-28: the edge epilogue's loop over the fragments could not be unrolled
//   (its trip count depended on the lane, and it had a continue), so it indexed c with
//   variables, and the driver kept the whole accumulator array in memory. Every loop
//   that touches c must unroll completely, so that c's indices are constants.
//   Needs subgroups of 32 (NVIDIA). Block types need K % BK == 0.
// Geometry: grid (CEIL_DIV(n_tok, BN), CEIL_DIV(n_rows, BM)) - token tiles vary fastest,
//   so the workgroups that share a tile of W run together and W comes from memory about
//   once; NSG subgroups, BM / WR along the rows and the rest along the tokens, each
//   computing WR rows x SN tokens of the tile as 16x16 f32 fragments.
//   K goes in steps of BK through shared tiles (f16, rows padded by 8 values so the
//   fragment loads do not collide in banks); the next step's global loads are issued
//   into registers before this step's products, so they overlap; with DB the step after
//   writes the other buffer, so one barrier a step suffices.
//   f16 weights with K % BK == 0 are read 8 values (16 bytes) at a time and x 4 at a
//   time; other float types and sizes take a scalar path (zero beyond every edge).
// Epilogue: a tile that lies wholly inside y, without bias, with y's row stride and
//   column offset multiples of 4 floats, loads y into the accumulators first (ACCUMULATE)
//   and stores them straight to y; any other tile goes through a 16x16 staging area per
//   subgroup (in the shared tiles, after the K loop) and writes only the elements in range.
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
#ifndef BK
#define BK 32
#endif
#ifndef NSG
#define NSG 8
#endif
#ifndef WR
#define WR 32
#endif
#ifndef DB
#define DB 0
#endif
// XF16 (1: x is stored as f16, 4 values a uvec2, as rms_norm.comp's YH writes it:
// lib/session.c sets it for the GEMMs that read the prefill norm's output; the FAST path
// only). Measurement knob (gemm_bench only; lib/session.c never sets it): NOLOAD 1 loads
// the tiles of the first K step only and reuses them (wrong results: it bounds what the
// loads cost); NOLOAD 2 skips only the global loads after the first steps, keeping every
// step's shared stores and barrier (wrong results: what the global loads' latency costs).
// Split-K and loads issued before the barrier were measured and dropped
// (bench/patches/s14-splitk-early.patch, bench/RESULTS.md session 14).
#ifndef XF16
#define XF16 0
#endif
#ifndef NOLOAD
#define NOLOAD 0
#endif

#define NT (NSG * 32)    // invocations
#define LDS (BK + 8)     // f16s a shared tile row
#define LDS4 (LDS / 4)   // the same in uvec2s (4 f16s each)
#define WM (BM / WR)     // subgroups along the rows
#define WN (NSG / WM)    // subgroups along the tokens
#define SN (BN / WN)     // tokens a subgroup
#define CN (SN / 16)     // 16-token fragments a subgroup
#define RN (WR / 16)     // 16-row fragments a subgroup
#define QPR (BK / 4)     // quads (4 values) a tile row
#define NWQ (BM * QPR / NT)  // quads of W an invocation loads each step
#define NXQ (BN * QPR / NT)  // quads of x
#define XOFF (BM * LDS4)     // the x tile's offset in a buffer, in uvec2s
#define TILE4 ((BM + BN) * LDS4)  // one buffer (W tile, then x tile), in uvec2s
#if (BK != 32 && BK != 64) || BM % WR != 0 || NSG % WM != 0 || SN % 16 != 0 || \
    (BM * QPR) % (2 * NT) != 0 || (BN * QPR) % NT != 0 || TILE4 < NSG * 128
#error "matmul_cm.comp: unsupported tile configuration"
#endif
#if XF16 && !(WQUANT || (WTYPE == 1 && K % BK == 0))
#error "matmul_cm.comp: XF16 needs the FAST path (f16 weights with K % BK == 0, or block types)"
#endif
#if WQUANT
#define FAST 1
#if K % BK != 0
#error "matmul_cm.comp: block-quantized weights need K % BK == 0"
#endif
#else
#define FAST (WTYPE == 1 && K % BK == 0)
#endif

layout(local_size_x = NT) in;
#if WQUANT
QUANT_BINDING(0, WQ_, wq, WD_, wd)
#else
layout(std430, set = 0, binding = 0) readonly buffer W { WSCALAR w[]; };
layout(std430, set = 0, binding = 0) readonly buffer W8 { uvec4 w8[]; };  // 8 f16s
#endif
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer X4 { vec4 x4[]; };
#if XF16  // x stored as f16, 4 a uvec2
layout(std430, set = 0, binding = 1) readonly buffer XH { uvec2 xh[]; };
#endif
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

// DB + 1 buffers of TILE4 uvec2s: W row m's values 4q .. 4q + 3 at [m * LDS4 + q],
// token n's likewise from XOFF. After the K loop, subgroup s stages edge fragments
// as f32 in [s * 128, s * 128 + 128).
shared uvec2 sh[(DB + 1) * TILE4];

uvec2 pack4(vec4 v) {
    return uvec2(packFloat2x16(f16vec2(v.xy)), packFloat2x16(f16vec2(v.zw)));
}

// Registers holding the next step's tiles (FAST path).
#if FAST
#if WQUANT
vec4 rw[NWQ];
#else
uvec4 rw[NWQ / 2];  // 8 f16s each
#endif
#if XF16
uvec2 rx[NXQ];
#else
vec4 rx[NXQ];
#endif

void fetch(uint row0, uint tok0, uint k0, uint tid) {
#if WQUANT
    [[unroll]] for (uint i = 0; i < NWQ; i++) {
        uint e = tid + i * NT, m = e / QPR, q = e % QPR, gr = row0 + m;
        rw[i] = gr < pc.n_rows ? wtile_quad(pc.n_rows, gr, k0 + (q / 4) * 16, q % 4) : vec4(0.0);
    }
#else
    [[unroll]] for (uint i = 0; i < NWQ / 2; i++) {
        uint e = tid + i * NT, m = e / (QPR / 2), c = e % (QPR / 2), gr = row0 + m;
        rw[i] = gr < pc.n_rows ? w8[gr * (K / 8) + k0 / 8 + c] : uvec4(0);
    }
#endif
    [[unroll]] for (uint i = 0; i < NXQ; i++) {
        uint e = tid + i * NT, n = e / QPR, c = e % QPR, gt = tok0 + n;
#if XF16
        rx[i] = gt < pc.n_tok ? xh[(pc.x_row + gt) * (K / 4) + k0 / 4 + c] : uvec2(0u);
#else
        rx[i] = gt < pc.n_tok ? x4[(pc.x_row + gt) * (K / 4) + k0 / 4 + c] : vec4(0.0);
#endif
    }
}

void commit(uint base, uint tid) {
#if WQUANT
    [[unroll]] for (uint i = 0; i < NWQ; i++) {
        uint e = tid + i * NT;
        sh[base + (e / QPR) * LDS4 + e % QPR] = pack4(rw[i]);
    }
#else
    [[unroll]] for (uint i = 0; i < NWQ / 2; i++) {
        uint e = tid + i * NT, o = base + (e / (QPR / 2)) * LDS4 + (e % (QPR / 2)) * 2;
        sh[o] = rw[i].xy;
        sh[o + 1] = rw[i].zw;
    }
#endif
    [[unroll]] for (uint i = 0; i < NXQ; i++) {
        uint e = tid + i * NT;
#if XF16
        sh[base + XOFF + (e / QPR) * LDS4 + e % QPR] = rx[i];
#else
        sh[base + XOFF + (e / QPR) * LDS4 + e % QPR] = pack4(rx[i]);
#endif
    }
}
#else
// Any float type and K: straight into shared memory, four values at a time.
void fill(uint base, uint row0, uint tok0, uint k0, uint tid) {
    [[unroll]] for (uint i = 0; i < NWQ; i++) {
        uint e = tid + i * NT, m = e / QPR, q = e % QPR, gr = row0 + m;
        vec4 v = vec4(0.0);
        [[unroll]] for (uint j = 0; j < 4; j++) {
            uint gk = k0 + 4 * q + j;
            if (gr < pc.n_rows && gk < K)
                v[j] = W2F(w[gr * K + gk]);
        }
        sh[base + m * LDS4 + q] = pack4(v);
    }
    [[unroll]] for (uint i = 0; i < NXQ; i++) {
        uint e = tid + i * NT, n = e / QPR, q = e % QPR, gt = tok0 + n;
        vec4 v = vec4(0.0);
        [[unroll]] for (uint j = 0; j < 4; j++) {
            uint gk = k0 + 4 * q + j;
            if (gt < pc.n_tok && gk < K)
                v[j] = x[(pc.x_row + gt) * K + gk];
        }
        sh[base + XOFF + n * LDS4 + q] = pack4(v);
    }
}
#endif

void main() {
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint sr = (sg % WM) * WR, sc = (sg / WM) * SN;  // this subgroup's part of the tile
    uint row0 = gl_WorkGroupID.y * BM, tok0 = gl_WorkGroupID.x * BN;
    bool direct = HAS_BIAS == 0 && ((pc.ld_y | (pc.y_col + pc.row_begin)) & 3u) == 0u &&
                  row0 + BM <= pc.n_rows && tok0 + BN <= pc.n_tok;
    // y index of element (row 0, token 0) of this subgroup's part
    uint yb = (tok0 + sc) * pc.ld_y + pc.y_col + pc.row_begin + row0 + sr;
    ACC c[RN][CN];  // indexed by constants only (fully unrolled loops): see the top
    [[unroll]] for (uint i = 0; i < RN; i++)
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
    uint base = 0;
    for (uint k0 = 0; k0 < K; k0 += BK) {
#if FAST && NOLOAD == 1
        if (k0 < 2 * BK) {
            commit(base, tid);
            barrier();
            if (k0 + BK < K)
                fetch(row0, tok0, k0 + BK, tid);
        }
#elif FAST && NOLOAD == 2
        commit(base, tid);
        barrier();
        if (k0 < 2 * BK && k0 + BK < K)
            fetch(row0, tok0, k0 + BK, tid);
#elif FAST
        commit(base, tid);
        barrier();
        if (k0 + BK < K)
            fetch(row0, tok0, k0 + BK, tid);
#else
        fill(base, row0, tok0, k0, tid);
        barrier();
#endif
        [[unroll]] for (uint kk = 0; kk < BK / 4; kk += 4) {  // 16 values of K, in uvec2s
            HALF a[RN];
            HALF b[CN];
            [[unroll]] for (uint i = 0; i < RN; i++)
                coopMatLoadNV(a[i], sh, base + (sr + 16 * i) * LDS4 + kk, LDS4, false);
            [[unroll]] for (uint j = 0; j < CN; j++)
                coopMatLoadNV(b[j], sh, base + XOFF + (sc + 16 * j) * LDS4 + kk, LDS4, true);
            [[unroll]] for (uint i = 0; i < RN; i++)
                [[unroll]] for (uint j = 0; j < CN; j++)
                    c[i][j] = coopMatMulAddNV(a[i], b[j], c[i][j]);
        }
#if DB
        if (NOLOAD != 1 || k0 < 2 * BK)
            base = TILE4 - base;  // the other buffer; its last readers passed this step's barrier
#else
        if (NOLOAD != 1 || k0 < 2 * BK)
            barrier();
#endif
    }

    if (direct) {
        [[unroll]] for (uint i = 0; i < RN; i++)
            [[unroll]] for (uint j = 0; j < CN; j++)
                coopMatStoreNV(c[i][j], y, yb + j * 16 * pc.ld_y + i * 16, pc.ld_y, true);
        return;
    }
#if DB
    barrier();  // every subgroup is done with the tiles the staging area overlaps
#endif
    // Edge tiles: each fragment through this subgroup's staging area, element
    // (row r, token t) as the f32 bits of float t * 16 + r from sh[sg * 128], then
    // the in-range ones to y.
    [[unroll]] for (uint i = 0; i < RN; i++)
        [[unroll]] for (uint j = 0; j < CN; j++) {
            coopMatStoreNV(c[i][j], sh, sg * 128, 8, true);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            [[unroll]] for (uint q = 0; q < 8; q++) {  // a constant trip count (see the top)
                uint e = lane + 32 * q;
                uint gr = row0 + sr + 16 * i + e % 16, gt = tok0 + sc + 16 * j + e / 16;
                if (gr < pc.n_rows && gt < pc.n_tok) {
                    float s = uintBitsToFloat(sh[sg * 128 + e / 2][e % 2]);
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
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
}
