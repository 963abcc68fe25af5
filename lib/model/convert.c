/*
 * convert.c - element-type conversion of weights (safetensors dtypes to f32,
 * f16 and bf16) and the dtype name table.
 *
 * Owns: bit-exact scalar conversions. Rounding is round-to-nearest-even,
 * subnormals are kept, NaN keeps its sign and top payload bits and is made
 * quiet, inf stays inf (see model.h). Inputs are read with memcpy because
 * safetensors data is not aligned. Must not touch: files, the GPU.
 */
#include <math.h>
#include <string.h>

#include "model/model.h"

static const struct {
    const char *name;
    size_t size;
} dtype_info[LG_DTYPE_COUNT] = {
    [LG_DTYPE_F32] = {"F32", 4},          [LG_DTYPE_F16] = {"F16", 2},
    [LG_DTYPE_BF16] = {"BF16", 2},        [LG_DTYPE_I32] = {"I32", 4},
    [LG_DTYPE_I8] = {"I8", 1},            [LG_DTYPE_U8] = {"U8", 1},
    [LG_DTYPE_F64] = {"F64", 8},          [LG_DTYPE_I64] = {"I64", 8},
    [LG_DTYPE_I16] = {"I16", 2},          [LG_DTYPE_U16] = {"U16", 2},
    [LG_DTYPE_U32] = {"U32", 4},          [LG_DTYPE_U64] = {"U64", 8},
    [LG_DTYPE_BOOL] = {"BOOL", 1},        [LG_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [LG_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
};

size_t lg_dtype_size(enum lg_dtype t) {
    return (unsigned)t < LG_DTYPE_COUNT ? dtype_info[t].size : 0;
}

const char *lg_dtype_name(enum lg_dtype t) {
    return (unsigned)t < LG_DTYPE_COUNT ? dtype_info[t].name : "?";
}

int lg_dtype_from_name(const char *s, enum lg_dtype *out) {
    unsigned i;
    for (i = 0; i < LG_DTYPE_COUNT; i++) {
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (enum lg_dtype)i;
            return 0;
        }
    }
    return -1;
}

int lg_dtype_is_weight(enum lg_dtype t) {
    return t == LG_DTYPE_F32 || t == LG_DTYPE_F16 || t == LG_DTYPE_BF16;
}

static float bits_to_f32(uint32_t x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}

float lg_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t e;
    if (exp == 0) {
        if (man == 0)
            return bits_to_f32(sign);
        /* subnormal: man * 2^-24, normalised into an f32 */
        e = 113;
        while (!(man & 0x400u)) {
            man <<= 1;
            e--;
        }
        return bits_to_f32(sign | (e << 23) | ((man & 0x3ffu) << 13));
    }
    if (exp == 31)
        return bits_to_f32(sign | 0x7f800000u | (man << 13));
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t lg_f32_to_f16(float f) {
    uint32_t x = f32_to_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    uint32_t r, rem, half, shift, m;
    if (ax >= 0x7f800000u) { /* inf or NaN */
        if (ax > 0x7f800000u)
            return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax >= 0x477ff000u) /* >= 65520 rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below 2^-14: f16 subnormal or zero */
        if (ax < 0x33000000u) /* < 2^-25: rounds to zero */
            return (uint16_t)sign;
        shift = 126 - (ax >> 23); /* 14..24 */
        m = (ax & 0x7fffffu) | 0x800000u;
        r = m >> shift;
        rem = m & ((1u << shift) - 1);
        half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    r = (ax - 0x38000000u) >> 13; /* rebias 127 -> 15 */
    rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1)))
        r++;
    return (uint16_t)(sign | r);
}

float lg_bf16_to_f32(uint16_t b) {
    return bits_to_f32((uint32_t)b << 16);
}

uint16_t lg_f32_to_bf16(float f) {
    uint32_t x = f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* FP8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN. */
static float f8e4m3_to_f32(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t exp = (b >> 3) & 0xfu;
    uint32_t man = b & 0x7u;
    float v;
    if (exp == 0xf && man == 0x7)
        return bits_to_f32(sign | 0x7fc00000u);
    if (exp == 0)
        v = ldexpf((float)man, -9);
    else
        v = ldexpf((float)(8 + man), (int)exp - 10);
    return sign ? -v : v;
}

/* Read element i of a buffer of dtype src as a double (exact for every dtype
 * but I64/U64 beyond 2^53). Used for the rare non-float dtypes. */
static double load_as_double(enum lg_dtype src, const unsigned char *p, size_t i) {
    switch (src) {
    case LG_DTYPE_F64: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    case LG_DTYPE_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    case LG_DTYPE_U64: { uint64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    case LG_DTYPE_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case LG_DTYPE_U32: { uint32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case LG_DTYPE_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case LG_DTYPE_U16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case LG_DTYPE_I8: return (int8_t)p[i];
    case LG_DTYPE_U8: return p[i];
    case LG_DTYPE_BOOL: return p[i] != 0;
    case LG_DTYPE_F8_E4M3: return f8e4m3_to_f32(p[i]);
    case LG_DTYPE_F8_E5M2: return lg_f16_to_f32((uint16_t)(p[i] << 8));
    default: return 0.0;
    }
}

void lg_convert_to_f32(enum lg_dtype src, const void *in, float *out, size_t n) {
    const unsigned char *p = in;
    size_t i;
    uint16_t h;
    switch (src) {
    case LG_DTYPE_F32:
        memcpy(out, in, n * 4);
        break;
    case LG_DTYPE_F16:
        for (i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            out[i] = lg_f16_to_f32(h);
        }
        break;
    case LG_DTYPE_BF16:
        for (i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            out[i] = lg_bf16_to_f32(h);
        }
        break;
    default:
        for (i = 0; i < n; i++)
            out[i] = (float)load_as_double(src, p, i);
        break;
    }
}

static int f16_is_inf(uint16_t h) {
    return (h & 0x7fffu) == 0x7c00u;
}

size_t lg_convert_to_f16(enum lg_dtype src, const void *in, uint16_t *out, size_t n) {
    const unsigned char *p = in;
    size_t i, overflow = 0;
    uint16_t h;
    float f;
    switch (src) {
    case LG_DTYPE_F16:
        memcpy(out, in, n * 2);
        return 0;
    case LG_DTYPE_F32:
        for (i = 0; i < n; i++) {
            memcpy(&f, p + 4 * i, 4);
            out[i] = lg_f32_to_f16(f);
            overflow += f16_is_inf(out[i]) && isfinite(f);
        }
        return overflow;
    case LG_DTYPE_BF16:
        /* bf16 -> f32 is exact, so this rounds once */
        for (i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            f = lg_bf16_to_f32(h);
            out[i] = lg_f32_to_f16(f);
            overflow += f16_is_inf(out[i]) && isfinite(f);
        }
        return overflow;
    default:
        for (i = 0; i < n; i++) {
            f = (float)load_as_double(src, p, i); /* F64: rounds twice */
            out[i] = lg_f32_to_f16(f);
            overflow += f16_is_inf(out[i]) && isfinite(load_as_double(src, p, i));
        }
        return overflow;
    }
}

size_t lg_convert_to_bf16(enum lg_dtype src, const void *in, uint16_t *out, size_t n) {
    const unsigned char *p = in;
    size_t i, overflow = 0;
    uint16_t h;
    float f;
    double d;
    switch (src) {
    case LG_DTYPE_BF16:
        memcpy(out, in, n * 2);
        return 0;
    case LG_DTYPE_F32:
        for (i = 0; i < n; i++) {
            memcpy(&f, p + 4 * i, 4);
            out[i] = lg_f32_to_bf16(f);
            overflow += (out[i] & 0x7fffu) == 0x7f80u && isfinite(f);
        }
        return overflow;
    case LG_DTYPE_F16:
        for (i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            out[i] = lg_f32_to_bf16(lg_f16_to_f32(h));
        }
        return 0;
    default:
        for (i = 0; i < n; i++) {
            d = load_as_double(src, p, i);
            out[i] = lg_f32_to_bf16((float)d);
            overflow += (out[i] & 0x7fffu) == 0x7f80u && isfinite(d);
        }
        return overflow;
    }
}
