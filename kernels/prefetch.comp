#version 450
// prefetch.comp - reads a range of a weight buffer and discards it, so that its
// lines are in the GPU's L2 cache when the next dispatch's mat-vec reads them.
// Decode records it beside a dispatch that leaves memory bandwidth idle
// (attention, or the tail of a mat-vec), with no barrier between the two, so
// weight streaming goes on across the barrier that follows (lib/session.c,
// record_step). It changes no result: nothing is written unless pc.write is
// nonzero, which the library never passes (the flag only keeps the compiler
// from removing the loads).
// Bindings: 0 src uvec4[] readonly (a weight shard); 1 sink uint[64] (never written).
// Push constants: uint first (uvec4 index of the range's start), uint count (uvec4s),
//   uint write (0).
// Defines: WG_SIZE, UNROLL (uvec4 loads an invocation, all issued before any is used).
// Geometry: grid (CEIL_DIV(count, WG_SIZE UNROLL)); invocation i of workgroup g reads
//   uvec4s first + g WG_SIZE UNROLL + j WG_SIZE + i, j < UNROLL (coalesced).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
layout(std430, set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Sink { uint sink[]; };
layout(push_constant) uniform Push { uint first; uint count; uint write; } pc;

void main() {
    uint base = gl_WorkGroupID.x * (WG_SIZE * UNROLL) + gl_LocalInvocationID.x;
    uvec4 acc = uvec4(0);
    [[unroll]] for (uint j = 0; j < UNROLL; j++) {
        uint k = base + j * WG_SIZE;
        if (k < pc.count)
            acc ^= src[pc.first + k];
    }
    if (pc.write != 0)
        sink[gl_LocalInvocationID.x % 64] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
