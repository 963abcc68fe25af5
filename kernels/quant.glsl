// quant.glsl - reading block-quantized weights (WTYPE 3 q8_0, 4 q4_0, 5 q4_K, 6 q6_K,
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
//         x = d (q - 8). (32-value uvec4 units measured slower on the H100 in the
//         float-dot mat-vec: 7B decode 138-165 tok/s against 184. The integer-dot one
//         reads a whole block, two adjacent units, as one uvec4: matvec.comp BLK32.)
//   q4_K  ggml's block_q4_K as is: 144 bytes = 9 uvec4 per 256 values, row-major
//         (a row is K/256 blocks). uvec4 0: f16 d, f16 dmin, 12 bytes of packed
//         6-bit sub-block scales and mins; uvec4 1 + p (p = 0..7): bytes 16p..16p+15
//         of the 4-bit values, byte 32g + l holding value 64g + l (low nibble) and
//         64g + 32 + l (high nibble). x = d sc q - dmin m. A unit is one such uvec4:
//         32 values, 16 of sub-block 2g and 16 of 2g + 1.
//   q6_K  ggml's 210-byte block_q6_K repacked (it is not 4-byte aligned): per super-
//         block of 256 values 13 uvec4, the row's K/256 blocks in order, rows in
//         order; then R*K/256 f16 d, row-major, starting QD_BASE(R) f16s into the
//         buffer. uvec4 u (u < 8): the low 4 bits of values 32u .. 32u+31, value
//         i of them in bits 4(i % 8) of word i / 8; uvec4 8 + u/2 half u % 2 (the
//         uvec2 16 + u of the block): their high 2 bits, value i in bits 2(i % 16)
//         of word i / 16; uvec4 12: the 16 int8 sub-block scales, scale s in byte
//         s % 4 of word s / 4. x = d sc[v / 16] (q - 32). A unit is 32 values (two
//         sub-blocks): one uvec4 and one uvec2 read, neighbouring units adjacent.
//   q4_g  (WTYPE 7; GROUP define: values a group, a multiple of 16) the values of all
//         rows first, packed as q4_0's (a unit is a uvec2), then for each row its
//         QNG = ceil(K / GROUP) (scale, zero) f16 pairs, row-major, starting QD_BASE(R)
//         f16s into the buffer: x = scale (q - zero), the checkpoint's own numbers.
//         A unit of 16 values lies in one group.
// QUNITS units a row, QUADS vec4s of x a unit, QX(un, i): the vec4 index in a row
// of x quad i of unit un. QDOT(Q, D, nr, r, un, xs): the dot product of unit un of
// row r (shard of nr rows) with x quads xs[QUADS], scaled. QVAL_QUAD(Q, D, nr, r, k, p):
// values k + 4p .. k + 4p + 3 of row r dequantized (k % 16 == 0, p < 4; matmul.comp).
#ifndef LG_QUANT_GLSL
#define LG_QUANT_GLSL

#if WTYPE == 3 || WTYPE == 4 || WTYPE == 5 || WTYPE == 6 || WTYPE == 7
#define WQUANT 1
#else
#define WQUANT 0
#endif

#if WQUANT
// float16_t storage comes from GL_EXT_shader_16bit_storage (common.glsl); the
// scales are widened to f32 before any arithmetic.

#if WTYPE == 5
#define QUNIT uvec4
#define QUADS 8
#define QUNITS (K / 32)
#define QROW_U4 ((K / 256) * 9)   // uvec4s a row (a block is 9)
#elif WTYPE == 6
#define QUNIT uvec4
#define QUADS 8
#define QUNITS (K / 32)
#define QROW_U4 ((K / 256) * 13)        // uvec4s a row (a block is 13)
#define QD_BASE(nr) ((nr) * QROW_U4 * 8) // f16s before the d array
#elif WTYPE == 7
#define QUNIT uvec2
#define QUADS 4
#define QUNITS (K / 16)
#define QNG ((K + GROUP - 1) / GROUP)  // groups a row
#define QD_BASE(nr) ((nr) * (K / 4))   // R K / 2 bytes of values
#else
#define QBLOCKS (K / 32)          // blocks (scales) a row
#if WTYPE == 3
#define QUNIT uvec4
#define QUADS 4
#define QUNITS (K / 16)
#define QD_BASE(nr) ((nr) * (K / 2))   // R K bytes of values = R K / 2 f16s
#else
#define QUNIT uvec2
#define QUADS 4
#define QUNITS (K / 16)
#define QD_BASE(nr) ((nr) * (K / 4))   // R K / 2 bytes of values
#endif
#endif
#define UNIT_VALS (QUADS * 4)

// Declare the views of one weight binding: Q (units) and D (f16 scales; unused by q4_K).
#if WTYPE == 6
// q6_K adds Q##_h, a uvec2 view for the high bits.
#define QUANT_BINDING(b, QB, Q, DB, D)                                                 \
    layout(std430, set = 0, binding = b) readonly buffer QB { QUNIT Q[]; };           \
    layout(std430, set = 0, binding = b) readonly buffer QB##H_ { uvec2 Q##_h[]; };   \
    layout(std430, set = 0, binding = b) readonly buffer DB { float16_t D[]; };
#else
#define QUANT_BINDING(b, QB, Q, DB, D)                                                 \
    layout(std430, set = 0, binding = b) readonly buffer QB { QUNIT Q[]; };           \
    layout(std430, set = 0, binding = b) readonly buffer DB { float16_t D[]; };
#endif

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
// A unit is uvec4 p = un % 8 of block un / 8's values: with g = p / 2 and
// l = 16 (p % 2), byte l + c (c < 16) holds value 64g + l + c (low nibble, sub-block
// 2g) and 64g + 32 + l + c (high nibble, sub-block 2g + 1). x quads 0-3 are the
// low values, 4-7 the high ones.
#define QX(un, i)                                                                      \
    (((un) / 8) * 64 + (((un) % 8) / 2) * 16 + ((un) % 2) * 4 + ((i) % 4) + ((i) / 4) * 8)

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

// A unit (16 bytes q of 64-value group g, header h) dotted with its x quads.
float q4k_dot(uvec4 h, uvec4 q, uint g, vec4 xs[8]) {
    vec2 lo = k4_sub(h, 2 * g), hi = k4_sub(h, 2 * g + 1);
    float dl = 0.0, dh = 0.0;
    vec4 sl = xs[0] + xs[1] + xs[2] + xs[3], sh = xs[4] + xs[5] + xs[6] + xs[7];
    [[unroll]] for (uint i = 0; i < 4; i++) {
        uint w = q[i];
        dl += dot(vec4(w & 15u, (w >> 8) & 15u, (w >> 16) & 15u, (w >> 24) & 15u), xs[i]);
        dh += dot(vec4((w >> 4) & 15u, (w >> 12) & 15u, (w >> 20) & 15u, w >> 28), xs[4 + i]);
    }
    return lo.x * dl - lo.y * dot(sl, vec4(1.0)) + hi.x * dh - hi.y * dot(sh, vec4(1.0));
}
#define Q4K_HEAD(Q, base) Q[base]
#define QDOT(Q, D, nr, r, un, xs)                                                      \
    q4k_dot(Q[(r) * QROW_U4 + ((un) / 8) * 9], Q[(r) * QROW_U4 + ((un) / 8) * 9 + 1 + (un) % 8], \
            ((un) % 8) / 2, xs)
#elif WTYPE == 6
// Unit un of a row is values 32un .. 32un+31 in order: x quads un * 8 + i.
#define QX(un, i) ((un) * 8 + (i))

// Levels q - 32 of values 4p .. 4p+3 (p < 8) of a unit: low bits lo (uvec4), high hi.
vec4 q6_quad(uvec4 lo, uvec2 hi, uint p) {
    uvec4 l = (uvec4(lo[p / 2]) >> (16 * (p % 2) + uvec4(0, 4, 8, 12))) & 15u;
    uvec4 h = (uvec4(hi[p / 4]) >> (8 * (p % 4) + uvec4(0, 2, 4, 6))) & 3u;
    return vec4(l | (h << 4)) - 32.0;
}
// Sub-block s's int8 scale from w, word s / 4 of the block's scale uvec4.
float q6_scale(uint w, uint s) {
    return float(bitfieldExtract(int(w), int(8 * (s % 4)), 8));
}
// A unit dotted with its x quads, scaled: d (sc0 lo-half + sc1 hi-half); sw is the
// scale word holding the unit's two scales in its bytes 2(u % 2), + 1.
float q6k_dot(uvec4 lo, uvec2 hi, uint sw, uint u, float d, vec4 xs[8]) {
    float s0 = 0.0, s1 = 0.0;
    [[unroll]] for (uint p = 0; p < 4; p++) {
        s0 += dot(q6_quad(lo, hi, p), xs[p]);
        s1 += dot(q6_quad(lo, hi, p + 4), xs[p + 4]);
    }
    float c0 = float(bitfieldExtract(int(sw), int(16 * (u % 2)), 8));
    float c1 = float(bitfieldExtract(int(sw), int(16 * (u % 2) + 8), 8));
    return d * (c0 * s0 + c1 * s1);
}
// Unit un of row r (shard of nr rows): block base uvec4 (r * QROW_U4 + (un / 8) * 13),
// u = un % 8.
#define Q6_BASE(r, un) ((r) * QROW_U4 + ((un) / 8) * 13)
#define QDOT(Q, D, nr, r, un, xs)                                                      \
    q6k_dot(Q[Q6_BASE(r, un) + (un) % 8], Q##_h[Q6_BASE(r, un) * 2 + 16 + (un) % 8],     \
            Q[Q6_BASE(r, un) + 12][((un) % 8) / 2], (un) % 8,                           \
            float(D[QD_BASE(nr) + (r) * (K / 256) + (un) / 8]), xs)
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
#define QX(un, i) ((un) * QUADS + (i))
// The scale of unit un (0 .. QUNITS-1) of row r, in a shard of nr rows.
#define QSCALE(D, nr, r, un) float(D[QD_BASE(nr) + (r) * QBLOCKS + (un) / (32 / UNIT_VALS)])

// Values 4p .. 4p+3 (p < QUADS) of a unit, unscaled.
vec4 qunit_quad(QUNIT q, uint p) {
#if WTYPE == 3
    return q8_word(q[p]);
#else
    return nib4(q[p / 2], (p % 2) * 4) - 8.0;
#endif
}

// Unscaled dot product of a unit with its x values.
float qunit_dot(QUNIT q, vec4 xs[QUADS]) {
    float a = 0.0;
    [[unroll]] for (uint p = 0; p < QUADS; p++)
        a += dot(qunit_quad(q, p), xs[p]);
    return a;
}
#define QDOT(Q, D, nr, r, un, xs) (QSCALE(D, nr, r, un) * qunit_dot(Q[(r) * QUNITS + (un)], xs))
#define QVAL_QUAD(Q, D, nr, r, k, p)                                                   \
    (QSCALE(D, nr, r, (k) / UNIT_VALS) *                                               \
     qunit_quad(Q[(r) * QUNITS + (k) / UNIT_VALS], ((k) % UNIT_VALS) / 4 + (p)))
#endif
#endif // WQUANT

// ---- IDOT: integer dot products (matvec.comp) ----
// With IDOT (WTYPE 3, 4, 5, 7: int8 or nibble weights) x is quantized
// once per workgroup into shared memory, 16 values a unit: xd = max |x| / 127,
// xq = round(x / xd) as int8, four to a word; each unit's weights then meet x through
// OpSDotAccSat (SPV_KHR_integer_dot_product, reached through GL_EXT_spirv_intrinsics:
// bookworm's glslang has no GL_EXT_integer_dot_product) and one float multiply a unit:
//   q8_0  d xd sum_i q_i xq_i             (x words in value order)
//   q4_0  d xd (sum_i q_i xq_i - 8 sum_i xq_i)
//   q4_g  s xd (sum_i q_i xq_i - z sum_i xq_i)
//   q4_K  per 16-value half of a unit (sub-block j): xd (d sc_j sum_i q_i xq_i - dmin m_j
//         sum_i xq_i); a unit's low nibbles are values in order (x unit un4) and its
//         high nibbles the values 32 later (x unit un4 + 2)
// The nibble types' words hold values (0, 2, 4, 6) and (1, 3, 5, 7) of an 8-value
// group after masking (w & 0x0F0F0F0F and w >> 4 & ...), so their x words are packed
// in that order (matvec.comp's quantize_x).
#if IDOT
#if WTYPE != 3 && WTYPE != 4 && WTYPE != 5 && WTYPE != 7
#error IDOT needs q8_0, q4_0, q4_K or q4_g weights
#endif
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4453)
int sdot4_acc(uint a, uint b, int acc, spirv_literal int packed_format);
#define SDOT(a, b, acc) sdot4_acc(a, b, acc, 0)   // 0: PackedVectorFormat4x8Bit

// Four ints (each in -128..127) as one word of bytes, a in the lowest.
uint pack_i8x4(int a, int b, int c, int d) {
    return (uint(a) & 255u) | ((uint(b) & 255u) << 8) | ((uint(c) & 255u) << 16) |
           (uint(d) << 24);
}

// sum_i q_i xq_i of a unit (no scales, no zero point) against its x words xw.
#if WTYPE == 3
int idot_unit(uvec4 q, uvec4 xw) {
    return SDOT(q.w, xw.w, SDOT(q.z, xw.z, SDOT(q.y, xw.y, SDOT(q.x, xw.x, 0))));
}
#elif WTYPE == 5
// The low (hi = 0) or high (hi = 1) nibbles of a q4_K unit's 16 bytes against x words xw.
int idot_k4(uvec4 q, uint hi, uvec4 xw) {
    const uint m = 0x0F0F0F0Fu;
    uvec4 n = (q >> (4 * hi)) & m;
    return SDOT(n.w, xw.w, SDOT(n.z, xw.z, SDOT(n.y, xw.y, SDOT(n.x, xw.x, 0))));
}
#else
int idot_unit(uvec2 q, uvec4 xw) {
    const uint m = 0x0F0F0F0Fu;
    return SDOT((q.y >> 4) & m, xw.w,
                SDOT(q.y & m, xw.z, SDOT((q.x >> 4) & m, xw.y, SDOT(q.x & m, xw.x, 0))));
}
#endif
#endif // IDOT

#endif
