/* gemm_bench.c - one prefill GEMM in isolation: y[T, rows] = x[T, K] W[rows, K]^T with
 * f16 weights, timed on the GPU for each tile configuration of matmul_cm.comp (and the
 * portable matmul.comp), each checked against a double-precision dot product of the
 * f16-rounded inputs at sampled entries. A measurement tool (not a test): it says
 * which configuration lib/session.c should pick, and how far a GEMM is from the
 * hardware.
 *
 *   gemm_bench [-r REPS] [-s] [-c BM,BN,BK,NSG,WR,DB[,XF16[,NOLOAD]] ...]
 *              [ROWSxKxT ...]     (default: the TinyLlama-1.1B and Llama-2-7B prefill
 *                                  shapes at T = 512)
 *   -c  measure these matmul_cm.comp configurations instead of the table below
 *   -s  print the driver's statistics of each pipeline (registers, ...), where the
 *       device has VK_KHR_pipeline_executable_properties
 *
 * Prints one line per shape and configuration: ms a GEMM (REPS dispatches recorded back
 * to back with barriers between, submitted for 0.3 s to bring the SM clock up, then
 * timed over at least 0.2 s of whole submits), TFLOP/s,
 * and the largest error at 256 sampled entries relative to the RMS of y.
 * Build: make build/gemm_bench (links the static library: it uses internal calls). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "internal.h"
#include "model/model.h"
#include "vk/vk.h"

struct cfg {
    const char *name;
    int portable;
    uint32_t bm, bn, bk, nsg, wr, db;
    int xf16, noload; /* matmul_cm.comp's XF16 (x stored as f16) and knob NOLOAD */
};

/* Configurations given with -c (they replace the table below). */
static struct cfg user_cfgs[32];
static char user_names[32][64];
static size_t n_user;
static int print_stats;

static const struct cfg cfgs[] = {
    /* name, portable, bm bn bk nsg wr db xf16 noload (session 9 measured more tiles:
     * bench/RESULTS.md) */
    {"portable matmul.comp", 1, 64, 64, 0, 0, 0, 0, 0, 0},
    {"cm 64x64 bk64 nsg8 wr32 (small tile)", 0, 64, 64, 64, 8, 32, 0, 0, 0},
    {"cm 128x64 bk64 nsg8 wr64", 0, 128, 64, 64, 8, 64, 0, 0, 0},
    {"cm 128x128 bk32 nsg8 wr32", 0, 128, 128, 32, 8, 32, 0, 0, 0},
    {"cm 128x128 bk32 nsg8 wr64", 0, 128, 128, 32, 8, 64, 0, 0, 0},
    {"cm 128x128 bk32 nsg8 wr64 db (large)", 0, 128, 128, 32, 8, 64, 1, 0, 0},
    {"cm 256x128 bk32 nsg8 wr64", 0, 256, 128, 32, 8, 64, 0, 0, 0},
    {"cm 128x128 bk32 nsg8 wr64 db, x f16", 0, 128, 128, 32, 8, 64, 1, 1, 0},
    {"cm 64x64 bk64 nsg8 wr32, x f16", 0, 64, 64, 64, 8, 32, 0, 1, 0},
    {"cm 128x128 bk32 nsg8 wr64 db, no loads", 0, 128, 128, 32, 8, 64, 1, 0, 1},
    {"cm 64x64 bk64 nsg8 wr32, no loads", 0, 64, 64, 64, 8, 32, 0, 0, 1},
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static int run_shape(struct llmgpu_context *ctx, uint32_t rows, uint32_t K, uint32_t T, int reps) {
    size_t nw = (size_t)rows * K, nx = (size_t)T * K, ny = (size_t)T * rows;
    uint16_t *w = malloc(nw * 2);
    float *x = malloc(nx * 4), *y = malloc(ny * 4);
    struct lg_buffer bw, bx, bxh, bb, by;
    uint16_t *xh = malloc(nx * 2);
    int rc = 0;
    if (!w || !x || !y) {
        fprintf(stderr, "gemm_bench: out of host memory\n");
        return 1;
    }
    for (size_t i = 0; i < nw; i++)
        w[i] = lg_f32_to_f16(frand() * 0.05f);
    for (size_t i = 0; i < nx; i++) /* f16 values: the kernel's rounding of x is exact */
        x[i] = lg_f16_to_f32(lg_f32_to_f16(frand()));
    if (lg_buffer_create(ctx, nw * 2, LG_MEM_DEVICE, &bw) ||
        lg_buffer_create(ctx, nx * 4, LG_MEM_DEVICE, &bx) ||
        lg_buffer_create(ctx, nx * 2, LG_MEM_DEVICE, &bxh) ||
        lg_buffer_create(ctx, rows * 4, LG_MEM_DEVICE, &bb) ||
        lg_buffer_create(ctx, ny * 4, LG_MEM_DEVICE, &by) ||
        lg_buffer_upload(ctx, &bw, 0, w, nw * 2) || lg_buffer_upload(ctx, &bx, 0, x, nx * 4) ||
        !xh || (lg_convert_to_f16(LG_DTYPE_F32, x, xh, nx), 0) ||
        lg_buffer_upload(ctx, &bxh, 0, xh, nx * 2)) {
        fprintf(stderr, "gemm_bench: device buffers failed\n");
        return 1;
    }
    size_t n_cfg = n_user ? n_user : sizeof cfgs / sizeof cfgs[0];
    for (size_t c = 0; c < n_cfg; c++) {
        const struct cfg *g = n_user ? &user_cfgs[c] : &cfgs[c];
        char st[24][48];
        struct lg_pipeline_desc d;
        struct lg_pipeline *p;
        struct lg_dpool pool;
        struct lg_cmd cmd;
        VkDescriptorSet set;
        struct lg_mm_push pc = {0, rows, rows, T, 0, 0};
        uint32_t gx, gy;
        uint64_t t0 = 0, t1 = 0;
        int n_sub = 0;
        double err = 0, ss = 0;
        if (!g->portable && !(ctx->caps.coopmat_nv && ctx->caps.subgroup_size == 32))
            continue;
        if (!g->portable) {
            struct lg_cm_cfg cc = {g->bm, g->bn, g->bk, g->nsg, g->wr, g->db};
            if (lg_cm_shared_bytes(&cc) > ctx->props.limits.maxComputeSharedMemorySize ||
                K % g->bk) {
                printf("%5ux%5ux%4u  %-34s  skipped (shared memory or K)\n", rows, K, T, g->name);
                continue;
            }
        }
        memset(&d, 0, sizeof d);
        d.kernel = g->portable ? "matmul.comp" : "matmul_cm.comp";
        d.n_bindings = 4;
        d.push_size = sizeof pc;
        lg_desc_define(&d, st[0], "WG_SIZE", ctx->info.type == LLMGPU_DEVICE_TYPE_CPU ? 64 : 256);
        lg_desc_define(&d, st[1], "USE_SUBGROUP", ctx->caps.subgroup_arith ? 1 : 0);
        lg_desc_define(&d, st[2], "K", K);
        lg_desc_define(&d, st[3], "WTYPE", LG_WTYPE_F16);
        lg_desc_define(&d, st[4], "HAS_BIAS", 0);
        lg_desc_define(&d, st[5], "ACCUMULATE", 0);
        lg_desc_define(&d, st[6], "GATE_UP", 0);
        lg_desc_define(&d, st[7], "ROWS", 2);
        lg_desc_define(&d, st[8], "NORM", 0);
        lg_desc_define(&d, st[9], "ROPE_KV", 0);
        if (!g->portable) {
            d.required_subgroup_size = 32;
            lg_desc_define(&d, st[10], "BM", g->bm);
            lg_desc_define(&d, st[11], "BN", g->bn);
            lg_desc_define(&d, st[12], "BK", g->bk);
            lg_desc_define(&d, st[13], "NSG", g->nsg);
            lg_desc_define(&d, st[14], "WR", g->wr);
            lg_desc_define(&d, st[15], "DB", g->db);
            lg_desc_define(&d, st[16], "XF16", g->xf16);
            lg_desc_define(&d, st[17], "NOLOAD", g->noload);
            gx = (T + g->bn - 1) / g->bn;
            gy = (rows + g->bm - 1) / g->bm;
        } else {
            gx = (rows + 63) / 64;
            gy = (T + 63) / 64;
        }
        if (lg_pipeline_get(ctx, &d, &p) != LLMGPU_OK) {
            printf("%5ux%5ux%4u  %-34s  pipeline failed (the log says why)\n", rows, K, T, g->name);
            rc = 1;
            continue;
        }
        if (print_stats)
            lg_pipeline_print_stats(ctx, p, stdout);
        {
            struct lg_binding b[4] = {{&bw, 0, 0}, {g->xf16 ? &bxh : &bx, 0, 0}, {&bb, 0, 0},
                                      {&by, 0, 0}};
            if (lg_dpool_create(ctx, 1, &pool) || lg_dset_create(ctx, &pool, p, b, 4, &set) ||
                lg_cmd_create(ctx, &cmd) || lg_cmd_begin(ctx, &cmd, 0)) {
                fprintf(stderr, "gemm_bench: descriptor or command buffer failed\n");
                return 1;
            }
        }
        for (int r = 0; r < reps; r++) {
            lg_cmd_dispatch(cmd.cb, p, set, &pc, gx, gy, 1);
            lg_cmd_barrier(cmd.cb);
        }
        lg_cmd_barrier_transfer(cmd.cb);
        if (lg_cmd_end(ctx, &cmd)) {
            fprintf(stderr, "gemm_bench: command buffer failed\n");
            return 1;
        }
        /* The SM clock idles while the host compiles a pipeline and needs some tenths
         * of a second of work to come back up: submit for 0.3 s before timing, then
         * time whole submits for at least 0.2 s. */
        for (int phase = 0; phase < 2; phase++) {
            uint64_t start = lg_now_ns(), want = phase ? 200000000u : 300000000u;
            n_sub = 0;
            do {
                if (lg_cmd_submit_wait(ctx, &cmd)) {
                    fprintf(stderr, "gemm_bench: submit failed\n");
                    return 1;
                }
                n_sub++;
                t1 = lg_now_ns();
            } while (t1 - start < want);
            t0 = start;
        }
        lg_buffer_download(ctx, &by, 0, y, ny * 4);
        for (int s = 0; s < 256; s++) {
            uint32_t r = (uint32_t)((s * 2654435761u) % rows), t = (uint32_t)((s * 40503u + 7) % T);
            double ref = 0;
            for (uint32_t k = 0; k < K; k++)
                ref += (double)lg_f16_to_f32(w[(size_t)r * K + k]) * x[(size_t)t * K + k];
            ss += ref * ref;
            err = fmax(err, fabs(ref - y[(size_t)t * rows + r]));
        }
        {
            double ms = (double)(t1 - t0) / 1e6 / ((double)reps * n_sub);
            printf("%5ux%5ux%4u  %-34s  %8.3f ms  %7.1f TFLOP/s  err/rms %.2e\n", rows, K, T,
                   g->name, ms, 2.0 * rows * K * T / (ms * 1e-3) / 1e12, err / sqrt(ss / 256));
            fflush(stdout);
        }
        lg_cmd_destroy(ctx, &cmd);
        lg_dpool_destroy(ctx, &pool);
    }
    lg_buffer_destroy(ctx, &bw);
    lg_buffer_destroy(ctx, &bx);
    lg_buffer_destroy(ctx, &bxh);
    free(xh);
    lg_buffer_destroy(ctx, &bb);
    lg_buffer_destroy(ctx, &by);
    free(w);
    free(x);
    free(y);
    return rc;
}

int main(int argc, char **argv) {
    static const uint32_t defaults[][3] = {
        {2560, 2048, 512}, {5632, 2048, 512}, {2048, 5632, 512},   /* TinyLlama */
        {12288, 4096, 512}, {4096, 4096, 512}, {4096, 11008, 512}, /* 7B */
    };
    struct llmgpu_context_params cp;
    struct llmgpu_context *ctx;
    int reps = 20, rc = 0, a = 1, shapes = 0;
    for (;;) {
        if (a + 1 < argc && strcmp(argv[a], "-r") == 0) {
            reps = atoi(argv[a + 1]);
            a += 2;
        } else if (a < argc && strcmp(argv[a], "-s") == 0) {
            print_stats = 1;
            a++;
        } else if (a + 1 < argc && strcmp(argv[a], "-c") == 0) {
            /* BM,BN,BK,NSG,WR,DB[,XF16[,NOLOAD]] */
            struct cfg *g = &user_cfgs[n_user];
            unsigned v[8] = {0};
            int n = sscanf(argv[a + 1], "%u,%u,%u,%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3],
                           &v[4], &v[5], &v[6], &v[7]);
            if (n < 6 || n_user == sizeof user_cfgs / sizeof user_cfgs[0]) {
                fprintf(stderr, "gemm_bench: -c wants BM,BN,BK,NSG,WR,DB[,XF16[,NOLOAD]]\n");
                return 2;
            }
            snprintf(user_names[n_user], sizeof user_names[0], "cm %s", argv[a + 1]);
            *g = (struct cfg){user_names[n_user], 0, v[0], v[1], v[2], v[3], v[4], v[5],
                              (int)v[6], (int)v[7]};
            n_user++;
            a += 2;
        } else
            break;
    }
    if (reps < 1)
        reps = 1;
    llmgpu_context_params_init(&cp);
    if (print_stats) /* a profiling context captures the driver's pipeline statistics */
        cp.flags |= LLMGPU_CONTEXT_FLAG_PROFILE;
    if (llmgpu_context_create(&cp, &ctx) != LLMGPU_OK) {
        fprintf(stderr, "gemm_bench: no context (the log says why)\n");
        return 1;
    }
    printf("device %s, NV cooperative matrix %s, %d dispatches a measurement, "
           "%u bytes of shared memory a workgroup, pipeline statistics %s\n",
           ctx->info.name, ctx->caps.coopmat_nv ? "yes" : "no", reps,
           ctx->props.limits.maxComputeSharedMemorySize, lg_vk_capture_stats(ctx) ? "yes" : "no");
    for (; a < argc; a++, shapes++) {
        unsigned r, k, t;
        if (sscanf(argv[a], "%ux%ux%u", &r, &k, &t) != 3 || !r || !k || !t) {
            fprintf(stderr, "gemm_bench: shape '%s' is not ROWSxKxT\n", argv[a]);
            return 2;
        }
        rc |= run_shape(ctx, r, k, t, reps);
    }
    for (size_t i = 0; !shapes && i < sizeof defaults / sizeof defaults[0]; i++)
        rc |= run_shape(ctx, defaults[i][0], defaults[i][1], defaults[i][2], reps);
    llmgpu_context_free(ctx);
    return rc;
}
