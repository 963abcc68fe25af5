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

// Flow mode (FLOW 1, with FLOW_BINDING): decode's dispatches are recorded without
// pipeline barriers between them, so the GPU starts a dispatch's workgroups while the
// one before it is still running, and the order comes from a counter instead:
// flow[0] counts the workgroups of this step's flow dispatches that have finished
// (every workgroup adds 1 after its writes, flow_signal), and a workgroup first waits
// until it reaches the number of workgroups recorded before its dispatch (flow_wait;
// session.c passes it). Before the first dispatch of stage s finishes, only the
// workgroups of stages before s can have counted (the later ones are still waiting),
// so reaching their total means every one of them is done. A barrier's drain, cache
// flush and launch gap (~2-6 us, PLATFORM.md) becomes a wait that ends the moment the
// last workgroup counts, while the waiting workgroups are already resident.
// Activations (ACT buffers) are read coherent, past the non-coherent L1, which may
// hold lines an earlier stage of the step read before they were rewritten. The GPU
// launches a dispatch's workgroups only after the previous dispatch's are all
// launched, so waiting workgroups never keep a producer from running; a wait that
// still exceeds FLOW_SPINS polls gives up and sets flow[1], which the host checks after
// the step (the step is then re-run with barriers).
#if FLOW
#define ACT coherent
layout(std430, set = 0, binding = FLOW_BINDING) coherent volatile buffer FlowBuf { uint flow[]; };
#ifndef FLOW_BACKOFF
#define FLOW_BACKOFF 256
#endif
#ifndef FLOW_SPINS
#define FLOW_SPINS (1u << 20)
#endif
void flow_wait(uint target) {
    if (gl_LocalInvocationIndex == 0u) {
        uint n = 0u;
        // plain (volatile, coherent) loads: polling atomics would queue behind each
        // other and behind the counting ones at the counter's L2 slice
        while (flow[0] < target) {
            if (++n == FLOW_SPINS) {
                atomicOr(flow[1], 1u);
                break;
            }
#if FLOW_BACKOFF
            // a dependent chain of FLOW_BACKOFF multiply-adds between polls
            float d = float(n);
            for (uint i = 0u; i < FLOW_BACKOFF; i++)
                d = d * 0.999 + 0.5;
            if (d == -1.0) // never: keeps the chain
                n = 0u;
#endif
        }
    }
    memoryBarrierBuffer();
    barrier();
}
// After this workgroup's last write; every invocation must call it.
void flow_signal() {
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationIndex == 0u)
        atomicAdd(flow[0], 1u);
}
#else
#define ACT
#endif

#endif
