#version 450
// matvec.comp - decode mat-vec: y[t, y_col + row_begin + r] (+)= W[r, :] . x[x_row + t, :] (+ bias[r])
// for the rows r of one shard of W, f32 accumulation.
// Bindings: 0 W WTYPE[n_rows, K] (shard; block types as quant.glsl lays them out) readonly;
//   1 x float[*, K] readonly;
//   2 bias float[n_rows] readonly (bound but unread without HAS_BIAS);
//   3 y float[n_tok, ld_y]; 4 (GATE_UP only) U WTYPE[n_rows, K], the up projection;
//   5 (NORM only) nw float[K], an RMSNorm weight.
// Push constants: uint row_begin, n_rows, ld_y, n_tok, x_row, y_col.
// Defines: K, WTYPE (0 f32, 1 f16, 2 bf16, 3 q8_0, 4 q4_0, 5 q4_K, 7 q4_g with GROUP), WG_SIZE, ROWS (rows per workgroup),
//   USE_SUBGROUP,
//   HAS_BIAS, ACCUMULATE (y += result: the residual add), GATE_UP (y = silu(W.x) * (U.x)),
//   NORM with EPS: x is first replaced by rmsnorm(x) * nw as rms_norm.comp computes it
//   (each workgroup recomputes the row's sum of squares; that saves a dispatch and a
//   barrier, and x is small and cached).
// Geometry: grid (CEIL_DIV(n_rows, ROWS), n_tok); the workgroup splits K across its
//   invocations (16-byte loads when K % 4 == 0; for block types one unit of 16
//   values, dequantized in registers: scale times the unscaled dot)
//   and reduces each row.
// Reference: tests/ref matvec (block types: on weights dequantized by tests/ref/quant_ref.c).
#include "common.glsl"
#include "quant.glsl"

layout(local_size_x = WG_SIZE) in;
#if WQUANT
QUANT_BINDING(0, WQ_, wq, WD_, wd)
layout(std430, set = 0, binding = 1) readonly buffer X { vec4 x[]; };
#if GATE_UP
QUANT_BINDING(4, UQ_, uq, UD_, ud)
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
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform Push {
    uint row_begin; uint n_rows; uint ld_y; uint n_tok; uint x_row; uint y_col;
} pc;

shared float scratch[WG_SIZE];
WG_REDUCE(wg_sum, subgroupAdd, LG_ADD)

#if K % 4 == 0
#define DOT(a, b) dot(W2F4(a), b)
#else
#define DOT(a, b) (W2F(a) * (b))
#endif

void main() {
    uint r0 = gl_WorkGroupID.x * ROWS;
    uint t = gl_WorkGroupID.y;
    uint xb = (pc.x_row + t) * KV;
    float acc[ROWS];
#if GATE_UP
    float acc_u[ROWS];
#endif
    [[unroll]] for (uint j = 0; j < ROWS; j++) {
        acc[j] = 0.0;
#if GATE_UP
        acc_u[j] = 0.0;
#endif
    }
#if NORM
    float ss = 0.0;
    for (uint k = gl_LocalInvocationID.x; k < KV; k += WG_SIZE)
        ss += dot(x[xb + k], x[xb + k]);
    float nscale = inversesqrt(wg_sum(ss) / float(K) + EPS);
#endif
#if WQUANT
    // One unit of 16 values an invocation a step: x as QUADS vec4s.
    for (uint un = gl_LocalInvocationID.x; un < QUNITS; un += WG_SIZE) {
        vec4 xq[QUADS];
        [[unroll]] for (uint i = 0; i < QUADS; i++) {
            xq[i] = x[xb + QX(un, i)];
#if NORM
            xq[i] = nw[QX(un, i)] * (xq[i] * nscale);
#endif
        }
        [[unroll]] for (uint j = 0; j < ROWS; j++) {
            uint r = min(r0 + j, pc.n_rows - 1);
            acc[j] += QDOT(wq, wd, pc.n_rows, r, un, xq);
#if GATE_UP
            acc_u[j] += QDOT(uq, ud, pc.n_rows, r, un, xq);
#endif
        }
    }
#else
    for (uint k = gl_LocalInvocationID.x; k < KV; k += WG_SIZE) {
        #if K % 4 == 0
        vec4 xv = x[xb + k];
        #else
        float xv = x[xb + k];
        #endif
#if NORM
        xv = nw[k] * (xv * nscale);
#endif
        [[unroll]] for (uint j = 0; j < ROWS; j++) {
            uint r = min(r0 + j, pc.n_rows - 1);
            acc[j] += DOT(w[r * KV + k], xv);
#if GATE_UP
            acc_u[j] += DOT(u[r * KV + k], xv);
#endif
        }
    }
#endif
    [[unroll]] for (uint j = 0; j < ROWS; j++) {
        float s = wg_sum(acc[j]);
#if GATE_UP
        float su = wg_sum(acc_u[j]);
#endif
        uint r = r0 + j;
        if (gl_LocalInvocationID.x == 0 && r < pc.n_rows) {
#if HAS_BIAS
            s += bias[r];
#endif
            uint o = t * pc.ld_y + pc.y_col + pc.row_begin + r;
#if GATE_UP
            s = s / (1.0 + exp(-s)) * su;
#endif
#if ACCUMULATE
            y[o] += s;
#else
            y[o] = s;
#endif
        }
    }
}
