/*
 * config.c - Hugging Face config.json and generation_config.json into
 * struct lg_model_config.
 *
 * Owns: field lookup, type and range checks, transformers' defaults per
 * architecture, rope parameters (top level or transformers 5's
 * "rope_parameters"), "quantization_config" (GPTQ/AWQ). Every error names the
 * file and the field.
 * Must not touch: safetensors, the GPU.
 * Note: cJSON allocates with malloc (its hooks are process-global, which
 * STYLE rule 14 rules out), so these allocations bypass lg_alloc.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "model/model.h"

struct cfgctx {
    const struct lg_alloc *a;
    const struct lg_log *log;
    const char *what;
};

static void json_error_position(const char *json, size_t len, const char *end, size_t *off,
                                size_t *line, size_t *col) {
    size_t i;
    *off = end && end >= json && (size_t)(end - json) <= len ? (size_t)(end - json) : 0;
    *line = 1;
    *col = 1;
    for (i = 0; i < *off; i++) {
        if (json[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Parse a JSON document that must be an object into *out; logs on failure
 * (BAD_MODEL_FILE, or OUT_OF_HOST_MEMORY). */
static enum llmgpu_status parse_object(const struct cfgctx *c, const char *json, size_t len,
                                       cJSON **out) {
    const char *end = NULL;
    size_t off, line, col, i;
    cJSON *root;
    char *copy;
    *out = NULL;
    if (!json || len == 0) {
        lg_err(c->log, "%s: empty file (expected a JSON object)", c->what);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    /* parse a NUL-terminated copy: callers' buffers need not be terminated, and
     * cJSON before 1.7.18 (CVE-2023-53154) could read past an unterminated string */
    copy = lg_strndup(c->a, json, len);
    if (!copy) {
        lg_err(c->log, "%s: out of host memory", c->what);
        return LLMGPU_ERR_OUT_OF_HOST_MEMORY;
    }
    root = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
    end = end ? json + (end - copy) : NULL;
    lg_free(c->a, copy);
    if (!root) {
        json_error_position(json, len, end, &off, &line, &col);
        lg_err(c->log, "%s: not valid JSON: syntax error at byte %zu (line %zu, column %zu)",
               c->what, off, line, col);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    /* only whitespace (or NULs of a padded buffer) may follow the value */
    for (i = end ? (size_t)(end - json) : len; i < len; i++) {
        if (json[i] != ' ' && json[i] != '\n' && json[i] != '\r' && json[i] != '\t' &&
            json[i] != '\0') {
            json_error_position(json, len, json + i, &off, &line, &col);
            lg_err(c->log, "%s: not valid JSON: trailing data at byte %zu (line %zu, column %zu)",
                   c->what, off, line, col);
            cJSON_Delete(root);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
    }
    if (!cJSON_IsObject(root)) {
        lg_err(c->log, "%s: expected a JSON object at the top level", c->what);
        cJSON_Delete(root);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    *out = root;
    return LLMGPU_OK;
}

enum llmgpu_status lg_json_parse_object(const struct lg_alloc *a, const struct lg_log *log,
                                        const char *what, const char *json, size_t len,
                                        struct cJSON **out) {
    struct cfgctx c = {a, log, what};
    return parse_object(&c, json, len, out);
}

const char *lg_json_type_name(const struct cJSON *v) {
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "an invalid value";
}

/* A field, or NULL when absent or JSON null. */
static const cJSON *field(const cJSON *obj, const char *name) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* An integer in [min, max]; v must be non-NULL. `name` is the field's path for messages. */
static enum llmgpu_status to_int(const struct cfgctx *c, const cJSON *v, const char *name,
                                 int64_t min, int64_t max, int64_t *out) {
    double d;
    if (!cJSON_IsNumber(v)) {
        lg_err(c->log, "%s: field \"%s\": expected an integer, got %s", c->what, name,
               lg_json_type_name(v));
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    d = v->valuedouble;
    if (!isfinite(d) || floor(d) != d) {
        lg_err(c->log, "%s: field \"%s\": expected an integer, got %g", c->what, name, d);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (d < (double)min || d > (double)max) {
        lg_err(c->log, "%s: field \"%s\": %.17g is out of range [%lld, %lld]", c->what, name, d,
               (long long)min, (long long)max);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    *out = (int64_t)d;
    return LLMGPU_OK;
}

/* An unsigned field: required (missing is an error) or defaulted to def. */
static enum llmgpu_status get_u32(const struct cfgctx *c, const cJSON *obj, const char *name,
                                  int required, uint32_t def, uint32_t min, uint32_t max,
                                  uint32_t *out) {
    const cJSON *v = field(obj, name);
    int64_t x;
    enum llmgpu_status st;
    if (!v) {
        if (required) {
            lg_err(c->log, "%s: required field \"%s\" is missing%s", c->what, name,
                   obj && cJSON_GetObjectItemCaseSensitive(obj, name) ? " (null)" : "");
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        *out = def;
        return LLMGPU_OK;
    }
    if ((st = to_int(c, v, name, min, max, &x)) != LLMGPU_OK)
        return st;
    *out = (uint32_t)x;
    return LLMGPU_OK;
}

/* A finite number in (min, max) exclusive of min, inclusive of max. */
static enum llmgpu_status get_float(const struct cfgctx *c, const cJSON *obj, const char *name,
                                    int required, double def, double min_excl, double max,
                                    float *out) {
    const cJSON *v = field(obj, name);
    double d;
    if (!v) {
        if (required) {
            lg_err(c->log, "%s: required field \"%s\" is missing", c->what, name);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        *out = (float)def;
        return LLMGPU_OK;
    }
    if (!cJSON_IsNumber(v)) {
        lg_err(c->log, "%s: field \"%s\": expected a number, got %s", c->what, name,
               lg_json_type_name(v));
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    d = v->valuedouble;
    /* checked after rounding to float too: 1e-50 is positive but its float is 0 */
    if (!isfinite(d) || d <= min_excl || d > max || !((double)(float)d > min_excl)) {
        lg_err(c->log, "%s: field \"%s\": %g is out of range (%g, %g]", c->what, name, d, min_excl,
               max);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    *out = (float)d;
    return LLMGPU_OK;
}

static enum llmgpu_status get_bool(const struct cfgctx *c, const cJSON *obj, const char *name,
                                   int def, int *out) {
    const cJSON *v = field(obj, name);
    if (!v) {
        *out = def;
        return LLMGPU_OK;
    }
    if (!cJSON_IsBool(v)) {
        lg_err(c->log, "%s: field \"%s\": expected true or false, got %s", c->what, name,
               lg_json_type_name(v));
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    *out = cJSON_IsTrue(v);
    return LLMGPU_OK;
}

static enum llmgpu_status get_string(const struct cfgctx *c, const cJSON *obj, const char *name,
                                     const char **out) {
    const cJSON *v = field(obj, name);
    *out = NULL;
    if (!v)
        return LLMGPU_OK;
    if (!cJSON_IsString(v) || !v->valuestring) {
        lg_err(c->log, "%s: field \"%s\": expected a string, got %s", c->what, name,
               lg_json_type_name(v));
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    *out = v->valuestring;
    return LLMGPU_OK;
}

/* Append id to cfg's EOS list unless present; warns once the list is full. */
static void add_eos(const struct cfgctx *c, struct lg_model_config *cfg, int32_t id) {
    uint32_t i;
    for (i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_ids[i] == id)
            return;
    if (cfg->n_eos == LG_MAX_EOS) {
        lg_warn(c->log, "%s: more than %d EOS ids; %d ignored", c->what, LG_MAX_EOS, (int)id);
        return;
    }
    cfg->eos_ids[cfg->n_eos++] = id;
}

/* "eos_token_id": an integer, a list of integers, or null. */
static enum llmgpu_status get_eos(const struct cfgctx *c, const cJSON *obj,
                                  struct lg_model_config *cfg, int *present) {
    const cJSON *v = field(obj, "eos_token_id"), *e;
    enum llmgpu_status st;
    int64_t x;
    *present = v != NULL;
    if (!v)
        return LLMGPU_OK;
    if (cJSON_IsArray(v)) {
        cJSON_ArrayForEach(e, v) {
            if ((st = to_int(c, e, "eos_token_id[]", 0, INT32_MAX, &x)) != LLMGPU_OK)
                return st;
            add_eos(c, cfg, (int32_t)x);
        }
        return LLMGPU_OK;
    }
    if (!cJSON_IsNumber(v)) {
        lg_err(c->log, "%s: field \"eos_token_id\": expected an integer or a list of integers, got %s",
               c->what, lg_json_type_name(v));
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if ((st = to_int(c, v, "eos_token_id", 0, INT32_MAX, &x)) != LLMGPU_OK)
        return st;
    add_eos(c, cfg, (int32_t)x);
    return LLMGPU_OK;
}

static enum llmgpu_status get_bos(const struct cfgctx *c, const cJSON *obj, int32_t *bos,
                                  int *present) {
    const cJSON *v = field(obj, "bos_token_id");
    enum llmgpu_status st;
    int64_t x;
    *present = v != NULL;
    if (!v)
        return LLMGPU_OK;
    if ((st = to_int(c, v, "bos_token_id", 0, INT32_MAX, &x)) != LLMGPU_OK)
        return st;
    *bos = (int32_t)x;
    return LLMGPU_OK;
}

/* Which architecture: "architectures"[0], else "model_type". */
static enum llmgpu_status parse_arch(const struct cfgctx *c, const cJSON *root,
                                     struct lg_model_config *cfg) {
    const cJSON *archs = field(root, "architectures");
    const char *name = NULL, *model_type = NULL;
    const struct lg_arch_desc *d;
    enum llmgpu_status st;
    if ((st = get_string(c, root, "model_type", &model_type)) != LLMGPU_OK)
        return st;
    if (archs) {
        const cJSON *first;
        if (!cJSON_IsArray(archs)) {
            lg_err(c->log, "%s: field \"architectures\": expected a list of strings, got %s",
                   c->what, lg_json_type_name(archs));
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        first = cJSON_GetArrayItem(archs, 0);
        if (!first) {
            lg_err(c->log, "%s: field \"architectures\" is an empty list", c->what);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        if (!cJSON_IsString(first) || !first->valuestring) {
            lg_err(c->log, "%s: field \"architectures\"[0]: expected a string, got %s", c->what,
                   lg_json_type_name(first));
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        name = first->valuestring;
    } else if (model_type) {
        name = model_type;
    } else {
        lg_err(c->log, "%s: required field \"architectures\" (or \"model_type\") is missing",
               c->what);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    d = lg_arch_find(name);
    if (!d) {
        lg_err(c->log,
               "%s: architecture \"%.200s\" is not supported (supported: LlamaForCausalLM, "
               "MistralForCausalLM, Qwen2ForCausalLM)",
               c->what, name);
        return LLMGPU_ERR_UNSUPPORTED_MODEL;
    }
    cfg->arch = d->arch;
    snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s", d->hf_class);
    return LLMGPU_OK;
}

/* rope_theta and rope scaling, from the top level or "rope_parameters". */
static enum llmgpu_status parse_rope(const struct cfgctx *c, const cJSON *root,
                                     struct lg_model_config *cfg) {
    const cJSON *rp = field(root, "rope_parameters");
    const cJSON *rs = field(root, "rope_scaling");
    const char *type = NULL, *alt = NULL;
    enum llmgpu_status st;
    char what[256];
    struct cfgctx sub = *c;

    if (rp && !cJSON_IsObject(rp)) {
        lg_err(c->log, "%s: field \"rope_parameters\": expected an object, got %s", c->what,
               lg_json_type_name(rp));
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (rs && !cJSON_IsObject(rs)) {
        lg_err(c->log, "%s: field \"rope_scaling\": expected an object or null, got %s", c->what,
               lg_json_type_name(rs));
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (rp && field(rp, "rope_theta")) {
        snprintf(what, sizeof what, "%s: rope_parameters", c->what);
        sub.what = what;
        st = get_float(&sub, rp, "rope_theta", 1, 0, 0, 1e12, &cfg->rope_theta);
    } else {
        st = get_float(c, root, "rope_theta", 0, 10000.0, 0, 1e12, &cfg->rope_theta);
    }
    if (st != LLMGPU_OK)
        return st;

    cfg->rope_scaling = LG_ROPE_SCALING_NONE;
    cfg->rope_factor = 1.0f;
    cfg->rope_low_freq_factor = 0.0f;
    cfg->rope_high_freq_factor = 0.0f;
    cfg->rope_orig_ctx = 0;
    if (!rs)
        rs = rp;
    if (!rs)
        return LLMGPU_OK;
    snprintf(what, sizeof what, "%s: %s", c->what, rs == rp ? "rope_parameters" : "rope_scaling");
    sub.what = what;
    if ((st = get_string(&sub, rs, "rope_type", &type)) != LLMGPU_OK ||
        (st = get_string(&sub, rs, "type", &alt)) != LLMGPU_OK)
        return st;
    if (!type)
        type = alt;
    if (!type) {
        if (rs == rp)
            return LLMGPU_OK; /* only rope_theta */
        lg_err(c->log, "%s: field \"rope_type\" (or \"type\") is missing", what);
        return LLMGPU_ERR_BAD_MODEL_FILE;
    }
    if (strcmp(type, "default") == 0)
        return LLMGPU_OK;
    if (strcmp(type, "linear") == 0) {
        cfg->rope_scaling = LG_ROPE_SCALING_LINEAR;
        return get_float(&sub, rs, "factor", 1, 0, 0, 1e6, &cfg->rope_factor);
    }
    if (strcmp(type, "llama3") == 0) {
        cfg->rope_scaling = LG_ROPE_SCALING_LLAMA3;
        if ((st = get_float(&sub, rs, "factor", 1, 0, 0, 1e6, &cfg->rope_factor)) != LLMGPU_OK ||
            (st = get_float(&sub, rs, "low_freq_factor", 1, 0, 0, 1e6,
                            &cfg->rope_low_freq_factor)) != LLMGPU_OK ||
            (st = get_float(&sub, rs, "high_freq_factor", 1, 0, 0, 1e6,
                            &cfg->rope_high_freq_factor)) != LLMGPU_OK ||
            (st = get_u32(&sub, rs, "original_max_position_embeddings", 1, 0, 1, LG_CFG_MAX_CTX,
                          &cfg->rope_orig_ctx)) != LLMGPU_OK)
            return st;
        if (!(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor)) {
            lg_err(c->log, "%s: high_freq_factor %g must be greater than low_freq_factor %g", what,
                   (double)cfg->rope_high_freq_factor, (double)cfg->rope_low_freq_factor);
            return LLMGPU_ERR_BAD_MODEL_FILE;
        }
        return LLMGPU_OK;
    }
    lg_err(c->log, "%s: rope scaling type \"%.100s\" is not supported (supported: default, linear, llama3)",
           what, type);
    return LLMGPU_ERR_UNSUPPORTED_MODEL;
}

enum llmgpu_status lg_config_parse(const struct lg_alloc *a, const struct lg_log *log,
                                   const char *json, size_t len, const char *what,
                                   struct lg_model_config *cfg) {
    struct cfgctx c = {a, log, what ? what : "config.json"};
    const struct lg_arch_desc *d;
    const char *act = NULL;
    enum llmgpu_status st;
    cJSON *root;
    int b, present;

    memset(cfg, 0, sizeof *cfg);
    if ((st = parse_object(&c, json, len, &root)) != LLMGPU_OK)
        return st;

    if ((st = parse_arch(&c, root, cfg)) != LLMGPU_OK)
        goto out;
    d = lg_arch_get(cfg->arch);

    if ((st = get_u32(&c, root, "hidden_size", 1, 0, 1, LG_CFG_MAX_EMBD, &cfg->n_embd)) ||
        (st = get_u32(&c, root, "intermediate_size", 1, 0, 1, LG_CFG_MAX_FF, &cfg->n_ff)) ||
        (st = get_u32(&c, root, "num_hidden_layers", 1, 0, 1, LG_CFG_MAX_LAYER, &cfg->n_layer)) ||
        (st = get_u32(&c, root, "num_attention_heads", 1, 0, 1, LG_CFG_MAX_HEAD, &cfg->n_head)) ||
        (st = get_u32(&c, root, "num_key_value_heads", 0, cfg->n_head, 1, LG_CFG_MAX_HEAD,
                      &cfg->n_kv_head)) ||
        (st = get_u32(&c, root, "vocab_size", 1, 0, 1, LG_CFG_MAX_VOCAB, &cfg->n_vocab)) ||
        (st = get_u32(&c, root, "max_position_embeddings", 0, d->default_ctx, 1, LG_CFG_MAX_CTX,
                      &cfg->n_ctx_train)) ||
        (st = get_float(&c, root, "rms_norm_eps", 0, 1e-6, 0, 1, &cfg->rms_norm_eps)))
        goto out;

    if (field(root, "head_dim")) {
        if ((st = get_u32(&c, root, "head_dim", 1, 0, 1, LG_CFG_MAX_HEAD_DIM, &cfg->head_dim)))
            goto out;
    } else {
        if (cfg->n_embd % cfg->n_head != 0) {
            lg_err(log, "%s: hidden_size %u is not divisible by num_attention_heads %u "
                   "(and no head_dim is given)", c.what, cfg->n_embd, cfg->n_head);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto out;
        }
        cfg->head_dim = cfg->n_embd / cfg->n_head;
        if (cfg->head_dim > LG_CFG_MAX_HEAD_DIM) {
            lg_err(log, "%s: head dimension %u (hidden_size / num_attention_heads) exceeds %u",
                   c.what, cfg->head_dim, LG_CFG_MAX_HEAD_DIM);
            st = LLMGPU_ERR_BAD_MODEL_FILE;
            goto out;
        }
    }
    if (cfg->head_dim % 2 != 0) {
        lg_err(log, "%s: head dimension %u is odd; rotary embeddings need an even one", c.what,
               cfg->head_dim);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto out;
    }
    if (cfg->n_kv_head > cfg->n_head || cfg->n_head % cfg->n_kv_head != 0) {
        lg_err(log, "%s: num_key_value_heads %u does not divide num_attention_heads %u", c.what,
               cfg->n_kv_head, cfg->n_head);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto out;
    }

    if ((st = parse_rope(&c, root, cfg)) != LLMGPU_OK)
        goto out;

    if ((st = get_string(&c, root, "hidden_act", &act)) != LLMGPU_OK)
        goto out;
    if (act && strcmp(act, "silu") != 0) {
        lg_err(log, "%s: hidden_act \"%.100s\" is not supported (only silu)", c.what, act);
        st = LLMGPU_ERR_UNSUPPORTED_MODEL;
        goto out;
    }
    if ((st = get_bool(&c, root, "attention_bias", 0, &b)) != LLMGPU_OK)
        goto out;
    if (b && cfg->arch != LG_ARCH_QWEN2) {
        lg_err(log, "%s: attention_bias true (biases on q/k/v/o) is not supported for %s",
               c.what, cfg->arch_name);
        st = LLMGPU_ERR_UNSUPPORTED_MODEL;
        goto out;
    }
    if ((st = get_bool(&c, root, "mlp_bias", 0, &b)) != LLMGPU_OK)
        goto out;
    if (b) {
        lg_err(log, "%s: mlp_bias true is not supported", c.what);
        st = LLMGPU_ERR_UNSUPPORTED_MODEL;
        goto out;
    }
    cfg->qkv_bias = d->qkv_bias;

    cfg->sliding_window = 0;
    if (cfg->arch == LG_ARCH_MISTRAL) {
        if ((st = get_u32(&c, root, "sliding_window", 0, 0, 1, LG_CFG_MAX_CTX,
                          &cfg->sliding_window)) != LLMGPU_OK)
            goto out;
    } else if (cfg->arch == LG_ARCH_QWEN2) {
        if ((st = get_bool(&c, root, "use_sliding_window", 0, &b)) != LLMGPU_OK)
            goto out;
        if (b) {
            lg_err(log, "%s: use_sliding_window true (sliding window on layers from "
                   "max_window_layers on) is not supported", c.what);
            st = LLMGPU_ERR_UNSUPPORTED_MODEL;
            goto out;
        }
    }

    if ((st = get_bool(&c, root, "tie_word_embeddings", 0, &cfg->tie_word_embeddings)))
        goto out;

    cfg->bos_id = d->default_bos;
    if ((st = get_bos(&c, root, &cfg->bos_id, &present)) != LLMGPU_OK)
        goto out;
    if (!present && field(root, "bos_token_id") == NULL &&
        cJSON_GetObjectItemCaseSensitive(root, "bos_token_id"))
        cfg->bos_id = -1; /* explicit null */
    cfg->n_eos = 0;
    if ((st = get_eos(&c, root, cfg, &present)) != LLMGPU_OK)
        goto out;
    if (!present && !cJSON_GetObjectItemCaseSensitive(root, "eos_token_id") &&
        d->default_eos >= 0)
        add_eos(&c, cfg, d->default_eos);

    if (cfg->bos_id >= 0 && (uint32_t)cfg->bos_id >= cfg->n_vocab)
        lg_warn(log, "%s: bos_token_id %d is not below vocab_size %u", c.what, (int)cfg->bos_id,
                cfg->n_vocab);
    for (b = 0; b < (int)cfg->n_eos; b++)
        if ((uint32_t)cfg->eos_ids[b] >= cfg->n_vocab)
            lg_warn(log, "%s: eos_token_id %d is not below vocab_size %u", c.what,
                    (int)cfg->eos_ids[b], cfg->n_vocab);
    st = LLMGPU_OK;
out:
    cJSON_Delete(root);
    return st;
}

enum llmgpu_status lg_generation_config_parse(const struct lg_alloc *a, const struct lg_log *log,
                                              const char *json, size_t len, const char *what,
                                              struct lg_model_config *cfg) {
    struct cfgctx c = {a, log, what ? what : "generation_config.json"};
    enum llmgpu_status st;
    int32_t bos = -1;
    int present;
    cJSON *root;
    if ((st = parse_object(&c, json, len, &root)) != LLMGPU_OK)
        return st;
    if ((st = get_eos(&c, root, cfg, &present)) != LLMGPU_OK)
        goto out;
    if ((st = get_bos(&c, root, &bos, &present)) != LLMGPU_OK)
        goto out;
    if (present && cfg->bos_id < 0)
        cfg->bos_id = bos;
out:
    cJSON_Delete(root);
    return st;
}

/* ---- quantization_config ---- */

const char *lg_quant_method_name(enum lg_quant_method m) {
    return m == LG_QUANT_GPTQ ? "GPTQ" : m == LG_QUANT_AWQ ? "AWQ" : "none";
}

/* ASCII case-insensitive equality (AutoAWQ writes "GEMM" or "gemm"). */
static int str_ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* An integer field of quantization_config, under either of two names (AWQ's
 * older "w_bit" / "q_group_size"); def when both are absent. */
static enum llmgpu_status quant_int(const struct cfgctx *c, const cJSON *q, const char *name,
                                    const char *alt, int64_t def, int64_t min, int64_t max,
                                    int64_t *out) {
    const cJSON *v = field(q, name);
    char path[64];
    if (!v && alt) {
        v = field(q, alt);
        name = alt;
    }
    if (!v) {
        *out = def;
        return LLMGPU_OK;
    }
    snprintf(path, sizeof path, "quantization_config.%s", name);
    return to_int(c, v, path, min, max, out);
}

enum llmgpu_status lg_quant_config_parse(const struct lg_alloc *a, const struct lg_log *log,
                                         const char *json, size_t len, const char *what,
                                         struct lg_quant_config *q) {
    struct cfgctx c = {a, log, what ? what : "config.json"};
    const cJSON *qc, *v;
    const char *method = NULL, *fmt = NULL;
    enum llmgpu_status st;
    cJSON *root;
    int64_t bits, group;
    int zp = 1;

    memset(q, 0, sizeof *q);
    if ((st = parse_object(&c, json, len, &root)) != LLMGPU_OK)
        return st;
    qc = field(root, "quantization_config");
    if (!qc)
        goto out;
    if (!cJSON_IsObject(qc)) {
        lg_err(log, "%s: field \"quantization_config\": expected an object, got %s", c.what,
               lg_json_type_name(qc));
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto out;
    }
    if ((st = get_string(&c, qc, "quant_method", &method)) != LLMGPU_OK)
        goto out;
    if (!method) {
        lg_err(log, "%s: quantization_config has no \"quant_method\" string", c.what);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto out;
    }
    if (str_ieq(method, "gptq")) {
        q->method = LG_QUANT_GPTQ;
    } else if (str_ieq(method, "awq")) {
        q->method = LG_QUANT_AWQ;
    } else {
        lg_err(log, "%s: quantization_config.quant_method \"%.64s\" is not supported (GPTQ and "
               "AWQ 4-bit checkpoints are; a float checkpoint can be quantized at load with "
               "weight_type)", c.what, method);
        st = LLMGPU_ERR_UNSUPPORTED_MODEL;
        goto out;
    }
    if ((st = quant_int(&c, qc, "bits", q->method == LG_QUANT_AWQ ? "w_bit" : NULL, -1, 1, 64,
                        &bits)) != LLMGPU_OK)
        goto out;
    if (bits == -1) {
        lg_err(log, "%s: quantization_config has no \"bits\"", c.what);
        st = LLMGPU_ERR_BAD_MODEL_FILE;
        goto out;
    }
    if (bits != 4) {
        lg_err(log, "%s: %s with %lld bits is not supported (only 4-bit)", c.what,
               lg_quant_method_name(q->method), (long long)bits);
        st = LLMGPU_ERR_UNSUPPORTED_MODEL;
        goto out;
    }
    q->bits = 4;
    if ((st = quant_int(&c, qc, "group_size", q->method == LG_QUANT_AWQ ? "q_group_size" : NULL,
                        128, -1, 1 << 20, &group)) != LLMGPU_OK)
        goto out;
    if (group == 0 || (group > 0 && group % 16 != 0)) {
        lg_err(log, "%s: %s group_size %lld is not supported (a positive multiple of 16, or -1)",
               c.what, lg_quant_method_name(q->method), (long long)group);
        st = group == 0 ? LLMGPU_ERR_BAD_MODEL_FILE : LLMGPU_ERR_UNSUPPORTED_MODEL;
        goto out;
    }
    q->group_size = (int32_t)group;
    if (q->method == LG_QUANT_GPTQ) {
        if ((st = get_bool(&c, qc, "sym", 1, &q->sym)) != LLMGPU_OK ||
            (st = get_bool(&c, qc, "desc_act", 0, &q->desc_act)) != LLMGPU_OK ||
            (st = get_string(&c, qc, "checkpoint_format", &fmt)) != LLMGPU_OK)
            goto out;
        if (!fmt && (st = get_string(&c, qc, "format", &fmt)) != LLMGPU_OK) /* GPTQModel */
            goto out;
        if (!fmt || str_ieq(fmt, "gptq")) {
            q->zero_minus_one = 1;
        } else if (!str_ieq(fmt, "gptq_v2")) {
            lg_err(log, "%s: GPTQ checkpoint_format \"%.64s\" is not supported (\"gptq\" and "
                   "\"gptq_v2\" are)", c.what, fmt);
            st = LLMGPU_ERR_UNSUPPORTED_MODEL;
            goto out;
        }
    } else {
        if ((st = get_bool(&c, qc, "zero_point", 1, &zp)) != LLMGPU_OK ||
            (st = get_string(&c, qc, "version", &fmt)) != LLMGPU_OK)
            goto out;
        if (!zp) {
            lg_err(log, "%s: AWQ without zero points (zero_point false) is not supported",
                   c.what);
            st = LLMGPU_ERR_UNSUPPORTED_MODEL;
            goto out;
        }
        if (fmt && !str_ieq(fmt, "gemm")) {
            lg_err(log, "%s: AWQ version \"%.64s\" is not supported (only \"gemm\", AutoAWQ's "
                   "default packing)", c.what, fmt);
            st = LLMGPU_ERR_UNSUPPORTED_MODEL;
            goto out;
        }
        q->sym = 0;
    }
    v = field(qc, "lm_head");
    if (v && cJSON_IsTrue(v)) {
        lg_err(log, "%s: a quantized lm_head (quantization_config.lm_head true) is not supported",
               c.what);
        st = LLMGPU_ERR_UNSUPPORTED_MODEL;
        goto out;
    }
out:
    cJSON_Delete(root);
    if (st != LLMGPU_OK)
        memset(q, 0, sizeof *q);
    return st;
}
