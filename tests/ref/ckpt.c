/*
 * ckpt.c - the one bridge from the checkpoint loader (lib/model) to the
 * reference: copies every tensor of an opened checkpoint into a ref_model as
 * f32.
 *
 * Owns: the mapping from tensor roles to ref_weights arrays.
 * Must not touch: parsing or validating files (the loader's job), the maths.
 */
#include "ref.h"

#include <stdio.h>
#include <string.h>

#include "model/model.h"

/* Copy the tensor of role r (layer l) into dst, n elements; -1 if absent or
 * of another size. */
static int copy_role(const struct lg_checkpoint *ck, enum lg_tensor_role r, uint32_t l, float *dst,
                     size_t n) {
    const struct lg_tensor_src *t = lg_ckpt_tensor(ck, r, l);
    char name[256];
    uint32_t nd;
    uint64_t shape[2];
    /* a GPTQ/AWQ projection: dequantized from its qweight/qzeros/scales */
    if (!t && ck->quant.method != LG_QUANT_NONE &&
        lg_arch_tensor_name(&ck->cfg, r, l, name, sizeof name) && strlen(name) > 7 &&
        !strcmp(name + strlen(name) - 7, ".weight")) {
        lg_arch_tensor_shape(&ck->cfg, r, &nd, shape);
        name[strlen(name) - 7] = '\0';
        if (nd == 2 && shape[0] * shape[1] == n &&
            ref_dequant_qlinear(ck, name, (uint32_t)shape[0], (uint32_t)shape[1], dst) == 0)
            return 0;
    }
    if (!t || t->n_elements != (uint64_t)n || !lg_dtype_is_weight(t->dtype)) {
        fprintf(stderr, "ref_model_from_ckpt: %s of layer %u: %s\n", lg_arch_role_name(r),
                (unsigned)l, t ? "wrong size or dtype" : "missing");
        return -1;
    }
    lg_convert_to_f32(t->dtype, t->data, dst, n);
    return 0;
}

int ref_model_from_ckpt(const struct lg_checkpoint *ckpt, struct ref_model *m) {
    const struct lg_model_config *c = &ckpt->cfg;
    if (ref_model_alloc(c, m) != 0)
        return -1;
    struct ref_weights *w = &m->w;
    const size_t E = c->n_embd, F = c->n_ff, V = c->n_vocab;
    const size_t Q = (size_t)c->n_head * c->head_dim, K = (size_t)c->n_kv_head * c->head_dim;
    int bad = 0;

    bad |= copy_role(ckpt, LG_T_TOK_EMBD, 0, w->token_embedding, V * E);
    bad |= copy_role(ckpt, LG_T_OUT_NORM, 0, w->rms_final_weight, E);
    if (!c->tie_word_embeddings)
        bad |= copy_role(ckpt, LG_T_LM_HEAD, 0, w->wcls, V * E);
    for (uint32_t l = 0; l < c->n_layer && !bad; l++) {
        bad |= copy_role(ckpt, LG_T_ATTN_NORM, l, w->rms_att_weight + l * E, E);
        bad |= copy_role(ckpt, LG_T_WQ, l, w->wq + l * Q * E, Q * E);
        bad |= copy_role(ckpt, LG_T_WK, l, w->wk + l * K * E, K * E);
        bad |= copy_role(ckpt, LG_T_WV, l, w->wv + l * K * E, K * E);
        if (c->qkv_bias) {
            bad |= copy_role(ckpt, LG_T_BQ, l, w->bq + l * Q, Q);
            bad |= copy_role(ckpt, LG_T_BK, l, w->bk + l * K, K);
            bad |= copy_role(ckpt, LG_T_BV, l, w->bv + l * K, K);
        }
        bad |= copy_role(ckpt, LG_T_WO, l, w->wo + l * E * Q, E * Q);
        bad |= copy_role(ckpt, LG_T_FFN_NORM, l, w->rms_ffn_weight + l * E, E);
        bad |= copy_role(ckpt, LG_T_GATE, l, w->w1 + l * F * E, F * E);
        bad |= copy_role(ckpt, LG_T_UP, l, w->w3 + l * F * E, F * E);
        bad |= copy_role(ckpt, LG_T_DOWN, l, w->w2 + l * E * F, E * F);
    }
    if (bad) {
        ref_model_free(m);
        return -1;
    }
    return 0;
}
