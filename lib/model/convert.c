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
#include <stdatomic.h>
#include <string.h>

#include "model/model.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define LG_X86_F16C 1
#endif

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

#ifdef LG_X86_F16C
/*
 * f32 or bf16 -> f16, 8 at a time with F16C (VCVTPS2PH, immediate
 * round-to-nearest-even: the same results as lg_f32_to_f16, which
 * check_model.c verifies). Converts the largest multiple of 8 and returns how
 * many it did; *overflow gets the finite inputs that became inf.
 */
__attribute__((target("avx2,f16c"))) static size_t to_f16_f16c(enum lg_dtype src,
                                                               const unsigned char *in,
                                                               uint16_t *out, size_t n,
                                                               size_t *overflow) {
    const __m128i abs_mask = _mm_set1_epi16(0x7fff), inf = _mm_set1_epi16(0x7c00);
    size_t i, j;
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v;
        __m128i h;
        if (src == LG_DTYPE_BF16) {
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(in + 2 * i));
            v = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16));
        } else {
            v = _mm256_loadu_ps((const float *)(const void *)(in + 4 * i));
        }
        h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(void *)(out + i), h);
        if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, abs_mask), inf))) {
            for (j = i; j < i + 8; j++) {
                float f;
                uint16_t b;
                if (src == LG_DTYPE_BF16) {
                    memcpy(&b, in + 2 * j, 2);
                    f = lg_bf16_to_f32(b);
                } else {
                    memcpy(&f, in + 4 * j, 4);
                }
                *overflow += f16_is_inf(out[j]) && isfinite(f);
            }
        }
    }
    return i;
}

/* CPUID: AVX2 and F16C, with the OS saving YMM state (XCR0 bits 1-2). */
static int detect_f16c(void) {
    unsigned a, b, c, d, xlo, xhi;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 29)) || !(c & (1u << 28)) ||
        !(c & (1u << 27)))
        return 0;
    __asm__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    if ((xlo & 6u) != 6u)
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b & (1u << 5)) != 0;
}

/* The answer is a fact about the CPU, cached process-wide (CPUID can trap to a
 * hypervisor and cost microseconds); 0 unknown, 1 no, 2 yes. */
static _Atomic int f16c_state;

static int have_f16c(void) {
    int s = atomic_load_explicit(&f16c_state, memory_order_relaxed);
    if (s == 0) {
        s = detect_f16c() ? 2 : 1;
        atomic_store_explicit(&f16c_state, s, memory_order_relaxed);
    }
    return s == 2;
}
#endif

size_t lg_convert_to_f16(enum lg_dtype src, const void *in, uint16_t *out, size_t n) {
    const unsigned char *p = in;
    size_t i = 0, overflow = 0;
    uint16_t h;
    float f;
#ifdef LG_X86_F16C
    if ((src == LG_DTYPE_F32 || src == LG_DTYPE_BF16) && n >= 8 && have_f16c())
        i = to_f16_f16c(src, p, out, n, &overflow);
#endif
    switch (src) {
    case LG_DTYPE_F16:
        memcpy(out, in, n * 2);
        return 0;
    case LG_DTYPE_F32:
        for (; i < n; i++) {
            memcpy(&f, p + 4 * i, 4);
            out[i] = lg_f32_to_f16(f);
            overflow += f16_is_inf(out[i]) && isfinite(f);
        }
        return overflow;
    case LG_DTYPE_BF16:
        /* bf16 -> f32 is exact, so this rounds once */
        for (; i < n; i++) {
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
