#version 450
// sample_mass.comp - per chunk, what sample_draw needs to find the chunk a draw
// lands in: the mass exp(logit - M) of the ids strictly above the cut (key > t)
// that pass min-p (logit >= lmin), and how many ids sit exactly at the cut.
// Bindings (sample.glsl): 3 work float[n] read; 5 state read (smax, lmin, t);
//   4 part uint[n_chunks * 2] written: per chunk the float bits of the mass, then
//   the tie count. Others unused.
// Push constants: sample.glsl Push (n).
// Defines: WG_SIZE.
// Geometry: grid (n_chunks); a workgroup covers CHUNK = WG_SIZE * IPT ids in the
//   same layout as sample_hist, summed by a fixed-order shared-memory tree.
// Reference: tests/ref/sample_ref.c sample_ref_probs (the survivors' softmax).
#include "common.glsl"
#include "sample.glsl"

layout(local_size_x = WG_SIZE) in;

shared float red[WG_SIZE];
shared uint ties;

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint base = gl_WorkGroupID.x * CHUNK;
    float M = st.smax, lmin = st.lmin;
    uint t = st.t;
    float m = 0.0;
    uint nt = 0u;
    if (tid == 0u)
        ties = 0u;
    for (uint r = 0u; r < IPT; r++) {
        uint i = base + r * WG_SIZE + tid;
        if (i >= pc.n)
            break;
        float v = work[i];
        uint key = key_of(v);
        if (key > t && v >= lmin)
            m += exp(v - M);
        else if (key == t)
            nt++;
    }
    red[tid] = m;
    barrier();
    if (nt != 0u)
        atomicAdd(ties, nt);
    for (uint s = WG_SIZE / 2u; s > 0u; s >>= 1) {
        if (tid < s)
            red[tid] += red[tid + s];
        barrier();
    }
    if (tid == 0u) {
        part[gl_WorkGroupID.x * 2u] = floatBitsToUint(red[0]);
        part[gl_WorkGroupID.x * 2u + 1u] = ties;
    }
}
