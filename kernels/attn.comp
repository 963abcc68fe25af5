#version 450
// attn.comp - causal attention of n_tok queries over the KV cache with GQA/MQA and an
// optional sliding window, one pass with online softmax (no score matrix in memory):
//   o[t, h] = sum_j softmax_j(q[t, h] . k[j, g] / sqrt(HD)) v[j, g],  g = h / (NH / NKV),
//   j from lo to p = pos0 + t, lo = max(0, p + 1 - WINDOW) when WINDOW > 0, else 0.
// Bindings: 0 step readonly; 1 q float[n_tok, NH HD] readonly; 2 k cache f16[n_ctx, NKV HD]
//   readonly; 3 v cache f16[n_ctx, NKV HD] readonly; 4 o float[n_tok, NH HD] writeonly.
// Defines: HD, NH, NKV, WINDOW (0: none), WG_SIZE, USE_SUBGROUP.
// Geometry: grid (NH, n_tok). Keys go in blocks of WG_SIZE, one key per invocation for
//   the scores; the output dims are spread over the invocations.
// Reference: tests/ref attention (eager attention of transformers).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
STEP_BLOCK(0)
layout(std430, set = 0, binding = 1) readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 2) readonly buffer KC { float16_t kc[]; };
layout(std430, set = 0, binding = 3) readonly buffer VC { float16_t vc[]; };
layout(std430, set = 0, binding = 4) writeonly buffer O { float o[]; };

#define DPT CEIL_DIV(HD, WG_SIZE)
#define KV_W (NKV * HD)

shared float qs[HD];
shared float pr[WG_SIZE];
shared float scratch[WG_SIZE];
WG_REDUCE(wg_sum, subgroupAdd, LG_ADD)
WG_REDUCE(wg_max, subgroupMax, max)

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint g = h / (NH / NKV);
    uint p = step.pos0 + t;
    uint lo = (WINDOW > 0 && p + 1 > WINDOW) ? p + 1 - WINDOW : 0;
    const float scale = 1.0 / sqrt(float(HD));
    for (uint d = tid; d < HD; d += WG_SIZE)
        qs[d] = q[t * NH * HD + h * HD + d];
    barrier();

    float m = -1.0 / 0.0, l = 0.0;
    float acc[DPT];
    [[unroll]] for (uint i = 0; i < DPT; i++)
        acc[i] = 0.0;
    for (uint j0 = lo; j0 <= p; j0 += WG_SIZE) {
        uint j = j0 + tid;
        float s = -1.0 / 0.0;
        if (j <= p) {
            s = 0.0;
            uint kb = j * KV_W + g * HD;
            for (uint d = 0; d < HD; d++)
                s += qs[d] * float(kc[kb + d]);
            s *= scale;
        }
        float m_new = max(m, wg_max(s));
        float e = j <= p ? exp(s - m_new) : 0.0;
        pr[tid] = e;
        float corr = exp(m - m_new);
        l = l * corr + wg_sum(e);   // its barriers also publish pr[]
        uint nk = min(uint(WG_SIZE), p + 1 - j0);
        [[unroll]] for (uint i = 0; i < DPT; i++) {
            uint d = tid + i * WG_SIZE;
            if (d < HD) {
                float a = acc[i] * corr;
                for (uint jj = 0; jj < nk; jj++)
                    a += pr[jj] * float(vc[(j0 + jj) * KV_W + g * HD + d]);
                acc[i] = a;
            }
        }
        m = m_new;
        barrier();
    }
    [[unroll]] for (uint i = 0; i < DPT; i++) {
        uint d = tid + i * WG_SIZE;
        if (d < HD)
            o[t * NH * HD + h * HD + d] = acc[i] / l;
    }
}
