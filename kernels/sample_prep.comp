#version 450
// sample_prep.comp - the first step of sampling: applies the sparse edits (logit
// bias, then repetition/frequency/presence penalties) and the temperature to every
// logit, and finds each workgroup's maximum.
// Bindings (sample.glsl): 0 logits float[n] readonly; 1 edits Edit[n_edits]
//   readonly, sorted by id; 3 work float[n] written; 4 part uint[n_prep] written
//   (float bits of each workgroup's max). Others unused.
// Push constants: sample.glsl Push (n, n_edits, inv_temp, rp, inv_rp).
// Defines: WG_SIZE.
// Geometry: grid (n_prep = ceil(n / WG_SIZE)); one logit per invocation, then a
//   shared-memory max reduction.
// Reference: tests/ref/sample_ref.c sample_ref_transform (bit-identical: the same
//   f32 operations, no contraction).
#include "common.glsl"
#include "sample.glsl"

layout(local_size_x = WG_SIZE) in;

shared float red[WG_SIZE];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint i = gl_GlobalInvocationID.x;
    precise float v = NEG_INF;
    if (i < pc.n) {
        v = logits[i];
        if (isnan(v))
            v = NEG_INF;
        if (pc.n_edits > 0u) {
            // lower_bound of i in the sorted edits
            uint lo = 0u, hi = pc.n_edits;
            while (lo < hi) {
                uint mid = (lo + hi) >> 1;
                if (edits[mid].id < i)
                    lo = mid + 1u;
                else
                    hi = mid;
            }
            if (lo < pc.n_edits && edits[lo].id == i) {
                Edit e = edits[lo];
                v = v + e.bias;
                if (e.count > 0u) {
                    // llama.cpp llama_sampler_penalties_apply (CTRL paper, sign-aware)
                    v = v <= 0.0 ? v * pc.rp : v * pc.inv_rp;
                    v = v - e.sub;
                }
            }
        }
        v = v * pc.inv_temp;
        if (isnan(v))
            v = NEG_INF;
        v = min(v, FLT_MAX_);                         // +inf ranks as the largest finite
        if ((floatBitsToUint(v) & 0x7FFFFFFFu) == 0u) // -0 and +0 are one value
            v = uintBitsToFloat(0u);
        work[i] = v;
    }
    red[tid] = v;
    barrier();
    for (uint s = WG_SIZE / 2u; s > 0u; s >>= 1) {
        if (tid < s)
            red[tid] = max(red[tid], red[tid + s]);
        barrier();
    }
    if (tid == 0u)
        part[gl_WorkGroupID.x] = floatBitsToUint(red[0]);
}
