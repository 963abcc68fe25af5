#version 450
// attn.comp - causal attention of the n_tok queries of a prefill step over the KV cache,
// with GQA/MQA and an optional sliding window, in tiles (flash attention: online
// softmax, no score matrix in memory):
//   o[t, h] = sum_j softmax_j(q[t, h] . k[j, g] / sqrt(HD)) v[j, g],  g = h / (NH / NKV),
//   j from lo to p = pos0 + t, lo = max(0, p + 1 - WINDOW) when WINDOW > 0, else 0.
// Bindings: 0 step readonly; 1 q float[n_tok, NH HD] readonly; 2 k cache f16[n_ctx, NKV HD]
//   readonly; 3 v cache f16[n_ctx, NKV HD] readonly (KV_Q8: both 8-bit rows of KV_RS
//   bytes, common.glsl); 4 o float[n_tok, NH HD] writeonly.
// Defines: HD, NH, NKV, WINDOW (0: none), WG_SIZE, BQ (queries a workgroup; WG_SIZE % BQ
//   == 0); KV_Q8, KV_RS.
// Geometry: grid (NH, CEIL_DIV(n_tok, BQ)). A workgroup takes BQ consecutive queries of
//   one head, WG_SIZE / BQ invocations ("lanes") each, and walks the keys the block needs
//   in tiles of BKV: K and V rows of the tile go to shared memory once for all BQ queries
//   (f32; K rows padded by one so the lanes' reads at one dimension hit different banks);
//   each lane scores some keys of its query against q in shared memory, then every lane
//   of the query rescales its output dimensions and adds the tile's V rows. Keys past a
//   query's position or before its window get weight 0 (never read past the block's
//   last position). Shared memory: 4 (BQ HD + BKV (2 HD + 1) + BQ BKV) bytes, 26 KiB at
//   HD 128.
// Reference: tests/ref attention (eager attention of transformers).
#include "common.glsl"

#define BKV (HD <= 64 ? 32 : HD <= 128 ? 16 : 8)  // keys a tile
#define LPQ (WG_SIZE / BQ)                         // lanes a query
#define DPL CEIL_DIV(HD, LPQ)                      // output dimensions a lane
#define KV_W (NKV * HD)
#define KST (HD + 1)                               // row stride of ks

layout(local_size_x = WG_SIZE) in;
STEP_BLOCK(0)
layout(std430, set = 0, binding = 1) readonly buffer Q { float q[]; };
#if KV_Q8
layout(std430, set = 0, binding = 2) readonly buffer KC { uint kq[]; };
layout(std430, set = 0, binding = 3) readonly buffer VC { uint vq[]; };
#else
layout(std430, set = 0, binding = 2) readonly buffer KC { float16_t kc[]; };
layout(std430, set = 0, binding = 3) readonly buffer VC { float16_t vc[]; };
#endif
layout(std430, set = 0, binding = 4) writeonly buffer O { float o[]; };

shared float qs[BQ * HD];
shared float ks[BKV * KST];
shared float vs[BKV * HD];
shared float ss[BQ * BKV];

void main() {
    uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    uint g = h / (NH / NKV);
    uint t0 = gl_WorkGroupID.y * BQ;
    uint qi = tid / LPQ, lane = tid % LPQ;
    uint t = t0 + qi;
    uint n_q = min(uint(BQ), step.n_tok - t0);         // valid queries of the block
    uint p = step.pos0 + t;                            // this query's position
    uint lo = (WINDOW > 0 && p + 1 > WINDOW) ? p + 1 - WINDOW : 0;
    uint p_first = step.pos0 + t0, p_last = step.pos0 + t0 + n_q - 1;
    uint j_lo = (WINDOW > 0 && p_first + 1 > WINDOW) ? p_first + 1 - WINDOW : 0;
    const float scale = 1.0 / sqrt(float(HD));

    for (uint e = tid; e < BQ * HD; e += WG_SIZE) {
        uint r = e / HD;
        qs[e] = r < n_q ? q[(t0 + r) * NH * HD + h * HD + e % HD] : 0.0;
    }

    float m = -1.0 / 0.0, l = 0.0;
    float acc[DPL];
    [[unroll]] for (uint i = 0; i < DPL; i++)
        acc[i] = 0.0;
    for (uint j0 = j_lo; j0 <= p_last; j0 += BKV) {
        for (uint e = tid; e < BKV * HD; e += WG_SIZE) {
            uint r = e / HD, d = e % HD, j = j0 + r;
            float kv = 0.0, vv = 0.0;
            if (j <= p_last) {
#if KV_Q8
                uint r0 = KVQ8_ROW(j), i = g * HD + d;
                kv = KVQ8_D(kq, r0, i) * KVQ8_Q1(kq[r0 + i / 4], i % 4);
                vv = KVQ8_D(vq, r0, i) * KVQ8_Q1(vq[r0 + i / 4], i % 4);
#else
                kv = float(kc[j * KV_W + g * HD + d]);
                vv = float(vc[j * KV_W + g * HD + d]);
#endif
            }
            ks[r * KST + d] = kv;
            vs[e] = vv;
        }
        barrier();
        for (uint e = lane; e < BKV; e += LPQ) {
            uint j = j0 + e;
            float s = -1.0 / 0.0;
            if (qi < n_q && j <= p && j >= lo) {
                s = 0.0;
                for (uint d = 0; d < HD; d++)
                    s += qs[qi * HD + d] * ks[e * KST + d];
                s *= scale;
            }
            ss[qi * BKV + e] = s;
        }
        barrier();
        float mt = -1.0 / 0.0;
        for (uint e = 0; e < BKV; e++)
            mt = max(mt, ss[qi * BKV + e]);
        if (mt > -1.0 / 0.0) {  // some key of this tile counts for this query
            float m_new = max(m, mt);
            float corr = exp(m - m_new);  // 0 while m is still -inf
            l *= corr;
            [[unroll]] for (uint i = 0; i < DPL; i++)
                acc[i] *= corr;
            for (uint e = 0; e < BKV; e++) {
                float pe = exp(ss[qi * BKV + e] - m_new);
                l += pe;
                [[unroll]] for (uint i = 0; i < DPL; i++) {
                    uint d = lane + i * LPQ;
                    if (d < HD)
                        acc[i] += pe * vs[e * HD + d];
                }
            }
            m = m_new;
        }
        barrier();
    }
    if (qi < n_q)
        [[unroll]] for (uint i = 0; i < DPL; i++) {
            uint d = lane + i * LPQ;
            if (d < HD)
                o[t * NH * HD + h * HD + d] = acc[i] / l;
        }
}
