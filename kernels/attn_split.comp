#version 450
// attn_split.comp - decode attention as flash decoding in one dispatch: the keys of one
// query (the token at pos0) are split into chunks of CHUNK keys; each workgroup scores
// one chunk for one head and writes the chunk's partial softmax state
//   m = max_j s_j, l = sum_j exp(s_j - m), acc[d] = sum_j exp(s_j - m) v[j, g, d]
// with s_j = q[h] . k[j, g] / sqrt(HD), g = h / (NH / NKV), j in the chunk and in
// [lo, pos0] (lo from WINDOW as in attn.comp). The last workgroup of a head to finish
// (an atomic counter per head) combines the head's live chunks:
//   M = max_c m_c, L = sum_c l_c exp(m_c - M), o[h, d] = sum_c acc_c[d] exp(m_c - M) / L
// and resets the counter, so the next layer (after a barrier) finds it at 0. This saves
// the second dispatch and its barrier (~5.8 us each on the H100, PLATFORM.md).
// Bindings: 0 step readonly; 1 q float[NH HD] readonly; 2 k cache f16[n_ctx, NKV HD] readonly;
//   3 v cache f16 readonly; 4 part float[NH, n_chunks, HD + 2] (acc, then m, l);
//   5 o float[NH HD] writeonly; 6 cnt uint[NH], zero before the first dispatch.
// Defines: HD, NH, NKV, WINDOW, CHUNK (keys per workgroup = WG_SIZE), WG_SIZE, USE_SUBGROUP.
//   K rows are read as f16vec4 when HD % 4 == 0 (NKV HD is then a multiple of 4 too).
// Geometry: grid (NH, n_chunks) with n_chunks = CEIL_DIV(n_ctx, CHUNK) fixed at record
//   time; chunks past pos0 (or before the window) only count themselves in.
// Visibility: part is coherent; every invocation fences its writes (memoryBarrierBuffer)
//   before the workgroup barrier that precedes the counter's atomicAdd, and the last
//   workgroup fences again before it reads the other chunks.
// Reference: tests/ref attention (the combination equals one softmax over all keys).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
STEP_BLOCK(0)
layout(std430, set = 0, binding = 1) readonly buffer Q { float q[]; };
#if HD % 4 == 0
layout(std430, set = 0, binding = 2) readonly buffer KC { f16vec4 kc4[]; };
#else
layout(std430, set = 0, binding = 2) readonly buffer KC { float16_t kc[]; };
#endif
// V by quads of dims: a key group of invocations per dim quad (VG groups, CHUNK / VG keys
// each, a constant count the compiler unrolls so that the loads are in flight together),
// summed over the groups in shared memory. A loop over the chunk's keys per dim, with a
// dependent global load each iteration, made decode attention latency-bound (~25 us a
// layer on the H100 for a 64-key chunk).
#if HD % 4 == 0 && HD / 4 <= WG_SIZE && WG_SIZE % (HD / 4) == 0 && CHUNK % (WG_SIZE / (HD / 4)) == 0
#define V_QUADS 1
#define VQ (HD / 4)
#define VG (WG_SIZE / VQ)
layout(std430, set = 0, binding = 3) readonly buffer VC { f16vec4 vc4[]; };
shared vec4 vsum[WG_SIZE];
#else
#define V_QUADS 0
layout(std430, set = 0, binding = 3) readonly buffer VC { float16_t vc[]; };
#endif
layout(std430, set = 0, binding = 4) coherent buffer Part { float part[]; };
layout(std430, set = 0, binding = 5) writeonly buffer O { float o[]; };
layout(std430, set = 0, binding = 6) coherent buffer Cnt { uint cnt[]; };

#define KV_W (NKV * HD)
#define PW (HD + 2)

#if HD % 4 == 0
shared vec4 qs4[HD / 4];
#else
shared float qs[HD];
#endif
shared float pr[WG_SIZE];
shared float scratch[WG_SIZE];
shared uint last;
WG_REDUCE(wg_sum, subgroupAdd, LG_ADD)
WG_REDUCE(wg_max, subgroupMax, max)

// The chunk's partial state (skipped for chunks outside [lo, p]).
void partial(uint h, uint c, uint g, uint p, uint lo, uint pb) {
    uint tid = gl_LocalInvocationID.x;
    uint j0 = c * CHUNK;
#if HD % 4 == 0
    for (uint d = tid; d < HD / 4; d += WG_SIZE)
        qs4[d] = vec4(q[h * HD + 4 * d], q[h * HD + 4 * d + 1], q[h * HD + 4 * d + 2],
                      q[h * HD + 4 * d + 3]);
#else
    for (uint d = tid; d < HD; d += WG_SIZE)
        qs[d] = q[h * HD + d];
#endif
    barrier();
    uint j = j0 + tid;
    bool live = j <= p && j >= lo;
    float s = -1.0 / 0.0;
    if (live) {
        uint kb = j * KV_W + g * HD;
        float a = 0.0;
#if HD % 4 == 0
        [[unroll]] for (uint d = 0; d < HD / 4; d++)
            a += dot(qs4[d], vec4(kc4[kb / 4 + d]));
#else
        for (uint d = 0; d < HD; d++)
            a += qs[d] * float(kc[kb + d]);
#endif
        s = a * (1.0 / sqrt(float(HD)));
    }
    float m = wg_max(s);
    float e = live ? exp(s - m) : 0.0;
    pr[tid] = e;
    float l = wg_sum(e);   // its barriers publish pr[]
#if V_QUADS
    // Keys past p (not written yet: anything, NaN included) read key p instead; their
    // weight pr is 0.
    uint dq = tid % VQ, kg = tid / VQ;
    vec4 a4 = vec4(0.0);
    [[unroll]] for (uint i = 0; i < CHUNK / VG; i++) {
        uint jj = kg + i * VG;
        a4 += pr[jj] * vec4(vc4[(min(j0 + jj, p) * KV_W + g * HD) / 4 + dq]);
    }
    vsum[tid] = a4;
    barrier();
    if (kg == 0) {
        for (uint k = 1; k < VG; k++)
            a4 += vsum[k * VQ + dq];
        part[pb + 4 * dq] = a4.x;
        part[pb + 4 * dq + 1] = a4.y;
        part[pb + 4 * dq + 2] = a4.z;
        part[pb + 4 * dq + 3] = a4.w;
    }
#else
    uint nk = min(uint(CHUNK), p + 1 - j0);
    for (uint d = tid; d < HD; d += WG_SIZE) {
        float a = 0.0;
        for (uint jj = 0; jj < nk; jj++)
            a += pr[jj] * float(vc[(j0 + jj) * KV_W + g * HD + d]);
        part[pb + d] = a;
    }
#endif
    if (tid == 0) {
        part[pb + HD] = m;
        part[pb + HD + 1] = l;
    }
}

void main() {
    uint h = gl_WorkGroupID.x, c = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint n_chunks = gl_NumWorkGroups.y;
    uint g = h / (NH / NKV);
    uint p = step.pos0;
    uint lo = (WINDOW > 0 && p + 1 > WINDOW) ? p + 1 - WINDOW : 0;
    uint c_lo = lo / CHUNK, c_hi = p / CHUNK;  // the live chunks
    uint base = h * n_chunks * PW;
    if (c >= c_lo && c <= c_hi)                // uniform per workgroup
        partial(h, c, g, p, lo, base + c * PW);
    memoryBarrierBuffer();
    barrier();
    if (tid == 0)
        last = atomicAdd(cnt[h], 1u) == n_chunks - 1u ? 1u : 0u;
    barrier();
    if (last == 0u)
        return;
    memoryBarrierBuffer();
    float M = -1.0 / 0.0;
    for (uint cc = c_lo; cc <= c_hi; cc++)
        M = max(M, part[base + cc * PW + HD]);
    float L = 0.0;
    for (uint cc = c_lo; cc <= c_hi; cc++)
        L += part[base + cc * PW + HD + 1] * exp(part[base + cc * PW + HD] - M);
    for (uint d = tid; d < HD; d += WG_SIZE) {
        float a = 0.0;
        for (uint cc = c_lo; cc <= c_hi; cc++)
            a += part[base + cc * PW + d] * exp(part[base + cc * PW + HD] - M);
        o[h * HD + d] = a / L;
    }
    if (tid == 0)
        cnt[h] = 0u;
}
