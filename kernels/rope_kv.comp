#version 450
// rope_kv.comp - RoPE in transformers' rotate-half layout on the fused QKV projection,
// writing roped q to its own buffer and roped k and plain v into the KV cache (f16, or
// with KV_Q8 the 8-bit rows of common.glsl) at positions pos0 + t:
//   out[i]        = x[i] * cos[p, i] - x[i + HD/2] * sin[p, i]
//   out[i + HD/2] = x[i + HD/2] * cos[p, i] + x[i] * sin[p, i]      (i < HD/2)
// Bindings: 0 step readonly; 1 qkv float[n_tok, (NH + 2 NKV) HD] readonly;
//   2 rope vec2[n_ctx, HD/2] (cos, sin; host-computed as transformers does) readonly;
//   3 q float[n_tok, NH HD] writeonly; 4 k cache f16[n_ctx, NKV HD]; 5 v cache f16[n_ctx, NKV HD].
// Defines: HD, NH, NKV, WG_SIZE; KV_Q8, KV_RS (8-bit cache rows of KV_RS bytes).
// KV_Q8: a KV head's roped k and its v go through shared memory, then each 32-value
//   block is quantized by one invocation as q8_0 is: d = max |x| / 127, q = x / d
//   rounded half to even, d stored as f16 (tests/ref: ref_round_kv_q8).
// Defines: HPW, heads a workgroup (1 with KV_Q8; lib/session.c rope_hpw: WG_SIZE / (HD/2)
//   where that is more than 1, so that short heads do not leave most invocations idle).
// Geometry: grid (n_tok, CEIL_DIV(NH + NKV, HPW)): a workgroup per token and HPW heads,
//   an invocation per pair (i, i + HD/2) of a head (or a stride of them where HPW is 1);
//   heads >= NH are KV heads.
// Reference: tests/ref rope (LlamaRotaryEmbedding + apply_rotary_pos_emb).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
STEP_BLOCK(0)
layout(std430, set = 0, binding = 1) readonly buffer QKV { float qkv[]; };
layout(std430, set = 0, binding = 2) readonly buffer Rope { vec2 cs[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Q { float q[]; };
#if KV_Q8
layout(std430, set = 0, binding = 4) writeonly buffer KC { uint kc[]; };
layout(std430, set = 0, binding = 4) writeonly buffer KCH { float16_t kch[]; };
layout(std430, set = 0, binding = 5) writeonly buffer VC { uint vc[]; };
layout(std430, set = 0, binding = 5) writeonly buffer VCH { float16_t vch[]; };
shared float kvs[2 * HD]; // the head's roped k, then its v
#else
layout(std430, set = 0, binding = 4) writeonly buffer KC { float16_t kc[]; };
layout(std430, set = 0, binding = 5) writeonly buffer VC { float16_t vc[]; };
#endif

#ifndef HPW
#define HPW 1
#endif
#if KV_Q8 && HPW != 1
#error "rope_kv.comp: the q8 cache takes a head a workgroup"
#endif
#define HALF (HD / 2)
#define QKV_W ((NH + 2 * NKV) * HD)
#define KV_W (NKV * HD)

void main() {
    uint t = gl_WorkGroupID.x, lid = gl_LocalInvocationID.x;
#if HPW > 1
    uint h = gl_WorkGroupID.y * HPW + lid / HALF;
    if (lid >= HPW * HALF || h >= NH + NKV)
        return;  // no barrier follows in this mode
    uint i0 = lid % HALF, di = HALF;
#else
    uint h = gl_WorkGroupID.y;
    uint i0 = lid, di = WG_SIZE;
#endif
    uint p = step.pos0 + t;
    uint src = t * QKV_W + h * HD;
    for (uint i = i0; i < HALF; i += di) {
        vec2 c = cs[p * HALF + i];
        float x1 = qkv[src + i], x2 = qkv[src + i + HALF];
        float o1 = x1 * c.x - x2 * c.y;
        float o2 = x2 * c.x + x1 * c.y;
        if (h < NH) {
            q[t * NH * HD + h * HD + i] = o1;
            q[t * NH * HD + h * HD + i + HALF] = o2;
        } else {
            uint g = h - NH;
#if KV_Q8
            uint vsrc = t * QKV_W + (NH + NKV) * HD + g * HD;
            kvs[i] = o1;
            kvs[i + HALF] = o2;
            kvs[HD + i] = qkv[vsrc + i];
            kvs[HD + i + HALF] = qkv[vsrc + i + HALF];
#else
            uint dst = p * NKV * HD + g * HD;
            kc[dst + i] = float16_t(o1);
            kc[dst + i + HALF] = float16_t(o2);
            uint vsrc = t * QKV_W + (NH + NKV) * HD + g * HD;
            vc[dst + i] = float16_t(qkv[vsrc + i]);
            vc[dst + i + HALF] = float16_t(qkv[vsrc + i + HALF]);
#endif
        }
    }
#if KV_Q8
    if (h < NH) // uniform per workgroup
        return;
    barrier();
    uint g = h - NH, row = KVQ8_ROW(p);
    for (uint b = gl_LocalInvocationID.x; b < 2 * (HD / 32); b += WG_SIZE) {
        uint kv = b / (HD / 32), blk = b % (HD / 32), base = kv * HD + 32 * blk;
        float amax = 0.0;
        for (uint e = 0; e < 32; e++)
            amax = max(amax, abs(kvs[base + e]));
        float d = amax / 127.0, id = d != 0.0 ? 1.0 / d : 0.0;
        uint i0 = g * HD + 32 * blk; // the block's first value in the row
        for (uint w = 0; w < 8; w++) {
            uint word = 0u;
            for (uint k = 0; k < 4; k++) {
                int qv = int(clamp(roundEven(kvs[base + 4 * w + k] * id), -127.0, 127.0));
                word |= (uint(qv) & 0xffu) << (8 * k);
            }
            if (kv == 0u)
                kc[row + i0 / 4 + w] = word;
            else
                vc[row + i0 / 4 + w] = word;
        }
        uint si = 2 * row + KV_W / 2 + i0 / 32; // f16 index of the scale
        if (kv == 0u)
            kch[si] = float16_t(d);
        else
            vch[si] = float16_t(d);
    }
#endif
}
