// quant.glsl - reading block-quantized weights (WTYPE 3 q8_0, 4 q4_0, 5 q4_K,
// 7 q4_g: GPTQ/AWQ).
// Included by matvec.comp and matmul.comp after common.glsl, never compiled alone.
//
// Layouts of one shard of R rows of K values (lib/model/upload.c's top comment
// is the authority):
//   q8_0, q4_0  the values of all rows first, row-major, then R*K/32 f16 block
//         scales, row-major; the scales start QD_BASE(R) f16s into the buffer.
//         Values are read in units of 16 (half a block):
//         q8_0 a unit is a uvec4: 16 int8, value i in byte i % 4 of word i / 4; x = d q.
//         q4_0 a unit is a uvec2: 16 nibbles, value i in bits 4(i % 8) of word i / 8;
//         x = d (q - 8).
//   q4_K  ggml's block_q4_K as is: 144 bytes = 9 uvec4 per 256 values, row-major
//         (a row is K/256 blocks). uvec4 0: f16 d, f16 dmin, 12 bytes of packed
//         6-bit sub-block scales and mins; uvec4 1 + p (p = 0..7): bytes 16p..16p+15
//         of the 4-bit values, byte 32g + l holding value 64g + l (low nibble) and
//         64g + 32 + l (high nibble). x = d sc q - dmin m. A unit is 16 values:
//         8 bytes of one block's values, read as a uvec2 (a block is 18 uvec2s).
//   q4_g  (WTYPE 7; GROUP define: values a group, a multiple of 16) the values of all
//         rows first, packed as q4_0's (a unit is a uvec2), then for each row its
//         QNG = ceil(K / GROUP) (scale, zero) f16 pairs, row-major, starting QD_BASE(R)
//         f16s into the buffer: x = scale (q - zero), the checkpoint's own numbers.
//         A unit of 16 values lies in one group.
// QUNITS units a row, QUADS vec4s of x a unit, QX(un, i): the vec4 index in a row
// of x quad i of unit un. QDOT(Q, D, nr, r, un, xs): the dot product of unit un of
// row r (shard of nr rows) with x quads xs[QUADS], scaled.
#ifndef LG_QUANT_GLSL
#define LG_QUANT_GLSL

#if WTYPE == 3 || WTYPE == 4 || WTYPE == 5 || WTYPE == 7
#define WQUANT 1
#else
#define WQUANT 0
#endif

#if WQUANT
// float16_t storage comes from GL_EXT_shader_16bit_storage (common.glsl); the
// scales are widened to f32 before any arithmetic.

#if WTYPE == 5
#define QUNIT uvec2
#define QUADS 4
#define QUNITS (K / 16)
#define QROW_U2 ((K / 256) * 18)  // uvec2s a row (a block is 18)
#elif WTYPE == 7
#define QUNIT uvec2
#define QUADS 4
#define QUNITS (K / 16)
#define QNG ((K + GROUP - 1) / GROUP)  // groups a row
#define QD_BASE(nr) ((nr) * (K / 4))   // R K / 2 bytes of values
#else
#define QUADS 4
#define QUNITS (K / 16)
#define QBLOCKS (K / 32)          // blocks (scales) a row
#if WTYPE == 3
#define QUNIT uvec4
#define QD_BASE(nr) ((nr) * (K / 2))   // R K bytes of values = R K / 2 f16s
#else
#define QUNIT uvec2
#define QD_BASE(nr) ((nr) * (K / 4))   // R K / 2 bytes of values
#endif
#endif

// Declare the views of one weight binding: Q (units) and D (f16 scales; unused by q4_K).
#define QUANT_BINDING(b, QB, Q, DB, D)                                                 \
    layout(std430, set = 0, binding = b) readonly buffer QB { QUNIT Q[]; };           \
    layout(std430, set = 0, binding = b) readonly buffer DB { float16_t D[]; };

// Four values of one 32-bit word of int8s, and four nibbles (bits 4s ..) of a word.
vec4 q8_word(uint w) {
    return vec4(bitfieldExtract(int(w), 0, 8), bitfieldExtract(int(w), 8, 8),
                bitfieldExtract(int(w), 16, 8), bitfieldExtract(int(w), 24, 8));
}
vec4 nib4(uint w, uint s) {
    return vec4((w >> (4 * s)) & 15u, (w >> (4 * s + 4)) & 15u, (w >> (4 * s + 8)) & 15u,
                (w >> (4 * s + 12)) & 15u);
}

#if WTYPE == 5
// A unit is 16 values: uvec2 h = u % 2 of qs uvec4 p = (u % 16) / 2 (u = un % 16) of
// block un / 16, i.e. bytes 16p + 8h .. + 7 of its values; with g = p / 2 and
// l = 16 (p % 2) + 8h, byte l + c holds value 64g + l + c (low nibble, sub-block
// 2g) and 64g + 32 + l + c (high nibble, sub-block 2g + 1). x quads 0, 1 are the
// low values, 2, 3 the high ones.
#define QX(un, i)                                                                      \
    (((un) / 16) * 64 + (((un) % 16) / 4) * 16 + ((((un) % 16) / 2) % 2) * 4 +          \
     ((un) % 2) * 2 + (i) + ((i) / 2) * 6)

// Byte i (0..11) of the packed scales in a block's first 16 bytes.
uint k4_byte(uvec4 h, uint i) {
    return (h[1 + i / 4] >> (8 * (i % 4))) & 255u;
}
// Sub-block j's 6-bit scale (x) and min (y): ggml's get_scale_min_k4.
uvec2 k4_scale_min(uvec4 h, uint j) {
    if (j < 4)
        return uvec2(k4_byte(h, j) & 63u, k4_byte(h, j + 4) & 63u);
    return uvec2((k4_byte(h, j + 4) & 15u) | ((k4_byte(h, j - 4) >> 6) << 4),
                 (k4_byte(h, j + 4) >> 4) | ((k4_byte(h, j) >> 6) << 4));
}
// Scale and offset of sub-block j: x = s.x q - s.y (ggml's d * sc, dmin * m).
vec2 k4_sub(uvec4 h, uint j) {
    vec2 dm = unpackHalf2x16(h.x);
    uvec2 sm = k4_scale_min(h, j);
    return vec2(dm.x * float(sm.x), dm.y * float(sm.y));
}

// A unit (8 bytes q of 64-value group g, header h) dotted with its x quads.
float q4k_dot(uvec4 h, uvec2 q, uint g, vec4 xs[4]) {
    vec2 lo = k4_sub(h, 2 * g), hi = k4_sub(h, 2 * g + 1);
    float dl = 0.0, dh = 0.0;
    vec4 sl = xs[0] + xs[1], sh = xs[2] + xs[3];
    [[unroll]] for (uint i = 0; i < 2; i++) {
        uint w = q[i];
        dl += dot(vec4(w & 15u, (w >> 8) & 15u, (w >> 16) & 15u, (w >> 24) & 15u), xs[i]);
        dh += dot(vec4((w >> 4) & 15u, (w >> 12) & 15u, (w >> 20) & 15u, w >> 28), xs[2 + i]);
    }
    return lo.x * dl - lo.y * dot(sl, vec4(1.0)) + hi.x * dh - hi.y * dot(sh, vec4(1.0));
}
#define Q4K_HEAD(Q, base) uvec4(Q[base], Q[(base) + 1])
#define QDOT(Q, D, nr, r, un, xs)                                                      \
    q4k_dot(Q4K_HEAD(Q, (r) * QROW_U2 + ((un) / 16) * 18),                              \
            Q[(r) * QROW_U2 + ((un) / 16) * 18 + 2 + (un) % 16], ((un) % 16) / 4, xs)
#elif WTYPE == 7
#define QX(un, i) ((un) * 4 + (i))
// f16 index of the (scale, zero) pair of unit un of row r, in a shard of nr rows.
#define QG_PAIR(nr, r, un) (QD_BASE(nr) + 2 * ((r) * QNG + ((un) * 16) / GROUP))
// Values 4p .. 4p+3 (p = 0..3) of a unit, minus the zero point, unscaled.
vec4 q4g_quad(uvec2 q, uint p, float z) {
    return nib4(q[p / 2], (p % 2) * 4) - z;
}
// A unit dotted with its 16 x values: scale (sum q x - zero sum x).
float q4g_dot(uvec2 q, float s, float z, vec4 xs[4]) {
    vec4 d = nib4(q.x, 0) * xs[0] + nib4(q.x, 4) * xs[1] + nib4(q.y, 0) * xs[2] +
             nib4(q.y, 4) * xs[3];
    vec4 sx = xs[0] + xs[1] + xs[2] + xs[3];
    return s * (dot(d, vec4(1.0)) - z * dot(sx, vec4(1.0)));
}
#define QDOT(Q, D, nr, r, un, xs)                                                      \
    q4g_dot(Q[(r) * QUNITS + (un)], float(D[QG_PAIR(nr, r, un)]),                       \
            float(D[QG_PAIR(nr, r, un) + 1]), xs)
#else
#define QX(un, i) ((un) * 4 + (i))
// The scale of unit un (0 .. QUNITS-1) of row r, in a shard of nr rows.
#define QSCALE(D, nr, r, un) float(D[QD_BASE(nr) + (r) * QBLOCKS + (un) / 2])

// Values 4p .. 4p+3 (p = 0..3) of a unit, unscaled.
vec4 qunit_quad(QUNIT q, uint p) {
#if WTYPE == 3
    return q8_word(q[p]);
#else
    return nib4(q[p / 2], (p % 2) * 4) - 8.0;
#endif
}

// Unscaled dot product of a unit with its 16 x values.
float qunit_dot(QUNIT q, vec4 xs[4]) {
    return dot(qunit_quad(q, 0), xs[0]) + dot(qunit_quad(q, 1), xs[1]) +
           dot(qunit_quad(q, 2), xs[2]) + dot(qunit_quad(q, 3), xs[3]);
}
#define QDOT(Q, D, nr, r, un, xs) (QSCALE(D, nr, r, un) * qunit_dot(Q[(r) * QUNITS + (un)], xs))
#endif
#endif // WQUANT

#endif
