#version 450
// attn_split.comp - decode attention as flash decoding in one dispatch. The query is the
// token at p = pos0; its live keys are [lo, p] (lo from WINDOW as in attn.comp).
//
// Grid (NH / GQ, NSPLIT). Workgroup x serves the GQ query heads h0 = x GQ .. h0 + GQ - 1,
// which share one KV head g = h0 / (NH / NKV) (GQ divides NH / NKV), so each K and V row
// is read once for all of them (grouped-query attention reads the cache NH / NKV times
// less than a workgroup per query head would). The n = p + 1 - lo live keys are cut, at
// run time, into splits of len = max(MIN_LEN, CEIL_DIV(n, NSPLIT)) keys; workgroup y
// takes split y (splits past the last key only count themselves in), so the work of a
// workgroup follows the context, not the cache's capacity, and the recorded command
// buffer stays valid at every position.
//
// A workgroup walks its split in blocks of WG_SIZE keys, one key an invocation, keeping
// for each of its heads the online-softmax state
//   m = max_j s_j, l = sum_j exp(s_j - m), acc[d] = sum_j exp(s_j - m) v[j, g, d]
// with s_j = q[h] . k[j, g] / sqrt(HD), and writes it as the split's partial state. The
// last workgroup of a head group to finish (an atomic counter per group) combines the
// live splits:
//   M = max_c m_c, L = sum_c l_c exp(m_c - M), o[h, d] = sum_c acc_c[d] exp(m_c - M) / L
// and resets the counter, so the next layer (after a barrier) finds it at 0. One dispatch
// and one barrier a layer (~5.8 us each on the H100, PLATFORM.md).
//
// Bindings: 0 step readonly; 1 q float[NH HD] readonly; 2 k cache f16[n_ctx, NKV HD]
//   (KV_Q8: 8-bit rows of KV_RS bytes, common.glsl) readonly; 3 v cache, the same, readonly; 4 part vec4: acc[NH, NSPLIT, NQ] (dims by quads),
//   then (m, l)[NH, NSPLIT] as floats; 5 o float[NH HD] writeonly; 6 cnt uint[NH / GQ],
//   zero before the first dispatch.
// Defines: HD, NH, NKV, WINDOW, GQ, NSPLIT, MIN_LEN, WG_SIZE, USE_SUBGROUP; CU (16);
//   KV_Q8, KV_RS.
//   Rows are read by quads of dims (f16vec4 when HD % 4 == 0, else four guarded scalars).
// Visibility: part is coherent; every invocation fences its writes (memoryBarrierBuffer)
//   before the workgroup barrier that precedes the counter's atomicAdd, and the last
//   workgroup fences again before it reads the other splits.
// Cache rows past p are not written yet (anything, NaN included): they are never read.
// Reference: tests/ref attention (the combination equals one softmax over all keys).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
STEP_BLOCK(0)
layout(std430, set = 0, binding = 1) readonly buffer Q { float q[]; };
#if KV_Q8
layout(std430, set = 0, binding = 2) readonly buffer KC { uint kq[]; };
layout(std430, set = 0, binding = 2) readonly buffer KC4 { uvec4 kq4[]; };
layout(std430, set = 0, binding = 3) readonly buffer VC { uint vq[]; };
#elif HD % 4 == 0
layout(std430, set = 0, binding = 2) readonly buffer KC { f16vec4 kc4[]; };
layout(std430, set = 0, binding = 2) readonly buffer KC8 { uvec4 kc8[]; }; // 8 halves each
layout(std430, set = 0, binding = 3) readonly buffer VC { uvec2 vc2[]; }; // 4 halves each
#else
layout(std430, set = 0, binding = 2) readonly buffer KC { float16_t kc[]; };
layout(std430, set = 0, binding = 3) readonly buffer VC { float16_t vc[]; };
#endif
layout(std430, set = 0, binding = 4) coherent buffer Part { vec4 part4[]; };
layout(std430, set = 0, binding = 5) writeonly buffer O { float o[]; };
layout(std430, set = 0, binding = 6) coherent buffer Cnt { uint cnt[]; };

#define G (NH / NKV)           // query heads a KV head
#define NQ ((HD + 3) / 4)      // dim quads a row
#define KV_W (NKV * HD)        // elements a cache row
#define ML0 (NH * NSPLIT * NQ * 4) // float index of the first (m, l) pair in part
#define NSP 64                 // NSPLIT rounded up to a power of two for the combination
#if NSPLIT > NSP
#error NSPLIT > 64
#endif
#if NQ > WG_SIZE
#error HD above 4 WG_SIZE: a dim quad an invocation (sessions refuse such models)
#endif
#define VG (WG_SIZE / NQ)      // key groups of the V sum
#define VK CEIL_DIV(WG_SIZE, VG) // keys a key group sums a block
#define NSG_MAX WG_SIZE        // subgroups a workgroup, at most (subgroups of >= 1)

// Quad qd of KV head g's row j (f16; KV_Q8 reads K rows in the score loop itself); dims
// past HD are 0. V quads stay packed in two registers until they are used (VUNPACK): as
// halves, or with KV_Q8 as the int8 word and the bits of its scale (VSCALE, multiplied
// into the softmax weight rather than into the four values).
#if KV_Q8
#if HD % 32 != 0
#error KV_Q8 needs HD % 32 == 0
#endif
#define VQUAD(j, g, qd) uvec2(vq[KVQ8_ROW(j) + (g) * (HD / 4) + (qd)], \
                              floatBitsToUint(KVQ8_D(vq, KVQ8_ROW(j), (g) * HD + 4 * (qd))))
#define VUNPACK(r) KVQ8_Q4((r).x)
#define VSCALE(r) uintBitsToFloat((r).y)
#elif HD % 4 == 0
#define KQUAD(j, g, qd) vec4(kc4[((j) * KV_W + (g) * HD) / 4 + (qd)])
#define VQUAD(j, g, qd) vc2[((j) * KV_W + (g) * HD) / 4 + (qd)]
#define VUNPACK(r) vec4(unpackHalf2x16((r).x), unpackHalf2x16((r).y))
#define VSCALE(r) 1.0
#else
vec4 quad16k(uint e, uint qd) {
    uint d = 4 * qd;
    return vec4(float(kc[e + d]), d + 1 < HD ? float(kc[e + d + 1]) : 0.0,
                d + 2 < HD ? float(kc[e + d + 2]) : 0.0, d + 3 < HD ? float(kc[e + d + 3]) : 0.0);
}
uvec2 quad16v(uint e, uint qd) {
    uint d = 4 * qd;
    vec4 v = vec4(float(vc[e + d]), d + 1 < HD ? float(vc[e + d + 1]) : 0.0,
                  d + 2 < HD ? float(vc[e + d + 2]) : 0.0, d + 3 < HD ? float(vc[e + d + 3]) : 0.0);
    return uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw));
}
#define KQUAD(j, g, qd) quad16k((j) * KV_W + (g) * HD, qd)
#define VQUAD(j, g, qd) quad16v((j) * KV_W + (g) * HD, qd)
#define VUNPACK(r) vec4(unpackHalf2x16((r).x), unpackHalf2x16((r).y))
#define VSCALE(r) 1.0
#endif
float part_f(uint i) { return part4[i / 4][i % 4]; }

shared vec4 qs[GQ * NQ];        // the group's queries, scaled by 1 / sqrt(HD)
shared float pr[GQ * WG_SIZE];  // exp(s - m) of the block's keys, [head][key]; the
                                // combination's scratch (4 GQ NSP floats <= GQ WG_SIZE)
shared float red[GQ * NSG_MAX]; // per-subgroup (or per-invocation) partial reductions
shared float hm[GQ];            // a reduction's result per head
shared vec4 vsum[WG_SIZE];
shared uint last;

// For each head i < GQ, the max (MAX != 0) or sum of v[i] over the workgroup, into hm[i].
// Every invocation calls it; it ends with a barrier.
void reduce_heads(inout float v[GQ], const bool MAX) {
    uint tid = gl_LocalInvocationID.x;
#if USE_SUBGROUP
    [[unroll]] for (uint i = 0; i < GQ; i++) {
        float r = MAX ? subgroupMax(v[i]) : subgroupAdd(v[i]);
        if (gl_SubgroupInvocationID == 0)
            red[i * NSG_MAX + gl_SubgroupID] = r;
    }
    barrier();
    if (tid < GQ) {
        float r = red[tid * NSG_MAX];
        for (uint s = 1; s < gl_NumSubgroups; s++)
            r = MAX ? max(r, red[tid * NSG_MAX + s]) : r + red[tid * NSG_MAX + s];
        hm[tid] = r;
    }
    barrier();
#else
    // one head at a time through red[] as a tree (NSG_MAX = WG_SIZE, a power of two)
    [[unroll]] for (uint i = 0; i < GQ; i++) {
        red[tid] = v[i];
        barrier();
        for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
            if (tid < s)
                red[tid] = MAX ? max(red[tid], red[tid + s]) : red[tid] + red[tid + s];
            barrier();
        }
        if (tid == 0)
            hm[i] = red[0];
        barrier();
    }
#endif
}

void main() {
    uint x = gl_WorkGroupID.x, c = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint h0 = x * GQ, g = h0 / G;
    uint p = step.pos0;
    uint lo = (WINDOW > 0 && p + 1 > WINDOW) ? p + 1 - WINDOW : 0;
    uint n = p + 1 - lo;
    uint len = max(uint(MIN_LEN), CEIL_DIV(n, uint(NSPLIT)));
    uint n_live = CEIL_DIV(n, len);
    const float NEG_INF = -1.0 / 0.0;
    uint dq = tid % NQ, kg = tid / NQ;

    if (c < n_live) { // uniform per workgroup
        uint j_lo = lo + c * len, j_hi = min(j_lo + len, p + 1);
        for (uint i = tid; i < GQ * NQ; i += WG_SIZE) {
            uint hh = h0 + i / NQ, d = 4 * (i % NQ);
            vec4 v = vec4(0.0);
            for (uint e = 0; e < 4; e++)
                if (d + e < HD)
                    v[e] = q[hh * HD + d + e];
            qs[i] = v * (1.0 / sqrt(float(HD)));
        }
        float m_run[GQ], l_run[GQ];
        vec4 acc[GQ];
        [[unroll]] for (uint i = 0; i < GQ; i++) {
            m_run[i] = NEG_INF;
            l_run[i] = 0.0;
            acc[i] = vec4(0.0);
        }
        barrier();
        for (uint jb = j_lo; jb < j_hi; jb += WG_SIZE) {
            // scores of this invocation's key for every head of the group
            uint j = jb + tid;
            bool live = j < j_hi;
            float s[GQ];
            [[unroll]] for (uint i = 0; i < GQ; i++)
                s[i] = live ? 0.0 : NEG_INF;
            if (live) {
#if KV_Q8
                // the key's 32-value blocks: 16 int8 values a load, one scale a block,
                // applied to the block's dot product
                uint r0 = KVQ8_ROW(j);
                [[unroll]] for (uint b = 0; b < HD / 32; b++) {
                    float d = KVQ8_D(kq, r0, g * HD + 32 * b);
                    float sb[GQ];
                    [[unroll]] for (uint i = 0; i < GQ; i++)
                        sb[i] = 0.0;
                    [[unroll]] for (uint u = 0; u < 2; u++) {
                        uvec4 w = kq4[(r0 + g * (HD / 4)) / 4 + 2 * b + u];
                        [[unroll]] for (uint c = 0; c < 4; c++) {
                            vec4 k = KVQ8_Q4(w[c]);
                            [[unroll]] for (uint i = 0; i < GQ; i++)
                                sb[i] += dot(qs[i * NQ + 8 * b + 4 * u + c], k);
                        }
                    }
                    [[unroll]] for (uint i = 0; i < GQ; i++)
                        s[i] += d * sb[i];
                }
#elif K16 && HD % 8 == 0
                // 8 halves a load
                [[unroll]] for (uint u = 0; u < HD / 8; u++) {
                    uvec4 w = kc8[(j * KV_W + g * HD) / 8 + u];
                    vec4 k0 = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
                    vec4 k1 = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
                    [[unroll]] for (uint i = 0; i < GQ; i++)
                        s[i] += dot(qs[i * NQ + 2 * u], k0) + dot(qs[i * NQ + 2 * u + 1], k1);
                }
#else
                [[unroll]] for (uint qd = 0; qd < NQ; qd++) {
                    vec4 k = KQUAD(j, g, qd);
                    [[unroll]] for (uint i = 0; i < GQ; i++)
                        s[i] += dot(qs[i * NQ + qd], k);
                }
#endif
            }
            // this invocation's V quads (key group kg: keys kg, kg + VG, ... of the
            // block, dim quad dq), loaded before the reduction so that they are in flight
            // during it; keys past the split are never read (the cache may hold NaN there)
            uvec2 vr[VK];
            [[unroll]] for (uint t = 0; t < VK; t++) {
                uint jj = kg + t * VG;
                vr[t] = uvec2(0u);
                if (kg < VG && jj < WG_SIZE && jb + jj < j_hi)
                    vr[t] = VQUAD(jb + jj, g, dq);
            }
            reduce_heads(s, true);
            // rescale the running state to the new max; the block's weights into pr
            [[unroll]] for (uint i = 0; i < GQ; i++) {
                float mn = max(m_run[i], hm[i]); // finite: the block has a live key
                float sc = exp(m_run[i] - mn);
                float e = live ? exp(s[i] - mn) : 0.0;
                pr[i * WG_SIZE + tid] = e;
                l_run[i] = l_run[i] * sc + e; // this invocation's keys only
                acc[i] *= sc;
                m_run[i] = mn;
            }
            barrier();
            [[unroll]] for (uint t = 0; t < VK; t++) {
                uint jj = min(kg + t * VG, uint(WG_SIZE) - 1u); // weight 0 past the block
                vec4 v = VUNPACK(vr[t]);
                float vd = VSCALE(vr[t]); // the quad's scale, applied to the weights
                [[unroll]] for (uint i = 0; i < GQ; i++)
                    acc[i] += (pr[i * WG_SIZE + jj] * vd) * v;
            }
            barrier(); // pr and red are rewritten by the next block
        }
        reduce_heads(l_run, false);
        // the split's state: acc summed over the key groups, then m and l
        [[unroll]] for (uint i = 0; i < GQ; i++) {
            vsum[tid] = acc[i];
            barrier();
            // every invocation sums (only key group 0 stores): an unrolled loop inside
            // an if kept glslc from unrolling the loop over i, which then indexed acc
            // and m_run with a variable and pushed them out of registers
            vec4 a = acc[i];
            [[unroll]] for (uint k = 1; k < VG; k++)
                a += vsum[k * NQ + dq];
            if (kg == 0)
                part4[((h0 + i) * NSPLIT + c) * NQ + dq] = a;
            if (tid == 0) {
                uint mi = ML0 + ((h0 + i) * NSPLIT + c) * 2;
                part4[mi / 4][mi % 4] = m_run[i];
                part4[(mi + 1) / 4][(mi + 1) % 4] = hm[i];
            }
            barrier();
        }
    }
    memoryBarrierBuffer();
    barrier();
    if (tid == 0)
        last = atomicAdd(cnt[x], 1u) == uint(NSPLIT) - 1u ? 1u : 0u;
    barrier();
    if (last == 0u)
        return;
    memoryBarrierBuffer();
    // Combination. pr as scratch, [head][split] rows of NSP: wm (m_c, -inf past the live
    // splits), wl (l_c), wt (a tree), ws (the weights exp(m_c - M) / L)
#define WM 0
#define WL (GQ * NSP)
#define WT (2 * GQ * NSP)
#define WS (3 * GQ * NSP)
    for (uint i = tid; i < GQ * NSP; i += WG_SIZE) {
        uint hi = i / NSP, cc = i % NSP;
        bool lv = cc < n_live;
        uint mi = ML0 + ((h0 + hi) * NSPLIT + cc) * 2;
        float m = lv ? part_f(mi) : NEG_INF;
        pr[WM + i] = m;
        pr[WL + i] = lv ? part_f(mi + 1) : 0.0;
        pr[WT + i] = m;
    }
    barrier();
    for (uint w = NSP / 2; w > 0; w >>= 1) { // M of each head into wt[head][0]
        for (uint i = tid; i < GQ * NSP; i += WG_SIZE)
            if (i % NSP < w)
                pr[WT + i] = max(pr[WT + i], pr[WT + i + w]);
        barrier();
    }
    for (uint i = tid; i < GQ * NSP; i += WG_SIZE) {
        float e = exp(pr[WM + i] - pr[WT + (i / NSP) * NSP]); // 0 past the live splits
        pr[WS + i] = e;
        pr[WL + i] *= e;
    }
    barrier();
    for (uint w = NSP / 2; w > 0; w >>= 1) { // L of each head into wl[head][0]
        for (uint i = tid; i < GQ * NSP; i += WG_SIZE)
            if (i % NSP < w)
                pr[WL + i] += pr[WL + i + w];
        barrier();
    }
    for (uint i = tid; i < GQ * NSP; i += WG_SIZE)
        pr[WS + i] /= pr[WL + (i / NSP) * NSP];
    barrier();
    // o = sum_c ws_c acc_c: a (head, dim quad) pair an invocation, and where there are
    // invocations to spare, CG split groups a pair summed through vsum. CU splits a
    // step, so that their loads are in flight together.
#ifndef CU
#define CU 16
#endif
#define NPAIR (GQ * NQ)
#if NPAIR >= WG_SIZE
#define CG 1
#else
#define CG (WG_SIZE / NPAIR)
#endif
    for (uint i0 = 0; i0 < NPAIR; i0 += WG_SIZE / CG) {
        uint i = i0 + tid % (WG_SIZE / CG), cg = tid / (WG_SIZE / CG);
        uint hi = i / NQ, qd = i % NQ;
        vec4 a = vec4(0.0);
        if (i < NPAIR && cg < CG) {
            uint pb = (h0 + hi) * NSPLIT * NQ + qd;
            for (uint cc = cg; cc < n_live; cc += CU * CG) {
                vec4 v[CU];
                [[unroll]] for (uint u = 0; u < CU; u++) {
                    uint cu = min(cc + u * CG, n_live - 1u); // weight 0 unless live
                    v[u] = part4[pb + cu * NQ];
                }
                [[unroll]] for (uint u = 0; u < CU; u++)
                    a += (cc + u * CG < n_live ? pr[WS + hi * NSP + cc + u * CG] : 0.0) * v[u];
            }
        }
#if NPAIR * 2 <= WG_SIZE
        vsum[tid] = a;
        barrier();
        if (cg == 0)
            for (uint k = 1; k < CG; k++)
                a += vsum[tid + k * (WG_SIZE / CG)];
        barrier();
#endif
        if (cg == 0 && i < NPAIR) {
            [[unroll]] for (uint e = 0; e < 4; e++)
                if (4 * qd + e < HD)
                    o[(h0 + hi) * HD + 4 * qd + e] = a[e];
        }
    }
    if (tid == 0)
        cnt[x] = 0u;
}
