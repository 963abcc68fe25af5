// common.glsl - helpers shared by the kernels. Included, never compiled alone.
#ifndef LG_COMMON_GLSL
#define LG_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : enable

// Integer ceiling division for dispatch geometry.
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

#endif
