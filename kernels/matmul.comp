#version 450
// matmul.comp - prefill GEMM: y[t, y_col + row_begin + r] (+)= W[r, :] . x[x_row + t, :] (+ bias[row_begin + r])
// for all rows r of one shard of W and all n_tok tokens; f32 accumulation.
// Bindings: 0 W WTYPE[n_rows, K] (shard; block types as quant.glsl lays them out) readonly;
//   1 x float[*, K] readonly;
//   2 bias float[n_rows] readonly (unread without HAS_BIAS); 3 y float[n_tok, ld_y].
// Push constants: uint row_begin, n_rows, ld_y, n_tok, x_row, y_col (as matvec.comp).
// Defines: K, WTYPE (0 f32, 1 f16, 2 bf16, 3 q8_0, 4 q4_0, 5 q4_K, 6 q6_K, 7 q4_g with GROUP), HAS_BIAS, ACCUMULATE. WG_SIZE is fixed at 256 (16 x 16).
// Geometry: grid (CEIL_DIV(n_rows, 64), CEIL_DIV(n_tok, 64)); a workgroup computes a
//   64-row x 64-token tile, each invocation 4 x 4 of it, stepping K by 16 through
//   shared memory. Any sizes work: out-of-range rows, tokens and k read as zero.
//   Block types (WTYPE 3, 4, 5, 6, 7) are dequantized into the shared W tile: 4 invocations
//   a row of the tile, each 4 of the row's 16 values.
// Reference: tests/ref matmul.
#include "common.glsl"
#include "quant.glsl"

#define BM 64
#define BN 64
#define BK 16
layout(local_size_x = 256) in;
#if WQUANT
QUANT_BINDING(0, WQ_, wq, WD_, wd)
#else
layout(std430, set = 0, binding = 0) readonly buffer W { WSCALAR w[]; };
#endif
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };
// The bias of the whole matrix (all shards): row r of this shard is row_begin + r.
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform Push {
    uint row_begin; uint n_rows; uint ld_y; uint n_tok; uint x_row; uint y_col;
} pc;

#if WQUANT
#include "qtile.glsl"
#endif

shared float ws[BK][BM + 1];
shared float xs[BK][BN + 1];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint tr = tid % 16, tc = tid / 16;   // this invocation: rows tr*4.., tokens tc*4..
    uint row0 = gl_WorkGroupID.x * BM, tok0 = gl_WorkGroupID.y * BN;
    float acc[4][4];
    [[unroll]] for (uint i = 0; i < 4; i++)
        [[unroll]] for (uint j = 0; j < 4; j++)
            acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < K; k0 += BK) {
#if WQUANT
        {
            // BK == 16: the tile's k range is 16 consecutive values of each row.
            uint m = tid / 4, p = tid % 4, gr = row0 + m;
            vec4 v = vec4(0.0);
            if (gr < pc.n_rows)
                v = wtile_quad(pc.n_rows, gr, k0, p);
            ws[p * 4 + 0][m] = v.x;
            ws[p * 4 + 1][m] = v.y;
            ws[p * 4 + 2][m] = v.z;
            ws[p * 4 + 3][m] = v.w;
        }
        [[unroll]] for (uint l = 0; l < 4; l++) {
            uint e = tid + l * 256;
            uint kk = e % BK, m = e / BK;
            uint gt = tok0 + m;
            xs[kk][m] = gt < pc.n_tok ? x[(pc.x_row + gt) * K + k0 + kk] : 0.0;
        }
#else
        // Each invocation loads 4 elements of each tile; k is the fastest index so
        // neighbouring invocations read neighbouring memory.
        [[unroll]] for (uint l = 0; l < 4; l++) {
            uint e = tid + l * 256;
            uint kk = e % BK, m = e / BK;
            uint gk = k0 + kk;
            uint gr = row0 + m, gt = tok0 + m;
            ws[kk][m] = (gr < pc.n_rows && gk < K) ? W2F(w[gr * K + gk]) : 0.0;
            xs[kk][m] = (gt < pc.n_tok && gk < K) ? x[(pc.x_row + gt) * K + gk] : 0.0;
        }
#endif
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; kk++) {
            float a[4], b[4];
            [[unroll]] for (uint i = 0; i < 4; i++) {
                a[i] = ws[kk][tr * 4 + i];
                b[i] = xs[kk][tc * 4 + i];
            }
            [[unroll]] for (uint i = 0; i < 4; i++)
                [[unroll]] for (uint j = 0; j < 4; j++)
                    acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    // No continue and no loop inside an if here: either keeps glslc from unrolling
    // these loops, and acc indexed with variables leaves the registers.
    [[unroll]] for (uint i = 0; i < 4; i++)
        [[unroll]] for (uint j = 0; j < 4; j++) {
            uint r = row0 + tr * 4 + i, t = tok0 + tc * 4 + j;
            if (r < pc.n_rows && t < pc.n_tok) {
                float s = acc[i][j];
#if HAS_BIAS
                s += bias[pc.row_begin + r];
#endif
                uint o = t * pc.ld_y + pc.y_col + pc.row_begin + r;
#if ACCUMULATE
                y[o] += s;
#else
                y[o] = s;
#endif
            }
        }
}
