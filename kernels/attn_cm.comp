#version 450
// attn_cm.comp - prefill attention on tensor cores (VK_NV_cooperative_matrix): what
// attn.comp computes, for models without a sliding window,
//   o[t, h] = sum_j softmax_j(q[t, h] . k[j, g] / sqrt(HD)) v[j, g],  g = h / (NH / NKV),
//   j from 0 to p = pos0 + t,
// with f16 products and f32 sums: q (scaled by 1 / sqrt(HD)) and the softmax weights are
// rounded to f16 for the products; the K/V cache is f16 already.
// Bindings (attn.comp's): 0 step readonly; 1 q float[n_tok, NH HD] readonly; 2 k cache
//   f16[n_ctx, NKV HD] readonly; 3 v cache f16[n_ctx, NKV HD] readonly; 4 o float[n_tok,
//   NH HD] writeonly.
// Defines: HD (a multiple of 16, at most 128), NH, NKV, NSG (subgroups a workgroup, 4);
//   KV_Q8, KV_RS: an 8-bit cache (common.glsl), turned into f16 as it is staged.
//   Needs 32-wide subgroups with shuffles (NVIDIA); lib/session.c picks it where it
//   picks matmul_cm.comp and the model has no sliding window.
// Geometry: grid (NH, CEIL_DIV(n_tok, BQ)), BQ = 16 NSG queries a workgroup, 16 a
//   subgroup. The workgroup walks the keys its block needs in tiles of BKV = 32, staged
//   in shared memory as f16 rows (zero past the last key the block needs, so no stale
//   cache value reaches a product). Two passes over the tiles, so that the output never
//   needs rescaling (a cooperative matrix's elements cannot be addressed by row):
//   1. S = Q K^T by 16x16 fragments; S goes through shared memory, and two lanes a
//      query row take the running maximum m over the keys the query sees.
//   2. S again; each row's weights P = exp(S - m) (0 for masked keys) are summed into l
//      and written as f16 to shared memory, then O += P V by fragments.
//   At the end O goes through shared memory a fragment at a time, divided by l.
//   Every loop that touches an array of fragments unrolls completely (see
//   matmul_cm.comp's note), so they stay in registers.
// Shared memory at HD 128: K and V tiles 17 KiB (also the Q staging area at the start),
//   S 8 KiB, P 5 KiB.
// Reference: tests/ref attention (eager attention of transformers), tests/check_kernels.c.
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"

#ifndef NSG
#define NSG 4
#endif
#define NT (NSG * 32)
#define BQ (16 * NSG)
#define BKV 32
#define ND (HD / 16)          // 16-dimension fragments of a row
#define NK (BKV / 16)         // 16-key fragments of a tile
#define KV_W (NKV * HD)
#define LDK ((HD + 8) / 8)    // a staged K/V/Q row, in uvec4s (8 f16s; padded by 8 f16s)
#define LDP ((BKV + 8) / 8)   // a staged P row, in uvec4s
#define TILE (BKV * LDK)      // one staged K or V tile, in uvec4s
#if HD % 16 != 0 || HD > 128 || BQ * LDK > 2 * TILE
#error "attn_cm.comp: unsupported head size"
#endif

layout(local_size_x = NT) in;
STEP_BLOCK(0)
layout(std430, set = 0, binding = 1) readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) readonly buffer Q4 { vec4 q4[]; };
#if KV_Q8
layout(std430, set = 0, binding = 2) readonly buffer KC { uint kq[]; };
layout(std430, set = 0, binding = 3) readonly buffer VC { uint vq[]; };
#else
layout(std430, set = 0, binding = 2) readonly buffer KC { uvec4 kc8[]; };  // 8 f16s
layout(std430, set = 0, binding = 3) readonly buffer VC { uvec4 vc8[]; };
#endif
layout(std430, set = 0, binding = 4) writeonly buffer O { float o[]; };

shared uvec4 kvs[2 * TILE];            // K tile, then V tile; Q rows before the walk
shared float ss[NSG * 16 * BKV];       // a subgroup's S (and, at the end, an O fragment)
shared uvec4 ps[NSG * 16 * LDP];       // a subgroup's P as f16

#define ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define HALF fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>

// K (and with V, V) rows j0 .. j0 + BKV - 1 of KV head g into kvs, zero past j_end.
void stage(uint j0, uint j_end, uint g, uint tid, bool with_v) {
    [[unroll]] for (uint i = 0; i < CEIL_DIV(BKV * HD / 8, NT); i++) {
        uint e = tid + i * NT, r = e / (HD / 8), c = e % (HD / 8), j = j0 + r;
        if (e < BKV * HD / 8) {
            uvec4 k8 = uvec4(0u), v8 = uvec4(0u);
            if (j <= j_end) {  // never read past it (it may lie past the cache)
#if KV_Q8
                // 8 values of one 32-value block: two int8 words and a scale, to f16
                uint r0 = KVQ8_ROW(j), i0 = g * HD + 8 * c;
                vec4 a = KVQ8_D(kq, r0, i0) * KVQ8_Q4(kq[r0 + i0 / 4]);
                vec4 b = KVQ8_D(kq, r0, i0) * KVQ8_Q4(kq[r0 + i0 / 4 + 1]);
                k8 = uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy),
                           packHalf2x16(b.zw));
                if (with_v) {
                    a = KVQ8_D(vq, r0, i0) * KVQ8_Q4(vq[r0 + i0 / 4]);
                    b = KVQ8_D(vq, r0, i0) * KVQ8_Q4(vq[r0 + i0 / 4 + 1]);
                    v8 = uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy),
                               packHalf2x16(b.zw));
                }
#else
                uint src = (j * KV_W + g * HD) / 8 + c;
                k8 = kc8[src];
                if (with_v)
                    v8 = vc8[src];
#endif
            }
            kvs[r * LDK + c] = k8;
            if (with_v)
                kvs[TILE + r * LDK + c] = v8;
        }
    }
}

// S = Q K^T for this subgroup's 16 queries and the staged tile, into its ss rows.
void scores(const HALF qf[ND], uint sg) {
    [[unroll]] for (uint n = 0; n < NK; n++) {
        ACC s = ACC(0.0);
        [[unroll]] for (uint d = 0; d < ND; d++) {
            HALF kf;
            coopMatLoadNV(kf, kvs, n * 16 * LDK + d * 2, LDK, true);
            s = coopMatMulAddNV(qf[d], kf, s);
        }
        coopMatStoreNV(s, ss, sg * 16 * BKV + n * 16, BKV, false);
    }
}

void main() {
    uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint g = h / (NH / NKV);
    uint t0 = gl_WorkGroupID.y * BQ;
    uint n_q = min(uint(BQ), step.n_tok - t0);            // valid queries of the block
    uint j_end = step.pos0 + t0 + n_q - 1;                // last key the block needs
    // this lane's query row (two lanes a row) and its half of a tile's keys
    uint r = lane / 2, half_ = lane % 2, qi = sg * 16 + r;
    bool q_ok = qi < n_q;
    uint p = step.pos0 + t0 + qi;                         // the row's position
    const float NEG_INF = -1.0 / 0.0;

    // Q rows of the block, scaled, as f16 into kvs; then into fragments
    [[unroll]] for (uint i = 0; i < CEIL_DIV(BQ * HD / 8, NT); i++) {
        uint e = tid + i * NT, rr = e / (HD / 8), c = e % (HD / 8);
        if (e < BQ * HD / 8) {
            vec4 a = vec4(0.0), b = vec4(0.0);
            if (rr < n_q) {
                uint base = ((t0 + rr) * NH * HD + h * HD) / 4 + 2 * c;
                a = q4[base] * (1.0 / sqrt(float(HD)));
                b = q4[base + 1] * (1.0 / sqrt(float(HD)));
            }
            kvs[rr * LDK + c] = uvec4(packFloat2x16(f16vec2(a.xy)), packFloat2x16(f16vec2(a.zw)),
                                      packFloat2x16(f16vec2(b.xy)), packFloat2x16(f16vec2(b.zw)));
        }
    }
    barrier();
    HALF qf[ND];
    [[unroll]] for (uint d = 0; d < ND; d++)
        coopMatLoadNV(qf[d], kvs, sg * 16 * LDK + d * 2, LDK, false);
    barrier();

    // pass 1: the row maxima
    float m = NEG_INF;
    for (uint j0 = 0; j0 <= j_end; j0 += BKV) {
        stage(j0, j_end, g, tid, false);
        barrier();
        scores(qf, sg);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        [[unroll]] for (uint i = 0; i < BKV / 2; i++) {
            uint k = half_ * (BKV / 2) + i, j = j0 + k;
            if (q_ok && j <= p)
                m = max(m, ss[sg * 16 * BKV + r * BKV + k]);
        }
        barrier();  // kvs and ss are rewritten next tile
    }
    m = max(m, subgroupShuffleXor(m, 1u));

    // pass 2: weights, their sums, and O = P V
    ACC of[ND];
    [[unroll]] for (uint d = 0; d < ND; d++)
        of[d] = ACC(0.0);
    float l = 0.0;
    for (uint j0 = 0; j0 <= j_end; j0 += BKV) {
        stage(j0, j_end, g, tid, true);
        barrier();
        scores(qf, sg);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        float w[BKV / 2];
        [[unroll]] for (uint i = 0; i < BKV / 2; i++) {
            uint k = half_ * (BKV / 2) + i, j = j0 + k;
            w[i] = (q_ok && j <= p) ? exp(ss[sg * 16 * BKV + r * BKV + k] - m) : 0.0;
            l += w[i];
        }
        [[unroll]] for (uint i = 0; i < BKV / 16; i++) {  // 8 weights a uvec4
            uint b = 8 * i;
            ps[(sg * 16 + r) * LDP + half_ * (BKV / 16) + i] =
                uvec4(packFloat2x16(f16vec2(w[b], w[b + 1])), packFloat2x16(f16vec2(w[b + 2], w[b + 3])),
                      packFloat2x16(f16vec2(w[b + 4], w[b + 5])), packFloat2x16(f16vec2(w[b + 6], w[b + 7])));
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        [[unroll]] for (uint n = 0; n < NK; n++) {
            HALF pf;
            coopMatLoadNV(pf, ps, sg * 16 * LDP + n * 2, LDP, false);
            [[unroll]] for (uint d = 0; d < ND; d++) {
                HALF vf;
                coopMatLoadNV(vf, kvs, TILE + n * 16 * LDK + d * 2, LDK, false);
                of[d] = coopMatMulAddNV(pf, vf, of[d]);
            }
        }
        barrier();  // kvs, ss and ps are rewritten next tile
    }
    l += subgroupShuffleXor(l, 1u);

    // O / l, a fragment at a time through this subgroup's ss rows (16 x 16 of them)
    float inv = l > 0.0 ? 1.0 / l : 0.0;
    [[unroll]] for (uint d = 0; d < ND; d++) {
        coopMatStoreNV(of[d], ss, sg * 16 * BKV, 16, false);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        [[unroll]] for (uint i = 0; i < 8; i++) {  // row r, columns half_ * 8 + i
            uint c = half_ * 8 + i;
            if (q_ok)
                o[(t0 + qi) * NH * HD + h * HD + d * 16 + c] = ss[sg * 16 * BKV + r * 16 + c] * inv;
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }
}
