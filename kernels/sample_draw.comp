#version 450
// sample_draw.comp - the draw: with u = uin[draw] and Z the survivors' total mass,
// the token is the lowest id whose running mass (survivors in id order) exceeds
// u * Z. Survivors: key > t with logit >= lmin, and the first `take` ids (by id)
// with key == t when value(t) >= lmin. If every logit is -inf the result is NO_ID.
// Bindings (sample.glsl): 2 uin float[n_draws] readonly; 3 work float[n] read;
//   4 part uint[n_chunks * 2] read (sample_mass); 5 state read; 6 result
//   uint[n_draws] written. Others unused.
// Push constants: sample.glsl Push (n, n_chunks).
// Defines: WG_SIZE.
// Geometry: grid (n_draws); one workgroup per draw. Invocation 0 walks the chunk
//   sums to find the chunk; then each invocation takes IPT consecutive ids of that
//   chunk, and shared-memory scans (fixed order) give the tie ranks and the
//   running mass.
// Reference: tests/ref/sample_ref.c sample_ref_draw.
#include "common.glsl"
#include "sample.glsl"

layout(local_size_x = WG_SIZE) in;

shared float fscan[WG_SIZE];
shared uint uscan[WG_SIZE];
shared uint s_chunk, s_ties_before, s_cand, s_last;
shared float s_cum, s_target;

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint draw = gl_WorkGroupID.x;
    float M = st.smax, lmin = st.lmin;
    uint t = st.t;
    if (isinf(M)) { // every token banned (M is never +inf)
        if (tid == 0u)
            result[draw] = NO_ID;
        return;
    }
    // ties at the cut survive only if they pass min-p; t = 0 ("keep all") is NaN
    uint take = value_of(t) >= lmin ? st.take : 0u;
    float et = take > 0u ? exp(value_of(t) - M) : 0.0;

    if (tid == 0u) {
        float z = 0.0;
        uint tb = 0u;
        for (uint c = 0u; c < pc.n_chunks; c++) {
            uint tc = part[c * 2u + 1u];
            uint ts = take > tb ? min(take - tb, tc) : 0u;
            z += uintBitsToFloat(part[c * 2u]) + float(ts) * et;
            tb += tc;
        }
        float target = uin[draw] * z;
        float cum = 0.0;
        uint chosen = NO_ID, last = 0u, last_tb = 0u;
        float last_cum = 0.0;
        tb = 0u;
        for (uint c = 0u; c < pc.n_chunks; c++) {
            uint tc = part[c * 2u + 1u];
            uint ts = take > tb ? min(take - tb, tc) : 0u;
            float mc = uintBitsToFloat(part[c * 2u]) + float(ts) * et;
            if (mc > 0.0) {
                if (cum + mc > target) {
                    chosen = c;
                    break;
                }
                last = c;
                last_tb = tb;
                last_cum = cum;
            }
            cum += mc;
            tb += tc;
        }
        if (chosen == NO_ID) { // rounding: u * Z not reached; take the last survivor
            chosen = last;
            tb = last_tb;
            cum = last_cum;
            target = 1.0 / 0.0;
        }
        s_chunk = chosen;
        s_ties_before = tb;
        s_cum = cum;
        s_target = target;
        s_cand = NO_ID;
        s_last = 0u;
    }
    barrier();

    uint base = s_chunk * CHUNK + tid * IPT;
    // tie ranks: exclusive scan of each invocation's ties
    uint nt = 0u;
    for (uint r = 0u; r < IPT; r++) {
        uint i = base + r;
        if (i < pc.n && key_of(work[i]) == t)
            nt++;
    }
    uscan[tid] = nt;
    barrier();
    for (uint s = 1u; s < WG_SIZE; s <<= 1) {
        uint add = tid >= s ? uscan[tid - s] : 0u;
        barrier();
        uscan[tid] += add;
        barrier();
    }
    uint rank = s_ties_before + uscan[tid] - nt;

    // running mass: exclusive scan of each invocation's survivor mass
    float ms = 0.0;
    uint rk = rank;
    for (uint r = 0u; r < IPT; r++) {
        uint i = base + r;
        if (i >= pc.n)
            break;
        float v = work[i];
        uint key = key_of(v);
        if (key > t && v >= lmin)
            ms += exp(v - M);
        else if (key == t && rk++ < take)
            ms += et;
    }
    fscan[tid] = ms;
    barrier();
    for (uint s = 1u; s < WG_SIZE; s <<= 1) {
        float add = tid >= s ? fscan[tid - s] : 0.0;
        barrier();
        fscan[tid] += add;
        barrier();
    }
    float run = s_cum + (tid > 0u ? fscan[tid - 1u] : 0.0);
    float target = s_target;
    uint cand = NO_ID, last = 0u;
    bool any = false;
    rk = rank;
    for (uint r = 0u; r < IPT; r++) {
        uint i = base + r;
        if (i >= pc.n)
            break;
        float v = work[i];
        uint key = key_of(v);
        float m = 0.0;
        if (key > t && v >= lmin)
            m = exp(v - M);
        else if (key == t && rk++ < take)
            m = et;
        if (m > 0.0) {
            run += m;
            last = i;
            any = true;
            if (run > target) {
                cand = i;
                break;
            }
        }
    }
    if (cand != NO_ID)
        atomicMin(s_cand, cand);
    if (any)
        atomicMax(s_last, last);
    barrier();
    if (tid == 0u)
        result[draw] = s_cand != NO_ID ? s_cand : s_last;
}
