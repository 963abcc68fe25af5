/*
 * arch.c - the architecture table: which Hugging Face classes are supported,
 * their defaults, and the name and shape of every tensor role.
 *
 * Adding an architecture that uses Llama's tensor layout is one entry in
 * arch_table; a different naming scheme is one more names array.
 * Must not touch: files or the GPU.
 */
#include <stdio.h>
#include <string.h>

#include "model/model.h"

/* transformers' LlamaForCausalLM state-dict names; Mistral and Qwen2 use the same.
 * Per-layer names are layer_prefix + layer number + "." + the entry. */
static const char *const llama_names[LG_T_COUNT] = {
    [LG_T_TOK_EMBD] = "model.embed_tokens.weight",
    [LG_T_OUT_NORM] = "model.norm.weight",
    [LG_T_LM_HEAD] = "lm_head.weight",
    [LG_T_ATTN_NORM] = "input_layernorm.weight",
    [LG_T_WQ] = "self_attn.q_proj.weight",
    [LG_T_WK] = "self_attn.k_proj.weight",
    [LG_T_WV] = "self_attn.v_proj.weight",
    [LG_T_BQ] = "self_attn.q_proj.bias",
    [LG_T_BK] = "self_attn.k_proj.bias",
    [LG_T_BV] = "self_attn.v_proj.bias",
    [LG_T_WO] = "self_attn.o_proj.weight",
    [LG_T_FFN_NORM] = "post_attention_layernorm.weight",
    [LG_T_GATE] = "mlp.gate_proj.weight",
    [LG_T_UP] = "mlp.up_proj.weight",
    [LG_T_DOWN] = "mlp.down_proj.weight",
};

/* Defaults are transformers' (LlamaConfig, MistralConfig, Qwen2Config). */
static const struct lg_arch_desc arch_table[] = {
    {LG_ARCH_LLAMA, "LlamaForCausalLM", "llama", 0, 2048, 1, 2, "model.layers.", llama_names},
    {LG_ARCH_MISTRAL, "MistralForCausalLM", "mistral", 0, 131072, 1, 2, "model.layers.", llama_names},
    {LG_ARCH_QWEN2, "Qwen2ForCausalLM", "qwen2", 1, 32768, -1, -1, "model.layers.", llama_names},
};

static const char *const role_names[LG_T_COUNT] = {
    "tok_embd", "out_norm", "lm_head", "attn_norm", "wq",  "wk", "wv",  "bq",
    "bk",       "bv",       "wo",      "ffn_norm",  "gate", "up", "down",
};

const struct lg_arch_desc *lg_arch_get(enum lg_arch arch) {
    size_t i;
    for (i = 0; i < LG_ARRAY_LEN(arch_table); i++)
        if (arch_table[i].arch == arch)
            return &arch_table[i];
    return NULL;
}

const struct lg_arch_desc *lg_arch_find(const char *name) {
    size_t i;
    for (i = 0; i < LG_ARRAY_LEN(arch_table); i++)
        if (strcmp(arch_table[i].hf_class, name) == 0 ||
            strcmp(arch_table[i].model_type, name) == 0)
            return &arch_table[i];
    return NULL;
}

int lg_arch_is_per_layer(enum lg_tensor_role r) {
    return r >= LG_T_ATTN_NORM && r < LG_T_COUNT;
}

const char *lg_arch_role_name(enum lg_tensor_role r) {
    return (unsigned)r < LG_T_COUNT ? role_names[r] : "?";
}

int lg_arch_has_role(const struct lg_model_config *cfg, enum lg_tensor_role r) {
    switch (r) {
    case LG_T_LM_HEAD:
        return !cfg->tie_word_embeddings;
    case LG_T_BQ:
    case LG_T_BK:
    case LG_T_BV:
        return cfg->qkv_bias;
    default:
        return (unsigned)r < LG_T_COUNT;
    }
}

int lg_arch_tensor_name(const struct lg_model_config *cfg, enum lg_tensor_role r, uint32_t layer,
                        char *buf, size_t size) {
    const struct lg_arch_desc *d = lg_arch_get(cfg->arch);
    int n;
    if (!d || !lg_arch_has_role(cfg, r) || !buf || size == 0)
        return 0;
    if (lg_arch_is_per_layer(r))
        n = snprintf(buf, size, "%s%u.%s", d->layer_prefix, (unsigned)layer, d->names[r]);
    else
        n = snprintf(buf, size, "%s", d->names[r]);
    return n >= 0 && (size_t)n < size;
}

void lg_arch_tensor_shape(const struct lg_model_config *cfg, enum lg_tensor_role r,
                          uint32_t *n_dims, uint64_t shape[2]) {
    uint64_t q = (uint64_t)cfg->n_head * cfg->head_dim;
    uint64_t kv = (uint64_t)cfg->n_kv_head * cfg->head_dim;
    uint64_t rows = 0, cols = 0;
    *n_dims = 2;
    switch (r) {
    case LG_T_TOK_EMBD:
    case LG_T_LM_HEAD: rows = cfg->n_vocab; cols = cfg->n_embd; break;
    case LG_T_OUT_NORM:
    case LG_T_ATTN_NORM:
    case LG_T_FFN_NORM: rows = cfg->n_embd; *n_dims = 1; break;
    case LG_T_WQ: rows = q; cols = cfg->n_embd; break;
    case LG_T_WK:
    case LG_T_WV: rows = kv; cols = cfg->n_embd; break;
    case LG_T_BQ: rows = q; *n_dims = 1; break;
    case LG_T_BK:
    case LG_T_BV: rows = kv; *n_dims = 1; break;
    case LG_T_WO: rows = cfg->n_embd; cols = q; break;
    case LG_T_GATE:
    case LG_T_UP: rows = cfg->n_ff; cols = cfg->n_embd; break;
    case LG_T_DOWN: rows = cfg->n_embd; cols = cfg->n_ff; break;
    default: *n_dims = 0; break;
    }
    shape[0] = rows;
    shape[1] = *n_dims == 2 ? cols : 0;
}
