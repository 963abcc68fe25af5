#version 450
// add.comp - element-wise sum: y[i] = a[i] + b[i].
// Bindings (set 0): 0 a float[n] readonly; 1 b float[n] readonly; 2 y float[n] writeonly.
// Push constants: uint n.
// Spec constants: 0 workgroup size.
// Geometry: one invocation per element, CEIL_DIV(n, WG) workgroups in x.
// Reference: tests/ref ops (vector add).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint n; } pc;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.n)
        y[i] = a[i] + b[i];
}
