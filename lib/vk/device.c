/*
 * device.c - Vulkan instance, physical-device description and choice, logical
 * device with the optional features the kernels can use, and the validation
 * layer's messenger. Owns nothing about memory or kernels.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vk/vk.h"

#define LG_MIN_API VK_API_VERSION_1_2

uint64_t lg_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *lg_vk_result_string(VkResult r) {
    switch (r) {
#define C(x) case x: return #x;
        C(VK_SUCCESS) C(VK_NOT_READY) C(VK_TIMEOUT) C(VK_INCOMPLETE)
        C(VK_ERROR_OUT_OF_HOST_MEMORY) C(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        C(VK_ERROR_INITIALIZATION_FAILED) C(VK_ERROR_DEVICE_LOST) C(VK_ERROR_MEMORY_MAP_FAILED)
        C(VK_ERROR_LAYER_NOT_PRESENT) C(VK_ERROR_EXTENSION_NOT_PRESENT)
        C(VK_ERROR_FEATURE_NOT_PRESENT) C(VK_ERROR_INCOMPATIBLE_DRIVER)
        C(VK_ERROR_TOO_MANY_OBJECTS) C(VK_ERROR_FORMAT_NOT_SUPPORTED)
        C(VK_ERROR_FRAGMENTED_POOL) C(VK_ERROR_OUT_OF_POOL_MEMORY) C(VK_ERROR_UNKNOWN)
#undef C
    default:
        return "VkResult(unknown)";
    }
}

/* 1 when the device-loss test hook fires for this submission. */
static int take_injected_loss(struct llmgpu_context *ctx) {
    int v = atomic_load(&ctx->inject_lost);
    while (v > 0)
        if (atomic_compare_exchange_weak(&ctx->inject_lost, &v, v - 1))
            return v == 1;
    return 0;
}

VkResult lg_vk_queue_submit(struct llmgpu_context *ctx, const VkSubmitInfo *si, VkFence fence) {
    VkResult r;
    if (take_injected_loss(ctx))
        return VK_ERROR_DEVICE_LOST;
    pthread_mutex_lock(&ctx->queue_lock);
    r = vkQueueSubmit(ctx->queue, 1, si, fence);
    pthread_mutex_unlock(&ctx->queue_lock);
    return r;
}

void lg_test_inject_device_lost(struct llmgpu_context *ctx) {
    atomic_store(&ctx->inject_lost, 1);
}

enum llmgpu_status lg_vk_check(struct llmgpu_context *ctx, VkResult r, const char *what) {
    if (r == VK_SUCCESS)
        return LLMGPU_OK;
    lg_err(&ctx->log, "%s failed: %s (%d)", what, lg_vk_result_string(r), (int)r);
    switch (r) {
    case VK_ERROR_DEVICE_LOST:
        atomic_store(&ctx->lost, 1);
        return LLMGPU_ERR_DEVICE_LOST;
    case VK_ERROR_OUT_OF_HOST_MEMORY:
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        return LLMGPU_ERR_OUT_OF_DEVICE_MEMORY;
    default:
        return LLMGPU_ERR_VULKAN;
    }
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                    VkDebugUtilsMessageTypeFlagsEXT type,
                                                    const VkDebugUtilsMessengerCallbackDataEXT *d,
                                                    void *user) {
    struct llmgpu_context *ctx = user;
    (void)type;
    if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        atomic_fetch_add(&ctx->validation_errors, 1);
        lg_err(&ctx->log, "validation: %s", d->pMessage);
    } else if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        lg_warn(&ctx->log, "validation: %s", d->pMessage);
    }
    return VK_FALSE;
}

static int has_layer(const char *name) {
    uint32_t n = 0;
    VkLayerProperties props[64];
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS)
        return 0;
    if (n > LG_ARRAY_LEN(props))
        n = LG_ARRAY_LEN(props);
    if (vkEnumerateInstanceLayerProperties(&n, props) < 0)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(props[i].layerName, name) == 0)
            return 1;
    return 0;
}

static const char no_driver_hint[] =
    "no Vulkan driver found: install your GPU's Vulkan driver (NVIDIA: the proprietary "
    "driver; AMD/Intel: mesa-vulkan-drivers) or, to run on the CPU, mesa-vulkan-drivers "
    "(lavapipe); check with 'vulkaninfo --summary' (vulkan-tools)";

static enum llmgpu_status instance_create(const struct lg_log *log, int validation,
                                         VkInstance *out) {
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "libllmgpu",
                             .applicationVersion = LLMGPU_VERSION_NUMBER,
                             .pEngineName = "libllmgpu",
                             .engineVersion = LLMGPU_VERSION_NUMBER,
                             .apiVersion = VK_API_VERSION_1_3};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pApplicationInfo = &app};
    VkResult r;
    *out = VK_NULL_HANDLE;
    if (validation) {
        if (!has_layer(layers[0])) {
            lg_err(log, "validation requested but VK_LAYER_KHRONOS_validation is not installed "
                        "(Debian: vulkan-validationlayers)");
            return LLMGPU_ERR_UNSUPPORTED;
        }
        ci.enabledLayerCount = 1;
        ci.ppEnabledLayerNames = layers;
        ci.enabledExtensionCount = 1;
        ci.ppEnabledExtensionNames = exts;
    }
    r = vkCreateInstance(&ci, NULL, out);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) {
        lg_err(log, "%s (vkCreateInstance: %s)", no_driver_hint, lg_vk_result_string(r));
        return LLMGPU_ERR_NO_DEVICE;
    }
    if (r != VK_SUCCESS) {
        lg_err(log, "vkCreateInstance failed: %s", lg_vk_result_string(r));
        return r == VK_ERROR_OUT_OF_HOST_MEMORY ? LLMGPU_ERR_OUT_OF_HOST_MEMORY
                                                : LLMGPU_ERR_VULKAN;
    }
    return LLMGPU_OK;
}

/* One VkInstance per process (and one more with the validation layer), made by the
 * first context and kept until the process ends; contexts make their devices on it.
 * The NVIDIA driver (580, H100) refuses vkCreateInstance with
 * VK_ERROR_INCOMPATIBLE_DRIVER after about 30 instances were created and destroyed in
 * one process (tests/tools/ctx_loop.py: context 31 failed, open descriptors and
 * mappings unchanged), so a program that opens and closes contexts - a server, an
 * editor, a test suite - ran out of them. A failed creation is not kept: the next
 * call tries again. The instance is never destroyed (a library destructor would race
 * the driver's own at exit); it stays reachable, so leak checkers do not count it. */
static pthread_mutex_t g_instance_lock = PTHREAD_MUTEX_INITIALIZER;
static VkInstance g_instance[2]; /* [validation] */

enum llmgpu_status lg_vk_instance_get(const struct lg_log *log, int validation,
                                      VkInstance *out) {
    enum llmgpu_status st = LLMGPU_OK;
    int v = validation != 0;
    pthread_mutex_lock(&g_instance_lock);
    if (!g_instance[v])
        st = instance_create(log, v, &g_instance[v]);
    *out = g_instance[v];
    pthread_mutex_unlock(&g_instance_lock);
    return st;
}

static int has_ext(const VkExtensionProperties *e, uint32_t n, const char *name) {
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(e[i].extensionName, name) == 0)
            return 1;
    return 0;
}

int lg_vk_type_rank(enum llmgpu_device_type t) {
    switch (t) {
    case LLMGPU_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case LLMGPU_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case LLMGPU_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case LLMGPU_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

void lg_vk_fill_info(VkPhysicalDevice pd, uint32_t index, struct llmgpu_device_info *info,
                     struct lg_vk_caps *caps) {
    VkPhysicalDeviceShaderIntegerDotProductProperties idp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sg = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties sgc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES, .pNext = &sg};
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &sgc};
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &m3};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = &drv};
    VkPhysicalDeviceVulkan13Features f13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                    .pNext = &f11};
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR fpe = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
    VkPhysicalDeviceMemoryProperties mp;
    VkExtensionProperties exts[512];
    uint32_t n_ext = LG_ARRAY_LEN(exts);
    uint32_t api;
    struct lg_vk_caps c;
    int has_fpe;

    memset(&c, 0, sizeof c);
    vkGetPhysicalDeviceProperties(pd, &p2.properties);
    api = p2.properties.apiVersion;
    if (api >= VK_API_VERSION_1_3) {
        f12.pNext = &f13;
        sg.pNext = &idp; /* a Vulkan 1.3 struct: chained only where the device knows it */
    }
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, exts) < 0)
        n_ext = 0;
    has_fpe = has_ext(exts, n_ext, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    if (has_fpe) { /* chained only where the device has the extension */
        fpe.pNext = f2.pNext;
        f2.pNext = &fpe;
    }
    vkGetPhysicalDeviceProperties2(pd, &p2);
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);

    c.fp16 = f12.shaderFloat16;
    c.int8 = f12.shaderInt8;
    c.storage16 = f11.storageBuffer16BitAccess;
    c.storage8 = f12.storageBuffer8BitAccess;
    c.int_dot = api >= VK_API_VERSION_1_3 && f13.shaderIntegerDotProduct;
    c.int_dot_accel =
        c.int_dot && idp.integerDotProductAccumulatingSaturating4x8BitPackedSignedAccelerated;
    c.coopmat_nv = has_ext(exts, n_ext, "VK_NV_cooperative_matrix");
    c.coopmat_khr = has_ext(exts, n_ext, "VK_KHR_cooperative_matrix");
    c.memory_budget = has_ext(exts, n_ext, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    c.exec_props = has_fpe && fpe.pipelineExecutableInfo;
    c.subgroup_arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                       (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    c.subgroup_shuffle = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                         (sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    c.subgroup_size_control = api >= VK_API_VERSION_1_3 && f13.subgroupSizeControl &&
                              f13.computeFullSubgroups;
    c.subgroup_size = sg.subgroupSize;
    c.min_subgroup_size = c.subgroup_size_control ? sgc.minSubgroupSize : sg.subgroupSize;
    c.max_subgroup_size = c.subgroup_size_control ? sgc.maxSubgroupSize : sg.subgroupSize;
    if (caps)
        *caps = c;

    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    info->index = index;
    snprintf(info->name, sizeof info->name, "%s", p2.properties.deviceName);
    snprintf(info->driver_name, sizeof info->driver_name, "%.100s %.140s", drv.driverName,
             drv.driverInfo);
    switch (p2.properties.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: info->type = LLMGPU_DEVICE_TYPE_INTEGRATED_GPU; break;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: info->type = LLMGPU_DEVICE_TYPE_DISCRETE_GPU; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: info->type = LLMGPU_DEVICE_TYPE_VIRTUAL_GPU; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: info->type = LLMGPU_DEVICE_TYPE_CPU; break;
    default: info->type = LLMGPU_DEVICE_TYPE_OTHER; break;
    }
    info->vendor_id = p2.properties.vendorID;
    info->device_id = p2.properties.deviceID;
    info->api_version = api;
    info->subgroup_size = sg.subgroupSize;
    info->features = (c.fp16 ? LLMGPU_DEVICE_FEATURE_FP16 : 0) |
                     (c.int8 ? LLMGPU_DEVICE_FEATURE_INT8 : 0) |
                     (c.storage16 ? LLMGPU_DEVICE_FEATURE_STORAGE_16BIT : 0) |
                     (c.storage8 ? LLMGPU_DEVICE_FEATURE_STORAGE_8BIT : 0) |
                     (c.int_dot ? LLMGPU_DEVICE_FEATURE_INTEGER_DOT : 0) |
                     (c.int_dot_accel ? LLMGPU_DEVICE_FEATURE_INTEGER_DOT_ACCELERATED : 0) |
                     (c.coopmat_nv ? LLMGPU_DEVICE_FEATURE_COOPMAT_NV : 0) |
                     (c.coopmat_khr ? LLMGPU_DEVICE_FEATURE_COOPMAT_KHR : 0) |
                     (c.memory_budget ? LLMGPU_DEVICE_FEATURE_MEMORY_BUDGET : 0) |
                     (c.subgroup_arith ? LLMGPU_DEVICE_FEATURE_SUBGROUP_ARITH : 0) |
                     (c.subgroup_size_control ? LLMGPU_DEVICE_FEATURE_SUBGROUP_SIZE_CONTROL : 0);
    for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
        if ((mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            mp.memoryHeaps[i].size > info->device_local_bytes)
            info->device_local_bytes = mp.memoryHeaps[i].size;
    info->max_storage_buffer_range = p2.properties.limits.maxStorageBufferRange;
    info->max_allocation_size = m3.maxMemoryAllocationSize;
    info->max_shared_memory = p2.properties.limits.maxComputeSharedMemorySize;
    info->max_workgroup_invocations = p2.properties.limits.maxComputeWorkGroupInvocations;
}

static enum llmgpu_status pick_device(struct llmgpu_context *ctx, int32_t want) {
    uint32_t n = 0;
    VkPhysicalDevice pds[32];
    int best = -1, best_rank = -1;
    VkResult r = vkEnumeratePhysicalDevices(ctx->instance, &n, NULL);
    if (r != VK_SUCCESS || n == 0) {
        lg_err(&ctx->log, "%s (no physical device)", no_driver_hint);
        return LLMGPU_ERR_NO_DEVICE;
    }
    if (n > LG_ARRAY_LEN(pds))
        n = LG_ARRAY_LEN(pds);
    if (vkEnumeratePhysicalDevices(ctx->instance, &n, pds) < 0)
        return LLMGPU_ERR_NO_DEVICE;
    if (want >= 0) {
        if ((uint32_t)want >= n) {
            lg_err(&ctx->log, "device_index %d out of range: %u Vulkan device(s)", want, n);
            return LLMGPU_ERR_INVALID_ARGUMENT;
        }
        best = want;
    } else {
        for (uint32_t i = 0; i < n; i++) {
            struct llmgpu_device_info info;
            int rank;
            lg_vk_fill_info(pds[i], i, &info, NULL);
            if (info.api_version < LG_MIN_API)
                continue;
            rank = lg_vk_type_rank(info.type);
            if (rank > best_rank) {
                best_rank = rank;
                best = (int)i;
            }
        }
        if (best < 0) {
            lg_err(&ctx->log, "no Vulkan 1.2 device found (%u device(s) older than 1.2)", n);
            return LLMGPU_ERR_NO_DEVICE;
        }
    }
    ctx->phys = pds[best];
    lg_vk_fill_info(ctx->phys, (uint32_t)best, &ctx->info, &ctx->caps);
    if (ctx->info.api_version < LG_MIN_API) {
        lg_err(&ctx->log, "%s supports Vulkan %u.%u; libllmgpu needs 1.2", ctx->info.name,
               VK_API_VERSION_MAJOR(ctx->info.api_version),
               VK_API_VERSION_MINOR(ctx->info.api_version));
        return LLMGPU_ERR_UNSUPPORTED;
    }
    return LLMGPU_OK;
}

static enum llmgpu_status create_device(struct llmgpu_context *ctx) {
    VkQueueFamilyProperties qf[16];
    uint32_t nqf = LG_ARRAY_LEN(qf), fam = UINT32_MAX;
    VkExtensionProperties exts[512];
    uint32_t n_ext = LG_ARRAY_LEN(exts);
    const char *enable[8];
    uint32_t n_enable = 0;
    float prio = 1.0f;
    const struct lg_vk_caps *c = &ctx->caps;
    int api13 = ctx->info.api_version >= VK_API_VERSION_1_3;

    vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nqf, qf);
    /* Prefer a compute queue family without graphics (dedicated compute), else any. */
    for (uint32_t i = 0; i < nqf; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && fam == UINT32_MAX)
            fam = i;
    if (fam == UINT32_MAX) {
        lg_err(&ctx->log, "%s has no compute queue", ctx->info.name);
        return LLMGPU_ERR_UNSUPPORTED;
    }
    ctx->queue_family = fam;
    ctx->timestamp_period = qf[fam].timestampValidBits ? ctx->props.limits.timestampPeriod : 0;

    if (vkEnumerateDeviceExtensionProperties(ctx->phys, NULL, &n_ext, exts) < 0)
        n_ext = 0;
    if (c->coopmat_nv)
        enable[n_enable++] = "VK_NV_cooperative_matrix";
    if (c->memory_budget)
        enable[n_enable++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    int stats = lg_vk_capture_stats(ctx);
    if (stats)
        enable[n_enable++] = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;

    VkPhysicalDeviceCooperativeMatrixFeaturesNV fcm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
        .cooperativeMatrix = VK_TRUE};
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR fpe = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
        .pNext = c->coopmat_nv ? &fcm : NULL,
        .pipelineExecutableInfo = VK_TRUE};
    void *chain = stats ? (void *)&fpe : (c->coopmat_nv ? (void *)&fcm : NULL);
    VkPhysicalDeviceVulkan13Features f13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES,
        .pNext = chain,
        .subgroupSizeControl = (VkBool32)c->subgroup_size_control,
        .computeFullSubgroups = (VkBool32)c->subgroup_size_control,
        .shaderIntegerDotProduct = (VkBool32)c->int_dot};
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .pNext = api13 ? (void *)&f13 : chain,
        .shaderFloat16 = (VkBool32)c->fp16,
        .shaderInt8 = (VkBool32)c->int8,
        .storageBuffer8BitAccess = (VkBool32)c->storage8};
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
        .pNext = &f12,
        .storageBuffer16BitAccess = (VkBool32)c->storage16};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                    .pNext = &f11};
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = fam,
                                   .queueCount = 1,
                                   .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = &f2,
                              .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = n_enable,
                              .ppEnabledExtensionNames = enable};
    enum llmgpu_status st =
        lg_vk_check(ctx, vkCreateDevice(ctx->phys, &dci, NULL, &ctx->device), "vkCreateDevice");
    if (st != LLMGPU_OK)
        return st;
    vkGetDeviceQueue(ctx->device, fam, 0, &ctx->queue);
    return LLMGPU_OK;
}

enum llmgpu_status lg_vk_context_init(struct llmgpu_context *ctx,
                                      const struct llmgpu_context_params *p) {
    enum llmgpu_status st;
    int validation = (p->flags & LLMGPU_CONTEXT_FLAG_VALIDATION) != 0;

    st = lg_vk_instance_get(&ctx->log, validation, &ctx->instance);
    if (st != LLMGPU_OK)
        return st;
    if (validation) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                ctx->instance, "vkCreateDebugUtilsMessengerEXT");
        VkDebugUtilsMessengerCreateInfoEXT mci = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = on_validation,
            .pUserData = ctx};
        if (!create || create(ctx->instance, &mci, NULL, &ctx->messenger) != VK_SUCCESS) {
            lg_err(&ctx->log, "cannot create the validation messenger");
            return LLMGPU_ERR_UNSUPPORTED;
        }
    }
    st = pick_device(ctx, p->device_index);
    if (st != LLMGPU_OK)
        return st;
    vkGetPhysicalDeviceProperties(ctx->phys, &ctx->props);
    vkGetPhysicalDeviceMemoryProperties(ctx->phys, &ctx->mem_props);
    st = create_device(ctx);
    if (st != LLMGPU_OK)
        return st;

    ctx->max_binding = ctx->info.max_storage_buffer_range;
    if (p->max_binding_size && p->max_binding_size < ctx->max_binding)
        ctx->max_binding = p->max_binding_size;
    ctx->max_binding &= ~(uint64_t)255; /* keep shard boundaries aligned */
    ctx->max_alloc = ctx->info.max_allocation_size ? ctx->info.max_allocation_size
                                                   : ((uint64_t)1 << 30);
    ctx->device_limit = ctx->info.device_local_bytes;
    if (ctx->caps.memory_budget) {
        /* VK_EXT_memory_budget: what this process may use of the largest device-local
         * heap now (other processes' allocations excluded), read once at creation. */
        VkPhysicalDeviceMemoryBudgetPropertiesEXT mb = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
        VkPhysicalDeviceMemoryProperties2 mp2 = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, .pNext = &mb};
        uint32_t best = UINT32_MAX;
        vkGetPhysicalDeviceMemoryProperties2(ctx->phys, &mp2);
        for (uint32_t i = 0; i < mp2.memoryProperties.memoryHeapCount; i++)
            if ((mp2.memoryProperties.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
                (best == UINT32_MAX || mp2.memoryProperties.memoryHeaps[i].size >
                                           mp2.memoryProperties.memoryHeaps[best].size))
                best = i;
        if (best != UINT32_MAX && mb.heapBudget[best] > 0) {
            uint64_t avail = mb.heapBudget[best] > mb.heapUsage[best]
                                 ? mb.heapBudget[best] - mb.heapUsage[best]
                                 : 0;
            if (avail < ctx->device_limit)
                ctx->device_limit = avail;
            lg_info(&ctx->log, "memory budget: %llu MiB available of the %llu MiB heap",
                    (unsigned long long)(avail >> 20),
                    (unsigned long long)(mp2.memoryProperties.memoryHeaps[best].size >> 20));
        }
    }
    if (p->device_memory_limit && p->device_memory_limit < ctx->device_limit)
        ctx->device_limit = p->device_memory_limit;
    lg_info(&ctx->log, "device %u: %s (%s), subgroup %u, %llu MiB device-local", ctx->info.index,
            ctx->info.name, ctx->info.driver_name, ctx->info.subgroup_size,
            (unsigned long long)(ctx->info.device_local_bytes >> 20));
    return LLMGPU_OK;
}

void lg_vk_context_destroy(struct llmgpu_context *ctx) {
    if (ctx->device) {
        vkDeviceWaitIdle(ctx->device);
        lg_pipeline_cache_save(ctx);
        lg_pipelines_destroy(ctx);
        if (ctx->pipeline_cache)
            vkDestroyPipelineCache(ctx->device, ctx->pipeline_cache, NULL);
        vkDestroyDevice(ctx->device, NULL);
    }
    if (ctx->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                ctx->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy)
            destroy(ctx->instance, ctx->messenger, NULL);
    }
    /* ctx->instance is the process's (lg_vk_instance_get): not destroyed here */
}
