// sample.glsl - what the sampling kernels (sample_*.comp) share: their bindings,
// push constants, state block and the float <-> sortable-key maps. Included, never
// compiled alone. C side: lib/sample.c (struct lg_sample_push, struct lg_sample_state).
//
// The pipeline (lib/sample.c records it; tests/ref/sample_ref.c is the reference):
//   sample_prep    work = (logits + bias, penalised) * 1/T; per-workgroup max
//   sample_select  OP_INIT: the max M, min-p threshold, the "keep all" cut
//   top-k:  8 x (sample_hist pass j ; sample_select OP_COUNT pass j)
//   top-p:  8 x (sample_hist pass j ; sample_select OP_MASS pass j)
//   sample_mass    per chunk: mass of the survivors above the cut, ties at the cut
//   sample_draw    one workgroup per uniform number: the drawn id
//
// Candidates are ranked by (logit descending, id ascending). Every filter keeps a
// prefix of that ranking, so the survivors are described by a cut (t, take): every
// id whose key is above t, plus the first `take` ids (by id) whose key equals t,
// and of those only the ones whose logit is >= the min-p threshold lmin.
// The radix searches find t 4 bits at a time, most significant first, from
// per-chunk histograms of 16 counts and 16 masses (mass = exp(logit - M)) that
// are reduced in a fixed order, so every result is reproducible on one device.
#ifndef LG_SAMPLE_GLSL
#define LG_SAMPLE_GLSL

#define IPT 16                  // elements per invocation in chunked kernels
#define CHUNK (WG_SIZE * IPT)   // elements per workgroup of hist/mass/draw
#define NO_ID 0xFFFFFFFFu
#define NEG_INF (-1.0 / 0.0)
#define FLT_MAX_ 3.402823466e+38

#define OP_INIT 0u
#define OP_COUNT 1u
#define OP_MASS 2u

// One sparse edit of a logit, sorted by id: bias, then (count > 0) the penalties.
struct Edit {
    uint id;
    float bias;  // summed logit bias of this id (may be -inf)
    uint count;  // occurrences in the penalty window; 0: no penalty
    float sub;   // count * frequency_penalty + presence_penalty
};

layout(std430, set = 0, binding = 0) readonly buffer Logits { float logits[]; };
layout(std430, set = 0, binding = 1) readonly buffer Edits { Edit edits[]; };
layout(std430, set = 0, binding = 2) readonly buffer Uniforms { float uin[]; };
layout(std430, set = 0, binding = 3) buffer Work { float work[]; };
layout(std430, set = 0, binding = 4) buffer Part { uint part[]; };
layout(std430, set = 0, binding = 5) buffer State {
    float smax;       // M: the largest transformed logit (-inf: every token banned)
    float lmin;       // min-p threshold on the logit (-inf: off)
    uint prefix;      // radix search: the key bits chosen so far
    uint cnt_above;   // radix search: ids whose key is above the current bucket
    float mass_above; // radix search: their mass
    float target;     // top-p: mass to reach
    uint t;           // the cut's key
    uint take;        // ties at t that survive (by id order)
    float zk;         // mass of the top-k prefix (0: not known yet)
    uint tie_cnt;     // ids in the bucket chosen by the last radix pass
    uint pad0, pad1;
} st;
layout(std430, set = 0, binding = 6) writeonly buffer Result { uint result[]; };

layout(push_constant) uniform Push {
    uint n;          // vocabulary size
    uint n_edits;    // entries in edits[]
    uint op;         // sample_select: OP_*
    uint pass;       // radix pass 0..7 (bits 31-4j .. 28-4j)
    uint k;          // top-k; 0: off
    uint n_chunks;   // ceil(n / CHUNK)
    uint n_prep;     // workgroups of sample_prep
    uint n_draws;    // uniform numbers in uin[]
    float inv_temp;  // 1 / temperature (1 when greedy)
    float rp;        // repeat penalty
    float inv_rp;    // 1 / repeat penalty
    float top_p;     // >= 1: off
    float log_min_p; // logf(min_p); -inf: off
} pc;

// Larger float -> larger key; -inf is above every NaN bit pattern (never stored).
uint key_of(float v) {
    uint b = floatBitsToUint(v);
    return (b & 0x80000000u) != 0u ? ~b : (b | 0x80000000u);
}
float value_of(uint k) {
    return uintBitsToFloat((k & 0x80000000u) != 0u ? (k & 0x7FFFFFFFu) : ~k);
}

#endif
