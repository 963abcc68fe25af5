/* tu_mm.c - see tu_mm.h. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "ref/ref.h"
#include "tu_mm.h"

struct tu_mm_opts tu_mm_opts(enum lg_wtype wtype, uint32_t K, unsigned flags) {
    struct tu_mm_opts o;
    memset(&o, 0, sizeof o);
    o.wtype = wtype;
    o.K = K;
    o.flags = flags;
    o.eps = 1e-5f;
    o.sg_rows = TU_MM_UNSET;
    o.idot = TU_MM_UNSET;
    return o;
}

void tu_mm_cm(struct tu_mm_opts *o, const struct lg_cm_cfg *c) {
    o->kernel = "matmul_cm.comp";
    o->required_subgroup_size = 32;
    o->cm = *c;
}

const struct lg_cm_cfg tu_cm_cfgs[] = {
    /* bm bn bk nsg wr db */
    {64, 64, 64, 8, 32, 0},   /* lib/session.c's choice */
    {64, 64, 32, 8, 32, 0},   /* its fallback (K % 64 != 0, or too little shared memory) */
    {128, 128, 32, 8, 64, 1}, /* its large tile (K >= 4096, long prompts) */
    {128, 128, 32, 8, 32, 1}, /* four subgroups along the rows, two buffers */
    {64, 128, 32, 4, 64, 0},  /* four subgroups of 64 rows x 32 tokens */
};
const size_t tu_n_cm_cfgs = sizeof tu_cm_cfgs / sizeof tu_cm_cfgs[0];

int tu_has_coopmat(const struct llmgpu_context *ctx) {
    return ctx->caps.coopmat_nv && ctx->caps.fp16 && ctx->caps.storage16 &&
           ctx->caps.subgroup_size == 32;
}

static uint32_t wg_size(const struct llmgpu_context *ctx) {
    return ctx->info.type == LLMGPU_DEVICE_TYPE_CPU ? 64 : 256;
}

uint32_t tu_mm_sg_rpw(const struct llmgpu_context *ctx) {
    return 2 * (wg_size(ctx) / ctx->caps.subgroup_size);
}

/* The pipeline desc for o; its defines point into st. */
static void mm_desc(const struct llmgpu_context *ctx, const struct tu_mm_opts *o,
                    struct lg_pipeline_desc *dp, char st[20][48]) {
    struct lg_pipeline_desc d;
    unsigned f = o->flags;
    memset(&d, 0, sizeof d);
    d.kernel = o->kernel ? o->kernel : (f & TU_MM_GEMM) ? "matmul.comp" : "matvec.comp";
    d.n_bindings = (f & TU_MM_NORM) ? 6 : (f & TU_MM_GATE_UP) ? 5 : 4;
    d.push_size = sizeof(struct lg_mm_push);
    d.required_subgroup_size = o->required_subgroup_size;
    lg_desc_define(&d, st[0], "WG_SIZE", wg_size(ctx));
    lg_desc_define(&d, st[1], "USE_SUBGROUP", ctx->caps.subgroup_arith ? 1 : 0);
    lg_desc_define(&d, st[2], "K", o->K);
    lg_desc_define(&d, st[3], "WTYPE", o->wtype);
    lg_desc_define(&d, st[4], "HAS_BIAS", (f & TU_MM_BIAS) != 0);
    lg_desc_define(&d, st[5], "ACCUMULATE", (f & TU_MM_ACC) != 0);
    lg_desc_define(&d, st[6], "GATE_UP", (f & TU_MM_GATE_UP) != 0);
    lg_desc_define(&d, st[7], "ROWS", 2);
    lg_desc_define(&d, st[8], "NORM", (f & TU_MM_NORM) != 0);
    snprintf(st[9], sizeof st[9], "EPS=%.9e", (double)o->eps);
    d.defines[d.n_defines++] = st[9];
    if (o->group)
        lg_desc_define(&d, st[10], "GROUP", o->group);
    if (o->sg_rows != TU_MM_UNSET) {
        lg_desc_define(&d, st[11], "SG_ROWS", o->sg_rows != 0);
        lg_desc_define(&d, st[12], "RPW", o->sg_rows ? tu_mm_sg_rpw(ctx) : 2);
    }
    if (o->idot != TU_MM_UNSET)
        lg_desc_define(&d, st[13], "IDOT", o->idot != 0);
    if (o->cm.bm) {
        lg_desc_define(&d, st[14], "BM", o->cm.bm);
        lg_desc_define(&d, st[15], "BN", o->cm.bn);
        lg_desc_define(&d, st[16], "BK", o->cm.bk);
        lg_desc_define(&d, st[17], "NSG", o->cm.nsg);
        lg_desc_define(&d, st[18], "WR", o->cm.wr);
        lg_desc_define(&d, st[19], "DB", o->cm.db);
    }
    *dp = d;
}

void tu_dispatch(struct llmgpu_context *ctx, const struct tu_log *log,
                 const struct lg_pipeline_desc *d, const struct lg_binding *b, const void *push,
                 uint32_t gx, uint32_t gy) {
    struct lg_pipeline *p = NULL;
    struct lg_dpool pool;
    struct lg_cmd cmd;
    VkDescriptorSet set;
    ck_assert_msg(lg_pipeline_get(ctx, d, &p) == LLMGPU_OK, "%s: %s", d->kernel,
                  log ? log->text : "");
    ck_assert_int_eq(lg_dpool_create(ctx, 1, &pool), LLMGPU_OK);
    ck_assert_int_eq(lg_dset_create(ctx, &pool, p, b, d->n_bindings, &set), LLMGPU_OK);
    ck_assert_int_eq(lg_cmd_create(ctx, &cmd), LLMGPU_OK);
    ck_assert_int_eq(lg_cmd_begin(ctx, &cmd, 1), LLMGPU_OK);
    lg_cmd_barrier_transfer(cmd.cb);
    lg_cmd_dispatch(cmd.cb, p, set, push, gx, gy, 1);
    lg_cmd_barrier_transfer(cmd.cb);
    ck_assert_int_eq(lg_cmd_end(ctx, &cmd), LLMGPU_OK);
    ck_assert_int_eq(lg_cmd_submit_wait(ctx, &cmd), LLMGPU_OK);
    lg_cmd_destroy(ctx, &cmd);
    lg_dpool_destroy(ctx, &pool);
}

/* A device buffer of at least 4 bytes holding the first bytes of data. */
static struct lg_buffer upload(struct llmgpu_context *ctx, const void *data, size_t bytes) {
    struct lg_buffer b;
    ck_assert_int_eq(lg_buffer_create(ctx, LG_MAX(bytes, 4), LG_MEM_DEVICE, &b), LLMGPU_OK);
    if (data && bytes)
        ck_assert_int_eq(lg_buffer_upload(ctx, &b, 0, data, bytes), LLMGPU_OK);
    return b;
}

void tu_mm_run(struct llmgpu_context *ctx, const struct tu_log *log, const struct tu_mm_opts *o,
               const struct tu_mm_io *io, const struct lg_mm_push *pc) {
    char st[20][48];
    struct lg_pipeline_desc d;
    struct lg_buffer bw, bu, bx, bb, by, bn;
    uint32_t gx, gy;
    mm_desc(ctx, o, &d, st);
    if (o->cm.bm) { /* matmul_cm.comp: token tiles along x */
        gx = (pc->n_tok + o->cm.bn - 1) / o->cm.bn;
        gy = (pc->n_rows + o->cm.bm - 1) / o->cm.bm;
    } else if (o->flags & TU_MM_GEMM) {
        gx = (pc->n_rows + 63) / 64;
        gy = (pc->n_tok + 63) / 64;
    } else {
        uint32_t rpw = o->sg_rows > 0 ? tu_mm_sg_rpw(ctx) : 2;
        gx = (pc->n_rows + rpw - 1) / rpw;
        gy = pc->n_tok;
    }
    bw = upload(ctx, io->w, io->w_bytes);
    bu = upload(ctx, io->u, io->u_bytes);
    bx = upload(ctx, io->x, io->n_x * 4);
    bb = upload(ctx, io->bias, io->n_bias * 4);
    by = upload(ctx, io->y, io->n_y * 4);
    bn = upload(ctx, io->norm, io->n_norm * 4);
    {
        struct lg_binding b[6] = {{&bw, 0, 0}, {&bx, 0, 0}, {&bb, 0, 0},
                                  {&by, 0, 0}, {&bu, 0, 0}, {&bn, 0, 0}};
        tu_dispatch(ctx, log, &d, b, pc, gx, gy);
    }
    ck_assert_int_eq(lg_buffer_download(ctx, &by, 0, io->y_out, io->n_y * 4), LLMGPU_OK);
    lg_buffer_destroy(ctx, &bw);
    lg_buffer_destroy(ctx, &bu);
    lg_buffer_destroy(ctx, &bx);
    lg_buffer_destroy(ctx, &bb);
    lg_buffer_destroy(ctx, &by);
    lg_buffer_destroy(ctx, &bn);
}

void tu_mm_expect(const struct tu_mm_opts *o, const struct lg_mm_push *pc, const float *x,
                  const float *w, const float *u, const float *bias, const float *norm,
                  int round_x, float *y) {
    uint32_t K = o->K, rows = pc->n_rows;
    float *xn = malloc(K * sizeof *xn), *a = malloc(rows * sizeof *a),
          *b = malloc(rows * sizeof *b);
    ck_assert(xn && a && b);
    for (uint32_t t = 0; t < pc->n_tok; t++) {
        memcpy(xn, x + (size_t)(pc->x_row + t) * K, K * sizeof *xn);
        if (o->flags & TU_MM_NORM)
            ref_rmsnorm(xn, xn, norm, (int)K, o->eps);
        if (round_x == TU_X_INT8)
            ref_round_x_int8(xn, K);
        else if (round_x == TU_X_F16)
            for (uint32_t k = 0; k < K; k++)
                xn[k] = lg_f16_to_f32(lg_f32_to_f16(xn[k]));
        ref_matvec(a, xn, w, (o->flags & TU_MM_BIAS) ? bias : NULL, (int)K, (int)rows);
        if (o->flags & TU_MM_GATE_UP) {
            ref_matvec(b, xn, u, NULL, (int)K, (int)rows);
            ref_silu_mul(a, a, b, (int)rows);
        }
        for (uint32_t r = 0; r < rows; r++) {
            float *dst = &y[(size_t)t * pc->ld_y + pc->y_col + r];
            *dst = (o->flags & TU_MM_ACC) ? *dst + a[r] : a[r];
        }
    }
    free(xn);
    free(a);
    free(b);
}
