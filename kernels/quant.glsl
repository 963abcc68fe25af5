// quant.glsl - reading block-quantized weights (WTYPE 3 q8_0, 4 q4_0).
// Included by matvec.comp and matmul.comp after common.glsl, never compiled alone.
//
// Layout of one shard of R rows of K values (lib/model/upload.c's top comment
// is the authority): the values of all rows first, row-major, then R*K/32 f16
// block scales, row-major. Values are read in units of 16 (half a block):
//   q8_0  a unit is a uvec4: 16 int8, value i of the unit in byte i % 4 of word i / 4
//         (little-endian); x = d * q.
//   q4_0  a unit is a uvec2: 16 nibbles, value i in bits 4(i % 8).. of word i / 8;
//         x = d * (q - 8).
// The scales of a shard start at QD_BASE(n_rows) f16s into the buffer.
// K % 32 == 0 (the loader keeps other matrices in f16).
#ifndef LG_QUANT_GLSL
#define LG_QUANT_GLSL

#if WTYPE == 3 || WTYPE == 4
#define WQUANT 1
#else
#define WQUANT 0
#endif

#if WQUANT
// float16_t storage comes from GL_EXT_shader_16bit_storage (common.glsl); the
// scales are widened to f32 before any arithmetic.
#define QUNITS (K / 16)   // units a row
#define QBLOCKS (K / 32)  // blocks (scales) a row
#if WTYPE == 3
#define QUNIT uvec4
#define QD_BASE(nr) ((nr) * (K / 2))   // R K bytes of values = R K / 2 f16s
#else
#define QUNIT uvec2
#define QD_BASE(nr) ((nr) * (K / 4))   // R K / 2 bytes of values
#endif

// Declare the two views of one weight binding: Q (units) and D (f16 scales).
#define QUANT_BINDING(b, QB, Q, DB, D)                                                 \
    layout(std430, set = 0, binding = b) readonly buffer QB { QUNIT Q[]; };           \
    layout(std430, set = 0, binding = b) readonly buffer DB { float16_t D[]; };

// The scale of unit u (0 .. QUNITS-1) of row r, in a shard of nr rows.
#define QSCALE(D, nr, r, u) float(D[QD_BASE(nr) + (r) * QBLOCKS + (u) / 2])

// Four values of one 32-bit word of a unit: the word's values 4h .. 4h+3
// (h = 0 or 1 for q4_0: low or high half of the word's 8 nibbles), unscaled.
vec4 q8_word(uint w) {
    return vec4(bitfieldExtract(int(w), 0, 8), bitfieldExtract(int(w), 8, 8),
                bitfieldExtract(int(w), 16, 8), bitfieldExtract(int(w), 24, 8));
}
vec4 q4_half(uint w, uint h) {
    uint s = h * 16;
    return vec4((w >> s) & 15u, (w >> (s + 4)) & 15u, (w >> (s + 8)) & 15u,
                (w >> (s + 12)) & 15u) - 8.0;
}

// Unscaled dot product of a unit with 16 x values (x0 = values 0..3, ...).
float qdot_unit(QUNIT q, vec4 x0, vec4 x1, vec4 x2, vec4 x3) {
#if WTYPE == 3
    return dot(q8_word(q.x), x0) + dot(q8_word(q.y), x1) + dot(q8_word(q.z), x2) +
           dot(q8_word(q.w), x3);
#else
    return dot(q4_half(q.x, 0), x0) + dot(q4_half(q.x, 1), x1) + dot(q4_half(q.y, 0), x2) +
           dot(q4_half(q.y, 1), x3);
#endif
}

// Values 4p .. 4p+3 (p = 0..3) of a unit, unscaled.
vec4 qunit_quad(QUNIT q, uint p) {
#if WTYPE == 3
    return q8_word(q[p]);
#else
    return q4_half(q[p / 2], p % 2);
#endif
}
#endif // WQUANT

#endif
