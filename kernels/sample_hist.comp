#version 450
// sample_hist.comp - one pass of the radix search for the sampling cut: for the ids
// whose key agrees with the bits chosen so far (st.prefix, the top 4*pass bits), a
// histogram of the next 4 bits: how many ids fall in each of the 16 buckets and
// their mass exp(logit - M).
// Bindings (sample.glsl): 3 work float[n] read; 5 state read (smax, prefix);
//   4 part uint[n_chunks * 32] written: per chunk 16 counts, then the float bits
//   of 16 masses. Others unused.
// Push constants: sample.glsl Push (n, pass).
// Defines: WG_SIZE.
// Geometry: grid (n_chunks); a workgroup covers CHUNK = WG_SIZE * IPT ids, each
//   invocation IPT of them strided by WG_SIZE; its 16 counts and masses are kept in
//   registers, then summed by a fixed-order shared-memory tree (deterministic).
// Reference: the ranking of tests/ref/sample_ref.c sample_ref_probs.
#include "common.glsl"
#include "sample.glsl"

layout(local_size_x = WG_SIZE) in;

shared float sm[16 * WG_SIZE];
shared uint sc[16];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint base = gl_WorkGroupID.x * CHUNK;
    uint shift = 28u - 4u * pc.pass;
    uint hi_mask = pc.pass == 0u ? 0u : (0xFFFFFFFFu << (32u - 4u * pc.pass));
    uint want = st.prefix & hi_mask;
    float M = st.smax;
    float ms[16];
    uint cs[16];
    [[unroll]] for (uint b = 0u; b < 16u; b++) {
        ms[b] = 0.0;
        cs[b] = 0u;
    }
    if (tid < 16u)
        sc[tid] = 0u;
    for (uint r = 0u; r < IPT; r++) {
        uint i = base + r * WG_SIZE + tid;
        if (i >= pc.n)
            break;
        float v = work[i];
        uint key = key_of(v);
        if ((key & hi_mask) != want)
            continue;
        uint d = (key >> shift) & 15u;
        float m = exp(v - M);
        [[unroll]] for (uint b = 0u; b < 16u; b++) {
            if (b == d) {
                ms[b] += m;
                cs[b] += 1u;
            }
        }
    }
    barrier();
    [[unroll]] for (uint b = 0u; b < 16u; b++) {
        sm[b * WG_SIZE + tid] = ms[b];
        if (cs[b] != 0u)
            atomicAdd(sc[b], cs[b]);
    }
    barrier();
    for (uint s = WG_SIZE / 2u; s > 0u; s >>= 1) {
        if (tid < s) {
            [[unroll]] for (uint b = 0u; b < 16u; b++)
                sm[b * WG_SIZE + tid] += sm[b * WG_SIZE + tid + s];
        }
        barrier();
    }
    if (tid < 16u) {
        part[gl_WorkGroupID.x * 32u + tid] = sc[tid];
        part[gl_WorkGroupID.x * 32u + 16u + tid] = floatBitsToUint(sm[tid * WG_SIZE]);
    }
}
