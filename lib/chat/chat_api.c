/*
 * chat_api.c - public entry point of chat templates: llmgpu_chat_apply_template() takes
 * the template and the special tokens from the model's tokenizer and renders with
 * lg_chat_render() (chat.c).
 */
#include "chat/chat.h"
#include "forward.h"

enum llmgpu_status llmgpu_chat_apply_template(const struct llmgpu_model *model,
                                              const struct llmgpu_chat_message *msgs,
                                              size_t n_msgs, uint32_t flags, char *text,
                                              size_t *len_inout) {
    const char *tmpl, *bos, *eos;
    if (!model || !len_inout || (!msgs && n_msgs))
        return LLMGPU_ERR_INVALID_ARGUMENT;
    tmpl = lg_tok_chat_template(model->tok);
    if (!tmpl) {
        lg_err(&model->ctx->log, "the model has no chat template (tokenizer_config.json "
                                 "chat_template, or chat_template.jinja)");
        return LLMGPU_ERR_UNSUPPORTED;
    }
    /* transformers passes special_tokens_map: the config's strings, not generation_config */
    bos = lg_tok_chat_token(model->tok, 0);
    eos = lg_tok_chat_token(model->tok, 1);
    return lg_chat_render(&model->ctx->alloc, &model->ctx->log, tmpl, bos, eos, msgs, n_msgs,
                          flags, NULL, text, len_inout);
}
