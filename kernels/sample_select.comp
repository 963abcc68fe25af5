#version 450
// sample_select.comp - the serial decisions of sampling, in one workgroup:
//   OP_INIT   M = max of sample_prep's partial maxima; the min-p threshold
//             lmin = M + log(min_p); the cut "keep everything", or for k == 1 the
//             cut "the first id whose logit is M" (greedy).
//   OP_COUNT  radix pass `pass` of top-k: choose the bucket holding the k-th
//             ranked id; after pass 7 the cut is (key of the k-th, ties needed)
//             and zk the mass of the top-k prefix.
//   OP_MASS   radix pass `pass` of top-p: choose the bucket where the mass of the
//             ranking reaches top_p * zk (zk = total mass when top-k is off);
//             after pass 7 the cut becomes the shorter of top-k's and top-p's.
// Bindings (sample.glsl): 4 part uint[] read (n_prep maxima, or n_chunks * 32
//   histogram words); 5 state read and written. Others unused.
// Push constants: sample.glsl Push (op, pass, k, n_chunks, n_prep, top_p, log_min_p).
// Defines: WG_SIZE.
// Geometry: grid (1). Partial results are summed per bucket in chunk order, so
//   every decision is reproducible.
// Reference: tests/ref/sample_ref.c sample_ref_probs (top-k, top-p, min-p).
#include "common.glsl"
#include "sample.glsl"

layout(local_size_x = WG_SIZE) in;

shared float red[WG_SIZE];
shared uint hc[16];
shared float hm[16];

void main() {
    uint tid = gl_LocalInvocationID.x;
    if (pc.op == OP_INIT) {
        float m = NEG_INF;
        for (uint i = tid; i < pc.n_prep; i += WG_SIZE)
            m = max(m, uintBitsToFloat(part[i]));
        red[tid] = m;
        barrier();
        for (uint s = WG_SIZE / 2u; s > 0u; s >>= 1) {
            if (tid < s)
                red[tid] = max(red[tid], red[tid + s]);
            barrier();
        }
        if (tid == 0u) {
            float M = red[0];
            st.smax = M;
            st.lmin = M + pc.log_min_p;
            st.prefix = 0u;
            st.cnt_above = 0u;
            st.mass_above = 0.0;
            st.target = 0.0;
            st.tie_cnt = 0u;
            if (pc.k == 1u) {
                st.t = key_of(M);
                st.take = 1u;
                st.zk = 1.0;
            } else {
                st.t = 0u;         // below every stored key: all ids survive
                st.take = NO_ID;
                st.zk = 0.0;
            }
        }
        return;
    }

    // Sum the 16 counts and 16 masses of every chunk, bucket by bucket in chunk order.
    if (tid < 32u) {
        uint b = tid & 15u;
        if (tid < 16u) {
            uint c = 0u;
            for (uint w = 0u; w < pc.n_chunks; w++)
                c += part[w * 32u + b];
            hc[b] = c;
        } else {
            float s = 0.0;
            for (uint w = 0u; w < pc.n_chunks; w++)
                s += uintBitsToFloat(part[w * 32u + 16u + b]);
            hm[b] = s;
        }
    }
    barrier();
    if (tid != 0u)
        return;

    uint shift = 28u - 4u * pc.pass;
    float M = st.smax;
    if (pc.pass == 0u) {
        st.prefix = 0u;
        st.cnt_above = 0u;
        st.mass_above = 0.0;
        if (pc.op == OP_MASS) {
            if (st.zk == 0.0) { // top-k off: the whole vocabulary's mass
                float z = 0.0;
                for (uint b = 0u; b < 16u; b++)
                    z += hm[15u - b];
                st.zk = z;
            }
            st.target = pc.top_p * st.zk;
        }
    }
    uint cnt_above = st.cnt_above;
    float mass_above = st.mass_above;
    // the bucket, from the largest keys down, where the count (mass) is reached;
    // for mass, rounding may leave it unreached: then the lowest non-empty bucket
    int pick = -1, lowest = -1;
    for (int d = 15; d >= 0; d--) {
        if (hc[d] == 0u)
            continue;
        lowest = d;
        bool reached = pc.op == OP_COUNT ? (cnt_above + hc[d] >= pc.k)
                                         : (mass_above + hm[d] >= st.target);
        if (reached) {
            pick = d;
            break;
        }
        cnt_above += hc[d];
        mass_above += hm[d];
    }
    if (pick < 0) {
        pick = lowest;
        cnt_above = st.cnt_above;
        mass_above = st.mass_above;
        for (int d = 15; d > pick; d--) {
            cnt_above += hc[d];
            mass_above += hm[d];
        }
    }
    if (pick < 0)
        pick = 0; // no id in this range at all; cannot happen for k <= n
    st.prefix |= uint(pick) << shift;
    st.cnt_above = cnt_above;
    st.mass_above = mass_above;
    st.tie_cnt = hc[pick];
    if (pc.pass != 7u)
        return;

    uint t = st.prefix;
    float e = exp(value_of(t) - M);
    if (pc.op == OP_COUNT) {
        uint take = pc.k - cnt_above;
        st.t = t;
        st.take = take;
        st.zk = mass_above + float(take) * e;
    } else {
        uint ties = max(st.tie_cnt, 1u);
        uint need = ties;
        if (e > 0.0) {
            float q = ceil((st.target - mass_above) / e);
            need = q <= 1.0 ? 1u : (q >= float(ties) ? ties : uint(q));
        }
        if (t > st.t) {
            st.t = t;
            st.take = need;
        } else if (t == st.t) {
            st.take = min(st.take, need);
        }
    }
}
