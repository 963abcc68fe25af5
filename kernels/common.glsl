// common.glsl - helpers shared by the kernels. Included, never compiled alone.
//
// Defines every kernel may receive:
//   WG_SIZE       invocations per workgroup (x)
//   USE_SUBGROUP  1 when the device has subgroup arithmetic in compute shaders
//   WTYPE         weight element type: 0 f32, 1 f16, 2 bf16
#ifndef LG_COMMON_GLSL
#define LG_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_shader_16bit_storage : require
#if IDOT
#extension GL_EXT_spirv_intrinsics : require
#endif
#if USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#endif

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

// The per-step parameters every forward-pass kernel can read (C mirror:
// struct lg_step in lib/forward.h). Written by the host before each submit, so
// recorded command buffers can be replayed.
#define STEP_BLOCK(b)                                                                 \
    layout(std430, set = 0, binding = b) readonly buffer StepBuf {                    \
        uint pos0;   /* position of the first token of this step */                   \
        uint n_tok;  /* tokens in this step */                                        \
        uint pad0;                                                                    \
        uint pad1;                                                                    \
        uint tokens[]; /* token ids, n_tok of them */                                 \
    } step;

// Weight loads as f32, whatever the stored type.
#if WTYPE == 0
#define WSCALAR float
#define WVEC4 vec4
#define W2F(x) (x)
#define W2F4(x) (x)
#elif WTYPE == 1
#define WSCALAR float16_t
#define WVEC4 f16vec4
#define W2F(x) float(x)
#define W2F4(x) vec4(x)
#elif WTYPE == 2
#define WSCALAR uint16_t
#define WVEC4 u16vec4
#define W2F(x) uintBitsToFloat(uint(x) << 16)
#define W2F4(x) uintBitsToFloat(uvec4(x) << 16)
#endif

// Workgroup-wide sum and max. Every invocation must call them (they contain
// barriers); all get the result. `scratch` needs WG_SIZE floats.
#if USE_SUBGROUP
#define WG_REDUCE(NAME, SUBOP, OP)                                                    \
    float NAME(float v) {                                                             \
        v = SUBOP(v);                                                                 \
        if (gl_SubgroupInvocationID == 0)                                             \
            scratch[gl_SubgroupID] = v;                                               \
        barrier();                                                                    \
        float r = scratch[0];                                                         \
        for (uint i = 1; i < gl_NumSubgroups; i++)                                    \
            r = OP(r, scratch[i]);                                                    \
        barrier();                                                                    \
        return r;                                                                     \
    }
#else
#define WG_REDUCE(NAME, SUBOP, OP)                                                    \
    float NAME(float v) {                                                             \
        uint t = gl_LocalInvocationID.x;                                              \
        scratch[t] = v;                                                               \
        barrier();                                                                    \
        for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {                                  \
            if (t < s)                                                                \
                scratch[t] = OP(scratch[t], scratch[t + s]);                          \
            barrier();                                                                \
        }                                                                             \
        float r = scratch[0];                                                         \
        barrier();                                                                    \
        return r;                                                                     \
    }
#endif
#define LG_ADD(a, b) ((a) + (b))

// The 8-bit KV cache (KV_Q8 1; C mirror: lg_kv_row_bytes in lib/forward.h). A cache
// row (one position, all KV_W = NKV HD values of K or of V) is KV_W int8 values q,
// then KV_W / 32 f16 scales d, padded to KV_RS bytes (a multiple of 16); value i is
// d[i / 32] q[i]. Blocks of 32 never straddle a head (HD % 32 == 0). Readers view the
// row as uints: KVQ8_ROW(j) is row j's first uint, KVQ8_D the scale of value i,
// KVQ8_Q4 the four int8 values of a uint as floats. (Building the floats
// from the bytes' bits instead of converting them measured no faster on the H100.)
#if KV_Q8
#define KVQ8_ROW(j) ((j) * (KV_RS / 4))
#define KVQ8_D(buf, r, i) unpackHalf2x16(buf[(r) + KV_W / 4 + (i) / 64])[((i) / 32) & 1]
#define KVQ8_Q4(w) vec4(ivec4(int(w) << 24, int(w) << 16, int(w) << 8, int(w)) >> 24)
#define KVQ8_Q1(w, k) float(int(w) << (24 - 8 * (k)) >> 24)
#endif

#endif
