#version 450
// rope_kv.comp - RoPE in transformers' rotate-half layout on the fused QKV projection,
// writing roped q to its own buffer and roped k and plain v into the f16 KV cache
// at positions pos0 + t:
//   out[i]        = x[i] * cos[p, i] - x[i + HD/2] * sin[p, i]
//   out[i + HD/2] = x[i + HD/2] * cos[p, i] + x[i] * sin[p, i]      (i < HD/2)
// Bindings: 0 step readonly; 1 qkv float[n_tok, (NH + 2 NKV) HD] readonly;
//   2 rope vec2[n_ctx, HD/2] (cos, sin; host-computed as transformers does) readonly;
//   3 q float[n_tok, NH HD] writeonly; 4 k cache f16[n_ctx, NKV HD]; 5 v cache f16[n_ctx, NKV HD].
// Defines: HD, NH, NKV, WG_SIZE.
// Geometry: grid (n_tok, NH + NKV): one workgroup per token and head; heads >= NH are KV heads.
// Reference: tests/ref rope (LlamaRotaryEmbedding + apply_rotary_pos_emb).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
STEP_BLOCK(0)
layout(std430, set = 0, binding = 1) readonly buffer QKV { float qkv[]; };
layout(std430, set = 0, binding = 2) readonly buffer Rope { vec2 cs[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 4) writeonly buffer KC { float16_t kc[]; };
layout(std430, set = 0, binding = 5) writeonly buffer VC { float16_t vc[]; };

#define HALF (HD / 2)
#define QKV_W ((NH + 2 * NKV) * HD)

void main() {
    uint t = gl_WorkGroupID.x, h = gl_WorkGroupID.y;
    uint p = step.pos0 + t;
    uint src = t * QKV_W + h * HD;
    for (uint i = gl_LocalInvocationID.x; i < HALF; i += WG_SIZE) {
        vec2 c = cs[p * HALF + i];
        float x1 = qkv[src + i], x2 = qkv[src + i + HALF];
        float o1 = x1 * c.x - x2 * c.y;
        float o2 = x2 * c.x + x1 * c.y;
        if (h < NH) {
            q[t * NH * HD + h * HD + i] = o1;
            q[t * NH * HD + h * HD + i + HALF] = o2;
        } else {
            uint g = h - NH;
            uint dst = p * NKV * HD + g * HD;
            kc[dst + i] = float16_t(o1);
            kc[dst + i + HALF] = float16_t(o2);
            uint vsrc = t * QKV_W + (NH + NKV) * HD + g * HD;
            vc[dst + i] = float16_t(qkv[vsrc + i]);
            vc[dst + i + HALF] = float16_t(qkv[vsrc + i + HALF]);
        }
    }
}
