#version 450
// matvec.comp - decode mat-vec: y[t, y_col + row_begin + r] (+)= W[r, :] . x[x_row + t, :] (+ bias[row_begin + r])
// for the rows r of one shard of W, f32 accumulation.
// Bindings: 0 W WTYPE[n_rows, K] (shard; block types as quant.glsl lays them out) readonly;
//   1 x float[*, K] readonly;
//   2 bias float[n_rows] readonly (bound but unread without HAS_BIAS);
//   3 y float[n_tok, ld_y]; 4 (GATE_UP only) U WTYPE[n_rows, K], the up projection;
//   5 (NORM only) nw float[K], an RMSNorm weight.
//   ROPE_KV only: 6 step readonly; 7 rope vec2[n_ctx, HD/2] (cos, sin) readonly;
//   8 k cache f16[n_ctx, NKV HD]; 9 v cache f16[n_ctx, NKV HD].
// Push constants: uint row_begin, n_rows, ld_y, n_tok, x_row, y_col.
// Defines: K, WTYPE (0 f32, 1 f16, 2 bf16, 3 q8_0, 4 q4_0, 5 q4_K, 6 q6_K, 7 q4_g with
//   GROUP), WG_SIZE, ROWS (rows
//   per workgroup, or per subgroup with SG_ROWS), USE_SUBGROUP, SG_ROWS, RPW,
//   HAS_BIAS, ACCUMULATE (y += result: the residual add), GATE_UP (y = silu(W.x) * (U.x)),
//   NORM with EPS: x is first replaced by rmsnorm(x) * nw as rms_norm.comp computes it
//   (each workgroup recomputes the row's sum of squares; that saves a dispatch and a
//   barrier, and x is small and cached).
//   ROPE_KV with HD, NH, NKV (decode's fused Q/K/V projection, ROWS 2): W is the
//   concatenated [Q; K; V] matrix and a workgroup computes a rotate-half pair of rows
//   (h HD + i, h HD + i + HD/2) of a Q or K head, or two adjacent V rows, so its
//   epilogue applies RoPE at position pos0 + t as rope_kv.comp does and writes roped q
//   to y (ld_y NH HD) and k, v into the f16 KV cache: one dispatch and one barrier
//   fewer a layer. Shards must start and end on head boundaries (session.c checks).
//   IDOT (q8_0, q4_0, q4_K, q4_g; K % 16 == 0): integer dot products. The workgroup first
//   quantizes its x row (after NORM) into shared memory, 16 values a unit with one f32
//   scale (and, for the nibble types, the unit's sum), then every 16 weights of a row
//   are four OpSDotAccSat and a multiply or three (quant.glsl's IDOT section). The rounding of
//   x adds an error like q8_0's own; shared memory is K + K / 2 (q8_0: K + K / 4) +
//   4 WG_SIZE bytes (4 WG_SIZE NRED without SG_ROWS: wg_sums' scratch; session.c checks
//   it fits).
//   BLK32 (q4_0 with IDOT): a lane takes a whole 32-value block a step, one uvec4 load
//   and one scale a row, instead of two 16-value units (6-7 % faster decode on the H100).
// Geometry: grid (CEIL_DIV(n_rows, ROWS), n_tok); the workgroup splits K across its
//   invocations (16-byte loads when K % 4 == 0; for block types one unit of 16
//   values (32 for q4_K and q6_K), dequantized in registers: scale times the unscaled
//   dot) and reduces each row. With SG_ROWS (needs USE_SUBGROUP) and RPW: grid
//   (CEIL_DIV(n_rows, RPW), n_tok); each subgroup computes ROWS rows at a time with its
//   lanes splitting K and one subgroupAdd a row, so no workgroup barrier is paid per
//   row and each lane streams more bytes (the block types' choice on GPUs).
// Reference: tests/ref matvec (block types: on weights dequantized by tests/ref/quant_ref.c).
#include "common.glsl"
#include "quant.glsl"

layout(local_size_x = WG_SIZE) in;
#if GATE_UP
#define NRED (2 * ROWS)  // sums a workgroup or subgroup reduces at the end: rows, up rows
#else
#define NRED ROWS
#endif
#if WQUANT
QUANT_BINDING(0, WQ_, wq, WD_, wd)
layout(std430, set = 0, binding = 1) readonly buffer X { vec4 x[]; };
#if GATE_UP
QUANT_BINDING(4, UQ_, uq, UD_, ud)
#endif
#if BLK32
// q4_0 blocks as single uvec4s (units 2b and 2b + 1 of a row, adjacent)
layout(std430, set = 0, binding = 0) readonly buffer WB_ { uvec4 wb[]; };
#if GATE_UP
layout(std430, set = 0, binding = 4) readonly buffer UB_ { uvec4 ub[]; };
#endif
#endif
#define KV (K / 4)
#elif K % 4 == 0
layout(std430, set = 0, binding = 0) readonly buffer W { WVEC4 w[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { vec4 x[]; };
#if GATE_UP
layout(std430, set = 0, binding = 4) readonly buffer U { WVEC4 u[]; };
#endif
#define KV (K / 4)
#else
layout(std430, set = 0, binding = 0) readonly buffer W { WSCALAR w[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };
#if GATE_UP
layout(std430, set = 0, binding = 4) readonly buffer U { WSCALAR u[]; };
#endif
#define KV K
#endif
#if NORM && (K % 4 == 0 || WQUANT)
layout(std430, set = 0, binding = 5) readonly buffer NW { vec4 nw[]; };
#elif NORM
layout(std430, set = 0, binding = 5) readonly buffer NW { float nw[]; };
#endif
#if ROPE_KV
#if ROWS != 2 || (SG_ROWS && RPW % 2 != 0)
#error ROPE_KV needs ROWS 2 (and an even RPW)
#endif
STEP_BLOCK(6)
layout(std430, set = 0, binding = 7) readonly buffer Rope { vec2 cs[]; };
layout(std430, set = 0, binding = 8) writeonly buffer KC { float16_t kc[]; };
layout(std430, set = 0, binding = 9) writeonly buffer VC { float16_t vc[]; };
#define HALF (HD / 2)
#define QK_ROWS ((NH + NKV) * HD)
// Row (of the whole [Q; K; V] matrix) of slot j (0, 1) of row pair p.
uint pair_row(uint p, uint j) {
    if (p < QK_ROWS / 2)
        return (p / HALF) * HD + p % HALF + j * HALF;
    return QK_ROWS + 2 * (p - QK_ROWS / 2) + j;
}
// Slot j of the rows starting at slot s0 (s0 even): a row of the shard.
#define ROW_OF(s0, j) (pair_row(pc.row_begin / 2 + (s0) / 2, j) - pc.row_begin)
#else
#define ROW_OF(s0, j) min((s0) + (j), pc.n_rows - 1)
#endif
// The bias of the whole matrix (all shards): row r of this shard is row_begin + r.
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform Push {
    uint row_begin; uint n_rows; uint ld_y; uint n_tok; uint x_row; uint y_col;
} pc;

#if !SG_ROWS && USE_SUBGROUP
// wg_sums' partial sums: NRED values for each of up to WG_SIZE subgroups.
shared float scratch[WG_SIZE * NRED];
#else
shared float scratch[WG_SIZE];
#endif
WG_REDUCE(wg_sum, subgroupAdd, LG_ADD)

#if IDOT
shared uvec4 xs_q[K / 16]; // x as int8, four a word, a unit a uvec4 (one 16-byte load)
shared float xs_d[K / 16]; // a unit's scale
#if WTYPE != 3
shared int xs_s[K / 16];   // a unit's sum of quantized values (the zero point's term)
#endif

// Quantize x row xb (normalized with NORM) into xs_*; every invocation calls it.
void quantize_x(uint xb, float nscale) {
    for (uint un = gl_LocalInvocationID.x; un < K / 16; un += WG_SIZE) {
        vec4 v[4];
        float amax = 0.0;
        [[unroll]] for (uint i = 0; i < 4; i++) {
            v[i] = x[xb + un * 4 + i];
#if NORM
            v[i] = nw[un * 4 + i] * (v[i] * nscale);
#endif
            vec4 a = abs(v[i]);
            amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
        }
        float d = amax / 127.0, id = amax > 0.0 ? 127.0 / amax : 0.0;
        ivec4 q[4];
        [[unroll]] for (uint i = 0; i < 4; i++)
            q[i] = ivec4(roundEven(v[i] * id));
#if WTYPE == 3 || WTYPE == 5
        xs_q[un] = uvec4(pack_i8x4(q[0].x, q[0].y, q[0].z, q[0].w),
                         pack_i8x4(q[1].x, q[1].y, q[1].z, q[1].w),
                         pack_i8x4(q[2].x, q[2].y, q[2].z, q[2].w),
                         pack_i8x4(q[3].x, q[3].y, q[3].z, q[3].w));
#else
        // values (0, 2, 4, 6) then (1, 3, 5, 7) of each 8-value half
        xs_q[un] = uvec4(pack_i8x4(q[0].x, q[0].z, q[1].x, q[1].z),
                         pack_i8x4(q[0].y, q[0].w, q[1].y, q[1].w),
                         pack_i8x4(q[2].x, q[2].z, q[3].x, q[3].z),
                         pack_i8x4(q[2].y, q[2].w, q[3].y, q[3].w));
#endif
#if WTYPE != 3
        ivec4 t = q[0] + q[1] + q[2] + q[3];
        xs_s[un] = t.x + t.y + t.z + t.w;
#endif
        xs_d[un] = d;
    }
    barrier();
}
#endif

#if BLK32
#if !IDOT || WTYPE != 4
#error BLK32 needs IDOT and q4_0 weights
#endif
// A lane takes a whole 32-value block a step (x units 2b, 2b + 1): one uvec4 load and
// one scale a row (the 16-value units take two of each).
#define BLK_W(Q, D, r, bi) Q[(r) * QBLOCKS + (bi)], QSCALE(D, pc.n_rows, r, 2 * (bi))
// Block bi (values q, scale d) dotted with x units 2 bi, 2 bi + 1, scaled.
float blk_dot(uvec4 q, float d, uint bi) {
    uint u0 = 2 * bi;
    return d * (xs_d[u0] * float(idot_unit(q.xy, xs_q[u0]) - 8 * xs_s[u0]) +
                xs_d[u0 + 1] * float(idot_unit(q.zw, xs_q[u0 + 1]) - 8 * xs_s[u0 + 1]));
}
#endif

#if K % 4 == 0
#define DOT(a, b) dot(W2F4(a), b)
#else
#define DOT(a, b) (W2F(a) * (b))
#endif

#if SG_ROWS
// A subgroup computes ROWS rows; its lanes split K; subgroupAdd reduces (no barrier).
#define LANE gl_SubgroupInvocationID
#define NLANES gl_SubgroupSize
#else
// The workgroup computes ROWS rows; its invocations split K; wg_sums reduces.
#define LANE gl_LocalInvocationID.x
#define NLANES WG_SIZE
#endif

#if !SG_ROWS
// Each of the NRED values replaced by its sum over the workgroup. With subgroup
// arithmetic all of them go through one subgroupAdd each and one round of scratch (two
// barriers in all, not two a value), and the only loop without a constant trip count
// (over the subgroups) holds a fully unrolled one over the values: every index into v
// is a constant after unrolling, so the caller's arrays stay in registers. (A loop
// around wg_sum could not be unrolled, because wg_sum's own loop runs gl_NumSubgroups
// times, so it indexed them with a variable.)
void wg_sums(inout float v[NRED]) {
#if USE_SUBGROUP
    [[unroll]] for (uint j = 0; j < NRED; j++) {
        float s = subgroupAdd(v[j]);
        if (gl_SubgroupInvocationID == 0)
            scratch[gl_SubgroupID * NRED + j] = s;
    }
    barrier();
    [[unroll]] for (uint j = 0; j < NRED; j++)
        v[j] = scratch[j];
    for (uint i = 1; i < gl_NumSubgroups; i++)
        [[unroll]] for (uint j = 0; j < NRED; j++)
            v[j] += scratch[i * NRED + j];
    barrier();
#else
    [[unroll]] for (uint j = 0; j < NRED; j++)
        v[j] = wg_sum(v[j]);
#endif
}
#endif

// The ROWS rows from slot s0 (slot = row of the shard, or in ROPE_KV rows of pairs):
// dot products, bias, SiLU, then the epilogue, by lane 0.
void rows_at(uint s0, uint t, uint xb, float nscale) {
    uint rw[ROWS];   // the rows, worked out once (ROPE_KV's pair mapping divides)
    float acc[ROWS];
#if GATE_UP
    float acc_u[ROWS];
#endif
    [[unroll]] for (uint j = 0; j < ROWS; j++) {
        rw[j] = ROW_OF(s0, j);
        acc[j] = 0.0;
#if GATE_UP
        acc_u[j] = 0.0;
#endif
    }
#if BLK32
    for (uint bi = LANE; bi < QBLOCKS; bi += NLANES) {
        [[unroll]] for (uint j = 0; j < ROWS; j++) {
            acc[j] += blk_dot(BLK_W(wb, wd, rw[j], bi), bi);
#if GATE_UP
            acc_u[j] += blk_dot(BLK_W(ub, ud, rw[j], bi), bi);
#endif
        }
    }
#elif IDOT && WTYPE == 5
    // q4_K: a unit of 32 values is 16 of sub-block 2g (x unit xl) and 16 of 2g + 1 (xl + 2).
    for (uint un = LANE; un < QUNITS; un += NLANES) {
        uint p = un % 8, xl = (un / 8) * 16 + (p / 2) * 4 + p % 2;
        uvec4 xw0 = xs_q[xl], xw1 = xs_q[xl + 2];
        vec2 xd = vec2(xs_d[xl], xs_d[xl + 2]);
        vec2 xsum = vec2(float(xs_s[xl]), float(xs_s[xl + 2]));
        [[unroll]] for (uint j = 0; j < ROWS; j++) {
            uint base = rw[j] * QROW_U4 + (un / 8) * 9;
            uvec4 h = wq[base], q = wq[base + 1 + p];
            vec2 lo = k4_sub(h, p & 6u), hi = k4_sub(h, (p & 6u) + 1);
            acc[j] += xd.x * (lo.x * float(idot_k4(q, 0, xw0)) - lo.y * xsum.x) +
                      xd.y * (hi.x * float(idot_k4(q, 1, xw1)) - hi.y * xsum.y);
#if GATE_UP
            h = uq[base];
            q = uq[base + 1 + p];
            lo = k4_sub(h, p & 6u);
            hi = k4_sub(h, (p & 6u) + 1);
            acc_u[j] += xd.x * (lo.x * float(idot_k4(q, 0, xw0)) - lo.y * xsum.x) +
                        xd.y * (hi.x * float(idot_k4(q, 1, xw1)) - hi.y * xsum.y);
#endif
        }
    }
#elif IDOT
    // One unit a lane a step: x from shared memory as int8 words.
    for (uint un = LANE; un < QUNITS; un += NLANES) {
        uvec4 xw = xs_q[un];
        float xd = xs_d[un];
#if WTYPE != 3
        int xsum = xs_s[un];
#endif
        [[unroll]] for (uint j = 0; j < ROWS; j++) {
            uint r = rw[j];
#if WTYPE == 3
            acc[j] += QSCALE(wd, pc.n_rows, r, un) * xd * float(idot_unit(wq[r * QUNITS + un], xw));
#if GATE_UP
            acc_u[j] += QSCALE(ud, pc.n_rows, r, un) * xd * float(idot_unit(uq[r * QUNITS + un], xw));
#endif
#elif WTYPE == 4
            acc[j] += QSCALE(wd, pc.n_rows, r, un) * xd *
                      float(idot_unit(wq[r * QUNITS + un], xw) - 8 * xsum);
#if GATE_UP
            acc_u[j] += QSCALE(ud, pc.n_rows, r, un) * xd *
                        float(idot_unit(uq[r * QUNITS + un], xw) - 8 * xsum);
#endif
#else
            acc[j] += float(wd[QG_PAIR(pc.n_rows, r, un)]) * xd *
                      (float(idot_unit(wq[r * QUNITS + un], xw)) -
                       float(wd[QG_PAIR(pc.n_rows, r, un) + 1]) * float(xsum));
#if GATE_UP
            acc_u[j] += float(ud[QG_PAIR(pc.n_rows, r, un)]) * xd *
                        (float(idot_unit(uq[r * QUNITS + un], xw)) -
                         float(ud[QG_PAIR(pc.n_rows, r, un) + 1]) * float(xsum));
#endif
#endif
        }
    }
#elif WQUANT
    // One unit of QUADS * 4 values a lane a step: x as QUADS vec4s.
    for (uint un = LANE; un < QUNITS; un += NLANES) {
        vec4 xq[QUADS];
        [[unroll]] for (uint i = 0; i < QUADS; i++) {
            xq[i] = x[xb + QX(un, i)];
#if NORM
            xq[i] = nw[QX(un, i)] * (xq[i] * nscale);
#endif
        }
        [[unroll]] for (uint j = 0; j < ROWS; j++) {
            uint r = rw[j];
            acc[j] += QDOT(wq, wd, pc.n_rows, r, un, xq);
#if GATE_UP
            acc_u[j] += QDOT(uq, ud, pc.n_rows, r, un, xq);
#endif
        }
    }
#else
    for (uint k = LANE; k < KV; k += NLANES) {
        #if K % 4 == 0
        vec4 xv = x[xb + k];
        #else
        float xv = x[xb + k];
        #endif
#if NORM
        xv = nw[k] * (xv * nscale);
#endif
        [[unroll]] for (uint j = 0; j < ROWS; j++) {
            uint r = rw[j];
            acc[j] += DOT(w[r * KV + k], xv);
#if GATE_UP
            acc_u[j] += DOT(u[r * KV + k], xv);
#endif
        }
    }
#endif
    float red[NRED];  // the rows' sums (and GATE_UP's up sums after them)
    [[unroll]] for (uint j = 0; j < ROWS; j++) {
        red[j] = acc[j];
#if GATE_UP
        red[ROWS + j] = acc_u[j];
#endif
    }
#if SG_ROWS
    [[unroll]] for (uint j = 0; j < NRED; j++)
        red[j] = subgroupAdd(red[j]);
#else
    wg_sums(red);
#endif
    float sv[ROWS];
    [[unroll]] for (uint j = 0; j < ROWS; j++) {
        sv[j] = red[j];
#if HAS_BIAS
        sv[j] += bias[pc.row_begin + rw[j]];
#endif
#if GATE_UP
        sv[j] = sv[j] / (1.0 + exp(-sv[j])) * red[ROWS + j];
#endif
    }
    if (LANE != 0)
        return;
#if ROPE_KV
    uint pos = step.pos0 + t, p = pc.row_begin / 2 + s0 / 2;
    if (p < QK_ROWS / 2) {
        uint h = p / HALF, i = p % HALF;
        vec2 c = cs[pos * HALF + i];
        float o1 = sv[0] * c.x - sv[1] * c.y;
        float o2 = sv[1] * c.x + sv[0] * c.y;
        if (h < NH) {
            y[t * pc.ld_y + h * HD + i] = o1;
            y[t * pc.ld_y + h * HD + i + HALF] = o2;
        } else {
            uint d = pos * NKV * HD + (h - NH) * HD + i;
            kc[d] = float16_t(o1);
            kc[d + HALF] = float16_t(o2);
        }
    } else {
        uint d = pos * NKV * HD + 2 * (p - QK_ROWS / 2);
        vc[d] = float16_t(sv[0]);
        vc[d + 1] = float16_t(sv[1]);
    }
#else
    [[unroll]] for (uint j = 0; j < ROWS; j++) {
        uint r = s0 + j;
        if (r < pc.n_rows) {
            uint o = t * pc.ld_y + pc.y_col + pc.row_begin + r;
#if ACCUMULATE
            y[o] += sv[j];
#else
            y[o] = sv[j];
#endif
        }
    }
#endif
}

void main() {
    uint t = gl_WorkGroupID.y;
    uint xb = (pc.x_row + t) * KV;
    float nscale = 1.0;
#if NORM
    float ss = 0.0;
    for (uint k = gl_LocalInvocationID.x; k < KV; k += WG_SIZE)
        ss += dot(x[xb + k], x[xb + k]);
    nscale = inversesqrt(wg_sum(ss) / float(K) + EPS);
#endif
#if IDOT
    quantize_x(xb, nscale);
#endif
#if SG_ROWS
    // RPW rows a workgroup, ROWS a subgroup at a time (any subgroup size works: a
    // subgroup takes the next ROWS slots until the workgroup's RPW are done).
    uint w0 = gl_WorkGroupID.x * RPW;
    for (uint b = gl_SubgroupID * ROWS; b < RPW; b += gl_NumSubgroups * ROWS) {
        if (w0 + b >= pc.n_rows)   // uniform per subgroup
            break;
        rows_at(w0 + b, t, xb, nscale);
    }
#else
    rows_at(gl_WorkGroupID.x * ROWS, t, xb, nscale);
#endif
}
