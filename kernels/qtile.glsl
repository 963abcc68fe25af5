// qtile.glsl - four dequantized values of a block-quantized weight row, for the GEMM
// kernels that fill shared-memory tiles (matmul.comp, matmul_cm.comp). Included after
// the kernel's QUANT_BINDING(0, WQ_, wq, WD_, wd) (quant.glsl), never compiled alone.
// wtile_quad(nr, gr, k0, p): values k0 + 4p .. k0 + 4p + 3 of row gr of a shard of nr
// rows (k0 % 16 == 0, p < 4), as f32.
#ifndef LG_QTILE_GLSL
#define LG_QTILE_GLSL
vec4 wtile_quad(uint nr, uint gr, uint k0, uint p) {
#if WTYPE == 5
    uint w = k0 % 256, s = w / 32;                    // sub-block of the super-block
    uint base = gr * QROW_U4 + (k0 / 256) * 9;        // the block, in uvec4s
    // value byte 32 (s / 2) + w % 32 + 4p of the block's values = word 4 + that / 4
    uint wi = 4 + 8 * (s / 2) + (w % 32) / 4 + p;
    uint word = wq[base + wi / 4][wi % 4];
    uint sh = (s % 2) * 4;                            // low or high nibbles
    vec4 q = vec4((word >> sh) & 15u, (word >> (sh + 8)) & 15u, (word >> (sh + 16)) & 15u,
                  (word >> (sh + 24)) & 15u);
    vec2 sm = k4_sub(Q4K_HEAD(wq, base), s);
    return sm.x * q - sm.y;
#elif WTYPE == 6
    uint v = k0 % 256 + 4 * p;                        // the value in its super-block
    uint b = k0 / 256, base = gr * QROW_U4 + b * 13;  // the block, in uvec4s
    uint lw = wq[base + v / 32][(v / 8) % 4] >> (4 * (v % 8));
    uint hw = wq[base + 8 + v / 64][(v / 16) % 4] >> (2 * (v % 16));
    uvec4 q = ((uvec4(lw) >> uvec4(0, 4, 8, 12)) & 15u) |
              (((uvec4(hw) >> uvec4(0, 2, 4, 6)) & 3u) << 4);
    float d = float(wd[QD_BASE(nr) + gr * (K / 256) + b]);
    return d * q6_scale(wq[base + 12][v / 64], v / 16) * (vec4(q) - 32.0);
#elif WTYPE == 7
    uint un = k0 / 16, pr = QG_PAIR(nr, gr, un);
    return float(wd[pr]) * q4g_quad(wq[gr * QUNITS + un], p, float(wd[pr + 1]));
#else
    return QVAL_QUAD(wq, wd, nr, gr, k0, p);
#endif
}
#endif
