/* tu_mm.h - the GPU side of the mat-vec / GEMM kernel tests (check_kernels,
 * check_quant, check_gptq): the matvec.comp / matmul.comp (matmul_cm.comp)
 * pipeline from a few options and one dispatch on host arrays; tu_dispatch,
 * one dispatch of any kernel, serves the other kernel tests too. The expected
 * y (the C reference) stays in each test; only the plumbing is shared here.
 * Failures are Check assertions (call from a test). */
#ifndef LG_TU_MM_H
#define LG_TU_MM_H

#include <stddef.h>
#include <stdint.h>

#include "forward.h"
#include "testutil.h"

/* Kernel switches (tu_mm_opts.flags). */
enum { TU_MM_BIAS = 1, TU_MM_ACC = 2, TU_MM_GATE_UP = 4, TU_MM_NORM = 8, TU_MM_GEMM = 16 };

/* An optional define left out of the pipeline (the kernel's default applies). */
#define TU_MM_UNSET (-1)

struct tu_mm_opts {
    const char *kernel; /* NULL: matmul.comp with TU_MM_GEMM, else matvec.comp */
    enum lg_wtype wtype;
    uint32_t K;
    unsigned flags;                  /* TU_MM_* */
    float eps;                       /* EPS (RMSNorm with TU_MM_NORM) */
    uint32_t group;                  /* GROUP (q4_g); 0: not defined */
    int sg_rows;                     /* SG_ROWS, with RPW (tu_mm_sg_rpw() when 1, else 2);
                                        TU_MM_UNSET: neither defined */
    int idot;                        /* IDOT; TU_MM_UNSET: not defined */
    uint32_t required_subgroup_size; /* 0: the driver's choice */
    struct lg_cm_cfg cm;             /* matmul_cm.comp's tile (set by tu_mm_cm); bm 0: none */
};

/* Options with eps 1e-5, no GROUP, SG_ROWS/RPW or IDOT define, no kernel override. */
struct tu_mm_opts tu_mm_opts(enum lg_wtype wtype, uint32_t K, unsigned flags);

/* o runs matmul_cm.comp (tensor cores, 32-wide subgroups) with configuration c. */
void tu_mm_cm(struct tu_mm_opts *o, const struct lg_cm_cfg *c);

/* The matmul_cm.comp configurations the tests run: the two lib/session.c can pick and
 * two that cover the other layouts (two buffers, 4 subgroups, 64-row subgroups). */
extern const struct lg_cm_cfg tu_cm_cfgs[];
extern const size_t tu_n_cm_cfgs;

/* Does ctx run matmul_cm.comp (VK_NV_cooperative_matrix, f16, 32-wide subgroups)? */
int tu_has_coopmat(const struct llmgpu_context *ctx);

/* Rows a workgroup computes in SG_ROWS mode (2 a subgroup). */
uint32_t tu_mm_sg_rpw(const struct llmgpu_context *ctx);

/* One dispatch of the pipeline for d (any kernel) on its d->n_bindings storage
 * buffers b, push constants push, grid (gx, gy, 1), between transfer barriers;
 * waits and frees the descriptor pool and command buffer. log (may be NULL)
 * goes into the message when the pipeline fails to build. */
void tu_dispatch(struct llmgpu_context *ctx, const struct tu_log *log,
                 const struct lg_pipeline_desc *d, const struct lg_binding *b, const void *push,
                 uint32_t gx, uint32_t gy);

/* Host data of one dispatch: bytes as the kernel reads them (w and u packed in
 * o->wtype), n_* in floats. Every buffer is uploaded; only the bindings the
 * flags use are bound (W x bias y, then U with GATE_UP or NORM, norm weights
 * with NORM). */
struct tu_mm_io {
    const void *w;
    size_t w_bytes;
    const void *u;
    size_t u_bytes;
    const float *x;
    size_t n_x;
    const float *bias;
    size_t n_bias;
    const float *norm;
    size_t n_norm;
    const float *y; /* y before the dispatch (ACCUMULATE adds to it) */
    size_t n_y;
    float *y_out; /* n_y floats: y after the dispatch */
};

/* One dispatch of the pipeline for o (defines, in this order: WG_SIZE
 * USE_SUBGROUP K WTYPE HAS_BIAS ACCUMULATE GATE_UP ROWS=2 NORM EPS [GROUP]
 * [SG_ROWS RPW] [IDOT] [BM BN BK NSG WR DB]) with push constants pc on a grid of
 * (CEIL(n_tok, BN), CEIL(n_rows, BM)) with tu_mm_cm's tile, (CEIL(n_rows, 64),
 * CEIL(n_tok, 64)) with TU_MM_GEMM, else (CEIL(n_rows, RPW), n_tok); waits,
 * downloads y into io->y_out and frees every GPU object. */
void tu_mm_run(struct llmgpu_context *ctx, const struct tu_log *log, const struct tu_mm_opts *o,
               const struct tu_mm_io *io, const struct lg_mm_push *pc);

/* How tu_mm_expect rounds x before the products: not at all, to int8 per 16 values
 * as IDOT does, or to f16 as matmul_cm.comp does. */
enum { TU_X_EXACT = 0, TU_X_INT8 = 1, TU_X_F16 = 2 };

/* What the kernel must leave in y (ld_y a token row), computed by the C reference
 * (tests/ref) on float weights w (and u): for each token t, x row x_row + t (RMSNorm'd
 * with norm and o->eps under TU_MM_NORM; then rounded as round_x says), W x (+ bias),
 * silu(W x) * (U x) with TU_MM_GATE_UP, stored at y_col or added with TU_MM_ACC. */
void tu_mm_expect(const struct tu_mm_opts *o, const struct lg_mm_push *pc, const float *x,
                  const float *w, const float *u, const float *bias, const float *norm,
                  int round_x, float *y);

#endif
